"""The crash test (issue 4 item 8): a run on SQLite in a subprocess is SIGKILLed while a
step sleeps; a new engine with ``recover=True`` completes it once the dead engine's lease
has expired. Every step that had completed before the kill must not run again.

The workflow (``_crash_flow.py``) has ``call verify`` twice, a completed child workflow,
a script, and ``call fix`` nested in an ``if`` inside a ``do … while`` loop; the worker
is killed inside ``fix`` of loop iteration 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

import runkon
from runkon.engine import FlowEngine
from runkon.persistence import RunStatus, SqliteStore

from ._crash_flow import CHILD, HANG_ITERATION, HANG_STEP, LoggingExecutor

WORKER = Path(__file__).with_name("_crash_worker.py")


def entries(log: Path) -> list[tuple[str, str, str]]:
    """(phase, who, what) per log line; ``what`` identifies the execution."""
    if not log.exists():
        return []
    result = []
    for line in log.read_text().splitlines():
        phase, who, *what = line.split(" ")
        # "iter=..." and "attempt=..." stay part of the identity except the attempt
        result.append((phase, who, " ".join(w for w in what if not w.startswith("attempt="))))
    return result


def hang_reached(log: Path) -> bool:
    return any(
        phase == "start" and f" {HANG_STEP}@" in f" {what}" and f"iter={HANG_ITERATION}" in what
        for phase, _, what in entries(log)
    )


async def test_a_run_killed_with_sigkill_is_completed_by_a_new_engine(tmp_path: Path) -> None:
    db, log, run_id_file = tmp_path / "crash.db", tmp_path / "steps.log", tmp_path / "run_id"
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(log), str(run_id_file)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with anyio.fail_after(60):
            while not hang_reached(log):
                if worker.poll() is not None:
                    pytest.fail(f"worker exited early: {worker.stderr.read().decode()}")  # type: ignore[union-attr]
                await anyio.sleep(0.02)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert worker.stderr is not None
        worker.stderr.close()
    assert worker.returncode == -signal.SIGKILL

    before = entries(log)
    done_before = [what for phase, _, what in before if phase == "end"]
    # plan, verify, notify, implement, verify, stamp, review 0, fix 0, review 1 finished;
    # fix 1 started and never finished
    assert len(done_before) == 9, before
    assert len(set(done_before)) == len(done_before)
    run_id = run_id_file.read_text()

    async with SqliteStore(db) as store:
        crashed = await store.get_run(run_id)
        assert crashed.status == RunStatus.RUNNING
        assert crashed.owner_token is not None  # the dead engine still "holds" the lease
        with anyio.fail_after(10):
            while run_id not in {r.id for r in await store.list_recoverable_runs()}:
                await anyio.sleep(0.1)

        engine = FlowEngine(
            store,
            fallback_action=LoggingExecutor(str(log), "resumer"),
            workflows={"notify-child": runkon.parse_workflow(CHILD, source="notify-child.wf")},
            working_dir=tmp_path,
            manage_store=False,
            recover=True,
            lease_ttl=5,
            lease_refresh_interval=1,
        )
        async with engine:
            assert [h.run_id for h in engine.recovered] == [run_id]
            result = await engine.recovered[0].result(timeout=30)

        assert result.succeeded, result.error
        assert (await store.get_run(run_id)).status == RunStatus.COMPLETED
        children = await store.list_runs(parent_run_id=run_id)
        assert len(children) == 1  # the child workflow that completed was not run again
        events = [e.type for e in await store.read_events(run_id)]
        assert events.count("run_started") == 1
        assert events.count("run_resumed") == 1

    after = entries(log)[len(before) :]
    started_after = [what for phase, _, what in after if phase == "start"]
    # nothing that completed before the kill ran again
    assert not set(started_after) & set(done_before), started_after
    # exactly the rest ran: the interrupted fix (iteration 1), the last review, ship
    names = [what.split(" ")[1].split("@")[0] for what in started_after]
    assert names == ["fix", "review", "ship"], started_after
    assert f"iter={HANG_ITERATION}" in started_after[0]
    assert "iter=2" in started_after[1]
    # over both processes every execution finished exactly once
    finished = Counter(what for phase, _, what in entries(log) if phase == "end")
    assert set(finished.values()) == {1}
    step_names = Counter(what.split(" ")[1].split("@")[0] for what in finished)
    assert step_names == Counter(
        {
            "plan": 1,
            "verify": 2,
            "notify": 1,
            "implement": 1,
            "stamp": 1,
            "review": 3,
            "fix": 2,
            "ship": 1,
        }
    )
