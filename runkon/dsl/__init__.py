"""runkon.dsl — the ``.wf`` language: lexer, parser, the immutable AST, validation,
workflow resolvers and durations. Imports nothing else of runkon but its errors."""

from runkon.dsl._ast import AgentRef as AgentRef
from runkon.dsl._ast import AlwaysNode as AlwaysNode
from runkon.dsl._ast import BoolInputCondition as BoolInputCondition
from runkon.dsl._ast import CallNode as CallNode
from runkon.dsl._ast import CallWorkflowNode as CallWorkflowNode
from runkon.dsl._ast import Condition as Condition
from runkon.dsl._ast import DoNode as DoNode
from runkon.dsl._ast import DoWhileNode as DoWhileNode
from runkon.dsl._ast import ForEachNode as ForEachNode
from runkon.dsl._ast import FrozenMap as FrozenMap
from runkon.dsl._ast import GateNode as GateNode
from runkon.dsl._ast import GateOptions as GateOptions
from runkon.dsl._ast import IfNode as IfNode
from runkon.dsl._ast import InputDecl as InputDecl
from runkon.dsl._ast import OnFail as OnFail
from runkon.dsl._ast import ParallelCall as ParallelCall
from runkon.dsl._ast import ParallelNode as ParallelNode
from runkon.dsl._ast import QualityGateConfig as QualityGateConfig
from runkon.dsl._ast import ScriptNode as ScriptNode
from runkon.dsl._ast import StaticGateOptions as StaticGateOptions
from runkon.dsl._ast import StepMarkerCondition as StepMarkerCondition
from runkon.dsl._ast import StepRefGateOptions as StepRefGateOptions
from runkon.dsl._ast import UnlessNode as UnlessNode
from runkon.dsl._ast import WhileNode as WhileNode
from runkon.dsl._ast import WorkflowDef as WorkflowDef
from runkon.dsl._ast import WorkflowNode as WorkflowNode
from runkon.dsl._ast import iter_nodes as iter_nodes
from runkon.dsl._durations import format_duration as format_duration
from runkon.dsl._durations import parse_duration as parse_duration
from runkon.dsl._load import load_workflow as load_workflow
from runkon.dsl._parser import parse_workflow as parse_workflow
from runkon.dsl._report import Location as Location
from runkon.dsl._report import ValidationIssue as ValidationIssue
from runkon.dsl._report import ValidationReport as ValidationReport
from runkon.dsl._resolvers import DirectoryWorkflowResolver as DirectoryWorkflowResolver
from runkon.dsl._resolvers import InMemoryWorkflowResolver as InMemoryWorkflowResolver
from runkon.dsl._resolvers import WorkflowResolver as WorkflowResolver
from runkon.dsl._resolvers import validate_workflow_name as validate_workflow_name
from runkon.dsl._validate import BUILTIN_GATE_TYPES as BUILTIN_GATE_TYPES
from runkon.dsl._validate import MAX_WORKFLOW_DEPTH as MAX_WORKFLOW_DEPTH
from runkon.dsl._validate import validate_workflow as validate_workflow
from runkon.dsl._validate import workflow_refs as workflow_refs

__all__ = (
    "BUILTIN_GATE_TYPES",
    "MAX_WORKFLOW_DEPTH",
    "AgentRef",
    "AlwaysNode",
    "BoolInputCondition",
    "CallNode",
    "CallWorkflowNode",
    "Condition",
    "DirectoryWorkflowResolver",
    "DoNode",
    "DoWhileNode",
    "ForEachNode",
    "FrozenMap",
    "GateNode",
    "GateOptions",
    "IfNode",
    "InMemoryWorkflowResolver",
    "InputDecl",
    "Location",
    "OnFail",
    "ParallelCall",
    "ParallelNode",
    "QualityGateConfig",
    "ScriptNode",
    "StaticGateOptions",
    "StepMarkerCondition",
    "StepRefGateOptions",
    "UnlessNode",
    "ValidationIssue",
    "ValidationReport",
    "WhileNode",
    "WorkflowDef",
    "WorkflowNode",
    "WorkflowResolver",
    "format_duration",
    "iter_nodes",
    "load_workflow",
    "parse_duration",
    "parse_workflow",
    "validate_workflow",
    "validate_workflow_name",
    "workflow_refs",
)
