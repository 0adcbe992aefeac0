"""Builders for expected ASTs, as plain JSON-like dicts.

Every builder spells out EVERY field with the default the reference (§1.4-§1.6) gives
it, so comparing `strip(wf.model_dump(mode="json"))` with a built dict checks defaults
as well as the values written in the file. Locations (line/col) and `source` are
stripped; they are checked separately.
"""

from __future__ import annotations

from typing import Any

DEFAULT_GATE_TIMEOUT = 86400.0  # 24 h


def strip(value: Any) -> Any:
    """Drop the workflow's `source` and every line/col key (recursively)."""
    if isinstance(value, dict) and "body" in value and "inputs" in value:
        value = {k: v for k, v in value.items() if k != "source"}
    return _strip_locations(value)


def _strip_locations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_locations(v) for k, v in value.items() if k not in ("line", "col")}
    if isinstance(value, list):
        return [_strip_locations(v) for v in value]
    return value


def name(value: str) -> dict[str, Any]:
    return {"kind": "name", "value": value}


def path(value: str) -> dict[str, Any]:
    return {"kind": "path", "value": value}


def marker(step: str, mark: str) -> dict[str, Any]:
    return {"kind": "step_marker", "step": step, "marker": mark}


def boolean(input_name: str) -> dict[str, Any]:
    return {"kind": "bool_input", "input": input_name}


def agent(ref: str | dict[str, Any]) -> dict[str, Any]:
    return name(ref) if isinstance(ref, str) else ref


def on_fail(value: str | dict[str, Any] | None) -> Any:
    if value is None or value == "continue":
        return value
    return agent(value)


def workflow(
    wf_name: str,
    *,
    title: str | None = None,
    description: str = "",
    trigger: str = "manual",
    targets: tuple[str, ...] = (),
    group: str | None = None,
    inputs: tuple[dict[str, Any], ...] = (),
    body: tuple[dict[str, Any], ...] = (),
    always: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    return {
        "name": wf_name,
        "title": title,
        "description": description,
        "trigger": trigger,
        "targets": list(targets),
        "group": group,
        "inputs": list(inputs),
        "body": list(body),
        "always": list(always),
    }


def inp(
    input_name: str,
    *,
    required: bool,
    default: str | None = None,
    description: str | None = None,
    input_type: str = "string",
) -> dict[str, Any]:
    return {
        "name": input_name,
        "required": required,
        "default": default,
        "description": description,
        "input_type": input_type,
    }


def call(
    ref: str | dict[str, Any],
    *,
    retries: int = 0,
    on_fail_: str | dict[str, Any] | None = None,
    output: str | None = None,
    snippets: tuple[str, ...] = (),
    as_identity: str | None = None,
    plugin_dirs: tuple[str, ...] = (),
    timeout: float | None = None,
    max_turns: int | None = None,
) -> dict[str, Any]:
    return {
        "type": "call",
        "agent": agent(ref),
        "retries": retries,
        "on_fail": on_fail(on_fail_),
        "output": output,
        "snippets": list(snippets),
        "as_identity": as_identity,
        "plugin_dirs": list(plugin_dirs),
        "timeout": timeout,
        "max_turns": max_turns,
    }


def call_workflow(
    wf_name: str,
    *,
    inputs: dict[str, str] | None = None,
    retries: int = 0,
    on_fail_: str | dict[str, Any] | None = None,
    as_identity: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "call_workflow",
        "workflow": wf_name,
        "inputs": dict(inputs or {}),
        "retries": retries,
        "on_fail": on_fail(on_fail_),
        "as_identity": as_identity,
    }


def if_(condition: dict[str, Any], *body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "if", "condition": condition, "body": list(body)}


def unless(condition: dict[str, Any], *body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "unless", "condition": condition, "body": list(body)}


def while_(
    step: str,
    mark: str,
    *body: dict[str, Any],
    max_iterations: int,
    stuck_after: int | None = None,
    on_max_iter: str = "fail",
) -> dict[str, Any]:
    return {
        "type": "while",
        "step": step,
        "marker": mark,
        "max_iterations": max_iterations,
        "stuck_after": stuck_after,
        "on_max_iter": on_max_iter,
        "body": list(body),
    }


def do_while(
    step: str,
    mark: str,
    *body: dict[str, Any],
    max_iterations: int,
    stuck_after: int | None = None,
    on_max_iter: str = "fail",
) -> dict[str, Any]:
    node = while_(
        step,
        mark,
        *body,
        max_iterations=max_iterations,
        stuck_after=stuck_after,
        on_max_iter=on_max_iter,
    )
    node["type"] = "do_while"
    return node


def do(
    *body: dict[str, Any], output: str | None = None, snippets: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"type": "do", "output": output, "snippets": list(snippets), "body": list(body)}


def pcall(
    ref: str | dict[str, Any],
    *,
    output: str | None = None,
    snippets: tuple[str, ...] = (),
    condition: dict[str, Any] | None = None,
    retries: int = 0,
) -> dict[str, Any]:
    return {
        "agent": agent(ref),
        "output": output,
        "snippets": list(snippets),
        "condition": condition,
        "retries": retries,
    }


def parallel(
    *calls: dict[str, Any],
    fail_fast: bool = True,
    min_success: int | None = None,
    output: str | None = None,
    snippets: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "type": "parallel",
        "fail_fast": fail_fast,
        "min_success": min_success,
        "output": output,
        "snippets": list(snippets),
        "calls": list(calls),
    }


def static_options(values: dict[str, str]) -> dict[str, Any]:
    return {"kind": "static", "values": values}


def list_options(*labels: str) -> dict[str, Any]:
    return static_options({label: label for label in labels})


def step_ref(step: str, field: str) -> dict[str, Any]:
    return {"kind": "step_ref", "step": step, "field": field}


def gate(
    gate_name: str,
    *,
    gate_type: str | None = None,
    prompt: str | None = None,
    min_approvals: int = 1,
    approval_mode: str = "min_approvals",
    timeout: float = DEFAULT_GATE_TIMEOUT,
    on_timeout: str = "fail",
    as_identity: str | None = None,
    options: dict[str, Any] | None = None,
    select: str = "many",
    allow_none: bool = False,
) -> dict[str, Any]:
    return {
        "type": "gate",
        "name": gate_name,
        "gate_type": gate_type or gate_name,
        "prompt": prompt,
        "min_approvals": min_approvals,
        "approval_mode": approval_mode,
        "timeout": timeout,
        "on_timeout": on_timeout,
        "as_identity": as_identity,
        "options": options,
        "select": select,
        "allow_none": allow_none,
        "quality_gate": None,
    }


def quality_gate(
    gate_name: str,
    *,
    source: str,
    threshold: int,
    on_fail_: str = "fail",
    as_identity: str | None = None,
) -> dict[str, Any]:
    node = gate(gate_name, gate_type="quality_gate", timeout=0.0, as_identity=as_identity)
    node["quality_gate"] = {"source": source, "threshold": threshold, "on_fail": on_fail_}
    return node


def always(*body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "always", "body": list(body)}


def script(
    script_name: str,
    run: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    retries: int = 0,
    on_fail_: str | dict[str, Any] | None = None,
    as_identity: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "script",
        "name": script_name,
        "run": run,
        "env": dict(env or {}),
        "timeout": timeout,
        "retries": retries,
        "on_fail": on_fail(on_fail_),
        "as_identity": as_identity,
    }


def foreach(
    fe_name: str,
    *,
    over: str,
    max_parallel: int,
    workflow_: str,
    scope: dict[str, str] | None = None,
    filter_: dict[str, str] | None = None,
    inputs: dict[str, str] | None = None,
    ordered: bool = False,
    on_cycle: str = "fail",
    on_child_fail: str = "continue",
) -> dict[str, Any]:
    return {
        "type": "foreach",
        "name": fe_name,
        "over": over,
        "max_parallel": max_parallel,
        "workflow": workflow_,
        "scope": scope,
        "filter": filter_,
        "inputs": dict(inputs or {}),
        "ordered": ordered,
        "on_cycle": on_cycle,
        "on_child_fail": on_child_fail,
    }
