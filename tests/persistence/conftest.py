"""The ONE parametrised store fixture: every persistence test runs on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The conformance checks live in the package; let pytest explain their failed asserts.
pytest.register_assert_rewrite(
    "runkon.testing._suite_runs", "runkon.testing._suite_gates", "runkon.testing._suite_events"
)

from runkon.persistence import Store  # noqa: E402
from runkon.testing import StoreHarness, open_memory_harness, open_sqlite_harness  # noqa: E402

BACKENDS = ["memory", "sqlite"]


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreHarness]:
    """A fresh open store of each backend (SQLite on a real file in tmp_path)."""
    if request.param == "memory":
        async with open_memory_harness() as opened:
            yield opened
    else:
        async with open_sqlite_harness(tmp_path / "runkon.db") as opened:
            yield opened


@pytest.fixture
def store(harness: StoreHarness) -> Store:
    """The harness's store."""
    return harness.store
