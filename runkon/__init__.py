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
from runkon.errors import DslError as DslError
from runkon.errors import DslSyntaxError as DslSyntaxError
from runkon.errors import ExecutionError as ExecutionError
from runkon.errors import GateError as GateError
from runkon.errors import LeaseLostError as LeaseLostError
from runkon.errors import RunkonError as RunkonError
from runkon.errors import StoreError as StoreError
from runkon.errors import WorkflowNotFoundError as WorkflowNotFoundError
from runkon.errors import WorkflowValidationError as WorkflowValidationError

__version__ = "0.1.0.dev0"

__all__ = [
    "DirectoryWorkflowResolver",
    "DslError",
    "DslSyntaxError",
    "ExecutionError",
    "GateError",
    "InMemoryWorkflowResolver",
    "LeaseLostError",
    "RunkonError",
    "StoreError",
    "ValidationIssue",
    "ValidationReport",
    "WorkflowDef",
    "WorkflowNotFoundError",
    "WorkflowResolver",
    "WorkflowValidationError",
    "__version__",
    "load_workflow",
    "parse_workflow",
    "validate_workflow",
]
