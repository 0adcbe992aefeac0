"""The store conformance suite of runkon.testing, on every backend."""

from __future__ import annotations

import pytest

from runkon.testing import STORE_CONFORMANCE_TESTS, StoreCheck, StoreHarness


@pytest.mark.parametrize("check", STORE_CONFORMANCE_TESTS, ids=lambda check: check.__name__)
async def test_conformance(check: StoreCheck, harness: StoreHarness) -> None:
    await check(harness)


def test_every_check_states_its_contract() -> None:
    names = [check.__name__ for check in STORE_CONFORMANCE_TESTS]
    assert len(set(names)) == len(names)
    for check in STORE_CONFORMANCE_TESTS:
        doc = (check.__doc__ or "").strip()
        assert doc, check.__name__
        assert "\n" not in doc, check.__name__
