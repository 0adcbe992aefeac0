"""Public exports: every module's ``__all__`` is complete, resolvable, and does not drift."""

from __future__ import annotations

import importlib
import types

import pytest

PUBLIC_MODULES = [
    "runkon",
    "runkon.cli",
    "runkon.dsl",
    "runkon.engine",
    "runkon.errors",
    "runkon.events",
    "runkon.integrations",
    "runkon.integrations.aiohttp",
    "runkon.integrations.fastapi",
    "runkon.integrations.server",
    "runkon.persistence",
    "runkon.testing",
]

# The contract. A change here is a change of the public API: update CHANGELOG.md too.
EXPECTED: dict[str, list[str]] = {
    "runkon.integrations": [
        "ApiError",
        "Authorizer",
        "CancelOut",
        "CancelRequest",
        "CheckedRun",
        "DecisionRequest",
        "ErrorOut",
        "FeedbackRequest",
        "GateOut",
        "Identity",
        "Permission",
        "ReceiptOut",
        "RunDetailOut",
        "RunOut",
        "RunkonApi",
        "StartRunRequest",
        "StartedRunOut",
        "StepLogsOut",
        "StepOut",
        "Target",
        "TokenAuthorizer",
        "WorkflowCatalog",
        "allow_all",
        "sse_frame",
        "sse_stream",
    ],
    "runkon": [
        "ActionExecutor",
        "ActionOutput",
        "ActionParams",
        "BaseItemProvider",
        "DirectoryWorkflowResolver",
        "DslError",
        "DslSyntaxError",
        "EngineEvent",
        "EngineShutdownError",
        "EventSink",
        "EventType",
        "ExecutionError",
        "FanOutItem",
        "FlowEngine",
        "GateVerdict",
        "GateError",
        "GateReceipt",
        "GateRequest",
        "GateResolver",
        "InMemoryStore",
        "InMemoryWorkflowResolver",
        "InputError",
        "InvalidSelectionError",
        "ItemProvider",
        "LeaseLostError",
        "RunAlreadyOwnedError",
        "RunHandle",
        "RunStatus",
        "RunkonError",
        "ScriptEnvProvider",
        "SelectionRequiredError",
        "SqliteStore",
        "StepContext",
        "StepStatus",
        "Store",
        "StoreError",
        "UnknownGateError",
        "UnknownRunError",
        "ValidationIssue",
        "ValidationReport",
        "WaitingGate",
        "WorkflowDef",
        "WorkflowNotFoundError",
        "WorkflowResolver",
        "WorkflowResult",
        "WorkflowValidationError",
        "WorkingDirectoryError",
        "__version__",
        "load_workflow",
        "parse_workflow",
        "validate_workflow",
    ],
    "runkon.cli": ["main"],
    "runkon.integrations.aiohttp": ["RUNKON_API", "add_routes", "create_app", "engine_context"],
    "runkon.integrations.fastapi": [
        "EventStreamResponse",
        "create_app",
        "create_inbox_router",
        "create_router",
        "runkon_lifespan",
    ],
    "runkon.integrations.server": ["ServeError", "serve"],
}


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    missing = [attr for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == []


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_a_tuple(name: str) -> None:
    """``__all__`` is immutable, so no import can grow a module's public surface."""
    module = importlib.import_module(name)
    assert isinstance(module.__all__, tuple)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_attribute_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attr != "annotations"
    }
    assert sorted(public - set(module.__all__)) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exports_match_the_contract(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(EXPECTED[name])


def test_subpackage_names_are_reachable_from_the_top() -> None:
    import runkon
    import runkon.dsl
    import runkon.engine
    import runkon.persistence

    for attr in runkon.__all__:
        for package in (runkon.dsl, runkon.engine, runkon.persistence):
            if hasattr(package, attr):
                assert getattr(runkon, attr) is getattr(package, attr)
