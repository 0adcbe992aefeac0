"""The event vocabulary: one :class:`EventType` member per kind of engine event.

A leaf module (it imports nothing of runkon): the pydantic models, the engine's emission
sites, the integrations and the inbox all name event types through it. Members are
``str`` values (a ``StrEnum``), so they compare equal to, and serialize as, the plain
strings stored and sent on the wire (``EventType.RUN_STARTED == "run_started"``).
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """The ``type`` of every engine event (the discriminator of ``EngineEvent``)."""

    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    CANCELLATION_REQUESTED = "cancellation_requested"
    LEASE_LOST = "lease_lost"
    METRICS_UPDATED = "metrics_updated"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_SKIPPED = "step_skipped"
    STEP_RETRYING = "step_retrying"
    GATE_WAITING = "gate_waiting"
    GATE_APPROVAL_RECORDED = "gate_approval_recorded"
    GATE_RESOLVED = "gate_resolved"
    GATE_TIMED_OUT = "gate_timed_out"
    FAN_OUT_ITEMS_COLLECTED = "fan_out_items_collected"
    FAN_OUT_ITEM_STARTED = "fan_out_item_started"
    FAN_OUT_ITEM_COMPLETED = "fan_out_item_completed"
    EVENTS_DROPPED = "events_dropped"


FINAL_EVENT_TYPES: frozenset[EventType] = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)
"""The types of a run's last event: nothing follows them."""
