"""The valid corpus: every file parses, is named after its workflow, validates with no
errors against a directory resolver over the corpus (the `runkon validate` check), and
survives a JSON round trip. Together the files cover every node kind and every option,
with its default and with a non-default value (checked below, so the corpus cannot
silently lose coverage)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import runkon
from runkon.dsl import (
    AlwaysNode,
    BoolInputCondition,
    CallNode,
    CallWorkflowNode,
    DirectoryWorkflowResolver,
    DoNode,
    DoWhileNode,
    ForEachNode,
    GateNode,
    IfNode,
    InputDecl,
    ParallelCall,
    ParallelNode,
    ScriptNode,
    StaticGateOptions,
    StepMarkerCondition,
    StepRefGateOptions,
    UnlessNode,
    WhileNode,
    WorkflowDef,
)

from ._corpus import VALID_DIR, VALID_FILES, ids

REFERENCE_EXAMPLES = ("tidy-imports", "triage-request", "ship-request", "release-check")
CUSTOM_GATE_TYPES = {"slack_reaction", "change-calendar"}


@functools.cache
def _load_all() -> tuple[WorkflowDef, ...]:
    return tuple(runkon.load_workflow(path) for path in VALID_FILES)


def load_all() -> list[WorkflowDef]:
    return list(_load_all())


def test_reference_examples_are_in_the_corpus() -> None:
    names = {path.stem for path in VALID_FILES}
    assert set(REFERENCE_EXAMPLES) <= names
    assert len(VALID_FILES) >= 20


@pytest.mark.parametrize("path", VALID_FILES, ids=ids(VALID_FILES))
def test_valid_case_parses_and_is_named_after_its_file(path: Path) -> None:
    wf = runkon.load_workflow(path)
    assert isinstance(wf, WorkflowDef)
    assert wf.name == path.stem
    assert wf.source == str(path)
    assert runkon.parse_workflow(path.read_text(encoding="utf-8"), source=str(path)) == wf


@pytest.mark.parametrize("path", VALID_FILES, ids=ids(VALID_FILES))
def test_valid_case_validates_without_errors(path: Path) -> None:
    """What `runkon validate` does: semantic checks, children, cycles and depth."""
    wf = runkon.load_workflow(path)
    report = runkon.validate_workflow(wf, resolver=DirectoryWorkflowResolver(VALID_DIR))
    assert report.errors == (), "\n".join(map(str, report.errors))
    assert report.ok
    for warning in report.warnings:
        # Only custom gate types (no registry given) and non-manual triggers may warn.
        assert "custom type" in warning.message or "trigger" in warning.message, str(warning)


def _registry_for(workflows: list[WorkflowDef]) -> dict[str, Any]:
    actions: set[str] = set()
    providers: set[str] = set()
    for wf in workflows:
        for node in wf.walk():
            if isinstance(node, CallNode | CallWorkflowNode | ScriptNode):
                if isinstance(node, CallNode):
                    actions.add(node.agent.label)
                if node.on_fail is not None and node.on_fail != "continue":
                    actions.add(node.on_fail.label)
            elif isinstance(node, ParallelNode):
                actions.update(call.agent.label for call in node.calls)
            elif isinstance(node, ForEachNode):
                providers.add(node.over)
    return {
        "actions": actions,
        "gate_types": CUSTOM_GATE_TYPES,
        "item_providers": providers,
        "valid_targets": {"worktree", "ticket", "repo", "pr", "workflow_run"},
    }


@pytest.mark.parametrize("path", VALID_FILES, ids=ids(VALID_FILES))
def test_valid_case_passes_registry_validation(path: Path) -> None:
    """With every executor, gate resolver, provider and target registered: no errors, and
    the only warnings left are about non-manual triggers."""
    registry = _registry_for(load_all())
    wf = runkon.load_workflow(path)
    report = runkon.validate_workflow(wf, resolver=DirectoryWorkflowResolver(VALID_DIR), **registry)
    assert report.errors == (), "\n".join(map(str, report.errors))
    assert all("trigger" in w.message for w in report.warnings), report.warnings


def test_registry_validation_notices_a_missing_executor() -> None:
    registry = _registry_for(load_all())
    registry["actions"] = registry["actions"] - {"plan"}
    wf = runkon.load_workflow(VALID_DIR / "release-check.wf")
    report = runkon.validate_workflow(wf, resolver=DirectoryWorkflowResolver(VALID_DIR), **registry)
    (error,) = report.errors
    assert str(error).startswith(
        f"{VALID_DIR / 'release-check.wf'}:34:3: call 'plan': no registered ActionExecutor "
        "for 'plan'"
    )


# ----------------------------------------------------------------------- JSON round trip


@pytest.mark.parametrize("path", VALID_FILES, ids=ids(VALID_FILES))
def test_json_round_trip(path: Path) -> None:
    wf = runkon.load_workflow(path)
    text = wf.to_json()
    again = WorkflowDef.from_json(text)
    assert again == wf
    assert again.to_json() == text
    assert WorkflowDef.from_json(text.encode()) == wf
    data = json.loads(text)
    assert data["name"] == wf.name
    assert [node["type"] for node in data["body"]] == [node.type for node in wf.body]


@pytest.mark.parametrize("path", VALID_FILES, ids=ids(VALID_FILES))
def test_round_tripped_workflow_validates_the_same(path: Path) -> None:
    wf = runkon.load_workflow(path)
    again = WorkflowDef.from_json(wf.to_json())
    resolver = DirectoryWorkflowResolver(VALID_DIR)
    first = runkon.validate_workflow(wf, resolver=resolver)
    second = runkon.validate_workflow(again, resolver=resolver)
    assert first == second


def test_parsed_workflows_are_immutable() -> None:
    wf = runkon.load_workflow(VALID_DIR / "release-check.wf")
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        wf.name = "other"  # type: ignore[misc]
    script = wf.body[0]
    assert isinstance(script, ScriptNode)
    with pytest.raises(TypeError):
        script.env["BASE"] = "x"  # type: ignore[index]
    assert hash(wf) == hash(runkon.load_workflow(VALID_DIR / "release-check.wf"))


# ----------------------------------------------------------------------- coverage

NODE_CLASSES: tuple[type[BaseModel], ...] = (
    CallNode,
    CallWorkflowNode,
    IfNode,
    UnlessNode,
    WhileNode,
    DoWhileNode,
    DoNode,
    ParallelNode,
    ParallelCall,
    GateNode,
    AlwaysNode,
    ScriptNode,
    ForEachNode,
    InputDecl,
    WorkflowDef,
)
NOT_OPTIONS = {"line", "col", "type", "source", "body", "calls", "name"}


def _every_model(wf: WorkflowDef) -> list[BaseModel]:
    models: list[BaseModel] = [wf, *wf.inputs]
    for node in wf.walk():
        models.append(node)
        if isinstance(node, ParallelNode):
            models.extend(node.calls)
    return models


@functools.cache
def _seen_values() -> dict[tuple[str, str], set[str]]:
    seen: dict[tuple[str, str], set[str]] = {}
    for wf in load_all():
        for model in _every_model(wf):
            for field in type(model).model_fields:
                if field in NOT_OPTIONS:
                    continue
                key = (type(model).__name__, field)
                seen.setdefault(key, set()).add(repr(getattr(model, field)))
    return seen


def _field_cases() -> list[tuple[str, str]]:
    cases = []
    for cls in NODE_CLASSES:
        for field, info in cls.model_fields.items():
            if field not in NOT_OPTIONS and not info.is_required():
                cases.append((cls.__name__, field))
    return cases


@pytest.mark.parametrize(
    ("cls_name", "field"), _field_cases(), ids=[f"{c}.{f}" for c, f in _field_cases()]
)
def test_corpus_covers_option_default_and_non_default(cls_name: str, field: str) -> None:
    cls = next(c for c in NODE_CLASSES if c.__name__ == cls_name)
    default = repr(cls.model_fields[field].get_default(call_default_factory=True))
    seen = _seen_values().get((cls_name, field), set())
    assert default in seen, f"{cls_name}.{field} never left at its default {default}"
    assert seen - {default}, f"{cls_name}.{field} never set to a non-default value"


def test_corpus_covers_every_node_kind_and_form() -> None:
    kinds: set[str] = set()
    gate_types: set[str] = set()
    option_forms: set[type] = set()
    conditions: set[tuple[str, type]] = set()
    agent_kinds: set[tuple[str, str]] = set()
    for wf in load_all():
        for node in wf.walk():
            kinds.add(node.type)
            if isinstance(node, GateNode):
                gate_types.add(node.gate_type)
                if node.options is not None:
                    option_forms.add(type(node.options))
            if isinstance(node, IfNode | UnlessNode):
                conditions.add((node.type, type(node.condition)))
            if isinstance(node, CallNode):
                agent_kinds.add(("call", node.agent.kind))
                if node.on_fail is not None and node.on_fail != "continue":
                    agent_kinds.add(("on_fail", node.on_fail.kind))
            if isinstance(node, ParallelNode):
                agent_kinds.update(("parallel", c.agent.kind) for c in node.calls)
    assert kinds == {
        "call",
        "call_workflow",
        "if",
        "unless",
        "while",
        "do_while",
        "do",
        "parallel",
        "gate",
        "always",
        "script",
        "foreach",
    }
    assert {
        "human_approval",
        "human_review",
        "pr_approval",
        "pr_checks",
        "quality_gate",
    } <= gate_types
    assert gate_types >= CUSTOM_GATE_TYPES
    assert option_forms == {StaticGateOptions, StepRefGateOptions}
    assert conditions == {
        ("if", StepMarkerCondition),
        ("if", BoolInputCondition),
        ("unless", StepMarkerCondition),
        ("unless", BoolInputCondition),
    }
    assert agent_kinds == {
        ("call", "name"),
        ("call", "path"),
        ("on_fail", "name"),
        ("on_fail", "path"),
        ("parallel", "name"),
        ("parallel", "path"),
    }


def test_corpus_covers_every_duration_spelling() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in VALID_FILES)
    for spelling in ('"250ms"', '"30s"', '"5m"', '"1h30m"', '"2d"', "= 5m", "= 120", '"90"'):
        assert spelling in text
