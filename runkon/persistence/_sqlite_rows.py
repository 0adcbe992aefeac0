"""Turning SQLite rows into records, and refusing rows runkon cannot read.

Every JSON column, timestamp and status is checked as it is read: malformed values raise
:class:`~runkon.errors.CorruptRecordError` naming the table, row and column (runkon-flow
logged a warning and substituted a default instead, hiding the damage).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from runkon.errors import CorruptRecordError
from runkon.persistence._records import (
    EventRecord,
    FanOutItemRecord,
    FanOutItemStatus,
    GateApproval,
    GateOption,
    RunRecord,
    RunStatus,
    StepRecord,
    StepRole,
    StepStatus,
)
from runkon.persistence._time import parse_ts

__all__ = (
    "APPROVAL_COLUMNS",
    "ITEM_COLUMNS",
    "LEASE_UNTIL",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "gate_allow_none",
    "gate_select",
    "json_object",
    "parse_options",
    "row_to_approval",
    "row_to_event",
    "row_to_item",
    "row_to_run",
    "row_to_step",
    "selections_from",
    "timestamp",
)

LEASE_UNTIL = (
    "COALESCE((SELECT o.lease_until FROM runkon_lease_owners o "
    "WHERE o.owner = workflow_runs.owner_token AND (workflow_runs.lease_until IS NULL "
    "OR julianday(o.lease_until) > julianday(workflow_runs.lease_until))), "
    "workflow_runs.lease_until)"
)
"""A run's effective lease expiry: the later of its own ``lease_until`` (set when the lease
was taken) and its owner's heartbeat (``runkon_lease_owners``, renewed by
``refresh_leases``). ``julianday`` reads runkon's RFC 3339 and the canonical
'YYYY-MM-DD HH:MM:SS' alike. Only for queries ``FROM workflow_runs`` without an alias."""

RUN_COLUMNS = (
    "id, workflow_name, COALESCE(parent_workflow_run_id, parent_run_id) AS parent_run_id, "
    'parent_step_id, status, dry_run, "trigger", started_at, ended_at, result_summary, error, '
    "definition_snapshot, inputs, workflow_title, iteration, depth, blocked_on, "
    f"total_duration_ms, owner_token, {LEASE_UNTIL} AS lease_until, generation, cancel_reason, "
    "cancel_requested_by, runkon_options"
)

STEP_COLUMNS = (
    "id, workflow_run_id, step_name, role, status, position, iteration, retry_count, "
    "started_at, ended_at, child_run_id, result_text, context_out, markers_out, "
    "structured_output, step_error, parallel_group_id, resume_key, kind, gate_type, gate_feedback, "
    "runkon_inputs"
)

ITEM_COLUMNS = (
    "id, step_run_id, item_type, item_id, item_ref, child_run_id, status, dispatched_at, "
    "completed_at, context"
)

APPROVAL_COLUMNS = "approver, approved_at, feedback, selections"

_T = TypeVar("_T")


def _corrupt(table: str, row_id: str, column: str, detail: str) -> CorruptRecordError:
    return CorruptRecordError(table, row_id, column, detail)


def timestamp(table: str, row_id: str, column: str, text: str | None) -> datetime | None:
    """Parse a stored timestamp (None stays None)."""
    if text is None:
        return None
    try:
        return parse_ts(text)
    except (TypeError, ValueError):
        raise _corrupt(table, row_id, column, f"{text!r} is not a timestamp") from None


def _required_ts(table: str, row_id: str, column: str, text: str) -> datetime:
    moment = timestamp(table, row_id, column, text)
    if moment is None:
        raise _corrupt(table, row_id, column, "the timestamp is missing")
    return moment


def _json(table: str, row_id: str, column: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _corrupt(table, row_id, column, f"{text[:60]!r} is not JSON ({exc})") from None


def json_object(table: str, row_id: str, column: str, text: str | None) -> dict[str, Any] | None:
    """Parse a JSON object column (None stays None)."""
    if text is None:
        return None
    value = _json(table, row_id, column, text)
    if not isinstance(value, dict):
        raise _corrupt(table, row_id, column, f"expected a JSON object, found {text[:60]!r}")
    return value


def _string_map(table: str, row_id: str, column: str, text: str | None) -> dict[str, str]:
    value = json_object(table, row_id, column, text) or {}
    if not all(isinstance(item, str) for item in value.values()):
        raise _corrupt(table, row_id, column, "expected a JSON object of strings")
    return value


def _string_list(table: str, row_id: str, column: str, text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    value = _json(table, row_id, column, text)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _corrupt(
            table, row_id, column, f"expected a JSON array of strings, found {text[:60]!r}"
        )
    return tuple(value)


def selections_from(
    table: str, row_id: str, column: str, text: str | None
) -> tuple[str, ...] | None:
    """Parse a JSON array of selection strings (None stays None)."""
    return _string_list(table, row_id, column, text)


def gate_select(value: str | None) -> str:
    """``gate_select`` as stored: ``"one"``; anything else (NULL: a gate opened before
    the column existed, or by runkon-flow) is ``"many"``."""
    return "one" if value == "one" else "many"


def gate_allow_none(value: int | None) -> bool:
    """``gate_allow_none`` as stored; NULL (an older gate) allows approving with no
    selection, as runkon did when it was opened."""
    return value is None or bool(value)


def parse_options(step_id: str, text: str | None) -> tuple[GateOption, ...]:
    """Parse ``gate_options``: a JSON array of objects with a ``value`` (and ``label``)."""
    if text is None:
        return ()
    value = _json("workflow_run_steps", step_id, "gate_options", text)
    if not isinstance(value, list):
        raise _corrupt("workflow_run_steps", step_id, "gate_options", "expected a JSON array")
    options = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("value"), str):
            raise _corrupt(
                "workflow_run_steps", step_id, "gate_options", f"option {entry!r} has no value"
            )
        label = entry.get("label")
        options.append(
            GateOption(entry["value"], label if isinstance(label, str) else entry["value"])
        )
    return tuple(options)


def _enum(table: str, row_id: str, column: str, parse: Callable[[str], _T], text: str) -> _T:
    try:
        return parse(text)
    except ValueError:
        raise _corrupt(table, row_id, column, f"{text!r} is not a known value") from None


def row_to_run(row: sqlite3.Row) -> RunRecord:
    """Build a :class:`RunRecord` from a row selected with ``RUN_COLUMNS``."""
    run_id = row["id"]
    table = "workflow_runs"
    return RunRecord(
        id=run_id,
        workflow_name=row["workflow_name"],
        status=_enum(table, run_id, "status", RunStatus, row["status"]),
        parent_run_id=row["parent_run_id"],
        parent_step_id=row["parent_step_id"],
        dry_run=bool(row["dry_run"]),
        trigger=row["trigger"],
        started_at=_required_ts(table, run_id, "started_at", row["started_at"]),
        ended_at=timestamp(table, run_id, "ended_at", row["ended_at"]),
        result_summary=row["result_summary"],
        error=row["error"],
        definition_snapshot=row["definition_snapshot"],
        inputs=_string_map(table, run_id, "inputs", row["inputs"]),
        workflow_title=row["workflow_title"],
        iteration=row["iteration"],
        depth=row["depth"],
        blocked_on=json_object(table, run_id, "blocked_on", row["blocked_on"]),
        total_duration_ms=row["total_duration_ms"],
        owner_token=row["owner_token"],
        lease_until=timestamp(table, run_id, "lease_until", row["lease_until"]),
        generation=row["generation"],
        cancel_reason=row["cancel_reason"],
        cancel_requested_by=row["cancel_requested_by"],
        options=_string_map(table, run_id, "runkon_options", row["runkon_options"]),
    )


def row_to_step(row: sqlite3.Row) -> StepRecord:
    """Build a :class:`StepRecord` from a row selected with ``STEP_COLUMNS``."""
    step_id = row["id"]
    table = "workflow_run_steps"
    return StepRecord(
        id=step_id,
        run_id=row["workflow_run_id"],
        step_name=row["step_name"],
        role=_enum(table, step_id, "role", StepRole, row["role"]),
        status=_enum(table, step_id, "status", StepStatus, row["status"]),
        position=row["position"],
        iteration=row["iteration"],
        retry_count=row["retry_count"],
        started_at=timestamp(table, step_id, "started_at", row["started_at"]),
        ended_at=timestamp(table, step_id, "ended_at", row["ended_at"]),
        child_run_id=row["child_run_id"],
        result_text=row["result_text"],
        context_out=row["context_out"],
        markers_out=_string_list(table, step_id, "markers_out", row["markers_out"]) or (),
        structured_output=row["structured_output"],
        step_error=row["step_error"],
        parallel_group_id=row["parallel_group_id"],
        resume_key=row["resume_key"],
        kind=row["kind"],
        gate_type=row["gate_type"],
        gate_feedback=row["gate_feedback"],
        inputs=_string_map(table, step_id, "runkon_inputs", row["runkon_inputs"]),
    )


def row_to_item(row: sqlite3.Row) -> FanOutItemRecord:
    """Build a :class:`FanOutItemRecord` from a row selected with ``ITEM_COLUMNS``."""
    row_id = row["id"]
    table = "workflow_run_step_fan_out_items"
    return FanOutItemRecord(
        id=row_id,
        step_id=row["step_run_id"],
        item_type=row["item_type"],
        item_id=row["item_id"],
        item_ref=row["item_ref"],
        child_run_id=row["child_run_id"],
        status=_enum(table, row_id, "status", FanOutItemStatus, row["status"]),
        dispatched_at=timestamp(table, row_id, "dispatched_at", row["dispatched_at"]),
        completed_at=timestamp(table, row_id, "completed_at", row["completed_at"]),
        context=_string_map(table, row_id, "context", row["context"]),
    )


def row_to_approval(step_id: str, row: sqlite3.Row) -> GateApproval:
    """Build a :class:`GateApproval` from a row selected with ``APPROVAL_COLUMNS``."""
    table = "runkon_gate_approvals"
    row_id = f"{step_id}/{row['approver']}"
    return GateApproval(
        approver=row["approver"],
        approved_at=_required_ts(table, row_id, "approved_at", row["approved_at"]),
        feedback=row["feedback"],
        selections=_string_list(table, row_id, "selections", row["selections"]),
    )


def row_to_event(run_id: str, row: sqlite3.Row) -> EventRecord:
    """Build an :class:`EventRecord` from a ``seq, type, data, created_at`` row."""
    row_id = f"{run_id}/{row['seq']}"
    table = "runkon_events"
    return EventRecord(
        run_id=run_id,
        seq=row["seq"],
        type=row["type"],
        data=json_object(table, row_id, "data", row["data"]) or {},
        created_at=_required_ts(table, row_id, "created_at", row["created_at"]),
    )
