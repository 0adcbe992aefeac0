"""Notification fan-out inside one process: a hub of per-subscriber memory streams.

A store publishes each notification to the hub right after its commit; the hub copies it
into every subscriber's own unbounded anyio memory stream, so publishing never blocks and
nothing polls. Notifications are rare (one per gate decision, cancel request or finished
run), which is why the streams are unbounded: a subscriber that stops reading holds its
backlog until it closes its stream.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runkon._log import get_logger
from runkon.persistence._records import EventRecord, Notification

__all__ = ("EventListeners", "NotificationHub", "Subscription")

_log = get_logger("runkon.persistence")


class EventListeners:
    """The event listeners of one store: called after each commit that appended events."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: list[Callable[[Sequence[EventRecord]], None]] = []

    def add(self, listener: Callable[[Sequence[EventRecord]], None]) -> Callable[[], None]:
        """Register ``listener``; return a function that removes it (idempotent)."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def publish(self, events: Sequence[EventRecord]) -> None:
        """Hand committed ``events`` to every listener; a failing one is logged and skipped."""
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                _log.exception("event_listener_failed", run_id=events[0].run_id, listener=listener)


async def _already_ready() -> None:
    return None


class Subscription:
    """One subscriber's notification stream (implements ``NotificationStream``)."""

    __slots__ = ("_hub", "_ready", "_receive", "_send", "_waited")

    def __init__(self, hub: NotificationHub, ready: Callable[[], Awaitable[None]]) -> None:
        self._hub = hub
        self._ready = ready
        self._send: MemoryObjectSendStream[Notification]
        self._receive: MemoryObjectReceiveStream[Notification]
        self._send, self._receive = anyio.create_memory_object_stream[Notification](math.inf)
        self._waited = False

    async def _wait_ready(self) -> None:
        if not self._waited:
            await self._ready()
            self._waited = True

    async def __aenter__(self) -> Self:
        await self._wait_ready()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Notification:
        await self._wait_ready()
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            await self.aclose()  # an exhausted stream cleans up after itself
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Stop the subscription; notifications not yet read are dropped."""
        self._hub.remove(self)
        self._receive.close()

    def deliver(self, note: Notification) -> None:
        """Queue ``note`` for this subscriber (never blocks)."""
        try:
            self._send.send_nowait(note)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._hub.remove(self)

    def end(self) -> None:
        """End the stream: the subscriber reads what is queued, then iteration stops."""
        self._send.close()


class NotificationHub:
    """Delivers notifications to every live subscription of one store object.

    Args:
        on_active: called with True when the first subscriber arrives and with False
            when the last one leaves (a SQLite store starts and stops its change feed).
        ready: awaited by a subscription before its first notification; a SQLite store
            uses it to wait until its change feed has a starting point.
    """

    def __init__(
        self,
        on_active: Callable[[bool], None] | None = None,
        ready: Callable[[], Awaitable[None]] = _already_ready,
    ) -> None:
        self._subscribers: set[Subscription] = set()
        self._holds = 0
        self._on_active = on_active
        self._ready = ready

    @property
    def active(self) -> bool:
        """True while at least one subscription (or hold) is open."""
        return bool(self._subscribers) or self._holds > 0

    def subscribe(self) -> Subscription:
        """Open a subscription; it sees every notification published from now on."""
        was_active = self.active
        subscription = Subscription(self, self._ready)
        self._subscribers.add(subscription)
        if not was_active and self._on_active is not None:
            self._on_active(True)
        return subscription

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the hub active (a SQLite store's change feed running) without a stream:
        for waiters woken by other means, e.g. ``Store.wait_for_events``."""
        was_active = self.active
        self._holds += 1
        if not was_active and self._on_active is not None:
            self._on_active(True)
        try:
            yield
        finally:
            self._holds -= 1
            if not self.active and self._on_active is not None:
                self._on_active(False)

    def remove(self, subscription: Subscription) -> None:
        """Forget ``subscription`` (idempotent)."""
        if subscription in self._subscribers:
            self._subscribers.discard(subscription)
            subscription.end()
            if not self.active and self._on_active is not None:
                self._on_active(False)

    def publish(self, note: Notification) -> None:
        """Deliver ``note`` to every subscription, without blocking."""
        for subscription in list(self._subscribers):
            subscription.deliver(note)

    def close(self) -> None:
        """End every subscription (the store is closing)."""
        for subscription in list(self._subscribers):
            self.remove(subscription)
