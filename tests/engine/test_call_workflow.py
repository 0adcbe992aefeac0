"""``call workflow``: a child run with its own record, markers and context bubbled up,
nesting depth at most 5, cancellation reaching the child."""

from __future__ import annotations

from pathlib import Path

import pytest

import runkon
from runkon.errors import WorkflowValidationError
from runkon.persistence import RunStatus, StepRole, StepStatus, Store

from ._support import FAIL, FOREVER, MakeEngine, Recorder, Reply, parse, workflows

REVIEW = """
workflow review-pr {
  inputs { pr required  note default = "none" }
  call reviewer
  call review-aggregator
}
"""

PARENT = """
workflow ship {
  inputs { ticket required }
  call workflow review-pr { inputs { pr = "PR for {{ticket}}"  note = "{{unknown}}" } }
  if review-aggregator.has_blocking_findings { call fix }
  if review-pr.has_blocking_findings { call escalate }
  call report
}
"""


async def test_a_child_run_has_its_own_record_and_its_markers_bubble_up(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("review-aggregator", Reply(markers=["has_blocking_findings"], context="2 blockers"))
    async with make_engine(workflows=workflows(review=REVIEW)) as engine:
        result = await engine.run(parse(PARENT), {"ticket": "T-1"})

    assert result.succeeded, result.error
    assert rec.names() == ["reviewer", "review-aggregator", "fix", "escalate", "report"]

    [parent_step, *_] = await store.get_steps(result.run_id)
    assert parent_step.step_name == "workflow:review-pr"
    assert parent_step.role == StepRole.WORKFLOW
    assert parent_step.status == StepStatus.COMPLETED
    assert parent_step.markers_out == ("has_blocking_findings",)
    assert parent_step.context_out == "2 blockers"
    child_id = parent_step.child_run_id
    assert child_id is not None

    child = await store.get_run(child_id)
    assert child.workflow_name == "review-pr"
    assert child.parent_run_id == result.run_id
    assert child.status == RunStatus.COMPLETED
    assert child.depth == 1
    assert dict(child.inputs) == {"pr": "PR for T-1", "note": "{{unknown}}"}
    assert [s.step_name for s in await store.get_steps(child_id)] == [
        "reviewer",
        "review-aggregator",
    ]
    # the child's executors ran in the child run, with the child's inputs
    reviewer = rec.of("reviewer")[0]
    assert reviewer.run_id == child_id
    assert reviewer.parent_run_id == result.run_id
    assert reviewer.depth == 1
    assert reviewer.inputs["pr"] == "PR for T-1"
    # the child's last context is the parent's prior context
    assert rec.of("fix")[0].inputs["prior_context"] == "2 blockers"


async def test_a_failed_child_fails_the_step_and_retries_start_a_new_child(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("reviewer", FAIL)
    wf = parse(
        """
        workflow ship {
          call workflow review-pr { retries = 1  inputs { pr = "1" } }
          call report
        }
        """
    )
    async with make_engine(workflows=workflows(review=REVIEW)) as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    assert "review-pr" in (result.error or "")
    assert rec.names() == ["reviewer", "reviewer"]
    attempts = await store.get_steps(result.run_id)
    assert [(s.retry_count, s.status) for s in attempts] == [
        (0, StepStatus.FAILED),
        (1, StepStatus.FAILED),
    ]
    children = {s.child_run_id for s in attempts}
    assert len(children) == 2
    assert None not in children
    for child_id in children:
        assert (await store.get_run(child_id)).status == RunStatus.FAILED  # type: ignore[arg-type]


async def test_call_workflow_on_fail_continue(make_engine: MakeEngine, rec: Recorder) -> None:
    rec.on("reviewer", FAIL)
    tolerant = parse(
        """
        workflow a {
          call workflow review-pr { on_fail = continue  inputs { pr = "1" } }
          call next
        }
        """
    )
    async with make_engine(workflows=workflows(review=REVIEW)) as engine:
        assert (await engine.run(tolerant)).succeeded
    assert rec.names() == ["reviewer", "next"]


async def test_call_workflow_on_fail_agent_runs_with_the_failure(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """``on_fail = <agent>`` is accepted (and validated) on ``call workflow``; it must run
    the agent as it does for a call."""
    rec.on("reviewer", FAIL)
    rescued = parse(
        'workflow b { call workflow review-pr { on_fail = rescue  inputs { pr = "1" } } call next }'
    )
    async with make_engine(workflows=workflows(review=REVIEW)) as engine:
        result = await engine.run(rescued)
    assert result.status == RunStatus.FAILED
    assert rec.names() == ["reviewer", "rescue"]
    [rescue] = rec.of("rescue")
    assert rescue.inputs["failed_step"] in ("review-pr", "workflow:review-pr")
    assert "review-pr" in rescue.inputs["failure_reason"]


async def test_call_workflow_as_identity_applies_to_the_childs_steps(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """``call workflow X { as = ... }`` (reference §1.6, ChildWorkflowInput.as_identity):
    the child's steps act as that identity unless they name their own."""
    child = "workflow child { call plain  call own { as = own-bot } }"
    wf = parse("workflow w { call workflow child { as = reviewer-bot } }")
    async with make_engine(workflows=workflows(child=child)) as engine:
        assert (await engine.run(wf)).succeeded
    assert rec.of("own")[0].as_identity == "own-bot"
    assert rec.of("plain")[0].as_identity == "reviewer-bot"


def _chain(length: int) -> dict[str, runkon.WorkflowDef]:
    """w0 calls w1 calls ... w{length-1}, which calls `leaf-work`."""
    texts = {}
    for level in range(length):
        body = f"call workflow w{level + 1}" if level < length - 1 else "call leaf-work"
        texts[f"w{level}"] = f"workflow w{level} {{ {body} }}"
    return workflows(**texts)


async def test_nesting_five_levels_deep_works(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    chain = _chain(6)  # w0 at depth 0 ... w5 at depth 5
    async with make_engine(workflows=chain) as engine:
        result = await engine.run(chain["w0"])
    assert result.succeeded, result.error
    [leaf] = rec.calls
    assert leaf.depth == 5
    assert len(await store.list_runs()) == 6


async def test_nesting_deeper_than_five_is_refused_at_start(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    chain = _chain(7)
    async with make_engine(workflows=chain) as engine:
        with pytest.raises(WorkflowValidationError, match="depth"):
            await engine.start(chain["w0"])
    assert rec.calls == []
    assert await store.list_runs() == []


async def test_the_depth_limit_is_also_enforced_while_running(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    """A directory resolver re-reads files: a chain that grew after start() validated it
    is stopped by the runtime guard instead of nesting deeper than 5."""
    flows = tmp_path / "flows"
    flows.mkdir()
    for level in range(7):
        (flows / f"w{level}.wf").write_text(f"workflow w{level} {{ call leaf-work }}")
    wf = parse("workflow top { call hold  call workflow w0 }")

    async def grow() -> None:
        for level in range(7):
            (flows / f"w{level}.wf").write_text(
                f"workflow w{level} {{ call workflow w{level + 1} }}"
                if level < 6
                else "workflow w6 { call leaf-work }"
            )

    rec.on("hold", Reply(hook=lambda ctx, params: grow()))
    async with make_engine(workflows=runkon.DirectoryWorkflowResolver(flows)) as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    assert "depth" in (result.error or "")
    assert rec.names() == ["hold"]
    assert all(run.depth <= 5 for run in await store.list_runs())


async def test_cancelling_the_parent_cancels_the_running_child(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("long-review", FOREVER)
    child = "workflow child { call long-review  always { call child-cleanup } }"
    wf = parse("workflow w { call workflow child  call after }")
    async with make_engine(workflows=workflows(child=child)) as engine:
        handle = await engine.start(wf)
        review = await rec.started("long-review")
        assert await engine.cancel_run(handle.run_id, reason="stop")
        result = await handle.result(timeout=10)

    assert result.status == RunStatus.CANCELLED
    assert review in rec.interrupted
    assert review.step_id in rec.cancel_requests
    child_run = await store.get_run(review.run_id)
    assert child_run.status == RunStatus.CANCELLED
    assert "child-cleanup" in rec.names()  # the child's always block ran
    assert "after" not in rec.names()
    [step] = await store.get_steps(result.run_id)
    assert step.status.is_terminal
    assert step.status != StepStatus.COMPLETED


async def test_workflows_can_be_a_directory_path(
    make_engine: MakeEngine, rec: Recorder, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "lint.wf").write_text("workflow lint { call linter }")
    async with make_engine(workflows=str(flows)) as engine:
        result = await engine.run(parse("workflow w { call workflow lint  call after }"))
    assert result.succeeded
    assert rec.names() == ["linter", "after"]
