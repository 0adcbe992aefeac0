"""``call``: retries, ``on_fail``, options passed through, a timeout that preempts."""

from __future__ import annotations

import json
import time

import pytest

from runkon.persistence import RunStatus, StepRole, StepStatus, Store

from ._support import FAIL, FOREVER, OK, MakeEngine, Recorder, Reply, event_types, events, parse


async def test_retries_make_new_attempts_with_the_previous_error(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("flaky", Reply(error="first"), Reply(error="second"), OK, by="attempt")
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call flaky { retries = 2 } }"))

    assert result.succeeded
    calls = rec.of("flaky")
    assert [c.attempt for c in calls] == [0, 1, 2]
    assert [c.retries_remaining for c in calls] == [2, 1, 0]
    assert calls[0].retry_error is None
    assert "first" in (calls[1].retry_error or "")
    assert "second" in (calls[2].retry_error or "")
    attempts = await store.get_steps(result.run_id)
    assert [(s.retry_count, s.status) for s in attempts] == [
        (0, StepStatus.FAILED),
        (1, StepStatus.FAILED),
        (2, StepStatus.COMPLETED),
    ]
    assert "first" in (attempts[0].step_error or "")
    retrying = [e for e in await events(store, result.run_id) if e.type == "step_retrying"]
    assert [e.data["attempt"] for e in retrying] == [1, 2]


async def test_exhausted_retries_fail_the_run(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("flaky", FAIL)
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call flaky { retries = 1 }  call after }"))

    assert result.status == RunStatus.FAILED
    assert "flaky" in (result.error or "")
    assert "2 attempts" in (result.error or "")
    assert rec.names() == ["flaky", "flaky"]  # `after` never runs


async def test_on_fail_continue_lets_the_run_go_on_and_the_row_says_so(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("lint", FAIL)
    wf = parse(
        """
        workflow w {
          call lint { retries = 1  on_fail = continue }
          call build
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert rec.names() == ["lint", "lint", "build"]
    lint_rows = [s for s in await store.get_steps(result.run_id) if s.step_name == "lint"]
    # the final attempt's row says the failure was tolerated (not a plain "failed")
    assert lint_rows[-1].status == StepStatus.SKIPPED
    assert "boom" in (lint_rows[-1].step_error or "")
    types = await event_types(store, result.run_id)
    assert "step_failed" in types
    assert "step_skipped" in types


async def test_on_fail_agent_gets_the_failed_step_and_reason_then_the_step_fails(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("deploy", Reply(error="disk full"))
    wf = parse(
        """
        workflow w {
          call deploy { retries = 1  on_fail = rollback }
          call announce
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    assert "deploy" in (result.error or "")
    assert "disk full" in (result.error or "")
    assert rec.names() == ["deploy", "deploy", "rollback"]
    [rollback] = rec.of("rollback")
    assert rollback.inputs["failed_step"] == "deploy"
    assert "disk full" in rollback.inputs["failure_reason"]
    assert rollback.inputs["retry_count"] == "1"
    names = [(s.step_name, s.status) for s in await store.get_steps(result.run_id)]
    assert ("rollback", StepStatus.COMPLETED) in names


async def test_a_failing_on_fail_agent_does_not_change_the_verdict(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("deploy", FAIL).on("rollback", Reply(error="rollback broke"))
    wf = parse("workflow w { call deploy { on_fail = rollback } }")
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    assert "deploy" in (result.error or "")
    assert "rollback broke" not in (result.error or "")


async def test_options_are_passed_through_to_the_executor(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    schemas: list[str] = []

    def resolve_schema(name: str) -> dict[str, str]:
        schemas.append(name)
        return {"schema": name}

    wf = parse(
        """
        workflow w {
          call plan {
            output      = task-plan
            with        = ["style-guide", "repo-map"]
            as          = developer
            max_turns   = 40
            plugin_dirs = ["plugins/a"]
            timeout     = "10m"
          }
          call plain
        }
        """
    )
    async with make_engine(schema_resolver=resolve_schema, default_as_identity="bot") as engine:
        result = await engine.run(wf)

    assert result.succeeded
    plan, plain = rec.calls
    assert plan.output == "task-plan"
    assert plan.output_schema == {"schema": "task-plan"}
    assert plan.snippets == ("style-guide", "repo-map")
    assert plan.as_identity == "developer"
    assert plan.max_turns == 40
    assert plan.plugin_dirs == ("plugins/a",)
    assert plan.timeout == 600
    assert plan.dry_run is False
    assert plain.as_identity == "bot"  # the engine default
    assert plain.output is None
    assert plain.snippets == ()
    assert schemas == ["task-plan"]


async def test_what_an_executor_reports_is_stored_on_the_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on(
        "review",
        Reply(
            markers=["needs_changes", "has_tests"],
            context="2 issues",
            structured={"confidence": 80, "issues": ["a", "b"]},
            result_text="reviewed",
        ),
    )
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call review }"))

    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.COMPLETED
    assert step.role == StepRole.AGENT
    assert step.kind == "call"
    assert step.markers_out == ("needs_changes", "has_tests")
    assert step.context_out == "2 issues"
    assert json.loads(step.structured_output or "") == {"confidence": 80, "issues": ["a", "b"]}
    assert step.result_text == "reviewed"
    assert step.started_at is not None
    assert step.ended_at is not None
    [completed] = [e for e in await events(store, result.run_id) if e.type == "step_completed"]
    assert completed.data["markers"] == ["needs_changes", "has_tests"]


async def test_a_call_timeout_interrupts_a_sleeping_executor_and_calls_its_cancel_hook(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("slow", Reply(delay=30))
    wf = parse('workflow w { call slow { timeout = "200ms" }  call after }')
    async with make_engine() as engine:
        began = time.monotonic()
        result = await engine.run(wf)
        elapsed = time.monotonic() - began

    assert elapsed < 5  # preempted, not waited out (the executor sleeps 30 s)
    [slow] = rec.of("slow")
    assert slow.timeout == pytest.approx(0.2)
    assert rec.interrupted == [slow]
    assert rec.cancel_requests == [slow.step_id]
    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.TIMED_OUT
    assert "timed out" in (step.step_error or "")
    # a timed-out step fails the run; it is not a cancellation (reference §7 item 30)
    assert result.status == RunStatus.FAILED
    assert "timed out" in (result.error or "")
    assert rec.names() == ["slow"]
    [failed] = [e for e in await events(store, result.run_id) if e.type == "step_failed"]
    assert failed.data["timed_out"] is True


async def test_a_timed_out_attempt_is_retried_and_on_fail_applies(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("slow", FOREVER, OK)
    rec.on("hang", FOREVER)
    wf = parse(
        """
        workflow w {
          call slow { timeout = "150ms"  retries = 1 }
          call hang { timeout = "150ms"  on_fail = continue }
          call after
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert rec.names() == ["slow", "slow", "hang", "after"]
    assert "timed out" in (rec.of("slow")[1].retry_error or "")
    statuses = [(s.step_name, s.status) for s in await store.get_steps(result.run_id)]
    assert statuses == [
        ("slow", StepStatus.TIMED_OUT),
        ("slow", StepStatus.COMPLETED),
        ("hang", StepStatus.SKIPPED),
        ("after", StepStatus.COMPLETED),
    ]


async def test_markers_of_a_call_drive_later_conditions(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("review", Reply(markers=["needs_changes"]))
    wf = parse(
        """
        workflow w {
          call review
          if review.needs_changes { call fix }
          if review.approved { call merge }
          unless review.approved { call ask }
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(wf)).succeeded
    assert rec.names() == ["review", "fix", "ask"]
