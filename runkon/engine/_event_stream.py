"""Stored events as typed events, and a run's event stream that resumes from a sequence
number (what an SSE endpoint with ``Last-Event-ID`` needs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from runkon.events import (
    FINAL_EVENT_TYPES,
    EngineEvent,
    EventBus,
    EventsDropped,
    event_from_record,
)
from runkon.persistence import TERMINAL_RUN_STATUSES, Store


async def stored_events(
    store: Store, run_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[EngineEvent]:
    """The run's recorded events with ``seq > after_seq``, typed, in order.

    Raises:
        UnknownRunError: no such run.
    """
    records = await store.read_events(run_id, after_seq=after_seq, limit=limit)
    return [event_from_record(r.run_id, r.seq, r.type, r.created_at, dict(r.data)) for r in records]


FOREIGN_RECHECK = 5.0
"""Seconds between checks of a run driven elsewhere that writes no events (e.g. a run of
runkon-flow itself on a shared database): has it ended? Events wake the follower at once."""


async def follow_events(
    store: Store,
    bus: EventBus,
    run_id: str,
    *,
    after_seq: int = 0,
    is_local: Callable[[str], bool] = lambda run_id: True,
) -> AsyncIterator[EngineEvent]:
    """Every event of the run after ``after_seq``: first those already stored, then live
    ones as they are committed, without gaps or repeats, until the run finishes.

    A run this engine drives (``is_local``) is followed on the event bus. A run driven by
    another process is followed through ``store.wait_for_events`` (woken by the store's
    change feed, not polled per follower), until it ends or this engine takes it over.

    Raises:
        UnknownRunError: no such run.
    """
    last = after_seq
    while not is_local(run_id):
        batch = await stored_events(store, run_id, after_seq=last)
        for event in batch:
            yield event
            last = event.seq
            if event.type in FINAL_EVENT_TYPES:
                return
        if not batch:
            if (await store.get_run(run_id)).status in TERMINAL_RUN_STATUSES:
                return  # ended without a final event (not written by runkon)
            await store.wait_for_events(run_id, last, timeout=FOREIGN_RECHECK)
    async for event in _follow_local(store, bus, run_id, after_seq=last):
        yield event


async def _follow_local(
    store: Store, bus: EventBus, run_id: str, *, after_seq: int
) -> AsyncIterator[EngineEvent]:
    """Follow a run this engine drives: its events arrive on the bus as they commit.

    Subscribes before reading the store, so nothing committed in between is missed; if
    the subscriber falls behind, the missed events are read back from the store.
    """
    async with bus.subscribe(run_id=run_id) as live:
        last = after_seq
        for event in await stored_events(store, run_id, after_seq=last):
            yield event
            last = event.seq
            if event.type in FINAL_EVENT_TYPES:
                return
        async for event in live:
            if isinstance(event, EventsDropped):
                for missed in await stored_events(store, run_id, after_seq=last):
                    yield missed
                    last = missed.seq
                    if missed.type in FINAL_EVENT_TYPES:
                        return
                continue
            if event.seq <= last:
                continue  # already replayed from the store
            if event.seq > last + 1:  # committed while we replayed: fill from the store
                for missed in await stored_events(store, run_id, after_seq=last):
                    if missed.seq >= event.seq:
                        break
                    yield missed
                    last = missed.seq
            yield event
            last = event.seq
            if event.type in FINAL_EVENT_TYPES:
                return
