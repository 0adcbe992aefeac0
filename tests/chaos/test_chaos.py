"""The SIGKILL chaos campaign, bounded (issue 14): a few trials of
``python -m benchmarks.chaos`` in every test run.

Each trial runs a workflow with every node kind (a parallel block with a retried call,
``call workflow`` two levels deep, ``foreach``, ``do … while`` and ``while`` loops,
``if``/``unless``, a gate approved from another process, a gate that times out, scripts,
``always``) in a worker process on a SQLite file, kills the worker with SIGKILL 1-3 times
and resumes the run in a new process after each kill. Then it checks that no completed
step ran twice, every run (children included) ended, each run's events have no gaps and
``PRAGMA integrity_check`` is ok (``benchmarks/_chaos_campaign.py`` has the details).

The random trials' seed is printed when one fails; ``RUNKON_CHAOS_SEED=S`` reruns them,
``RUNKON_CHAOS_TRIALS=N`` sets how many run (default 3). The tests carry the marker
``chaos`` (``-m "not chaos"`` leaves them out); they take ~1-2 minutes on two cores.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from benchmarks._chaos_campaign import (
    DIRECTED,
    TrialResult,
    Workers,
    check,
    prepare,
    random_plan,
    run_trial,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

SEED = int(os.environ.get("RUNKON_CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
TRIALS = int(os.environ.get("RUNKON_CHAOS_TRIALS", "3"))


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The workflows and the step programs, written once."""
    return prepare(tmp_path_factory.mktemp("chaos"))


@pytest.fixture(scope="module")
def workers() -> Iterator[Workers]:
    """Worker processes started ahead, shared by the trials."""
    pool = Workers()
    yield pool
    pool.close()


@pytest.mark.parametrize("name", list(DIRECTED))
async def test_a_directed_trial_keeps_every_invariant(
    name: str, programs: tuple[Path, Path], workers: Workers, tmp_path: Path
) -> None:
    plan = DIRECTED[name]
    result = await run_trial(plan, tmp_path / "trial", *programs, workers)
    assert result.ok, result.report()
    assert result.kills == len(plan.kills), result.report()  # every kill struck as planned
    if name == "gate-waiting":
        assert_the_checks_see_tampering(result.directory, tmp_path)


def assert_the_checks_see_tampering(trial: Path, tmp_path: Path) -> None:
    """The checks are not blind: each kind of damage, done to a copy of a good trial's
    database or log, is reported."""

    def checked(name: str, damage: Callable[[sqlite3.Connection, Path], None]) -> TrialResult:
        copy = tmp_path / name
        shutil.copytree(trial, copy)
        with closing(sqlite3.connect(copy / "chaos.db")) as conn, conn:
            damage(conn, copy / "steps.log")
        result = TrialResult(DIRECTED["gate-waiting"], copy)
        check(copy / "chaos.db", copy / "steps.log", result)
        return result

    def run_again(conn: sqlite3.Connection, log: Path) -> None:
        line = next(line for line in log.read_text().splitlines() if line.startswith("call "))
        with log.open("a") as out:
            out.write(line + "\n")  # the same step row executed a second time

    def child_left_running(conn: sqlite3.Connection, log: Path) -> None:
        conn.execute("UPDATE workflow_runs SET status = 'running' WHERE workflow_name = 'deep'")

    def event_lost(conn: sqlite3.Connection, log: Path) -> None:
        conn.execute("DELETE FROM runkon_events WHERE seq = 2")

    def file_damaged(conn: sqlite3.Connection, log: Path) -> None:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.commit()
        path = Path(conn.execute("PRAGMA database_list").fetchone()[2])
        data = bytearray(path.read_bytes())
        page = 4096
        data[2 * page : 3 * page] = b"\xa5" * page  # a b-tree page overwritten
        path.write_bytes(bytes(data))

    assert checked("good", lambda conn, log: None).ok
    assert checked("duplicate", run_again).duplicates
    assert checked("stuck", child_left_running).stuck
    assert checked("gap", event_lost).gaps
    assert checked("integrity", file_damaged).integrity


@pytest.mark.parametrize("index", range(TRIALS))
async def test_a_random_trial_keeps_every_invariant(
    index: int, programs: tuple[Path, Path], workers: Workers, tmp_path: Path
) -> None:
    result = await run_trial(random_plan(SEED, index), tmp_path / "trial", *programs, workers)
    assert result.ok, (
        f"{result.report()}\nreproduce: RUNKON_CHAOS_SEED={SEED} pytest "
        f"'tests/chaos/test_chaos.py::test_a_random_trial_keeps_every_invariant[{index}]', "
        f"or: python -m benchmarks.chaos --seed {SEED} --first {index} --trials 1"
    )
    assert result.kills >= 1 or result.runs > 0, result.report()
