"""Misbehaving extensions (a host's executor, resolver or env provider raising or
returning something odd) fail their step like any other failure: the run ends with a
status in the store, its ``always`` block runs, and nothing is left ``running``."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

import runkon
from runkon.engine import ActionOutput, ActionParams, FanOutItem, StepContext
from runkon.persistence import RunStatus, Store

from ._support import Items, MakeEngine, Recorder, parse, workflows


async def finished_cleanly(store: Store, run_id: str, status: RunStatus) -> list[str]:
    """Problems with how the run ended (empty when it ended cleanly with ``status``)."""
    problems = []
    run = await store.get_run(run_id)
    if run.status != status:
        problems.append(f"run status {run.status.value}, expected {status.value}")
    for step in await store.get_steps(run_id):
        if not step.status.is_terminal:
            problems.append(f"step {step.step_name!r} left {step.status.value}")
    return problems


async def test_a_script_env_provider_that_raises_fails_the_script_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    class Vault:
        async def env(self, ctx: StepContext, as_identity: str | None) -> Mapping[str, str]:
            raise RuntimeError("vault unreachable")

    wf = parse('workflow w { script deploy { run = "true" }  call after  always { call cleanup } }')
    async with make_engine(script_env=Vault()) as engine:
        result = await (await engine.start(wf)).result(timeout=10)

    assert result.status == RunStatus.FAILED
    assert "vault unreachable" in (result.error or "")
    assert rec.names() == ["cleanup"]
    assert await finished_cleanly(store, result.run_id, RunStatus.FAILED) == []


async def test_an_executor_output_that_is_not_json_fails_the_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async def plan(ctx: StepContext, params: ActionParams) -> ActionOutput:
        return ActionOutput(structured_output={"when": datetime.datetime.now(datetime.UTC)})

    wf = parse("workflow w { call plan  call after  always { call cleanup } }")
    async with make_engine(actions={"plan": plan}) as engine:
        result = await (await engine.start(wf)).result(timeout=10)

    assert result.status == RunStatus.FAILED
    assert "plan" in (result.error or "")
    assert rec.names() == ["cleanup"]
    assert await finished_cleanly(store, result.run_id, RunStatus.FAILED) == []


async def test_markers_that_are_not_strings_are_handled_the_same_on_every_store(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async def plan(ctx: StepContext, params: ActionParams) -> ActionOutput:
        return ActionOutput(markers=[1, None])  # type: ignore[list-item]

    wf = parse("workflow w { call plan  always { call cleanup } }")
    async with make_engine(actions={"plan": plan}) as engine:
        result = await (await engine.start(wf)).result(timeout=10)

    assert result.status.is_terminal
    assert rec.names() == ["cleanup"]
    assert await finished_cleanly(store, result.run_id, result.status) == []


async def test_a_workflow_resolver_that_raises_fails_the_call_workflow_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    child = runkon.parse_workflow("workflow child { call inner }")

    class FlakyShare:
        """Resolves once (validation at start), then the network share goes away."""

        def __init__(self) -> None:
            self.calls = 0

        def resolve(self, name: str) -> runkon.WorkflowDef:
            self.calls += 1
            if self.calls > 1:
                raise OSError("stale NFS handle")
            return child

    wf = parse("workflow w { call workflow child  always { call cleanup } }")
    async with make_engine(workflows=FlakyShare()) as engine:
        result = await (await engine.start(wf)).result(timeout=10)

    assert result.status == RunStatus.FAILED
    assert "stale NFS handle" in (result.error or "")
    assert rec.names() == ["cleanup"]
    assert await finished_cleanly(store, result.run_id, RunStatus.FAILED) == []


async def test_an_item_provider_returning_non_string_context_fails_the_foreach_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items("repos", [FanOutItem(item_id="a", context={"stars": 5})])  # type: ignore[dict-item]
    child = workflows(check="workflow repo-check { call check }")
    wf = parse(
        """
        workflow w {
          foreach each { over = repos  max_parallel = 1  workflow = repo-check }
          always { call cleanup }
        }
        """
    )
    async with make_engine(item_providers=[provider], workflows=child) as engine:
        result = await (await engine.start(wf)).result(timeout=10)

    assert result.status == RunStatus.FAILED
    assert "stars" in (result.error or "")
    assert rec.names() == ["cleanup"]
    assert await finished_cleanly(store, result.run_id, RunStatus.FAILED) == []
