"""Conformance checks: gates — open, decide, race, quorum, selections, inbox."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel

from runkon.errors import InvalidSelectionError, InvalidTransitionError, LeaseLostError
from runkon.events import EventType
from runkon.persistence import (
    GateDecision,
    GateOption,
    GateReceipt,
    ReceiptOutcome,
    RunStatus,
    StepStatus,
    StepUpdate,
    Store,
)
from runkon.testing._harness import StoreHarness
from runkon.testing._suite_support import leased_run, new_gate, raises, utc_in


async def open_gate_blocks_the_run(h: StoreHarness) -> None:
    """open_gate inserts a waiting gate step and sets the run waiting with blocked_on."""
    store = h.store
    run, gen = await leased_run(store)
    await store.set_run_status(run.id, RunStatus.RUNNING, generation=gen)
    deadline = utc_in(600)
    gate = await store.open_gate(
        new_gate(run.id, resume_key="review@0", min_approvals=2, deadline_at=deadline),
        generation=gen,
    )
    assert gate.status is StepStatus.WAITING
    assert gate.decision is None
    assert gate.options == (GateOption("ship", "Ship it"), GateOption("hold", "Hold"))
    assert (gate.min_approvals, gate.prompt, gate.resume_key) == (
        2,
        "Ship the release?",
        "review@0",
    )
    assert gate.deadline_at is not None
    assert abs((gate.deadline_at - deadline).total_seconds()) < 0.001
    assert await store.get_gate(gate.step_id) == gate
    blocked = await store.get_run(run.id)
    assert blocked.status is RunStatus.WAITING
    assert blocked.blocked_on is not None
    assert blocked.blocked_on["gate_name"] == "review"
    assert blocked.blocked_on["step_id"] == gate.step_id
    step = await store.get_step(gate.step_id)
    assert (step.role, step.status, step.gate_type) == (
        "gate",
        StepStatus.WAITING,
        "human_approval",
    )
    await raises(ValueError, store.open_gate(new_gate(run.id, min_approvals=0), generation=gen))
    await store.set_run_status(run.id, RunStatus.FAILED, generation=gen)
    await raises(InvalidTransitionError, store.open_gate(new_gate(run.id, "late"), generation=gen))


async def approval_resolves_the_gate(h: StoreHarness) -> None:
    """An approval resolves a waiting gate once; the run goes back to running."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    receipt = await store.approve_gate(
        gate.step_id, by="alice", feedback="looks good", selections=["ship"]
    )
    assert receipt.accepted
    assert receipt.outcome is ReceiptOutcome.ACCEPTED
    assert (receipt.decision, receipt.decided_by, receipt.run_id) == (
        GateDecision.APPROVED,
        "alice",
        run.id,
    )
    stored = await store.get_gate(gate.step_id)
    assert stored.status is StepStatus.COMPLETED
    assert (stored.decision, stored.decided_by, stored.decided_at) == (
        GateDecision.APPROVED,
        "alice",
        receipt.decided_at,
    )
    assert (stored.feedback, stored.selections) == ("looks good", ("ship",))
    assert [a.approver for a in stored.approvals] == ["alice"]
    assert (await store.get_step(gate.step_id)).gate_feedback == "looks good"
    resumed = await store.get_run(run.id)
    assert resumed.status is RunStatus.RUNNING
    assert resumed.blocked_on is None

    again = await store.approve_gate(gate.step_id, by="bob")
    assert again.outcome is ReceiptOutcome.ALREADY_RESOLVED
    assert (again.decision, again.decided_by, again.decided_at) == (
        GateDecision.APPROVED,
        "alice",
        receipt.decided_at,
    )
    assert (await store.approve_gate("01NOSUCHGATE000000000000000", by="x")).outcome is (
        ReceiptOutcome.UNKNOWN
    )
    events = [(e.type, e.data["decision"], e.data["by"]) for e in await store.read_events(run.id)]
    assert events == [(EventType.GATE_RESOLVED, "approved", "alice")]


async def rejection_resolves_the_gate(h: StoreHarness) -> None:
    """A rejection resolves the gate as failed; later approvals see it already resolved."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id, min_approvals=3), generation=gen)
    receipt = await store.reject_gate(gate.step_id, by="bob", feedback="not yet")
    assert receipt.accepted
    assert receipt.decision is GateDecision.REJECTED
    stored = await store.get_gate(gate.step_id)
    assert (stored.status, stored.decision, stored.decided_by, stored.feedback) == (
        StepStatus.FAILED,
        GateDecision.REJECTED,
        "bob",
        "not yet",
    )
    late = await store.approve_gate(gate.step_id, by="alice", selections=["bogus"])
    assert late.outcome is ReceiptOutcome.ALREADY_RESOLVED
    assert (late.decision, late.decided_by) == (GateDecision.REJECTED, "bob")
    assert (await store.reject_gate(gate.step_id, by="carol")).outcome is (
        ReceiptOutcome.ALREADY_RESOLVED
    )
    assert (await store.get_run(run.id)).status is RunStatus.RUNNING


async def timeout_resolves_the_gate(h: StoreHarness) -> None:
    """time_out_gate resolves a waiting gate as timed out, by nobody; approvals then lose."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    receipt = await store.time_out_gate(gate.step_id, generation=gen)
    assert receipt.accepted
    assert receipt.decision is GateDecision.TIMED_OUT
    assert receipt.decided_by is None
    stored = await store.get_gate(gate.step_id)
    assert (stored.status, stored.decision, stored.decided_by) == (
        StepStatus.TIMED_OUT,
        GateDecision.TIMED_OUT,
        None,
    )
    late = await store.approve_gate(gate.step_id, by="alice")
    assert (late.outcome, late.decision) == (
        ReceiptOutcome.ALREADY_RESOLVED,
        GateDecision.TIMED_OUT,
    )
    again = await store.time_out_gate(gate.step_id, generation=gen)
    assert again.outcome is ReceiptOutcome.ALREADY_RESOLVED
    assert [e.type for e in await store.read_events(run.id)] == [EventType.GATE_TIMED_OUT]
    missing = await store.time_out_gate("01NOSUCHGATE000000000000000", generation=gen)
    assert missing.outcome is ReceiptOutcome.UNKNOWN


async def cancel_closes_the_gate_as_cancelled(h: StoreHarness) -> None:
    """cancel_gate resolves a waiting gate as cancelled, fenced; later decisions see that."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    await store.request_cancel(run.id, reason="wrong ticket", by="carol")
    await raises(
        LeaseLostError,
        store.cancel_gate(gate.step_id, generation=gen + 1, by="carol", reason="wrong ticket"),
    )
    receipt = await store.cancel_gate(
        gate.step_id, generation=gen, by="carol", reason="wrong ticket"
    )
    assert receipt.accepted
    assert (receipt.decision, receipt.decided_by, receipt.run_id) == (
        GateDecision.CANCELLED,
        "carol",
        run.id,
    )
    stored = await store.get_gate(gate.step_id)
    assert (stored.status, stored.decision, stored.decided_by, stored.feedback) == (
        StepStatus.FAILED,
        GateDecision.CANCELLED,
        "carol",
        "wrong ticket",
    )
    assert stored.decided_at == receipt.decided_at
    assert (await store.get_step(gate.step_id)).markers_out == ("cancelled",)
    assert await store.list_waiting_gates() == []
    for late in (
        await store.approve_gate(gate.step_id, by="alice", selections=["ship"]),
        await store.reject_gate(gate.step_id, by="bob"),
        await store.time_out_gate(gate.step_id, generation=gen),
        await store.cancel_gate(gate.step_id, generation=gen),
    ):
        assert (late.outcome, late.decision, late.decided_by) == (
            ReceiptOutcome.ALREADY_RESOLVED,
            GateDecision.CANCELLED,
            "carol",
        )
    assert (await store.get_run(run.id)).status is RunStatus.CANCELLING
    events = [(e.type, e.data) for e in await store.read_events(run.id)]
    assert [kind for kind, _ in events] == [
        EventType.CANCELLATION_REQUESTED,
        EventType.GATE_RESOLVED,
    ]
    resolved = events[1][1]
    assert (resolved["decision"], resolved["approved"], resolved["by"]) == (
        "cancelled",
        False,
        "carol",
    )
    missing = await store.cancel_gate("01NOSUCHGATE000000000000000", generation=gen)
    assert missing.outcome is ReceiptOutcome.UNKNOWN


async def gate_finished_by_the_engine_reads_as_decided(h: StoreHarness) -> None:
    """A gate step the engine finished with update_step reads as decided by nobody."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    failed = await store.update_step(
        gate.step_id,
        StepUpdate(StepStatus.FAILED, step_error="options did not resolve"),
        generation=gen,
    )
    stored = await store.get_gate(gate.step_id)
    assert (stored.decision, stored.decided_by) == (GateDecision.REJECTED, None)
    assert stored.decided_at == failed.ended_at
    receipt = await store.approve_gate(gate.step_id, by="alice")
    assert (receipt.outcome, receipt.decided_at) == (
        ReceiptOutcome.ALREADY_RESOLVED,
        failed.ended_at,
    )
    assert await store.list_waiting_gates() == []


async def concurrent_decisions_have_one_winner(h: StoreHarness) -> None:
    """200 concurrent approve/reject/time-out attempts on one gate: exactly one is accepted."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    receipts: list[GateReceipt] = []
    order = list(range(200))
    random.Random(3).shuffle(order)

    async with h.open_second() as second:

        async def attempt(index: int) -> None:
            target: Store = store if index % 2 else second
            await anyio.lowlevel.checkpoint()
            if index % 3 == 0:
                receipts.append(await target.approve_gate(gate.step_id, by=f"user{index}"))
            elif index % 3 == 1:
                receipts.append(await target.reject_gate(gate.step_id, by=f"user{index}"))
            else:
                receipts.append(await target.time_out_gate(gate.step_id, generation=gen))

        async with anyio.create_task_group() as group:
            for index in order:
                group.start_soon(attempt, index)

    winners = [r for r in receipts if r.outcome is ReceiptOutcome.ACCEPTED]
    assert len(receipts) == 200
    assert len(winners) == 1, [r.outcome for r in receipts]
    winner = winners[0]
    losers = [r for r in receipts if r is not winner]
    assert all(r.outcome is ReceiptOutcome.ALREADY_RESOLVED for r in losers)
    assert {(r.decision, r.decided_by) for r in losers} == {(winner.decision, winner.decided_by)}
    stored = await store.get_gate(gate.step_id)
    assert (stored.decision, stored.decided_by, stored.decided_at) == (
        winner.decision,
        winner.decided_by,
        winner.decided_at,
    )
    decisions = [e for e in await store.read_events(run.id) if e.type.startswith("gate_")]
    assert len(decisions) == 1
    assert (await store.get_run(run.id)).status is RunStatus.RUNNING


async def quorum_needs_distinct_approvers(h: StoreHarness) -> None:
    """A quorum gate passes on the approval that reaches min_approvals distinct approvers."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id, min_approvals=2), generation=gen)
    first = await store.approve_gate(gate.step_id, by="alice", feedback="ok", selections=["hold"])
    twice = await store.approve_gate(
        gate.step_id, by="alice", feedback="ok again", selections=["ship"]
    )
    assert first.outcome is ReceiptOutcome.APPROVAL_RECORDED
    assert twice.outcome is ReceiptOutcome.ALREADY_APPROVED  # counted once; nothing changed
    for receipt in (first, twice):
        assert (receipt.approvals, receipt.approvals_needed, receipt.decision) == (1, 2, None)
    waiting = await store.get_gate(gate.step_id)
    assert waiting.status is StepStatus.WAITING
    assert [a.approver for a in waiting.approvals] == ["alice"]
    assert waiting.approvals[0].feedback == "ok"
    assert waiting.approvals[0].selections == ("hold",)
    listed = await store.list_waiting_gates(run_id=run.id)
    assert [(g.approvals, g.min_approvals) for g in listed] == [(1, 2)]
    final = await store.approve_gate(
        gate.step_id, by="bob", feedback="fine", selections=["ship", "hold"]
    )
    assert final.accepted
    assert (final.approvals, final.decided_by) == (2, "bob")
    passed = await store.get_gate(gate.step_id)
    assert passed.decision is GateDecision.APPROVED
    assert [a.approver for a in passed.approvals] == ["alice", "bob"]
    assert [a.selections for a in passed.approvals] == [("hold",), ("ship", "hold")]
    assert passed.feedback == "ok\nfine"
    # every approver's selections, in approval order, each value once
    assert passed.selections == ("hold", "ship")
    events = await store.read_events(run.id)
    assert [e.type for e in events] == [
        EventType.GATE_APPROVAL_RECORDED,
        EventType.GATE_RESOLVED,
    ]
    assert events[1].data["selections"] == ["hold", "ship"]


async def a_decision_after_the_deadline_is_refused(h: StoreHarness) -> None:
    """Decisions at or after the gate's deadline (store clock) are refused, writing nothing."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id, deadline_at=utc_in(-2)), generation=gen)
    assert gate.deadline_at is not None
    refused = [
        await store.approve_gate(gate.step_id, by="alice", selections=["ship"]),
        await store.approve_gate(gate.step_id, by="resolver", decisive=True),
        await store.reject_gate(gate.step_id, by="bob", feedback="too late"),
    ]
    async with h.open_second() as second:
        refused.append(await second.approve_gate(gate.step_id, by="carol"))
    for receipt in refused:
        assert not receipt.accepted
        assert (receipt.outcome, receipt.run_id, receipt.deadline_at, receipt.decision) == (
            ReceiptOutcome.DEADLINE_PASSED,
            run.id,
            gate.deadline_at,
            None,
        )
    assert await store.get_gate(gate.step_id) == gate  # still waiting, no approval kept
    assert await store.read_events(run.id) == []
    assert [g.step_id for g in await store.list_waiting_gates(run_id=run.id)] == [gate.step_id]
    assert (await store.get_run(run.id)).status is RunStatus.WAITING
    timed_out = await store.time_out_gate(gate.step_id, generation=gen)
    assert (timed_out.outcome, timed_out.decision) == (
        ReceiptOutcome.ACCEPTED,
        GateDecision.TIMED_OUT,
    )
    late = await store.approve_gate(gate.step_id, by="alice")
    assert (late.outcome, late.decision) == (
        ReceiptOutcome.ALREADY_RESOLVED,
        GateDecision.TIMED_OUT,
    )
    never = await store.open_gate(new_gate(run.id, "never", deadline_at=None), generation=gen)
    assert (await store.approve_gate(never.step_id, by="alice", selections=["ship"])).accepted


async def a_decisive_approval_passes_a_quorum_gate_alone(h: StoreHarness) -> None:
    """A decisive approval (a resolver's verdict) resolves a quorum gate by itself."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id, min_approvals=3), generation=gen)
    receipt = await store.approve_gate(
        gate.step_id, by="github", feedback="approved by ann, bob, cy", decisive=True
    )
    assert receipt.accepted
    decided = await store.get_gate(gate.step_id)
    assert (decided.decision, decided.decided_by) == (GateDecision.APPROVED, "github")
    assert decided.feedback == "approved by ann, bob, cy"
    assert await store.list_waiting_gates(run_id=run.id) == []


async def invalid_selections_change_nothing(h: StoreHarness) -> None:
    """Selections outside the gate's options are refused, naming the allowed values."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    error = await raises(
        InvalidSelectionError,
        store.approve_gate(gate.step_id, by="alice", selections=["ship", "yolo"]),
    )
    assert (error.step_id, error.invalid, error.allowed) == (
        gate.step_id,
        ["yolo"],
        ["ship", "hold"],
    )
    assert "'ship'" in str(error)
    assert "'hold'" in str(error)
    assert await store.get_gate(gate.step_id) == gate
    assert await store.read_events(run.id) == []
    plain = await store.open_gate(new_gate(run.id, "plain", 2, options=()), generation=gen)
    error = await raises(
        InvalidSelectionError, store.approve_gate(plain.step_id, by="alice", selections=["x"])
    )
    assert error.allowed == []
    assert (await store.get_gate(plain.step_id)).approvals == ()
    assert (await store.approve_gate(plain.step_id, by="alice", selections=None)).accepted


async def decision_before_wait_is_visible(h: StoreHarness) -> None:
    """A decision written (through another handle) before anyone waits is read back later."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    async with h.open_second() as second:
        receipt = await second.approve_gate(gate.step_id, by="early-bird", selections=["ship"])
    assert receipt.accepted
    seen = await store.get_gate(gate.step_id)
    assert (seen.decision, seen.decided_by, seen.selections) == (
        GateDecision.APPROVED,
        "early-bird",
        ("ship",),
    )
    assert await store.list_waiting_gates() == []
    late = await store.time_out_gate(gate.step_id, generation=gen)
    assert late.outcome is ReceiptOutcome.ALREADY_RESOLVED
    assert late.decided_by == "early-bird"


async def waiting_gates_listing(h: StoreHarness) -> None:
    """list_waiting_gates filters by run, workflow and type, ordered by deadline (none last)."""
    store = h.store
    deploy, deploy_gen = await leased_run(store, "deploy")
    audit, audit_gen = await leased_run(store, "audit")
    late = await store.open_gate(
        new_gate(deploy.id, "late", 1, deadline_at=utc_in(900)), generation=deploy_gen
    )
    never = await store.open_gate(
        new_gate(deploy.id, "never", 2, deadline_at=None, gate_type="pr_checks"),
        generation=deploy_gen,
    )
    soon = await store.open_gate(
        new_gate(audit.id, "soon", 1, deadline_at=utc_in(60), gate_type="human_review"),
        generation=audit_gen,
    )
    decided = await store.open_gate(
        new_gate(audit.id, "decided", 2, deadline_at=utc_in(30)), generation=audit_gen
    )
    await store.reject_gate(decided.step_id, by="x")

    everything = await store.list_waiting_gates()
    assert [g.step_id for g in everything] == [soon.step_id, late.step_id, never.step_id]
    first = everything[0]
    assert (first.run_id, first.workflow_name, first.gate_name, first.gate_type) == (
        audit.id,
        "audit",
        "soon",
        "human_review",
    )
    assert first.options == soon.options
    assert first.prompt == soon.prompt
    assert first.deadline_at == soon.deadline_at
    assert (first.approvals, first.min_approvals) == (
        0,
        1,
    )
    by_run = await store.list_waiting_gates(run_id=deploy.id)
    assert [g.gate_name for g in by_run] == ["late", "never"]
    assert [g.gate_name for g in await store.list_waiting_gates(workflow_name="audit")] == ["soon"]
    assert [g.gate_name for g in await store.list_waiting_gates(gate_type="pr_checks")] == ["never"]
    assert [g.gate_name for g in await store.list_waiting_gates(limit=2)] == ["soon", "late"]


async def decisions_never_clobber_cancelling(h: StoreHarness) -> None:
    """A gate decision moves a waiting run back to running, but leaves a cancelling run alone."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    await store.request_cancel(run.id, reason="stop")
    assert (await store.approve_gate(gate.step_id, by="alice")).accepted
    assert (await store.get_run(run.id)).status is RunStatus.CANCELLING
    late_gate = await store.open_gate(new_gate(run.id, "second", 2), generation=gen)
    assert (await store.get_run(run.id)).status is RunStatus.CANCELLING
    assert (await store.get_gate(late_gate.step_id)).status is StepStatus.WAITING


async def run_waits_until_its_last_gate_is_decided(h: StoreHarness) -> None:
    """With two gates waiting, the run stays waiting until both are decided."""
    store = h.store
    run, gen = await leased_run(store)
    one = await store.open_gate(new_gate(run.id, "one", 1), generation=gen)
    two = await store.open_gate(new_gate(run.id, "two", 2), generation=gen)
    await store.approve_gate(one.step_id, by="alice")
    assert (await store.get_run(run.id)).status is RunStatus.WAITING
    await store.time_out_gate(two.step_id, generation=gen)
    assert (await store.get_run(run.id)).status is RunStatus.RUNNING


CHECKS = [
    open_gate_blocks_the_run,
    approval_resolves_the_gate,
    rejection_resolves_the_gate,
    timeout_resolves_the_gate,
    cancel_closes_the_gate_as_cancelled,
    gate_finished_by_the_engine_reads_as_decided,
    concurrent_decisions_have_one_winner,
    quorum_needs_distinct_approvers,
    a_decision_after_the_deadline_is_refused,
    a_decisive_approval_passes_a_quorum_gate_alone,
    invalid_selections_change_nothing,
    decision_before_wait_is_visible,
    waiting_gates_listing,
    decisions_never_clobber_cancelling,
    run_waits_until_its_last_gate_is_decided,
]
