"""Step identity and resume (reference §3.9 and §7 items 13-17).

A run is interrupted by stopping its engine while a step is executing (the run stays
resumable); a second engine with a fresh recorder resumes it. What the second recorder
sees is exactly what ran again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

import anyio
import pytest
import structlog.testing

import runkon
import runkon.errors
from runkon.engine import EngineShutdownError, FlowEngine, RunAlreadyOwnedError, WorkflowResult
from runkon.persistence import FanOutItemStatus, RunStatus, StepStatus, Store

from ._support import (
    FOREVER,
    OK,
    Items,
    MakeEngine,
    Recorder,
    Reply,
    event_types,
    events,
    item,
    parse,
    waiting_gates,
    workflows,
)

NEEDS = Reply(markers=["needs_changes"])


async def interrupt(
    make_engine: MakeEngine,
    rec: Recorder,
    wf: runkon.WorkflowDef,
    inputs: Mapping[str, object] | None = None,
    *,
    at: str,
    count: int = 1,
    **options: object,
) -> str:
    """Run ``wf`` until ``at`` has started ``count`` times, then stop the engine."""
    async with make_engine(**options) as engine:
        handle = await engine.start(wf, inputs)
        await rec.started(at, count)
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    return handle.run_id


async def resume(
    make_engine: MakeEngine, run_id: str, **options: object
) -> tuple[Recorder, WorkflowResult]:
    again = Recorder()
    async with make_engine(fallback_action=again, **options) as engine:
        handle = await engine.resume(run_id)
        result = await handle.result(timeout=10)
    return again, result


async def test_an_engine_shutdown_leaves_the_run_resumable(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b  call c }")
    run_id = await interrupt(make_engine, rec, wf, at="b")

    run = await store.get_run(run_id)
    assert run.status == RunStatus.RUNNING  # not cancelled, not failed
    assert run.owner_token is None  # the lease was given back

    again, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert again.names() == ["b", "c"]
    types = await event_types(store, run_id)
    assert types.count("run_started") == 1
    assert types.count("run_resumed") == 1


async def test_run_resumed_counts_the_steps_it_skips(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """``run_resumed.skipped_steps``: only ``a`` is skipped; ``b`` (interrupted, its row
    recorded failed) runs again and must not be counted as skipped."""
    rec.on("b", FOREVER)
    run_id = await interrupt(
        make_engine, rec, parse("workflow w { call a  call b  call c }"), at="b"
    )
    again, _ = await resume(make_engine, run_id)
    assert again.names() == ["b", "c"]
    [resumed] = [e for e in await events(store, run_id) if e.type == "run_resumed"]
    assert resumed.data["skipped_steps"] == 1


async def test_resume_restores_markers_and_context_of_completed_steps(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("a", Reply(markers=["go"], context="context of a", structured={"n": 1}))
    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b  if a.go { call c }  unless a.go { call d } }")
    run_id = await interrupt(make_engine, rec, wf, at="b")

    again, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert again.names() == ["b", "c"]
    b = again.of("b")[0]
    assert b.inputs["prior_context"] == "context of a"
    assert b.inputs["prior_output"] == '{"n": 1}'


async def test_resume_restores_flow_output_variables_of_completed_steps(
    make_engine: MakeEngine, rec: Recorder, tmp_path: object
) -> None:
    """A FLOW_OUTPUT extra (``{{branch_name}}``, reference §3.4 item 10) is part of the
    variable map derived from completed steps; after a resume a later step must still
    see it, as it would have without the interruption."""
    (tmp_path / "out.txt").write_text(  # type: ignore[operator]
        '<<<FLOW_OUTPUT>>>\n{"markers": [], "context": "c", "branch_name": "feat/x"}\n'
        "<<<END_FLOW_OUTPUT>>>\n"
    )
    rec.on("push", FOREVER)
    wf = parse(
        """
        workflow w {
          script make-branch { run = "cat out.txt" }
          call push
          script use { run = "printf '%s' {{branch_name}} > used.txt" }
        }
        """
    )
    run_id = await interrupt(make_engine, rec, wf, at="push")
    assert rec.of("push")[0].inputs["branch_name"] == "feat/x"

    again, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert again.of("push")[0].inputs.get("branch_name") == "feat/x"
    assert (tmp_path / "used.txt").read_text() == "feat/x"  # type: ignore[operator]


async def test_repeated_step_names_each_resume_on_their_own(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """Reference §7 item 13: ``call verify`` twice; the second must not be skipped
    because the first completed."""
    rec.on("verify", Reply(markers=["first_pass"]), FOREVER)
    wf = parse(
        """
        workflow w {
          call verify
          call implement
          call verify
          if verify.second_pass { call ship }
        }
        """
    )
    run_id = await interrupt(make_engine, rec, wf, at="verify", count=2)

    again = Recorder().on("verify", Reply(markers=["second_pass"]))
    async with make_engine(fallback_action=again) as engine:
        result = await (await engine.resume(run_id)).result(timeout=10)

    assert result.succeeded
    assert again.names() == ["verify", "ship"]
    keys = [s.resume_key for s in await store.get_steps(run_id) if s.step_name == "verify"]
    assert len(set(keys)) == 2


async def test_resume_before_the_second_occurrence_skips_only_the_first(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("implement", FOREVER)
    wf = parse("workflow w { call verify  call implement  call verify }")
    run_id = await interrupt(make_engine, rec, wf, at="implement")
    again, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert again.names() == ["implement", "verify"]


async def test_steps_nested_in_if_inside_a_do_while_resume_per_iteration(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """Reference §7 items 14 and 17: a step in an ``if`` in a loop had iteration 0 in
    every iteration, so a resume skipped it in later iterations; do-while did not
    fast-forward."""
    rec.on("review", NEEDS, NEEDS, OK)
    rec.on("fix", Reply(context="fixed 0"), FOREVER)
    wf = parse(
        """
        workflow w {
          do {
            max_iterations = 5
            call review
            if review.needs_changes { call fix }
          } while review.needs_changes
          call merge
        }
        """
    )
    run_id = await interrupt(make_engine, rec, wf, at="fix", count=2)
    assert rec.names() == ["review", "fix", "review", "fix"]

    again = Recorder().on("review", OK)
    async with make_engine(fallback_action=again) as engine:
        result = await (await engine.resume(run_id)).result(timeout=10)

    assert result.succeeded
    assert again.names() == ["fix", "review", "merge"]
    assert again.of("fix")[0].iteration == 1
    assert again.of("review")[0].iteration == 2
    completed_fixes = [
        s for s in await store.get_steps(run_id) if s.step_name == "fix" and s.status == "completed"
    ]
    assert [s.iteration for s in completed_fixes] == [0, 1]


async def test_a_while_loop_resumes_in_the_iteration_it_stopped_in(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("check", NEEDS, NEEDS, FOREVER)
    wf = parse(
        """
        workflow w {
          call check
          while check.needs_changes {
            max_iterations = 5
            do { call fix }
            call check
          }
        }
        """
    )
    run_id = await interrupt(make_engine, rec, wf, at="check", count=3)
    assert rec.names() == ["check", "fix", "check", "fix", "check"]

    again, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert again.names() == ["check"]
    assert again.calls[0].iteration == 1


async def test_a_path_agent_is_skipped_on_resume(make_engine: MakeEngine, rec: Recorder) -> None:
    """Reference §7 item 15: path agents were never skipped."""
    rec.on("next", FOREVER)
    wf = parse('workflow w { call ".claude/agents/plan.md"  call next }')
    run_id = await interrupt(make_engine, rec, wf, at="next")
    assert rec.names() == [".claude/agents/plan.md", "next"]
    again, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert again.names() == ["next"]


async def test_a_completed_child_workflow_is_not_rerun_and_its_markers_survive(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """Reference §7 item 16: after a resume ``if <child>.marker`` saw nothing."""
    child = workflows(review="workflow review { call aggregate }")
    rec.on("aggregate", Reply(markers=["blocking"], context="1 blocker"))
    rec.on("hold", FOREVER)
    wf = parse(
        """
        workflow w {
          call workflow review
          call hold
          if review.blocking { call escalate }
          if aggregate.blocking { call fix }
        }
        """
    )
    run_id = await interrupt(make_engine, rec, wf, at="hold", workflows=child)
    again, result = await resume(make_engine, run_id, workflows=child)
    assert result.succeeded
    assert again.names() == ["hold", "escalate", "fix"]


async def test_a_child_interrupted_by_an_engine_shutdown_is_resumed_not_restarted(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    child = workflows(review="workflow review { call one  call two  call three }")
    rec.on("two", FOREVER)
    wf = parse("workflow w { call workflow review  call after }")
    run_id = await interrupt(make_engine, rec, wf, at="two", workflows=child)
    child_run_id = rec.of("two")[0].run_id

    again, result = await resume(make_engine, run_id, workflows=child)
    assert result.succeeded
    assert again.names() == ["two", "three", "after"]
    assert again.of("two")[0].run_id == child_run_id  # the same child run continued
    assert (await store.get_run(child_run_id)).status == RunStatus.COMPLETED
    assert len(await store.list_runs(parent_run_id=run_id)) == 1


async def test_parallel_calls_that_completed_are_not_rerun(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("slow", FOREVER).on("fast", Reply(markers=["ok"]))
    wf = parse(
        """
        workflow w {
          parallel { call fast  call slow }
          if fast.ok { call after }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await rec.wait_for(lambda: len(rec.finished) == 1 and bool(rec.of("slow")))
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    again, result = await resume(make_engine, handle.run_id)
    assert result.succeeded
    assert again.names() == ["slow", "after"]


@pytest.mark.parametrize(
    "wait_for_expiry",
    [pytest.param(True, id="after-lease-expiry"), pytest.param(False, id="at-once")],
)
async def test_a_foreach_item_left_running_is_run_again_on_resume(
    make_engine: MakeEngine, rec: Recorder, store: Store, wait_for_expiry: bool
) -> None:
    """Reference §7 item 21: rows left ``running`` by a crash were never re-dispatched.

    ``after-lease-expiry`` is the crash case (the dead engine's leases ran out);
    ``at-once`` resumes right after a clean engine shutdown, which must work too."""
    child = workflows(check="workflow repo-check { inputs { repo required } call check }")
    provider = Items("repos", [item("a"), item("b"), item("c")])

    async def hang_on_b(ctx: object, params: object) -> None:
        if params.inputs["repo"] == "b":  # type: ignore[attr-defined]
            await anyio.sleep(30)

    rec.on("check", Reply(hook=hang_on_b))
    wf = parse(
        """
        workflow w {
          foreach each { over = repos  max_parallel = 1  workflow = repo-check
                         inputs = { repo = "{{item.id}}" } }
        }
        """
    )
    leases = {"lease_ttl": 0.5, "lease_refresh_interval": 0.2}
    run_id = await interrupt(
        make_engine,
        rec,
        wf,
        at="check",
        count=2,
        workflows=child,
        item_providers=[provider],
        **leases,
    )
    assert [c.inputs["repo"] for c in rec.calls] == ["a", "b"]
    [step] = await store.get_steps(run_id)
    rows = {r.item_id: r.status for r in await store.get_fan_out_items(step.id)}
    assert rows["a"] == FanOutItemStatus.COMPLETED
    assert rows["b"] == FanOutItemStatus.RUNNING

    if wait_for_expiry:
        await anyio.sleep(0.7)
    again, result = await resume(
        make_engine, run_id, workflows=child, item_providers=[provider], **leases
    )
    assert result.succeeded, result.error
    assert [c.inputs["repo"] for c in again.calls] == ["b", "c"]
    rows = {r.item_id: r.status for r in await store.get_fan_out_items(step.id)}
    assert set(rows.values()) == {FanOutItemStatus.COMPLETED}


async def test_gate_feedback_is_restored_on_resume(make_engine: MakeEngine, rec: Recorder) -> None:
    rec.on("implement", FOREVER)
    wf = parse(
        """
        workflow w {
          gate answers { type = human_review  timeout = "1h" }
          call implement
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await waiting_gates(engine, handle.run_id)
        await engine.approve_gate(handle.run_id, "answers", by="ann", feedback="use plan B")
        await rec.started("implement")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    again, result = await resume(make_engine, handle.run_id)
    assert result.succeeded
    [implement] = again.calls
    assert implement.gate_feedback == "use plan B"
    assert implement.inputs["gate_feedback"] == "use plan B"


async def test_a_waiting_gate_keeps_its_absolute_deadline_across_a_resume(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """Reference §7 item 1: the deadline was in-process, so every resume restarted it."""
    wf = parse(
        """
        workflow w {
          gate approval { type = human_approval  timeout = "2s"  on_timeout = continue }
          call after
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        gates = await waiting_gates(engine, handle.run_id)
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    deadline = gates[0].deadline_at
    await anyio.sleep(2.2)  # the deadline passes while no engine drives the run

    began = time.monotonic()
    again, result = await resume(make_engine, handle.run_id)
    assert time.monotonic() - began < 1.5  # not another 2 s
    assert result.succeeded
    assert again.names() == ["after"]
    gate = [s for s in await store.get_steps(handle.run_id) if s.step_name == "approval"]
    assert [s.status for s in gate] == [StepStatus.TIMED_OUT]
    assert (await store.get_gate(gate[0].id)).deadline_at == deadline


async def test_a_gate_approved_while_no_engine_ran_is_honoured_on_resume(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse('workflow w { gate ok { type = human_approval  timeout = "1h" }  call after }')
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await waiting_gates(engine, handle.run_id)
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    async with make_engine() as other:
        receipt = await other.approve_gate(handle.run_id, "ok", by="night-shift", feedback="fine")
        assert receipt.outcome == "accepted"
    again, result = await resume(make_engine, handle.run_id)
    assert result.succeeded
    assert again.calls[0].gate_feedback == "fine"


async def test_a_run_owned_by_a_live_engine_cannot_be_resumed_elsewhere(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("a", FOREVER)
    async with make_engine() as first:
        handle = await first.start(parse("workflow w { call a }"))
        await rec.started("a")
        async with make_engine() as second:
            with pytest.raises(RunAlreadyOwnedError):
                await second.resume(handle.run_id)
        await first.cancel_run(handle.run_id)
        assert (await handle.result(timeout=10)).status == RunStatus.CANCELLED


async def test_resume_through_the_same_engine_returns_the_live_handle(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    release = anyio.Event()
    rec.on("a", Reply(wait=release))
    async with make_engine() as engine:
        handle = await engine.start(parse("workflow w { call a }"))
        await rec.started("a")
        assert await engine.resume(handle.run_id) is handle
        release.set()
        assert (await handle.result(timeout=10)).succeeded
    assert rec.names() == ["a"]


async def test_resuming_twice_in_a_row_executes_nothing_twice(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b  call c  call d }")
    run_id = await interrupt(make_engine, rec, wf, at="b")

    second = Recorder().on("c", FOREVER)
    async with make_engine(fallback_action=second) as engine:
        handle = await engine.resume(run_id)
        await second.started("c")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    third, result = await resume(make_engine, run_id)
    assert result.succeeded
    assert rec.names() == ["a", "b"]
    assert second.names() == ["b", "c"]
    assert third.names() == ["c", "d"]


async def test_a_gate_in_a_loop_waits_again_in_each_iteration_also_after_a_resume(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """Reference §1.7 (b) and §7 items 13-14: a gate approved in an earlier iteration
    made the later iterations' gates look done on resume."""
    rec.on("draft", Reply(markers=["needs_answers"]), Reply(markers=["needs_answers"]), OK)
    wf = parse(
        """
        workflow w {
          do {
            max_iterations = 4
            call draft
            if draft.needs_answers {
              gate human_review { prompt = "Answer the open points"  timeout = "1h" }
            }
          } while draft.needs_answers
          call done
        }
        """
    )

    async def waiting(engine: FlowEngine, run_id: str) -> str:
        return (await waiting_gates(engine, run_id))[0].step_id

    async with make_engine() as engine:
        handle = await engine.start(wf)
        first = await waiting(engine, handle.run_id)
        await engine.approve_gate(handle.run_id, "human_review", by="ann", feedback="answers 1")
        await rec.started("draft", 2)
        second = await waiting(engine, handle.run_id)
        assert second != first
        assert rec.of("draft")[1].gate_feedback == "answers 1"
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    again = Recorder().on("draft", OK)
    async with make_engine(fallback_action=again) as engine:
        resumed = await engine.resume(handle.run_id)
        assert await waiting(engine, handle.run_id) == second  # still waiting, not "done"
        assert again.calls == []
        await engine.approve_gate(handle.run_id, "human_review", by="ann", feedback="answers 2")
        result = await resumed.result(timeout=10)

    assert result.succeeded
    assert again.names() == ["draft", "done"]
    assert again.calls[0].gate_feedback == "answers 2"
    gates = [s for s in await store.get_steps(handle.run_id) if s.step_name == "human_review"]
    assert [(g.iteration, g.status) for g in gates] == [
        (0, StepStatus.COMPLETED),
        (1, StepStatus.COMPLETED),
    ]


async def test_a_resumed_run_that_completes_leaves_no_step_running(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """The attempt an interruption cut short (engine shutdown here; a crash leaves the
    same) is run again under a new row; its old row must not stay ``running`` in a run
    that has completed (the reference leaves this reset to the host, runkon has none)."""
    child = workflows(review="workflow review { call one  call two }")
    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b  call workflow review }")
    run_id = await interrupt(make_engine, rec, wf, at="b", workflows=child)
    again = Recorder().on("two", FOREVER)
    async with make_engine(fallback_action=again, workflows=child) as engine:
        handle = await engine.resume(run_id)
        await again.started("two")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)

    _, result = await resume(make_engine, run_id, workflows=child)
    assert result.succeeded
    runs = [run_id] + [r.id for r in await store.list_runs(parent_run_id=run_id)]
    left_open = [
        (s.run_id == run_id, s.step_name, s.status.value)
        for rid in runs
        for s in await store.get_steps(rid)
        if not s.status.is_terminal
    ]
    assert left_open == []
    assert "[...]" not in result.summary


async def test_run_options_given_at_start_survive_a_resume(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """``start(..., fail_fast=False, dry_run=True)`` are options of the run, not of the
    engine that happens to drive it: a resumed run keeps them."""
    rec.on("a", Reply(error="a failed")).on("b", FOREVER)
    wf = parse("workflow w { call a  call b  call c }")
    async with make_engine() as engine:
        handle = await engine.start(wf, fail_fast=False, dry_run=True)
        await rec.started("b")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    assert rec.of("b")[0].dry_run

    again = Recorder().on("a", Reply(error="a failed again"))
    async with make_engine(fallback_action=again) as engine:  # engine defaults differ
        result = await (await engine.resume(handle.run_id)).result(timeout=10)

    assert result.status == RunStatus.FAILED
    assert again.names() == ["a", "b", "c"]  # not fail-fast: b and c still run
    assert all(call.dry_run for call in again.calls)


async def test_steps_skipped_on_resume_are_announced_as_step_skipped_events(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """``runkon.events.StepSkipped`` documents "a step did not run: ... it completed
    before a resume": an event consumer following a resumed run learns which steps were
    skipped, not only how many."""
    rec.on("c", FOREVER)
    run_id = await interrupt(
        make_engine, rec, parse("workflow w { call a  call b  call c }"), at="c"
    )
    stored = await events(store, run_id)
    resumed_from = len(stored)
    await resume(make_engine, run_id)
    after = (await events(store, run_id))[resumed_from:]
    skipped = [e.data["step_name"] for e in after if e.type == "step_skipped"]
    assert skipped == ["a", "b"]


async def test_resume_refuses_before_touching_the_run_when_an_executor_is_missing(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b  call c }")
    run_id = await interrupt(make_engine, rec, wf, at="b")

    async with make_engine(fallback_action=None, actions={"a": Recorder()}) as engine:
        with pytest.raises(runkon.WorkflowValidationError, match="'b'"):
            await engine.resume(run_id)

    run = await store.get_run(run_id)
    assert run.status == RunStatus.RUNNING  # left resumable, not failed
    assert run.owner_token is None
    again, result = await resume(make_engine, run_id)  # the executors are back
    assert result.succeeded
    assert again.names() == ["b", "c"]


async def test_recover_leaves_a_run_with_missing_executors_resumable(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    stuck = await interrupt(make_engine, rec, parse("workflow w { call b  call c }"), at="b")
    fine = await interrupt(make_engine, rec, parse("workflow v { call a  call b }"), at="b")

    again = Recorder()
    actions = {"a": again, "b": again}  # no executor for `c`, which `stuck` still needs
    with structlog.testing.capture_logs() as logs:
        async with make_engine(fallback_action=None, actions=actions, recover=True) as engine:
            assert [handle.run_id for handle in engine.recovered] == [fine]
            assert (await engine.recovered[0].result(timeout=10)).succeeded

    run = await store.get_run(stuck)
    assert run.status == RunStatus.RUNNING  # not resumed, not failed: still resumable
    assert run.owner_token is None
    [log] = [entry for entry in logs if entry.get("run_id") == stuck]
    assert log["event"] == "run not recovered; it stays resumable"
    assert "'c'" in log["error"]


async def test_recover_skips_a_run_whose_snapshot_is_corrupt_and_recovers_the_rest(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    if not isinstance(store, runkon.SqliteStore):
        pytest.skip("corrupts a row of a real SQLite file")
    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b }")
    broken = await interrupt(make_engine, rec, wf, at="b")
    fine = await interrupt(make_engine, rec, wf, at="b", count=2)
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute("UPDATE workflow_runs SET definition_snapshot = '{' WHERE id = ?", (broken,))

    with structlog.testing.capture_logs() as logs:
        async with make_engine(fallback_action=Recorder(), recover=True) as engine:
            assert [handle.run_id for handle in engine.recovered] == [fine]
            assert (await engine.recovered[0].result(timeout=10)).succeeded
            with pytest.raises(runkon.errors.CorruptRecordError, match=broken):
                await engine.resume(broken)

    [log] = [entry for entry in logs if entry.get("run_id") == broken]
    assert "definition_snapshot" in log["error"]
    assert (await store.get_run(broken)).status == RunStatus.RUNNING
