"""Typed engine events: one pydantic model per kind, joined in the ``EngineEvent`` union.

Every event carries ``run_id``, a per-run sequence number ``seq`` (1, 2, 3, ... with no
gaps, assigned by the store in the transaction that records it) and a ``timestamp`` with
millisecond precision. ``type`` is the discriminator, an :class:`EventType` member (a
``StrEnum``: it equals and serializes as the plain string), so
``ENGINE_EVENT_ADAPTER.validate_python({"type": "run_started", ...})`` yields a
:class:`RunStarted` whose ``type`` is ``EventType.RUN_STARTED``. The ``EngineEvent`` union
is the one list of models: every ``EventType`` member has exactly one (a test checks it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from runkon.events._types import EventType


class _Event(BaseModel):
    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    seq: int = 0
    timestamp: datetime


# ----------------------------------------------------------------------------- runs


class RunStarted(_Event):
    """A run began executing for the first time."""

    type: Literal[EventType.RUN_STARTED] = EventType.RUN_STARTED
    workflow_name: str
    parent_run_id: str | None = None


class RunResumed(_Event):
    """A run continued from its persisted state (after a crash, restart or resume())."""

    type: Literal[EventType.RUN_RESUMED] = EventType.RUN_RESUMED
    workflow_name: str
    skipped_steps: int = 0


class RunCompleted(_Event):
    """A run finished and every step succeeded (or was allowed to fail)."""

    type: Literal[EventType.RUN_COMPLETED] = EventType.RUN_COMPLETED
    succeeded: Literal[True] = True
    duration_ms: int = 0


class RunFailed(_Event):
    """A run finished with a failure."""

    type: Literal[EventType.RUN_FAILED] = EventType.RUN_FAILED
    succeeded: Literal[False] = False
    error: str = ""
    duration_ms: int = 0


class RunCancelled(_Event):
    """A run stopped because it was cancelled (its ``always`` block has run)."""

    type: Literal[EventType.RUN_CANCELLED] = EventType.RUN_CANCELLED
    reason: str | None = None


class CancellationRequested(_Event):
    """Someone asked for the run to be cancelled (here or in another process)."""

    type: Literal[EventType.CANCELLATION_REQUESTED] = EventType.CANCELLATION_REQUESTED
    reason: str | None = None
    by: str | None = None


class LeaseLost(_Event):
    """This engine lost the run's lease to another engine; it stopped working on it."""

    type: Literal[EventType.LEASE_LOST] = EventType.LEASE_LOST
    owner: str | None = None


class MetricsUpdated(_Event):
    """Totals reported by the run's steps (emitted once, before the final status)."""

    type: Literal[EventType.METRICS_UPDATED] = EventType.METRICS_UPDATED
    total_cost: float = 0.0
    total_turns: int = 0
    total_duration_ms: int = 0


# ----------------------------------------------------------------------------- steps


class StepStarted(_Event):
    """A step attempt began."""

    type: Literal[EventType.STEP_STARTED] = EventType.STEP_STARTED
    step_name: str
    step_id: str | None = None
    kind: str = "call"
    attempt: int = 0
    iteration: int = 0


class StepCompleted(_Event):
    """A step succeeded."""

    type: Literal[EventType.STEP_COMPLETED] = EventType.STEP_COMPLETED
    step_name: str
    step_id: str | None = None
    succeeded: Literal[True] = True
    markers: list[str] = Field(default_factory=list)
    duration_ms: int = 0


class StepFailed(_Event):
    """A step failed (after its last attempt, or timed out)."""

    type: Literal[EventType.STEP_FAILED] = EventType.STEP_FAILED
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

    type: Literal[EventType.STEP_SKIPPED] = EventType.STEP_SKIPPED
    step_name: str
    step_id: str | None = None
    reason: str = ""


class StepRetrying(_Event):
    """A step failed and is about to be attempted again."""

    type: Literal[EventType.STEP_RETRYING] = EventType.STEP_RETRYING
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

    type: Literal[EventType.GATE_WAITING] = EventType.GATE_WAITING
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

    type: Literal[EventType.GATE_APPROVAL_RECORDED] = EventType.GATE_APPROVAL_RECORDED
    gate_name: str
    step_id: str | None = None
    by: str | None = None
    approvals: int = 0
    approvals_needed: int = 1


class GateResolved(_Event):
    """A gate was decided: ``decision`` is ``approved``, ``rejected`` or ``cancelled``
    (the gate stopped waiting because its run was cancelled; ``by`` is who asked for
    the cancellation and ``feedback`` the reason, when known)."""

    type: Literal[EventType.GATE_RESOLVED] = EventType.GATE_RESOLVED
    gate_name: str
    step_id: str | None = None
    approved: bool
    decision: str = ""
    by: str | None = None
    feedback: str | None = None
    selections: list[str] | None = None


class GateTimedOut(_Event):
    """A gate's deadline passed with no decision."""

    type: Literal[EventType.GATE_TIMED_OUT] = EventType.GATE_TIMED_OUT
    gate_name: str
    step_id: str | None = None
    on_timeout: str = "fail"


# ----------------------------------------------------------------------------- fan-out


class FanOutItemsCollected(_Event):
    """A ``foreach`` collected its items."""

    type: Literal[EventType.FAN_OUT_ITEMS_COLLECTED] = EventType.FAN_OUT_ITEMS_COLLECTED
    step_name: str = ""
    count: int


class FanOutItemStarted(_Event):
    """A ``foreach`` item's child run started."""

    type: Literal[EventType.FAN_OUT_ITEM_STARTED] = EventType.FAN_OUT_ITEM_STARTED
    step_name: str = ""
    item_id: str
    child_run_id: str | None = None


class FanOutItemCompleted(_Event):
    """A ``foreach`` item finished (or was skipped)."""

    type: Literal[EventType.FAN_OUT_ITEM_COMPLETED] = EventType.FAN_OUT_ITEM_COMPLETED
    step_name: str = ""
    item_id: str
    succeeded: bool
    status: str = ""


class EventsDropped(_Event):
    """Not stored: a subscriber fell behind and the bus dropped ``count`` events for it.

    ``first_seq``/``last_seq`` bound the gap when the events were of one run; replay them
    from the store (``read_events``) if they matter.
    """

    type: Literal[EventType.EVENTS_DROPPED] = EventType.EVENTS_DROPPED
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

EVENT_TYPES: frozenset[EventType] = frozenset(EventType)
"""Every event type (the members of :class:`EventType`)."""


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
