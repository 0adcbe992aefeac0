"""SQLite: a gate row written before the selection-rule columns existed (or by
runkon-flow, which has none) keeps the old rule: any number of options, none allowed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runkon.persistence import NewRun, SqliteStore
from runkon.testing._suite_support import new_gate


async def test_a_gate_without_stored_rules_reads_as_many_and_allows_none(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SqliteStore(path) as store:
        run = await store.create_run(NewRun("wf"))
        generation = await store.acquire_lease(run.id, "me", 60)
        assert generation is not None
        gate = await store.open_gate(
            new_gate(run.id, select="one", allow_none=False), generation=generation
        )
    with sqlite3.connect(path) as conn:
        stored = conn.execute(
            "SELECT gate_select, gate_allow_none FROM workflow_run_steps WHERE id = ?",
            (gate.step_id,),
        ).fetchone()
        assert stored == ("one", 0)
        conn.execute(
            "UPDATE workflow_run_steps SET gate_select = NULL, gate_allow_none = NULL WHERE id = ?",
            (gate.step_id,),
        )
    async with SqliteStore(path) as store:
        legacy = await store.get_gate(gate.step_id)
        assert (legacy.select, legacy.allow_none) == ("many", True)
        assert (await store.approve_gate(gate.step_id, by="alice")).accepted
