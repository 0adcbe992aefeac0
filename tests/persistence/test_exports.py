"""runkon.persistence and runkon.testing export exactly their contract."""

from __future__ import annotations

import importlib
import types

import pytest

# The contract. A change here is a change of the public API: update CHANGELOG.md too.
EXPECTED = {
    "runkon.persistence": [
        "ACTIVE_RUN_STATUSES",
        "CANCELLATION_REQUESTED",
        "CANONICAL_SCHEMA_DDL",
        "GATE_APPROVAL_RECORDED",
        "GATE_RESOLVED",
        "GATE_TIMED_OUT",
        "MEMO_PREFIX",
        "MIGRATIONS",
        "TERMINAL_RUN_STATUSES",
        "TERMINAL_STEP_STATUSES",
        "CapturedOutput",
        "EventListener",
        "EventRecord",
        "FanOutItemRecord",
        "FanOutItemStatus",
        "FanOutItemUpdate",
        "GateApproval",
        "GateDecision",
        "GateOption",
        "GateReceipt",
        "GateRecord",
        "InMemoryStore",
        "Migration",
        "NewEvent",
        "NewFanOutItem",
        "NewGate",
        "NewRun",
        "NewStep",
        "Notification",
        "NotificationKind",
        "NotificationStream",
        "ReceiptOutcome",
        "RunRecord",
        "RunStatus",
        "SqliteStore",
        "StepRecord",
        "StepRole",
        "StepStatus",
        "StepUpdate",
        "Store",
        "WaitingGate",
        "attempts_by_step",
    ],
    "runkon.testing": [
        "STORE_CONFORMANCE_TESTS",
        "StoreCheck",
        "StoreHarness",
        "open_memory_harness",
        "open_sqlite_harness",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exports_match_the_contract(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(EXPECTED[name])
    assert [attr for attr in module.__all__ if not hasattr(module, attr)] == []
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(public - set(module.__all__)) == []


def test_both_stores_satisfy_the_protocol() -> None:
    from runkon.persistence import InMemoryStore, SqliteStore, Store

    assert isinstance(InMemoryStore(), Store)
    assert isinstance(SqliteStore("unused.db"), Store)
