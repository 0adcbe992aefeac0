"""The ``.wf`` lexer: text in, a flat list of tokens out, in one linear regex pass.

Tokens keep only their character offset; :class:`SourceMap` turns an offset into a
1-based ``line:col`` when a node or an error needs one.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import NamedTuple

from runkon.errors import DslSyntaxError

# Token kinds. Keywords are plain WORDs: their meaning depends on where they stand.
WORD = "word"  # identifier or keyword: [A-Za-z_][A-Za-z0-9_-]*
INT = "int"  # [0-9]+
NUMWORD = "numword"  # a bare value starting with a digit, e.g. 5m or 1h30m
STRING = "string"
PUNCT = "punct"  # one of { } [ ] , = .
EOF = "eof"

_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>//[^\n]*)
    | (?P<string>"[^"\\]*(?:\\.[^"\\]*)*")
    | (?P<num>[0-9][A-Za-z0-9_]*)
    | (?P<word>[A-Za-z_][A-Za-z0-9_-]*)
    | (?P<punct>[{}\[\],=.])
    | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


class Token(NamedTuple):
    """One token: its kind, its value (strings unescaped) and its offset in the text."""

    kind: str
    value: str
    offset: int


class SourceMap:
    """Maps character offsets of one text to 1-based line and column numbers."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._line_starts = [0]
        self._line_starts.extend(m.end() for m in re.finditer("\n", text))

    def position(self, offset: int) -> tuple[int, int]:
        """The ``(line, col)`` of ``offset``, both 1-based."""
        index = bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def error(
        self,
        offset: int,
        problem: str,
        *,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> DslSyntaxError:
        """A :class:`DslSyntaxError` located at ``offset``."""
        line, col = self.position(offset)
        return DslSyntaxError(
            problem,
            source=self.source,
            line=line,
            col=col,
            expected=expected,
            found=found,
            hint=hint,
        )


def _unescape(raw: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw)


def tokenize(text: str, source_map: SourceMap) -> list[Token]:
    """Split ``text`` into tokens, dropping whitespace and ``//`` comments.

    Raises:
        DslSyntaxError: an unexpected character or an unterminated string.
    """
    tokens: list[Token] = []
    append = tokens.append
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        if kind == "ws" or kind == "comment":
            continue
        start = match.start()
        if kind == "word":
            append(Token(WORD, match.group(), start))
        elif kind == "punct":
            append(Token(PUNCT, match.group(), start))
        elif kind == "string":
            raw = match.group()[1:-1]
            append(Token(STRING, _unescape(raw) if "\\" in raw else raw, start))
        elif kind == "num":
            value = match.group()
            append(Token(INT if value.isdigit() else NUMWORD, value, start))
        else:
            raise _bad_character(text, start, source_map)
    append(Token(EOF, "", len(text)))
    return tokens


def _bad_character(text: str, offset: int, source_map: SourceMap) -> DslSyntaxError:
    char = text[offset]
    if char == '"':
        rest = text[offset + 1 :]
        trailing = len(rest) - len(rest.rstrip("\\"))
        if trailing % 2 == 1:
            problem = "unterminated string escape: the file ends right after a backslash"
        else:
            problem = "unterminated string: no closing '\"' before the end of the file"
        return source_map.error(
            offset,
            problem,
            expected="'\"'",
            found="end of file",
            hint='close the string with " (write \\" for a quote inside it)',
        )
    if char == "#":
        hint = "comments start with //"
    elif char == "'":
        hint = 'strings use double quotes: "..."'
    elif char == "/":
        hint = "comments start with // (block comments are not supported)"
    else:
        hint = None
    return source_map.error(
        offset,
        f"unexpected character {char!r}",
        found=repr(char),
        hint=hint,
    )


def describe(token: Token) -> str:
    """How a token is named in an error message: ``identifier 'x'``, ``'{'``, ..."""
    if token.kind == EOF:
        return "end of file"
    if token.kind == WORD:
        return f"identifier {token.value!r}"
    if token.kind == STRING:
        shown = token.value if len(token.value) <= 40 else token.value[:37] + "..."
        return f"string {shown!r}"
    if token.kind in (INT, NUMWORD):
        return f"value {token.value}"
    return f"'{token.value}'"
