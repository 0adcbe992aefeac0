"""Gate tests run on every store backend (ids ``memory`` and ``sqlite``, a real file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runkon.persistence import InMemoryStore, SqliteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each backend."""
    backend: Store = (
        InMemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "g.db")
    )
    async with backend:
        yield backend
