"""A run's working directory is part of the run (issue 14.8, issue 10.2).

Its scripts (and action programs, through ``StepContext.working_dir``) run in the
directory the run was started in, also when it is resumed, cancelled or recovered by an
engine started elsewhere; a resume refuses, leaving the run resumable, when that
directory is gone.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import structlog.testing

import runkon
import runkon.persistence
from runkon.engine import ActionRegistry, EngineShutdownError
from runkon.persistence import RunStatus, Store

from ._support import FOREVER, MakeEngine, Recorder, parse, workflows

WRITES_WHERE = parse(
    """
    workflow w {
      call a
      script here { run = "pwd > where.txt" }
    }
    """
)


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "A", tmp_path / "B"
    first.mkdir()
    second.mkdir()
    return first, second


def same_place(path: str, directory: Path) -> bool:
    return os.path.samefile(path, directory)


def ran_in(directory: Path) -> bool:
    where = directory / "where.txt"
    return where.exists() and os.path.samefile(where.read_text().strip(), directory)


async def interrupted_run(
    make_engine: MakeEngine, rec: Recorder, engine_dir: Path | None = None, **start: object
) -> str:
    """Start ``WRITES_WHERE`` and stop its engine while ``a`` runs: the run stays resumable."""
    rec.on("a", FOREVER)
    async with make_engine(working_dir=engine_dir) as engine:
        handle = await engine.start(WRITES_WHERE, **start)  # type: ignore[arg-type]
        await rec.started("a")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    return handle.run_id


async def test_a_resumed_run_runs_its_scripts_where_it_started_not_where_the_engine_is(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    first, second = dirs(tmp_path)
    run_id = await interrupted_run(make_engine, rec, working_dir=first)
    assert (await store.get_run(run_id)).working_dir == str(first)

    async with make_engine(fallback_action=Recorder(), working_dir=second) as engine:
        result = await (await engine.resume(run_id)).result(timeout=10)

    assert result.succeeded
    assert ran_in(first)
    assert not (second / "where.txt").exists()


async def test_by_default_a_run_keeps_the_current_directory_at_its_start(
    make_engine: MakeEngine,
    rec: Recorder,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = dirs(tmp_path)
    monkeypatch.chdir(first)
    run_id = await interrupted_run(make_engine, rec)  # the engine gets no working_dir
    stored = (await store.get_run(run_id)).working_dir
    assert stored is not None
    assert Path(stored).is_absolute()
    assert same_place(stored, first)

    monkeypatch.chdir(second)
    async with make_engine(fallback_action=Recorder(), working_dir=None) as engine:
        assert (await (await engine.resume(run_id)).result(timeout=10)).succeeded
    assert ran_in(first)
    assert not (second / "where.txt").exists()


async def test_a_relative_working_dir_is_stored_absolute(
    make_engine: MakeEngine,
    rec: Recorder,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, _ = dirs(tmp_path)
    monkeypatch.chdir(tmp_path)
    async with make_engine() as engine:
        result = await engine.run(WRITES_WHERE, working_dir="A")
    assert result.succeeded
    assert (await store.get_run(result.run_id)).working_dir == str(first)
    assert ran_in(first)


async def test_an_interrupted_cancellation_runs_the_always_block_in_the_runs_directory(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    first, second = dirs(tmp_path)
    wf = parse('workflow w { call a  always { script here { run = "pwd > where.txt" } } }')
    rec.on("a", FOREVER)
    async with make_engine() as engine:
        handle = await engine.start(wf, working_dir=first)
        await rec.started("a")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    async with make_engine(fallback_action=Recorder(), working_dir=second) as engine:
        assert await engine.cancel_run(handle.run_id, reason="stop")  # nobody drives it
        result = await (await engine.resume(handle.run_id)).result(timeout=10)

    assert result.status == RunStatus.CANCELLED
    assert ran_in(first)
    assert not (second / "where.txt").exists()


async def test_a_child_workflow_runs_in_its_parents_directory(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    first, second = dirs(tmp_path)
    children = workflows(child='workflow child { script here { run = "pwd > where.txt" } }')
    async with make_engine(workflows=children, working_dir=second) as engine:
        result = await engine.run(parse("workflow w { call workflow child }"), working_dir=first)
    assert result.succeeded
    assert ran_in(first)
    [child] = await store.list_runs(parent_run_id=result.run_id)
    assert child.working_dir == str(first)


async def test_a_resume_refuses_when_the_directory_is_gone_and_leaves_the_run_resumable(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    first, second = dirs(tmp_path)
    run_id = await interrupted_run(make_engine, rec, working_dir=first)
    first.rename(tmp_path / "moved")

    async with make_engine(fallback_action=Recorder(), working_dir=second) as engine:
        with pytest.raises(runkon.WorkingDirectoryError) as caught:
            await engine.resume(run_id)
    assert caught.value.run_id == run_id
    assert caught.value.working_dir == str(first)
    assert repr(str(first)) in str(caught.value)
    assert run_id in str(caught.value)
    run = await store.get_run(run_id)
    assert run.status == RunStatus.RUNNING
    assert run.owner_token is None

    with structlog.testing.capture_logs() as logs:
        async with make_engine(fallback_action=Recorder(), recover=True) as engine:
            assert engine.recovered == []
    [log] = [entry for entry in logs if entry.get("run_id") == run_id]
    assert log["event"] == "run not recovered; it stays resumable"
    assert str(first) in log["error"]
    assert (await store.get_run(run_id)).status == RunStatus.RUNNING

    (tmp_path / "moved").rename(first)  # the directory is back: the run resumes
    async with make_engine(fallback_action=Recorder()) as engine:
        assert (await (await engine.resume(run_id)).result(timeout=10)).succeeded
    assert ran_in(first)


async def test_start_refuses_a_working_dir_that_is_not_a_directory(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    async with make_engine() as engine:
        with pytest.raises(runkon.WorkingDirectoryError, match="not a directory"):
            await engine.start(WRITES_WHERE, working_dir=tmp_path / "missing")
    assert await store.list_runs() == []


async def test_the_hosts_memo_is_kept_with_the_run(make_engine: MakeEngine, store: Store) -> None:
    async with make_engine() as engine:
        result = await engine.run(
            parse("workflow w { call a }"), memo={"actions": "tools/", "who": "ci"}
        )
        with pytest.raises(TypeError, match="memo"):
            await engine.start(parse("workflow w { call a }"), memo={"n": 1})  # type: ignore[dict-item]
    run = await store.get_run(result.run_id)
    assert run.memo == {"actions": "tools/", "who": "ci"}
    assert run.options["fail_fast"] == "true"


async def test_run_actions_gives_a_resumed_run_and_its_children_their_own_executors(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    children = workflows(child="workflow child { call inner }")
    wf = parse("workflow w { call a  call workflow child  call b }")
    rec.on("a", FOREVER)
    async with make_engine(workflows=children) as engine:
        handle = await engine.start(wf, memo={"team": "blue"})
        await rec.started("a")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    engines_own, runs_own = Recorder(), Recorder()
    seen: list[dict[str, str]] = []

    def run_actions(run: runkon.persistence.RunRecord) -> ActionRegistry | None:
        seen.append(run.memo)
        return ActionRegistry(fallback=runs_own)

    async with make_engine(
        fallback_action=engines_own, workflows=children, run_actions=run_actions
    ) as engine:
        result = await (await engine.resume(handle.run_id)).result(timeout=10)

    assert result.succeeded
    assert seen == [{"team": "blue"}]
    assert runs_own.names() == ["a", "inner", "b"]
    assert engines_own.names() == []


async def test_a_failing_run_actions_refuses_the_resume_and_recovery_skips_the_run(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    run_id = await interrupted_run(make_engine, rec, working_dir=tmp_path)

    def run_actions(run: runkon.persistence.RunRecord) -> ActionRegistry | None:
        raise ValueError("no such module 'tools'")

    async with make_engine(fallback_action=Recorder(), run_actions=run_actions) as engine:
        with pytest.raises(runkon.ExecutionError, match="no such module 'tools'"):
            await engine.resume(run_id)
    with structlog.testing.capture_logs() as logs:
        async with make_engine(run_actions=run_actions, recover=True) as engine:
            assert engine.recovered == []
    assert any(entry.get("run_id") == run_id for entry in logs)
    run = await store.get_run(run_id)
    assert run.status == RunStatus.RUNNING
    assert run.owner_token is None


async def test_a_run_stored_before_runs_kept_their_directory_resumes_in_the_engines(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    if not isinstance(store, runkon.SqliteStore):
        pytest.skip("rewrites a row of a real SQLite file")
    first, second = dirs(tmp_path)
    run_id = await interrupted_run(make_engine, rec, working_dir=first)
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute(
            'UPDATE workflow_runs SET runkon_options = \'{"fail_fast": "true"}\' WHERE id = ?',
            (run_id,),
        )
    assert (await store.get_run(run_id)).working_dir is None

    async with make_engine(fallback_action=Recorder(), working_dir=second) as engine:
        assert (await (await engine.resume(run_id)).result(timeout=10)).succeeded
    assert ran_in(second)
