"""Workflow validation: semantic checks, registry checks, cycle and depth detection.

One entry point, :func:`validate_workflow`, runs every layer of runkon-flow's validation
(reference §2A-C) and returns a :class:`ValidationReport` whose issues point at the node
they are about.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from runkon.dsl._ast import (
    AlwaysNode,
    BoolInputCondition,
    CallNode,
    CallWorkflowNode,
    Condition,
    DoNode,
    DoWhileNode,
    ForEachNode,
    FrozenMap,
    GateNode,
    IfNode,
    InputDecl,
    ParallelNode,
    ScriptNode,
    StepMarkerCondition,
    StepRefGateOptions,
    UnlessNode,
    WhileNode,
    WorkflowDef,
    WorkflowNode,
)
from runkon.dsl._options import close_match
from runkon.dsl._report import Location, ValidationIssue, ValidationReport
from runkon.dsl._resolvers import WorkflowResolver
from runkon.errors import DslError

__all__ = ("BUILTIN_GATE_TYPES", "MAX_WORKFLOW_DEPTH", "validate_workflow", "workflow_refs")

MAX_WORKFLOW_DEPTH = 5
_UNKNOWN = "\0unknown"  # in a produced set: some steps came from an unloaded sub-workflow
BUILTIN_GATE_TYPES = frozenset(
    {"human_approval", "human_review", "pr_approval", "pr_checks", "quality_gate"}
)


def validate_workflow(
    workflow: WorkflowDef,
    *,
    resolver: WorkflowResolver | None = None,
    actions: Collection[str] | None = None,
    fallback_action: bool = False,
    gate_types: Collection[str] | None = None,
    item_providers: Mapping[str, object] | Collection[str] | None = None,
    valid_targets: Collection[str] = (),
) -> ValidationReport:
    """Check a workflow before it runs; never raises for a problem in the workflow.

    Semantic checks (always): every condition names a step produced earlier (or a declared
    boolean input); loops, quality gates and gate options reference produced steps;
    sub-workflows load and get their required inputs (and no undeclared ones); foreach
    children likewise; declared inputs are consistent; ``meta.targets`` are valid.

    Registry checks (when the registry is given): every ``call`` (and ``on_fail`` agent)
    has an executor (``actions``, or ``fallback_action``); every ``foreach`` names a
    registered item provider, whose checks (``parse_scope``, ``scope_warnings``,
    ``supports_ordered``, ``requires_filter``, ``validate_filter``) pass when it has them;
    every gate type is built in or in ``gate_types`` (when ``gate_types`` is None, an
    unknown custom type is only a warning).

    With a ``resolver``: sub-workflows are validated too (their issues prefixed with
    ``in sub-workflow 'X'``), and circular references or nesting deeper than
    :data:`MAX_WORKFLOW_DEPTH` are errors.

    Args:
        workflow: the parsed workflow.
        resolver: finds ``call workflow`` / ``foreach`` children by name.
        actions: names of registered action executors; None skips the check.
        fallback_action: a catch-all executor exists, so every call has one.
        gate_types: gate types that have a registered resolver.
        item_providers: registered item providers by name (objects, or just names).
        valid_targets: allowed ``meta.targets`` values; empty allows any.
    """
    validator = _Validator(
        resolver=resolver,
        actions=None if actions is None else frozenset(actions),
        fallback_action=fallback_action,
        gate_types=None if gate_types is None else frozenset(gate_types),
        item_providers=item_providers,
        valid_targets=frozenset(valid_targets),
    )
    validator.check(workflow, stack=(workflow.name,))
    return ValidationReport(tuple(validator.errors), tuple(validator.warnings))


def workflow_refs(workflow: WorkflowDef) -> list[tuple[str, WorkflowNode]]:
    """Every child workflow referenced (``call workflow``, ``foreach``), in source order."""
    refs: list[tuple[str, WorkflowNode]] = []
    for node in workflow.walk():
        if isinstance(node, CallWorkflowNode | ForEachNode):
            refs.append((node.workflow, node))
    return refs


def _top_level_keys(workflow: WorkflowDef) -> set[str]:
    keys: set[str] = set()
    for node in workflow.body:
        if isinstance(node, CallNode):
            keys.add(node.agent.step_key)
        elif isinstance(node, ScriptNode):
            keys.add(node.name)
        elif isinstance(node, CallWorkflowNode):
            keys.add(node.workflow)
        elif isinstance(node, ParallelNode):
            keys.update(call.agent.step_key for call in node.calls)
        elif isinstance(node, ForEachNode):
            keys.add(node.step_key)
        elif isinstance(node, GateNode):
            keys.add(node.name)
    return keys


class _Validator:
    def __init__(
        self,
        *,
        resolver: WorkflowResolver | None,
        actions: frozenset[str] | None,
        fallback_action: bool,
        gate_types: frozenset[str] | None,
        item_providers: Mapping[str, object] | Collection[str] | None,
        valid_targets: frozenset[str],
    ) -> None:
        self.resolver = resolver
        self.actions = actions
        self.fallback_action = fallback_action
        self.gate_types = gate_types
        self.item_providers = item_providers
        self.valid_targets = valid_targets
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []
        self._loaded: dict[str, WorkflowDef | str] = {}
        self._checked_children: set[str] = set()
        self._chains: dict[str, list[str]] = {}
        self.workflow: WorkflowDef | None = None

    # ----------------------------------------------------------------- reporting

    def _location(self, node: Any) -> Location | None:
        if self.workflow is None or node is None or not getattr(node, "line", 0):
            return None
        return Location(self.workflow.source, node.line, node.col)

    def error(self, node: Any, message: str, hint: str | None = None) -> None:
        self.errors.append(ValidationIssue(message, "error", hint, self._location(node)))

    def warn(self, node: Any, message: str, hint: str | None = None) -> None:
        self.warnings.append(ValidationIssue(message, "warning", hint, self._location(node)))

    # ----------------------------------------------------------------- entry

    def check(self, workflow: WorkflowDef, stack: tuple[str, ...]) -> None:
        self.workflow = workflow
        self.check_inputs(workflow.inputs)
        self.check_meta(workflow)
        produced: set[str] = set()
        self.walk(workflow.body, produced)
        self.walk(workflow.always, set(produced))
        if self.resolver is not None:
            self.check_cycles(workflow, stack)
            self.check_children(workflow, stack)

    def check_meta(self, workflow: WorkflowDef) -> None:
        if workflow.trigger != "manual":
            self.warn(
                workflow,
                f"trigger {workflow.trigger!r} is not implemented; only 'manual' is active",
                hint="start the workflow yourself (engine.start or `runkon run`)",
            )
        if self.valid_targets:
            for target in workflow.targets:
                if target not in self.valid_targets:
                    self.error(
                        workflow,
                        f"unknown target {target!r} in workflow {workflow.name!r}",
                        hint="valid targets: " + ", ".join(sorted(self.valid_targets)),
                    )

    def check_inputs(self, inputs: Sequence[InputDecl]) -> None:
        for decl in inputs:
            if decl.required and decl.default is not None:
                self.warn(
                    decl,
                    f"input {decl.name!r} is required and has a default; the default never applies",
                    hint="remove `required` to make the default apply, or remove the default",
                )

    # ----------------------------------------------------------------- the walk

    def walk(self, nodes: Iterable[WorkflowNode], produced: set[str]) -> None:
        for node in nodes:
            self.check_node(node, produced)

    def check_node(self, node: WorkflowNode, produced: set[str]) -> None:
        if isinstance(node, CallNode):
            self.check_action(node, node.agent.label, f"call {node.agent.step_key!r}")
            if node.on_fail is not None and node.on_fail != "continue":
                self.check_action(node, node.on_fail.label, f"on_fail of {node.agent.label!r}")
            produced.add(node.agent.step_key)
        elif isinstance(node, ScriptNode):
            if node.on_fail is not None and node.on_fail != "continue":
                self.check_action(node, node.on_fail.label, f"on_fail of script {node.name!r}")
            produced.add(node.name)
        elif isinstance(node, CallWorkflowNode):
            self.check_call_workflow(node, produced)
        elif isinstance(node, IfNode | UnlessNode):
            self.check_condition(node, node.condition, produced)
            branch = set(produced)
            self.walk(node.body, branch)
            produced |= branch
        elif isinstance(node, WhileNode):
            self.check_marker_step(node, node.step, produced, "while loop")
            self.check_loop(node)
            branch = set(produced)
            self.walk(node.body, branch)
            produced |= branch
        elif isinstance(node, DoWhileNode):
            self.walk(node.body, produced)
            self.check_marker_step(node, node.step, produced, "do-while loop")
            self.check_loop(node)
        elif isinstance(node, DoNode | AlwaysNode):
            self.walk(node.body, produced)
        elif isinstance(node, ParallelNode):
            for call in node.calls:
                if call.condition is not None:
                    self.check_marker_step(call, call.condition.step, produced, "parallel `if`")
                self.check_action(call, call.agent.label, f"call {call.agent.step_key!r}")
            produced.update(call.agent.step_key for call in node.calls)
        elif isinstance(node, GateNode):
            self.check_gate(node, produced)
            produced.add(node.name)
        elif isinstance(node, ForEachNode):
            self.check_foreach(node)
            produced.add(node.step_key)

    def check_marker_step(self, node: Any, step: str, produced: set[str], what: str) -> None:
        if step in produced:
            return
        if _UNKNOWN in produced:
            self.warn(
                node,
                f"{what} references step {step!r}, which cannot be checked: it may come from "
                "a sub-workflow that was not loaded",
                hint="validate with a workflow resolver to check it",
            )
            return
        guess = close_match(step, produced - {_UNKNOWN})
        self.error(
            node,
            f"{what} references step {step!r} which has not been produced at this point "
            "in the workflow",
            hint=f"did you mean {guess!r}?" if guess else "run that step before this point",
        )

    def check_condition(self, node: Any, condition: Condition, produced: set[str]) -> None:
        if isinstance(condition, StepMarkerCondition):
            self.check_marker_step(node, condition.step, produced, "condition")
            return
        assert isinstance(condition, BoolInputCondition)
        assert self.workflow is not None
        decl = self.workflow.input(condition.input)
        if decl is None or decl.input_type != "boolean":
            kind = "a string input" if decl is not None else "not a declared boolean input"
            self.error(
                node,
                f"condition references {condition.input!r} which is {kind}",
                hint=f"declare it in the workflow inputs block: `{condition.input} boolean`, "
                "or write a step.marker condition",
            )

    def check_loop(self, node: WhileNode | DoWhileNode) -> None:
        if node.stuck_after is not None and node.stuck_after > node.max_iterations:
            self.warn(
                node,
                f"stuck_after = {node.stuck_after} exceeds max_iterations = "
                f"{node.max_iterations}, so stuck detection never triggers",
            )

    def check_action(self, node: Any, label: str, what: str) -> None:
        if self.actions is None or self.fallback_action or label in self.actions:
            return
        guess = close_match(label, self.actions)
        self.error(
            node,
            f"{what}: no registered ActionExecutor for {label!r}",
            hint=f"did you mean {guess!r}?"
            if guess
            else "register an executor of that name, or a fallback executor",
        )

    def check_gate(self, node: GateNode, produced: set[str]) -> None:
        if node.quality_gate is not None:
            source = node.quality_gate.source
            if source not in produced:
                self.error(
                    node,
                    f"quality gate {node.name!r} references source step {source!r} which has "
                    "not been produced at this point in the workflow",
                    hint="the source must be a step that runs before the gate",
                )
            return
        if isinstance(node.options, StepRefGateOptions):
            self.check_marker_step(
                node, node.options.step, produced, f"options of gate {node.name!r}"
            )
        if node.gate_type in BUILTIN_GATE_TYPES:
            return
        if self.gate_types is None:
            self.warn(
                node,
                f"gate {node.name!r} has custom type {node.gate_type!r}; it needs a "
                "GateResolver of that type to run",
            )
        elif node.gate_type not in self.gate_types:
            guess = close_match(node.gate_type, self.gate_types | BUILTIN_GATE_TYPES)
            self.error(
                node,
                f"gate {node.name!r}: no registered GateResolver for type {node.gate_type!r}",
                hint=f"did you mean {guess!r}?" if guess else "register a GateResolver for it",
            )

    # ----------------------------------------------------------------- children

    def load(self, name: str) -> WorkflowDef | str:
        """The child workflow, or why it could not be loaded."""
        if name not in self._loaded:
            if self.resolver is None:
                return "no workflow resolver configured"
            try:
                self._loaded[name] = self.resolver.resolve(name)
            except DslError as exc:
                self._loaded[name] = str(exc)
        return self._loaded[name]

    def check_child_inputs(
        self, node: Any, child: WorkflowDef, given: FrozenMap, what: str, hint: str
    ) -> None:
        declared = {decl.name for decl in child.inputs}
        for decl in child.inputs:
            if decl.required and decl.name not in given:
                self.error(
                    node,
                    f"{what} requires input {decl.name!r} but it was not provided",
                    hint=hint.format(name=decl.name),
                )
        for key in given:
            if key not in declared and not key.startswith("item."):
                guess = close_match(key, declared)
                self.error(
                    node,
                    f"{what} passes input {key!r} which {child.name!r} does not declare",
                    hint=f"did you mean {guess!r}?"
                    if guess
                    else f"declare it in {child.name!r}'s inputs block, or remove it",
                )

    def check_call_workflow(self, node: CallWorkflowNode, produced: set[str]) -> None:
        produced.add(node.workflow)
        if node.on_fail is not None and node.on_fail != "continue":
            self.check_action(node, node.on_fail.label, f"on_fail of workflow {node.workflow!r}")
        if self.resolver is None:
            produced.add(_UNKNOWN)
            return
        child = self.load(node.workflow)
        if isinstance(child, str):
            produced.add(_UNKNOWN)
            self.error(
                node,
                f"sub-workflow {node.workflow!r} could not be loaded: {child}",
                hint="check the name and the workflow directory",
            )
            return
        self.check_child_inputs(
            node,
            child,
            node.inputs,
            f"sub-workflow {node.workflow!r}",
            'add it to the call: `inputs {{ {name} = "..." }}`',
        )
        produced |= _top_level_keys(child)

    def check_foreach(self, node: ForEachNode) -> None:
        if self.resolver is not None:
            child = self.load(node.workflow)
            if isinstance(child, str):
                self.error(
                    node,
                    f"foreach {node.name!r}: workflow {node.workflow!r} could not be loaded: "
                    f"{child}",
                )
            else:
                self.check_child_inputs(
                    node,
                    child,
                    node.inputs,
                    f"foreach {node.name!r}: workflow {node.workflow!r}",
                    'add `inputs = {{ {name} = "{{{{item.id}}}}" }}` (item fields are '
                    "{{{{item.id}}}}, {{{{item.ref}}}} and {{{{item.<key>}}}})",
                )
        if self.item_providers is None:
            return
        if node.over not in self.item_providers:
            guess = close_match(node.over, list(self.item_providers))
            self.error(
                node,
                f"foreach {node.name!r}: unknown provider {node.over!r}; no ItemProvider is "
                "registered under this name",
                hint=f"did you mean {guess!r}?" if guess else "register an ItemProvider",
            )
            return
        if isinstance(self.item_providers, Mapping):
            self.check_provider(node, self.item_providers[node.over])

    def check_provider(self, node: ForEachNode, provider: object) -> None:
        where = f"foreach {node.name!r}"
        parse_scope = getattr(provider, "parse_scope", None)
        if parse_scope is not None:
            try:
                parse_scope(node.scope)
            except (ValueError, TypeError) as exc:
                self.error(node, f"{where}: invalid scope for provider {node.over!r}: {exc}")
        elif node.scope:
            self.error(node, f"{where}: provider {node.over!r} does not support scope")
        scope_warnings = getattr(provider, "scope_warnings", None)
        if scope_warnings is not None:
            for warning in scope_warnings(node.scope):
                self.warn(node, f"{where}: {warning}")
        supports_ordered = getattr(provider, "supports_ordered", None)
        if node.ordered and not (supports_ordered is not None and supports_ordered()):
            names = [
                name
                for name, other in (
                    self.item_providers.items() if isinstance(self.item_providers, Mapping) else ()
                )
                if getattr(other, "supports_ordered", lambda: False)()
            ]
            self.error(
                node,
                f"{where}: ordered = true but provider {node.over!r} does not support ordering",
                hint="providers that do: " + (", ".join(sorted(names)) or "none"),
            )
        requires_filter = getattr(provider, "requires_filter", None)
        if requires_filter is not None and requires_filter() and not node.filter:
            self.error(
                node,
                f"{where}: provider {node.over!r} requires a filter",
                hint='add `filter = { key = "value" }`',
            )
        validate_filter = getattr(provider, "validate_filter", None)
        if node.filter and validate_filter is not None:
            try:
                validate_filter(node.filter)
            except (ValueError, TypeError) as exc:
                self.error(node, f"{where}: invalid filter for provider {node.over!r}: {exc}")

    def check_cycles(self, root: WorkflowDef, stack: tuple[str, ...]) -> None:
        """Cycles and nesting depth over child references; only for the workflow being
        validated. Each workflow is explored once (linear in workflows and references)."""
        if len(stack) > 1:
            return
        for name, node in sorted(set(workflow_refs(root)), key=lambda ref: ref[0]):
            problem = self._explore(name, [root.name])
            if problem is None:
                chain = [root.name, *self._chains.get(name, [name])]
                if len(chain) > MAX_WORKFLOW_DEPTH + 1:
                    problem = (
                        f"workflow nesting depth exceeds the maximum of {MAX_WORKFLOW_DEPTH}: "
                        + " -> ".join(chain[: MAX_WORKFLOW_DEPTH + 2])
                    )
            if problem is not None:
                self.error(node, problem)

    def _explore(self, name: str, stack: list[str]) -> str | None:
        """Depth-first from ``name``: a cycle message, or None after recording the
        longest chain of references below ``name`` in ``self._chains``."""
        if name in stack:
            cycle = [*stack[stack.index(name) :], name]
            return "circular workflow reference: " + " -> ".join(cycle)
        if name in self._chains:
            return None
        child = self.load(name)
        longest = [name]
        if not isinstance(child, str):  # an unloadable child is reported where referenced
            stack.append(name)
            try:
                for ref in sorted({ref for ref, _ in workflow_refs(child)}):
                    problem = self._explore(ref, stack)
                    if problem is not None:
                        return problem
                    below = self._chains[ref]
                    if len(below) + 1 > len(longest):
                        longest = [name, *below]
            finally:
                stack.pop()
        self._chains[name] = longest
        return None

    def check_children(self, workflow: WorkflowDef, stack: tuple[str, ...]) -> None:
        """Validate each loadable child once, prefixing its issues."""
        for name, node in workflow_refs(workflow):
            if name in stack or name in self._checked_children:
                continue
            self._checked_children.add(name)
            child = self.load(name)
            if isinstance(child, str):
                continue
            sub = _Validator(
                resolver=self.resolver,
                actions=self.actions,
                fallback_action=self.fallback_action,
                gate_types=self.gate_types,
                item_providers=self.item_providers,
                valid_targets=frozenset(),
            )
            sub._loaded = self._loaded
            sub._checked_children = self._checked_children
            sub.check(child, (*stack, name))
            location = self._location(node)
            for issue in sub.errors:
                self.errors.append(
                    ValidationIssue(f"in sub-workflow {name!r}: {issue}", "error", None, location)
                )
            for issue in sub.warnings:
                self.warnings.append(
                    ValidationIssue(f"in sub-workflow {name!r}: {issue}", "warning", None, location)
                )
            self.workflow = workflow
