"""Rules both backends share, so they behave the same by construction.

Each function here is pure: it decides, the backend stores. The conformance suite checks
the outcome on every backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from runkon.errors import InvalidSelectionError, InvalidTransitionError, SelectionRequiredError
from runkon.persistence._records import (
    TERMINAL_RUN_STATUSES,
    GateDecision,
    GateOption,
    NewEvent,
    NewGate,
    NewStep,
    RunStatus,
    StepRecord,
    StepRole,
    StepStatus,
    StepUpdate,
)
from runkon.persistence._time import format_ts

__all__ = (
    "CANCELLATION_REQUESTED",
    "CANCELLED_MARKER",
    "GATE_APPROVAL_RECORDED",
    "GATE_RESOLVED",
    "GATE_TIMED_OUT",
    "SELECT_MODES",
    "STATUS_BY_DECISION",
    "apply_step_update",
    "approval_recorded_event",
    "as_mapping",
    "blocked_on_for_gate",
    "cancellation_event",
    "check_agreement",
    "check_gate_options",
    "check_run_not_finished",
    "check_run_transition",
    "check_selections",
    "combined_selections",
    "deadline_passed",
    "decision_for_status",
    "dump_json",
    "event_data",
    "gate_resolved_event",
    "join_feedback",
    "lease_claimable",
    "markers_for_decision",
    "new_step_record",
    "resolved_run_status",
    "step_status",
    "string_map",
)

# Event types the store appends itself: members of runkon.events.EventType, spelt out here
# because persistence imports nothing else of runkon (ARCHITECTURE.md §1); a test
# (tests/events/test_types.py) keeps them equal to the vocabulary.
GATE_RESOLVED = "gate_resolved"
GATE_TIMED_OUT = "gate_timed_out"
GATE_APPROVAL_RECORDED = "gate_approval_recorded"
CANCELLATION_REQUESTED = "cancellation_requested"


_DECISION_BY_STATUS = {
    StepStatus.COMPLETED: GateDecision.APPROVED,
    StepStatus.FAILED: GateDecision.REJECTED,
    StepStatus.TIMED_OUT: GateDecision.TIMED_OUT,
}
STATUS_BY_DECISION = {decision: status for status, decision in _DECISION_BY_STATUS.items()}
STATUS_BY_DECISION[GateDecision.CANCELLED] = StepStatus.FAILED

CANCELLED_MARKER = "cancelled"
"""The marker of a gate step closed by ``cancel_gate``: the canonical schema has no
``cancelled`` step status, so a cancelled gate is ``failed`` with this marker."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dump_json(value: object) -> str:
    """Serialise ``value`` as compact JSON text (``TypeError`` for non-JSON values)."""
    return _ENCODER.encode(value)


def event_data(event: NewEvent) -> tuple[str, dict[str, Any]]:
    """Return the event's data as JSON text and as the detached dict a reader gets back.

    Both stores keep exactly what a JSON round trip yields, so tuples become lists and
    non-JSON values are refused (``TypeError``) before anything is written.
    """
    data = event_dict(event)
    return dump_json(data), data


_PLAIN = (str, int, bool, type(None))


def event_dict(event: NewEvent) -> dict[str, Any]:
    """The event's data as a detached dict, exactly as a JSON round trip would give it.

    Hot path (two events per step): a flat object of strings, ints, bools and None is
    copied directly; anything else goes through the JSON round trip, which also refuses
    non-JSON values with ``TypeError``.
    """
    data = event.data
    copied: dict[str, Any] = {}
    for key, value in data.items():
        kind = type(value)
        if type(key) is not str:
            break
        if kind in _PLAIN:
            copied[key] = value
        elif kind is list and all(type(item) is str for item in value):
            copied[key] = list(value)
        else:
            break
    else:
        return copied
    roundtrip: dict[str, Any] = json.loads(dump_json(dict(data)))
    return roundtrip


# Step statuses as plain tuples: ``in`` on a tuple compares by identity first, while a
# frozenset of enum members calls Enum.__hash__ (Python code) on every lookup. Hot path.
_STARTABLE = (StepStatus.RUNNING, StepStatus.PENDING, StepStatus.WAITING)
_STARTING = (StepStatus.RUNNING, StepStatus.WAITING)
_TERMINAL = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.TIMED_OUT)
_PENDING = StepStatus.PENDING


def step_status(status: StepStatus | str) -> StepStatus:
    """``status`` as a :class:`StepStatus` (a plain string is converted; hot path)."""
    return status if status.__class__ is StepStatus else StepStatus(status)


def with_step_id(events: Sequence[NewEvent], step_id: str) -> list[NewEvent]:
    """``events`` with ``step_id`` added to the data of those that lack one."""
    return [
        e if e.data.get("step_id") is not None else NewEvent(e.type, {**e.data, "step_id": step_id})
        for e in events
    ]


def new_step_record(new_step: NewStep, step_id: str, now: datetime) -> StepRecord:
    """The record a new step is stored as.

    Raises:
        ValueError: the status is not pending, running or waiting, or the role is unknown.
    """
    status = step_status(new_step.status)
    if status not in _STARTABLE:
        raise ValueError(f"a new step starts pending, running or waiting, not {status.value!r}")
    role = new_step.role
    # Positional, in StepRecord's field order: this runs on every step write.
    return StepRecord(
        step_id,  # id
        new_step.run_id,
        new_step.step_name,
        role if role.__class__ is StepRole else StepRole(role),
        status,
        new_step.position,
        new_step.iteration,
        new_step.retry_count,
        None if status is _PENDING else now,  # started_at
        None,  # ended_at
        None,  # child_run_id
        None,  # result_text
        None,  # context_out
        (),  # markers_out
        None,  # structured_output
        None,  # step_error
        new_step.parallel_group_id,
        new_step.resume_key,
        new_step.kind,
        None,  # gate_type
        None,  # gate_feedback
        new_step.inputs,
    )


def apply_step_update(step: StepRecord, update: StepUpdate, now: datetime) -> StepRecord:
    """The step as it is after ``update`` (fields left ``None`` keep their value).

    ``running``/``waiting`` set ``started_at`` if unset; a terminal status sets ``ended_at``.

    Raises:
        InvalidTransitionError: the step is already terminal.
    """
    status = step_status(update.status)
    if step.status in _TERMINAL:
        raise InvalidTransitionError("step", step.id, current=step.status, requested=status)
    markers = update.markers_out
    # Positional, in StepRecord's field order: this runs on every step write.
    return StepRecord(
        step.id,
        step.run_id,
        step.step_name,
        step.role,
        status,
        step.position,
        step.iteration,
        step.retry_count if update.retry_count is None else update.retry_count,
        step.started_at or now if status in _STARTING else step.started_at,
        now if status in _TERMINAL else step.ended_at,
        step.child_run_id if update.child_run_id is None else update.child_run_id,
        step.result_text if update.result_text is None else update.result_text,
        step.context_out if update.context_out is None else update.context_out,
        step.markers_out if markers is None else tuple(markers),
        step.structured_output if update.structured_output is None else update.structured_output,
        step.step_error if update.step_error is None else update.step_error,
        step.parallel_group_id,
        step.resume_key,
        step.kind,
        step.gate_type,
        step.gate_feedback,
        step.inputs,
    )


def check_run_transition(run_id: str, current: RunStatus, requested: RunStatus) -> None:
    """Refuse changing a terminal run, and moving a ``cancelling`` run back to work.

    Raises:
        InvalidTransitionError: the change is not allowed.
    """
    if current in TERMINAL_RUN_STATUSES or (
        current is RunStatus.CANCELLING
        and requested not in TERMINAL_RUN_STATUSES
        and requested is not RunStatus.CANCELLING
    ):
        raise InvalidTransitionError("run", run_id, current=current, requested=requested)


def check_run_not_finished(run_id: str, current: RunStatus, requested: RunStatus) -> None:
    """Refuse any write that would change a terminal run.

    Raises:
        InvalidTransitionError: the run is terminal.
    """
    if current in TERMINAL_RUN_STATUSES:
        raise InvalidTransitionError("run", run_id, current=current, requested=requested)


def lease_claimable(
    current_owner: str | None, lease_until: datetime | None, owner: str, now: datetime
) -> bool:
    """True iff ``owner`` may take the lease: nobody holds it, it expired, or it is theirs."""
    return (
        current_owner is None or current_owner == owner or lease_until is None or lease_until < now
    )


SELECT_MODES = ("one", "many")


def check_gate_options(new_gate: NewGate) -> tuple[GateOption, ...]:
    """Validate a new gate's quorum, options and selection rule; return the options.

    Raises:
        ValueError: ``min_approvals`` is below 1, two options share a value, or
            ``select`` is neither ``"one"`` nor ``"many"``.
    """
    if new_gate.min_approvals < 1:
        raise ValueError(
            f"gate {new_gate.step_name!r}: min_approvals must be at least 1, "
            f"got {new_gate.min_approvals}"
        )
    if new_gate.select not in SELECT_MODES:
        raise ValueError(
            f"gate {new_gate.step_name!r}: select must be 'one' or 'many', got {new_gate.select!r}"
        )
    options = tuple(GateOption(*option) for option in new_gate.options)
    values = [option.value for option in options]
    if len(set(values)) != len(values):
        raise ValueError(f"gate {new_gate.step_name!r}: option values repeat in {values!r}")
    return options


def check_selections(
    step_id: str,
    options: Sequence[GateOption],
    selections: Sequence[str] | None,
    *,
    select: str = "many",
    allow_none: bool = True,
    gate_name: str | None = None,
) -> tuple[str, ...] | None:
    """Check approval selections against the gate's persisted options and rules.

    A value chosen twice counts once. A gate with options needs at least one selection
    unless ``allow_none``; with ``select = "one"`` at most one.

    Returns:
        The selections as a tuple (repeats removed), or None when none were given.

    Raises:
        SelectionRequiredError: the gate has options, none was chosen and
            ``allow_none`` is false.
        InvalidSelectionError: a selection is not an option value, the gate has no
            options at all, or a ``select = "one"`` gate got more than one.
    """
    allowed = [option.value for option in options]
    if not selections:
        if allowed and not allow_none:
            raise SelectionRequiredError(
                step_id, allowed=allowed, select=select, gate_name=gate_name
            )
        return None if selections is None else ()
    chosen = tuple(dict.fromkeys(selections))
    invalid = [value for value in chosen if value not in allowed]
    if invalid or not allowed or (select == "one" and len(chosen) > 1):
        raise InvalidSelectionError(
            step_id,
            invalid=invalid or list(chosen),
            allowed=allowed,
            select=select,
            gate_name=gate_name,
        )
    return chosen


def check_agreement(
    step_id: str,
    options: Sequence[GateOption],
    earlier: Sequence[Sequence[str] | None],
    chosen: Sequence[str] | None,
    *,
    select: str,
    gate_name: str | None = None,
) -> None:
    """A ``select = "one"`` gate needing several approvals passes with one option: an
    approval choosing another option than the earlier ones is refused.

    Raises:
        InvalidSelectionError: with ``earlier`` set to the option already chosen.
    """
    if select != "one" or not chosen:
        return
    combined = combined_selections([*earlier, chosen])
    if combined is not None and len(combined) > 1:
        raise InvalidSelectionError(
            step_id,
            invalid=list(chosen),
            allowed=[option.value for option in options],
            select=select,
            gate_name=gate_name,
            earlier=[value for value in combined if value not in chosen],
        )


def decision_for_status(status: StepStatus, markers: Sequence[str] = ()) -> GateDecision | None:
    """The decision a resolved gate's status (and markers) stand for (None while undecided).

    ``failed`` is a rejection, unless the step carries the ``cancelled`` marker that
    ``cancel_gate`` writes: then the gate was cancelled with its run, nobody rejected it.
    """
    decision = _DECISION_BY_STATUS.get(status)
    if decision is GateDecision.REJECTED and CANCELLED_MARKER in markers:
        return GateDecision.CANCELLED
    return decision


def markers_for_decision(decision: GateDecision) -> tuple[str, ...] | None:
    """The markers a store writes on a gate step it decides (None: leave them)."""
    return (CANCELLED_MARKER,) if decision is GateDecision.CANCELLED else None


def combined_selections(selections: Sequence[Sequence[str] | None]) -> tuple[str, ...] | None:
    """Every approver's selections combined, in approval order: their union, each value
    once (``None`` when no approver selected anything).

    A quorum gate keeps all its approvers' choices, not only the deciding one's: with
    ``min_approvals = 2``, alice selecting ``ship`` and bob ``docs`` pass ``ship, docs``.
    """
    given = [chosen for chosen in selections if chosen is not None]
    if not given:
        return None
    return tuple(dict.fromkeys(value for chosen in given for value in chosen))


def deadline_passed(deadline_at: datetime | None, now: datetime) -> bool:
    """True when a gate's deadline has come: a decision at or after it is refused (the
    gate times out instead). ``now`` is the store's clock."""
    return deadline_at is not None and now >= deadline_at


def join_feedback(feedbacks: Sequence[str | None]) -> str | None:
    """Join approvers' feedback one per line, skipping empty ones (None if none)."""
    given = [text for text in feedbacks if text]
    return "\n".join(given) if given else None


def resolved_run_status(current: RunStatus, other_gates_waiting: bool) -> RunStatus | None:
    """The run status after one of its gates is decided, or None to leave it.

    A ``waiting`` run goes back to ``running`` unless another of its gates still waits;
    any other status (notably ``cancelling``) is never clobbered.
    """
    if current is RunStatus.WAITING and not other_gates_waiting:
        return RunStatus.RUNNING
    return None


def blocked_on_for_gate(
    step_id: str, new_gate: NewGate, options: Sequence[GateOption]
) -> dict[str, Any]:
    """The ``blocked_on`` object of a run waiting on a gate (tagged by ``type``)."""
    return {
        "type": new_gate.gate_type,
        "gate_name": new_gate.step_name,
        "step_id": step_id,
        "prompt": new_gate.prompt,
        "options": [option.value for option in options],
        "approvals_needed": new_gate.min_approvals,
        "deadline_at": None if new_gate.deadline_at is None else format_ts(new_gate.deadline_at),
    }


def gate_resolved_event(
    step_name: str,
    step_id: str,
    decision: GateDecision,
    by: str | None,
    feedback: str | None,
    selections: Sequence[str] | None,
) -> NewEvent:
    """The event appended with a gate decision (a cancelled gate's ``by`` is who asked
    for the cancellation and its ``feedback`` the reason given)."""
    if decision is GateDecision.TIMED_OUT:
        return NewEvent(GATE_TIMED_OUT, {"gate_name": step_name, "step_id": step_id})
    return NewEvent(
        GATE_RESOLVED,
        {
            "gate_name": step_name,
            "step_id": step_id,
            "approved": decision is GateDecision.APPROVED,
            "decision": decision.value,
            "by": by,
            "feedback": feedback,
            "selections": None if selections is None else list(selections),
        },
    )


def approval_recorded_event(
    step_name: str, step_id: str, by: str, approvals: int, needed: int
) -> NewEvent:
    """The event appended when a quorum gate counts an approval but is not yet passed."""
    return NewEvent(
        GATE_APPROVAL_RECORDED,
        {
            "gate_name": step_name,
            "step_id": step_id,
            "by": by,
            "approvals": approvals,
            "approvals_needed": needed,
        },
    )


def cancellation_event(reason: str | None, by: str | None) -> NewEvent:
    """The event appended when a cancellation is requested."""
    return NewEvent(CANCELLATION_REQUESTED, {"reason": reason, "by": by})


def string_map(value: Mapping[str, str], what: str) -> dict[str, str]:
    """A detached copy of a map of strings (run inputs, fan-out context).

    Raises:
        TypeError: a key or value is not a string (it could not be read back).
    """
    copied = dict(value)
    for key, item in copied.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{what} must map strings to strings, got {key!r}: {item!r}")
    return copied


def as_mapping(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A detached, JSON-checked copy of a JSON object (None stays None)."""
    if value is None:
        return None
    copied: dict[str, Any] = json.loads(dump_json(dict(value)))
    return copied
