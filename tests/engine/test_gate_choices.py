"""Gate options (issue 10.1): approving a gate that offers options needs an explicit choice
unless the workflow says ``allow_none = true``; ``select = one`` allows at most one; the
feedback text reaches later steps as ``{{gate_feedback_text}}`` also with selections."""

from __future__ import annotations

import pytest

from runkon.errors import InvalidSelectionError, SelectionRequiredError
from runkon.persistence import GateDecision, ReceiptOutcome, RunStatus, Store

from ._support import MakeEngine, Recorder, parse, waiting_gates

RELEASE = """
workflow release {
  gate approve-release {
    type    = human_approval
    options = ["ship", "hold"]
    timeout = "1h"
    %s
  }
  if approve-release.ship { call publish }
  call announce
}
"""


async def test_approving_a_gate_with_options_and_no_choice_is_refused(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(RELEASE % ""))
        run_id = handle.run_id
        await waiting_gates(engine, run_id)
        for selections in (None, []):
            with pytest.raises(SelectionRequiredError) as caught:
                await engine.approve_gate(
                    run_id, "approve-release", by="alice", feedback="ok", selections=selections
                )
            assert caught.value.allowed == ["ship", "hold"]
            assert "needs a choice" in str(caught.value)
            assert "['ship', 'hold']" in str(caught.value)
            assert "'approve-release'" in str(caught.value)
        [gate] = await waiting_gates(engine, run_id)  # nothing changed: it still waits
        assert (gate.select, gate.allow_none, gate.approvals) == ("many", False, 0)
        assert (await store.get_run(run_id)).status is RunStatus.WAITING
        receipt = await engine.approve_gate(
            run_id, "approve-release", by="alice", selections=["ship"]
        )
        assert receipt.outcome is ReceiptOutcome.ACCEPTED
        assert (await handle.result(timeout=10)).succeeded
    assert rec.names() == ["publish", "announce"]


async def test_allow_none_lets_an_approval_choose_nothing(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(RELEASE % "allow_none = true"))
        [gate] = await waiting_gates(engine, handle.run_id)
        assert gate.allow_none is True
        receipt = await engine.approve_gate(handle.run_id, "approve-release", by="alice")
        assert receipt.outcome is ReceiptOutcome.ACCEPTED
        result = await handle.result(timeout=10)
    assert result.succeeded
    assert rec.names() == ["announce"]  # nothing chosen: `if approve-release.ship` is false
    decided = await store.get_gate(gate.step_id)
    assert (decided.decision, decided.selections) == (GateDecision.APPROVED, None)


async def test_select_one_refuses_two_options_and_takes_one(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(RELEASE % "select = one"))
        [gate] = await waiting_gates(engine, handle.run_id)
        assert gate.select == "one"
        with pytest.raises(InvalidSelectionError) as caught:
            await engine.approve_gate(
                handle.run_id, "approve-release", by="alice", selections=["ship", "hold"]
            )
        assert not isinstance(caught.value, SelectionRequiredError)
        assert caught.value.invalid == ["ship", "hold"]
        assert "takes exactly one option" in str(caught.value)
        assert "choose exactly one of ['ship', 'hold']" in str(caught.value)
        with pytest.raises(SelectionRequiredError, match="choose exactly one of"):
            await engine.approve_gate(handle.run_id, "approve-release", by="alice")
        with pytest.raises(InvalidSelectionError, match=r"\['sink'\] are not options"):
            await engine.approve_gate(
                handle.run_id, "approve-release", by="alice", selections=["sink"]
            )
        assert (await store.get_gate(gate.step_id)).approvals == ()
        # the same value twice is one choice
        await engine.approve_gate(
            handle.run_id, "approve-release", by="alice", selections=["ship", "ship"]
        )
        result = await handle.result(timeout=10)
    assert result.succeeded
    assert rec.names() == ["publish", "announce"]
    assert (await store.get_gate(gate.step_id)).selections == ("ship",)


async def test_feedback_text_reaches_later_steps_when_selections_are_given(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse(RELEASE % "select = one"))
        await waiting_gates(engine, handle.run_id)
        await engine.approve_gate(
            handle.run_id,
            "approve-release",
            by="alice",
            feedback="ship it after lunch",
            selections=["ship"],
        )
        assert (await handle.result(timeout=10)).succeeded
    announce = rec.of("announce")[0]
    # {{gate_feedback}} keeps runkon-flow's rule (selections win); the text is kept apart
    assert announce.gate_feedback == "ship"
    assert announce.inputs["gate_feedback"] == "ship"
    assert announce.inputs["gate_feedback_text"] == "ship it after lunch"
