"""The SQLite store's operations (all but gates): one synchronous function per store call.

Each function is one transaction run whole on one connection, inline or on the worker
thread (see :mod:`._sqlite_conn`). Writes are one ``BEGIN IMMEDIATE`` transaction (see
:mod:`._sqlite_tx`). Functions raise runkon errors for refused writes (rolling back) and
let ``sqlite3`` errors through; the connection layer maps those.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from runkon.errors import (
    LeaseLostError,
    SchemaVersionError,
    UnknownFanOutItemError,
    UnknownRunError,
    UnknownStepError,
)
from runkon.persistence import _rules as rules
from runkon.persistence import _sqlite_rows as rows
from runkon.persistence._ids import new_ulid
from runkon.persistence._records import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_RUN_STATUSES,
    CapturedOutput,
    EventRecord,
    FanOutItemRecord,
    FanOutItemStatus,
    FanOutItemUpdate,
    GateDecision,
    NewEvent,
    NewFanOutItem,
    NewRun,
    NewStep,
    Notification,
    NotificationKind,
    RunRecord,
    RunStatus,
    StepRecord,
    StepUpdate,
)
from runkon.persistence._schema import (
    CANONICAL_SCHEMA_DDL,
    LATEST_VERSION,
    MIGRATIONS,
    SCHEMA_VERSION_DDL,
)
from runkon.persistence._sqlite_tx import (
    Committed,
    fence,
    insert_events,
    insert_note,
    read_tx,
    require_run,
    run_row,
    statements,
    step_row,
    write_tx,
)
from runkon.persistence._time import format_ts, seconds_from, utc_now

# --------------------------------------------------------------------------- opening


def prepare(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to date: canonical tables if missing, then runkon's migrations.

    A database already at the latest version is only read, so a read-only file still
    opens (its first write is refused).

    Raises:
        SchemaVersionError: the database was migrated by a newer runkon.
    """
    if _schema_version(conn) == LATEST_VERSION:
        return
    with write_tx(conn):
        current = _schema_version(conn)
        if current > LATEST_VERSION:
            raise SchemaVersionError(path, found=current, supported=LATEST_VERSION)
        for statement in statements(CANONICAL_SCHEMA_DDL + SCHEMA_VERSION_DDL):
            conn.execute(statement)
        applied_at = format_ts(utc_now())
        for migration in MIGRATIONS:
            if migration.version > current:
                for statement in statements(migration.script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO runkon_schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, applied_at),
                )


def _schema_version(conn: sqlite3.Connection) -> int:
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runkon_schema_version'"
    ).fetchone()
    if has_table is None:
        return 0
    return int(
        conn.execute("SELECT COALESCE(MAX(version), 0) FROM runkon_schema_version").fetchone()[0]
    )


# --------------------------------------------------------------------------- runs


def create_run(
    conn: sqlite3.Connection, new_run: NewRun, events: Sequence[NewEvent]
) -> Committed[RunRecord]:
    """Insert a pending run at generation 0."""
    now = utc_now()
    inputs = rules.string_map(new_run.inputs, "run inputs")
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
        inputs=inputs,
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
    with write_tx(conn):
        conn.execute(
            "INSERT INTO workflow_runs (id, workflow_name, parent_run_id, parent_workflow_run_id, "
            'parent_step_id, status, dry_run, "trigger", started_at, definition_snapshot, inputs, '
            "workflow_title, iteration, depth, generation, runkon_options) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                run.id,
                run.workflow_name,
                run.parent_run_id,
                run.parent_run_id,
                run.parent_step_id,
                int(run.dry_run),
                run.trigger,
                format_ts(now),
                run.definition_snapshot,
                rules.dump_json(inputs),
                run.workflow_title,
                run.iteration,
                run.depth,
                rules.dump_json(dict(run.options)) if run.options else None,
            ),
        )
        stored = insert_events(conn, run.id, events, now)
    return Committed(run, stored)


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRecord:
    """Read one run."""
    return run_row(conn, run_id)


def list_runs(
    conn: sqlite3.Connection,
    statuses: list[RunStatus] | None,
    workflow_name: str | None,
    parent_run_id: str | None,
    limit: int | None,
) -> list[RunRecord]:
    """Runs matching every filter, newest first (ULID ids order by creation)."""
    clauses: list[str] = []
    params: list[object] = []
    if statuses is not None:
        if not statuses:
            return []
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(status.value for status in statuses)
    if workflow_name is not None:
        clauses.append("workflow_name = ?")
        params.append(workflow_name)
    if parent_run_id is not None:
        clauses.append("(parent_workflow_run_id = ? OR parent_run_id = ?)")
        params.extend((parent_run_id, parent_run_id))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {rows.RUN_COLUMNS} FROM workflow_runs {where} ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [rows.row_to_run(row) for row in conn.execute(sql, params)]


def set_run_status(
    conn: sqlite3.Connection,
    origin: str,
    run_id: str,
    status: RunStatus,
    generation: int,
    result_summary: str | None,
    error: str | None,
    blocked_on: Mapping[str, Any] | None,
    events: Sequence[NewEvent],
) -> Committed[RunRecord]:
    """Change a run's status, fenced; a terminal run is never changed."""
    now = utc_now()
    with write_tx(conn):
        current = fence(conn, run_id, generation)
        rules.check_run_transition(run_id, RunStatus(current["status"]), status)
        finished = status in TERMINAL_RUN_STATUSES
        duration = None
        if finished:
            started = rows.timestamp("workflow_runs", run_id, "started_at", current["started_at"])
            duration = None if started is None else (now - started) // timedelta(milliseconds=1)
        conn.execute(
            "UPDATE workflow_runs SET status = ?, result_summary = COALESCE(?, result_summary), "
            "error = COALESCE(?, error), blocked_on = ?, ended_at = COALESCE(?, ended_at), "
            "total_duration_ms = COALESCE(?, total_duration_ms) WHERE id = ?",
            (
                status.value,
                result_summary,
                error,
                rules.dump_json(blocked_on)
                if status is RunStatus.WAITING and blocked_on is not None
                else None,
                format_ts(now) if finished else None,
                duration,
                run_id,
            ),
        )
        stored = insert_events(conn, run_id, events, now)
        notes = []
        if finished:
            notes.append(Notification(NotificationKind.RUN_FINISHED, run_id, None, now))
            insert_note(conn, notes[0], origin)
        run = run_row(conn, run_id)
    return Committed(run, stored, notes)


def request_cancel(
    conn: sqlite3.Connection, origin: str, run_id: str, reason: str | None, by: str | None
) -> Committed[bool]:
    """Compare-and-set a non-terminal run to ``cancelling``."""
    now = utc_now()
    with write_tx(conn):
        row = conn.execute("SELECT status FROM workflow_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRunError(run_id)
        status = RunStatus(row["status"])
        if status in TERMINAL_RUN_STATUSES:
            return Committed(False)
        if status is RunStatus.CANCELLING:
            return Committed(True)
        conn.execute(
            "UPDATE workflow_runs SET status = 'cancelling', blocked_on = NULL, "
            "cancel_reason = ?, cancel_requested_by = ? WHERE id = ?",
            (reason, by, run_id),
        )
        stored = insert_events(conn, run_id, [rules.cancellation_event(reason, by)], now)
        note = Notification(NotificationKind.CANCEL_REQUESTED, run_id, None, now)
        insert_note(conn, note, origin)
    return Committed(True, stored, [note])


def is_cancel_requested(conn: sqlite3.Connection, run_id: str) -> bool:
    """True when the run is ``cancelling`` or ``cancelled``."""
    row = conn.execute("SELECT status FROM workflow_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise UnknownRunError(run_id)
    return row["status"] in (RunStatus.CANCELLING.value, RunStatus.CANCELLED.value)


# --------------------------------------------------------------------------- leases

LEASE_CHECK_CHUNK = 500  # run ids per ownership check (well under SQLite's variable limit)
HEARTBEAT_RETENTION = timedelta(days=1)


def acquire_lease(conn: sqlite3.Connection, run_id: str, owner: str, ttl: float) -> int | None:
    """Claim or renew the lease; the generation moves only when the owner changes."""
    now = utc_now()
    with write_tx(conn):
        row = conn.execute(
            f"SELECT owner_token, {rows.LEASE_UNTIL} AS lease_until, generation "
            "FROM workflow_runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise UnknownRunError(run_id)
        lease_until = rows.timestamp("workflow_runs", run_id, "lease_until", row["lease_until"])
        if not rules.lease_claimable(row["owner_token"], lease_until, owner, now):
            return None
        generation: int = row["generation"] + (0 if row["owner_token"] == owner else 1)
        conn.execute(
            "UPDATE workflow_runs SET owner_token = ?, lease_until = ?, generation = ? "
            "WHERE id = ?",
            (owner, format_ts(seconds_from(now, ttl)), generation, run_id),
        )
    return generation


def refresh_leases(
    conn: sqlite3.Connection, leases: Sequence[tuple[str, str, int]], ttl: float
) -> set[str]:
    """Renew every lease still held; return the run ids whose lease is lost.

    A lease is renewed through its owner's heartbeat row (``runkon_lease_owners``), which
    extends every run that owner holds: one row written per owner, however many runs it
    holds, where rewriting 100,000 run rows every interval made gates that time out wait
    behind the write. Whether each run is still held (same owner, same generation) is
    checked by reading, in chunks.
    """
    now = utc_now()
    held_by: dict[str, list[tuple[str, int]]] = {}
    for run_id, owner, generation in leases:
        held_by.setdefault(owner, []).append((run_id, generation))
    lost: set[str] = set()
    with write_tx(conn):
        for owner, held in held_by.items():
            for start in range(0, len(held), LEASE_CHECK_CHUNK):
                chunk = held[start : start + LEASE_CHECK_CHUNK]
                # only the runs no longer held come back (normally none), by primary key
                values = ", ".join(["(?, ?)"] * len(chunk))
                params: list[object] = [item for pair in chunk for item in pair]
                lost.update(
                    row[0]
                    for row in conn.execute(
                        f"WITH held(id, generation) AS (VALUES {values}) "
                        "SELECT held.id FROM held LEFT JOIN workflow_runs r ON r.id = held.id "
                        "WHERE r.id IS NULL OR r.owner_token IS NOT ? "
                        "OR r.generation != held.generation",
                        (*params, owner),
                    )
                )
            conn.execute(
                "INSERT INTO runkon_lease_owners (owner, lease_until) VALUES (?, ?) "
                "ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
                (owner, format_ts(seconds_from(now, ttl))),
            )
        conn.execute(  # heartbeats of engines long gone
            "DELETE FROM runkon_lease_owners WHERE lease_until < ?",
            (format_ts(now - HEARTBEAT_RETENTION),),
        )
    return lost


def release_lease(conn: sqlite3.Connection, run_id: str, owner: str, generation: int) -> bool:
    """Clear the lease if ``owner`` still holds it at ``generation``."""
    with write_tx(conn):
        cursor = conn.execute(
            "UPDATE workflow_runs SET owner_token = NULL, lease_until = NULL "
            "WHERE id = ? AND owner_token = ? AND generation = ?",
            (run_id, owner, generation),
        )
    return cursor.rowcount == 1


def list_recoverable_runs(conn: sqlite3.Connection, now: datetime) -> list[RunRecord]:
    """Active runs whose lease expired or was never taken, oldest first."""
    statuses = [status.value for status in ACTIVE_RUN_STATUSES]
    # julianday() reads both lease formats (runkon's RFC 3339 and the canonical
    # 'YYYY-MM-DD HH:MM:SS'), so leases written by either engine compare correctly.
    sql = (
        f"SELECT {rows.RUN_COLUMNS} FROM workflow_runs "
        f"WHERE status IN ({', '.join('?' * len(statuses))}) "
        f"AND (owner_token IS NULL OR {rows.LEASE_UNTIL} IS NULL "
        f"OR julianday({rows.LEASE_UNTIL}) < julianday(?)) ORDER BY id"
    )
    return [rows.row_to_run(row) for row in conn.execute(sql, (*statuses, format_ts(now)))]


# --------------------------------------------------------------------------- steps


_INSERT_STEP = (
    "INSERT INTO workflow_run_steps (id, workflow_run_id, step_name, role, status, position, "
    "iteration, retry_count, started_at, parallel_group_id, resume_key, kind, runkon_inputs) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_step(
    conn: sqlite3.Connection, new_step: NewStep, generation: int, events: Sequence[NewEvent]
) -> Committed[StepRecord]:
    """Insert a step, fenced."""
    now = utc_now()
    step = rules.new_step_record(new_step, new_ulid(), now)
    with write_tx(conn):
        fence(conn, step.run_id, generation)
        conn.execute(
            _INSERT_STEP,
            (
                step.id,
                step.run_id,
                step.step_name,
                step.role.value,
                step.status.value,
                step.position,
                step.iteration,
                step.retry_count,
                None if step.started_at is None else format_ts(now),
                step.parallel_group_id,
                step.resume_key,
                step.kind,
                rules.dump_json(dict(step.inputs)) if step.inputs else None,
            ),
        )
        stored = insert_events(conn, step.run_id, rules.with_step_id(events, step.id), now)
    return Committed(step, stored)


_SELECT_STEP_FOR_UPDATE = (
    f"SELECT {rows.STEP_COLUMNS}, (SELECT r.generation FROM workflow_runs r "
    "WHERE r.id = workflow_run_id) AS run_generation FROM workflow_run_steps WHERE id = ?"
)

_UPDATE_STEP = (
    "UPDATE workflow_run_steps SET status = ?, started_at = ?, ended_at = ?, child_run_id = ?, "
    "result_text = ?, context_out = ?, markers_out = COALESCE(?, markers_out), retry_count = ?, "
    "structured_output = ?, step_error = ? WHERE id = ?"
)


def update_step(
    conn: sqlite3.Connection,
    step_id: str,
    update: StepUpdate,
    generation: int,
    events: Sequence[NewEvent],
) -> Committed[StepRecord]:
    """Change a step, fenced; a terminal step is never changed."""
    now = utc_now()
    with write_tx(conn):
        row = conn.execute(_SELECT_STEP_FOR_UPDATE, (step_id,)).fetchone()
        if row is None:
            raise UnknownStepError(step_id)
        if row["run_generation"] != generation:
            raise LeaseLostError(
                row["workflow_run_id"], expected=generation, actual=row["run_generation"]
            )
        step = rules.apply_step_update(rows.row_to_step(row), update, now)
        conn.execute(
            _UPDATE_STEP,
            (
                step.status.value,
                _ts_text(step.started_at),
                _ts_text(step.ended_at),
                step.child_run_id,
                step.result_text,
                step.context_out,
                None if update.markers_out is None else rules.dump_json(list(step.markers_out)),
                step.retry_count,
                step.structured_output,
                step.step_error,
                step_id,
            ),
        )
        if update.output is not None:
            conn.execute(_UPSERT_OUTPUT, (step_id, *_output_values(update.output)))
        stored = insert_events(conn, step.run_id, events, now)
    return Committed(step, stored)


_UPSERT_OUTPUT = (
    "INSERT OR REPLACE INTO runkon_step_output (step_id, stdout, stderr, stdout_dropped_bytes, "
    "stderr_dropped_bytes) VALUES (?, ?, ?, ?, ?)"
)


def _output_values(output: CapturedOutput) -> tuple[str, str, int, int]:
    return (
        output.stdout,
        output.stderr,
        output.stdout_dropped_bytes,
        output.stderr_dropped_bytes,
    )


def get_step_output(conn: sqlite3.Connection, step_id: str) -> CapturedOutput | None:
    """A step's captured stdout/stderr, or None (the step must exist)."""
    row = conn.execute(
        "SELECT stdout, stderr, stdout_dropped_bytes, stderr_dropped_bytes "
        "FROM runkon_step_output WHERE step_id = ?",
        (step_id,),
    ).fetchone()
    if row is None:
        step_row(conn, step_id)  # raises UnknownStepError for an unknown step
        return None
    return CapturedOutput(
        stdout=row["stdout"],
        stderr=row["stderr"],
        stdout_dropped_bytes=row["stdout_dropped_bytes"],
        stderr_dropped_bytes=row["stderr_dropped_bytes"],
    )


def _ts_text(moment: datetime | None) -> str | None:
    return None if moment is None else format_ts(moment)


def get_step(conn: sqlite3.Connection, step_id: str) -> StepRecord:
    """Read one step."""
    return step_row(conn, step_id)


def get_steps(conn: sqlite3.Connection, run_id: str) -> list[StepRecord]:
    """A run's steps by position, then insertion (ULID order)."""
    found = [
        rows.row_to_step(row)
        for row in conn.execute(
            f"SELECT {rows.STEP_COLUMNS} FROM workflow_run_steps WHERE workflow_run_id = ? "
            "ORDER BY position, id",
            (run_id,),
        )
    ]
    if not found:
        require_run(conn, run_id)
    return found


# --------------------------------------------------------------------------- fan-out


def insert_fan_out_items(
    conn: sqlite3.Connection,
    step_id: str,
    items: Sequence[NewFanOutItem],
    run_id: str,
    generation: int,
    events: Sequence[NewEvent],
) -> Committed[list[FanOutItemRecord]]:
    """Insert foreach items; a duplicate returns the existing row."""
    now = utc_now()
    contexts = [rules.string_map(item.context, "fan-out item context") for item in items]
    results = []
    with write_tx(conn):
        row = conn.execute(
            "SELECT workflow_run_id FROM workflow_run_steps WHERE id = ?", (step_id,)
        ).fetchone()
        if row is None or row["workflow_run_id"] != run_id:
            raise UnknownStepError(step_id)
        fence(conn, run_id, generation)
        for item, context in zip(items, contexts, strict=True):
            row_id = new_ulid()
            cursor = conn.execute(
                "INSERT OR IGNORE INTO workflow_run_step_fan_out_items "
                "(id, step_run_id, item_type, item_id, item_ref, status, context) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (
                    row_id,
                    step_id,
                    item.item_type,
                    item.item_id,
                    item.item_ref,
                    rules.dump_json(context),
                ),
            )
            if cursor.rowcount == 1:
                results.append(
                    FanOutItemRecord(
                        row_id,
                        step_id,
                        item.item_type,
                        item.item_id,
                        item.item_ref,
                        None,
                        FanOutItemStatus.PENDING,
                        None,
                        None,
                        context,
                    )
                )
            else:
                existing = conn.execute(
                    f"SELECT {rows.ITEM_COLUMNS} FROM workflow_run_step_fan_out_items "
                    "WHERE step_run_id = ? AND item_type = ? AND item_id = ?",
                    (step_id, item.item_type, item.item_id),
                ).fetchone()
                results.append(rows.row_to_item(existing))
        stored = insert_events(conn, run_id, events, now)
    return Committed(results, stored)


def update_fan_out_items(
    conn: sqlite3.Connection,
    updates: Sequence[tuple[str, FanOutItemUpdate]],
    run_id: str,
    generation: int,
    events: Sequence[NewEvent],
) -> Committed[list[FanOutItemRecord]]:
    """Apply item updates in one transaction; a missing row rolls back all of them."""
    now = utc_now()
    now_text = format_ts(now)
    results = []
    with write_tx(conn):
        fence(conn, run_id, generation)
        for row_id, update in updates:
            status = FanOutItemStatus(update.status)
            running = status is FanOutItemStatus.RUNNING
            finished = status not in (FanOutItemStatus.PENDING, FanOutItemStatus.RUNNING)
            cursor = conn.execute(
                "UPDATE workflow_run_step_fan_out_items SET status = ?, "
                "child_run_id = COALESCE(?, child_run_id), "
                "dispatched_at = COALESCE(?, dispatched_at), "
                "completed_at = COALESCE(?, completed_at) "
                "WHERE id = ? AND step_run_id IN "
                "(SELECT id FROM workflow_run_steps WHERE workflow_run_id = ?)",
                (
                    status.value,
                    update.child_run_id,
                    now_text if running else None,
                    now_text if finished else None,
                    row_id,
                    run_id,
                ),
            )
            if cursor.rowcount == 0:
                raise UnknownFanOutItemError(row_id)
            results.append(
                rows.row_to_item(
                    conn.execute(
                        f"SELECT {rows.ITEM_COLUMNS} FROM workflow_run_step_fan_out_items "
                        "WHERE id = ?",
                        (row_id,),
                    ).fetchone()
                )
            )
        stored = insert_events(conn, run_id, events, now)
    return Committed(results, stored)


def get_fan_out_items(
    conn: sqlite3.Connection, step_id: str, status: FanOutItemStatus | None
) -> list[FanOutItemRecord]:
    """A step's items in insertion order, optionally filtered by status."""
    with read_tx(conn):
        if (
            conn.execute("SELECT 1 FROM workflow_run_steps WHERE id = ?", (step_id,)).fetchone()
            is None
        ):
            raise UnknownStepError(step_id)
        sql = (
            f"SELECT {rows.ITEM_COLUMNS} FROM workflow_run_step_fan_out_items WHERE step_run_id = ?"
        )
        params: list[str] = [step_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(FanOutItemStatus(status).value)
        return [rows.row_to_item(row) for row in conn.execute(sql + " ORDER BY rowid", params)]


# --------------------------------------------------------------------------- events


def append_events(
    conn: sqlite3.Connection, run_id: str, events: Sequence[NewEvent], generation: int
) -> Committed[list[EventRecord]]:
    """Append events to a run, fenced."""
    now = utc_now()
    with write_tx(conn):
        fence(conn, run_id, generation)
        stored = insert_events(conn, run_id, events, now)
    return Committed(stored, stored)


def read_events(
    conn: sqlite3.Connection, run_id: str, after_seq: int, limit: int | None
) -> list[EventRecord]:
    """A run's events after ``after_seq``, in order."""
    sql = (
        "SELECT seq, type, data, created_at FROM runkon_events "
        "WHERE run_id = ? AND seq > ? ORDER BY seq"
    )
    params: list[object] = [run_id, after_seq]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    found = [rows.row_to_event(run_id, row) for row in conn.execute(sql, params)]
    if not found:
        require_run(conn, run_id)
    return found


def last_event_seq(conn: sqlite3.Connection, run_id: str) -> int:
    """The run's last event sequence number (0: none yet)."""
    row = conn.execute("SELECT MAX(seq) FROM runkon_events WHERE run_id = ?", (run_id,)).fetchone()
    if row[0] is None:
        require_run(conn, run_id)
        return 0
    return int(row[0])


def last_event_seqs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, int]:
    """The last event sequence number of each run that has events."""
    found: dict[str, int] = {}
    for start in range(0, len(run_ids), LEASE_CHECK_CHUNK):
        chunk = run_ids[start : start + LEASE_CHECK_CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT run_id, MAX(seq) FROM runkon_events WHERE run_id IN ({marks}) GROUP BY run_id",
            list(chunk),
        ):
            found[row[0]] = int(row[1])
    return found


# --------------------------------------------------------------------------- change feed


FeedVersions = dict[int, int]
"""The change feed's last ``PRAGMA data_version`` per connection (by ``id``)."""


def feed_start(conn: sqlite3.Connection) -> tuple[FeedVersions, int]:
    """The change feed's starting point: ``({connection: data_version}, last notification
    seq)``."""
    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
    last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runkon_notifications").fetchone()[0]
    return {id(conn): version}, int(last)


def feed_poll(
    conn: sqlite3.Connection, versions: FeedVersions, last_seq: int, origin: str
) -> tuple[bool, int, list[Notification]]:
    """Notifications other connections committed since ``last_seq``; also whether the
    database changed. ``versions`` is updated in place.

    ``PRAGMA data_version`` changes only when another connection commits, so an idle
    database costs one pragma per poll and no table read. Its value is per connection and
    only comparable with the same connection's earlier value: the store runs this on
    either of its two connections, so each one's last value is kept apart (comparing one
    connection's value with the other's could take a change for none, and miss another
    process's decision until some unrelated write). A connection seen for the first time
    counts as changed: at worst one needless read of the notifications after
    ``last_seq``.
    """
    current = int(conn.execute("PRAGMA data_version").fetchone()[0])
    if versions.get(id(conn)) == current:
        return False, last_seq, []
    versions[id(conn)] = current
    notes = []
    for row in conn.execute(
        "SELECT seq, kind, run_id, step_id, decision, origin, created_at "
        "FROM runkon_notifications WHERE seq > ? ORDER BY seq",
        (last_seq,),
    ):
        last_seq = row["seq"]
        if row["origin"] == origin:
            continue
        created_at = rows.timestamp(
            "runkon_notifications", str(row["seq"]), "created_at", row["created_at"]
        )
        notes.append(
            Notification(
                kind=NotificationKind(row["kind"]),
                run_id=row["run_id"],
                step_id=row["step_id"],
                created_at=created_at or utc_now(),
                decision=None if row["decision"] is None else GateDecision(row["decision"]),
            )
        )
    return True, last_seq, notes
