"""What leaves ``async with FlowEngine(...)`` (issue 10.3).

An exception raised in the block leaves it as itself, never wrapped in an
``ExceptionGroup``: runkon's errors can be caught by their class around ``engine.run``,
the caller's own exceptions, ``KeyboardInterrupt`` and cancellations behave as without
the engine. In every case the engine still shuts down cleanly: no task left behind, the
runs it drove released (resumable). Only a failure of runkon's own background services
surfaces as a group.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

import runkon
from runkon.engine import EngineShutdownError, FlowEngine
from runkon.persistence import RunStatus, Store

from ._support import FOREVER, MakeEngine, Recorder, parse

WF = parse("workflow w { inputs { ticket required } call a  call b }")


async def test_a_runkon_error_in_the_block_is_caught_by_its_own_class(
    make_engine: MakeEngine,
) -> None:
    caught = None
    try:
        async with make_engine() as engine:
            await engine.run(WF, {})  # the required input is missing
    except runkon.InputError as exc:
        caught = exc
    assert caught is not None
    assert "missing required input 'ticket'" in str(caught)


class _Mine(Exception):
    pass


@pytest.mark.parametrize(
    "raised",
    [
        pytest.param(lambda: _Mine("mine"), id="own-exception"),
        pytest.param(lambda: ValueError("bad value"), id="value-error"),
        pytest.param(KeyboardInterrupt, id="keyboard-interrupt"),
    ],
)
async def test_an_exception_raised_in_the_block_leaves_as_itself_after_a_clean_shutdown(
    make_engine: MakeEngine, rec: Recorder, store: Store, raised: Any
) -> None:
    rec.on("b", FOREVER)
    before = asyncio.all_tasks()
    error = raised()
    engine = make_engine()
    handles = []

    async def block() -> None:
        async with engine:
            handles.append(await engine.start(WF, {"ticket": "T-1"}))
            await rec.started("b")
            raise error

    with pytest.raises(type(error)) as leaving:
        await block()
    assert leaving.value is error  # the same object, not a copy or a group
    assert leaving.value.__cause__ is None
    assert leaving.value.__context__ is None
    with pytest.raises(EngineShutdownError):
        await handles[0].result(timeout=5)
    run = await store.get_run(handles[0].run_id)
    assert run.status == RunStatus.RUNNING  # resumable:
    assert run.owner_token is None  # the lease was given back
    assert asyncio.all_tasks() == before  # nothing left running
    assert engine.active_runs() == []


async def test_a_cancelled_block_is_cancelled_as_usual_and_shuts_down_cleanly(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("b", FOREVER)
    before = asyncio.all_tasks()
    with anyio.CancelScope() as scope:
        async with make_engine() as engine:
            handle = await engine.start(WF, {"ticket": "T-1"})
            await rec.started("b")
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    run = await store.get_run(handle.run_id)
    assert run.status == RunStatus.RUNNING
    assert run.owner_token is None
    assert asyncio.all_tasks() == before


async def test_a_timeout_around_the_block_is_a_timeout(make_engine: MakeEngine) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05), make_engine():
            await anyio.sleep_forever()


class _KeeperFails:
    """A store whose lease renewal fails: the engine's lease keeper dies."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def refresh_leases(self, *args: Any, **kwargs: Any) -> set[str]:
        raise RuntimeError("the disk went away")


async def test_a_background_failure_surfaces_as_a_group(store: Store, rec: Recorder) -> None:
    engine = FlowEngine(
        _KeeperFails(store),  # type: ignore[arg-type]
        fallback_action=rec,
        manage_store=False,
        lease_ttl=1.0,
        lease_refresh_interval=0.05,
    )
    rec.on("a", FOREVER)

    async def block() -> None:
        async with engine:
            await engine.start(WF, {"ticket": "T-1"})  # a lease for the keeper to renew
            await anyio.sleep_forever()  # cancelled by the keeper's failure

    with anyio.fail_after(10), pytest.raises(ExceptionGroup) as group:
        await block()
    assert group.group_contains(RuntimeError, match="the disk went away")


async def test_the_blocks_own_exception_wins_over_a_background_failure(
    store: Store, rec: Recorder
) -> None:
    engine = FlowEngine(
        _KeeperFails(store),  # type: ignore[arg-type]
        fallback_action=rec,
        manage_store=False,
        lease_ttl=1.0,
        lease_refresh_interval=0.05,
    )
    rec.on("a", FOREVER)

    async def block() -> None:
        async with engine:
            await engine.start(WF, {"ticket": "T-1"})
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                raise _Mine("cleanup failed") from None

    with anyio.fail_after(10), pytest.raises(_Mine):
        await block()
