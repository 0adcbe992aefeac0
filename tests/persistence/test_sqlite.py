"""SqliteStore-only behaviour: the canonical schema, migrations, damaged rows, locked and
read-only files, the change feed and checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from runkon.errors import (
    CorruptRecordError,
    DatabaseLockedError,
    DatabaseReadOnlyError,
    SchemaVersionError,
    StoreBackendError,
    StoreError,
)
from runkon.persistence import (
    CANONICAL_SCHEMA_DDL,
    MIGRATIONS,
    GateDecision,
    GateOption,
    NewEvent,
    NewGate,
    NewRun,
    NewStep,
    RunStatus,
    SqliteStore,
    StepRole,
    StepStatus,
    StepUpdate,
)

# runkon-flow's schema as its SQLite store creates it (reference §4.12), written out here
# independently of runkon's own copy so that a drift in either is caught.
RUNKON_FLOW_DDL = """
CREATE TABLE workflow_runs (
    id TEXT PRIMARY KEY, workflow_name TEXT NOT NULL, parent_run_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','completed',
        'failed','cancelled','waiting','needs_resume','cancelling')),
    dry_run INTEGER NOT NULL DEFAULT 0, trigger TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL DEFAULT (datetime('now')), ended_at TEXT, result_summary TEXT,
    definition_snapshot TEXT, inputs TEXT, parent_workflow_run_id TEXT,
    iteration INTEGER NOT NULL DEFAULT 0, blocked_on TEXT, total_duration_ms INTEGER, error TEXT,
    dismissed INTEGER NOT NULL DEFAULT 0, workflow_title TEXT, owner_token TEXT, lease_until TEXT,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE workflow_run_steps (
    id TEXT PRIMARY KEY, workflow_run_id TEXT NOT NULL REFERENCES workflow_runs(id),
    step_name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT 'agent' CHECK (role IN ('agent','gate','foreach','workflow')),
    can_commit INTEGER NOT NULL DEFAULT 0, condition_expr TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','completed',
        'failed','skipped','waiting','timed_out')),
    child_run_id TEXT, position INTEGER NOT NULL DEFAULT 0, started_at TEXT, ended_at TEXT,
    result_text TEXT, condition_met INTEGER, iteration INTEGER NOT NULL DEFAULT 0,
    parallel_group_id TEXT, context_out TEXT, markers_out TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0, gate_type TEXT, gate_prompt TEXT, gate_timeout TEXT,
    gate_approved_by TEXT, gate_approved_at TEXT, gate_feedback TEXT, structured_output TEXT,
    output_file TEXT, gate_options TEXT, gate_selections TEXT, fan_out_total INTEGER,
    fan_out_completed INTEGER, fan_out_failed INTEGER, fan_out_skipped INTEGER, step_error TEXT
);
CREATE TABLE workflow_run_step_fan_out_items (
    id TEXT PRIMARY KEY, step_run_id TEXT NOT NULL REFERENCES workflow_run_steps(id),
    item_type TEXT NOT NULL, item_id TEXT NOT NULL, item_ref TEXT NOT NULL DEFAULT '',
    child_run_id TEXT, status TEXT NOT NULL DEFAULT 'pending', dispatched_at TEXT,
    completed_at TEXT, context TEXT, UNIQUE (step_run_id, item_type, item_id)
);
CREATE INDEX idx_workflow_runs_status ON workflow_runs(status);
CREATE INDEX idx_workflow_runs_parent_workflow_run_id ON workflow_runs(parent_workflow_run_id);
CREATE INDEX idx_workflow_run_steps_run ON workflow_run_steps(workflow_run_id);
CREATE INDEX idx_steps_status_gate ON workflow_run_steps(status, gate_type);
CREATE INDEX idx_workflow_run_steps_child_run_id ON workflow_run_steps(child_run_id);
CREATE INDEX idx_fan_out_items_step ON workflow_run_step_fan_out_items(step_run_id, status);
"""

CANONICAL_TABLES = ["workflow_runs", "workflow_run_steps", "workflow_run_step_fan_out_items"]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def _shape(conn: sqlite3.Connection) -> dict[str, object]:
    """Columns (name, type, not null, default, pk) and indexes of the canonical tables."""
    shape: dict[str, object] = {}
    for table in CANONICAL_TABLES:
        shape[table] = [tuple(row)[1:] for row in conn.execute(f"PRAGMA table_info({table})")]
        shape[f"{table} indexes"] = sorted(
            (row["name"], row["unique"]) for row in conn.execute(f"PRAGMA index_list({table})")
        )
    return shape


# --------------------------------------------------------------------------- schema


def test_canonical_ddl_matches_runkon_flow(tmp_path: Path) -> None:
    theirs, ours = _connect(tmp_path / "theirs.db"), _connect(tmp_path / "ours.db")
    theirs.executescript(RUNKON_FLOW_DDL)
    ours.executescript(CANONICAL_SCHEMA_DDL)
    ours.executescript(CANONICAL_SCHEMA_DDL)  # every statement is IF NOT EXISTS
    assert _shape(ours) == _shape(theirs)
    for conn in (theirs, ours):  # the CHECKs refuse values outside the vocabulary
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO workflow_runs (id, workflow_name, status) VALUES ('r', 'w', 'x')"
            )
        conn.execute("INSERT INTO workflow_runs (id, workflow_name) VALUES ('r', 'w')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO workflow_run_steps (id, workflow_run_id, role) "
                "VALUES ('s', 'r', 'actor')"
            )
        conn.close()


def _seed_runkon_flow_rows(path: Path) -> None:
    """Rows as runkon-flow writes them: canonical time formats, its own JSON shapes."""
    conn = _connect(path)
    conn.executescript(RUNKON_FLOW_DDL)
    conn.execute(
        "INSERT INTO workflow_runs (id, workflow_name, status, inputs, owner_token, lease_until, "
        "generation) VALUES ('01RUNKONFLOWRUN00000000000', 'legacy', 'running', "
        "'{\"t\": \"T-9\"}', 'old-engine', datetime('now', '-1 hour'), 3)"
    )
    conn.execute(
        "INSERT INTO workflow_run_steps (id, workflow_run_id, step_name, role, status, position, "
        "started_at, ended_at, markers_out, result_text) VALUES ('01RUNKONFLOWSTEP0000000000', "
        "'01RUNKONFLOWRUN00000000000', 'plan', 'agent', 'completed', 0, "
        "datetime('now', '-2 hour'), datetime('now', '-1 hour'), '[\"ok\"]', 'planned')"
    )
    conn.execute(
        "INSERT INTO workflow_run_steps (id, workflow_run_id, step_name, role, status, position, "
        "gate_type, gate_prompt, gate_options, started_at) VALUES ('01RUNKONFLOWGATE0000000000', "
        "'01RUNKONFLOWRUN00000000000', 'review', 'gate', 'waiting', 1, 'human_review', 'Merge?', "
        '\'[{"value": "merge"}, {"value": "wait", "label": "Wait"}]\', datetime(\'now\'))'
    )
    conn.close()


async def test_a_database_made_with_the_canonical_schema_works(tmp_path: Path) -> None:
    path = tmp_path / "runkon-flow.db"
    _seed_runkon_flow_rows(path)
    async with SqliteStore(path) as store:
        legacy = await store.get_run("01RUNKONFLOWRUN00000000000")
        assert legacy.started_at.tzinfo is UTC
        assert abs(legacy.started_at - datetime.now(UTC)) < timedelta(minutes=1)
        assert dict(legacy.inputs) == {"t": "T-9"}
        assert [run.id for run in await store.list_recoverable_runs()] == [legacy.id]
        generation = await store.acquire_lease(legacy.id, "runkon", 60)
        assert generation == 4  # the expired canonical-format lease was taken over
        plan, gate_step = await store.get_steps(legacy.id)
        assert (plan.status, plan.markers_out, plan.ended_at is not None) == (
            StepStatus.COMPLETED,
            ("ok",),
            True,
        )
        gate = await store.get_gate(gate_step.id)
        assert gate.options == (GateOption("merge", "merge"), GateOption("wait", "Wait"))
        assert (gate.min_approvals, gate.deadline_at) == (1, None)
        assert [g.step_id for g in await store.list_waiting_gates()] == [gate.step_id]
        assert (await store.approve_gate(gate.step_id, by="alice", selections=["merge"])).accepted

        # A full cycle of runkon's own writes on the same file.
        run = await store.create_run(NewRun("deploy", inputs={"env": "prod"}))
        gen = await store.acquire_lease(run.id, "runkon", 60)
        assert gen is not None
        step = await store.insert_step(
            NewStep(run.id, "build", StepRole.AGENT, 0, resume_key="build@0"),
            generation=gen,
            events=[NewEvent("step_started")],
        )
        await store.update_step(
            step.id, StepUpdate(StepStatus.COMPLETED, markers_out=["built"]), generation=gen
        )
        review = await store.open_gate(
            NewGate(run.id, "approve", "human_approval", 1, min_approvals=1), generation=gen
        )
        assert (await store.reject_gate(review.step_id, by="bob")).accepted
        await store.set_run_status(run.id, RunStatus.FAILED, generation=gen, error="rejected")
        assert [e.type for e in await store.read_events(run.id)] == [
            "step_started",
            "gate_resolved",
        ]

    # What runkon wrote stays readable through the canonical columns.
    conn = _connect(path)
    gate_row = conn.execute(
        "SELECT status, gate_approved_by, gate_selections FROM workflow_run_steps WHERE id = ?",
        (gate.step_id,),
    ).fetchone()
    assert tuple(gate_row) == ("completed", "alice", '["merge"]')
    run_row = conn.execute(
        "SELECT status, error, parent_workflow_run_id FROM workflow_runs WHERE id = ?", (run.id,)
    ).fetchone()
    assert tuple(run_row) == ("failed", "rejected", None)
    versions = [row["version"] for row in conn.execute("SELECT version FROM runkon_schema_version")]
    assert versions == [migration.version for migration in MIGRATIONS]
    conn.close()


async def test_migrations_apply_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store:
        run = await store.create_run(NewRun("wf"))
    async with SqliteStore(path) as store:  # a second open changes nothing
        assert (await store.get_run(run.id)).id == run.id
    conn = _connect(path)
    assert conn.execute("SELECT COUNT(*) FROM runkon_schema_version").fetchone()[0] == len(
        MIGRATIONS
    )
    conn.execute(
        "INSERT INTO runkon_schema_version VALUES (999, 'from the future', '2030-01-01T00:00:00Z')"
    )
    conn.close()
    with pytest.raises(SchemaVersionError) as info:
        async with SqliteStore(path):
            pass
    assert (info.value.found, info.value.supported) == (999, MIGRATIONS[-1].version)
    assert "upgrade runkon" in str(info.value)


# --------------------------------------------------------------------------- damaged rows


async def test_corrupted_json_names_table_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store:
        run = await store.create_run(NewRun("wf"))
        gen = await store.acquire_lease(run.id, "engine", 60)
        assert gen is not None
        step = await store.insert_step(NewStep(run.id, "plan", StepRole.AGENT, 0), generation=gen)
        gate = await store.open_gate(NewGate(run.id, "review", "human_approval", 1), generation=gen)
        await store.append_events(run.id, [NewEvent("note")], generation=gen)
        conn = _connect(path)
        damage = {
            ("workflow_run_steps", step.id, "markers_out"): "{not json",
            ("workflow_run_steps", gate.step_id, "gate_options"): '[{"label": "no value"}]',
            ("workflow_runs", run.id, "inputs"): '["not", "a", "map"]',
        }
        for (table, row_id, column), text in damage.items():
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (text, row_id))
        conn.execute("UPDATE runkon_events SET data = 'nope' WHERE run_id = ?", (run.id,))
        conn.close()

        reads = {
            ("workflow_run_steps", step.id, "markers_out"): store.get_step(step.id),
            ("workflow_run_steps", gate.step_id, "gate_options"): store.get_gate(gate.step_id),
            ("workflow_runs", run.id, "inputs"): store.get_run(run.id),
            ("runkon_events", f"{run.id}/1", "data"): store.read_events(run.id),
        }
        for (table, row_id, column), read in reads.items():
            with pytest.raises(CorruptRecordError) as info:
                await read
            assert (info.value.table, info.value.row_id, info.value.column) == (
                table,
                row_id,
                column,
            )
            assert repr(row_id) in str(info.value)
            assert "repair" in str(info.value)
        # Damage elsewhere does not stop the store: other rows still read.
        other = await store.create_run(NewRun("wf"))
        assert (await store.get_run(other.id)).id == other.id


async def test_malformed_timestamp_is_a_corrupt_record(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store:
        run = await store.create_run(NewRun("wf"))
        conn = _connect(path)
        conn.execute("UPDATE workflow_runs SET started_at = 'yesterday' WHERE id = ?", (run.id,))
        conn.close()
        with pytest.raises(CorruptRecordError) as info:
            await store.get_run(run.id)
        assert info.value.column == "started_at"


# --------------------------------------------------------------------------- locks, files


async def test_a_lock_held_past_the_busy_timeout_is_database_locked(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path, busy_timeout=0.2) as store:
        run = await store.create_run(NewRun("wf"))
        locker = _connect(path)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            started = anyio.current_time()
            with pytest.raises(DatabaseLockedError) as info:
                await store.request_cancel(run.id)
            assert anyio.current_time() - started >= 0.15  # it waited for the lock first
            assert info.value.path == str(path)
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            assert "busy_timeout" in str(info.value)
            assert (await store.get_run(run.id)).status is RunStatus.PENDING  # reads still work
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert await store.request_cancel(run.id)


async def test_a_write_waits_for_a_short_lock(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path, busy_timeout=5) as store:
        run = await store.create_run(NewRun("wf"))
        locker = _connect(path)
        locker.execute("BEGIN IMMEDIATE")

        async def release_soon() -> None:
            await anyio.sleep(0.2)
            locker.execute("ROLLBACK")

        async with anyio.create_task_group() as group:
            group.start_soon(release_soon)
            assert await store.request_cancel(run.id, reason="after the lock")
        locker.close()
        assert (await store.get_run(run.id)).cancel_reason == "after the lock"


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make ``path`` (file or directory) read-only, even for root (immutable attribute)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            yield
        finally:
            path.chmod(mode)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"running as root and chattr cannot protect {path}: {made.stderr!r}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_read_only_file_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store:
        run = await store.create_run(NewRun("wf"))
    with _read_only(path):
        async with SqliteStore(path) as store:
            assert (await store.get_run(run.id)).id == run.id  # reading still works
            with pytest.raises(DatabaseReadOnlyError) as info:
                await store.create_run(NewRun("wf"))
            assert info.value.path == str(path)
            assert "permissions" in str(info.value)


async def test_read_only_directory_refuses_a_new_database(tmp_path: Path) -> None:
    directory = tmp_path / "locked-dir"
    directory.mkdir()
    with _read_only(directory), pytest.raises(DatabaseReadOnlyError):
        async with SqliteStore(directory / "runkon.db"):
            pass


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(StoreBackendError) as info:
        async with SqliteStore(path):
            pass
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    with pytest.raises(StoreError):
        async with SqliteStore(tmp_path):  # a directory
            pass


# --------------------------------------------------------------------------- change feed


def _feed_tasks() -> list[asyncio.Task[object]]:
    return [
        task for task in asyncio.all_tasks() if task.get_name().startswith("runkon change feed")
    ]


async def test_one_change_feed_per_store_however_many_listen(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store, contextlib.AsyncExitStack() as streams:
        assert _feed_tasks() == []
        for _ in range(50):
            await streams.enter_async_context(store.notifications())
        assert len(_feed_tasks()) == 1
        run = await store.create_run(NewRun("wf"))
        async with SqliteStore(path) as other:
            await other.request_cancel(run.id)
        await streams.aclose()
        await anyio.lowlevel.checkpoint()
        assert [task for task in _feed_tasks() if not task.done()] == []


async def test_a_decision_from_another_connection_arrives_once(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path, notify_interval=0.02) as store:
        run = await store.create_run(NewRun("wf"))
        gen = await store.acquire_lease(run.id, "engine", 60)
        assert gen is not None
        gate = await store.open_gate(NewGate(run.id, "g", "human_approval", 0), generation=gen)
        async with store.notifications() as notes, SqliteStore(path) as other:
            await other.approve_gate(gate.step_id, by="remote")
            await store.request_cancel(run.id)  # this store's own write: delivered at commit
            with anyio.fail_after(5):
                first, second = await notes.__anext__(), await notes.__anext__()
            assert {first.kind.value, second.kind.value} == {"gate_decided", "cancel_requested"}
            decided = first if first.step_id else second
            assert decided.decision is GateDecision.APPROVED
            with anyio.move_on_after(0.2):
                extra = await notes.__anext__()
                raise AssertionError(f"delivered twice: {extra}")


async def test_old_notification_rows_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store:
        conn = _connect(path)
        conn.execute(
            "INSERT INTO runkon_notifications (kind, run_id, origin, created_at) "
            "VALUES ('cancel_requested', 'r', 'old', '2000-01-01T00:00:00.000Z')"
        )
        conn.close()
        for _ in range(260):
            run = await store.create_run(NewRun("wf"))
            await store.request_cancel(run.id)
        conn = _connect(path)
        origins = {row[0] for row in conn.execute("SELECT origin FROM runkon_notifications")}
        conn.close()
        assert "old" not in origins
        assert len(origins) == 1  # this store's recent rows are kept


async def test_inline_writes_keep_the_wal_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "runkon.db"
    async with SqliteStore(path) as store:
        run = await store.create_run(NewRun("wf"))
        gen = await store.acquire_lease(run.id, "engine", 60)
        assert gen is not None
        for position in range(1500):
            step = await store.insert_step(
                NewStep(run.id, "s", StepRole.AGENT, position), generation=gen
            )
            await store.update_step(step.id, StepUpdate(StepStatus.COMPLETED), generation=gen)
        wal = await anyio.Path(f"{path}-wal").stat()
        # Unchecked, 3,000 commits of ~5 pages would grow the WAL past 40 MB.
        assert wal.st_size < 12 * 1024 * 1024


async def test_the_change_feed_compares_each_connections_data_version_with_its_own(
    tmp_path: Path,
) -> None:
    """``PRAGMA data_version`` is per connection. The store polls on either of its two
    connections; comparing one's value with the other's missed another process's commit
    (a decision that then woke nobody): own write on A (moves B's counter, not A's), poll
    on B, another process commits, poll on A — A's new value equalled B's old one."""
    from runkon.persistence import _sqlite_ops as ops
    from runkon.persistence._records import Notification, NotificationKind
    from runkon.persistence._sqlite_tx import insert_note

    path = tmp_path / "feed.db"
    async with SqliteStore(path):  # creates the schema
        pass
    a, b, other = (sqlite3.connect(path, isolation_level=None) for _ in range(3))
    for conn in (a, b, other):
        conn.row_factory = sqlite3.Row

    def note(conn: sqlite3.Connection, origin: str) -> None:
        now = datetime.now(UTC)
        insert_note(conn, Notification(NotificationKind.CANCEL_REQUESTED, "R1", None, now), origin)

    versions, last = ops.feed_start(a)
    note(a, "this-store")  # the store's own write, through A
    changed, last, notes = ops.feed_poll(b, versions, last, "this-store")
    assert notes == []  # its own notification is not delivered back
    note(other, "another-process")
    changed, last, notes = ops.feed_poll(a, versions, last, "this-store")
    assert changed
    assert [(n.kind, n.run_id) for n in notes] == [(NotificationKind.CANCEL_REQUESTED, "R1")]
    changed, last, notes = ops.feed_poll(b, versions, last, "this-store")
    assert notes == []  # delivered once
    for conn in (a, b, other):
        conn.close()
