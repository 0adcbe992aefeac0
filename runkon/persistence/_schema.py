"""The SQL schema: runkon-flow's canonical tables, then runkon's append-only migrations.

``CANONICAL_SCHEMA_DDL`` is the schema runkon-flow creates (reference §4.12): the same
tables, columns, defaults, CHECK values, unique constraint and indexes, every statement
``IF NOT EXISTS``. A database made by either engine is readable by the other.

runkon's own tables and columns are added by ``MIGRATIONS``, applied in order and recorded
in ``runkon_schema_version``. The list is append-only: never edit or reorder a released
migration; add a new one.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ("CANONICAL_SCHEMA_DDL", "MIGRATIONS", "SCHEMA_VERSION_DDL", "Migration")

CANONICAL_SCHEMA_DDL = """
CREATE TABLE IF NOT EXISTS workflow_runs (
    id                     TEXT PRIMARY KEY,
    workflow_name          TEXT NOT NULL,
    parent_run_id          TEXT,
    status                 TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled',
                          'waiting', 'needs_resume', 'cancelling')),
    dry_run                INTEGER NOT NULL DEFAULT 0,
    trigger                TEXT NOT NULL DEFAULT '',
    started_at             TEXT NOT NULL DEFAULT (datetime('now')),
    ended_at               TEXT,
    result_summary         TEXT,
    definition_snapshot    TEXT,
    inputs                 TEXT,
    parent_workflow_run_id TEXT,
    iteration              INTEGER NOT NULL DEFAULT 0,
    blocked_on             TEXT,
    total_duration_ms      INTEGER,
    error                  TEXT,
    dismissed              INTEGER NOT NULL DEFAULT 0,
    workflow_title         TEXT,
    owner_token            TEXT,
    lease_until            TEXT,
    generation             INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS workflow_run_steps (
    id                TEXT PRIMARY KEY,
    workflow_run_id   TEXT NOT NULL REFERENCES workflow_runs(id),
    step_name         TEXT NOT NULL DEFAULT '',
    role              TEXT NOT NULL DEFAULT 'agent'
        CHECK (role IN ('agent', 'gate', 'foreach', 'workflow')),
    can_commit        INTEGER NOT NULL DEFAULT 0,
    condition_expr    TEXT,
    status            TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped',
                          'waiting', 'timed_out')),
    child_run_id      TEXT,
    position          INTEGER NOT NULL DEFAULT 0,
    started_at        TEXT,
    ended_at          TEXT,
    result_text       TEXT,
    condition_met     INTEGER,
    iteration         INTEGER NOT NULL DEFAULT 0,
    parallel_group_id TEXT,
    context_out       TEXT,
    markers_out       TEXT,
    retry_count       INTEGER NOT NULL DEFAULT 0,
    gate_type         TEXT,
    gate_prompt       TEXT,
    gate_timeout      TEXT,
    gate_approved_by  TEXT,
    gate_approved_at  TEXT,
    gate_feedback     TEXT,
    structured_output TEXT,
    output_file       TEXT,
    gate_options      TEXT,
    gate_selections   TEXT,
    fan_out_total     INTEGER,
    fan_out_completed INTEGER,
    fan_out_failed    INTEGER,
    fan_out_skipped   INTEGER,
    step_error        TEXT
);

CREATE TABLE IF NOT EXISTS workflow_run_step_fan_out_items (
    id            TEXT PRIMARY KEY,
    step_run_id   TEXT NOT NULL REFERENCES workflow_run_steps(id),
    item_type     TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    item_ref      TEXT NOT NULL DEFAULT '',
    child_run_id  TEXT,
    status        TEXT NOT NULL DEFAULT 'pending',
    dispatched_at TEXT,
    completed_at  TEXT,
    context       TEXT,
    UNIQUE (step_run_id, item_type, item_id)
);

CREATE INDEX IF NOT EXISTS idx_workflow_runs_status
    ON workflow_runs(status);
CREATE INDEX IF NOT EXISTS idx_workflow_runs_parent_workflow_run_id
    ON workflow_runs(parent_workflow_run_id);
CREATE INDEX IF NOT EXISTS idx_workflow_run_steps_run
    ON workflow_run_steps(workflow_run_id);
CREATE INDEX IF NOT EXISTS idx_steps_status_gate
    ON workflow_run_steps(status, gate_type);
CREATE INDEX IF NOT EXISTS idx_workflow_run_steps_child_run_id
    ON workflow_run_steps(child_run_id);
CREATE INDEX IF NOT EXISTS idx_fan_out_items_step
    ON workflow_run_step_fan_out_items(step_run_id, status);
"""

SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS runkon_schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);
"""


class Migration(NamedTuple):
    """One schema change: its version number, what it does, and its SQL script."""

    version: int
    description: str
    script: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runkon columns on runs and steps; gate approvals, events, notifications",
        """
        ALTER TABLE workflow_runs ADD COLUMN parent_step_id TEXT;
        ALTER TABLE workflow_runs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE workflow_runs ADD COLUMN cancel_reason TEXT;
        ALTER TABLE workflow_runs ADD COLUMN cancel_requested_by TEXT;

        ALTER TABLE workflow_run_steps ADD COLUMN resume_key TEXT;
        ALTER TABLE workflow_run_steps ADD COLUMN kind TEXT;
        ALTER TABLE workflow_run_steps ADD COLUMN gate_deadline_at TEXT;
        ALTER TABLE workflow_run_steps ADD COLUMN gate_min_approvals INTEGER NOT NULL DEFAULT 1;

        CREATE TABLE runkon_gate_approvals (
            step_id     TEXT NOT NULL REFERENCES workflow_run_steps(id),
            approver    TEXT NOT NULL,
            approved_at TEXT NOT NULL,
            feedback    TEXT,
            selections  TEXT,
            UNIQUE (step_id, approver)
        );

        CREATE TABLE runkon_events (
            run_id     TEXT NOT NULL REFERENCES workflow_runs(id),
            seq        INTEGER NOT NULL,
            type       TEXT NOT NULL,
            data       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE runkon_notifications (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            kind       TEXT NOT NULL,
            run_id     TEXT NOT NULL,
            step_id    TEXT,
            decision   TEXT,
            origin     TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        CREATE INDEX idx_runkon_runs_workflow_name ON workflow_runs(workflow_name);
        """,
    ),
    Migration(
        2,
        "run options (fail_fast, ...) so that a resumed run behaves as it was started",
        """
        ALTER TABLE workflow_runs ADD COLUMN runkon_options TEXT;
        """,
    ),
    Migration(
        3,
        "engine heartbeats: one row per lease owner extends all of its runs' leases",
        """
        CREATE TABLE runkon_lease_owners (
            owner       TEXT PRIMARY KEY,
            lease_until TEXT NOT NULL
        );
        """,
    ),
    Migration(
        4,
        "what a step ran with and what its programs wrote: step inputs, stdout/stderr tails",
        """
        ALTER TABLE workflow_run_steps ADD COLUMN runkon_inputs TEXT;

        CREATE TABLE runkon_step_output (
            step_id              TEXT PRIMARY KEY REFERENCES workflow_run_steps(id),
            stdout               TEXT NOT NULL,
            stderr               TEXT NOT NULL,
            stdout_dropped_bytes INTEGER NOT NULL DEFAULT 0,
            stderr_dropped_bytes INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        5,
        "gate selection rules: select = one|many, allow_none (NULL: many, allowed)",
        """
        ALTER TABLE workflow_run_steps ADD COLUMN gate_select TEXT;
        ALTER TABLE workflow_run_steps ADD COLUMN gate_allow_none INTEGER;
        """,
    ),
)
"""runkon's schema changes, in order. Append only."""

LATEST_VERSION = MIGRATIONS[-1].version
