"""ULID generation: 26-character, time-ordered, monotonic ids for every stored row.

A ULID is 48 bits of Unix time in milliseconds followed by 80 random bits, written in
Crockford's base32. Ids made in the same millisecond increment the previous random part,
so ids from one process sort in creation order even within a millisecond (the stores rely
on that to order rows that share a position or a deadline).

Ids are made on every write of the engine's hot path, so encoding works in 10-bit chunks
(two characters per table lookup) and the time part is encoded once per millisecond.
The random part comes from ``random.getrandbits``: ids must be unique, not unguessable,
and the module reseeds itself in forked children.
"""

from __future__ import annotations

import random
import threading
import time

__all__ = ("new_ulid",)

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 characters
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1

_lock = threading.Lock()
_last_ms = -1
_last_random = 0
_time_text = ""
_random_text = ""


def _encode_time(ms: int) -> str:
    """The 10 characters of a 48-bit millisecond timestamp."""
    return "".join(_PAIRS[(ms >> shift) & 1023] for shift in (40, 30, 20, 10, 0))


def _encode_random(value: int) -> str:
    """The 16 characters of an 80-bit random part."""
    pairs = _PAIRS
    return (
        pairs[value >> 70]
        + pairs[(value >> 60) & 1023]
        + pairs[(value >> 50) & 1023]
        + pairs[(value >> 40) & 1023]
        + pairs[(value >> 30) & 1023]
        + pairs[(value >> 20) & 1023]
        + pairs[(value >> 10) & 1023]
        + pairs[value & 1023]
    )


def new_ulid() -> str:
    """Return a new ULID, greater than every ULID this process returned before.

    If the random part would overflow within one millisecond (2**80 ids), the time part
    is advanced by one millisecond instead; ids stay unique and ordered.
    """
    global _last_ms, _last_random, _time_text, _random_text
    _lock.acquire()  # not `with`: the context-manager protocol costs more than the work
    try:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _last_random = random.getrandbits(_RANDOM_BITS)
            _time_text = _encode_time(now_ms)
            _random_text = _encode_random(_last_random)
        elif _last_random < _RANDOM_MAX:
            _last_random += 1
            if _last_random & 1023:  # no carry: only the last two characters change
                _random_text = _random_text[:14] + _PAIRS[_last_random & 1023]
            else:
                _random_text = _encode_random(_last_random)
        else:  # pragma: no cover - needs 2**80 ids in one millisecond
            _last_ms += 1
            _last_random = 0
            _time_text = _encode_time(_last_ms)
            _random_text = _encode_random(0)
        return _time_text + _random_text
    finally:
        _lock.release()
