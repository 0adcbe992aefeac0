"""The ``Store`` protocol: the persistence contract the engine and the gates rely on.

Every backend passes the same conformance suite (:mod:`runkon.testing`). The rules that
hold for every method:

- **Open before use.** A store is used inside ``async with store:``; any call outside it
  raises :class:`~runkon.errors.StoreClosedError`.
- **Fencing.** Every run-scoped write an engine makes carries the ``generation`` of its
  lease. When it differs from the run's current generation the write raises
  :class:`~runkon.errors.LeaseLostError` and nothing is written. The check and the write
  are one transaction. Decisions that come from people (approve, reject, cancel) are not
  fenced.
- **Events ride along.** Write methods take ``events=``; those events are appended in the
  same transaction as the write, with gap-free per-run ``seq`` numbers, and handed to the
  event listeners (:meth:`Store.add_event_listener`) only after the commit. Event data
  must be JSON (a ``TypeError`` otherwise, and nothing is written); it reads back as
  JSON does (tuples as lists).
- **Finished is final.** A terminal run or step is never changed; asking for it raises
  :class:`~runkon.errors.InvalidTransitionError`. A ``cancelling`` run only moves on to a
  terminal status.
- **Errors are runkon's.** Unknown ids raise :class:`~runkon.errors.UnknownRunError` /
  :class:`~runkon.errors.UnknownStepError`; unreadable rows raise
  :class:`~runkon.errors.CorruptRecordError`; backend failures are mapped to
  :class:`~runkon.errors.StoreError` subclasses. Gate decisions answer with a
  :class:`GateReceipt` instead of raising for unknown or finished gates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

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
    Notification,
    RunRecord,
    RunStatus,
    StepRecord,
    StepUpdate,
    WaitingGate,
)

__all__ = ("EventListener", "NotificationStream", "Store")

EventListener = Callable[[Sequence[EventRecord]], None]
"""Called after each commit that appended events, with those events in ``seq`` order."""


@runtime_checkable
class NotificationStream(Protocol):
    """A subscription to a store's notifications.

    Iterate it with ``async for``; close it with ``async with`` or :meth:`aclose`.
    Entering it (``async with``) waits until the subscription is live for changes made
    by other processes too: read the state you wait on AFTER entering, and no change is
    missed. Iteration ends when the stream or the store is closed.
    """

    def __aiter__(self) -> AsyncIterator[Notification]: ...

    async def __anext__(self) -> Notification: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None:
        """Stop the subscription; pending notifications are dropped."""


@runtime_checkable
class Store(Protocol):
    """An async store of runs, steps, fan-out items, gates, events and leases."""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        """Open the store (connect, apply migrations) and return it."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store, as :meth:`aclose` does."""

    async def aclose(self) -> None:
        """Close the store; notification streams end. Closing twice is harmless."""

    # ------------------------------------------------------------------ runs

    async def create_run(self, new_run: NewRun, *, events: Sequence[NewEvent] = ()) -> RunRecord:
        """Create a run: status ``pending``, generation 0, no lease.

        ``events`` are appended to the new run in the same transaction.

        Raises:
            TypeError: ``inputs`` holds a key or value that is not a string.
        """

    async def get_run(self, run_id: str) -> RunRecord:
        """Return the run.

        Raises:
            UnknownRunError: no run has this id.
        """

    async def list_runs(
        self,
        *,
        statuses: Iterable[RunStatus] | None = None,
        workflow_name: str | None = None,
        parent_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Return runs matching every given filter, newest first.

        ``statuses=None`` means any status (an empty collection matches nothing);
        ``limit=None`` means no limit.
        """

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
        """Set a run's status (fenced) and return the updated run.

        ``waiting`` stores ``blocked_on`` (a JSON object); any other status clears it.
        A terminal status sets ``ended_at`` and ``total_duration_ms`` and notifies
        ``run_finished``. ``result_summary`` and ``error`` are kept when ``None``.

        Raises:
            UnknownRunError: no run has this id.
            LeaseLostError: ``generation`` is not the run's current generation.
            InvalidTransitionError: the run is terminal, or ``cancelling`` and the
                new status is not terminal.
        """

    async def request_cancel(
        self, run_id: str, *, reason: str | None = None, by: str | None = None
    ) -> bool:
        """Ask for a run to be cancelled (not fenced: it comes from outside the engine).

        A compare-and-set: a run that is not terminal becomes ``cancelling``, records
        ``reason`` and ``by``, gets a ``cancellation_requested`` event and a
        ``cancel_requested`` notification. A terminal run is left alone. Asking again
        while ``cancelling`` changes nothing.

        Returns:
            True if the run is now marked for cancellation (by this or an earlier
            request); False if it had already finished.

        Raises:
            UnknownRunError: no run has this id.
        """

    async def is_cancel_requested(self, run_id: str) -> bool:
        """True when the run is ``cancelling`` or ``cancelled``.

        Raises:
            UnknownRunError: no run has this id.
        """

    # ------------------------------------------------------------------ leases

    async def acquire_lease(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Claim (or renew) the run's lease for ``ttl`` seconds.

        The claim succeeds iff the run has no owner, its lease expired, or ``owner``
        already holds it. The generation goes up by one only when the owner changes;
        a renewal by the same owner keeps it.

        Returns:
            The generation to fence writes with, or None if another owner holds a
            live lease.

        Raises:
            UnknownRunError: no run has this id.
        """

    async def refresh_leases(self, leases: Sequence[tuple[str, str, int]], ttl: float) -> set[str]:
        """Renew many leases in one transaction.

        Each entry is ``(run_id, owner, generation)``; it is renewed for ``ttl`` seconds
        iff the run still has that owner and generation (even if the lease expired
        meanwhile, as nobody took it over).

        Returns:
            The ids of runs whose lease is LOST (taken over, released, or the run is
            unknown); the caller must stop working on them.
        """

    async def release_lease(self, run_id: str, owner: str, generation: int) -> bool:
        """Give up the lease if ``owner`` still holds it at ``generation``.

        Returns:
            True if the lease was released; False if it was no longer this owner's.
        """

    async def list_recoverable_runs(self, now: datetime | None = None) -> list[RunRecord]:
        """Runs in an active status whose lease expired or was never taken, oldest first.

        Active statuses are ``pending``, ``running``, ``waiting`` and ``cancelling``.
        ``now`` (aware UTC) defaults to the current time.
        """

    # ------------------------------------------------------------------ steps

    async def insert_step(
        self, new_step: NewStep, *, generation: int, events: Sequence[NewEvent] = ()
    ) -> StepRecord:
        """Record a new step (fenced). ``running``/``waiting`` steps get ``started_at``.

        ``events`` are appended in the same transaction; those whose data has no
        ``step_id`` get the new step's id (so a ``step_started`` event names its step).

        Raises:
            UnknownRunError: the step's run does not exist.
            LeaseLostError: stale ``generation``.
            ValueError: ``new_step.status`` is not pending, running or waiting.
        """

    async def update_step(
        self,
        step_id: str,
        update: StepUpdate,
        *,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> StepRecord:
        """Change a step (fenced) and return it as stored.

        Raises:
            UnknownStepError: no step has this id.
            LeaseLostError: stale ``generation``.
            InvalidTransitionError: the step is already terminal; it is left unchanged.
        """

    async def get_step(self, step_id: str) -> StepRecord:
        """Return the step.

        Raises:
            UnknownStepError: no step has this id.
        """

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """Return the run's steps ordered by position, then by insertion.

        Raises:
            UnknownRunError: no run has this id.
        """

    async def get_step_output(self, step_id: str) -> CapturedOutput | None:
        """Return the stdout/stderr captured for the step (``StepUpdate.output``), or
        None when none was stored.

        Raises:
            UnknownStepError: no step has this id.
        """

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
        """Record foreach items for a step (fenced), idempotently.

        An item whose ``(item_type, item_id)`` the step already has is not inserted
        again: the EXISTING row is returned in its place. Results follow ``items``.

        Raises:
            UnknownStepError: the step does not exist in ``run_id``.
            LeaseLostError: stale ``generation``.
            TypeError: an item's ``context`` is not a map of strings; nothing is written.
        """

    async def update_fan_out_items(
        self,
        updates: Sequence[tuple[str, FanOutItemUpdate]],
        *,
        run_id: str,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> list[FanOutItemRecord]:
        """Apply ``(row_id, update)`` pairs in one transaction (fenced); all or nothing.

        Raises:
            UnknownFanOutItemError: a row does not exist in ``run_id``; nothing changes.
            LeaseLostError: stale ``generation``.
        """

    async def get_fan_out_items(
        self, step_id: str, status: FanOutItemStatus | None = None
    ) -> list[FanOutItemRecord]:
        """Return the step's items in insertion order, optionally only those in ``status``.

        Raises:
            UnknownStepError: no step has this id.
        """

    # ------------------------------------------------------------------ gates

    async def open_gate(
        self, new_gate: NewGate, *, generation: int, events: Sequence[NewEvent] = ()
    ) -> GateRecord:
        """Insert a gate step as ``waiting`` and block the run on it (fenced), atomically.

        The run becomes ``waiting`` with ``blocked_on`` describing the gate, unless it
        is ``cancelling`` (then only the gate is inserted).

        Raises:
            UnknownRunError: the run does not exist.
            LeaseLostError: stale ``generation``.
            InvalidTransitionError: the run is terminal.
            ValueError: ``min_approvals < 1`` or duplicate option values.
        """

    async def approve_gate(
        self,
        step_id: str,
        *,
        by: str,
        feedback: str | None = None,
        selections: Sequence[str] | None = None,
        decisive: bool = False,
    ) -> GateReceipt:
        """Record ``by``'s approval; resolve the gate once it has enough approvers.

        ``decisive=True`` resolves it with this approval alone, whatever the quorum: for
        a ``GateResolver`` that has counted the approvals itself (e.g. PR reviews).

        Each distinct approver counts once: approving again answers
        ``already_approved`` and changes nothing (the first approval, with its feedback
        and selections, stands). The approval that reaches ``min_approvals`` resolves
        the gate by one compare-and-set ``waiting`` -> ``completed``, together with a
        ``gate_resolved`` event and a ``gate_decided`` notification; its run goes from
        ``waiting`` back to ``running`` if no other gate of the run still waits (a
        ``cancelling`` run stays so). Earlier approvals answer ``approval_recorded`` and
        append a ``gate_approval_recorded`` event. The decided gate's ``selections``
        combine all its approvers' selections (their union in approval order, each value
        once) and its ``feedback`` joins theirs, one line each.

        The gate's deadline is enforced here, on the store's clock: at or after it the
        answer is ``deadline_passed`` (with the deadline) and nothing is written; the
        gate is left for its run to time out (its ``on_timeout`` path).

        Raises:
            InvalidSelectionError: ``selections`` are not among the gate's options (or it
                has none); checked before anything is written, after the gate is known
                to be waiting.
        """

    async def reject_gate(
        self, step_id: str, *, by: str, feedback: str | None = None
    ) -> GateReceipt:
        """Resolve the gate as rejected (``waiting`` -> ``failed``) in one compare-and-set.

        Same transaction, event, notification and deadline rules as
        :meth:`approve_gate`; one rejection decides, whatever the quorum.
        """

    async def time_out_gate(self, step_id: str, *, generation: int) -> GateReceipt:
        """Resolve the gate as timed out (``waiting`` -> ``timed_out``), fenced.

        Uses the same compare-and-set as approvals: if a decision won the race, the
        receipt says ``already_resolved`` and the decision stands. Appends a
        ``gate_timed_out`` event.

        Raises:
            LeaseLostError: stale ``generation`` (checked before the gate's state).
        """

    async def cancel_gate(
        self,
        step_id: str,
        *,
        generation: int,
        by: str | None = None,
        reason: str | None = None,
    ) -> GateReceipt:
        """Close a waiting gate because its run is being cancelled, fenced.

        Nobody decided: the gate is resolved ``cancelled`` (its step ``failed`` with the
        marker ``cancelled``, as the canonical schema has no cancelled step status) by
        the same compare-and-set as approvals, with a ``gate_resolved`` event whose
        ``decision`` is ``cancelled``. ``by`` (who asked for the cancellation) and
        ``reason`` are kept as the gate's ``decided_by`` and ``feedback``. If a decision
        won the race, the receipt says ``already_resolved`` and the decision stands.

        Raises:
            LeaseLostError: stale ``generation`` (checked before the gate's state).
        """

    async def get_gate(self, step_id: str) -> GateRecord:
        """Return the gate with its decision and approvals.

        Raises:
            UnknownStepError: no gate step has this id.
        """

    async def list_waiting_gates(
        self,
        *,
        run_id: str | None = None,
        workflow_name: str | None = None,
        gate_type: str | None = None,
        limit: int | None = None,
    ) -> list[WaitingGate]:
        """Gates waiting for a decision across runs, earliest deadline first.

        Gates without a deadline come last; ties keep the order the gates were opened.
        """

    # ------------------------------------------------------------------ events

    async def append_events(
        self, run_id: str, events: Sequence[NewEvent], *, generation: int
    ) -> list[EventRecord]:
        """Append events to a run (fenced) and return them as stored.

        Raises:
            UnknownRunError: no run has this id.
            LeaseLostError: stale ``generation``.
        """

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """Return the run's events with ``seq > after_seq``, in ``seq`` order.

        Raises:
            UnknownRunError: no run has this id.
        """

    async def wait_for_events(
        self, run_id: str, after_seq: int, *, timeout: float | None = None
    ) -> bool:
        """Wait until the run has an event with ``seq > after_seq``; True then (at once
        if one is stored already), False if ``timeout`` seconds pass first.

        Events committed through this store object wake the waiter at once; a store
        shared between processes (SQLite) also sees other processes' events, through its
        change feed (one query per interval for all watched runs, not one per waiter).

        Raises:
            UnknownRunError: no such run.
        """

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` after every commit of this store that appended events.

        The listener runs synchronously in the writer's task, right after the commit,
        with that transaction's events; an exception it raises is logged and dropped.
        Events written by other processes are not seen here (read them with
        :meth:`read_events`).

        Returns:
            A function that removes the listener.
        """

    # ------------------------------------------------------------------ notifications

    def notifications(self) -> NotificationStream:
        """Subscribe to notifications: gates decided, runs cancelled or finished.

        The subscription starts at this call for changes made through this store
        object, and delivers them at once on commit. Changes made by other processes
        (SQLite: other connections) are delivered by one change-feed query per store
        per interval, from the moment the stream is entered (``async with``) or first
        iterated.
        """
        ...
