"""Property tests: random gate-decision and lease sequences behave as a simple model says,
and identically on both backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runkon.persistence import (
    InMemoryStore,
    NewGate,
    NewRun,
    ReceiptOutcome,
    SqliteStore,
    Store,
)

PEOPLE = ["alice", "bob", "carol"]
OWNERS = ["engine-a", "engine-b"]

decisions = st.lists(
    st.tuples(st.sampled_from(["approve", "reject", "time_out"]), st.sampled_from(PEOPLE)),
    max_size=8,
)
lease_ops = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "refresh", "release"]),
        st.sampled_from(OWNERS),
        st.integers(0, 3),  # the generation a refresh or release claims to hold
    ),
    max_size=10,
)


def _on_both(tmp: Path, scenario: Callable[[Store], Awaitable[list[object]]]) -> list[object]:
    """Run ``scenario`` on a fresh store of each backend; assert both give the same trace."""

    async def on(store: Store) -> list[object]:
        async with store:
            return await scenario(store)

    memory = anyio.run(on, InMemoryStore())
    sqlite = anyio.run(on, SqliteStore(tmp / f"p{len(list(tmp.iterdir()))}.db"))
    assert memory == sqlite
    return memory


@settings(max_examples=60, deadline=None)
@given(min_approvals=st.integers(1, 3), attempts=decisions)
def test_gate_decisions_follow_the_model(
    tmp_path_factory: pytest.TempPathFactory, min_approvals: int, attempts: list[tuple[str, str]]
) -> None:
    async def scenario(store: Store) -> list[object]:
        run = await store.create_run(NewRun("wf"))
        generation = await store.acquire_lease(run.id, "engine", 60)
        assert generation is not None
        gate = await store.open_gate(
            NewGate(run.id, "g", "human_approval", 0, min_approvals=min_approvals),
            generation=generation,
        )
        trace: list[object] = []
        for action, person in attempts:
            if action == "approve":
                receipt = await store.approve_gate(gate.step_id, by=person)
            elif action == "reject":
                receipt = await store.reject_gate(gate.step_id, by=person)
            else:
                receipt = await store.time_out_gate(gate.step_id, generation=generation)
            trace.append((receipt.outcome, receipt.decision, receipt.decided_by, receipt.approvals))
        final = await store.get_gate(gate.step_id)
        trace.append((final.decision, final.decided_by, [a.approver for a in final.approvals]))
        return trace

    trace = _on_both(tmp_path_factory.mktemp("gates"), scenario)

    # The model: approvals count distinct people until one decision wins; then nothing moves.
    approvers: list[str] = []
    decided: tuple[object, object] | None = None
    for (action, person), (outcome, decision, decided_by, approvals) in zip(
        attempts, trace, strict=False
    ):
        if decided is not None:
            assert outcome is ReceiptOutcome.ALREADY_RESOLVED
            assert (decision, decided_by) == decided
            continue
        if action == "approve":
            if person in approvers:  # counted once; a repeat changes nothing
                assert (outcome, approvals) == (ReceiptOutcome.ALREADY_APPROVED, len(approvers))
                continue
            approvers.append(person)
            if len(approvers) < min_approvals:
                assert (outcome, approvals) == (ReceiptOutcome.APPROVAL_RECORDED, len(approvers))
                continue
        assert outcome is ReceiptOutcome.ACCEPTED
        assert decided_by == (None if action == "time_out" else person)
        decided = (decision, decided_by)
    final_decision, final_by, final_approvers = trace[-1]  # type: ignore[misc]
    assert (final_decision, final_by) == (decided or (None, None))
    assert final_approvers == approvers


@settings(max_examples=60, deadline=None)
@given(operations=lease_ops)
def test_lease_generations_follow_the_model(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, str, int]]
) -> None:
    async def scenario(store: Store) -> list[object]:
        run = await store.create_run(NewRun("wf"))
        trace: list[object] = []
        for action, owner, generation in operations:
            if action == "acquire":
                trace.append(await store.acquire_lease(run.id, owner, 600))
            elif action == "refresh":
                lost = await store.refresh_leases([(run.id, owner, generation)], 600)
                trace.append(run.id in lost)
            else:
                trace.append(await store.release_lease(run.id, owner, generation))
        leased = await store.get_run(run.id)
        trace.append((leased.owner_token, leased.generation))
        return trace

    trace = _on_both(tmp_path_factory.mktemp("leases"), scenario)

    # The model: one owner at a time (leases never expire here); generation moves on a
    # change of owner only; refresh and release need the current owner AND generation.
    holder: str | None = None
    generation = 0
    for (action, owner, claimed), result in zip(operations, trace, strict=False):
        holds = holder == owner and claimed == generation
        if action == "acquire":
            if holder in (None, owner):
                generation += holder != owner
                holder = owner
                assert result == generation
            else:
                assert result is None
        elif action == "refresh":
            assert result is not holds  # True: the lease is lost
        else:
            assert result is holds
            if holds:
                holder = None
    assert trace[-1] == (holder, generation)
