"""What every ``runkon`` command shares: exit codes, user errors, opening the database,
finding runs, the command to suggest, and plain-text formatting (times, durations);
tables are drawn by ``runkon.cli._table``."""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import runkon
from runkon.cli._table import Column as Column  # re-exported for the commands
from runkon.cli._table import print_table as print_table
from runkon.errors import SchemaVersionError, StoreBackendError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's convention for a process stopped by Ctrl-C

DEFAULT_DB = "runkon.db"
CLI_LEASE_TTL = 10.0
"""Seconds a ``run``/``resume`` process's lease lasts without renewal: how long another
process must wait to take over a run whose process died (``runkon resume`` waits for it)."""


class CliError(Exception):
    """A problem to report in one line (``runkon: message``), then exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def say(text: str = "") -> None:
    """Print a line to stdout at once (progress is read live, e.g. through a pipe)."""
    print(text, flush=True)


def warn(text: str) -> None:
    """Print a line to stderr."""
    print(text, file=sys.stderr, flush=True)


def execute(
    command: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace
) -> int:
    """Run an async command; turn user errors into a message and an exit code.

    ``CliError`` carries its own code; runkon's errors about the user's input (an unknown
    run or gate, an invalid selection, a database that is not runkon's) exit 2; Ctrl-C
    exits 130. Anything else is a bug and keeps its traceback.
    """

    async def main() -> int:
        try:
            return await command(args)
        except BaseExceptionGroup as group:  # raised inside a task group (the engine's)
            leaf = _only_leaf(group)
            if isinstance(leaf, CliError | runkon.RunkonError | KeyboardInterrupt):
                raise leaf from None
            raise

    try:
        return anyio.run(main)
    except CliError as exc:
        warn(f"runkon: {exc.message}")
        return exc.code
    except (runkon.UnknownRunError, runkon.GateError, runkon.DslError) as exc:
        warn(f"runkon: {exc}")
        return EXIT_USAGE
    except (StoreBackendError, SchemaVersionError) as exc:  # --db names no runkon database
        warn(f"runkon: {exc}")
        return EXIT_USAGE
    except runkon.StoreError as exc:  # e.g. the database stayed locked
        warn(f"runkon: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        warn("runkon: interrupted")
        return EXIT_INTERRUPTED


def _only_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception a (nested) group holds, or None if it holds several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


# --------------------------------------------------------------------------- the command


def program() -> str:
    """How the user ran ``runkon``, for the commands printed for them to paste.

    ``runkon`` when that is the command on PATH; the path as typed when it is not (e.g.
    ``.venv/bin/runkon``); ``python -m runkon.cli`` (the interpreter as typed) when run as
    a module; ``runkon`` when neither can be told (``main()`` called from Python).
    """
    argv0 = sys.argv[0] if sys.argv else ""
    started = Path(argv0)
    if started.name == "__main__.py" and started.parent.parts[-2:] == ("runkon", "cli"):
        typed = sys.orig_argv[0] if sys.orig_argv else sys.executable
        return f"{_as_typed(typed)} -m runkon.cli"
    if started.stem == "runkon":  # the console script
        return _as_typed(argv0)
    return "runkon"


def _as_typed(path: str) -> str:
    """``path``'s bare name when PATH finds that name at ``path``, else ``path`` (quoted
    for the shell)."""
    name = os.path.basename(path)
    if name == path:
        return shlex.quote(name)
    found = shutil.which(name)
    if found is not None and os.path.abspath(found) == os.path.abspath(path):
        return shlex.quote(name)
    return shlex.quote(path)


# --------------------------------------------------------------------------- arguments


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=DEFAULT_DB,
        help=f"the SQLite database of runs (default: ./{DEFAULT_DB})",
    )


def default_user() -> str:
    """Who decides: ``$RUNKON_USER``, else the OS user name."""
    user = os.environ.get("RUNKON_USER", "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers) and no $USER
        return "unknown"


# --------------------------------------------------------------------------- database


def _not_a_directory(path: str) -> None:
    if Path(path).is_dir():
        raise CliError(f"--db {path!r} is a directory; pass the database file")


def existing_db(path: str) -> str:
    """``path`` if it is a database file; a usage error (never a new empty file) if not."""
    _not_a_directory(path)
    if not Path(path).exists():
        raise CliError(
            f"no database at {path!r}; start a run with `runkon run FILE --db {path}` "
            "or pass the --db PATH of an existing one"
        )
    return path


@asynccontextmanager
async def open_store(path: str) -> AsyncIterator[runkon.SqliteStore]:
    """The existing SQLite database at ``path``, open."""
    async with runkon.SqliteStore(existing_db(path)) as store:
        yield store


@asynccontextmanager
async def open_engine(
    path: str,
    *,
    create: bool = False,
    actions: Mapping[str, Any] | None = None,
    fallback_action: Any = None,
    workflows: runkon.WorkflowResolver | None = None,
    lease_ttl: float = CLI_LEASE_TTL,
) -> AsyncIterator[runkon.FlowEngine]:
    """A running engine on the SQLite database at ``path`` (created only if ``create``)."""
    if create:
        _not_a_directory(path)
    else:
        existing_db(path)
    engine = runkon.FlowEngine(
        runkon.SqliteStore(path),
        actions=actions,
        fallback_action=fallback_action,
        workflows=workflows,
        lease_ttl=lease_ttl,
        lease_refresh_interval=lease_ttl / 3,
    )
    async with engine:
        yield engine


MIN_PREFIX = 6  # characters of a run id that name the run
RUN_ID_KEEP = 11  # a run id cut to fit a narrow terminal keeps 10 characters and "…"


async def find_run(store: runkon.Store, run_id: str) -> runkon.persistence.RunRecord:
    """The run ``run_id`` names: its full id, or a unique prefix of at least 6 characters.

    Raises:
        CliError: no run, or several runs, match; or ``run_id`` is a shorter prefix.
    """
    try:
        return await store.get_run(run_id)
    except runkon.UnknownRunError:
        pass
    if len(run_id) < MIN_PREFIX:
        raise CliError(
            f"run id prefix {run_id!r} is too short: give the full run id or a unique "
            f"prefix of {MIN_PREFIX}+ characters (list runs with `runkon runs`)"
        )
    prefix = run_id.upper()
    matches = [run for run in await store.list_runs() if run.id.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(f"unknown run {run_id!r}; list runs with `runkon runs`")
    ids = ", ".join(run.id for run in matches[:5])
    raise CliError(f"{run_id!r} matches several runs ({ids}); give more of the id")


# --------------------------------------------------------------------------- formatting


def local_time(moment: datetime | None, *, seconds: bool = True) -> str:
    """``2025-01-31 14:05:09`` in the local time zone ("-" for None)."""
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def clock(moment: datetime) -> str:
    """``14:05:09`` in the local time zone."""
    return moment.astimezone().strftime("%H:%M:%S")


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h10m``, ``3d4h`` ("-" for None)."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def between(start: datetime | None, end: datetime | None) -> str:
    """The duration from ``start`` to ``end`` (to now while ``end`` is None)."""
    if start is None:
        return "-"
    return duration(((end or datetime.now(UTC)) - start).total_seconds())


def time_left(deadline: datetime | None) -> str:
    """``in 59m12s`` / ``passed`` / ``none``."""
    if deadline is None:
        return "none"
    left = (deadline - datetime.now(UTC)).total_seconds()
    return f"in {duration(left)}" if left > 0 else "passed"


def shorten(text: str | None, width: int) -> str:
    """The first line of ``text``, cut to ``width`` characters with ``...``."""
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 3, 1)] + "..."
