"""Control flow: ``if``/``unless``, ``while``, ``do … while``, ``do`` blocks, nested
``always``."""

from __future__ import annotations

import pytest

import runkon
from runkon.persistence import RunStatus, StepStatus, Store

from ._support import FAIL, OK, MakeEngine, Recorder, Reply, parse

NEEDS = Reply(markers=["needs_changes"])


@pytest.mark.parametrize(
    ("fast", "expected"),
    [(True, ["quick"]), (False, ["slow", "thorough"])],
)
async def test_if_and_unless_on_a_boolean_input(
    make_engine: MakeEngine, rec: Recorder, fast: bool, expected: list[str]
) -> None:
    wf = parse(
        """
        workflow w {
          inputs { fast boolean }
          if fast { call quick }
          unless fast { call slow  call thorough }
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(wf, {"fast": fast})).succeeded
    assert rec.names() == expected


async def test_while_repeats_its_body_while_the_marker_is_present(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("review", NEEDS, NEEDS, OK)
    wf = parse(
        """
        workflow w {
          call review
          while review.needs_changes {
            max_iterations = 5
            call fix
            call review
          }
          call merge
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert rec.names() == ["review", "fix", "review", "fix", "review", "merge"]
    assert [c.iteration for c in rec.of("fix")] == [0, 1]
    fixes = [s for s in await store.get_steps(result.run_id) if s.step_name == "fix"]
    assert [s.iteration for s in fixes] == [0, 1]
    assert len({s.resume_key for s in fixes}) == 2


async def test_while_not_entered_when_the_marker_is_absent(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse(
        "workflow w { call review  while review.needs_changes { max_iterations = 3  call fix } }"
    )
    async with make_engine() as engine:
        assert (await engine.run(wf)).succeeded
    assert rec.names() == ["review"]


async def test_while_reaching_max_iterations_fails_by_default(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("review", NEEDS)
    wf = parse(
        """
        workflow w {
          call review
          while review.needs_changes { max_iterations = 2  call fix  call review }
          call merge
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.status == RunStatus.FAILED
    assert "max_iterations (2)" in (result.error or "")
    assert rec.names() == ["review", "fix", "review", "fix", "review"]


async def test_on_max_iter_continue_goes_on_after_the_loop(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("review", NEEDS)
    wf = parse(
        """
        workflow w {
          call review
          while review.needs_changes {
            max_iterations = 2
            on_max_iter    = continue
            call fix
            call review
          }
          call merge
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.succeeded
    assert rec.names()[-1] == "merge"
    assert rec.names().count("fix") == 2


async def test_stuck_after_fails_a_loop_whose_markers_stop_changing(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("review", NEEDS)
    wf = parse(
        """
        workflow w {
          call review
          while review.needs_changes {
            max_iterations = 10
            stuck_after    = 3
            on_max_iter    = continue
            call fix
            call review
          }
          call merge
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.status == RunStatus.FAILED
    assert "stuck after 3" in (result.error or "")
    assert rec.names().count("fix") == 3
    assert "merge" not in rec.names()


async def test_changing_markers_are_not_stuck(make_engine: MakeEngine, rec: Recorder) -> None:
    rec.on(
        "review",
        Reply(markers=["needs_changes", "r0"]),
        Reply(markers=["needs_changes", "r1"]),
        Reply(markers=["needs_changes", "r2"]),
        OK,
    )
    wf = parse(
        """
        workflow w {
          call review
          while review.needs_changes { max_iterations = 10  stuck_after = 2  call review }
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(wf)).succeeded
    assert rec.names().count("review") == 4


def test_stuck_after_below_two_is_rejected_when_parsing() -> None:
    """Reference §7 item 31: ``stuck_after`` 0 or 1 would fail every loop at once."""
    for value in (0, 1):
        with pytest.raises(runkon.DslSyntaxError, match="stuck_after"):
            parse(
                f"workflow w {{ call r  while r.x {{ max_iterations = 3  stuck_after = {value}"
                "  call r } }"
            )


async def test_do_while_runs_the_body_first_then_checks(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("review", NEEDS, NEEDS, OK)
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
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert rec.names() == ["review", "fix", "review", "fix", "review", "merge"]
    # a step nested in `if` inside the loop gets the loop's iteration (reference §7 item 14)
    assert [c.iteration for c in rec.of("fix")] == [0, 1]
    fixes = [s for s in await store.get_steps(result.run_id) if s.step_name == "fix"]
    assert [s.iteration for s in fixes] == [0, 1]
    assert len({s.resume_key for s in fixes}) == 2


async def test_do_while_without_the_marker_runs_once(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse("workflow w { do { max_iterations = 3  call review } while review.needs_changes }")
    async with make_engine() as engine:
        assert (await engine.run(wf)).succeeded
    assert rec.names() == ["review"]


async def test_do_while_max_iterations_and_exit_before_stuck_check(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("review", NEEDS)
    failing = parse(
        "workflow w { do { max_iterations = 3  call review } while review.needs_changes }"
    )
    async with make_engine() as engine:
        result = await engine.run(failing)
    assert result.status == RunStatus.FAILED
    assert "max_iterations (3)" in (result.error or "")
    assert rec.names() == ["review"] * 3

    # the marker disappears in the iteration that would be "stuck": the loop just ends
    rec.on("check", Reply(markers=["same"]), Reply(markers=["same"]))
    exits = parse(
        """
        workflow w2 {
          do { max_iterations = 5  stuck_after = 2  call check } while check.again
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(exits)).succeeded


async def test_a_failure_inside_a_loop_stops_it_and_fails_the_run(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("review", NEEDS).on("fix", OK, FAIL)
    wf = parse(
        """
        workflow w {
          call review
          while review.needs_changes { max_iterations = 5  call fix  call review }
          call merge
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.status == RunStatus.FAILED
    assert rec.names() == ["review", "fix", "review", "fix"]


async def test_a_do_block_lends_output_and_with_to_its_calls(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse(
        """
        workflow w {
          do {
            output = review-notes
            with   = ["rubric"]
            call first
            call second { output = own-schema  with = ["extra"] }
            do {
              with = ["inner"]
              call third
            }
          }
          call outside
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(wf)).succeeded
    first, second, third, outside = rec.calls
    assert (first.output, first.snippets) == ("review-notes", ("rubric",))
    assert (second.output, second.snippets) == ("own-schema", ("rubric", "extra"))
    assert (third.output, third.snippets) == ("review-notes", ("rubric", "inner"))
    assert (outside.output, outside.snippets) == (None, ())


async def test_a_nested_always_runs_after_a_failure_but_the_run_still_fails(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("work", FAIL)
    wf = parse(
        """
        workflow w {
          call work
          call skipped-by-fail-fast
          always { call cleanup }
          call also-skipped
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.status == RunStatus.FAILED
    assert rec.names() == ["work", "cleanup"]
    statuses = {s.step_name: s.status for s in await store.get_steps(result.run_id)}
    assert statuses == {"work": StepStatus.FAILED, "cleanup": StepStatus.COMPLETED}


async def test_the_always_section_runs_after_success_and_after_failure(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse("workflow w { call work  always { call cleanup } }")
    async with make_engine() as engine:
        ok = await engine.run(wf)
        rec.on("work", FAIL)
        failed = await engine.run(wf)
    assert ok.succeeded
    assert failed.status == RunStatus.FAILED
    assert rec.names() == ["work", "cleanup", "work", "cleanup"]
    assert [c.inputs["workflow_status"] for c in rec.of("cleanup")] == ["completed", "failed"]


async def test_a_failing_always_block_does_not_change_the_verdict(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("cleanup", FAIL)
    wf = parse("workflow w { call work  always { call cleanup  call notify } }")
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.succeeded
    assert rec.names() == ["work", "cleanup", "notify"]  # always ignores fail_fast
