"""Every event the engine and the stores record parses as the typed ``EngineEvent`` union.

One workflow drives every node kind (call with a retry, call workflow, if/unless, while,
do-while, do, parallel, foreach, script, a gate approved, a quorum gate, always); other
runs cover a rejected gate, a timed-out gate, a cancellation and a resume. Then every stored event
of every run (children included) is parsed strictly: an unknown ``type`` or a field the
model does not know (a misspelt key would be dropped silently by ``extra="ignore"``)
fails the test, on both stores.
"""

from __future__ import annotations

import pytest

from runkon.engine import EngineShutdownError, FlowEngine
from runkon.events import EventType, event_from_record, event_payload
from runkon.persistence import RunStatus, Store, WaitingGate

from ._support import (
    FAIL,
    FOREVER,
    Items,
    MakeEngine,
    Recorder,
    Reply,
    item,
    parse,
    until,
    workflows,
)

CHILD = workflows(child="workflow child { inputs { x required } call check }")

EVERY_KIND = """
workflow w {
  call plan
  call flaky { retries = 1 }
  call workflow child { inputs { x = "direct" } }
  if plan.go { call yes }
  unless plan.go { call no }
  call review
  while review.needs { max_iterations = 3  call fix  call review }
  do { max_iterations = 2  call polish } while polish.again
  do { call inner }
  parallel { call a  call b }
  foreach per-item {
    over = things  max_parallel = 2  workflow = child  inputs = { x = "{{item.id}}" }
  }
  script hello { run = "echo hello" }
  gate approval {
    type = human_approval  prompt = "Ship?"  options = ["ship", "hold"]  timeout = "1h"
  }
  gate quorum { type = pr_approval  min_approvals = 2  timeout = "1h" }
  call optional { on_fail = continue }
  always { call cleanup }
}
"""


async def _gate(engine: FlowEngine, run_id: str, name: str) -> WaitingGate:
    async def named() -> WaitingGate | None:
        found = [g for g in await engine.waiting_gates(run_id=run_id) if g.gate_name == name]
        return found[0] if found else None

    gate: WaitingGate = await until(named)
    return gate


async def _check_every_stored_event(store: Store) -> set[str]:
    seen: set[str] = set()
    for run in await store.list_runs():
        for record in await store.read_events(run.id):
            assert type(record.type) is str  # stored as the plain string, on both stores
            parsed = event_from_record(
                record.run_id, record.seq, record.type, record.created_at, dict(record.data)
            )
            assert parsed.type == record.type
            unknown = set(record.data) - set(event_payload(parsed))
            assert not unknown, f"{record.type} carries fields its model lacks: {unknown}"
            seen.add(record.type)
    return seen


async def test_every_stored_event_of_every_node_kind_parses_strictly(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("plan", Reply(markers=["go"]))
    rec.on("flaky", FAIL, Reply())
    rec.on("review", Reply(markers=["needs"]), Reply())
    rec.on("polish", Reply(markers=["again"]), Reply())
    rec.on("optional", FAIL)
    provider = Items("things", [item("one"), item("two")])
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        handle = await engine.start(parse(EVERY_KIND))
        await _gate(engine, handle.run_id, "approval")
        await engine.approve_gate(handle.run_id, "approval", by="alice", selections=["ship"])
        await _gate(engine, handle.run_id, "quorum")
        await engine.approve_gate(handle.run_id, "quorum", by="alice")
        await engine.approve_gate(handle.run_id, "quorum", by="bob")
        assert (await handle.result(timeout=30)).succeeded

        rejected = await engine.start(
            parse('workflow r { gate g { type = human_approval  timeout = "1h" } }')
        )
        await _gate(engine, rejected.run_id, "g")
        await engine.reject_gate(rejected.run_id, "g", by="bob", feedback="no")
        assert (await rejected.result(timeout=10)).status == RunStatus.FAILED

        timed_out = await engine.run(
            parse(
                'workflow t { gate g { type = human_approval  timeout = "100ms"'
                "  on_timeout = continue } }"
            )
        )
        assert timed_out.succeeded

        rec.on("forever", FOREVER)
        cancelled = await engine.start(parse("workflow c { call forever  always { call tidy } }"))
        await rec.started("forever")
        await engine.cancel_run(cancelled.run_id, reason="enough", by="carol")
        assert (await cancelled.result(timeout=10)).status == RunStatus.CANCELLED

    rec.on("stalls", FOREVER)
    async with make_engine() as engine:
        stopped = await engine.start(parse("workflow s { call first  call stalls }"))
        await rec.started("stalls")
    with pytest.raises(EngineShutdownError):
        await stopped.result(timeout=5)
    async with make_engine(fallback_action=Recorder()) as engine:
        resumed = await engine.resume(stopped.run_id)
        assert (await resumed.result(timeout=10)).succeeded

    seen = await _check_every_stored_event(store)
    # Not stored by these runs: a lost lease needs a second engine, dropped events are
    # never stored (the bus makes them).
    expected = set(EventType) - {EventType.LEASE_LOST, EventType.EVENTS_DROPPED}
    assert seen == expected
