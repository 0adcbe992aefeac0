"""Tables and statuses for the terminal, and plain text for scripts.

On a terminal (stdout is a TTY) a table is laid out to the terminal's width with rich:
each row is one line, cells that do not fit are cut with ``…`` (never wrapped), the
columns marked ``shrink`` give up width first; statuses get a symbol (``✓ completed``)
and, unless ``NO_COLOR`` is set (https://no-color.org) or ``TERM=dumb``, a colour, as do
the progress lines of ``run`` and ``resume``.

Piped or redirected, the output is plain and stable for scripts: no colour, no symbols,
no cutting to a width; columns aligned with two spaces, one line per row.

rich is imported only when something is drawn on a terminal, so that ``runkon``'s
start-up (and every piped command) does not pay for it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

_BREAKS = re.compile(r"\s*[^\S ]\s*")  # whitespace other than plain spaces, and around it
GAP = 2  # spaces between columns
SHRINK_FLOOR = 8  # a shrinking column keeps at least this many characters (or its header)
TIGHT = 3  # on a very narrow terminal, columns (but statuses) go down to this width

# status -> (symbol, rich style) on a terminal
STATUS_LOOK: dict[str, tuple[str, str]] = {
    "completed": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "timed_out": ("✗", "bold red"),
    "cancelled": ("⊘", "yellow"),
    "cancelling": ("⊘", "yellow"),
    "running": ("●", "cyan"),
    "waiting": ("◇", "bold magenta"),
    "pending": ("○", "dim"),
    "needs_resume": ("◌", "yellow"),
    "stalled": ("◌", "yellow"),
    "skipped": ("↷", "dim"),
}


@dataclass(frozen=True, slots=True)
class Column:
    """A column of :func:`print_table`.

    Attributes:
        header: the column's heading.
        shrink: on a terminal too narrow for the table, this column gives up width
            first (its long cells are cut with ``…``); other columns keep theirs as
            long as they can (run ids stay whole to be copied).
        limit: cells longer than this are cut in every output (``...`` when piped).
        status: the cells are statuses: on a terminal, shown with a symbol and colour.
        keep: on a terminal too narrow even when the ``shrink`` columns gave up their
            width, every column is cut, widest first, down to this many characters (if
            not given: a status column's widest cell, another column's header); then
            the columns without a ``keep``, statuses aside, down to 3 characters; only
            then further.
    """

    header: str
    shrink: bool = False
    limit: int | None = None
    status: bool = False
    keep: int | None = None


@dataclass(frozen=True, slots=True)
class Terminal:
    """What stdout can show: its width, colour, and characters beyond ASCII."""

    width: int
    colour: bool
    unicode: bool


def terminal() -> Terminal | None:
    """The terminal stdout writes to, or None when stdout is piped or redirected."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced or closed stdout
        return None
    width = shutil.get_terminal_size(fallback=(80, 24)).columns
    colour = not os.environ.get("NO_COLOR") and os.environ.get("TERM", "") != "dumb"
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return Terminal(width=max(width, 20), colour=colour, unicode=encoding == "utf8")


def one_line(text: str | None) -> str:
    """``text`` as one line: a newline or tab (and the whitespace around it) becomes one
    space, and control characters are shown escaped (``\\x1b``), never sent to the
    terminal."""
    if not text:
        return ""
    if not text.isprintable():
        text = _BREAKS.sub(" ", text)
        text = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return text


def cut(text: str, width: int, ellipsis: str = "...") -> str:
    """``text`` cut to ``width`` characters, ending with ``ellipsis`` when cut."""
    if len(text) <= width:
        return text
    return text[: max(width - len(ellipsis), 1)] + ellipsis


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Rows aligned in columns under their headers (no trailing spaces): the piped form."""
    body = [list(row) for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [list(headers), *body]:
        cells = [cell.ljust(widths[index]) for index, cell in enumerate(row)]
        lines.append((" " * GAP).join(cells).rstrip())
    return lines


def print_table(columns: Sequence[Column | str], rows: Iterable[Sequence[str]]) -> None:
    """Print ``rows`` under ``columns``: fitted to the terminal, or plain when piped.

    Args:
        columns: the columns, a plain string for a column with no special behaviour.
        rows: one sequence of cell texts per row, in column order.
    """
    specs = [Column(column) if isinstance(column, str) else column for column in columns]
    cells = [
        [
            cut(one_line(cell), spec.limit) if spec.limit else one_line(cell)
            for spec, cell in zip(specs, row, strict=True)
        ]
        for row in rows
    ]
    screen = terminal()
    if screen is None:
        for line in plain_table([spec.header for spec in specs], cells):
            print(line, flush=True)
        return
    _print_fitted(specs, cells, screen)


def _print_fitted(specs: Sequence[Column], rows: list[list[str]], screen: Terminal) -> None:
    from rich.text import Text  # rich only for a terminal

    header = [Text(spec.header, style="bold" if screen.colour else "") for spec in specs]
    shown = [
        [
            status_text(cell, screen) if spec.status else Text(cell)
            for spec, cell in zip(specs, row, strict=True)
        ]
        for row in rows
    ]
    natural = [
        max(cells[index].cell_len for cells in [header, *shown]) for index in range(len(specs))
    ]
    floors = [
        min(width, max(len(spec.header), SHRINK_FLOOR)) if spec.shrink else width
        for spec, width in zip(specs, natural, strict=True)
    ]
    keeps = [
        min(width, spec.keep or (width if spec.status else len(spec.header)))
        for spec, width in zip(specs, natural, strict=True)
    ]
    tight = [  # then: statuses whole, other columns down to their keep, or 2 characters and "…"
        width if spec.status else min(width, spec.keep or TIGHT)
        for spec, width in zip(specs, natural, strict=True)
    ]
    room = screen.width - GAP * (len(specs) - 1)
    widths = fit_widths(natural, [floors, keeps, tight], room)
    console = _console(screen)
    for cells in [header, *shown]:
        line = Text(" " * GAP).join(
            _fit_cell(cell, width, screen) for cell, width in zip(cells, widths, strict=True)
        )
        line.rstrip()
        console.print(line, no_wrap=True, overflow="crop", crop=True)


def _fit_cell(cell: Text, width: int, screen: Terminal) -> Text:
    """``cell`` cut to ``width`` terminal cells (with an ellipsis) and padded to it."""
    from rich.text import Text

    if not screen.unicode:  # rich cuts with "…", which this terminal cannot show
        cell = Text(cut(cell.plain, width), style=cell.style)
    cell = cell.copy()
    cell.truncate(width, overflow="ellipsis", pad=True)
    return cell


def fit_widths(natural: Sequence[int], floors: Sequence[Sequence[int]], room: int) -> list[int]:
    """Column widths whose sum is at most ``room`` (when it can be: each column keeps at
    least one character).

    The widest column above its floor gives up a character, again and again, until the
    widths fit; when every column is at its floor, the next floors apply, then 1.
    """
    widths = list(natural)
    for floor in [*floors, [1] * len(widths)]:
        while sum(widths) > room:
            above = [index for index, width in enumerate(widths) if width > floor[index]]
            if not above:
                break
            widest = max(above, key=lambda index: widths[index])
            widths[widest] -= 1
    return widths


def status_text(status: str, screen: Terminal) -> Text:
    """``status`` for a terminal: ``✓ completed`` in green, ``✗ failed`` in red, ..."""
    from rich.text import Text

    symbol, style = STATUS_LOOK.get(status, ("", ""))
    if symbol and screen.unicode:
        status = f"{symbol} {status}"
    return Text(status, style=style if screen.colour else "")


def print_fields(fields: Sequence[tuple[str, str]], *, status_field: str = "status") -> None:
    """``name  value`` lines, the names aligned.

    On a terminal, a value too long for it wraps between words onto lines indented under
    the values (a single word too long for a line is cut with ``…``), and the
    ``status_field``'s value (which starts with a status word) gets a symbol and colour.
    Piped, each field is one line. Control characters are shown escaped either way.
    """
    width = max((len(name) for name, _ in fields), default=0)
    screen = terminal()
    if screen is None:
        for name, value in fields:
            print(f"{name.ljust(width)}  {one_line(value)}", flush=True)
        return
    from rich.text import Text

    console = _console(screen)
    indent = width + GAP
    for name, value in fields:
        text = Text(one_line(value))
        if name == status_field:
            word, space, rest = text.plain.partition(" ")
            text = status_text(word, screen)
            text.append(space + rest)
        room = max(screen.width - indent, SHRINK_FLOOR)
        lines = text.wrap(console, room, overflow="ellipsis")  # a word too long is cut
        for number, part in enumerate(lines):
            line = Text((name if number == 0 else "").ljust(indent))
            line.append_text(part)
            line.rstrip()
            console.print(line, no_wrap=True, overflow="crop", crop=True)


def print_line(text: str, status: str | None = None) -> None:
    """Print one line of progress (control characters escaped, see :func:`one_line`);
    on a terminal with colour, in the colour of ``status`` (e.g. ``"failed"``: red)."""
    text = one_line(text)
    screen = terminal()
    style = STATUS_LOOK.get(status or "", ("", ""))[1]
    if screen is None or not screen.colour or not style:
        print(text, flush=True)
        return
    from rich.text import Text

    _console(screen).print(Text(text, style=style), soft_wrap=True)


def _console(screen: Terminal) -> Console:
    from rich.console import Console

    return Console(
        file=sys.stdout,
        width=screen.width,
        force_terminal=True,
        color_system="auto" if screen.colour else None,
        no_color=not screen.colour,
        highlight=False,
        markup=False,
        emoji=False,
    )
