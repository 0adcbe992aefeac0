"""Leases: one keeper refreshes every held lease in one batch per interval; writes are
fenced; a run whose lease is lost stops with LeaseLostError; ``recover=True`` resumes
runs whose lease expired."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

import runkon
from runkon.engine import ActionParams, EngineShutdownError, FlowEngine, StepContext
from runkon.errors import StoreBackendError
from runkon.persistence import RunStatus, StepStatus, Store

from ._support import FOREVER, MakeEngine, Recorder, Reply, event_types, parse, until

TTL = 0.6
INTERVAL = 0.15


class CountingStore:
    """Delegates to a store and records every ``refresh_leases`` batch; the first
    ``failing_refreshes`` batches fail as a briefly unavailable database would."""

    def __init__(self, inner: Store, *, failing_refreshes: int = 0) -> None:
        self._inner = inner
        self.batches: list[list[str]] = []
        self.acquires = 0
        self.failing_refreshes = failing_refreshes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def refresh_leases(self, leases: Sequence[tuple[str, str, int]], ttl: float) -> set[str]:
        self.batches.append([run_id for run_id, _, _ in leases])
        if self.failing_refreshes:
            self.failing_refreshes -= 1
            raise StoreBackendError("test.db", "disk I/O error (injected)")
        return await self._inner.refresh_leases(leases, ttl)

    async def acquire_lease(self, run_id: str, owner: str, ttl: float) -> int | None:
        self.acquires += 1
        return await self._inner.acquire_lease(run_id, owner, ttl)


async def test_one_keeper_refreshes_all_leases_in_one_batch_per_interval(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    counting = CountingStore(store)
    rec.on("work", FOREVER)
    wf = parse("workflow w { call work }")
    engine = FlowEngine(
        counting,  # type: ignore[arg-type]
        fallback_action=rec,
        manage_store=False,
        lease_ttl=TTL,
        lease_refresh_interval=INTERVAL,
    )
    async with engine:
        handles = [await engine.start(wf) for _ in range(3)]
        await rec.started("work", 3)
        counting.batches.clear()
        acquires = counting.acquires
        await anyio.sleep(3 * TTL)  # three TTLs: without refreshes every lease would lapse

        runs = [await store.get_run(h.run_id) for h in handles]
        now = datetime.now(UTC)
        for run in runs:
            assert run.owner_token == engine.owner
            assert run.lease_until is not None
            assert run.lease_until > now
        full = [batch for batch in counting.batches if len(batch) == 3]
        assert len(full) >= 3  # refreshed throughout...
        assert len(counting.batches) <= (3 * TTL) / INTERVAL + 2  # ...once per interval
        assert all(sorted(b) == sorted(h.run_id for h in handles) for b in full)
        assert counting.acquires == acquires  # no per-run renewals
        for handle in handles:
            await engine.cancel_run(handle.run_id)
        for handle in handles:
            assert (await handle.result(timeout=10)).status == RunStatus.CANCELLED


async def test_a_transient_refresh_failure_does_not_stop_the_run(
    rec: Recorder, store: Store
) -> None:
    """Reference §7 item 8: one failed refresh aborted the run. Two failed refreshes in a
    row (0.3 s) leave a 2 s lease alive: the run goes on."""
    flaky = CountingStore(store, failing_refreshes=2)
    release = anyio.Event()
    rec.on("work", Reply(wait=release))
    engine = FlowEngine(
        flaky,  # type: ignore[arg-type]
        fallback_action=rec,
        manage_store=False,
        lease_ttl=2.0,
        lease_refresh_interval=INTERVAL,
    )
    async with engine:
        handle = await engine.start(parse("workflow w { call work  call after }"))
        await rec.started("work")
        await until(lambda: len(flaky.batches) >= 4)
        release.set()
        result = await handle.result(timeout=10)
    assert result.succeeded
    assert rec.names() == ["work", "after"]


def _freeze_then_steal(store: Store, owner: str = "other-engine") -> Any:
    """An executor hook that blocks the event loop past the lease TTL (a frozen
    process), then lets another engine claim the expired lease."""

    async def hook(ctx: StepContext, params: ActionParams) -> None:
        with anyio.fail_after(10):
            while await store.acquire_lease(ctx.run_id, owner, 60) is None:
                time.sleep(TTL + 0.1)  # noqa: ASYNC251 - the point is to block the loop

    return hook


async def test_a_stale_engine_cannot_write_after_another_took_the_lease(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("work", Reply(hook=_freeze_then_steal(store), markers=["done"]))
    wf = parse("workflow w { call work  call next  always { call cleanup } }")
    async with make_engine(lease_ttl=TTL, lease_refresh_interval=INTERVAL) as engine:
        handle = await engine.start(wf)
        with pytest.raises(runkon.LeaseLostError):
            await handle.result(timeout=10)
        before = await event_types(store, handle.run_id)
        await anyio.sleep(3 * INTERVAL)
        assert handle.run_id not in engine.active_runs()

    assert rec.names() == ["work"]  # neither `next` nor the always block ran here
    run = await store.get_run(handle.run_id)
    assert run.owner_token == "other-engine"
    assert run.status == RunStatus.RUNNING  # the new owner decides what happens next
    [work] = await store.get_steps(handle.run_id)
    assert work.status == StepStatus.RUNNING  # the fenced completion was refused
    assert await event_types(store, handle.run_id) == before
    assert not {"step_completed", "run_completed", "run_failed"} & set(before)


async def test_a_lost_lease_stops_the_run_while_it_waits_on_an_executor(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    steal = _freeze_then_steal(store)

    async def steal_then_sleep(ctx: StepContext, params: ActionParams) -> None:
        await steal(ctx, params)
        await anyio.sleep(30)

    rec.on("work", Reply(hook=steal_then_sleep))
    async with (
        make_engine(lease_ttl=TTL, lease_refresh_interval=INTERVAL) as engine,
        engine.events.subscribe(types={"lease_lost"}) as lost_events,
    ):
        handle = await engine.start(parse("workflow w { call work  always { call cleanup } }"))
        began = time.monotonic()
        with pytest.raises(runkon.LeaseLostError):
            await handle.result(timeout=10)
        assert time.monotonic() - began < 5  # the keeper noticed, not the 30 s executor
        lost = await lost_events.receive(timeout=5)
        assert lost is not None
        assert lost.run_id == handle.run_id

    [work] = rec.calls
    assert rec.interrupted == [work]
    assert rec.cancel_requests == [work.step_id]
    assert rec.names() == ["work"]
    assert (await store.get_run(handle.run_id)).owner_token == "other-engine"


async def test_refresh_leases_reports_runs_whose_lease_was_taken(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("work", FOREVER)
    async with make_engine() as engine:
        handle = await engine.start(parse("workflow w { call work }"))
        await rec.started("work")
        assert await engine.refresh_leases() == set()
        run = await store.get_run(handle.run_id)
        await store.release_lease(handle.run_id, engine.owner, run.generation)
        assert await store.acquire_lease(handle.run_id, "thief", 60) is not None
        assert await engine.refresh_leases() == {handle.run_id}
        with pytest.raises(runkon.LeaseLostError):
            await handle.result(timeout=10)
    assert rec.interrupted == rec.calls


async def _stopped_run(make_engine: MakeEngine, rec: Recorder, wf: runkon.WorkflowDef) -> str:
    started_before = len(rec.of("b"))
    async with make_engine() as engine:
        handle = await engine.start(wf, {"ticket": "T-5"})
        await rec.started("b", started_before + 1)
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    return handle.run_id


async def test_recover_resumes_runs_whose_lease_expired(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    wf = parse("workflow w { inputs { ticket required }  call a  call b  call c }")
    expired = await _stopped_run(make_engine, rec, wf)
    live = await _stopped_run(make_engine, rec, wf)
    # an engine that claimed `expired` and died without refreshing it
    assert await store.acquire_lease(expired, "dead-engine", 0.2) is not None
    # another engine, alive, holds `live`
    assert await store.acquire_lease(live, "busy-engine", 60) is not None
    await anyio.sleep(0.3)
    assert (await store.get_run(expired)).is_stalled()  # its lease ran out: nobody drives it
    assert not (await store.get_run(live)).is_stalled()

    again = Recorder()
    async with make_engine(fallback_action=again, recover=True) as engine:
        assert [h.run_id for h in engine.recovered] == [expired]
        result = await engine.recovered[0].result(timeout=10)

    assert result.succeeded
    assert again.names() == ["b", "c"]
    assert again.calls[0].inputs["ticket"] == "T-5"
    assert (await store.get_run(live)).status == RunStatus.RUNNING
    assert "run_resumed" in await event_types(store, expired)


async def test_without_recover_nothing_is_resumed(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    wf = parse("workflow w { inputs { ticket required }  call a  call b }")
    run_id = await _stopped_run(make_engine, rec, wf)
    again = Recorder()
    async with make_engine(fallback_action=again) as engine:
        assert engine.recovered == []
        await anyio.sleep(0.1)
    assert again.calls == []
    assert (await store.get_run(run_id)).status == RunStatus.RUNNING


async def test_two_engines_recovering_at_once_run_an_expired_run_exactly_once(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    wf = parse("workflow w { inputs { ticket required }  call a  call b  call c }")
    run_id = await _stopped_run(make_engine, rec, wf)
    first, second = Recorder(), Recorder()
    for recorder in (first, second):
        recorder.on("c", Reply(delay=0.2))
    outcomes: list[str] = []

    async def recovering_engine(recorder: Recorder) -> None:
        async with make_engine(fallback_action=recorder, recover=True) as engine:
            for handle in engine.recovered:
                outcomes.append((await handle.result(timeout=10)).status.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(recovering_engine, first)
        tg.start_soon(recovering_engine, second)

    assert outcomes == ["completed"]
    assert sorted(first.names() + second.names()) == ["b", "c"]
    assert (await store.get_run(run_id)).status == RunStatus.COMPLETED
