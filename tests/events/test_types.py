"""The event vocabulary: ``EventType`` and the ``EngineEvent`` union name the same kinds,
and the wire format stays the plain strings."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime

import pydantic
import pytest

from runkon.events import (
    ENGINE_EVENT_ADAPTER,
    EVENT_TYPES,
    FINAL_EVENT_TYPES,
    EngineEvent,
    EventType,
    RunStarted,
    event_from_record,
)
from runkon.integrations import sse_frame
from runkon.persistence import _rules


def _models() -> list[type]:
    union = typing.get_args(EngineEvent)[0]
    return list(typing.get_args(union))


def test_every_event_type_has_exactly_one_model_and_every_model_one_type() -> None:
    types = [model.model_fields["type"].default for model in _models()]
    assert all(isinstance(t, EventType) for t in types)
    assert len(types) == len(set(types))  # no two models share a type
    assert set(types) == set(EventType)  # and none is missing
    assert frozenset(EventType) == EVENT_TYPES


def test_final_event_types_are_the_run_endings() -> None:
    assert {
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
    } == FINAL_EVENT_TYPES


def test_the_stores_own_events_use_the_vocabulary() -> None:
    """The persistence layer may not import runkon.events (ARCHITECTURE.md §1), so its
    event types are plain strings; they must be members of the vocabulary."""
    assert _rules.GATE_RESOLVED == EventType.GATE_RESOLVED
    assert _rules.GATE_TIMED_OUT == EventType.GATE_TIMED_OUT
    assert _rules.GATE_APPROVAL_RECORDED == EventType.GATE_APPROVAL_RECORDED
    assert _rules.CANCELLATION_REQUESTED == EventType.CANCELLATION_REQUESTED


def test_a_misspelt_type_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        event_from_record("r", 1, "run_startd", datetime.now(UTC), {"workflow_name": "w"})


def test_the_wire_format_is_the_plain_type_string() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    event = event_from_record("r1", 3, "run_started", when, {"workflow_name": "w"})
    assert isinstance(event, RunStarted)
    assert event.type == "run_started"
    dumped = event.model_dump(mode="json")
    assert type(dumped["type"]) is str
    assert json.loads(event.model_dump_json())["type"] == "run_started"
    assert '"type": "run_started"' in json.dumps(event.model_dump(), default=str)
    assert sse_frame(event) == (
        "id: 3\nevent: run_started\ndata: "
        '{"run_id":"r1","seq":3,"timestamp":"2026-01-02T03:04:05.678000Z",'
        '"type":"run_started","workflow_name":"w","parent_run_id":null}\n\n'
    )
    assert ENGINE_EVENT_ADAPTER.validate_json(event.model_dump_json()) == event
