"""The crash test (issue 4 item 8): a run on SQLite in a subprocess is SIGKILLed while a
step sleeps; a new engine with ``recover=True`` completes it once the dead engine's lease
has expired. Every step that had completed before the kill must not run again.

The workflow (``_crash_flow.py``) has ``call verify`` twice, a child workflow, a script,
and ``call fix`` nested in an ``if`` inside a ``do … while`` loop. The worker is killed
either inside ``fix`` of loop iteration 1 (``loop``) or inside the child workflow's run
(``child``).
"""

from __future__ import annotations

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

from ._crash_flow import CHILD, HANGS, LoggingExecutor
from ._support import until

WORKER = Path(__file__).with_name("_crash_worker.py")

ALL_STEPS = Counter(
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


def entries(log: Path) -> list[tuple[str, str, str]]:
    """(phase, who, what) per log line; ``what`` identifies the execution (workflow,
    step key, iteration and run; not the attempt)."""
    if not log.exists():
        return []
    result = []
    for line in log.read_text().splitlines():
        phase, who, *what = line.split(" ")
        result.append((phase, who, " ".join(w for w in what if not w.startswith("attempt="))))
    return result


def name_of(what: str) -> str:
    return what.split(" ")[1].split("@")[0]


def run_of(what: str) -> str:
    return next(w for w in what.split(" ") if w.startswith("run=")).removeprefix("run=")


def hang_reached(log: Path, hang: str) -> bool:
    name, iteration = HANGS[hang]
    return any(
        phase == "start" and name_of(what) == name and f" iter={iteration} " in f" {what} "
        for phase, _, what in entries(log)
    )


@pytest.mark.parametrize(
    ("hang", "done_before", "rerun"),
    [
        pytest.param(
            "loop",
            ["plan", "verify", "notify", "implement", "verify", "stamp", "review", "fix", "review"],
            ["fix", "review", "ship"],
            id="killed-in-loop",
        ),
        pytest.param(
            "child",
            ["plan", "verify"],
            [
                "notify",
                "implement",
                "verify",
                "stamp",
                "review",
                "fix",
                "review",
                "fix",
                "review",
                "ship",
            ],
            id="killed-in-child",
        ),
    ],
)
async def test_a_run_killed_with_sigkill_is_completed_by_a_new_engine(
    tmp_path: Path, hang: str, done_before: list[str], rerun: list[str]
) -> None:
    db, log, run_id_file = tmp_path / "crash.db", tmp_path / "steps.log", tmp_path / "run_id"
    async with await anyio.open_process(
        [sys.executable, str(WORKER), str(db), str(log), str(run_id_file), hang],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as worker:
        try:

            async def hanging() -> bool:
                if worker.returncode is not None:
                    assert worker.stderr is not None
                    errors = b"".join([chunk async for chunk in worker.stderr]).decode()
                    pytest.fail(f"the worker exited early: {errors}")
                return hang_reached(log, hang)

            await until(hanging, timeout=60, interval=0.02)
        finally:
            worker.kill()  # SIGKILL: no cleanup, no lease release, nothing
            await worker.wait()
    assert worker.returncode == -signal.SIGKILL

    before = entries(log)
    finished_before = [what for phase, _, what in before if phase == "end"]
    assert [name_of(what) for what in finished_before] == done_before
    hung = [what for phase, _, what in before if phase == "start"][-1]
    run_id = run_id_file.read_text()

    async with SqliteStore(db) as store:
        crashed = await store.get_run(run_id)
        assert crashed.status == RunStatus.RUNNING
        assert crashed.owner_token is not None  # the dead engine still "holds" the lease

        async def recoverable() -> bool:
            return run_id in {r.id for r in await store.list_recoverable_runs()}

        await until(recoverable, interval=0.1)

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
        [child] = await store.list_runs(parent_run_id=run_id)  # one child run, never two
        assert child.status == RunStatus.COMPLETED
        events = [e.type for e in await store.read_events(run_id)]
        assert events.count("run_started") == 1
        assert events.count("run_resumed") == 1

    after = entries(log)[len(before) :]
    started_after = [what for phase, _, what in after if phase == "start"]
    # nothing that completed before the kill ran again
    assert not set(started_after) & set(finished_before), started_after
    # exactly the rest ran, starting with the step that was interrupted
    assert [name_of(what) for what in started_after] == rerun
    assert started_after[0] == hung
    if hang == "child":
        assert run_of(started_after[0]) == child.id  # the child run was resumed
    # over both processes every execution finished exactly once
    finished = Counter(what for phase, _, what in entries(log) if phase == "end")
    assert set(finished.values()) == {1}
    assert Counter(name_of(what) for what in finished) == ALL_STEPS
