"""runkon — an asyncio-native workflow runtime that runs runkon-flow ``.wf`` workflows.

This module re-exports the public API; see README.md for a quickstart.
"""

from runkon.dsl import DirectoryWorkflowResolver as DirectoryWorkflowResolver
from runkon.dsl import InMemoryWorkflowResolver as InMemoryWorkflowResolver
from runkon.dsl import ValidationIssue as ValidationIssue
from runkon.dsl import ValidationReport as ValidationReport
from runkon.dsl import WorkflowDef as WorkflowDef
from runkon.dsl import WorkflowResolver as WorkflowResolver
from runkon.dsl import load_workflow as load_workflow
from runkon.dsl import parse_workflow as parse_workflow
from runkon.dsl import validate_workflow as validate_workflow
from runkon.engine import ActionExecutor as ActionExecutor
from runkon.engine import ActionOutput as ActionOutput
from runkon.engine import ActionParams as ActionParams
from runkon.engine import BaseItemProvider as BaseItemProvider
from runkon.engine import EngineShutdownError as EngineShutdownError
from runkon.engine import FanOutItem as FanOutItem
from runkon.engine import FlowEngine as FlowEngine
from runkon.engine import GateRequest as GateRequest
from runkon.engine import GateResolver as GateResolver
from runkon.engine import GateVerdict as GateVerdict
from runkon.engine import InputError as InputError
from runkon.engine import ItemProvider as ItemProvider
from runkon.engine import RunAlreadyOwnedError as RunAlreadyOwnedError
from runkon.engine import RunHandle as RunHandle
from runkon.engine import ScriptEnvProvider as ScriptEnvProvider
from runkon.engine import StepContext as StepContext
from runkon.engine import WorkflowResult as WorkflowResult
from runkon.engine import WorkingDirectoryError as WorkingDirectoryError
from runkon.errors import DslError as DslError
from runkon.errors import DslSyntaxError as DslSyntaxError
from runkon.errors import ExecutionError as ExecutionError
from runkon.errors import GateError as GateError
from runkon.errors import InvalidSelectionError as InvalidSelectionError
from runkon.errors import LeaseLostError as LeaseLostError
from runkon.errors import RunkonError as RunkonError
from runkon.errors import SelectionRequiredError as SelectionRequiredError
from runkon.errors import StoreError as StoreError
from runkon.errors import UnknownGateError as UnknownGateError
from runkon.errors import UnknownRunError as UnknownRunError
from runkon.errors import WorkflowNotFoundError as WorkflowNotFoundError
from runkon.errors import WorkflowValidationError as WorkflowValidationError
from runkon.events import EngineEvent as EngineEvent
from runkon.events import EventSink as EventSink
from runkon.events import EventType as EventType
from runkon.persistence import GateReceipt as GateReceipt
from runkon.persistence import InMemoryStore as InMemoryStore
from runkon.persistence import RunStatus as RunStatus
from runkon.persistence import SqliteStore as SqliteStore
from runkon.persistence import StepStatus as StepStatus
from runkon.persistence import Store as Store
from runkon.persistence import WaitingGate as WaitingGate

__version__ = "0.1.0.dev0"

__all__ = (
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
    "GateError",
    "GateReceipt",
    "GateRequest",
    "GateResolver",
    "GateVerdict",
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
)
