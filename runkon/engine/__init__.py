"""runkon.engine — ``FlowEngine``: the interpreter (one module per node kind), gates,
variables and ``{{var}}`` substitution, FLOW_OUTPUT parsing, leases, cancellation and the
extension protocols. Imports dsl, persistence and events."""

from runkon.engine._engine import FlowEngine as FlowEngine
from runkon.engine._errors import InputError as InputError
from runkon.engine._errors import RunAlreadyOwnedError as RunAlreadyOwnedError
from runkon.engine._errors import WorkingDirectoryError as WorkingDirectoryError
from runkon.engine._flow_output import FLOW_OUTPUT_INSTRUCTION as FLOW_OUTPUT_INSTRUCTION
from runkon.engine._flow_output import FLOW_OUTPUT_LIMIT as FLOW_OUTPUT_LIMIT
from runkon.engine._flow_output import FlowOutput as FlowOutput
from runkon.engine._flow_output import parse_flow_output as parse_flow_output
from runkon.engine._flow_output import parse_flow_output_async as parse_flow_output_async
from runkon.engine._inputs import apply_inputs as apply_inputs
from runkon.engine._process import ProgramResult as ProgramResult
from runkon.engine._process import inherited_environment as inherited_environment
from runkon.engine._process import kill_process_group as kill_process_group
from runkon.engine._process import run_program as run_program
from runkon.engine._protocols import ActionCallable as ActionCallable
from runkon.engine._protocols import ActionExecutor as ActionExecutor
from runkon.engine._protocols import ActionOutput as ActionOutput
from runkon.engine._protocols import ActionParams as ActionParams
from runkon.engine._protocols import BaseItemProvider as BaseItemProvider
from runkon.engine._protocols import FanOutItem as FanOutItem
from runkon.engine._protocols import GateRequest as GateRequest
from runkon.engine._protocols import GateResolver as GateResolver
from runkon.engine._protocols import GateVerdict as GateVerdict
from runkon.engine._protocols import ItemProvider as ItemProvider
from runkon.engine._protocols import ProviderContext as ProviderContext
from runkon.engine._protocols import ScriptEnvProvider as ScriptEnvProvider
from runkon.engine._protocols import StepContext as StepContext
from runkon.engine._registry import ActionRegistry as ActionRegistry
from runkon.engine._result import EngineShutdownError as EngineShutdownError
from runkon.engine._result import RunHandle as RunHandle
from runkon.engine._result import WorkflowResult as WorkflowResult
from runkon.engine._variables import VariableMap as VariableMap
from runkon.engine._variables import shell_quote as shell_quote
from runkon.engine._variables import substitute as substitute

__all__ = (
    "FLOW_OUTPUT_INSTRUCTION",
    "FLOW_OUTPUT_LIMIT",
    "ActionCallable",
    "ActionExecutor",
    "ActionOutput",
    "ActionParams",
    "ActionRegistry",
    "BaseItemProvider",
    "EngineShutdownError",
    "FanOutItem",
    "FlowEngine",
    "FlowOutput",
    "GateRequest",
    "GateResolver",
    "GateVerdict",
    "InputError",
    "ItemProvider",
    "ProgramResult",
    "ProviderContext",
    "RunAlreadyOwnedError",
    "RunHandle",
    "ScriptEnvProvider",
    "StepContext",
    "VariableMap",
    "WorkflowResult",
    "WorkingDirectoryError",
    "apply_inputs",
    "inherited_environment",
    "kill_process_group",
    "parse_flow_output",
    "parse_flow_output_async",
    "run_program",
    "shell_quote",
    "substitute",
)
