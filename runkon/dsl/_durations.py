"""Durations as written in ``.wf`` files: ``90`` (seconds), ``"250ms"``, ``"5m"``,
``"1h30m"``, ``"2d"``."""

from __future__ import annotations

import re

__all__ = ("format_duration", "parse_duration")

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART_RE = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_WHOLE_RE = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d))+")
MAX_DURATION = 366 * 86400.0  # a year and a day: anything longer is a typo


def parse_duration(text: str) -> float:
    """Parse a duration into seconds.

    Accepts a bare number of seconds (``"90"``) or one or more ``<n><unit>`` parts with
    units ``ms``, ``s``, ``m``, ``h``, ``d`` (``"1h30m"``). Surrounding whitespace is
    ignored.

    Raises:
        ValueError: the text is not a duration, or is longer than a year.
    """
    value = text.strip()
    if value.isdigit():
        seconds = float(int(value))
    elif _WHOLE_RE.fullmatch(value):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART_RE.findall(value))
    else:
        raise ValueError(
            f"{text!r} is not a duration; write a number of seconds or e.g. "
            '"250ms", "30s", "5m", "1h30m", "2d"'
        )
    if seconds > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than a year; use a shorter duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest ``.wf`` spelling of ``seconds`` (``5400.0`` → ``"1h30m"``)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)
