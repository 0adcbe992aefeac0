"""The FLOW_OUTPUT protocol: how a script or an agent reports markers, context and data.

A step prints::

    <<<FLOW_OUTPUT>>>
    {"markers": ["has_issues"], "context": "4 files need fixing", "fixed_count": "0"}
    <<<END_FLOW_OUTPUT>>>

The parser takes the LAST start marker followed by JSON (``{``, ``[`` or a Markdown code
fence), strips ``json`` fences, repairs trailing commas and invalid backslash escapes,
and reads ``markers`` (list of strings), ``context`` (string) and every other top-level
field as an extra (string-valued extras become ``{{variables}}`` for later steps).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

START_MARKER = "<<<FLOW_OUTPUT>>>"
END_MARKER = "<<<END_FLOW_OUTPUT>>>"

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


def _candidates(text: str) -> list[str]:
    """Block bodies after each start marker whose next non-space text looks like JSON,
    last first."""
    bodies: list[str] = []
    start = text.rfind(START_MARKER)
    while start != -1:
        rest = text[start + len(START_MARKER) :]
        end = rest.find(END_MARKER)
        body = (rest if end == -1 else rest[:end]).strip()
        if body.startswith(("{", "[", "```")):
            bodies.append(body)
        start = text.rfind(START_MARKER, 0, start)
    return bodies


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


def parse_flow_output(text: str) -> FlowOutput | None:
    """The last valid FLOW_OUTPUT block in ``text``, or None if there is none.

    A block whose JSON cannot be repaired, that is not an object, whose ``markers`` is
    not a list of strings or whose ``context`` is not a string is ignored (an earlier
    valid block, if any, is used instead).
    """
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
