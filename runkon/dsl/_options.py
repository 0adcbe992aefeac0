"""Option values (``key = value``) and their typed readers.

The parser turns every ``key = value`` list into an :class:`OptionSet`; a node builder then
reads each option it knows with a typed reader (``integer``, ``boolean``, ``duration``,
...). Whatever is left, unknown or misspelled, is an error with a did-you-mean hint, and
every error points at the offending key or value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from runkon.dsl._ast import FrozenMap, StepMarkerCondition
from runkon.dsl._durations import parse_duration
from runkon.dsl._lexer import INT, STRING, SourceMap
from runkon.errors import DslSyntaxError

MAX_INT = 2**32 - 1
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
DOTTED = "dotted"  # scalar kind of a bare `step.field` reference


@dataclass(slots=True)
class Value:
    """A parsed value: a scalar, a ``[list]`` or a ``{map}``.

    ``kind`` is ``"scalar"``, ``"list"`` or ``"map"``. Scalars keep the token kind they came
    from (``scalar_kind``: string, int, word, numword or dotted) and their text.
    """

    kind: str
    offset: int
    text: str = ""
    scalar_kind: str = ""
    items: list[Value] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "list":
            return "a list"
        if self.kind == "map":
            return "a map"
        if self.scalar_kind == STRING:
            return f"string {self.text!r}"
        return repr(self.text)


@dataclass(slots=True)
class Entry:
    """One ``key = value`` pair and where its key stands."""

    key: str
    offset: int
    value: Value


def close_match(word: str, choices: Collection[str]) -> str | None:
    """The choice ``word`` was most likely meant to be, if any is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _choices(names: Collection[str]) -> str:
    return ", ".join(sorted(names))


class OptionSet:
    """The options of one block (``call x { ... }``), read by typed accessors.

    Args:
        source_map: for error locations.
        owner: how the block is named in messages, e.g. ``"call 'plan'"``.
        entries: the ``key = value`` pairs in source order.
        allowed: every key this block accepts; others are errors.
        misplaced: keys that exist elsewhere, with the message saying where they belong.

    Raises:
        DslSyntaxError: a duplicate, unknown or misplaced key.
    """

    def __init__(
        self,
        source_map: SourceMap,
        owner: str,
        entries: list[Entry],
        allowed: Collection[str],
        misplaced: dict[str, str] | None = None,
    ) -> None:
        self._sm = source_map
        self.owner = owner
        self._entries: dict[str, Entry] = {}
        for entry in entries:
            first = self._entries.get(entry.key)
            if first is not None:
                line, col = source_map.position(first.offset)
                raise source_map.error(
                    entry.offset,
                    f"duplicate option {entry.key!r} in {owner} (first set at {line}:{col})",
                    hint="remove one of them",
                )
            if entry.key not in allowed:
                raise self._unknown(entry, allowed, misplaced or {})
            self._entries[entry.key] = entry

    def _unknown(
        self, entry: Entry, allowed: Collection[str], misplaced: dict[str, str]
    ) -> DslSyntaxError:
        if entry.key in misplaced:
            return self._sm.error(
                entry.offset,
                f"option {entry.key!r} is not valid on {self.owner}",
                hint=misplaced[entry.key],
            )
        if not allowed:
            return self._sm.error(
                entry.offset,
                f"{self.owner} takes no options, found {entry.key!r}",
                hint="remove it",
            )
        guess = close_match(entry.key, allowed)
        hint = f"did you mean {guess!r}?" if guess else f"valid options: {_choices(allowed)}"
        return self._sm.error(
            entry.offset,
            f"unknown option {entry.key!r} for {self.owner}",
            found=repr(entry.key),
            hint=hint,
        )

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def entry(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def key_error(self, key: str, problem: str, hint: str | None = None) -> DslSyntaxError:
        """An error pointing at option ``key`` (which must be present)."""
        return self._sm.error(self._entries[key].offset, problem, hint=hint)

    def value_error(
        self, value: Value, key: str, expected: str, hint: str | None = None
    ) -> DslSyntaxError:
        return self._sm.error(
            value.offset,
            f"option {key!r} of {self.owner} expects {expected}, found {value.describe()}",
            expected=expected,
            found=value.describe(),
            hint=hint,
        )

    def require(self, key: str, owner_offset: int, hint: str | None = None) -> Entry:
        """The entry for ``key``, or an error at the block's start if it is missing."""
        entry = self._entries.get(key)
        if entry is None:
            raise self._sm.error(
                owner_offset,
                f"{self.owner} is missing the required option {key!r}",
                hint=hint or f"add `{key} = ...` to its block",
            )
        return entry

    # ----------------------------------------------------------------- typed readers

    def _scalar(self, key: str, expected: str) -> Value | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.value.kind != "scalar":
            raise self.value_error(entry.value, key, expected)
        return entry.value

    def string(self, key: str) -> str | None:
        """A scalar of any spelling (quoted, bare word, number, dotted) as text."""
        value = self._scalar(key, "a string")
        return None if value is None else value.text

    def name(self, key: str) -> str | None:
        """A step, provider or workflow name: letters, digits, ``_`` and ``-``."""
        value = self._scalar(key, "a name")
        if value is None:
            return None
        if not _NAME_RE.fullmatch(value.text):
            raise self.value_error(value, key, "a name (letters, digits, '_' and '-')")
        return value.text

    def integer(self, key: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int | None:
        """A whole number (``3`` or ``"3"``) within ``minimum..maximum``."""
        value = self._scalar(key, "a whole number")
        if value is None:
            return None
        if not value.text.isdigit():
            raise self.value_error(value, key, "a whole number")
        number = int(value.text)
        if not minimum <= number <= maximum:
            if maximum != MAX_INT:
                span = f"between {minimum} and {maximum}"
            elif number > maximum:
                span = f"at most {maximum}"
            else:
                span = f"at least {minimum}"
            raise self._sm.error(
                value.offset, f"option {key!r} of {self.owner} must be {span}, found {number}"
            )
        return number

    def boolean(self, key: str) -> bool | None:
        """``true`` or ``false`` (bare or quoted), nothing else."""
        value = self._scalar(key, "true or false")
        if value is None:
            return None
        if value.text not in ("true", "false"):
            raise self.value_error(value, key, "true or false")
        return value.text == "true"

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        """One of ``choices`` (bare or quoted)."""
        expected = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
        value = self._scalar(key, expected)
        if value is None:
            return None
        if value.text not in choices:
            guess = close_match(value.text, choices)
            raise self.value_error(
                value, key, expected, hint=f"did you mean {guess!r}?" if guess else None
            )
        return value.text

    def duration(self, key: str) -> float | None:
        """A duration in seconds: ``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"``."""
        value = self._scalar(key, "a duration")
        if value is None:
            return None
        try:
            return parse_duration(value.text)
        except ValueError as exc:
            raise self._sm.error(value.offset, f"option {key!r} of {self.owner}: {exc}") from None

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A ``[list]`` of scalars (commas optional), or one scalar as a one-item list."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value = entry.value
        if value.kind == "scalar":
            return (value.text,)
        if value.kind != "list":
            raise self.value_error(value, key, "a list of strings")
        for item in value.items:
            if item.kind != "scalar":
                raise self._sm.error(
                    item.offset,
                    f"option {key!r} of {self.owner} must hold strings, "
                    f"found {item.describe()} inside the list",
                )
        return tuple(item.text for item in value.items)

    def string_map(self, key: str) -> FrozenMap | None:
        """A ``{ key = "value" }`` map whose values are scalars."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return self.map_value(entry.value, key)

    def map_value(self, value: Value, key: str) -> FrozenMap:
        if value.kind != "map":
            raise self.value_error(value, key, 'a map { key = "value" }')
        seen: dict[str, str] = {}
        for item in value.entries:
            if item.key in seen:
                raise self._sm.error(
                    item.offset, f"duplicate key {item.key!r} in option {key!r} of {self.owner}"
                )
            if item.value.kind != "scalar":
                raise self._sm.error(
                    item.value.offset,
                    f"values in option {key!r} of {self.owner} must be strings, "
                    f"found {item.value.describe()} for {item.key!r}",
                )
            seen[item.key] = item.value.text
        return FrozenMap(seen)

    def step_marker(self, key: str) -> StepMarkerCondition | None:
        """A ``step.marker`` reference, bare or quoted."""
        value = self._scalar(key, "a step.marker reference")
        if value is None:
            return None
        return step_marker(self._sm, value, f"option {key!r} of {self.owner}")


def step_marker(source_map: SourceMap, value: Value, where: str) -> StepMarkerCondition:
    """Read ``value`` as ``step.marker``; exactly one dot, both parts non-empty."""
    step, dot, marker = value.text.partition(".")
    if not dot or not _NAME_RE.fullmatch(step) or not _NAME_RE.fullmatch(marker):
        raise source_map.error(
            value.offset,
            f"{where} must be in the form 'step.marker', found {value.describe()}",
            expected="step.marker",
            found=value.describe(),
        )
    return StepMarkerCondition(step=step, marker=marker)


def is_int_token(value: Value) -> bool:
    return value.kind == "scalar" and value.scalar_kind == INT
