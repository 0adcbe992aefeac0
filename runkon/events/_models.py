"""Typed engine events: one pydantic model per kind, joined in the ``EngineEvent`` union.

Every event carries ``run_id``, a per-run sequence number ``seq`` (1, 2, 3, ... with no
gaps, assigned by the store in the transaction that records it) and a ``timestamp`` with
millisecond precision. ``type`` is the discriminator, so
``ENGINE_EVENT_ADAPTER.validate_python({"type": "run_started", ...})`` yields a
:class:`RunStarted`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    seq: int = 0
    timestamp: datetime


# ----------------------------------------------------------------------------- runs


class RunStarted(_Event):
    """A run began executing for the first time."""

    type: Literal["run_started"] = "run_started"
    workflow_name: str
    parent_run_id: str | None = None


class RunResumed(_Event):
    """A run continued from its persisted state (after a crash, restart or resume())."""

    type: Literal["run_resumed"] = "run_resumed"
    workflow_name: str
    skipped_steps: int = 0


class RunCompleted(_Event):
    """A run finished and every step succeeded (or was allowed to fail)."""

    type: Literal["run_completed"] = "run_completed"
    succeeded: Literal[True] = True
    duration_ms: int = 0


class RunFailed(_Event):
    """A run finished with a failure."""

    type: Literal["run_failed"] = "run_failed"
    succeeded: Literal[False] = False
    error: str = ""
    duration_ms: int = 0


class RunCancelled(_Event):
    """A run stopped because it was cancelled (its ``always`` block has run)."""

    type: Literal["run_cancelled"] = "run_cancelled"
    reason: str | None = None


class CancellationRequested(_Event):
    """Someone asked for the run to be cancelled (here or in another process)."""

    type: Literal["cancellation_requested"] = "cancellation_requested"
    reason: str | None = None
    by: str | None = None


class LeaseLost(_Event):
    """This engine lost the run's lease to another engine; it stopped working on it."""

    type: Literal["lease_lost"] = "lease_lost"
    owner: str | None = None


class MetricsUpdated(_Event):
    """Totals reported by the run's steps (emitted once, before the final status)."""

    type: Literal["metrics_updated"] = "metrics_updated"
    total_cost: float = 0.0
    total_turns: int = 0
    total_duration_ms: int = 0


# ----------------------------------------------------------------------------- steps


class StepStarted(_Event):
    """A step attempt began."""

    type: Literal["step_started"] = "step_started"
    step_name: str
    step_id: str | None = None
    kind: str = "call"
    attempt: int = 0
    iteration: int = 0


class StepCompleted(_Event):
    """A step succeeded."""

    type: Literal["step_completed"] = "step_completed"
    step_name: str
    step_id: str | None = None
    succeeded: Literal[True] = True
    markers: list[str] = Field(default_factory=list)
    duration_ms: int = 0


class StepFailed(_Event):
    """A step failed (after its last attempt, or timed out)."""

    type: Literal["step_failed"] = "step_failed"
    step_name: str
    step_id: str | None = None
    succeeded: Literal[False] = False
    error: str = ""
    attempt: int = 0
    timed_out: bool = False


class StepSkipped(_Event):
    """A step did not run: a ``parallel`` call whose ``if`` was false, a step that
    completed before a resume, or a step that failed with ``on_fail = continue``.
    (Steps inside an ``if``/``unless`` whose condition is false leave no record.)"""

    type: Literal["step_skipped"] = "step_skipped"
    step_name: str
    step_id: str | None = None
    reason: str = ""


class StepRetrying(_Event):
    """A step failed and is about to be attempted again."""

    type: Literal["step_retrying"] = "step_retrying"
    step_name: str
    step_id: str | None = None
    attempt: int
    error: str = ""


# ----------------------------------------------------------------------------- gates


class GateWaiting(_Event):
    """A gate is waiting for a decision.

    ``select`` (``one``/``many``) and ``allow_none`` are the gate's selection rules: how
    many of its ``options`` an approval may choose, and whether it may choose none.
    """

    type: Literal["gate_waiting"] = "gate_waiting"
    gate_name: str
    gate_type: str = ""
    step_id: str | None = None
    prompt: str | None = None
    options: list[str] = Field(default_factory=list)
    select: str = "many"
    allow_none: bool = True
    deadline_at: datetime | None = None
    min_approvals: int = 1


class GateApprovalRecorded(_Event):
    """One approver approved; the gate needs more approvals before it passes."""

    type: Literal["gate_approval_recorded"] = "gate_approval_recorded"
    gate_name: str
    step_id: str | None = None
    by: str | None = None
    approvals: int = 0
    approvals_needed: int = 1


class GateResolved(_Event):
    """A gate was decided: ``decision`` is ``approved``, ``rejected`` or ``cancelled``
    (the gate stopped waiting because its run was cancelled; ``by`` is who asked for
    the cancellation and ``feedback`` the reason, when known)."""

    type: Literal["gate_resolved"] = "gate_resolved"
    gate_name: str
    step_id: str | None = None
    approved: bool
    decision: str = ""
    by: str | None = None
    feedback: str | None = None
    selections: list[str] | None = None


class GateTimedOut(_Event):
    """A gate's deadline passed with no decision."""

    type: Literal["gate_timed_out"] = "gate_timed_out"
    gate_name: str
    step_id: str | None = None
    on_timeout: str = "fail"


# ----------------------------------------------------------------------------- fan-out


class FanOutItemsCollected(_Event):
    """A ``foreach`` collected its items."""

    type: Literal["fan_out_items_collected"] = "fan_out_items_collected"
    step_name: str = ""
    count: int


class FanOutItemStarted(_Event):
    """A ``foreach`` item's child run started."""

    type: Literal["fan_out_item_started"] = "fan_out_item_started"
    step_name: str = ""
    item_id: str
    child_run_id: str | None = None


class FanOutItemCompleted(_Event):
    """A ``foreach`` item finished (or was skipped)."""

    type: Literal["fan_out_item_completed"] = "fan_out_item_completed"
    step_name: str = ""
    item_id: str
    succeeded: bool
    status: str = ""


class EventsDropped(_Event):
    """Not stored: a subscriber fell behind and the bus dropped ``count`` events for it.

    ``first_seq``/``last_seq`` bound the gap when the events were of one run; replay them
    from the store (``read_events``) if they matter.
    """

    type: Literal["events_dropped"] = "events_dropped"
    count: int
    first_seq: int | None = None
    last_seq: int | None = None


EngineEvent: TypeAlias = Annotated[
    RunStarted
    | RunResumed
    | RunCompleted
    | RunFailed
    | RunCancelled
    | CancellationRequested
    | LeaseLost
    | MetricsUpdated
    | StepStarted
    | StepCompleted
    | StepFailed
    | StepSkipped
    | StepRetrying
    | GateWaiting
    | GateApprovalRecorded
    | GateResolved
    | GateTimedOut
    | FanOutItemsCollected
    | FanOutItemStarted
    | FanOutItemCompleted
    | EventsDropped,
    Field(discriminator="type"),
]

ENGINE_EVENT_ADAPTER: TypeAdapter[EngineEvent] = TypeAdapter(EngineEvent)

EVENT_TYPES: frozenset[str] = frozenset(
    model.model_fields["type"].default
    for model in (
        RunStarted,
        RunResumed,
        RunCompleted,
        RunFailed,
        RunCancelled,
        CancellationRequested,
        LeaseLost,
        MetricsUpdated,
        StepStarted,
        StepCompleted,
        StepFailed,
        StepSkipped,
        StepRetrying,
        GateWaiting,
        GateApprovalRecorded,
        GateResolved,
        GateTimedOut,
        FanOutItemsCollected,
        FanOutItemStarted,
        FanOutItemCompleted,
        EventsDropped,
    )
)

FINAL_EVENT_TYPES: frozenset[str] = frozenset(
    model.model_fields["type"].default for model in (RunCompleted, RunFailed, RunCancelled)
)
"""The types of a run's last event: nothing follows them."""


def event_from_record(
    run_id: str, seq: int, type: str, timestamp: datetime, data: dict[str, Any]
) -> EngineEvent:
    """Rebuild a typed event from its stored parts (``type`` and ``data``).

    Raises:
        pydantic.ValidationError: ``type`` is unknown or ``data`` does not fit it.
    """
    return ENGINE_EVENT_ADAPTER.validate_python(
        {**data, "type": type, "run_id": run_id, "seq": seq, "timestamp": timestamp}
    )


def event_payload(event: EngineEvent) -> dict[str, Any]:
    """The kind-specific fields of ``event`` (what the store keeps as ``data``)."""
    return event.model_dump(mode="json", exclude={"type", "run_id", "seq", "timestamp"})
