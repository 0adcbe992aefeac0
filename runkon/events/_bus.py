"""The event bus: fans each published event out to subscribers and sinks, never blocking.

Policy for slow consumers (documented, counted, signalled):

- Every subscriber has its own bounded anyio memory stream (``max_buffer`` events).
- ``publish`` never waits. If a subscriber's buffer is full, the event is DROPPED for that
  subscriber only, its ``dropped`` counter grows, and as soon as there is room again the
  subscriber first receives one :class:`~runkon.events.EventsDropped` marker saying how many
  events (and which sequence numbers of the run) it missed — then live events resume.
  Stored events can be replayed from the store to fill the gap.
- With ``policy="disconnect"`` a subscriber that falls behind is closed instead: its
  iteration ends after the buffered events, and ``disconnected`` is set.
- Sinks (``EventSink``) are fed the same way, each by its own task and buffer, so a slow or
  failing sink never stalls the engine either; a sink's exception is logged and the sink
  keeps receiving later events.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runkon._log import get_logger
from runkon.events._models import EngineEvent, EventsDropped

__all__ = ("EventBus", "EventSink", "Subscription")

_log = get_logger("runkon.events")

DropPolicy = Literal["drop", "disconnect"]


@runtime_checkable
class EventSink(Protocol):
    """Receives every engine event, after it was stored. Runs in its own task."""

    async def emit(self, event: EngineEvent) -> None:
        """Handle one event. Exceptions are logged; later events still arrive."""
        ...


@dataclass(eq=False)
class _Gap:
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    run_ids: set[str] = field(default_factory=set)

    def add(self, event: EngineEvent) -> None:
        self.count += 1
        self.run_ids.add(event.run_id)
        if self.first_seq is None:
            self.first_seq = event.seq
        self.last_seq = event.seq

    def marker(self) -> EventsDropped:
        one_run = len(self.run_ids) == 1
        return EventsDropped(
            run_id=next(iter(self.run_ids)) if one_run else "",
            timestamp=datetime.now(UTC),
            count=self.count,
            first_seq=self.first_seq if one_run else None,
            last_seq=self.last_seq if one_run else None,
        )


class Subscription:
    """One subscriber's view of the bus: an async iterator of :data:`EngineEvent`.

    Use it as ``async with bus.subscribe(...) as events: async for event in events: ...``;
    leaving the block unsubscribes.

    Attributes:
        dropped: how many events this subscriber missed because it fell behind.
        disconnected: True when the ``disconnect`` policy closed it.
    """

    def __init__(
        self,
        bus: EventBus,
        run_id: str | None,
        types: frozenset[str] | None,
        max_buffer: int,
        policy: DropPolicy,
    ) -> None:
        self._bus = bus
        self.run_id = run_id
        self.types = types
        self.policy = policy
        self.dropped: int = 0
        self.disconnected: bool = False
        self._gap: _Gap | None = None
        self._send: MemoryObjectSendStream[EngineEvent]
        self._receive: MemoryObjectReceiveStream[EngineEvent]
        self._send, self._receive = anyio.create_memory_object_stream[EngineEvent](max_buffer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        self._receive.close()

    def __aiter__(self) -> AsyncIterator[EngineEvent]:
        return self

    async def __anext__(self) -> EngineEvent:
        event = await self.receive()
        if event is None:
            raise StopAsyncIteration
        return event

    async def receive(self, *, timeout: float | None = None) -> EngineEvent | None:
        """The next event, or None when the subscription ended or ``timeout`` passed."""
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            if self._gap is not None:  # caught up: say what was missed before waiting on
                marker, self._gap = self._gap.marker(), None
                return marker
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            return None
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            try:
                return await self._receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._receive.close()
                return None
        return None

    def close(self) -> None:
        """Unsubscribe; iteration ends after the events already buffered (leaving the
        ``async with`` block also drops those)."""
        self._bus._remove(self)
        self._send.close()

    def _wants(self, event: EngineEvent) -> bool:
        return self.types is None or event.type in self.types

    def _offer(self, event: EngineEvent) -> None:
        if self._gap is not None:
            try:
                self._send.send_nowait(self._gap.marker())
            except anyio.WouldBlock:
                self._drop(event)
                return
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            self._gap = None
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            if self.policy == "disconnect":
                self.disconnected = True
                self.dropped += 1
                self.close()
                return
            self._drop(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._bus._remove(self)

    def _drop(self, event: EngineEvent) -> None:
        if self._gap is None:
            self._gap = _Gap()
            self._bus.dropped_subscribers += 1
        self._gap.add(event)
        self.dropped += 1
        self._bus.dropped_events += 1


class EventBus:
    """Fans out engine events to subscribers and sinks without ever blocking the engine.

    Args:
        sinks: receivers of every event, each fed by its own task while the bus is open
            (between :meth:`start` and :meth:`stop`).
        max_buffer: default per-subscriber (and per-sink) buffer, in events.
        policy: ``"drop"`` (default) or ``"disconnect"``; see the module docstring.

    Attributes:
        dropped_events: events dropped for any subscriber or sink since the bus started.
        dropped_subscribers: how many times some subscriber started falling behind.
    """

    def __init__(
        self,
        sinks: Iterable[EventSink] = (),
        *,
        max_buffer: int = 1000,
        policy: DropPolicy = "drop",
    ) -> None:
        self.max_buffer = max_buffer
        self.policy = policy
        self.dropped_events: int = 0
        self.dropped_subscribers: int = 0
        self._by_run: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._sinks = list(sinks)
        self._sink_feeds: list[Subscription] = []

    # ----------------------------------------------------------------- subscribers

    def subscribe(
        self,
        *,
        run_id: str | None = None,
        types: Collection[str] | None = None,
        max_buffer: int | None = None,
        policy: DropPolicy | None = None,
    ) -> Subscription:
        """A new subscription to live events, optionally of one run and some types."""
        subscription = Subscription(
            self,
            run_id,
            None if types is None else frozenset(types),
            self.max_buffer if max_buffer is None else max_buffer,
            policy or self.policy,
        )
        if run_id is None:
            self._everything.add(subscription)
        else:
            self._by_run.setdefault(run_id, set()).add(subscription)
        return subscription

    def wants(self, run_id: str, type: str) -> bool:
        """True when some subscriber (or sink) would receive an event of ``type`` for
        ``run_id`` — so that the engine builds typed events only for someone."""
        for subscription in self._everything:
            if subscription.types is None or type in subscription.types:
                return True
        for subscription in self._by_run.get(run_id, ()):
            if subscription.types is None or type in subscription.types:
                return True
        return False

    @property
    def has_consumers(self) -> bool:
        """True when anyone (a subscriber or a sink) would receive a published event."""
        return bool(self._everything or self._by_run)

    @property
    def subscriber_count(self) -> int:
        return len(self._everything) + sum(len(subs) for subs in self._by_run.values())

    def _remove(self, subscription: Subscription) -> None:
        if subscription.run_id is None:
            self._everything.discard(subscription)
            return
        subs = self._by_run.get(subscription.run_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._by_run[subscription.run_id]

    def publish(self, event: EngineEvent) -> None:
        """Offer ``event`` to every matching subscriber and sink. Never blocks."""
        for subscription in tuple(self._by_run.get(event.run_id, ())):
            if subscription._wants(event):
                subscription._offer(event)
        for subscription in tuple(self._everything):
            if subscription._wants(event):
                subscription._offer(event)

    def publish_many(self, events: Iterable[EngineEvent]) -> None:
        for event in events:
            self.publish(event)

    # ----------------------------------------------------------------- sinks

    def add_sink(self, sink: EventSink) -> None:
        """Register a sink; it starts receiving events when the bus starts."""
        self._sinks.append(sink)

    async def start(self, task_group: TaskGroup) -> None:
        """Start one feeding task per sink in ``task_group``."""
        for sink in self._sinks:
            feed = self.subscribe()
            self._sink_feeds.append(feed)
            task_group.start_soon(_feed_sink, sink, feed, name=f"runkon sink {sink!r}")

    def stop(self) -> None:
        """Close the sinks' feeds; each sink finishes its buffered events and stops."""
        for feed in self._sink_feeds:
            feed.close()
        self._sink_feeds.clear()
        for subscription in (
            *self._everything,
            *(s for subs in self._by_run.values() for s in subs),
        ):
            subscription.close()


async def _feed_sink(sink: EventSink, feed: Subscription) -> None:
    async with feed:
        async for event in feed:
            try:
                await sink.emit(event)
            except Exception:
                _log.exception("event sink failed", sink=repr(sink), event_type=event.type.value)
