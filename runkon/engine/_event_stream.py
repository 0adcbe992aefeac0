"""Stored events as typed events, and a run's event stream that resumes from a sequence
number (what an SSE endpoint with ``Last-Event-ID`` needs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from runkon.events import EngineEvent, EventBus, EventsDropped, event_from_record
from runkon.persistence import Store

FINAL_EVENTS = frozenset({"run_completed", "run_failed", "run_cancelled"})


async def stored_events(
    store: Store, run_id: str, *, after_seq: int = 0, limit: int | None = None
) -> list[EngineEvent]:
    """The run's recorded events with ``seq > after_seq``, typed, in order.

    Raises:
        UnknownRunError: no such run.
    """
    records = await store.read_events(run_id, after_seq=after_seq, limit=limit)
    return [event_from_record(r.run_id, r.seq, r.type, r.created_at, dict(r.data)) for r in records]


async def follow_events(
    store: Store, bus: EventBus, run_id: str, *, after_seq: int = 0
) -> AsyncIterator[EngineEvent]:
    """Every event of the run after ``after_seq``: first those already stored, then live
    ones as they are committed, without gaps or repeats, until the run finishes.

    Subscribes before reading the store, so nothing committed in between is missed; if
    the subscriber falls behind, the missed events are read back from the store.
    """
    async with bus.subscribe(run_id=run_id) as live:
        last = after_seq
        for event in await stored_events(store, run_id, after_seq=last):
            yield event
            last = event.seq
            if event.type in FINAL_EVENTS:
                return
        async for event in live:
            if isinstance(event, EventsDropped):
                for missed in await stored_events(store, run_id, after_seq=last):
                    yield missed
                    last = missed.seq
                    if missed.type in FINAL_EVENTS:
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
            if event.type in FINAL_EVENTS:
                return
