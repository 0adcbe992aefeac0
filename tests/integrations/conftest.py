"""Fixtures for the web integration tests.

``store`` is parametrised over the in-memory store and SQLite on a real file. The engine
and app run inside the test (``async with serving(store) as h:``), never in a fixture: the
engine's task group must be entered and left by one task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runkon import InMemoryStore, SqliteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each backend."""
    backend: Store = (
        InMemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "runs.db")
    )
    async with backend:
        yield backend
