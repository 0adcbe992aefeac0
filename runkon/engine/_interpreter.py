"""The interpreter: runs a block of nodes, and the control-flow nodes (``if``/``unless``,
``while``, ``do … while``, ``do``, nested ``always``).

Paths name each node's place in the tree (``b.3`` = 4th node of the body, ``b.3#2.0`` =
first node of its body in loop iteration 2); a leaf's resume key is ``name@path``, so
repeated names and steps nested in ``if``/``do`` inside loops each have their own key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from runkon.dsl import (
    AlwaysNode,
    BoolInputCondition,
    CallNode,
    CallWorkflowNode,
    Condition,
    DoNode,
    DoWhileNode,
    ForEachNode,
    GateNode,
    IfNode,
    ParallelNode,
    ScriptNode,
    UnlessNode,
    WhileNode,
    WorkflowNode,
)
from runkon.engine._node_call import run_call_node
from runkon.engine._node_call_workflow import run_call_workflow_node
from runkon.engine._node_foreach import run_foreach_node
from runkon.engine._node_gate import run_gate_node
from runkon.engine._node_parallel import run_parallel_node
from runkon.engine._node_script import run_script_node
from runkon.engine._state import BlockContext, RunState

NodeRunner = Callable[[RunState, Any, str, int], Awaitable[None]]


def condition_holds(state: RunState, condition: Condition) -> bool:
    """``step.marker``: the latest result of ``step`` has ``marker``; a boolean input:
    its value is ``true`` (any case)."""
    if isinstance(condition, BoolInputCondition):
        return state.inputs.get(condition.input, "").lower() == "true"
    return state.has_marker(condition.step, condition.marker)


async def execute_nodes(
    state: RunState,
    nodes: Sequence[WorkflowNode],
    path: str,
    iteration: int,
    *,
    respect_fail_fast: bool = True,
) -> None:
    """Run ``nodes`` in order.

    After a failure (with fail-fast) the remaining nodes are skipped, except nested
    ``always`` blocks, which still run. After a cancellation, the remaining ``always``
    blocks run shielded before the cancellation goes on.
    """
    index = 0
    try:
        for index, node in enumerate(nodes):
            if state.stopped(respect_fail_fast) and not isinstance(node, AlwaysNode):
                continue
            if state.cancel_requested():
                # A cancelled run starts no further step, even when nothing it awaits
                # suspends (an in-memory store, instant executors): deliver it now.
                await anyio.lowlevel.checkpoint()
            await _RUNNERS[type(node)](state, node, f"{path}.{index}", iteration)
    except anyio.get_cancelled_exc_class():
        if not (state.lease_lost or state.shutdown):
            with anyio.CancelScope(shield=True) as shield:
                state.always_scopes = (*state.always_scopes, shield)
                try:
                    for later, node in enumerate(nodes[index + 1 :], start=index + 1):
                        if isinstance(node, AlwaysNode):
                            await run_node(state, node, f"{path}.{later}", iteration)
                finally:
                    state.always_scopes = tuple(s for s in state.always_scopes if s is not shield)
        raise


async def run_node(state: RunState, node: WorkflowNode, path: str, iteration: int) -> None:
    runner = _RUNNERS.get(type(node))
    if runner is None:  # pragma: no cover - every node type is registered below
        raise TypeError(f"no runner for {type(node).__name__}")
    await runner(state, node, path, iteration)


async def _run_if(state: RunState, node: IfNode | UnlessNode, path: str, iteration: int) -> None:
    holds = condition_holds(state, node.condition)
    if holds == isinstance(node, IfNode):
        await execute_nodes(state, node.body, path, iteration)


async def _run_do(state: RunState, node: DoNode, path: str, iteration: int) -> None:
    outer = state.block
    state.block = BlockContext(
        output=node.output or outer.output, snippets=outer.snippets + node.snippets
    )
    try:
        await execute_nodes(state, node.body, path, iteration)
    finally:
        state.block = outer


async def _run_always(state: RunState, node: AlwaysNode, path: str, iteration: int) -> None:
    failed, error = state.failed, state.error
    await execute_nodes(state, node.body, path, iteration, respect_fail_fast=False)
    if failed:  # an always block never turns a failure into a success
        state.failed, state.error = failed, error


def _stuck(state: RunState, node: WhileNode | DoWhileNode, history: list[frozenset[str]]) -> bool:
    """Record the loop step's marker set; True when the last ``stuck_after`` sets are equal."""
    result = state.results.get(node.step)
    history.append(frozenset(result.markers) if result is not None else frozenset())
    window = node.stuck_after
    return window is not None and len(history) >= window and len(set(history[-window:])) == 1


def _loop_error(state: RunState, node: WhileNode | DoWhileNode, keyword: str, what: str) -> None:
    state.fail(None, f"{keyword} {node.step}.{node.marker} {what}")


async def _run_while(state: RunState, node: WhileNode, path: str, iteration: int) -> None:
    history: list[frozenset[str]] = []
    loop = 0
    while state.has_marker(node.step, node.marker):
        if loop >= node.max_iterations:
            if node.on_max_iter == "fail":
                _loop_error(state, node, "while", f"reached max_iterations ({node.max_iterations})")
            return
        await execute_nodes(state, node.body, f"{path}#{loop}", loop)
        if state.stopped():
            return
        if _stuck(state, node, history):
            _loop_error(
                state,
                node,
                "while",
                f"stuck after {node.stuck_after} iterations with identical markers",
            )
            return
        loop += 1


async def _run_do_while(state: RunState, node: DoWhileNode, path: str, iteration: int) -> None:
    history: list[frozenset[str]] = []
    loop = 0
    while True:
        if loop >= node.max_iterations:
            if node.on_max_iter == "fail":
                _loop_error(
                    state, node, "do-while", f"reached max_iterations ({node.max_iterations})"
                )
            return
        await execute_nodes(state, node.body, f"{path}#{loop}", loop)
        if state.stopped():
            return
        if not state.has_marker(node.step, node.marker):
            return  # the exit condition comes before stuck detection
        if _stuck(state, node, history):
            _loop_error(
                state,
                node,
                "do-while",
                f"stuck after {node.stuck_after} iterations with identical markers",
            )
            return
        loop += 1


_RUNNERS: dict[type, NodeRunner] = {
    CallNode: run_call_node,
    IfNode: _run_if,
    UnlessNode: _run_if,
    DoNode: _run_do,
    AlwaysNode: _run_always,
    WhileNode: _run_while,
    DoWhileNode: _run_do_while,
    ScriptNode: run_script_node,
    ParallelNode: run_parallel_node,
    GateNode: run_gate_node,
    CallWorkflowNode: run_call_workflow_node,
    ForEachNode: run_foreach_node,
}
