"""``parallel``: a task group; ``fail_fast`` cancels running siblings; ``min_success``;
per-call ``if``, ``retries``, ``output`` and ``with``."""

from __future__ import annotations

import time

import anyio

from runkon.persistence import RunStatus, StepStatus, Store

from ._support import FAIL, FOREVER, OK, MakeEngine, Recorder, Reply, event_types, parse


async def test_calls_run_concurrently(make_engine: MakeEngine, rec: Recorder, store: Store) -> None:
    release = anyio.Event()
    for name in ("a", "b", "c"):
        rec.on(name, Reply(wait=release, markers=[f"{name}_done"]))
    wf = parse(
        """
        workflow w {
          parallel { call a  call b  call c }
          if b.b_done { call after }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await rec.wait_for(lambda: rec.peak_total == 3)  # all three in flight at once
        release.set()
        result = await handle.result(timeout=10)

    assert result.succeeded
    assert sorted(rec.names()[:3]) == ["a", "b", "c"]
    assert rec.names()[3] == "after"
    parallel_rows = [s for s in await store.get_steps(result.run_id) if s.step_name != "after"]
    assert {s.status for s in parallel_rows} == {StepStatus.COMPLETED}
    assert len({s.parallel_group_id for s in parallel_rows}) == 1
    assert parallel_rows[0].parallel_group_id is not None


async def test_fail_fast_cancels_a_running_sibling(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("fails", Reply(delay=0.1, error="broken"))
    rec.on("slow", Reply(delay=30))
    wf = parse("workflow w { parallel { call slow  call fails }  call after }")
    async with make_engine() as engine:
        began = time.monotonic()
        result = await engine.run(wf)
        elapsed = time.monotonic() - began

    assert elapsed < 5  # the 30 s sibling was interrupted
    assert result.status == RunStatus.FAILED
    assert "broken" in (result.error or "")
    [slow] = rec.of("slow")
    assert rec.interrupted == [slow]
    assert slow.step_id in rec.cancel_requests
    by_name = {s.step_name: s for s in await store.get_steps(result.run_id)}
    assert by_name["fails"].status == StepStatus.FAILED
    assert by_name["slow"].status.is_terminal  # not left "running"
    assert by_name["slow"].status != StepStatus.COMPLETED
    assert "after" not in rec.names()


async def test_without_fail_fast_siblings_finish_and_the_block_fails(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("fails", FAIL).on("slow", Reply(delay=0.3))
    wf = parse("workflow w { parallel { fail_fast = false  call slow  call fails }  call after }")
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    assert rec.interrupted == []
    assert [c.name for c in rec.finished] == ["slow"]
    statuses = {s.step_name: s.status for s in await store.get_steps(result.run_id)}
    assert statuses == {"slow": StepStatus.COMPLETED, "fails": StepStatus.FAILED}


async def test_min_success_lets_the_block_pass_with_some_failures(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("c", FAIL)
    wf = parse(
        """
        workflow w {
          parallel { fail_fast = false  min_success = 2  call a  call b  call c }
          call after
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.succeeded
    assert rec.names()[-1] == "after"


async def test_min_success_not_met_fails_the_block(make_engine: MakeEngine, rec: Recorder) -> None:
    rec.on("b", FAIL).on("c", FAIL)
    wf = parse(
        "workflow w { parallel { fail_fast = false  min_success = 2  call a  call b  call c } }"
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.status == RunStatus.FAILED
    assert "1 of 3" in (result.error or "")


async def test_a_call_skipped_by_its_if_gets_a_skipped_row_and_no_success_credit(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """Reference §7 item 19: runkon-flow counted ``if``-skipped calls as successes."""
    rec.on("classify", Reply(markers=["touches_billing"])).on("c", FAIL)
    wf = parse(
        """
        workflow w {
          call classify
          parallel {
            fail_fast   = false
            min_success = 2
            call a
            call billing  { if = "classify.touches_billing" }
            call privacy  { if = "classify.touches_personal_data" }
            call c
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert sorted(rec.names()[1:]) == ["a", "billing", "c"]
    by_name = {s.step_name: s for s in await store.get_steps(result.run_id)}
    assert by_name["privacy"].status == StepStatus.SKIPPED
    assert "touches_personal_data" in (by_name["privacy"].result_text or "")
    assert result.succeeded  # a and billing succeeded: 2 of 3 that ran
    assert "step_skipped" in await event_types(store, result.run_id)

    rec.on("billing", FAIL)
    async with make_engine() as engine:
        second = await engine.run(wf)
    # only `a` succeeded; the skipped `privacy` must not make up the difference
    assert second.status == RunStatus.FAILED


async def test_per_call_retries_output_and_with_and_block_options(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("flaky", FAIL, OK)
    wf = parse(
        """
        workflow w {
          parallel {
            output = triage-notes
            with   = ["rubric"]
            call plain
            call flaky   { retries = 2 }
            call special { output = privacy-notes  with = ["search-tips"] }
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    plain = rec.of("plain")[0]
    assert (plain.output, plain.snippets) == ("triage-notes", ("rubric",))
    special = rec.of("special")[0]
    assert (special.output, special.snippets) == ("privacy-notes", ("rubric", "search-tips"))
    flaky = rec.of("flaky")
    assert [c.attempt for c in flaky] == [0, 1]
    assert [c.retries_remaining for c in flaky] == [2, 1]
    flaky_rows = [s for s in await store.get_steps(result.run_id) if s.step_name == "flaky"]
    assert [(s.retry_count, s.status) for s in flaky_rows] == [
        (0, StepStatus.FAILED),
        (1, StepStatus.COMPLETED),
    ]


async def test_markers_of_parallel_calls_drive_later_conditions(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("security", Reply(markers=["blocking"]))
    wf = parse(
        """
        workflow w {
          parallel { call style  call security }
          if security.blocking { call escalate }
          if style.blocking { call never }
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(wf)).succeeded
    assert rec.names()[-1] == "escalate"
    assert "never" not in rec.names()


async def test_cancelling_the_run_interrupts_parallel_calls_in_flight(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("b", FOREVER)
    wf = parse(
        """
        workflow w {
          parallel { call a  call b }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await rec.started("b")
        await engine.cancel_run(handle.run_id, reason="enough")
        result = await handle.result(timeout=10)
    assert result.status == RunStatus.CANCELLED
    assert rec.of("b")[0] in rec.interrupted


async def test_fail_fast_does_not_cancel_siblings_while_min_success_can_still_be_met(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """``min_success = 2`` tolerates one failure out of three. With the default
    ``fail_fast`` the first failure must not cancel the two calls that can still meet
    it (in runkon-flow they ran to the end); only a failure that makes ``min_success``
    unreachable should cancel the rest."""
    rec.on("a", Reply(delay=0.05, error="a broke"))
    rec.on("b", Reply(delay=0.3)).on("c", Reply(delay=0.3))
    wf = parse("workflow w { parallel { min_success = 2  call a  call b  call c }  call after }")
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert rec.interrupted == []
    assert result.succeeded, result.error
    assert rec.names()[-1] == "after"
