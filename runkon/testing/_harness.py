"""The harness a store conformance check runs against, and harnesses for runkon's stores."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from runkon.persistence import InMemoryStore, SqliteStore, Store

__all__ = ("StoreHarness", "open_memory_harness", "open_sqlite_harness")


@dataclass(frozen=True)
class StoreHarness:
    """A fresh, open store, and the ways a check can reach the same data again.

    Attributes:
        store: an open store holding no data yet.
        open_second: opens a second handle on the same data, as an async context
            manager (SQLite: another connection to the file; in-memory: the same
            object). Writes through either handle are seen by the other.
        process_store_source: Python source of an expression that builds an (unopened)
            store on the same data in ANOTHER process, with the public names of
            ``runkon.persistence`` in scope, e.g. ``"SqliteStore('/tmp/x.db')"``;
            ``None`` if the backend cannot be shared between processes.
    """

    store: Store
    open_second: Callable[[], AbstractAsyncContextManager[Store]]
    process_store_source: str | None = None

    @property
    def supports_multiprocess(self) -> bool:
        """True when another OS process can open the same data."""
        return self.process_store_source is not None


@contextlib.asynccontextmanager
async def open_memory_harness() -> AsyncIterator[StoreHarness]:
    """A harness over a fresh :class:`InMemoryStore` (its second handle is itself)."""
    store = InMemoryStore()

    @contextlib.asynccontextmanager
    async def same_store() -> AsyncIterator[Store]:
        yield store

    async with store:
        yield StoreHarness(store=store, open_second=same_store)


@contextlib.asynccontextmanager
async def open_sqlite_harness(
    path: str | os.PathLike[str], *, notify_interval: float = 0.05
) -> AsyncIterator[StoreHarness]:
    """A harness over a fresh :class:`SqliteStore` on ``path`` (which should not exist)."""
    path = os.fspath(path)

    def second() -> AbstractAsyncContextManager[Store]:
        return SqliteStore(path, notify_interval=notify_interval)

    async with SqliteStore(path, notify_interval=notify_interval) as store:
        yield StoreHarness(
            store=store,
            open_second=second,
            process_store_source=f"SqliteStore({path!r})",
        )
