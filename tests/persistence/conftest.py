"""The ONE parametrised store fixture, ``harness``: every conformance check runs on every
backend (ids ``memory`` and ``sqlite``). A harness holds the open store (``harness.store``)
and opens second handles on the same data."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# The conformance checks live in the package; let pytest explain their failed asserts
# (possible only if nothing imported them yet, else pytest warns, an error here).
_SUITE = (
    "runkon.testing._suite_runs",
    "runkon.testing._suite_gates",
    "runkon.testing._suite_events",
)
if not any(name in sys.modules for name in _SUITE):
    pytest.register_assert_rewrite(*_SUITE)

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
