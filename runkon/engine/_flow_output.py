"""The FLOW_OUTPUT protocol: how a script or an agent reports markers, context and data.

A step prints::

    <<<FLOW_OUTPUT>>>
    {"markers": ["has_issues"], "context": "4 files need fixing", "fixed_count": "0"}
    <<<END_FLOW_OUTPUT>>>

The parser takes the LAST start marker followed by JSON (``{``, ``[`` or a Markdown code
fence), strips ``json`` fences, repairs trailing commas and invalid backslash escapes,
and reads ``markers`` (list of strings), ``context`` (string) and every other top-level
field as an extra (string-valued extras become ``{{variables}}`` for later steps).

A block's body ends at the next end marker or at the next start marker, whichever comes
first (a body never contains a start marker), so candidate bodies never overlap and
parsing is linear in the size of the output. Only the last ``FLOW_OUTPUT_LIMIT``
characters (4 MiB, the same as the stdout a step keeps) are parsed: a block that starts
before them is not seen. :func:`parse_flow_output_async` parses large output in a worker
thread so the event loop (leases, gate timers) keeps running.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio

START_MARKER = "<<<FLOW_OUTPUT>>>"
END_MARKER = "<<<END_FLOW_OUTPUT>>>"
FLOW_OUTPUT_LIMIT = 4 * 1024 * 1024  # characters parsed (the end of the output)
THREAD_THRESHOLD = 64 * 1024  # parse_flow_output_async uses a worker thread above this

FLOW_OUTPUT_INSTRUCTION = f"""\
When you are done, report your result by printing exactly one block:
{START_MARKER}
{{"markers": ["<marker>", ...], "context": "<one paragraph summary for the next step>"}}
{END_MARKER}
Markers are short snake_case flags that later steps test (e.g. "needs_changes"). Add other
top-level string fields to pass values on; they become {{{{variables}}}} of later steps."""

_FENCE_RE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")
_BAD_ESCAPE_RE = re.compile(r'\\(?!["\\/bfnrtu])')


@dataclass(frozen=True, slots=True)
class FlowOutput:
    """A parsed FLOW_OUTPUT block."""

    markers: tuple[str, ...] = ()
    context: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The block re-serialised (markers, context and extras) as the step's
        structured output."""
        return json.dumps(
            {"markers": list(self.markers), "context": self.context, **self.extras},
            ensure_ascii=False,
        )


def _positions(text: str, marker: str) -> list[int]:
    """Where ``marker`` occurs in ``text`` (one linear scan)."""
    found: list[int] = []
    at = text.find(marker)
    while at != -1:
        found.append(at)
        at = text.find(marker, at + len(marker))
    return found


def _candidates(text: str) -> Iterator[str]:
    """Block bodies after each start marker whose next non-space text looks like JSON,
    last first. A body ends at the next end marker or the next start marker."""
    starts = _positions(text, START_MARKER)
    ends = _positions(text, END_MARKER)
    for index in range(len(starts) - 1, -1, -1):
        begin = starts[index] + len(START_MARKER)
        stop = starts[index + 1] if index + 1 < len(starts) else len(text)
        after = bisect_left(ends, begin)
        if after < len(ends) and ends[after] < stop:
            stop = ends[after]
        body = text[begin:stop].strip()
        if body.startswith(("{", "[", "```")):
            yield body


def _load(body: str) -> Any:
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    repaired = _BAD_ESCAPE_RE.sub(r"\\\\", _TRAILING_COMMA_RE.sub(r"\1", body))
    return json.loads(repaired)


def parse_flow_output(text: str, *, limit: int = FLOW_OUTPUT_LIMIT) -> FlowOutput | None:
    """The last valid FLOW_OUTPUT block in ``text``, or None if there is none.

    Only the last ``limit`` characters of ``text`` are parsed. A block whose JSON cannot
    be repaired, that is not an object, whose ``markers`` is
    not a list of strings or whose ``context`` is not a string is ignored (an earlier
    valid block, if any, is used instead).
    """
    if len(text) > limit:
        text = text[len(text) - limit :]
    if START_MARKER not in text:
        return None
    for body in _candidates(text):
        try:
            data = _load(body)
        except (json.JSONDecodeError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        markers = data.pop("markers", [])
        context = data.pop("context", "")
        if context is None:
            context = ""
        if not isinstance(markers, list) or not all(isinstance(m, str) for m in markers):
            continue
        if not isinstance(context, str):
            continue
        return FlowOutput(tuple(markers), context, data)
    return None


async def parse_flow_output_async(
    text: str, *, limit: int = FLOW_OUTPUT_LIMIT
) -> FlowOutput | None:
    """:func:`parse_flow_output`, in a worker thread when ``text`` is longer than
    ``THREAD_THRESHOLD`` characters (so a large output never blocks the event loop)."""
    if len(text) <= THREAD_THRESHOLD:
        return parse_flow_output(text, limit=limit)
    return await anyio.to_thread.run_sync(lambda: parse_flow_output(text, limit=limit))
