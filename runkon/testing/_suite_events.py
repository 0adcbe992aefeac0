"""Conformance checks: events, event listeners, notifications, closing, other processes."""

from __future__ import annotations

import sys
import time
import unittest
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import anyio

from runkon.errors import (
    InvalidTransitionError,
    LeaseLostError,
    StoreClosedError,
    UnknownRunError,
)
from runkon.persistence import (
    EventRecord,
    GateDecision,
    NewEvent,
    NewRun,
    NewStep,
    Notification,
    NotificationKind,
    RunStatus,
    StepRole,
    StepStatus,
    StepUpdate,
)
from runkon.testing._harness import StoreHarness
from runkon.testing._suite_support import leased_run, new_gate, raises, running_step, steal_lease

DELIVERY_TIMEOUT = 5.0
"""Seconds a check waits for a notification before failing (delivery is much faster)."""

CROSS_PROCESS_LATENCY = 0.2
"""The issue's contract: another process's decision reaches a listener within 200 ms."""


async def events_have_gap_free_seq(h: StoreHarness) -> None:
    """Events get gap-free per-run seq; read_events pages; insert_step's name the step."""
    store = h.store
    run = await store.create_run(NewRun("wf"), events=[NewEvent("run_created", {"by": "cli"})])
    other = await store.create_run(NewRun("wf"))
    generation = await store.acquire_lease(run.id, "engine", 60)
    assert generation is not None
    step = await store.insert_step(
        NewStep(run.id, "plan", StepRole.AGENT, 0),
        generation=generation,
        events=[NewEvent("step_started", {"step": "plan", "attempt": 0})],
    )
    await store.update_step(
        step.id,
        StepUpdate(StepStatus.COMPLETED),
        generation=generation,
        events=[NewEvent("step_completed", {"markers": ("a", "b")}), NewEvent("metrics")],
    )
    appended = await store.append_events(
        run.id, [NewEvent("note", {"nested": {"n": [1, 2.5, None, True]}})], generation=generation
    )
    assert [(e.run_id, e.seq) for e in appended] == [(run.id, 5)]
    events = await store.read_events(run.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.type for e in events] == [
        "run_created",
        "step_started",
        "step_completed",
        "metrics",
        "note",
    ]
    assert events[1].data == {"step": "plan", "attempt": 0, "step_id": step.id}  # filled in
    assert events[2].data == {"markers": ["a", "b"]}  # stored as JSON: a tuple reads as a list
    assert events[4].data == {"nested": {"n": [1, 2.5, None, True]}}
    assert events[4] == appended[0]
    assert all(e.created_at.tzinfo is not None for e in events)
    assert all(e.created_at.microsecond % 1000 == 0 for e in events)
    assert [e.seq for e in await store.read_events(run.id, after_seq=3)] == [4, 5]
    assert [e.seq for e in await store.read_events(run.id, after_seq=1, limit=2)] == [2, 3]
    assert await store.read_events(run.id, after_seq=5) == []
    assert await store.read_events(other.id) == []


async def refused_writes_append_no_events(h: StoreHarness) -> None:
    """A refused write appends none of its events and tells no listener."""
    store = h.store
    heard: list[Sequence[EventRecord]] = []
    remove = store.add_event_listener(heard.append)
    try:
        run, old = await leased_run(store)
        step = await running_step(store, run.id, old)
        await store.update_step(step.id, StepUpdate(StepStatus.FAILED), generation=old)
        await raises(
            InvalidTransitionError,
            store.update_step(
                step.id, StepUpdate(StepStatus.COMPLETED), generation=old, events=[NewEvent("x")]
            ),
        )
        await raises(
            TypeError,
            store.append_events(run.id, [NewEvent("bad", {"when": object()})], generation=old),
        )
        await raises(
            TypeError,
            store.insert_step(
                NewStep(run.id, "p", StepRole.AGENT, 1),
                generation=old,
                events=[NewEvent("ok"), NewEvent("bad", {"x": {1, 2}})],
            ),
        )
        await steal_lease(store, run.id)
        await raises(
            LeaseLostError, store.append_events(run.id, [NewEvent("late")], generation=old)
        )
        assert await store.read_events(run.id) == []
        assert [s.id for s in await store.get_steps(run.id)] == [step.id]
        assert heard == []
    finally:
        remove()


async def listeners_hear_committed_events(h: StoreHarness) -> None:
    """Event listeners get each write's stored events after it commits, decisions included."""
    store = h.store
    heard: list[list[tuple[int, str]]] = []

    def listener(events: Sequence[EventRecord]) -> None:
        heard.append([(event.seq, event.type) for event in events])

    def broken(events: Sequence[EventRecord]) -> None:
        raise RuntimeError("a listener failing must not fail the write")

    remove_broken = store.add_event_listener(broken)
    remove = store.add_event_listener(listener)
    run, gen = await leased_run(store)
    await store.append_events(run.id, [NewEvent("a"), NewEvent("b")], generation=gen)
    gate = await store.open_gate(
        new_gate(run.id), generation=gen, events=[NewEvent("gate_waiting")]
    )
    await store.approve_gate(gate.step_id, by="alice")
    await store.request_cancel(run.id, reason="stop")
    remove()
    remove_broken()
    await store.append_events(run.id, [NewEvent("unheard")], generation=gen)
    assert heard == [
        [(1, "a"), (2, "b")],
        [(3, "gate_waiting")],
        [(4, "gate_resolved")],
        [(5, "cancellation_requested")],
    ]


async def _next_note(stream: object, timeout: float = DELIVERY_TIMEOUT) -> Notification:
    with anyio.fail_after(timeout):
        note: Notification = await stream.__anext__()  # type: ignore[attr-defined]
    return note


async def notifications_arrive_on_commit(h: StoreHarness) -> None:
    """Subscribers hear gate decisions, cancel requests and finished runs of this store."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    other, other_gen = await leased_run(store)
    async with store.notifications() as notes, store.notifications() as also:
        await store.reject_gate(gate.step_id, by="bob")
        await store.request_cancel(run.id, reason="stop")
        await store.set_run_status(other.id, RunStatus.COMPLETED, generation=other_gen)
        got = [await _next_note(notes) for _ in range(3)]
        assert [(n.kind, n.run_id, n.step_id, n.decision) for n in got] == [
            (NotificationKind.GATE_DECIDED, run.id, gate.step_id, GateDecision.REJECTED),
            (NotificationKind.CANCEL_REQUESTED, run.id, None, None),
            (NotificationKind.RUN_FINISHED, other.id, None, None),
        ]
        assert [await _next_note(also) for _ in range(3)] == got
        assert all(n.created_at.tzinfo is not None for n in got)
    # A stream closed by its subscriber hears nothing more, and ends.
    closed = store.notifications()
    await closed.aclose()
    async for _ in closed:
        raise AssertionError("a closed stream yielded a notification")


async def notifications_cross_handles(h: StoreHarness) -> None:
    """A decision made through another handle reaches this handle's subscribers, once."""
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    async with h.open_second() as second, store.notifications() as notes:
        assert (await second.approve_gate(gate.step_id, by="remote")).accepted
        note = await _next_note(notes)
        assert (note.kind, note.step_id, note.decision) == (
            NotificationKind.GATE_DECIDED,
            gate.step_id,
            GateDecision.APPROVED,
        )
        await second.request_cancel(run.id)
        assert (await _next_note(notes)).kind is NotificationKind.CANCEL_REQUESTED
        with anyio.move_on_after(0.3):
            extra = await notes.__anext__()
            raise AssertionError(f"a notification was delivered twice: {extra}")


async def closed_store_refuses_calls(h: StoreHarness) -> None:
    """After aclose() every call raises StoreClosedError and open streams end."""
    store = h.store
    run = await store.create_run(NewRun("wf"))
    stream = store.notifications()
    await store.aclose()
    async for _ in stream:
        raise AssertionError("a stream of a closed store yielded a notification")
    await raises(StoreClosedError, store.get_run(run.id))
    await raises(StoreClosedError, store.create_run(NewRun("wf")))
    await raises(StoreClosedError, store.approve_gate(run.id, by="x"))
    try:
        store.notifications()
    except StoreClosedError:
        pass
    else:
        raise AssertionError("notifications() on a closed store did not raise")
    await store.aclose()  # closing twice is harmless


_PROCESS_B = """
import sys, anyio
from runkon.persistence import *

async def main(step_id, run_id):
    async with ({source}) as store:
        receipt = await store.approve_gate(step_id, by="process-b")
        cancelled = await store.request_cancel(run_id, reason="from process b")
        print(receipt.outcome.value, cancelled)

anyio.run(main, sys.argv[1], sys.argv[2])
"""


async def other_process_decisions_arrive_fast(h: StoreHarness) -> None:
    """A decision and a cancel written by another OS process reach a listener within 200 ms."""
    if h.process_store_source is None:
        raise unittest.SkipTest("this backend cannot be shared between processes")
    store = h.store
    run, gen = await leased_run(store)
    gate = await store.open_gate(new_gate(run.id), generation=gen)
    script = _PROCESS_B.replace("{source}", h.process_store_source)
    received: list[tuple[Notification, datetime]] = []
    async with store.notifications() as notes:

        async def listen() -> None:
            async for note in notes:
                received.append((note, datetime.now(UTC)))
                if len(received) == 2:
                    return

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(listen)
                result = await anyio.run_process(
                    [sys.executable, "-c", script, gate.step_id, run.id], check=False
                )
                assert result.returncode == 0, result.stderr.decode()
                assert result.stdout.decode().split() == ["accepted", "True"]
    kinds = [(note.kind, note.step_id) for note, _ in received]
    assert kinds == [
        (NotificationKind.GATE_DECIDED, gate.step_id),
        (NotificationKind.CANCEL_REQUESTED, None),
    ]
    for note, arrived in received:
        latency = arrived - note.created_at
        assert latency < timedelta(seconds=CROSS_PROCESS_LATENCY), f"{note.kind}: {latency}"
    assert (await store.get_gate(gate.step_id)).decided_by == "process-b"


async def wait_for_events_wakes_on_commit(h: StoreHarness) -> None:
    """wait_for_events: True at once if newer events exist, woken by a commit, else timeout."""
    store = h.store
    run, gen = await leased_run(store)
    await store.append_events(run.id, [NewEvent("first")], generation=gen)
    assert await store.wait_for_events(run.id, 0, timeout=5)  # already there
    assert not await store.wait_for_events(run.id, 1, timeout=0.05)  # nothing newer
    assert not await store.wait_for_events(run.id, 7, timeout=0.05)  # beyond the last
    woken: list[bool] = []

    async def waiter() -> None:
        woken.append(await store.wait_for_events(run.id, 1, timeout=DELIVERY_TIMEOUT))

    with anyio.fail_after(DELIVERY_TIMEOUT):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.05)
            assert woken == []
            await store.append_events(run.id, [NewEvent("second")], generation=gen)
    assert woken == [True]
    await raises(UnknownRunError, store.wait_for_events("01NOSUCHRUN0000000000000000", 0))


async def closing_the_store_ends_event_waits(h: StoreHarness) -> None:
    """A wait_for_events in progress when the store closes ends with StoreClosedError."""
    store = h.store
    run, _ = await leased_run(store)
    failures: list[BaseException] = []

    async def waiter() -> None:
        try:
            await store.wait_for_events(run.id, 0, timeout=DELIVERY_TIMEOUT * 2)
        except StoreClosedError as exc:
            failures.append(exc)

    with anyio.fail_after(DELIVERY_TIMEOUT):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.1)
            await store.aclose()
    assert len(failures) == 1
    await raises(StoreClosedError, store.wait_for_events(run.id, 0))


_PROCESS_B_EVENTS = """
import sys, anyio
from runkon.persistence import *

async def main(run_id, generation):
    async with ({source}) as store:
        await store.append_events(run_id, [NewEvent("from_b")], generation=int(generation))

anyio.run(main, sys.argv[1], sys.argv[2])
"""


async def other_process_events_wake_waiters(h: StoreHarness) -> None:
    """Events appended by another OS process wake wait_for_events within 200 ms."""
    if h.process_store_source is None:
        raise unittest.SkipTest("this backend cannot be shared between processes")
    store = h.store
    run, gen = await leased_run(store)
    script = _PROCESS_B_EVENTS.replace("{source}", h.process_store_source)
    woken_at: list[float] = []

    async def waiter() -> None:
        assert await store.wait_for_events(run.id, 0, timeout=30)
        woken_at.append(time.time())

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            result = await anyio.run_process(
                [sys.executable, "-c", script, run.id, str(gen)], check=False
            )
            assert result.returncode == 0, result.stderr.decode()
    [event] = await store.read_events(run.id)
    assert event.type == "from_b"
    latency = woken_at[0] - event.created_at.timestamp()
    assert latency < CROSS_PROCESS_LATENCY, latency


CHECKS = [
    events_have_gap_free_seq,
    wait_for_events_wakes_on_commit,
    closing_the_store_ends_event_waits,
    other_process_events_wake_waiters,
    refused_writes_append_no_events,
    listeners_hear_committed_events,
    notifications_arrive_on_commit,
    notifications_cross_handles,
    other_process_decisions_arrive_fast,
    closed_store_refuses_calls,
]
