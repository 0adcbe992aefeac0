"""Fixtures for engine tests: every test runs on every store backend.

``store`` is THE parametrised fixture (ids ``memory`` and ``sqlite``; SQLite on a real
file in ``tmp_path``), opened for the test. Engines are built with ``make_engine`` (they
share the open store, so a second engine can resume what the first left behind), and
``rec`` is the recording executor every engine gets as its fallback action.

Engines are entered inside the test (``async with make_engine() as engine:``), never in
a fixture: an engine owns a task group, which must be entered and left by one task.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runkon.engine import FlowEngine
from runkon.persistence import InMemoryStore, SqliteStore, Store

from ._support import MakeEngine, Recorder


def new_store(kind: str, path: Path) -> Store:
    if kind == "memory":
        return InMemoryStore()
    return SqliteStore(path / "runs.db")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each backend."""
    backend = new_store(request.param, tmp_path)
    async with backend:
        yield backend


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def make_engine(store: Store, rec: Recorder, tmp_path: Path) -> MakeEngine:
    """Build a FlowEngine on ``store`` with ``rec`` as the fallback action.

    Defaults: scripts run in ``tmp_path``; short leases (ttl 5 s, refresh every 1 s);
    the store stays open after the engine stops. Any keyword overrides.
    """

    def make(**options: Any) -> FlowEngine:
        options.setdefault("fallback_action", rec)
        options.setdefault("working_dir", tmp_path)
        options.setdefault("manage_store", False)
        options.setdefault("lease_ttl", 5.0)
        options.setdefault("lease_refresh_interval", 1.0)
        return FlowEngine(store, **options)

    return make
