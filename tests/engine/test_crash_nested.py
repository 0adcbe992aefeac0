"""Exactly-once across repeated SIGKILLs inside nested child workflows (issue 14.1).

A worker process runs ``nest-parent`` -> ``nest-child`` -> ``nest-grandchild`` on a
SQLite file and is killed with SIGKILL while the child (or the grandchild) runs; a new
worker resumes the run and is killed again at the same place, as often as asked; then
a last engine resumes it to completion. The steps that completed before a kill (the
scripts that are the first step of the child and of the grandchild, among others) must
have run once, every ``call workflow`` must have exactly one child run, and no run may
be left unfinished.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from runkon.persistence import RunStatus, SqliteStore

from ._nested_crash import engine
from ._support import until

WORKER = Path(__file__).with_name("_nested_crash.py")


def lines(log: Path) -> list[list[str]]:
    return [line.split(" ") for line in log.read_text().splitlines()] if log.exists() else []


async def kill_worker_in(tmp_path: Path, who: str, hang: str, run_id: str | None) -> None:
    """Start a worker (a new run, or resuming ``run_id``), SIGKILL it once it hangs."""
    db, log = tmp_path / "nest.db", tmp_path / "steps.log"
    args = [sys.executable, str(WORKER), str(db), str(log), str(tmp_path / "run_id"), who, hang]
    async with await anyio.open_process(
        [*args, *([run_id] if run_id else [])],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as worker:
        try:

            async def hanging() -> bool:
                if worker.returncode is not None:
                    assert worker.stderr is not None
                    errors = b"".join([chunk async for chunk in worker.stderr]).decode()
                    pytest.fail(f"worker {who} exited early: {errors}")
                return ["start", who, hang] in [line[:3] for line in lines(log)]

            await until(hanging, timeout=60, interval=0.02)
        finally:
            worker.kill()  # SIGKILL: no cleanup, no lease release
            await worker.wait()
    assert worker.returncode == -signal.SIGKILL


async def wait_until_recoverable(db: Path, run_id: str) -> None:
    """Until the killed engine's lease on ``run_id`` has expired."""
    async with SqliteStore(db) as store:

        async def recoverable() -> bool:
            return run_id in {r.id for r in await store.list_recoverable_runs()}

        await until(recoverable, timeout=30, interval=0.1)


@pytest.mark.parametrize(
    ("hang", "kills"),
    [
        pytest.param("c-wait", 2, id="child-killed-twice"),
        pytest.param("g-wait", 2, id="grandchild-killed-twice"),
        pytest.param("g-wait", 3, id="grandchild-killed-three-times"),
    ],
)
async def test_completed_steps_of_nested_children_run_once_across_repeated_kills(
    tmp_path: Path, hang: str, kills: int
) -> None:
    db, log = tmp_path / "nest.db", tmp_path / "steps.log"
    run_id: str | None = None
    for kill in range(kills):
        if run_id is not None:
            await wait_until_recoverable(db, run_id)
        await kill_worker_in(tmp_path, f"worker{kill}", hang, run_id)
        run_id = run_id or (tmp_path / "run_id").read_text()
    assert run_id is not None

    await wait_until_recoverable(db, run_id)
    async with engine(db, str(log), "resumer", None, recover=True) as flow:
        assert [h.run_id for h in flow.recovered] == [run_id]
        result = await flow.recovered[0].result(timeout=60)
    assert result.succeeded, result.error

    async with SqliteStore(db) as store:
        [child] = await store.list_runs(parent_run_id=run_id)  # one child run, never two
        [grandchild] = await store.list_runs(parent_run_id=child.id)
        runs = await store.list_runs()
        assert {r.id: r.status for r in runs} == {
            run_id: RunStatus.COMPLETED,
            child.id: RunStatus.COMPLETED,
            grandchild.id: RunStatus.COMPLETED,
        }

    ended = Counter(line[2] for line in lines(log) if line[0] == "end")
    # every step completed exactly once over all the processes
    assert ended == dict.fromkeys(
        ["p-first", "c-first", "g-first", "g-wait", "g-last", "c-wait", "c-last", "p-last"], 1
    )
    # the scripts ran in the (only) child and grandchild runs
    assert [line[3] for line in lines(log) if line[2] == "c-first"] == [f"run={child.id}"]
    assert [line[3] for line in lines(log) if line[2] == "g-first"] == [f"run={grandchild.id}"]
    # the interrupted step ran again once per kill, each time in the same run
    restarted = [line for line in lines(log) if line[0] == "start" and line[2] == hang]
    assert len(restarted) == kills + 1
    assert len({line[3] for line in restarted}) == 1
