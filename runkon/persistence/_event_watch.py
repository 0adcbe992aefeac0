"""Waiting for a run's next events (``Store.wait_for_events``) without a poll per waiter.

A store wakes the waiters of a run when it commits events for it, and — SQLite — when its
change feed sees another process's events for a watched run. Waiters re-read the run's
last sequence number after each wake, so a spurious wake costs one read, never a miss.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence

import anyio

from runkon.persistence._records import EventRecord


class EventWatch:
    """The runs someone waits on, and how to wake them."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: dict[str, set[anyio.Event]] = {}

    def watched(self) -> list[str]:
        """The run ids with at least one waiter."""
        return list(self._waiters)

    def wake(self, run_id: str) -> None:
        """Wake every waiter of ``run_id``."""
        for event in self._waiters.get(run_id, ()):
            event.set()

    def wake_all(self) -> None:
        """Wake every waiter (the store is closing: they find out when they re-read)."""
        for run_id in list(self._waiters):
            self.wake(run_id)

    def on_events(self, events: Sequence[EventRecord]) -> None:
        """An event listener: wake the waiters of the runs ``events`` belong to."""
        for run_id in {event.run_id for event in events}:
            self.wake(run_id)

    async def wait(
        self,
        run_id: str,
        after_seq: int,
        last_seq: Callable[[], Awaitable[int]],
        timeout: float | None,
    ) -> bool:
        """Wait until ``await last_seq()`` exceeds ``after_seq``; False after ``timeout``."""
        waiters = self._waiters.setdefault(run_id, set())
        woken = anyio.Event()
        try:
            with anyio.move_on_after(math.inf if timeout is None else timeout):
                while True:
                    waiters.discard(woken)
                    woken = anyio.Event()
                    waiters.add(woken)  # armed before reading: nothing committed after is missed
                    if await last_seq() > after_seq:
                        return True
                    await woken.wait()
            return False
        finally:
            waiters.discard(woken)
            if not waiters and self._waiters.get(run_id) is waiters:
                del self._waiters[run_id]
