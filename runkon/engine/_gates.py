"""Gate waiting: the process-wide waiter table and the one awaitable a gate waits on.

A waiting gate costs one ``anyio.Event`` in a dict and one timer entry in the event loop;
nothing polls. The engine's notification listener (fed by the store at commit, and by its
change feed for other processes) wakes the waiter of a decided gate.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import anyio

from runkon.engine._protocols import GateRequest, GateResolver, GateVerdict
from runkon.engine._state import RunState
from runkon.errors import InvalidSelectionError
from runkon.persistence import GateRecord, StepStatus


class GateWaiters:
    """step id -> the future its waiting gate sleeps on.

    A bare asyncio future, not an ``anyio.Event``: with 100,000 gates waiting, the
    event's deque of waiters would cost more than the rest of the gate together. runkon
    runs on the asyncio backend (aiosqlite needs it).
    """

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        return len(self._futures)

    def register(self, step_id: str) -> asyncio.Future[None]:
        """A fresh future for ``step_id`` (register BEFORE reading the gate's state)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures[step_id] = future
        return future

    def unregister(self, step_id: str, future: asyncio.Future[None]) -> None:
        if self._futures.get(step_id) is future:
            del self._futures[step_id]

    def wake(self, step_id: str) -> bool:
        """Wake the waiter of ``step_id``, if one waits here. Returns True if one did."""
        future = self._futures.pop(step_id, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(None)
        return True


def seconds_until(deadline_at: datetime | None) -> float:
    """Seconds from now until ``deadline_at`` (0 if past, infinite if None)."""
    if deadline_at is None:
        return math.inf
    return max(0.0, (deadline_at - datetime.now(UTC)).total_seconds())


async def wait_for_decision(
    state: RunState,
    step_id: str,
    deadline_at: datetime | None,
    resolver: GateResolver | None,
    request: GateRequest | None,
) -> GateRecord:
    """Wait until the gate is decided, or its deadline passes; return it decided.

    First of: a decision delivered to the waiter, the resolver deciding, the run being
    cancelled (raises). At the deadline the gate is resolved ``timed_out`` through the
    store's compare-and-set; if a decision won that race, it stands.
    """
    store = state.services.store
    with anyio.move_on_after(seconds_until(deadline_at)) as timer:
        if resolver is None or request is None:
            await _wait(state, step_id)
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_run_resolver, state, resolver, request, name=f"resolver {step_id}")
                await _wait(state, step_id)
                tg.cancel_scope.cancel()
    if timer.cancelled_caught:
        await store.time_out_gate(step_id, generation=state.generation)
    gate: GateRecord = await store.get_gate(step_id)
    return gate


async def _wait(state: RunState, step_id: str) -> None:
    """Sleep until the gate is no longer waiting; never miss a wake-up (register, then
    check, then wait). Holds nothing but the step id and the future while it sleeps."""
    waiters: GateWaiters = state.services.gates
    store = state.services.store
    while True:
        wake = waiters.register(step_id)
        try:
            if (await store.get_gate(step_id)).status != StepStatus.WAITING:
                return
            await wake
        finally:
            waiters.unregister(step_id, wake)


async def _run_resolver(state: RunState, resolver: GateResolver, request: GateRequest) -> None:
    """Let the gate type's resolver decide; it is cancelled if the gate is decided first."""
    try:
        decision: object = await resolver.resolve(request)
    except Exception as exc:
        state.log.warning(
            "gate resolver failed; the gate waits for people and its deadline",
            gate=request.gate_name,
            resolver=repr(resolver),
            error=str(exc),
        )
        return
    if decision is None:
        return
    if not isinstance(decision, GateVerdict):
        state.log.warning("gate resolver returned no GateVerdict", gate=request.gate_name)
        return
    store = state.services.store
    if decision.approved:
        try:
            await store.approve_gate(
                request.step_id,
                by=decision.by,
                feedback=decision.feedback,
                selections=list(decision.selections) or None,
                decisive=True,  # the resolver applied the gate's quorum itself
            )
        except InvalidSelectionError as exc:
            state.log.warning(
                "gate resolver's selections refused; the gate waits for people and its deadline",
                gate=request.gate_name,
                resolver=repr(resolver),
                error=str(exc),
            )
            return
    else:
        await store.reject_gate(request.step_id, by=decision.by, feedback=decision.feedback)
    state.services.gates.wake(request.step_id)
