"""``SqliteStore``: the embedded backend (aiosqlite, WAL), for the CLI and servers.

Design notes:

- **One transaction per call.** Every store call is one function of :mod:`._sqlite_ops` or
  :mod:`._sqlite_gates`,
  run inline when the database lock is free and on aiosqlite's worker thread when it is
  not (see :mod:`._sqlite_conn` for why and how).
- **Writes are not abandoned.** A call on the worker is shielded from cancellation, so a
  committed write always reaches its event listeners and notification subscribers; the
  caller sees the cancellation right after.
- **Change feed.** While anybody listens to :meth:`SqliteStore.notifications`, one task
  per store polls every ``notify_interval``: ``PRAGMA data_version`` first (it changes
  only when another connection commits), then one read of ``runkon_notifications`` for
  rows after the last one seen. Rows this store wrote itself are skipped (they were
  delivered at commit).
- **Errors.** ``sqlite3`` errors are mapped at the boundary: busy or locked ->
  :class:`DatabaseLockedError`, read-only -> :class:`DatabaseReadOnlyError`, anything
  else -> :class:`StoreBackendError`; the original is chained as ``__cause__``.

The store is asyncio-only, as aiosqlite is.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from runkon._log import get_logger
from runkon.errors import StoreClosedError, StoreError
from runkon.persistence import _sqlite_gates as gates
from runkon.persistence import _sqlite_ops as ops
from runkon.persistence._event_watch import EventWatch
from runkon.persistence._ids import new_ulid
from runkon.persistence._notify import EventListeners, NotificationHub, Subscription
from runkon.persistence._protocol import EventListener
from runkon.persistence._records import (
    CapturedOutput,
    EventRecord,
    FanOutItemRecord,
    FanOutItemStatus,
    FanOutItemUpdate,
    GateReceipt,
    GateRecord,
    NewEvent,
    NewFanOutItem,
    NewGate,
    NewRun,
    NewStep,
    RunRecord,
    RunStatus,
    StepRecord,
    StepUpdate,
    WaitingGate,
)
from runkon.persistence._sqlite_conn import Connections
from runkon.persistence._sqlite_tx import Committed
from runkon.persistence._time import truncate_ms, utc_now

__all__ = ("SqliteStore",)

_P = ParamSpec("_P")
_T = TypeVar("_T")
_log = get_logger("runkon.persistence")


class SqliteStore:
    """A :class:`~runkon.persistence.Store` in a SQLite file (WAL mode).

    Open it with ``async with SqliteStore("runs.db") as store:``. Opening creates the
    file if needed, creates the canonical tables if missing and applies runkon's
    migrations, so a database created by runkon-flow (canonical schema only) works as is.
    Several processes may share one file; notifications cross between them through the
    change feed.

    Args:
        path: the database file.
        busy_timeout: seconds a write waits for another connection's lock before
            :class:`~runkon.errors.DatabaseLockedError`. While one call of this store
            waits, its other calls that need the lock queue behind it.
        notify_interval: seconds between change-feed polls while anybody listens.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        notify_interval: float = 0.05,
    ) -> None:
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._notify_interval = notify_interval
        self._conns = Connections(self._path, busy_timeout, repr(self))
        self._origin = new_ulid()
        self._listeners = EventListeners()
        self._watch = EventWatch()
        self._watch_seqs: dict[str, int] = {}  # watched run -> last seq the feed saw
        self._listeners.add(self._watch.on_events)
        self._hub = NotificationHub(on_active=self._feed_active, ready=self._feed_ready)
        self._feed_task: asyncio.Task[None] | None = None
        self._feed_started = asyncio.Event()

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r})"

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._conns.is_open:
            raise RuntimeError(f"{self!r} is already open")
        await self._conns.open(functools.partial(ops.prepare, path=self._path))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the store: notification streams end, the connections close."""
        feed = self._feed_task
        self._hub.close()
        self._watch.wake_all()
        self._stop_feed()
        await self._conns.close()
        if feed is not None:
            await asyncio.wait([feed])  # it was cancelled; let it finish before we return

    async def _call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run a read, or a write with nothing to hand out (leases)."""
        return await self._conns.run(fn, *args, **kwargs)

    async def _write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, _P], Committed[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run a write and hand its events and notifications out after the commit."""
        committed = await self._conns.run(fn, *args, **kwargs)
        if committed.events:
            self._listeners.publish(committed.events)
        for note in committed.notes:
            self._hub.publish(note)
        return committed.result

    # ------------------------------------------------------------------ runs

    async def create_run(self, new_run: NewRun, *, events: Sequence[NewEvent] = ()) -> RunRecord:
        """Create a ``pending`` run at generation 0 (see ``Store.create_run``)."""
        return await self._write(ops.create_run, new_run, events)

    async def get_run(self, run_id: str) -> RunRecord:
        """Return the run (see ``Store.get_run``)."""
        return await self._call(ops.get_run, run_id)

    async def list_runs(
        self,
        *,
        statuses: Iterable[RunStatus] | None = None,
        workflow_name: str | None = None,
        parent_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter, newest first (see ``Store.list_runs``)."""
        wanted = None if statuses is None else sorted({RunStatus(status) for status in statuses})
        return await self._call(ops.list_runs, wanted, workflow_name, parent_run_id, limit)

    async def set_run_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        generation: int,
        result_summary: str | None = None,
        error: str | None = None,
        blocked_on: Mapping[str, Any] | None = None,
        events: Sequence[NewEvent] = (),
    ) -> RunRecord:
        """Set the run's status, fenced (see ``Store.set_run_status``)."""
        return await self._write(
            ops.set_run_status,
            self._origin,
            run_id,
            RunStatus(status),
            generation,
            result_summary,
            error,
            blocked_on,
            events,
        )

    async def request_cancel(
        self, run_id: str, *, reason: str | None = None, by: str | None = None
    ) -> bool:
        """Mark the run ``cancelling`` unless it finished (see ``Store.request_cancel``)."""
        return await self._write(ops.request_cancel, self._origin, run_id, reason, by)

    async def is_cancel_requested(self, run_id: str) -> bool:
        """True when the run is ``cancelling`` or ``cancelled``."""
        return await self._call(ops.is_cancel_requested, run_id)

    # ------------------------------------------------------------------ leases

    async def acquire_lease(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Claim or renew the run's lease (see ``Store.acquire_lease``)."""
        return await self._call(ops.acquire_lease, run_id, owner, ttl)

    async def refresh_leases(self, leases: Sequence[tuple[str, str, int]], ttl: float) -> set[str]:
        """Renew leases still held, in one transaction; return the lost run ids."""
        return await self._call(ops.refresh_leases, leases, ttl)

    async def release_lease(self, run_id: str, owner: str, generation: int) -> bool:
        """Give up the lease if ``owner`` still holds it at ``generation``."""
        return await self._call(ops.release_lease, run_id, owner, generation)

    async def list_recoverable_runs(self, now: datetime | None = None) -> list[RunRecord]:
        """Active runs whose lease expired or was never taken, oldest first."""
        moment = utc_now() if now is None else truncate_ms(now)
        return await self._call(ops.list_recoverable_runs, moment)

    # ------------------------------------------------------------------ steps

    async def insert_step(
        self, new_step: NewStep, *, generation: int, events: Sequence[NewEvent] = ()
    ) -> StepRecord:
        """Record a new step, fenced (see ``Store.insert_step``)."""
        return await self._write(ops.insert_step, new_step, generation, events)

    async def update_step(
        self,
        step_id: str,
        update: StepUpdate,
        *,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> StepRecord:
        """Change a step, fenced; a terminal step is never changed."""
        return await self._write(ops.update_step, step_id, update, generation, events)

    async def get_step(self, step_id: str) -> StepRecord:
        """Return the step (see ``Store.get_step``)."""
        return await self._call(ops.get_step, step_id)

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps by position, then insertion."""
        return await self._call(ops.get_steps, run_id)

    async def get_step_output(self, step_id: str) -> CapturedOutput | None:
        """The step's captured stdout/stderr (see ``Store.get_step_output``)."""
        return await self._call(ops.get_step_output, step_id)

    # ------------------------------------------------------------------ fan-out

    async def insert_fan_out_items(
        self,
        step_id: str,
        items: Sequence[NewFanOutItem],
        *,
        run_id: str,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> list[FanOutItemRecord]:
        """Record foreach items idempotently, fenced; duplicates return the existing row."""
        return await self._write(
            ops.insert_fan_out_items, step_id, items, run_id, generation, events
        )

    async def update_fan_out_items(
        self,
        updates: Sequence[tuple[str, FanOutItemUpdate]],
        *,
        run_id: str,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> list[FanOutItemRecord]:
        """Apply fan-out item updates all or nothing, fenced."""
        return await self._write(ops.update_fan_out_items, updates, run_id, generation, events)

    async def get_fan_out_items(
        self, step_id: str, status: FanOutItemStatus | None = None
    ) -> list[FanOutItemRecord]:
        """The step's items in insertion order, optionally filtered by status."""
        return await self._call(ops.get_fan_out_items, step_id, status)

    # ------------------------------------------------------------------ gates

    async def open_gate(
        self, new_gate: NewGate, *, generation: int, events: Sequence[NewEvent] = ()
    ) -> GateRecord:
        """Insert a waiting gate step and block its run on it, fenced."""
        return await self._write(gates.open_gate, new_gate, generation, events)

    async def approve_gate(
        self,
        step_id: str,
        *,
        by: str,
        feedback: str | None = None,
        selections: Sequence[str] | None = None,
        decisive: bool = False,
    ) -> GateReceipt:
        """Record an approval; resolve the gate when the quorum is reached (or at once
        when ``decisive``)."""
        return await self._write(
            gates.approve_gate, self._origin, step_id, by, feedback, selections, decisive
        )

    async def reject_gate(
        self, step_id: str, *, by: str, feedback: str | None = None
    ) -> GateReceipt:
        """Resolve the gate as rejected (one compare-and-set)."""
        return await self._write(gates.reject_gate, self._origin, step_id, by, feedback)

    async def time_out_gate(self, step_id: str, *, generation: int) -> GateReceipt:
        """Resolve the gate as timed out, fenced (one compare-and-set)."""
        return await self._write(gates.time_out_gate, self._origin, step_id, generation)

    async def cancel_gate(
        self,
        step_id: str,
        *,
        generation: int,
        by: str | None = None,
        reason: str | None = None,
    ) -> GateReceipt:
        """Close a waiting gate as cancelled, fenced (one compare-and-set)."""
        return await self._write(gates.cancel_gate, self._origin, step_id, generation, by, reason)

    async def get_gate(self, step_id: str) -> GateRecord:
        """Return the gate with its decision and approvals."""
        return await self._call(gates.get_gate, step_id)

    async def list_waiting_gates(
        self,
        *,
        run_id: str | None = None,
        workflow_name: str | None = None,
        gate_type: str | None = None,
        limit: int | None = None,
    ) -> list[WaitingGate]:
        """Waiting gates across runs, earliest deadline first (no deadline last)."""
        return await self._call(gates.list_waiting_gates, run_id, workflow_name, gate_type, limit)

    # ------------------------------------------------------------------ events

    async def append_events(
        self, run_id: str, events: Sequence[NewEvent], *, generation: int
    ) -> list[EventRecord]:
        """Append events to a run, fenced; return them as stored."""
        return await self._write(ops.append_events, run_id, events, generation)

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """The run's events after ``after_seq``, in order."""
        return await self._call(ops.read_events, run_id, after_seq, limit)

    async def wait_for_events(
        self, run_id: str, after_seq: int, *, timeout: float | None = None
    ) -> bool:
        """Wait for the run's next events, this process's or another's (see
        ``Store.wait_for_events``); the change feed watches every waited-on run in one
        query per poll, and only when the database changed."""

        async def last_seq() -> int:
            return await self._call(ops.last_event_seq, run_id)

        if await last_seq() > after_seq:  # (also: unknown run, closed store)
            return True
        with self._hub.hold():
            await self._feed_ready()
            return await self._watch.wait(run_id, after_seq, last_seq, timeout)

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with each committed batch of events; returns the remover."""
        return self._listeners.add(listener)

    # ------------------------------------------------------------------ notifications

    def notifications(self) -> Subscription:
        """Subscribe to notifications: this store's at commit, others' via the change feed."""
        if not self._conns.is_open:
            raise StoreClosedError(repr(self))
        return self._hub.subscribe()

    def _feed_active(self, active: bool) -> None:
        if active:
            self._feed_started = asyncio.Event()
            self._feed_task = asyncio.get_running_loop().create_task(
                self._feed(self._feed_started), name=f"runkon change feed {self._path}"
            )
        else:
            self._stop_feed()

    def _stop_feed(self) -> None:
        task, self._feed_task = self._feed_task, None
        if task is not None:
            task.cancel()
        self._feed_started.set()  # release anyone waiting for a feed that will not start

    async def _feed_ready(self) -> None:
        await self._feed_started.wait()

    async def _feed(self, started: asyncio.Event) -> None:
        """Poll for other connections' notifications while anybody listens.

        Subscribers wait for the first attempt to read the starting point; if it fails
        (logged), they go ahead and the feed keeps retrying.
        """
        start: tuple[ops.FeedVersions, int] | None = None
        while start is None:
            try:
                start = await self._conns.run(ops.feed_start)
            except StoreClosedError:
                return
            except StoreError:
                _log.exception("change_feed_start_failed", path=self._path)
                started.set()
                await asyncio.sleep(self._notify_interval)
        started.set()
        versions, last_seq = start
        while True:
            await asyncio.sleep(self._notify_interval)
            try:
                # Inline when it can (a pragma, ~10 µs; no thread hop); data_version is
                # per connection, so ``versions`` keeps each connection's own.
                changed, last_seq, notes = await self._conns.run(
                    ops.feed_poll, versions, last_seq, self._origin
                )
            except StoreClosedError:
                return
            except StoreError:
                _log.exception("change_feed_poll_failed", path=self._path)
                continue
            for note in notes:
                self._hub.publish(note)
            if changed and self._watch.watched():
                await self._wake_watched()

    async def _wake_watched(self) -> None:
        """Wake the waiters of watched runs whose last event seq grew (another process
        may have written it; this one's own commits wake them directly too)."""
        watched = self._watch.watched()
        try:
            seqs = await self._conns.run(ops.last_event_seqs, watched)
        except StoreError:
            _log.exception("change_feed_event_check_failed", path=self._path)
            return
        known, self._watch_seqs = self._watch_seqs, {}
        for run_id in watched:
            seq = seqs.get(run_id, 0)
            self._watch_seqs[run_id] = seq
            if seq != known.get(run_id):
                self._watch.wake(run_id)
