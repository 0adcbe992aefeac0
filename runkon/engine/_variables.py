"""The variable map and ``{{var}}`` substitution (reference §3.4).

Variables visible to a step, later sources overriding earlier ones:

1. the run's inputs (defaults applied);
2. the host's ``injected_variables`` (engine variables below still win);
3. ``workflow_run_id``, ``workflow_name``, ``dry_run``;
4. ``prior_context`` (the latest step context), ``prior_contexts`` (JSON array of every
   context so far), ``prior_output`` (the latest structured output), ``gate_feedback``
   (the latest gate feedback, or its selections joined by ``, `` when it made some),
   ``gate_feedback_text`` (the latest gate feedback text, even when selections were made);
5. string-valued extra fields of earlier FLOW_OUTPUT blocks, oldest first, except the
   reserved engine names.

Unlike runkon-flow, the map is maintained incrementally: nothing is re-serialised or
re-parsed per step, and ``prior_contexts`` is built only when someone reads it.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from runkon._log import get_logger

ENGINE_INJECTED_KEYS = frozenset(
    {
        "ticket_id",
        "ticket_source_id",
        "ticket_source_type",
        "ticket_title",
        "ticket_body",
        "ticket_url",
        "ticket_raw_json",
        "repo_id",
        "repo_path",
        "repo_name",
        "workflow_run_id",
        "workflow_name",
        "dry_run",
        "prior_context",
        "prior_contexts",
        "prior_output",
        "gate_feedback",
        "gate_feedback_text",
        "workflow_status",
    }
)

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_log = get_logger("runkon.engine")


@dataclass(slots=True)
class ContextEntry:
    """One step's contribution to the run's context history."""

    step: str
    iteration: int
    context: str
    markers: tuple[str, ...]
    structured_output: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "iteration": self.iteration,
            "context": self.context,
            "markers": list(self.markers),
            "structured_output": self.structured_output,
        }


class VariableMap(Mapping[str, str]):
    """A read-only snapshot of a run's variables, as handed to one step.

    ``prior_contexts`` is computed on first access only.
    """

    __slots__ = ("_lazy", "_values")

    def __init__(self, values: dict[str, str], lazy: dict[str, Callable[[], str]]) -> None:
        self._values = values
        self._lazy = lazy

    def __getitem__(self, key: str) -> str:
        try:
            return self._values[key]
        except KeyError:
            factory = self._lazy.get(key)
            if factory is None:
                raise
            value = factory()
            self._values[key] = value
            return value

    def __iter__(self) -> Iterator[str]:
        yield from self._values
        yield from (key for key in self._lazy if key not in self._values)

    def __len__(self) -> int:
        return len(self._values) + sum(1 for key in self._lazy if key not in self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values or key in self._lazy

    def __repr__(self) -> str:
        return f"VariableMap({dict(self)!r})"

    def with_values(self, extra: Mapping[str, str]) -> VariableMap:
        """A copy with ``extra`` added (overriding)."""
        return VariableMap({**self._values, **extra}, self._lazy)


class RunVariables:
    """The variables of one run, updated as its steps complete."""

    def __init__(
        self,
        *,
        inputs: Mapping[str, str],
        injected: Mapping[str, str],
        run_id: str,
        workflow_name: str,
        dry_run: bool,
    ) -> None:
        self._values: dict[str, str] = {**inputs}
        for key, value in injected.items():
            self._values.setdefault(key, value)
        self._values.update(
            workflow_run_id=run_id,
            workflow_name=workflow_name,
            dry_run="true" if dry_run else "false",
            prior_context="",
        )
        self.contexts: list[ContextEntry] = []
        self._contexts_json: tuple[int, str] = (0, "[]")

    def snapshot(self) -> VariableMap:
        """The variables as they are now, for one step."""
        count = len(self.contexts)
        return VariableMap(dict(self._values), {"prior_contexts": lambda: self._prior(count)})

    def _prior(self, count: int) -> str:
        cached_count, cached = self._contexts_json
        if cached_count == count:
            return cached
        text = json.dumps([entry.as_json() for entry in self.contexts[:count]])
        if count == len(self.contexts):
            self._contexts_json = (count, text)
        return text

    def set(self, key: str, value: str) -> None:
        self._values[key] = value

    def current(self) -> Mapping[str, str]:
        """The values held now, without the lazy ``prior_contexts`` (read-only: no copy)."""
        return self._values

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def record(self, entry: ContextEntry, extras: Mapping[str, Any] | None = None) -> None:
        """Add a completed step's context, structured output and FLOW_OUTPUT extras."""
        self.contexts.append(entry)
        self._values["prior_context"] = entry.context
        if entry.structured_output is not None:
            self._values["prior_output"] = entry.structured_output
        for key, value in (extras or {}).items():
            if not isinstance(value, str):
                continue
            if key in ENGINE_INJECTED_KEYS:
                _log.warning("flow output field shadows an engine variable; ignored", key=key)
                continue
            self._values[key] = value


RECORDED_VALUE_CHARS = 1000
RECORDED_TOTAL_CHARS = 16_000
MORE_KEY = "…"
SECRET_NAME_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")
REDACTED = "<redacted>"


def recorded_inputs(values: Mapping[str, str]) -> dict[str, str]:
    """The variables a step ran with, bounded for its step record (``runkon show``).

    The value of a variable whose name contains ``token``, ``secret``, ``password`` or
    ``key`` (any case) is recorded as ``<redacted>``: a host may inject credentials as
    variables, and step records are shown to everyone who may read the run. Values
    longer than ``RECORDED_VALUE_CHARS`` are cut (``… (N more characters)``); once
    ``RECORDED_TOTAL_CHARS`` are kept, the remaining names are counted under the key
    ``…`` instead. Names keep the map's order (the run's inputs first).
    """
    kept: dict[str, str] = {}
    total = 0
    secret = _secret_name
    for index, (name, value) in enumerate(values.items()):
        if secret(name):
            value = REDACTED
        elif len(value) > RECORDED_VALUE_CHARS:
            cut = len(value) - RECORDED_VALUE_CHARS
            value = f"{value[:RECORDED_VALUE_CHARS]}… ({cut} more characters)"
        total += len(value)
        if total > RECORDED_TOTAL_CHARS:
            kept[MORE_KEY] = f"{len(values) - index} more variables not kept"
            break
        kept[name] = value
    return kept


_SECRET_NAME_RE = re.compile("|".join(SECRET_NAME_WORDS), re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    """Whether ``name`` looks like it holds a credential (cached: names repeat per step)."""
    return _SECRET_NAME_RE.search(name) is not None


def placeholders(*templates: str) -> list[str]:
    """The ``{{name}}`` names used in ``templates``, each once, in order of appearance."""
    found: dict[str, None] = {}
    for template in templates:
        if "{{" in template:
            for match in _PLACEHOLDER_RE.finditer(template):
                found.setdefault(match.group(1), None)
    return list(found)


def substitute(
    template: str,
    variables: Mapping[str, str],
    *,
    keep_unresolved: bool = False,
    quote: Callable[[str], str] | None = None,
) -> str:
    """Replace every ``{{name}}`` in ``template`` in one pass.

    Whitespace inside the braces is ignored; replaced values are never scanned again.
    Unknown names are removed, or kept literally with ``keep_unresolved``. ``quote``
    (e.g. :func:`shell_quote`) is applied to each substituted value.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = variables.get(name)
        if value is None:
            return match.group(0) if keep_unresolved else ""
        return quote(value) if quote is not None else value

    if "{{" not in template:
        return template
    return _PLACEHOLDER_RE.sub(replace, template)


def shell_quote(value: str) -> str:
    """Quote ``value`` for POSIX ``sh`` so it is one word, whatever it contains."""
    return shlex.quote(value)


SHELL_ARG_PREFIX = "RUNKON_ARG_"


def shell_substitute(template: str, variables: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Substitute ``{{name}}`` in a shell command so no value can become shell syntax.

    Each placeholder becomes a reference to an environment variable
    (``RUNKON_ARG_1``, ``RUNKON_ARG_2``, ... in order) holding the value, written for
    the quoting it sits in: ``"$RUNKON_ARG_1"`` unquoted (one word),
    ``${RUNKON_ARG_1}`` inside double quotes, ``'"$RUNKON_ARG_1"'`` inside single
    quotes (the quote is closed around the reference). The value itself never enters
    the command text, so whatever it holds (``$(...)``, backticks, quotes, newlines,
    ``$VAR``) arrives verbatim where the workflow put it. Unknown names become empty
    text, as with :func:`substitute`; NUL bytes are dropped (an environment value
    cannot hold them).

    Returns:
        The command and the variables to add to its environment.
    """
    env: dict[str, str] = {}
    out: list[str] = []
    state = "plain"  # or "single", "double"
    escaped = False
    done = 0

    def scan(text: str) -> None:
        nonlocal state, escaped
        for char in text:
            if escaped:
                escaped = False
            elif state == "single":
                if char == "'":
                    state = "plain"
            elif char == "\\":
                escaped = True
            elif char == "'" and state == "plain":
                state = "single"
            elif char == '"':
                state = "double" if state == "plain" else "plain"

    if "{{" not in template:
        return template, env
    for match in _PLACEHOLDER_RE.finditer(template):
        before = template[done : match.start()]
        scan(before)
        out.append(before)
        done = match.end()
        value = variables.get(match.group(1))
        if value is None:
            continue
        name = f"{SHELL_ARG_PREFIX}{len(env) + 1}"
        env[name] = value.replace("\0", "")
        escaped = False
        if state == "single":
            out.append(f"'\"${name}\"'")
        elif state == "double":
            out.append(f"${{{name}}}")
        else:
            out.append(f'"${name}"')
    out.append(template[done:])
    return "".join(out), env
