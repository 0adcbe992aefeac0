"""Gates as awaitables (issue 5): no lost wake-ups, exactly-once outcomes at the deadline,
decisions from other processes, deadlines across restarts, many gates at once."""

from __future__ import annotations

import random
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

import runkon
from runkon.engine import ActionOutput, ActionParams, FlowEngine, StepContext
from runkon.persistence import (
    GateDecision,
    GateRecord,
    NewGate,
    ReceiptOutcome,
    RunStatus,
    SqliteStore,
    Store,
)

WAIT = runkon.parse_workflow('workflow wait { gate human_approval { timeout = "1h" }  call after }')


class Resumed:
    """The ``after`` executor: records when (wall clock) each run got past its gate."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.all_in = anyio.Event()
        self.expected = 0

    async def __call__(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        self.at[ctx.run_id] = time.time()
        if self.expected and len(self.at) >= self.expected:
            self.all_in.set()
        return ActionOutput()


async def gates_waiting(engine: FlowEngine, count: int, *, timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        while len(await engine.waiting_gates()) < count:  # noqa: ASYNC110 - polls the inbox
            await anyio.sleep(0.01)


class ApprovesWhileOpening:
    """A store whose ``open_gate`` is immediately followed by an approval from "someone
    else": the decision lands before the engine registers its waiter."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def open_gate(self, new_gate: NewGate, **kwargs: Any) -> GateRecord:
        gate = await self._inner.open_gate(new_gate, **kwargs)
        receipt = await self._inner.approve_gate(gate.step_id, by="early-bird", feedback="fast")
        assert receipt.accepted
        return gate


async def test_an_approval_before_the_waiter_registers_is_not_lost(store: Store) -> None:
    resumed = Resumed()
    engine = FlowEngine(
        ApprovesWhileOpening(store),  # type: ignore[arg-type]
        actions={"after": resumed},
        manage_store=False,
    )
    async with engine:
        result = await engine.run(WAIT)
    assert result.succeeded
    assert list(resumed.at) == [result.run_id]
    assert await engine.waiting_gates() == []


async def test_approval_and_timeout_racing_at_the_deadline_500_times(store: Store) -> None:
    """500 gates whose approval lands around their deadline (±15 ms): each has exactly
    one outcome, and the run agrees with what the store says the gate became."""
    race = runkon.parse_workflow(
        'workflow race { gate human_approval { timeout = "300ms" } call after }'
    )
    resumed = Resumed()
    receipts: dict[str, Any] = {}
    async with FlowEngine(store, actions={"after": resumed}, manage_store=False) as engine:
        async with engine.events.subscribe(types={"gate_waiting"}, max_buffer=1000) as opened:
            handles = [await engine.start(race) for _ in range(500)]
            deadlines: dict[str, datetime] = {}
            async for event in opened:
                deadlines[event.run_id] = event.deadline_at  # type: ignore[union-attr]
                if len(deadlines) == len(handles):
                    break

        async def approve_near_deadline(run_id: str) -> None:
            delay = deadlines[run_id].timestamp() - time.time() + random.uniform(-0.015, 0.015)
            await anyio.sleep(max(0.0, delay))
            receipts[run_id] = await engine.approve_gate(run_id, "human_approval", by="racer")

        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(approve_near_deadline, handle.run_id)
        results = {handle.run_id: await handle.result(timeout=30) for handle in handles}

    outcomes = {"approved": 0, "timed_out": 0}
    for run_id, result in results.items():
        [gate] = [s for s in await store.get_steps(run_id) if s.role == "gate"]
        decided = await store.get_gate(gate.id)
        receipt = receipts[run_id]
        if decided.decision == GateDecision.APPROVED:
            outcomes["approved"] += 1
            assert receipt.outcome == ReceiptOutcome.ACCEPTED
            assert result.status == RunStatus.COMPLETED
            assert run_id in resumed.at
        else:
            outcomes["timed_out"] += 1
            assert decided.decision == GateDecision.TIMED_OUT
            # refused: either the timeout was written first, or the store's clock had
            # passed the deadline before the engine's timer wrote it
            assert (receipt.outcome, receipt.decision) in (
                (ReceiptOutcome.ALREADY_RESOLVED, GateDecision.TIMED_OUT),
                (ReceiptOutcome.DEADLINE_PASSED, None),
            )
            assert result.status == RunStatus.FAILED
            assert run_id not in resumed.at
    assert sum(outcomes.values()) == 500


async def test_a_deadline_that_passed_while_no_engine_ran_fires_at_once(store: Store) -> None:
    expiring = runkon.parse_workflow(
        'workflow expiring { gate human_approval { timeout = "1s"  on_timeout = continue }'
        "  call after }"
    )
    async with FlowEngine(store, actions={"after": Resumed()}, manage_store=False) as engine:
        handle = await engine.start(expiring)
        await gates_waiting(engine, 1)
    with pytest.raises(runkon.EngineShutdownError):
        await handle.result(timeout=5)
    await anyio.sleep(1.2)  # the deadline passes while nobody drives the run

    resumed = Resumed()
    async with FlowEngine(store, actions={"after": resumed}, manage_store=False) as engine:
        began = time.time()
        result = await (await engine.resume(handle.run_id)).result(timeout=10)
    assert result.succeeded
    assert resumed.at[handle.run_id] - began < 0.5  # at once, not after another second
    [gate] = [s for s in await store.get_steps(handle.run_id) if s.role == "gate"]
    assert (await store.get_gate(gate.id)).decision == GateDecision.TIMED_OUT


async def test_ten_thousand_gates_waiting_at_once_are_all_released(store: Store) -> None:
    resumed = Resumed()
    resumed.expected = 10_000
    async with FlowEngine(store, actions={"after": resumed}, manage_store=False) as engine:
        handles = [await engine.start(WAIT) for _ in range(10_000)]
        await gates_waiting(engine, 10_000, timeout=120)
        assert len(engine.services.gates) == 10_000  # one waiter each, none polling
        for index, handle in enumerate(handles):
            decide = engine.approve_gate if index % 2 == 0 else engine.reject_gate
            receipt = await decide(handle.run_id, "human_approval", by="bulk")
            assert receipt.accepted
        results = [await handle.result(timeout=60) for handle in handles]
    statuses = [result.status for result in results]
    assert statuses.count(RunStatus.COMPLETED) == 5_000
    assert statuses.count(RunStatus.FAILED) == 5_000
    assert len(resumed.at) == 5_000  # exactly the approved ones went on
    assert await engine.waiting_gates() == []


async def test_a_decision_from_a_second_os_process_wakes_the_gate_within_200_ms(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.db"
    resumed = Resumed()
    approver = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from runkon.persistence import SqliteStore

        async def main() -> None:
            async with SqliteStore({str(path)!r}) as store:
                [gate] = await store.list_waiting_gates()
                receipt = await store.approve_gate(gate.step_id, by="other-process")
                print(time.time(), receipt.outcome.value, flush=True)

        asyncio.run(main())
        """
    )
    async with FlowEngine(SqliteStore(path), actions={"after": resumed}) as engine:
        handle = await engine.start(WAIT)
        await gates_waiting(engine, 1)
        done = await anyio.run_process([sys.executable, "-c", approver], check=False)
        assert done.returncode == 0, done.stderr.decode()
        result = await handle.result(timeout=10)
    committed_at, outcome = done.stdout.decode().split()
    assert outcome == "accepted"
    assert result.succeeded
    latency = resumed.at[handle.run_id] - float(committed_at)
    assert latency < 0.2, f"woke {latency * 1000:.0f} ms after the other process decided"


async def test_the_change_feed_is_one_query_per_interval_not_one_per_waiter(
    tmp_path: Path,
) -> None:
    """SQLite: 200 gates waiting idle for 1 s cost about 1 s / notify_interval feed
    queries in total, not one per waiter (and no other store call at all)."""
    from runkon.persistence import _sqlite_ops

    store = SqliteStore(tmp_path / "feed.db", notify_interval=0.05)
    async with FlowEngine(store, actions={"after": Resumed()}) as engine:
        handles = [await engine.start(WAIT) for _ in range(200)]
        await gates_waiting(engine, 200)
        calls: list[str] = []
        original = store._conns.run

        async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(fn.__name__)
            return await original(fn, *args, **kwargs)

        store._conns.run = counted  # type: ignore[method-assign]
        await anyio.sleep(1.0)
        store._conns.run = original  # type: ignore[method-assign]
        for handle in handles:
            await engine.cancel_run(handle.run_id)
    assert set(calls) <= {_sqlite_ops.feed_poll.__name__}, calls
    assert 5 <= len(calls) <= 40, len(calls)


async def test_following_a_run_replays_then_goes_live_without_gaps(store: Store) -> None:
    """``follow_events`` from a sequence number: the stored events after it, then the
    live ones, each exactly once and in order, ending with the run's final event."""
    async with FlowEngine(store, actions={"after": Resumed()}, manage_store=False) as engine:
        handle = await engine.start(WAIT)
        await gates_waiting(engine, 1)
        stored = await engine.read_events(handle.run_id)
        assert [e.type for e in stored] == ["run_started", "gate_waiting"]
        seen: list[Any] = []

        async def follow() -> None:
            async for event in engine.follow_events(handle.run_id, after_seq=1):
                seen.append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.05)
            await engine.approve_gate(handle.run_id, "human_approval", by="alice")
    assert [e.seq for e in seen] == list(range(2, 2 + len(seen)))
    assert seen[0].type == "gate_waiting"
    assert "gate_resolved" in [e.type for e in seen]
    assert seen[-1].type == "run_completed"


async def test_following_a_run_another_engine_drives_is_woken_by_the_change_feed(
    tmp_path: Path,
) -> None:
    """SQLite: an engine following a run that another engine (another store connection,
    as another process would have) drives gets each event as the feed sees it — well
    before the follower's fallback re-check — exactly once, in order, to the end."""
    from runkon.engine import _event_stream

    path = tmp_path / "shared.db"
    async with (
        FlowEngine(SqliteStore(path), actions={"after": Resumed()}) as driver,
        FlowEngine(SqliteStore(path)) as watcher,
    ):
        handle = await driver.start(WAIT)
        await gates_waiting(driver, 1)
        seen: list[Any] = []
        arrived: dict[str, float] = {}

        async def follow() -> None:
            async for event in watcher.follow_events(handle.run_id):
                seen.append(event)
                arrived.setdefault(event.type, time.monotonic())

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.3)  # the follower is waiting on the store by now
            assert [e.type for e in seen] == ["run_started", "gate_waiting"]
            approved_at = time.monotonic()
            await driver.approve_gate(handle.run_id, "human_approval", by="alice")
    assert [e.seq for e in seen] == list(range(1, 1 + len(seen)))
    assert seen[-1].type == "run_completed"
    assert arrived["run_completed"] - approved_at < _event_stream.FOREIGN_RECHECK / 2
