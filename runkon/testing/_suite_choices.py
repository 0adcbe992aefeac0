"""Conformance checks: gate selection rules — ``select`` (one/many) and ``allow_none``."""

from __future__ import annotations

from runkon.errors import InvalidSelectionError, SelectionRequiredError
from runkon.persistence import GateDecision, RunStatus
from runkon.testing._harness import StoreHarness
from runkon.testing._suite_support import leased_run, new_gate, raises


async def selection_rules_are_stored_with_the_gate(h: StoreHarness) -> None:
    """A gate's select and allow_none are read back by get_gate and list_waiting_gates."""
    store = h.store
    run, gen = await leased_run(store)
    one = await store.open_gate(
        new_gate(run.id, "one", 1, select="one", allow_none=False), generation=gen
    )
    many = await store.open_gate(new_gate(run.id, "many", 2), generation=gen)
    assert (one.select, one.allow_none) == ("one", False)
    assert (many.select, many.allow_none) == ("many", True)  # NewGate's defaults
    async with h.open_second() as second:
        assert await second.get_gate(one.step_id) == one
        listed = {g.gate_name: g for g in await second.list_waiting_gates(run_id=run.id)}
    assert (listed["one"].select, listed["one"].allow_none) == ("one", False)
    assert (listed["many"].select, listed["many"].allow_none) == ("many", True)
    await raises(
        ValueError, store.open_gate(new_gate(run.id, "bad", 3, select="some"), generation=gen)
    )


async def a_gate_with_options_needs_a_choice_unless_none_is_allowed(h: StoreHarness) -> None:
    """Without allow_none, approving a gate with options and no selection changes nothing."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id, allow_none=False), generation=gen)
    no_choice: tuple[list[str] | None, ...] = (None, [])
    for selections in no_choice:
        error = await raises(
            SelectionRequiredError,
            store.approve_gate(gate.step_id, by="alice", feedback="ok", selections=selections),
        )
        assert (error.step_id, error.invalid, error.allowed) == (gate.step_id, [], ["ship", "hold"])
        assert "'ship'" in str(error)
        assert "'hold'" in str(error)
    assert await store.get_gate(gate.step_id) == gate
    assert await store.read_events(run.id) == []
    assert (await store.get_run(run.id)).status is RunStatus.WAITING
    assert (await store.approve_gate(gate.step_id, by="alice", selections=["hold"])).accepted
    decided = await store.get_gate(gate.step_id)
    assert (decided.decision, decided.selections) == (GateDecision.APPROVED, ("hold",))
    allowed = await store.open_gate(new_gate(run.id, "lenient", 2, allow_none=True), generation=gen)
    assert (await store.approve_gate(allowed.step_id, by="alice")).accepted
    assert (await store.get_gate(allowed.step_id)).selections is None


async def select_one_takes_at_most_one_option(h: StoreHarness) -> None:
    """A select='one' gate refuses two options, also across a quorum's approvals."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(
        new_gate(run.id, select="one", allow_none=False, min_approvals=2), generation=gen
    )
    error = await raises(
        InvalidSelectionError,
        store.approve_gate(gate.step_id, by="alice", selections=["ship", "hold"]),
    )
    assert not isinstance(error, SelectionRequiredError)
    assert (error.invalid, error.allowed, error.select) == (
        ["ship", "hold"],
        ["ship", "hold"],
        "one",
    )
    assert "exactly one" in str(error)
    assert await store.get_gate(gate.step_id) == gate
    assert await store.read_events(run.id) == []
    receipt = await store.approve_gate(gate.step_id, by="alice", selections=["ship", "ship"])
    assert receipt.approvals == 1
    assert (await store.get_gate(gate.step_id)).approvals[0].selections == ("ship",)
    # the approvals of a quorum must agree on the one option
    recorded = await store.get_gate(gate.step_id)
    other = await raises(
        InvalidSelectionError, store.approve_gate(gate.step_id, by="bob", selections=["hold"])
    )
    assert (other.invalid, other.earlier) == (["hold"], ["ship"])
    assert "earlier approvals chose 'ship'" in str(other)
    assert await store.get_gate(gate.step_id) == recorded
    assert (await store.approve_gate(gate.step_id, by="bob", selections=["ship"])).accepted
    assert (await store.get_gate(gate.step_id)).selections == ("ship",)


CHECKS = [
    selection_rules_are_stored_with_the_gate,
    a_gate_with_options_needs_a_choice_unless_none_is_allowed,
    select_one_takes_at_most_one_option,
]
