"""The SQLite store's gate operations: open, decide (one compare-and-set), read, list.

Each function is one transaction run whole on one connection (see :mod:`._sqlite_conn`).
A decision checks the gate's state and deadline, validates selections, records approvals
(UNIQUE per approver: a repeat answers ``already_approved``) and, when
the gate is decided, moves ``waiting`` to its decided status, the run back to
``running`` (only from ``waiting``), and appends its event and notification row — all in
the caller's single ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from runkon.errors import (
    UnknownStepError,
)
from runkon.persistence import _rules as rules
from runkon.persistence import _sqlite_rows as rows
from runkon.persistence._ids import new_ulid
from runkon.persistence._records import (
    GateApproval,
    GateDecision,
    GateReceipt,
    GateRecord,
    NewEvent,
    NewGate,
    Notification,
    NotificationKind,
    ReceiptOutcome,
    RunStatus,
    StepStatus,
    WaitingGate,
)
from runkon.persistence._sqlite_tx import (
    Committed,
    fence,
    insert_events,
    insert_note,
    read_tx,
    write_tx,
)
from runkon.persistence._time import format_ts, parse_ts, utc_now

# --------------------------------------------------------------------------- gates

_GATE_COLUMNS = (
    "id, workflow_run_id, step_name, gate_type, status, position, iteration, resume_key, "
    "gate_prompt, gate_options, gate_min_approvals, gate_deadline_at, started_at, "
    "ended_at, gate_approved_by, gate_feedback, gate_selections, markers_out, gate_select, "
    "gate_allow_none"
)


def open_gate(
    conn: sqlite3.Connection, new_gate: NewGate, generation: int, events: Sequence[NewEvent]
) -> Committed[GateRecord]:
    """Insert the gate step as waiting and block the run on it, in one transaction."""
    options = rules.check_gate_options(new_gate)
    now = utc_now()
    step_id = new_ulid()
    deadline_text = None if new_gate.deadline_at is None else format_ts(new_gate.deadline_at)
    with write_tx(conn):
        run = fence(conn, new_gate.run_id, generation)
        rules.check_run_not_finished(new_gate.run_id, RunStatus(run["status"]), RunStatus.WAITING)
        conn.execute(
            "INSERT INTO workflow_run_steps (id, workflow_run_id, step_name, role, status, "
            "position, iteration, started_at, resume_key, kind, gate_type, gate_prompt, "
            "gate_timeout, gate_options, gate_deadline_at, gate_min_approvals, gate_select, "
            "gate_allow_none) "
            "VALUES (?, ?, ?, 'gate', 'waiting', ?, ?, ?, ?, 'gate', ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                step_id,
                new_gate.run_id,
                new_gate.step_name,
                new_gate.position,
                new_gate.iteration,
                format_ts(now),
                new_gate.resume_key,
                new_gate.gate_type,
                new_gate.prompt,
                None if new_gate.timeout_secs is None else f"{new_gate.timeout_secs:g}s",
                rules.dump_json([{"value": o.value, "label": o.label} for o in options]),
                deadline_text,
                new_gate.min_approvals,
                new_gate.select,
                int(new_gate.allow_none),
            ),
        )
        conn.execute(
            "UPDATE workflow_runs SET status = 'waiting', blocked_on = ? "
            "WHERE id = ? AND status != 'cancelling'",
            (
                rules.dump_json(rules.blocked_on_for_gate(step_id, new_gate, options)),
                new_gate.run_id,
            ),
        )
        stored = insert_events(conn, new_gate.run_id, events, now)
    gate = GateRecord(
        step_id=step_id,
        run_id=new_gate.run_id,
        step_name=new_gate.step_name,
        gate_type=new_gate.gate_type,
        status=StepStatus.WAITING,
        position=new_gate.position,
        iteration=new_gate.iteration,
        resume_key=new_gate.resume_key,
        prompt=new_gate.prompt,
        options=options,
        min_approvals=new_gate.min_approvals,
        deadline_at=None if deadline_text is None else parse_ts(deadline_text),
        opened_at=now,
        decision=None,
        decided_by=None,
        decided_at=None,
        feedback=None,
        selections=None,
        approvals=(),
        select=new_gate.select,
        allow_none=new_gate.allow_none,
    )
    return Committed(gate, stored)


def _gate_row(conn: sqlite3.Connection, step_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        f"SELECT {_GATE_COLUMNS} FROM workflow_run_steps WHERE id = ? AND role = 'gate'",
        (step_id,),
    ).fetchone()
    return row


def _markers(gate: sqlite3.Row) -> tuple[str, ...]:
    return (
        rows.selections_from("workflow_run_steps", gate["id"], "markers_out", gate["markers_out"])
        or ()
    )


def _approvals(conn: sqlite3.Connection, step_id: str) -> list[GateApproval]:
    return [
        rows.row_to_approval(step_id, row)
        for row in conn.execute(
            f"SELECT {rows.APPROVAL_COLUMNS} FROM runkon_gate_approvals WHERE step_id = ? "
            "ORDER BY rowid",
            (step_id,),
        )
    ]


def _approval_count(conn: sqlite3.Connection, step_id: str) -> int:
    return int(
        conn.execute(
            "SELECT COUNT(*) FROM runkon_gate_approvals WHERE step_id = ?", (step_id,)
        ).fetchone()[0]
    )


def _undecidable(
    conn: sqlite3.Connection, step_id: str, gate: sqlite3.Row | None
) -> GateReceipt | None:
    """The receipt for a gate that cannot be decided now, or None if it waits."""
    if gate is None:
        return GateReceipt(ReceiptOutcome.UNKNOWN, step_id)
    status = StepStatus(gate["status"])
    if status is StepStatus.WAITING:
        return None
    decision = rules.decision_for_status(status, _markers(gate))
    return GateReceipt(
        ReceiptOutcome.NOT_WAITING if decision is None else ReceiptOutcome.ALREADY_RESOLVED,
        step_id,
        run_id=gate["workflow_run_id"],
        decision=decision,
        decided_by=gate["gate_approved_by"] if decision is not GateDecision.TIMED_OUT else None,
        decided_at=rows.timestamp("workflow_run_steps", step_id, "ended_at", gate["ended_at"])
        if decision is not None
        else None,
        approvals=_approval_count(conn, step_id),
        approvals_needed=gate["gate_min_approvals"],
    )


def _receipt_if_late(
    conn: sqlite3.Connection, gate: sqlite3.Row, now: datetime
) -> GateReceipt | None:
    """The ``deadline_passed`` receipt when the waiting gate's deadline has come."""
    step_id: str = gate["id"]
    deadline_at = rows.timestamp(
        "workflow_run_steps", step_id, "gate_deadline_at", gate["gate_deadline_at"]
    )
    if not rules.deadline_passed(deadline_at, now):
        return None
    return GateReceipt(
        ReceiptOutcome.DEADLINE_PASSED,
        step_id,
        run_id=gate["workflow_run_id"],
        approvals=_approval_count(conn, step_id),
        approvals_needed=gate["gate_min_approvals"],
        deadline_at=deadline_at,
    )


def approve_gate(
    conn: sqlite3.Connection,
    origin: str,
    step_id: str,
    by: str,
    feedback: str | None,
    selections: Sequence[str] | None,
    decisive: bool = False,
) -> Committed[GateReceipt]:
    """Record an approval; the one that reaches the quorum (or a decisive one) resolves
    the gate."""
    now = utc_now()
    with write_tx(conn):
        gate = _gate_row(conn, step_id)
        receipt = _undecidable(conn, step_id, gate)
        if receipt is not None:
            return Committed(receipt)
        assert gate is not None  # _undecidable answers UNKNOWN for a missing gate
        late = _receipt_if_late(conn, gate, now)
        if late is not None:
            return Committed(late)
        options = rows.parse_options(step_id, gate["gate_options"])
        chosen = rules.check_selections(
            step_id,
            options,
            selections,
            select=rows.gate_select(gate["gate_select"]),
            allow_none=rows.gate_allow_none(gate["gate_allow_none"]),
            gate_name=gate["step_name"],
        )
        if not decisive:
            rules.check_agreement(
                step_id,
                options,
                [a.selections for a in _approvals(conn, step_id) if a.approver != by],
                chosen,
                select=rows.gate_select(gate["gate_select"]),
                gate_name=gate["step_name"],
            )
        inserted = conn.execute(
            "INSERT OR IGNORE INTO runkon_gate_approvals "
            "(step_id, approver, approved_at, feedback, selections) VALUES (?, ?, ?, ?, ?)",
            (
                step_id,
                by,
                format_ts(now),
                feedback,
                None if chosen is None else rules.dump_json(list(chosen)),
            ),
        ).rowcount
        approvals = _approvals(conn, step_id)
        needed: int = gate["gate_min_approvals"]
        run_id: str = gate["workflow_run_id"]
        if not inserted and not decisive:
            # UNIQUE (step_id, approver): this approver's first approval stands
            receipt = GateReceipt(
                ReceiptOutcome.ALREADY_APPROVED,
                step_id,
                run_id=run_id,
                approvals=len(approvals),
                approvals_needed=needed,
            )
            return Committed(receipt)
        if len(approvals) < needed and not decisive:
            event = rules.approval_recorded_event(
                gate["step_name"], step_id, by, len(approvals), needed
            )
            stored = insert_events(conn, run_id, [event], now)
            receipt = GateReceipt(
                ReceiptOutcome.APPROVAL_RECORDED,
                step_id,
                run_id=run_id,
                approvals=len(approvals),
                approvals_needed=needed,
            )
            return Committed(receipt, stored)
        return _decide(
            conn,
            origin,
            gate,
            GateDecision.APPROVED,
            by,
            now,
            feedback=rules.join_feedback([a.feedback for a in approvals]),
            selections=rules.combined_selections([a.selections for a in approvals]),
            approvals=len(approvals),
        )


def reject_gate(
    conn: sqlite3.Connection, origin: str, step_id: str, by: str, feedback: str | None
) -> Committed[GateReceipt]:
    """Resolve the gate as rejected."""
    now = utc_now()
    with write_tx(conn):
        gate = _gate_row(conn, step_id)
        receipt = _undecidable(conn, step_id, gate)
        if receipt is not None:
            return Committed(receipt)
        assert gate is not None  # _undecidable answers UNKNOWN for a missing gate
        late = _receipt_if_late(conn, gate, now)
        if late is not None:
            return Committed(late)
        return _decide(
            conn,
            origin,
            gate,
            GateDecision.REJECTED,
            by,
            now,
            feedback=feedback,
            approvals=_approval_count(conn, step_id),
        )


def time_out_gate(
    conn: sqlite3.Connection, origin: str, step_id: str, generation: int
) -> Committed[GateReceipt]:
    """Resolve the gate as timed out, fenced."""
    return _close_fenced(conn, origin, step_id, generation, GateDecision.TIMED_OUT, None, None)


def cancel_gate(
    conn: sqlite3.Connection,
    origin: str,
    step_id: str,
    generation: int,
    by: str | None,
    reason: str | None,
) -> Committed[GateReceipt]:
    """Close the waiting gate as cancelled, fenced."""
    return _close_fenced(conn, origin, step_id, generation, GateDecision.CANCELLED, by, reason)


def _close_fenced(
    conn: sqlite3.Connection,
    origin: str,
    step_id: str,
    generation: int,
    decision: GateDecision,
    by: str | None,
    feedback: str | None,
) -> Committed[GateReceipt]:
    """The engine closing its own waiting gate (timed out, cancelled): fenced by the
    run's lease generation, no deadline check (the deadline is what times it out)."""
    now = utc_now()
    with write_tx(conn):
        gate = _gate_row(conn, step_id)
        if gate is not None:
            fence(conn, gate["workflow_run_id"], generation)
        receipt = _undecidable(conn, step_id, gate)
        if receipt is not None:
            return Committed(receipt)
        assert gate is not None  # _undecidable answers UNKNOWN for a missing gate
        return _decide(
            conn,
            origin,
            gate,
            decision,
            by,
            now,
            feedback=feedback,
            approvals=_approval_count(conn, step_id),
        )


def _decide(
    conn: sqlite3.Connection,
    origin: str,
    gate: sqlite3.Row,
    decision: GateDecision,
    by: str | None,
    now: datetime,
    *,
    approvals: int,
    feedback: str | None = None,
    selections: tuple[str, ...] | None = None,
) -> Committed[GateReceipt]:
    """The compare-and-set ``waiting`` -> decided, with run status, event and notification.

    Runs inside the caller's write transaction.
    """
    step_id: str = gate["id"]
    run_id: str = gate["workflow_run_id"]
    now_text = format_ts(now)
    markers = rules.markers_for_decision(decision)
    conn.execute(
        "UPDATE workflow_run_steps SET status = ?, ended_at = ?, gate_approved_by = ?, "
        "gate_approved_at = ?, gate_feedback = ?, gate_selections = ?, "
        "markers_out = COALESCE(?, markers_out) WHERE id = ? AND status = 'waiting'",
        (
            rules.STATUS_BY_DECISION[decision].value,
            now_text,
            by,
            now_text if decision is GateDecision.APPROVED else None,
            feedback,
            None if selections is None else rules.dump_json(list(selections)),
            None if markers is None else rules.dump_json(list(markers)),
            step_id,
        ),
    )
    conn.execute(
        "UPDATE workflow_runs SET status = 'running', blocked_on = NULL "
        "WHERE id = ? AND status = 'waiting' AND NOT EXISTS (SELECT 1 FROM workflow_run_steps "
        "WHERE workflow_run_id = ? AND role = 'gate' AND +status = 'waiting')",
        (run_id, run_id),
    )
    event = rules.gate_resolved_event(
        gate["step_name"], step_id, decision, by, feedback, selections
    )
    stored = insert_events(conn, run_id, [event], now)
    note = Notification(NotificationKind.GATE_DECIDED, run_id, step_id, now, decision)
    insert_note(conn, note, origin)
    receipt = GateReceipt(
        ReceiptOutcome.ACCEPTED,
        step_id,
        run_id=run_id,
        decision=decision,
        decided_by=by,
        decided_at=now,
        approvals=approvals,
        approvals_needed=gate["gate_min_approvals"],
    )
    return Committed(receipt, stored, [note])


def get_gate(conn: sqlite3.Connection, step_id: str) -> GateRecord:
    """Read a gate with its decision and approvals."""
    with read_tx(conn):
        gate = _gate_row(conn, step_id)
        if gate is None:
            raise UnknownStepError(step_id)
        approvals = tuple(_approvals(conn, step_id))
    table = "workflow_run_steps"
    status = StepStatus(gate["status"])
    decision = rules.decision_for_status(status, _markers(gate))
    return GateRecord(
        step_id=step_id,
        run_id=gate["workflow_run_id"],
        step_name=gate["step_name"],
        gate_type=gate["gate_type"] or "",
        status=status,
        position=gate["position"],
        iteration=gate["iteration"],
        resume_key=gate["resume_key"],
        prompt=gate["gate_prompt"],
        options=rows.parse_options(step_id, gate["gate_options"]),
        min_approvals=gate["gate_min_approvals"],
        deadline_at=rows.timestamp(table, step_id, "gate_deadline_at", gate["gate_deadline_at"]),
        opened_at=rows.timestamp(table, step_id, "started_at", gate["started_at"]),
        decision=decision,
        decided_by=gate["gate_approved_by"]
        if decision not in (None, GateDecision.TIMED_OUT)
        else None,
        decided_at=rows.timestamp(table, step_id, "ended_at", gate["ended_at"])
        if decision
        else None,
        feedback=gate["gate_feedback"],
        selections=rows.selections_from(table, step_id, "gate_selections", gate["gate_selections"]),
        approvals=approvals,
        select=rows.gate_select(gate["gate_select"]),
        allow_none=rows.gate_allow_none(gate["gate_allow_none"]),
    )


def list_waiting_gates(
    conn: sqlite3.Connection,
    run_id: str | None,
    workflow_name: str | None,
    gate_type: str | None,
    limit: int | None,
) -> list[WaitingGate]:
    """Waiting gates across runs, earliest deadline first, no deadline last."""
    # For one run, look its steps up by run (a few rows), not every waiting gate of the
    # database: the unary + keeps SQLite from choosing the status index.
    status = "+s.status" if run_id is not None else "s.status"
    clauses = ["s.role = 'gate'", f"{status} = 'waiting'"]
    params: list[object] = []
    for column, value in (
        ("s.workflow_run_id", run_id),
        ("r.workflow_name", workflow_name),
        ("s.gate_type", gate_type),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    sql = (
        "SELECT s.id, s.workflow_run_id, r.workflow_name, s.step_name, s.gate_type, "
        "s.gate_prompt, s.gate_options, s.gate_deadline_at, s.started_at, s.gate_min_approvals, "
        "s.gate_select, s.gate_allow_none, "
        "(SELECT COUNT(*) FROM runkon_gate_approvals a WHERE a.step_id = s.id) AS approvals "
        "FROM workflow_run_steps s JOIN workflow_runs r ON r.id = s.workflow_run_id "
        f"WHERE {' AND '.join(clauses)} "
        "ORDER BY s.gate_deadline_at IS NULL, s.gate_deadline_at, s.id"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    table = "workflow_run_steps"
    return [
        WaitingGate(
            step_id=row["id"],
            run_id=row["workflow_run_id"],
            workflow_name=row["workflow_name"],
            gate_name=row["step_name"],
            gate_type=row["gate_type"] or "",
            prompt=row["gate_prompt"],
            options=rows.parse_options(row["id"], row["gate_options"]),
            deadline_at=rows.timestamp(
                table, row["id"], "gate_deadline_at", row["gate_deadline_at"]
            ),
            opened_at=rows.timestamp(table, row["id"], "started_at", row["started_at"]),
            approvals=row["approvals"],
            min_approvals=row["gate_min_approvals"],
            select=rows.gate_select(row["gate_select"]),
            allow_none=rows.gate_allow_none(row["gate_allow_none"]),
        )
        for row in conn.execute(sql, params)
    ]
