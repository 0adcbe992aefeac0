"""The store conformance suite: every behaviour runkon's engine relies on, as checks.

Each check is a plain ``async def check(harness) -> None`` with a one-line docstring
stating the contract it verifies. Checks use ``assert``; one that needs a capability the
backend lacks raises :class:`unittest.SkipTest` (pytest reports it as skipped). Run them
against your own store by building a :class:`StoreHarness` for it::

    @pytest.mark.parametrize("check", STORE_CONFORMANCE_TESTS, ids=lambda c: c.__name__)
    async def test_my_store(check, tmp_path):
        async with open_my_harness(tmp_path) as harness:
            await check(harness)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runkon.testing import _suite_choices, _suite_events, _suite_gates, _suite_runs
from runkon.testing._harness import StoreHarness

__all__ = ("STORE_CONFORMANCE_TESTS", "StoreCheck")

StoreCheck = Callable[[StoreHarness], Awaitable[None]]
"""One conformance check: awaits the harness's store and asserts a contract."""

STORE_CONFORMANCE_TESTS: tuple[StoreCheck, ...] = (
    *_suite_runs.CHECKS,
    *_suite_gates.CHECKS,
    *_suite_choices.CHECKS,
    *_suite_events.CHECKS,
)
"""Every check of the suite, in a stable order."""
