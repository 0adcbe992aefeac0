"""Gates: human gates wait for a decision that reaches later steps as feedback; quality
gates decide at once; dry runs auto-approve."""

from __future__ import annotations

import time

import anyio
import pytest

from runkon.engine import FlowEngine, GateRequest, GateVerdict
from runkon.errors import InvalidSelectionError
from runkon.persistence import ReceiptOutcome, RunStatus, StepStatus, Store, WaitingGate

from ._support import (
    Items,
    MakeEngine,
    Recorder,
    Reply,
    event_types,
    item,
    parse,
    waiting_gates,
    workflows,
)


async def waiting_gate(engine: FlowEngine, run_id: str) -> WaitingGate:
    return (await waiting_gates(engine, run_id))[0]


APPROVAL = """
workflow release {
  inputs { version default = "1.2" }
  call build
  gate release-approval {
    type    = human_approval
    prompt  = "Ship {{version}}?"
    options = ["ship", "hold"]
    timeout = "1h"
  }
  if release-approval.ship { call publish }
  call announce
}
"""


async def test_a_gate_waits_for_approval_and_its_feedback_reaches_later_steps(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(APPROVAL))
        gate = await waiting_gate(engine, handle.run_id)
        assert gate.gate_name == "release-approval"
        assert gate.gate_type == "human_approval"
        assert gate.prompt == "Ship 1.2?"
        assert [o.value for o in gate.options] == ["ship", "hold"]
        assert gate.deadline_at is not None
        assert (await store.get_run(handle.run_id)).status == RunStatus.WAITING
        assert rec.names() == ["build"]

        receipt = await engine.approve_gate(
            handle.run_id, "release-approval", by="alice", feedback="go", selections=["ship"]
        )
        assert receipt.outcome == ReceiptOutcome.ACCEPTED
        result = await handle.result(timeout=10)

    assert result.succeeded
    assert rec.names() == ["build", "publish", "announce"]
    publish = rec.of("publish")[0]
    assert publish.gate_feedback == "ship"  # selections take precedence over feedback
    assert publish.gate_selections == ("ship",)
    assert publish.inputs["gate_feedback"] == "ship"
    [_, gate_row, *_] = await store.get_steps(result.run_id)
    assert gate_row.status == StepStatus.COMPLETED
    assert await engine.waiting_gates() == []
    types = await event_types(store, result.run_id)
    assert "gate_waiting" in types
    assert "gate_resolved" in types


async def test_feedback_without_selections_flows_as_gate_feedback(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse(
        """
        workflow w {
          gate answers { type = human_review  prompt = "Answer the questions"  timeout = "1h" }
          call draft
          call polish
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await waiting_gate(engine, handle.run_id)
        await engine.approve_gate(handle.run_id, "answers", by="bob", feedback="use option B")
        assert (await handle.result(timeout=10)).succeeded
    assert [c.gate_feedback for c in rec.calls] == ["use option B", "use option B"]
    assert rec.calls[0].inputs["gate_feedback"] == "use option B"


async def test_a_rejection_fails_the_run_at_once(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(APPROVAL))
        await waiting_gate(engine, handle.run_id)
        began = time.monotonic()
        await engine.reject_gate(handle.run_id, "release-approval", by="bob", feedback="not now")
        result = await handle.result(timeout=10)
        assert time.monotonic() - began < 3

    assert result.status == RunStatus.FAILED
    assert "not now" in (result.error or "")
    assert rec.names() == ["build"]
    gate_row = (await store.get_steps(result.run_id))[1]
    assert gate_row.status == StepStatus.FAILED


async def test_deciding_a_gate_twice_or_a_gate_that_is_not_waiting(
    make_engine: MakeEngine,
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(APPROVAL))
        await waiting_gate(engine, handle.run_id)
        with pytest.raises(InvalidSelectionError):
            await engine.approve_gate(handle.run_id, "release-approval", by="a", selections=["x"])
        first = await engine.approve_gate(
            handle.run_id, "release-approval", by="alice", selections=["hold"]
        )
        await handle.result(timeout=10)
        again = await engine.approve_gate(handle.run_id, "release-approval", by="carol")
    assert first.outcome == ReceiptOutcome.ACCEPTED
    assert again.outcome == ReceiptOutcome.ALREADY_RESOLVED
    assert again.decided_by == "alice"


async def test_min_approvals_needs_distinct_approvers(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse(
        """
        workflow w {
          gate two { type = pr_approval  min_approvals = 2  timeout = "1h" }
          call merge
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await waiting_gate(engine, handle.run_id)
        one = await engine.approve_gate(handle.run_id, "two", by="alice")
        same = await engine.approve_gate(handle.run_id, "two", by="alice")
        await anyio.sleep(0.1)
        assert rec.names() == []
        two = await engine.approve_gate(handle.run_id, "two", by="bob")
        assert (await handle.result(timeout=10)).succeeded
    assert one.outcome == ReceiptOutcome.APPROVAL_RECORDED
    assert (same.outcome, same.approvals) == (ReceiptOutcome.ALREADY_APPROVED, 1)
    assert two.outcome == ReceiptOutcome.ACCEPTED
    assert rec.names() == ["merge"]


@pytest.mark.parametrize(("on_timeout", "succeeds"), [("continue", True), ("fail", False)])
async def test_a_gate_timeout(
    make_engine: MakeEngine, rec: Recorder, store: Store, on_timeout: str, succeeds: bool
) -> None:
    wf = parse(
        f"""
        workflow w {{
          gate approval {{ type = human_approval  timeout = "200ms"  on_timeout = {on_timeout} }}
          if approval.timed_out {{ call remind }}
          call after
        }}
        """
    )
    async with make_engine() as engine:
        began = time.monotonic()
        result = await engine.run(wf)
        assert time.monotonic() - began < 5

    assert result.succeeded is succeeds
    gate_row = (await store.get_steps(result.run_id))[0]
    assert gate_row.status == StepStatus.TIMED_OUT
    assert rec.names() == (["remind", "after"] if succeeds else [])
    assert "gate_timed_out" in await event_types(store, result.run_id)


async def test_a_gate_resolver_decides_its_gate_type(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    seen: list[GateRequest] = []

    class ChecksGreen:
        gate_type = "ci_green"

        async def resolve(self, gate: GateRequest) -> GateVerdict | None:
            seen.append(gate)
            await anyio.sleep(0.05)
            return GateVerdict(approved=True, feedback="all checks passed", by="ci")

    wf = parse(
        """
        workflow w {
          inputs { pr default = "42" }
          gate ci { type = ci_green  prompt = "PR {{pr}} green?"  as = ci-bot  timeout = "1h" }
          call merge
        }
        """
    )
    async with make_engine(gate_resolvers=[ChecksGreen()]) as engine:
        result = await engine.run(wf)
    assert result.succeeded
    [request] = seen
    assert (request.gate_name, request.gate_type) == ("ci", "ci_green")
    assert request.run_id == result.run_id
    assert request.prompt == "PR 42 green?"
    assert request.as_identity == "ci-bot"
    assert request.inputs["pr"] == "42"
    assert request.deadline_at is not None
    assert rec.of("merge")[0].gate_feedback == "all checks passed"


async def test_a_review_decision_gate_hands_its_mode_to_the_resolver(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    seen: list[GateRequest] = []

    class PrReviews:
        gate_type = "pr_approval"

        async def resolve(self, gate: GateRequest) -> GateVerdict | None:
            seen.append(gate)
            return GateVerdict(approved=False, feedback="changes requested", by="github")

    wf = parse(
        'workflow w { gate pr_approval { mode = review_decision  timeout = "1h" }  call merge }'
    )
    async with make_engine(gate_resolvers=[PrReviews()]) as engine:
        result = await engine.run(wf)
    assert result.status == RunStatus.FAILED
    assert "changes requested" in (result.error or "")
    assert [g.approval_mode for g in seen] == ["review_decision"]
    assert rec.calls == []


QUALITY = """
workflow w {{
  call plan
  gate quality_gate {{ source = plan  threshold = 70  on_fail = {on_fail} }}
  call build
}}
"""


@pytest.mark.parametrize(
    ("structured", "on_fail", "succeeds", "expected_text"),
    [
        ({"confidence": 85}, "fail", True, "confidence=85, threshold=70, result=pass"),
        ({"confidence": 70.9}, "fail", True, "confidence=70, threshold=70, result=pass"),
        ({"confidence": 40}, "fail", False, "result=fail"),
        ({"confidence": 40}, "continue", True, "on_fail=continue, proceeding"),
        ({"other": 1}, "fail", False, "confidence defaulted to 0"),
        (None, "fail", False, "confidence defaulted to 0"),
    ],
)
async def test_quality_gate(
    make_engine: MakeEngine,
    rec: Recorder,
    store: Store,
    structured: object,
    on_fail: str,
    succeeds: bool,
    expected_text: str,
) -> None:
    rec.on("plan", Reply(structured=structured))
    async with make_engine() as engine:
        result = await engine.run(parse(QUALITY.format(on_fail=on_fail)))

    assert result.succeeded is succeeds
    gate_row = (await store.get_steps(result.run_id))[1]
    assert gate_row.step_name == "quality_gate"
    assert expected_text in (gate_row.result_text or "")
    assert gate_row.status == (StepStatus.COMPLETED if succeeds else StepStatus.FAILED)
    assert rec.names() == (["plan", "build"] if succeeds else ["plan"])
    if not succeeds:
        assert "below threshold 70" in (result.error or "")


async def test_dry_run_auto_approves_gates_skips_scripts_and_tells_executors(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: object
) -> None:
    child = workflows(
        sub='workflow sub { call sub-step  script sub-script { run = "touch sub.txt" } }'
    )
    provider = Items("repos", [item("a")])
    wf = parse(
        """
        workflow w {
          call plan
          script deploy { run = "touch deployed.txt" }
          gate approval { type = human_approval  timeout = "1h" }
          if approval.approved { call after-approval }
          call workflow sub
          foreach each { over = repos  max_parallel = 1  workflow = sub }
        }
        """
    )
    async with make_engine(workflows=child, item_providers=[provider]) as engine:
        result = await engine.run(wf, dry_run=True)

    assert result.succeeded, result.error
    assert rec.names() == ["plan", "after-approval", "sub-step", "sub-step"]
    assert all(c.dry_run and c.ctx_dry_run for c in rec.calls)
    assert all(c.inputs["dry_run"] == "true" for c in rec.calls)
    assert not (tmp_path / "deployed.txt").exists()  # type: ignore[operator]
    assert not (tmp_path / "sub.txt").exists()  # type: ignore[operator]
    run = await store.get_run(result.run_id)
    assert run.dry_run
    by_name = {s.step_name: s for s in await store.get_steps(result.run_id)}
    assert by_name["deploy"].status == StepStatus.COMPLETED
    assert "dry-run" in (by_name["deploy"].result_text or "")
    assert by_name["approval"].status == StepStatus.COMPLETED
    for child_run in await store.list_runs(parent_run_id=result.run_id):
        assert child_run.dry_run


async def test_an_engine_wide_dry_run_default(make_engine: MakeEngine, rec: Recorder) -> None:
    async with make_engine(dry_run=True) as engine:
        await engine.run(parse("workflow w { call a }"))
        await engine.run(parse("workflow w { call a }"), dry_run=False)
    assert [c.dry_run for c in rec.calls] == [True, False]


async def test_with_fail_fast_off_a_failed_quality_gate_does_not_stop_the_body(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """Reference §7 item 23: gate failures aborted the body even with fail_fast off."""
    rec.on("plan", Reply(structured={"confidence": 10}))
    wf = parse(
        "workflow w { call plan  gate quality_gate { source = plan  threshold = 50 }  call next }"
    )
    async with make_engine() as engine:
        result = await engine.run(wf, fail_fast=False)
    assert result.status == RunStatus.FAILED
    assert rec.names() == ["plan", "next"]


async def test_an_approval_from_another_process_wakes_the_gate(
    rec: Recorder, tmp_path: object
) -> None:
    """SQLite only: the approval is written through another connection (as the CLI or a
    web process would); the store's change feed wakes the waiting run."""
    from runkon.persistence import SqliteStore

    path = tmp_path / "gates.db"  # type: ignore[operator]
    wf = parse('workflow w { gate ok { type = human_approval  timeout = "1h" }  call after }')
    async with FlowEngine(SqliteStore(path), fallback_action=rec) as engine:
        handle = await engine.start(wf)
        await waiting_gate(engine, handle.run_id)
        async with SqliteStore(path) as elsewhere:
            [gate] = await elsewhere.list_waiting_gates()
            began = time.monotonic()
            receipt = await elsewhere.approve_gate(gate.step_id, by="remote", feedback="ok")
            result = await handle.result(timeout=10)
            assert time.monotonic() - began < 3
    assert receipt.outcome == ReceiptOutcome.ACCEPTED
    assert result.succeeded
    assert rec.of("after")[0].gate_feedback == "ok"


async def test_options_taken_from_a_steps_output_are_offered_and_checked(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """Reference §7 item 22: StepRef options were resolved, then discarded."""
    rec.on("plan", Reply(structured={"choices": {"fast": "Fast path", "safe": "Safe path"}}))
    wf = parse(
        """
        workflow w {
          call plan
          gate pick { type = human_approval  options = plan.choices  timeout = "1h" }
          if pick.safe { call careful }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        gate = await waiting_gate(engine, handle.run_id)
        assert [(o.value, o.label) for o in gate.options] == [
            ("fast", "Fast path"),
            ("safe", "Safe path"),
        ]
        with pytest.raises(InvalidSelectionError):
            await engine.approve_gate(handle.run_id, "pick", by="a", selections=["yolo"])
        await engine.approve_gate(handle.run_id, "pick", by="a", selections=["safe"])
        assert (await handle.result(timeout=10)).succeeded
    assert rec.names() == ["plan", "careful"]
    assert rec.of("careful")[0].gate_selections == ("safe",)


async def test_a_resolver_still_deciding_is_cancelled_when_a_person_decides_first(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    outcome: list[str] = []

    class SlowChecks:
        gate_type = "ci_green"

        async def resolve(self, gate: GateRequest) -> GateVerdict | None:
            try:
                await anyio.sleep(30)
            except anyio.get_cancelled_exc_class():
                outcome.append("cancelled")
                raise
            return GateVerdict(approved=False)

    wf = parse('workflow w { gate ci { type = ci_green  timeout = "1h" }  call merge }')
    async with make_engine(gate_resolvers=[SlowChecks()]) as engine:
        handle = await engine.start(wf)
        await waiting_gate(engine, handle.run_id)
        await engine.approve_gate(handle.run_id, "ci", by="release-manager")
        result = await handle.result(timeout=10)
    assert result.succeeded
    assert outcome == ["cancelled"]
