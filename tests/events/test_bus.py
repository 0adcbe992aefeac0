"""The event bus: fan-out, filtering, the slow-subscriber policy, sinks."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
import structlog.testing

from runkon.events import (
    EventBus,
    EventsDropped,
    RunStarted,
    StepCompleted,
    StructlogSink,
    event_from_record,
    event_payload,
)


def started(run_id: str, seq: int) -> RunStarted:
    return RunStarted(run_id=run_id, seq=seq, timestamp=datetime.now(UTC), workflow_name="w")


def completed(run_id: str, seq: int) -> StepCompleted:
    return StepCompleted(run_id=run_id, seq=seq, timestamp=datetime.now(UTC), step_name="s")


async def test_subscribers_get_only_their_run_and_types() -> None:
    bus = EventBus()
    async with (
        bus.subscribe(run_id="r1") as run_one,
        bus.subscribe(types={"step_completed"}) as steps,
        bus.subscribe() as everything,
    ):
        for event in (started("r1", 1), completed("r1", 2), started("r2", 1)):
            bus.publish(event)
        run_one.close()
        steps.close()
        everything.close()
        assert [(e.run_id, e.seq) for e in [e async for e in run_one]] == [("r1", 1), ("r1", 2)]
        assert [e.type for e in [e async for e in steps]] == ["step_completed"]
        assert len([e async for e in everything]) == 3


async def test_slow_subscriber_drops_counts_and_marks_the_gap() -> None:
    bus = EventBus(max_buffer=2)
    async with bus.subscribe(run_id="r") as slow:
        for seq in range(1, 7):
            bus.publish(started("r", seq))  # never blocks, although nobody reads
        assert slow.dropped == 4
        assert bus.dropped_events == 4
        first = await slow.receive(timeout=1)
        second = await slow.receive(timeout=1)
        assert first is not None
        assert second is not None
        assert (first.seq, second.seq) == (1, 2)
        bus.publish(started("r", 7))
        marker = await slow.receive(timeout=1)
        assert isinstance(marker, EventsDropped)
        assert (marker.count, marker.first_seq, marker.last_seq) == (4, 3, 6)
        after = await slow.receive(timeout=1)
        assert after is not None
        assert after.seq == 7


async def test_disconnect_policy_closes_a_subscriber_that_falls_behind() -> None:
    bus = EventBus(max_buffer=1, policy="disconnect")
    async with bus.subscribe() as sub:
        bus.publish(started("r", 1))
        bus.publish(started("r", 2))
        assert sub.disconnected
        assert [e.seq async for e in sub] == [1]
        assert bus.subscriber_count == 0


async def test_publish_with_a_full_subscriber_drops_instead_of_blocking() -> None:
    bus = EventBus(max_buffer=1)
    async with bus.subscribe() as sub:
        for seq in range(10_000):
            bus.publish(started("r", seq))  # synchronous: it cannot wait for the reader
        assert sub.dropped == 9_999


async def test_a_failing_sink_is_logged_and_keeps_receiving() -> None:
    received: list[int] = []
    both = anyio.Event()

    class Flaky:
        async def emit(self, event: RunStarted) -> None:  # type: ignore[override]
            received.append(event.seq)
            if len(received) == 2:
                both.set()
            if event.seq == 1:
                raise RuntimeError("boom")

    bus = EventBus([Flaky()])
    async with anyio.create_task_group() as tg:
        await bus.start(tg)
        bus.publish(started("r", 1))
        bus.publish(started("r", 2))
        with anyio.fail_after(5):
            await both.wait()
        bus.stop()
    assert received == [1, 2]


async def test_structlog_sink_logs_type_and_fields() -> None:
    with structlog.testing.capture_logs() as logs:  # an application's structlog setup
        await StructlogSink().emit(completed("r9", 4))
    [entry] = logs
    assert entry["event"] == "step_completed"
    assert entry["run_id"] == "r9"
    assert entry["step_name"] == "s"


def test_stored_parts_round_trip_to_typed_events() -> None:
    event = completed("r", 3)
    rebuilt = event_from_record("r", 3, "step_completed", event.timestamp, event_payload(event))
    assert rebuilt == event


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match any of the expected tags"):
        event_from_record("r", 1, "nonsense", datetime.now(UTC), {})
