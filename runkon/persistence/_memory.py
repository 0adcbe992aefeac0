"""``InMemoryStore``: the zero-dependency reference backend.

Every method runs to completion without awaiting, so on one event loop each call is
atomic: a check and the write it guards can never interleave with another call. Records
are immutable and indexed by id in dicts; a write replaces the record it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from runkon.errors import (
    LeaseLostError,
    StoreClosedError,
    UnknownFanOutItemError,
    UnknownRunError,
    UnknownStepError,
)
from runkon.persistence import _rules as rules
from runkon.persistence._event_watch import EventWatch
from runkon.persistence._ids import new_ulid
from runkon.persistence._notify import EventListeners, NotificationHub, Subscription
from runkon.persistence._protocol import EventListener
from runkon.persistence._records import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    CapturedOutput,
    EventRecord,
    FanOutItemRecord,
    FanOutItemStatus,
    FanOutItemUpdate,
    GateApproval,
    GateDecision,
    GateOption,
    GateReceipt,
    GateRecord,
    NewEvent,
    NewFanOutItem,
    NewGate,
    NewRun,
    NewStep,
    Notification,
    NotificationKind,
    ReceiptOutcome,
    RunRecord,
    RunStatus,
    StepRecord,
    StepRole,
    StepStatus,
    StepUpdate,
    WaitingGate,
    evolve,
)
from runkon.persistence._time import seconds_from, truncate_ms, utc_now

__all__ = ("InMemoryStore",)

_GATE = StepRole.GATE  # enum member lookups cost ~0.15 µs on 3.11; the step path uses this


@dataclass(slots=True)
class _GateState:
    """What a gate step holds beyond its step record."""

    gate_type: str
    prompt: str | None
    options: tuple[GateOption, ...]
    min_approvals: int
    deadline_at: datetime | None
    select: str = "many"
    allow_none: bool = True
    approvals: dict[str, GateApproval] = field(default_factory=dict)
    decided_by: str | None = None
    selections: tuple[str, ...] | None = None


class InMemoryStore:
    """A :class:`~runkon.persistence.Store` that keeps everything in this process's memory.

    The reference behaviour and the default for library use: no dependencies, nothing
    survives the process. Notifications reach subscribers of this object at once.
    Open it with ``async with InMemoryStore() as store:``; it can be reopened after
    closing and keeps its data.
    """

    def __init__(self) -> None:
        self._open = False
        self._runs: dict[str, RunRecord] = {}
        self._steps: dict[str, StepRecord] = {}
        self._run_steps: dict[str, list[str]] = {}
        self._outputs: dict[str, CapturedOutput] = {}
        self._gates: dict[str, _GateState] = {}
        self._waiting_gates: dict[str, set[str]] = {}  # run id -> its waiting gate steps
        self._items: dict[str, FanOutItemRecord] = {}
        self._step_items: dict[str, dict[tuple[str, str], str]] = {}
        self._events: dict[str, list[EventRecord]] = {}
        self._listeners = EventListeners()
        self._hub = NotificationHub()
        self._watch = EventWatch()
        self._listeners.add(self._watch.on_events)

    def __repr__(self) -> str:
        return f"InMemoryStore(runs={len(self._runs)})"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._open:
            raise RuntimeError(f"{self!r} is already open")
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the store; notification streams end. Data is kept for a reopen."""
        self._open = False
        self._hub.close()
        self._watch.wake_all()

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosedError("InMemoryStore")

    # ------------------------------------------------------------------ helpers

    def _run(self, run_id: str) -> RunRecord:
        run = self._runs.get(run_id)
        if run is None:
            raise UnknownRunError(run_id)
        return run

    def _step(self, step_id: str) -> StepRecord:
        step = self._steps.get(step_id)
        if step is None:
            raise UnknownStepError(step_id)
        return step

    def _fenced_run(self, run_id: str, generation: int) -> RunRecord:
        run = self._run(run_id)
        if run.generation != generation:
            raise LeaseLostError(run_id, expected=generation, actual=run.generation)
        return run

    def _stage_events(
        self, run_id: str, events: Sequence[NewEvent], now: datetime
    ) -> list[EventRecord]:
        """Build the records ``events`` will become; nothing is stored yet."""
        first_seq = len(self._events.get(run_id, ())) + 1
        return [
            EventRecord(run_id, first_seq + index, event.type, rules.event_dict(event), now)
            for index, event in enumerate(events)
        ]

    def _commit(
        self, staged: list[EventRecord], notes: Sequence[Notification] = ()
    ) -> list[EventRecord]:
        """Store staged events, then tell listeners and subscribers (after the 'commit')."""
        if staged:
            self._events.setdefault(staged[0].run_id, []).extend(staged)
            self._listeners.publish(staged)
        for note in notes:
            self._hub.publish(note)
        return staged

    # ------------------------------------------------------------------ runs

    async def create_run(self, new_run: NewRun, *, events: Sequence[NewEvent] = ()) -> RunRecord:
        """Create a ``pending`` run at generation 0 (see ``Store.create_run``)."""
        self._check_open()
        now = utc_now()
        run = RunRecord(
            id=new_ulid(),
            workflow_name=new_run.workflow_name,
            status=RunStatus.PENDING,
            parent_run_id=new_run.parent_run_id,
            parent_step_id=new_run.parent_step_id,
            dry_run=new_run.dry_run,
            trigger=new_run.trigger,
            started_at=now,
            ended_at=None,
            result_summary=None,
            error=None,
            definition_snapshot=new_run.definition_snapshot,
            inputs=rules.string_map(new_run.inputs, "run inputs"),
            workflow_title=new_run.workflow_title,
            iteration=new_run.iteration,
            depth=new_run.depth,
            blocked_on=None,
            total_duration_ms=None,
            owner_token=None,
            lease_until=None,
            generation=0,
            cancel_reason=None,
            cancel_requested_by=None,
            options=rules.string_map(new_run.options, "run options"),
        )
        staged = self._stage_events(run.id, events, now)
        self._runs[run.id] = run
        self._run_steps[run.id] = []
        self._waiting_gates[run.id] = set()
        self._commit(staged)
        return run

    async def get_run(self, run_id: str) -> RunRecord:
        """Return the run (see ``Store.get_run``)."""
        self._check_open()
        return self._run(run_id)

    async def list_runs(
        self,
        *,
        statuses: Iterable[RunStatus] | None = None,
        workflow_name: str | None = None,
        parent_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter, newest first (see ``Store.list_runs``)."""
        self._check_open()
        wanted = None if statuses is None else {RunStatus(status) for status in statuses}
        found = [
            run
            for run in self._runs.values()
            if (wanted is None or run.status in wanted)
            and (workflow_name is None or run.workflow_name == workflow_name)
            and (parent_run_id is None or run.parent_run_id == parent_run_id)
        ]
        found.sort(key=lambda run: run.id, reverse=True)
        return found if limit is None else found[:limit]

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
        self._check_open()
        status = RunStatus(status)
        run = self._fenced_run(run_id, generation)
        rules.check_run_transition(run_id, run.status, status)
        now = utc_now()
        finished = status in TERMINAL_RUN_STATUSES
        updated = evolve(
            run,
            status=status,
            result_summary=run.result_summary if result_summary is None else result_summary,
            error=run.error if error is None else error,
            blocked_on=rules.as_mapping(blocked_on) if status is RunStatus.WAITING else None,
            ended_at=now if finished else run.ended_at,
            total_duration_ms=(
                (now - run.started_at) // timedelta(milliseconds=1)
                if finished
                else run.total_duration_ms
            ),
        )
        staged = self._stage_events(run_id, events, now)
        self._runs[run_id] = updated
        notes = [Notification(NotificationKind.RUN_FINISHED, run_id, None, now)] if finished else []
        self._commit(staged, notes)
        return updated

    async def request_cancel(
        self, run_id: str, *, reason: str | None = None, by: str | None = None
    ) -> bool:
        """Mark the run ``cancelling`` unless it finished (see ``Store.request_cancel``)."""
        self._check_open()
        run = self._run(run_id)
        if run.status in TERMINAL_RUN_STATUSES:
            return False
        if run.status is RunStatus.CANCELLING:
            return True
        now = utc_now()
        staged = self._stage_events(run_id, [rules.cancellation_event(reason, by)], now)
        self._runs[run_id] = evolve(
            run,
            status=RunStatus.CANCELLING,
            blocked_on=None,
            cancel_reason=reason,
            cancel_requested_by=by,
        )
        self._commit(staged, [Notification(NotificationKind.CANCEL_REQUESTED, run_id, None, now)])
        return True

    async def is_cancel_requested(self, run_id: str) -> bool:
        """True when the run is ``cancelling`` or ``cancelled``."""
        self._check_open()
        return self._run(run_id).is_cancel_requested

    # ------------------------------------------------------------------ leases

    async def acquire_lease(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Claim or renew the run's lease (see ``Store.acquire_lease``)."""
        self._check_open()
        run = self._run(run_id)
        now = utc_now()
        if not rules.lease_claimable(run.owner_token, run.lease_until, owner, now):
            return None
        generation = run.generation if run.owner_token == owner else run.generation + 1
        self._runs[run_id] = evolve(
            run, owner_token=owner, lease_until=seconds_from(now, ttl), generation=generation
        )
        return generation

    async def refresh_leases(self, leases: Sequence[tuple[str, str, int]], ttl: float) -> set[str]:
        """Renew leases still held; return the ids of runs whose lease is lost."""
        self._check_open()
        lease_until = seconds_from(utc_now(), ttl)
        lost: set[str] = set()
        runs = self._runs
        for run_id, owner, generation in leases:
            run = runs.get(run_id)
            if run is None or run.owner_token != owner or run.generation != generation:
                lost.add(run_id)
            else:
                # In place: the one field a store refreshes without a new record, so that
                # renewing 100,000 leases costs milliseconds (see RunRecord).
                _set_lease_until(run, lease_until)
        return lost

    async def release_lease(self, run_id: str, owner: str, generation: int) -> bool:
        """Give up the lease if ``owner`` still holds it at ``generation``."""
        self._check_open()
        run = self._runs.get(run_id)
        if run is None or run.owner_token != owner or run.generation != generation:
            return False
        self._runs[run_id] = evolve(run, owner_token=None, lease_until=None)
        return True

    async def list_recoverable_runs(self, now: datetime | None = None) -> list[RunRecord]:
        """Active runs whose lease expired or was never taken, oldest first."""
        self._check_open()
        moment = utc_now() if now is None else truncate_ms(now)
        found = [
            run
            for run in self._runs.values()
            if run.status in ACTIVE_RUN_STATUSES
            and (run.owner_token is None or run.lease_until is None or run.lease_until < moment)
        ]
        found.sort(key=lambda run: run.id)
        return found

    # ------------------------------------------------------------------ steps

    async def insert_step(
        self, new_step: NewStep, *, generation: int, events: Sequence[NewEvent] = ()
    ) -> StepRecord:
        """Record a new step, fenced (see ``Store.insert_step``)."""
        if not self._open:
            raise StoreClosedError("InMemoryStore")
        now = utc_now()
        step = rules.new_step_record(new_step, new_ulid(), now)
        run = self._runs.get(step.run_id)
        if run is None or run.generation != generation:  # the fence, inlined: hot path
            self._fenced_run(step.run_id, generation)
        staged = (
            self._stage_events(step.run_id, rules.with_step_id(events, step.id), now)
            if events
            else None
        )
        self._steps[step.id] = step
        self._run_steps[step.run_id].append(step.id)
        if step.role is _GATE:
            self._gates[step.id] = _GateState("", None, (), 1, None)
            self._track_waiting(step)
        if staged:
            self._commit(staged)
        return step

    async def update_step(
        self,
        step_id: str,
        update: StepUpdate,
        *,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> StepRecord:
        """Change a step, fenced; a terminal step is never changed."""
        if not self._open:
            raise StoreClosedError("InMemoryStore")
        step = self._steps.get(step_id)
        if step is None:
            raise UnknownStepError(step_id)
        run = self._runs[step.run_id]
        if run.generation != generation:  # the fence, inlined: hot path
            self._fenced_run(step.run_id, generation)
        now = utc_now()
        updated = rules.apply_step_update(step, update, now)
        staged = self._stage_events(step.run_id, events, now) if events else None
        self._steps[step_id] = updated
        if update.output is not None:
            self._outputs[step_id] = update.output
        if updated.role is _GATE:
            self._track_waiting(updated)
        if staged:
            self._commit(staged)
        return updated

    def _track_waiting(self, step: StepRecord) -> None:
        """Keep the run's set of waiting gate steps in line with ``step``'s status."""
        if step.status is StepStatus.WAITING:
            self._waiting_gates[step.run_id].add(step.id)
        else:
            self._waiting_gates[step.run_id].discard(step.id)

    async def get_step(self, step_id: str) -> StepRecord:
        """Return the step (see ``Store.get_step``)."""
        self._check_open()
        return self._step(step_id)

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps by position, then insertion."""
        self._check_open()
        self._run(run_id)
        steps = [self._steps[step_id] for step_id in self._run_steps[run_id]]
        steps.sort(key=lambda step: (step.position, step.id))
        return steps

    async def get_step_output(self, step_id: str) -> CapturedOutput | None:
        """The step's captured stdout/stderr (see ``Store.get_step_output``)."""
        self._check_open()
        self._step(step_id)
        return self._outputs.get(step_id)

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
        self._check_open()
        step = self._steps.get(step_id)
        if step is None or step.run_id != run_id:
            raise UnknownStepError(step_id)
        self._fenced_run(run_id, generation)
        contexts = [rules.string_map(item.context, "fan-out item context") for item in items]
        staged = self._stage_events(run_id, events, utc_now())
        index = self._step_items.setdefault(step_id, {})
        results = []
        for item, context in zip(items, contexts, strict=True):
            key = (item.item_type, item.item_id)
            row_id = index.get(key)
            if row_id is None:
                row = FanOutItemRecord(
                    id=new_ulid(),
                    step_id=step_id,
                    item_type=item.item_type,
                    item_id=item.item_id,
                    item_ref=item.item_ref,
                    child_run_id=None,
                    status=FanOutItemStatus.PENDING,
                    dispatched_at=None,
                    completed_at=None,
                    context=context,
                )
                index[key] = row.id
                self._items[row.id] = row
                results.append(row)
            else:
                results.append(self._items[row_id])
        self._commit(staged)
        return results

    async def update_fan_out_items(
        self,
        updates: Sequence[tuple[str, FanOutItemUpdate]],
        *,
        run_id: str,
        generation: int,
        events: Sequence[NewEvent] = (),
    ) -> list[FanOutItemRecord]:
        """Apply fan-out item updates all or nothing, fenced."""
        self._check_open()
        self._fenced_run(run_id, generation)
        for row_id, _ in updates:
            row = self._items.get(row_id)
            if row is None or self._steps[row.step_id].run_id != run_id:
                raise UnknownFanOutItemError(row_id)
        now = utc_now()
        staged = self._stage_events(run_id, events, now)
        results = []
        for row_id, update in updates:
            row = self._items[row_id]
            status = FanOutItemStatus(update.status)
            row = evolve(
                row,
                status=status,
                child_run_id=row.child_run_id
                if update.child_run_id is None
                else update.child_run_id,
                dispatched_at=now if status is FanOutItemStatus.RUNNING else row.dispatched_at,
                completed_at=(
                    now
                    if status not in (FanOutItemStatus.PENDING, FanOutItemStatus.RUNNING)
                    else row.completed_at
                ),
            )
            self._items[row_id] = row
            results.append(row)
        self._commit(staged)
        return results

    async def get_fan_out_items(
        self, step_id: str, status: FanOutItemStatus | None = None
    ) -> list[FanOutItemRecord]:
        """The step's items in insertion order, optionally filtered by status."""
        self._check_open()
        self._step(step_id)
        rows = (self._items[row_id] for row_id in self._step_items.get(step_id, {}).values())
        return [row for row in rows if status is None or row.status == status]

    # ------------------------------------------------------------------ gates

    async def open_gate(
        self, new_gate: NewGate, *, generation: int, events: Sequence[NewEvent] = ()
    ) -> GateRecord:
        """Insert a waiting gate step and block its run on it, fenced."""
        self._check_open()
        options = rules.check_gate_options(new_gate)
        run = self._fenced_run(new_gate.run_id, generation)
        rules.check_run_not_finished(run.id, run.status, RunStatus.WAITING)
        now = utc_now()
        step = StepRecord(
            id=new_ulid(),
            run_id=run.id,
            step_name=new_gate.step_name,
            role=StepRole.GATE,
            status=StepStatus.WAITING,
            position=new_gate.position,
            iteration=new_gate.iteration,
            retry_count=0,
            started_at=now,
            ended_at=None,
            child_run_id=None,
            result_text=None,
            context_out=None,
            markers_out=(),
            structured_output=None,
            step_error=None,
            parallel_group_id=None,
            resume_key=new_gate.resume_key,
            kind="gate",
            gate_type=new_gate.gate_type,
            gate_feedback=None,
        )
        gate = _GateState(
            gate_type=new_gate.gate_type,
            prompt=new_gate.prompt,
            options=options,
            min_approvals=new_gate.min_approvals,
            deadline_at=None if new_gate.deadline_at is None else truncate_ms(new_gate.deadline_at),
            select=new_gate.select,
            allow_none=new_gate.allow_none,
        )
        staged = self._stage_events(run.id, events, now)
        self._steps[step.id] = step
        self._run_steps[run.id].append(step.id)
        self._gates[step.id] = gate
        self._track_waiting(step)
        if run.status is not RunStatus.CANCELLING:
            self._runs[run.id] = evolve(
                run,
                status=RunStatus.WAITING,
                blocked_on=rules.blocked_on_for_gate(step.id, new_gate, options),
            )
        self._commit(staged)
        return self._gate_record(step, gate)

    def _receipt_if_undecidable(self, step_id: str) -> GateReceipt | None:
        """The receipt for a gate that cannot be decided now, or None if it waits."""
        step = self._steps.get(step_id)
        gate = self._gates.get(step_id)
        if step is None or gate is None:
            return GateReceipt(ReceiptOutcome.UNKNOWN, step_id)
        if step.status is StepStatus.WAITING:
            return None
        decision = rules.decision_for_status(step.status, step.markers_out)
        return GateReceipt(
            ReceiptOutcome.NOT_WAITING if decision is None else ReceiptOutcome.ALREADY_RESOLVED,
            step_id,
            run_id=step.run_id,
            decision=decision,
            decided_by=gate.decided_by,
            decided_at=step.ended_at,
            approvals=len(gate.approvals),
            approvals_needed=gate.min_approvals,
        )

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
        self._check_open()
        receipt = self._receipt_if_undecidable(step_id)
        if receipt is not None:
            return receipt
        step, gate = self._steps[step_id], self._gates[step_id]
        now = utc_now()
        late = self._receipt_if_late(step, gate, now)
        if late is not None:
            return late
        chosen = rules.check_selections(
            step_id,
            gate.options,
            selections,
            select=gate.select,
            allow_none=gate.allow_none,
            gate_name=step.step_name,
        )
        if by in gate.approvals and not decisive:
            return GateReceipt(
                ReceiptOutcome.ALREADY_APPROVED,
                step_id,
                run_id=step.run_id,
                approvals=len(gate.approvals),
                approvals_needed=gate.min_approvals,
            )
        if not decisive:
            rules.check_agreement(
                step_id,
                gate.options,
                [a.selections for a in gate.approvals.values() if a.approver != by],
                chosen,
                select=gate.select,
                gate_name=step.step_name,
            )
        approvals = dict(gate.approvals)
        approvals.setdefault(by, GateApproval(by, now, feedback, chosen))
        if len(approvals) < gate.min_approvals and not decisive:
            event = rules.approval_recorded_event(
                step.step_name, step_id, by, len(approvals), gate.min_approvals
            )
            staged = self._stage_events(step.run_id, [event], now)
            gate.approvals = approvals
            self._commit(staged)
            return GateReceipt(
                ReceiptOutcome.APPROVAL_RECORDED,
                step_id,
                run_id=step.run_id,
                approvals=len(approvals),
                approvals_needed=gate.min_approvals,
            )
        return self._decide(
            step,
            gate,
            GateDecision.APPROVED,
            by,
            now,
            feedback=rules.join_feedback([a.feedback for a in approvals.values()]),
            selections=rules.combined_selections([a.selections for a in approvals.values()]),
            approvals=approvals,
        )

    @staticmethod
    def _receipt_if_late(step: StepRecord, gate: _GateState, now: datetime) -> GateReceipt | None:
        """The ``deadline_passed`` receipt when the gate's deadline has come, else None."""
        if not rules.deadline_passed(gate.deadline_at, now):
            return None
        return GateReceipt(
            ReceiptOutcome.DEADLINE_PASSED,
            step.id,
            run_id=step.run_id,
            approvals=len(gate.approvals),
            approvals_needed=gate.min_approvals,
            deadline_at=gate.deadline_at,
        )

    async def reject_gate(
        self, step_id: str, *, by: str, feedback: str | None = None
    ) -> GateReceipt:
        """Resolve the gate as rejected (one compare-and-set)."""
        self._check_open()
        receipt = self._receipt_if_undecidable(step_id)
        if receipt is not None:
            return receipt
        step, gate = self._steps[step_id], self._gates[step_id]
        now = utc_now()
        late = self._receipt_if_late(step, gate, now)
        if late is not None:
            return late
        return self._decide(step, gate, GateDecision.REJECTED, by, now, feedback=feedback)

    async def time_out_gate(self, step_id: str, *, generation: int) -> GateReceipt:
        """Resolve the gate as timed out, fenced (one compare-and-set)."""
        return self._close_fenced(step_id, generation, GateDecision.TIMED_OUT, None, None)

    async def cancel_gate(
        self,
        step_id: str,
        *,
        generation: int,
        by: str | None = None,
        reason: str | None = None,
    ) -> GateReceipt:
        """Close a waiting gate as cancelled, fenced (one compare-and-set)."""
        return self._close_fenced(step_id, generation, GateDecision.CANCELLED, by, reason)

    def _close_fenced(
        self,
        step_id: str,
        generation: int,
        decision: GateDecision,
        by: str | None,
        feedback: str | None,
    ) -> GateReceipt:
        """The engine closing its own waiting gate (timed out, cancelled): fenced by the
        run's lease generation, no deadline check (the deadline is what times it out)."""
        self._check_open()
        step = self._steps.get(step_id)
        if step is not None and step_id in self._gates:
            self._fenced_run(step.run_id, generation)
        receipt = self._receipt_if_undecidable(step_id)
        if receipt is not None:
            return receipt
        step, gate = self._steps[step_id], self._gates[step_id]
        return self._decide(step, gate, decision, by, utc_now(), feedback=feedback)

    def _decide(
        self,
        step: StepRecord,
        gate: _GateState,
        decision: GateDecision,
        by: str | None,
        now: datetime,
        *,
        feedback: str | None = None,
        selections: tuple[str, ...] | None = None,
        approvals: dict[str, GateApproval] | None = None,
    ) -> GateReceipt:
        """The compare-and-set ``waiting`` -> decided, with its event and notification."""
        event = rules.gate_resolved_event(
            step.step_name, step.id, decision, by, feedback, selections
        )
        staged = self._stage_events(step.run_id, [event], now)
        decided = evolve(
            step,
            status=rules.STATUS_BY_DECISION[decision],
            ended_at=now,
            gate_feedback=feedback,
            markers_out=rules.markers_for_decision(decision) or step.markers_out,
        )
        self._steps[step.id] = decided
        self._track_waiting(decided)
        gate.decided_by, gate.selections = by, selections
        if approvals is not None:
            gate.approvals = approvals
        run = self._runs[step.run_id]
        next_status = rules.resolved_run_status(run.status, bool(self._waiting_gates[run.id]))
        if next_status is not None:
            self._runs[run.id] = evolve(run, status=next_status, blocked_on=None)
        note = Notification(NotificationKind.GATE_DECIDED, run.id, step.id, now, decision)
        self._commit(staged, [note])
        return GateReceipt(
            ReceiptOutcome.ACCEPTED,
            step.id,
            run_id=run.id,
            decision=decision,
            decided_by=by,
            decided_at=now,
            approvals=len(gate.approvals),
            approvals_needed=gate.min_approvals,
        )

    def _gate_record(self, step: StepRecord, gate: _GateState) -> GateRecord:
        decision = rules.decision_for_status(step.status, step.markers_out)
        return GateRecord(
            step_id=step.id,
            run_id=step.run_id,
            step_name=step.step_name,
            gate_type=gate.gate_type,
            status=step.status,
            position=step.position,
            iteration=step.iteration,
            resume_key=step.resume_key,
            prompt=gate.prompt,
            options=gate.options,
            min_approvals=gate.min_approvals,
            deadline_at=gate.deadline_at,
            opened_at=step.started_at,
            decision=decision,
            decided_by=gate.decided_by,
            decided_at=step.ended_at if decision is not None else None,
            feedback=step.gate_feedback,
            selections=gate.selections,
            approvals=tuple(gate.approvals.values()),
            select=gate.select,
            allow_none=gate.allow_none,
        )

    async def get_gate(self, step_id: str) -> GateRecord:
        """Return the gate with its decision and approvals."""
        self._check_open()
        step = self._step(step_id)
        gate = self._gates.get(step_id)
        if gate is None:
            raise UnknownStepError(step_id)
        return self._gate_record(step, gate)

    async def list_waiting_gates(
        self,
        *,
        run_id: str | None = None,
        workflow_name: str | None = None,
        gate_type: str | None = None,
        limit: int | None = None,
    ) -> list[WaitingGate]:
        """Waiting gates across runs, earliest deadline first (no deadline last)."""
        self._check_open()
        if run_id is not None:
            candidates: list[str] = list(self._waiting_gates.get(run_id, ()))
        else:
            candidates = [step_id for ids in self._waiting_gates.values() for step_id in ids]
        found = []
        for step_id in candidates:
            gate = self._gates[step_id]
            step = self._steps[step_id]
            run = self._runs[step.run_id]
            if (
                step.status is StepStatus.WAITING
                and (run_id is None or step.run_id == run_id)
                and (workflow_name is None or run.workflow_name == workflow_name)
                and (gate_type is None or gate.gate_type == gate_type)
            ):
                found.append(
                    WaitingGate(
                        step_id=step_id,
                        run_id=run.id,
                        workflow_name=run.workflow_name,
                        gate_name=step.step_name,
                        gate_type=gate.gate_type,
                        prompt=gate.prompt,
                        options=gate.options,
                        deadline_at=gate.deadline_at,
                        opened_at=step.started_at,
                        approvals=len(gate.approvals),
                        min_approvals=gate.min_approvals,
                        select=gate.select,
                        allow_none=gate.allow_none,
                    )
                )
        found.sort(key=_deadline_order)
        return found if limit is None else found[:limit]

    # ------------------------------------------------------------------ events

    async def append_events(
        self, run_id: str, events: Sequence[NewEvent], *, generation: int
    ) -> list[EventRecord]:
        """Append events to a run, fenced; return them as stored."""
        self._check_open()
        self._fenced_run(run_id, generation)
        return self._commit(self._stage_events(run_id, events, utc_now()))

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """The run's events after ``after_seq``, in order."""
        self._check_open()
        self._run(run_id)
        # seq n sits at index n - 1: slicing is exact because seqs have no gaps.
        events = self._events.get(run_id, [])[max(after_seq, 0) :]
        return events if limit is None else events[:limit]

    async def wait_for_events(
        self, run_id: str, after_seq: int, *, timeout: float | None = None
    ) -> bool:
        """Wait for the run's next events (see ``Store.wait_for_events``)."""

        async def last_seq() -> int:
            self._check_open()
            self._run(run_id)
            return len(self._events.get(run_id, ()))

        return await self._watch.wait(run_id, after_seq, last_seq, timeout)

    def add_event_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with each committed batch of events; returns the remover."""
        return self._listeners.add(listener)

    # ------------------------------------------------------------------ notifications

    def notifications(self) -> Subscription:
        """Subscribe to notifications of this store (delivered at once on commit)."""
        self._check_open()
        return self._hub.subscribe()


def _deadline_order(gate: WaitingGate) -> tuple[bool, datetime, str]:
    deadline = gate.deadline_at
    return (deadline is None, deadline or _NEVER, gate.step_id)


_NEVER = datetime.max.replace(tzinfo=UTC)


def _set_lease_until(run: RunRecord, lease_until: datetime) -> None:
    object.__setattr__(run, "lease_until", lease_until)
