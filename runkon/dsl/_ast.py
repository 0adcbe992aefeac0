"""The immutable, typed AST of a ``.wf`` workflow.

Every node is a frozen pydantic model with a ``type`` tag, so a :class:`WorkflowDef`
serialises to JSON and back losslessly (it is stored as a run's definition snapshot):
``WorkflowDef.from_json(wf.to_json()) == wf``. Sequences are tuples and maps are
:class:`FrozenMap`, so nothing in a parsed workflow can be changed after the fact.

Durations (``timeout``) are stored as seconds (``float``). Every node records where it
starts in the source (``line``, ``col``) so validation can point at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = (
    "AgentRef",
    "AlwaysNode",
    "BoolInputCondition",
    "CallNode",
    "CallWorkflowNode",
    "Condition",
    "DoNode",
    "DoWhileNode",
    "ForEachNode",
    "FrozenMap",
    "GateNode",
    "GateOptions",
    "IfNode",
    "InputDecl",
    "OnFail",
    "ParallelCall",
    "ParallelNode",
    "QualityGateConfig",
    "ScriptNode",
    "StaticGateOptions",
    "StepMarkerCondition",
    "StepRefGateOptions",
    "UnlessNode",
    "WhileNode",
    "WorkflowDef",
    "WorkflowNode",
)

QUALITY_GATE_TYPE = "quality_gate"
DEFAULT_GATE_TIMEOUT = 86_400.0  # 24 h, as in runkon-flow


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable ``str -> str`` mapping that keeps insertion order.

    It compares equal to any mapping with the same items and serialises as a JSON object.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._data: dict[str, str] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def to_dict(self) -> dict[str, str]:
        """A mutable copy."""
        return dict(self._data)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        from_dict = core_schema.no_info_after_validator_function(
            cls,
            core_schema.dict_schema(core_schema.str_schema(), core_schema.str_schema()),
        )
        return core_schema.json_or_python_schema(
            json_schema=from_dict,
            python_schema=core_schema.union_schema(
                [core_schema.is_instance_schema(cls), from_dict]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: dict(value._data)
            ),
        )


EMPTY_MAP = FrozenMap()


class _Model(BaseModel):
    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")


class _Located(_Model):
    line: int = 0
    col: int = 0


# --------------------------------------------------------------------------- small values


class AgentRef(_Model):
    """The agent a ``call`` names: a bare name (``call plan``) or a quoted path."""

    kind: Literal["name", "path"]
    value: str

    @property
    def label(self) -> str:
        """The name or path exactly as written."""
        return self.value

    @property
    def step_key(self) -> str:
        """The step's name in conditions: the name, or the file stem of a path
        (``".claude/agents/plan.md"`` → ``plan``)."""
        if self.kind == "name":
            return self.value
        return PurePosixPath(self.value.replace("\\", "/")).stem


OnFail: TypeAlias = Literal["continue"] | AgentRef
"""``on_fail``: ``"continue"`` (go on, the step counts as skipped) or an agent to run."""


class StepMarkerCondition(_Model):
    """``step.marker``: true when the latest result of ``step`` emitted ``marker``."""

    kind: Literal["step_marker"] = "step_marker"
    step: str
    marker: str


class BoolInputCondition(_Model):
    """A declared boolean input: true when its value is ``"true"`` (any case)."""

    kind: Literal["bool_input"] = "bool_input"
    input: str


Condition: TypeAlias = Annotated[
    StepMarkerCondition | BoolInputCondition, Field(discriminator="kind")
]


class StaticGateOptions(_Model):
    """Options written in the workflow: ``["a", "b"]`` or ``{ a = "Label" }``."""

    kind: Literal["static"] = "static"
    values: FrozenMap


class StepRefGateOptions(_Model):
    """Options read at run time from a JSON object field of an earlier step's output."""

    kind: Literal["step_ref"] = "step_ref"
    step: str
    field: str


GateOptions: TypeAlias = Annotated[
    StaticGateOptions | StepRefGateOptions, Field(discriminator="kind")
]


class QualityGateConfig(_Model):
    """``gate quality_gate { source = step  threshold = N  on_fail = fail|continue }``."""

    source: str
    threshold: int
    on_fail: Literal["fail", "continue"] = "fail"


class InputDecl(_Located):
    """One entry of the ``inputs`` block.

    A ``boolean`` input is never required and defaults to ``"false"``; a string input with
    neither ``required`` nor ``default`` is required.
    """

    name: str
    required: bool = False
    default: str | None = None
    description: str | None = None
    input_type: Literal["string", "boolean"] = "string"


# --------------------------------------------------------------------------- nodes


class CallNode(_Located):
    """``call <agent> { ... }``: one action executor call."""

    type: Literal["call"] = "call"
    agent: AgentRef
    retries: int = 0
    on_fail: OnFail | None = None
    output: str | None = None
    snippets: tuple[str, ...] = ()
    as_identity: str | None = None
    plugin_dirs: tuple[str, ...] = ()
    timeout: float | None = None
    max_turns: int | None = None


class CallWorkflowNode(_Located):
    """``call workflow <name> { inputs { ... } ... }``: a child run."""

    type: Literal["call_workflow"] = "call_workflow"
    workflow: str
    inputs: FrozenMap = EMPTY_MAP
    retries: int = 0
    on_fail: OnFail | None = None
    as_identity: str | None = None


class IfNode(_Located):
    """``if <condition> { ... }``."""

    type: Literal["if"] = "if"
    condition: Condition
    body: tuple[WorkflowNode, ...] = ()


class UnlessNode(_Located):
    """``unless <condition> { ... }``."""

    type: Literal["unless"] = "unless"
    condition: Condition
    body: tuple[WorkflowNode, ...] = ()


class WhileNode(_Located):
    """``while step.marker { max_iterations = N ... }``: checks before each iteration."""

    type: Literal["while"] = "while"
    step: str
    marker: str
    max_iterations: int
    stuck_after: int | None = None
    on_max_iter: Literal["fail", "continue"] = "fail"
    body: tuple[WorkflowNode, ...] = ()


class DoWhileNode(_Located):
    """``do { max_iterations = N ... } while step.marker``: checks after each iteration."""

    type: Literal["do_while"] = "do_while"
    step: str
    marker: str
    max_iterations: int
    stuck_after: int | None = None
    on_max_iter: Literal["fail", "continue"] = "fail"
    body: tuple[WorkflowNode, ...] = ()


class DoNode(_Located):
    """``do { [output = s] [with = [...]] ... }``: a block that lends ``output`` and ``with``
    to the calls inside it."""

    type: Literal["do"] = "do"
    output: str | None = None
    snippets: tuple[str, ...] = ()
    body: tuple[WorkflowNode, ...] = ()


class ParallelCall(_Located):
    """One ``call`` inside a ``parallel`` block, with its own options."""

    agent: AgentRef
    output: str | None = None
    snippets: tuple[str, ...] = ()
    condition: StepMarkerCondition | None = None
    retries: int = 0


class ParallelNode(_Located):
    """``parallel { ... call a  call b ... }``: calls run concurrently."""

    type: Literal["parallel"] = "parallel"
    fail_fast: bool = True
    min_success: int | None = None
    output: str | None = None
    snippets: tuple[str, ...] = ()
    calls: tuple[ParallelCall, ...]


class GateNode(_Located):
    """``gate <name> { ... }``: waits for a decision, or (``quality_gate``) checks a score.

    ``gate_type`` is the ``type = ...`` option, or the gate's name when it is absent (the
    runkon-flow spelling, where name and type are one identifier).

    A gate with ``options`` needs an explicit choice to be approved, unless
    ``allow_none`` (``allow_none = true``); ``select = "one"`` lets an approval choose
    at most one option (``"many"``, the default, any number).
    """

    type: Literal["gate"] = "gate"
    name: str
    gate_type: str
    prompt: str | None = None
    min_approvals: int = 1
    approval_mode: Literal["min_approvals", "review_decision"] = "min_approvals"
    timeout: float = DEFAULT_GATE_TIMEOUT
    on_timeout: Literal["fail", "continue"] = "fail"
    as_identity: str | None = None
    options: GateOptions | None = None
    select: Literal["one", "many"] = "many"
    allow_none: bool = False
    quality_gate: QualityGateConfig | None = None

    @property
    def is_quality_gate(self) -> bool:
        return self.gate_type == QUALITY_GATE_TYPE


class AlwaysNode(_Located):
    """``always { ... }`` nested in a body: runs even after a failure."""

    type: Literal["always"] = "always"
    body: tuple[WorkflowNode, ...] = ()


class ScriptNode(_Located):
    """``script <name> { run = "..." ... }``: a shell command under ``sh -c``."""

    type: Literal["script"] = "script"
    name: str
    run: str
    env: FrozenMap = EMPTY_MAP
    timeout: float | None = None
    retries: int = 0
    on_fail: OnFail | None = None
    as_identity: str | None = None


class ForEachNode(_Located):
    """``foreach <name> { over = provider  workflow = child  max_parallel = N ... }``."""

    type: Literal["foreach"] = "foreach"
    name: str
    over: str
    max_parallel: int
    workflow: str
    scope: FrozenMap | None = None
    filter: FrozenMap | None = None
    inputs: FrozenMap = EMPTY_MAP
    ordered: bool = False
    on_cycle: Literal["fail", "warn"] = "fail"
    on_child_fail: Literal["halt", "continue", "skip_dependents"] = "continue"

    @property
    def step_key(self) -> str:
        return f"foreach:{self.name}"


WorkflowNode: TypeAlias = Annotated[
    CallNode
    | CallWorkflowNode
    | IfNode
    | UnlessNode
    | WhileNode
    | DoWhileNode
    | DoNode
    | ParallelNode
    | GateNode
    | AlwaysNode
    | ScriptNode
    | ForEachNode,
    Field(discriminator="type"),
]

BLOCK_NODES = (IfNode, UnlessNode, WhileNode, DoWhileNode, DoNode, AlwaysNode)


class WorkflowDef(_Located):
    """A parsed workflow: its ``meta``, ``inputs``, body and top-level ``always`` block."""

    name: str
    title: str | None = None
    description: str = ""
    trigger: Literal["manual", "pr", "scheduled"] = "manual"
    targets: tuple[str, ...] = ()
    group: str | None = None
    inputs: tuple[InputDecl, ...] = ()
    body: tuple[WorkflowNode, ...] = ()
    always: tuple[WorkflowNode, ...] = ()
    source: str = "<string>"

    @property
    def display_name(self) -> str:
        """The ``meta.title``, or the workflow name."""
        return self.title or self.name

    def input(self, name: str) -> InputDecl | None:
        """The declaration of input ``name``, if declared."""
        for decl in self.inputs:
            if decl.name == name:
                return decl
        return None

    def walk(self) -> Iterator[WorkflowNode]:
        """Every node of body and ``always``, depth first, in source order."""
        yield from iter_nodes(self.body)
        yield from iter_nodes(self.always)

    def to_json(self) -> str:
        """The lossless JSON form (the run's definition snapshot)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkflowDef:
        """Rebuild a workflow from :meth:`to_json` output."""
        return cls.model_validate_json(text)


def iter_nodes(nodes: Iterable[WorkflowNode]) -> Iterator[WorkflowNode]:
    """Every node in ``nodes`` and in their bodies, depth first, in source order.

    Iterative, so arbitrarily deep trees never hit the recursion limit.
    """
    stack: list[Iterator[WorkflowNode]] = [iter(nodes)]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        yield node
        if isinstance(node, BLOCK_NODES):
            stack.append(iter(node.body))


for _model in (IfNode, UnlessNode, WhileNode, DoWhileNode, DoNode, AlwaysNode, WorkflowDef):
    _model.model_rebuild()
