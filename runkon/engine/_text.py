"""Text that can be stored: lone surrogates replaced at the edges where data enters.

A Python ``str`` may hold lone surrogates (``"\\ud83d"``: half an emoji from a cut JSON
escape, bytes decoded with ``surrogateescape``); UTF-8 cannot encode them, so SQLite, JSON
and HTTP would fail on them later. What executors, scripts and item providers give the
engine is passed through :func:`valid_text`: each lone surrogate becomes U+FFFD (the
replacement character, as a decoder with ``errors="replace"`` does), a surrogate pair
becomes the character it encodes, and everything else is kept as is.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a surrogate code point (it cannot be encoded as UTF-8)."""
    return _SURROGATE.search(text) is not None


def valid_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (pairs joined); ``text`` itself
    when it has none."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def valid_data(value: Any) -> Any:
    """``value`` (JSON-like: str, list, tuple, dict) with every string made valid text;
    ``value`` itself when nothing needed replacing."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        pairs = [(valid_data(key), valid_data(item)) for key, item in value.items()]
        if all(
            new[0] is key and new[1] is item
            for new, (key, item) in zip(pairs, value.items(), strict=True)
        ):
            return value
        return dict(pairs)
    if isinstance(value, list | tuple):
        items = [valid_data(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    return value
