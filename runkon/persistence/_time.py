"""Timestamps: timezone-aware UTC datetimes with millisecond precision.

Stored text is RFC 3339 with milliseconds and a ``Z`` (``2026-11-26T01:02:03.456Z``).
Reading also accepts what the canonical schema's defaults and runkon-flow write:
``YYYY-MM-DD HH:MM:SS`` (SQLite ``datetime('now')``, the canonical ``lease_until``) and
RFC 3339 with any fraction or offset. Text without an offset is taken as UTC.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ("format_ts", "parse_ts", "seconds_from", "truncate_ms", "utc_now")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_cached_ms = -1
_cached_now = _EPOCH
_cached_text = ""  # format_ts(_cached_now), filled on first use


def utc_now() -> datetime:
    """Return the current UTC time, truncated to whole milliseconds.

    Both stores use this so a timestamp reads back exactly as it was written. Calls
    within one millisecond return the same (immutable) object.
    """
    global _cached_ms, _cached_now, _cached_text
    now_ms = time.time_ns() // 1_000_000
    if now_ms != _cached_ms:
        _cached_ms, _cached_now, _cached_text = now_ms, _EPOCH + now_ms * _MS, ""
    return _cached_now


def format_ts(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with milliseconds (``...T01:02:03.456Z``).

    Raises:
        ValueError: if ``moment`` is naive (a time without a zone is ambiguous).
    """
    global _cached_text
    if moment is _cached_now:  # the hot path formats "now" several times per millisecond
        if not _cached_text:
            _cached_text = _format(moment)
        return _cached_text
    return _format(_as_utc(moment))


def _format(moment: datetime) -> str:
    # isoformat() gives '...T01:02:03.456+00:00' for a UTC time; swap the offset for 'Z'.
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_ts(text: str) -> datetime:
    """Parse stored timestamp text into an aware UTC datetime.

    Raises:
        ValueError: if the text is not a timestamp in one of the accepted forms.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def truncate_ms(moment: datetime) -> datetime:
    """Return ``moment`` in UTC, truncated to whole milliseconds (as it would be stored).

    Raises:
        ValueError: if ``moment`` is naive.
    """
    moment = _as_utc(moment)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def seconds_from(moment: datetime, seconds: float) -> datetime:
    """Return ``moment`` plus ``seconds``, truncated to whole milliseconds."""
    return truncate_ms(moment + timedelta(seconds=seconds))


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment!r} has no time zone; pass an aware UTC datetime")
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)
