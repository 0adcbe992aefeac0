"""Lone surrogates in what steps emit (issue 14.10, the engine's part).

A Python string can hold a lone surrogate (``"\\ud83d"``: half an emoji from a cut JSON
escape) that UTF-8 cannot encode. What executors, scripts and item providers give the
engine is stored with each lone surrogate replaced by U+FFFD, on every store alike; the
step succeeds. Run inputs holding one are refused up front. A step write the store
refuses anyway never leaves the row ``running``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import runkon
from runkon.engine import FanOutItem, FlowEngine
from runkon.persistence import RunStatus, StepStatus, StepUpdate, Store

from ._support import Items, MakeEngine, Recorder, Reply, parse, workflows
from .test_robustness import finished_cleanly

HALF = "\ud83d"  # the first half of 😀's surrogate pair
R = "\ufffd"


async def test_an_executors_output_with_lone_surrogates_is_stored_with_replacements(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on(
        "emit",
        Reply(
            markers=[f"m{HALF}"],
            context=f"ctx {HALF} end",
            structured={"x": HALF, "pair": "\ud83d\ude00"},
            result_text=f"res{HALF}",
            metadata={"note": HALF},
        ),
    )
    wf = parse("workflow w { call emit  call next }")
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.succeeded, result.error
    emit, after = await store.get_steps(result.run_id)
    assert emit.status == StepStatus.COMPLETED
    assert emit.markers_out == (f"m{R}",)
    assert emit.context_out == f"ctx {R} end"
    assert emit.result_text == f"res{R}"
    assert emit.structured_output is not None
    assert json.loads(emit.structured_output) == {"x": R, "pair": "😀"}  # a pair is joined
    assert after.status == StepStatus.COMPLETED
    assert await finished_cleanly(store, result.run_id, RunStatus.COMPLETED) == []


async def test_a_step_emitting_only_a_lone_surrogate_completes(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """The reported case: context ``"\\ud83d"`` failed the run with "internal error"
    and left the step row ``running`` (SQLite)."""
    rec.on("emit", Reply(context=HALF))
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call emit }"))
    assert result.succeeded, result.error
    [step] = await store.get_steps(result.run_id)
    assert (step.status, step.context_out) == (StepStatus.COMPLETED, R)


async def test_an_error_message_with_a_lone_surrogate_fails_the_step_cleanly(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("emit", Reply(error=RuntimeError(f"broken {HALF}")))
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call emit }"))
    assert result.status == RunStatus.FAILED
    assert result.error is not None
    assert f"RuntimeError: broken {R}" in result.error
    assert (await store.get_run(result.run_id)).error == result.error
    [step] = await store.get_steps(result.run_id)
    assert step.step_error == f"RuntimeError: broken {R}"
    assert await finished_cleanly(store, result.run_id, RunStatus.FAILED) == []


async def test_a_scripts_flow_output_escaping_a_lone_surrogate_is_stored_with_a_replacement(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    # JSON escapes of lone surrogates: json.loads turns them into lone surrogates
    flow_output = '{"context": "a\\ud83d", "markers": ["m\\ud800"], "x": "\\udc00"}'
    (tmp_path / "out.txt").write_text(f"<<<FLOW_OUTPUT>>>\n{flow_output}\n<<<END_FLOW_OUTPUT>>>\n")
    wf = parse('workflow w { script emit { run = "cat out.txt" }  call after }')
    rec = Recorder()
    async with make_engine(fallback_action=rec) as engine:
        result = await engine.run(wf)
    assert result.succeeded, result.error
    emit, _ = await store.get_steps(result.run_id)
    assert emit.context_out == f"a{R}"
    assert emit.markers_out == (f"m{R}",)
    [after] = rec.calls
    assert after.inputs["x"] == R  # the extra field became a clean variable


async def test_item_ids_and_context_with_lone_surrogates_are_stored_with_replacements(
    make_engine: MakeEngine, store: Store
) -> None:
    child = workflows(check="workflow check { inputs { repo required } call look }")
    provider = Items("repos", [FanOutItem(f"a{HALF}", "repo", f"ref{HALF}", {"k": HALF})])
    wf = parse(
        """
        workflow w {
          foreach each { over = repos  max_parallel = 1  workflow = check
                         inputs = { repo = "{{item.id}}" } }
        }
        """
    )
    rec = Recorder()
    async with make_engine(workflows=child, item_providers=[provider], fallback_action=rec) as e:
        result = await e.run(wf)
    assert result.succeeded, result.error
    [step] = await store.get_steps(result.run_id)
    [row] = await store.get_fan_out_items(step.id)
    assert (row.item_id, row.item_ref, dict(row.context)) == (f"a{R}", f"ref{R}", {"k": R})
    assert rec.calls[0].inputs["repo"] == f"a{R}"


async def test_run_inputs_with_a_lone_surrogate_are_refused_before_any_run_exists(
    make_engine: MakeEngine, store: Store
) -> None:
    wf = parse("workflow w { inputs { ticket required } call a }")
    async with make_engine() as engine:
        with pytest.raises(runkon.InputError, match="input 'ticket' is not valid text"):
            await engine.start(wf, {"ticket": "T-\udc80"})  # e.g. argv bytes not UTF-8
    assert await store.list_runs() == []


class _RefusesCompletion:
    """A store that refuses (with an unexpected error) to record a step's completion."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update_step(self, step_id: str, update: StepUpdate, **kw: Any) -> Any:
        if update.status == StepStatus.COMPLETED:
            raise ValueError("cannot store this")
        return await self._store.update_step(step_id, update, **kw)


async def test_a_step_write_the_store_refuses_still_ends_step_and_run(
    store: Store, rec: Recorder, tmp_path: Any
) -> None:
    engine = FlowEngine(
        _RefusesCompletion(store),  # type: ignore[arg-type]
        fallback_action=rec,
        working_dir=tmp_path,
        manage_store=False,
    )
    async with engine:
        result = await engine.run(parse("workflow w { call a  call b }"))
    assert result.status == RunStatus.FAILED
    assert result.error is not None
    assert "ValueError: cannot store this" in result.error
    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.FAILED
    assert step.step_error == "the step's result could not be stored: ValueError: cannot store this"
    assert await finished_cleanly(store, result.run_id, RunStatus.FAILED) == []
    assert rec.names() == ["a"]


async def test_outputs_are_the_same_on_every_store(make_engine: MakeEngine, store: Store) -> None:
    """Both store fixtures run this: memory used to keep the surrogate, SQLite to fail."""
    rec = Recorder().on("emit", Reply(context=f"x{HALF}"))
    async with make_engine(fallback_action=rec) as engine:
        result = await engine.run(parse("workflow w { call emit }"))
    [step] = await store.get_steps(result.run_id)
    assert step.context_out == f"x{R}"
