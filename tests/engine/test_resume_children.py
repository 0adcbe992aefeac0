"""Child runs across repeated interruptions (issue 14.1).

Exactly-once for the completed steps of ``call workflow`` children and ``foreach`` items,
however many times the run is interrupted and at whatever depth: the same child run is
continued each time, never a second one started. The crash windows between creating a
child run and recording its id on the parent are covered with a store whose write of
that id never finishes (the process "dies" right before it). The real SIGKILL version is
``test_crash_nested.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from runkon.engine import EngineShutdownError, FlowEngine
from runkon.persistence import (
    FanOutItemStatus,
    FanOutItemUpdate,
    RunStatus,
    StepStatus,
    StepUpdate,
    Store,
)

from ._support import FOREVER, Items, MakeEngine, Recorder, item, parse, workflows

CHILDREN = workflows(
    review="workflow review { call one  call workflow deep  call two  call three }",
    deep="workflow deep { call d-one  call d-two }",
)


async def interrupt_at(
    make_engine: MakeEngine, run_id: str | None, at: str
) -> tuple[str, Recorder]:
    """Start (or resume ``run_id``) and stop the engine once ``at`` runs."""
    rec = Recorder().on(at, FOREVER)
    async with make_engine(fallback_action=rec, workflows=CHILDREN) as engine:
        if run_id is None:
            handle = await engine.start(parse("workflow w { call workflow review  call after }"))
        else:
            handle = await engine.resume(run_id)
        await rec.started(at)
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    return handle.run_id, rec


async def statuses(store: Store) -> set[RunStatus]:
    """The statuses of all runs in the store."""
    return {run.status for run in await store.list_runs()}


@pytest.mark.parametrize(
    ("at", "done_first"),
    [
        pytest.param("two", ["one", "d-one", "d-two"], id="in-the-child"),
        pytest.param("d-two", ["one", "d-one"], id="in-the-grandchild"),
    ],
)
async def test_a_child_interrupted_three_times_runs_each_completed_step_once(
    make_engine: MakeEngine, store: Store, at: str, done_first: list[str]
) -> None:
    run_id, first = await interrupt_at(make_engine, None, at)
    assert [c.name for c in first.finished] == done_first
    executions = [first]
    for _ in range(2):
        _, again = await interrupt_at(make_engine, run_id, at)
        assert again.names() == [at]  # only the interrupted step ran again
        executions.append(again)

    last = Recorder()
    async with make_engine(fallback_action=last, workflows=CHILDREN) as engine:
        result = await (await engine.resume(run_id)).result(timeout=10)
    assert result.succeeded, result.error
    finished = [c.name for rec in [*executions, last] for c in rec.finished]
    assert sorted(finished) == sorted(["one", "d-one", "d-two", "two", "three", "after"])
    [child] = await store.list_runs(parent_run_id=run_id)
    [grandchild] = await store.list_runs(parent_run_id=child.id)
    assert {c.run_id for rec in executions for c in rec.of(at)} == {
        grandchild.id if at == "d-two" else child.id
    }
    assert await statuses(store) == {RunStatus.COMPLETED}
    for rid in (run_id, child.id, grandchild.id):
        assert not [s for s in await store.get_steps(rid) if not s.is_terminal]


class _DiesBeforeRecordingAChild:
    """A store whose write of a new child's run id onto the parent never finishes: the
    state a crash right after creating the child run leaves behind."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_step(self, step_id: str, update: StepUpdate, **kw: Any) -> Any:
        if update.status == StepStatus.RUNNING and update.child_run_id is not None:
            self.held.set()
            await anyio.sleep_forever()
        return await self._store.update_step(step_id, update, **kw)

    async def update_fan_out_items(
        self, updates: list[tuple[str, FanOutItemUpdate]], **kw: Any
    ) -> Any:
        if any(update.child_run_id is not None for _, update in updates):
            self.held.set()
            await anyio.sleep_forever()
        return await self._store.update_fan_out_items(updates, **kw)


def _engine(store: Any, rec: Recorder, tmp_path: Path, **options: Any) -> FlowEngine:
    return FlowEngine(
        store,
        fallback_action=rec,
        working_dir=tmp_path,
        manage_store=False,
        lease_ttl=0.5,
        lease_refresh_interval=0.2,
        **options,
    )


async def test_a_child_created_but_not_yet_recorded_by_the_parent_is_continued(
    store: Store, tmp_path: Path
) -> None:
    child = workflows(review="workflow review { call one }")
    wf = parse("workflow w { call workflow review  call after }")
    dying = _DiesBeforeRecordingAChild(store)
    async with _engine(dying, Recorder(), tmp_path, workflows=child) as engine:
        handle = await engine.start(wf)
        with anyio.fail_after(5):
            await dying.held.wait()
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    [orphan] = await store.list_runs(parent_run_id=handle.run_id)

    rec = Recorder()
    async with _engine(store, rec, tmp_path, workflows=child) as engine:
        result = await (await engine.resume(handle.run_id)).result(timeout=10)
    assert result.succeeded, result.error
    assert rec.names() == ["one", "after"]
    assert [r.id for r in await store.list_runs(parent_run_id=handle.run_id)] == [orphan.id]
    assert await statuses(store) == {RunStatus.COMPLETED}
    [row] = [s for s in await store.get_steps(handle.run_id) if s.step_name == "workflow:review"]
    assert row.child_run_id == orphan.id


async def test_a_foreach_child_created_but_not_yet_recorded_on_its_item_is_continued(
    store: Store, tmp_path: Path
) -> None:
    child = workflows(check="workflow repo-check { inputs { repo required } call check }")
    provider = Items("repos", [item("a"), item("b")])
    wf = parse(
        """
        workflow w {
          foreach each { over = repos  max_parallel = 1  workflow = repo-check
                         inputs = { repo = "{{item.id}}" } }
        }
        """
    )
    options: dict[str, Any] = {"workflows": child, "item_providers": [provider]}
    dying = _DiesBeforeRecordingAChild(store)
    async with _engine(dying, Recorder(), tmp_path, **options) as engine:
        handle = await engine.start(wf)
        with anyio.fail_after(5):
            await dying.held.wait()
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    [orphan] = await store.list_runs(parent_run_id=handle.run_id)

    rec = Recorder()
    async with _engine(store, rec, tmp_path, **options) as engine:
        result = await (await engine.resume(handle.run_id)).result(timeout=10)
    assert result.succeeded, result.error
    assert sorted(c.inputs["repo"] for c in rec.calls) == ["a", "b"]
    children = await store.list_runs(parent_run_id=handle.run_id)
    assert len(children) == 2
    assert orphan.id in {r.id for r in children}
    assert await statuses(store) == {RunStatus.COMPLETED}
    [step] = await store.get_steps(handle.run_id)
    items = await store.get_fan_out_items(step.id)
    assert {r.status for r in items} == {FanOutItemStatus.COMPLETED}
    assert orphan.id in {r.child_run_id for r in items}
