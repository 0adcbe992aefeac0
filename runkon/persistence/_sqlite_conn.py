"""The SQLite store's two connections, and the mapping of ``sqlite3`` errors.

A store call is one function of :mod:`._sqlite_ops` or :mod:`._sqlite_gates` (a whole
transaction). It runs:

1. **Inline first**, on the event loop thread, through a plain ``sqlite3`` connection
   whose busy timeout is 0 and whose automatic checkpoints are off. Such a call never
   waits: it either gets the lock at once and finishes in about 100 µs (WAL with
   ``synchronous=NORMAL`` does not sync on commit), or fails at once with "busy".
2. **Otherwise on aiosqlite's worker thread**, through the second connection, which waits
   up to ``busy_timeout`` for the lock. The transaction restarts from the top, so
   nothing of the failed inline attempt survives (ids and times are made afresh).

Why not always the thread: a thread hop costs 50-150 µs each way on an idle machine,
twice per call, which capped sequential durable writes near the 2,000/s target. Why not
always inline: waiting for another process's lock, and checkpoints (which sync to disk),
must not block the loop — those go to the worker. The worker connection also runs the
change feed and, after every ``CHECKPOINT_EVERY`` writes, a passive checkpoint; calls made
meanwhile queue behind it, so it copies every page and the next write rewinds the WAL
(with writes landing during the copy, the WAL would never rewind and would grow without
bound).

The worker hook is aiosqlite's ``Connection._execute`` (what its own methods call): it
runs a callable on the connection's thread, so a whole transaction costs one hop instead
of one per statement.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import aiosqlite
import anyio
import anyio.to_thread

from runkon._log import get_logger
from runkon.errors import (
    DatabaseLockedError,
    DatabaseReadOnlyError,
    StoreBackendError,
    StoreClosedError,
    StoreError,
)

__all__ = ("CHECKPOINT_EVERY", "Connections", "map_error")

_P = ParamSpec("_P")
_T = TypeVar("_T")
_log = get_logger("runkon.persistence")

WAL_HOLD_BYTES = 8 * 1024 * 1024
"""A WAL larger than this makes writes wait for the running checkpoint (so it rewinds)."""

WAL_CHECK_EVERY = 50
"""Inline writes between two looks at the WAL's size while a checkpoint runs."""

CHECKPOINT_EVERY = 500
"""Inline writes between two passive checkpoints on the worker (about 2,500 WAL pages)."""


class Connections:
    """The inline and the worker connection of one store, opened and closed together.

    Args:
        path: the database file (``":memory:"`` runs everything on the worker, as two
            connections would open two different databases).
        busy_timeout: seconds the worker waits for another connection's lock.
        name: how error messages name the store.
    """

    def __init__(self, path: str, busy_timeout: float, name: str) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._name = name
        self._worker: aiosqlite.Connection | None = None
        self._worker_conn: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_writes = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._worker_calls = 0  # calls of run() now on the worker (or its queue)
        self._hold_writes = False  # the running checkpoint must finish before any write
        self._waiters: deque[asyncio.Future[None]] = deque()  # calls waiting to go inline

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._worker is not None

    async def open(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        """Connect both connections; ``prepare`` (schema, migrations) runs on the worker.

        Raises:
            StoreError: the database cannot be opened (mapped from ``sqlite3``).
        """
        # Connect first, then hand the connection to aiosqlite: when aiosqlite's own
        # connect fails it leaves its thread to stop unawaited, which then calls into a
        # closed event loop.
        try:
            conn = await anyio.to_thread.run_sync(_connect, self._path, self._busy_timeout)
        except sqlite3.Error as exc:
            raise map_error(self._path, exc) from exc
        worker = await aiosqlite.Connection(lambda: conn, iter_chunk_size=64)
        self._worker, self._worker_conn = worker, worker._conn
        try:
            await self.on_worker(_configure, int(self._busy_timeout * 1000), True)
            await self.on_worker(prepare)
            if self._path != ":memory:":
                self._inline = await self.on_worker(_connect_inline, self._path)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close both connections (idempotent); a running checkpoint is stopped."""
        worker, self._worker, self._worker_conn = self._worker, None, None
        inline, self._inline = self._inline, None
        checkpoint, self._checkpoint = self._checkpoint, None
        if checkpoint is not None:
            checkpoint.cancel()
        waiters, self._waiters = self._waiters, deque()
        for turn in waiters:  # they retry, find the store closed, and say so
            if not turn.done():
                turn.set_result(None)
        with anyio.CancelScope(shield=True):
            try:
                if inline is not None:
                    inline.close()
                if worker is not None:
                    await worker.close()
            except sqlite3.Error as exc:
                raise map_error(self._path, exc) from exc
            finally:
                if checkpoint is not None:
                    await asyncio.wait([checkpoint])

    async def run(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(connection, ...)``: inline if the lock is free, else on the worker.

        Writes go on while a passive checkpoint copies pages — unless the WAL has grown
        past ``WAL_HOLD_BYTES``: a checkpoint only lets the next write rewind the WAL if
        no write lands while it runs, so then calls wait for it.
        """
        inline = self._inline
        while inline is not None and self._blocked():
            # Our own worker holds (or queues for) the lock, or a checkpoint must finish: an
            # inline attempt would only fail, and joining the worker's queue would keep it
            # busy for as long as calls keep coming. Wait in line, then go inline.
            await self._wait_turn()
            inline = self._inline
        try:
            return await self._run_now(inline, fn, *args, **kwargs)
        finally:
            self._wake_next()  # one waiter at a time: no stampede of thousands of tasks

    async def _run_now(
        self,
        inline: sqlite3.Connection | None,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        if inline is not None:
            changes = inline.total_changes
            try:
                result = fn(inline, *args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise map_error(self._path, exc) from exc
            except sqlite3.Error as exc:
                raise map_error(self._path, exc) from exc
            else:
                if inline.total_changes != changes:
                    self._count_write()
                return result
        self._worker_calls += 1
        try:
            return await self.on_worker(fn, *args, **kwargs)
        finally:
            self._worker_calls -= 1
            self._maybe_idle()

    def _blocked(self) -> bool:
        return bool(self._worker_calls) or (self._checkpoint is not None and self._hold_writes)

    async def _wait_turn(self) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._wake_next()  # woken, then cancelled: pass the turn on
            else:
                self._waiters.remove(turn)
            raise

    def _wake_next(self) -> None:
        """Let the longest-waiting call go, unless the calls must still wait."""
        while self._waiters and not self._blocked() and self._inline is not None:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    def _maybe_idle(self) -> None:
        """Once nothing of ours runs on the worker, let the waiting calls go in turn."""
        self._wake_next()

    def _count_write(self) -> None:
        """Count an inline write; start a passive checkpoint on the worker when due.

        (The worker connection checkpoints its own writes: its autocheckpoint is on.)
        """
        self._inline_writes += 1
        if self._inline_writes % WAL_CHECK_EVERY == 0 and self._checkpoint is not None:
            self._hold_writes = self._hold_writes or self._wal_bytes() > WAL_HOLD_BYTES
        if self._inline_writes >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._inline_writes = 0
            self._hold_writes = self._wal_bytes() > WAL_HOLD_BYTES
            self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint())

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self._path}-wal").st_size
        except OSError:
            return 0

    async def _run_checkpoint(self) -> None:
        try:
            await self.poll_on_worker(_checkpoint)
        except StoreClosedError:
            pass
        except StoreError:
            _log.exception("checkpoint_failed", path=self._path)
        finally:
            self._checkpoint = None
            self._hold_writes = False
            self._maybe_idle()

    async def on_worker(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(connection, ...)`` on the worker thread, shielded from cancellation.

        The caller's cancellation waits until the call is done, so a committed write is
        never abandoned before its events and notifications are handed out.
        """
        with anyio.CancelScope(shield=True):
            result = await self.poll_on_worker(fn, *args, **kwargs)
        return result

    async def poll_on_worker(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run ``fn(connection, ...)`` on the worker thread; cancellable (for reads)."""
        worker, conn = self._worker, self._worker_conn
        if worker is None or conn is None:
            raise StoreClosedError(self._name)
        try:
            result: _T = await _execute(worker)(fn, conn, *args, **kwargs)
        except sqlite3.Error as exc:
            raise map_error(self._path, exc) from exc
        except ValueError as exc:
            if self._worker is None:  # aiosqlite's "Connection closed": close() ran meanwhile
                raise StoreClosedError(self._name) from exc
            raise
        return result


def _execute(worker: aiosqlite.Connection) -> Callable[..., Awaitable[Any]]:
    """aiosqlite's "run this callable on the connection's thread" (see the module notes)."""
    return cast("Callable[..., Awaitable[Any]]", worker._execute)


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int, checkpoints: bool) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if not checkpoints:
        conn.execute("PRAGMA wal_autocheckpoint = 0")


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )


def _connect_inline(_worker_conn: sqlite3.Connection, path: str) -> sqlite3.Connection:
    """Open the inline connection (on the worker thread: opening a file may block)."""
    conn = _connect(path, 0)
    try:
        _configure(conn, 0, False)
    except BaseException:
        conn.close()
        raise
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _is_busy(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def map_error(path: str, exc: sqlite3.Error) -> StoreError:
    """Translate a ``sqlite3`` error into runkon's error for the same problem."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = str(exc) or name or type(exc).__name__
    if _is_busy(exc):
        return DatabaseLockedError(path, detail)
    if name.startswith(("SQLITE_READONLY", "SQLITE_PERM")):
        return DatabaseReadOnlyError(path, detail)
    if name.startswith("SQLITE_CANTOPEN") and not _writable(path):
        return DatabaseReadOnlyError(path, detail)
    return StoreBackendError(path, detail)


def _writable(path: str) -> bool:
    """Whether this process may write the database file and create files beside it."""
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return False
    return os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
