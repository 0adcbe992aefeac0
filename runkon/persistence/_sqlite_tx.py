"""The SQLite store's transaction plumbing, shared by its operation modules.

A write is one ``BEGIN IMMEDIATE`` transaction (:func:`write_tx`): the fencing check
(:func:`fence`), the write, its events (:func:`insert_events`) and its notification row
(:func:`insert_note`) commit together or not at all. A write returns a
:class:`Committed`: its result plus the events and notifications to hand out after the
commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from runkon.errors import (
    LeaseLostError,
    UnknownRunError,
    UnknownStepError,
)
from runkon.persistence import _rules as rules
from runkon.persistence import _sqlite_rows as rows
from runkon.persistence._records import (
    EventRecord,
    NewEvent,
    Notification,
    RunRecord,
    StepRecord,
)
from runkon.persistence._time import format_ts

_T = TypeVar("_T")

NOTIFICATION_RETENTION = timedelta(hours=1)
"""Notification rows older than this are pruned (every change feed reads them in ms)."""
_PRUNE_EVERY = 256


@dataclass(slots=True)
class Committed(Generic[_T]):
    """A write's result, with the events and notifications it committed."""

    result: _T
    events: list[EventRecord] = field(default_factory=list)
    notes: list[Notification] = field(default_factory=list)


@contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction: commit on success, roll back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_tx(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: several SELECTs see one snapshot."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def fence(conn: sqlite3.Connection, run_id: str, generation: int) -> sqlite3.Row:
    """Check the writer's generation; return the run's status row."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT status, generation, started_at FROM workflow_runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is None:
        raise UnknownRunError(run_id)
    if row["generation"] != generation:
        raise LeaseLostError(run_id, expected=generation, actual=row["generation"])
    return row


def insert_events(
    conn: sqlite3.Connection, run_id: str, events: Sequence[NewEvent], now: datetime
) -> list[EventRecord]:
    if not events:
        return []
    last_seq = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM runkon_events WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    now_text = format_ts(now)
    records, params = [], []
    for offset, event in enumerate(events, start=1):
        text, data = rules.event_data(event)
        records.append(EventRecord(run_id, last_seq + offset, event.type, data, now))
        params.append((run_id, last_seq + offset, event.type, text, now_text))
    conn.executemany(
        "INSERT INTO runkon_events (run_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
        params,
    )
    return records


def insert_note(conn: sqlite3.Connection, note: Notification, origin: str) -> None:
    cursor = conn.execute(
        "INSERT INTO runkon_notifications (kind, run_id, step_id, decision, origin, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            note.kind.value,
            note.run_id,
            note.step_id,
            None if note.decision is None else note.decision.value,
            origin,
            format_ts(note.created_at),
        ),
    )
    if (cursor.lastrowid or 0) % _PRUNE_EVERY == 0:
        conn.execute(
            "DELETE FROM runkon_notifications WHERE created_at < ?",
            (format_ts(note.created_at - NOTIFICATION_RETENTION),),
        )


def run_row(conn: sqlite3.Connection, run_id: str) -> RunRecord:
    row = conn.execute(
        f"SELECT {rows.RUN_COLUMNS} FROM workflow_runs WHERE id = ?", (run_id,)
    ).fetchone()
    if row is None:
        raise UnknownRunError(run_id)
    return rows.row_to_run(row)


def step_row(conn: sqlite3.Connection, step_id: str) -> StepRecord:
    row = conn.execute(
        f"SELECT {rows.STEP_COLUMNS} FROM workflow_run_steps WHERE id = ?", (step_id,)
    ).fetchone()
    if row is None:
        raise UnknownStepError(step_id)
    return rows.row_to_step(row)


def require_run(conn: sqlite3.Connection, run_id: str) -> None:
    if conn.execute("SELECT 1 FROM workflow_runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise UnknownRunError(run_id)
