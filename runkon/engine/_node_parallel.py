"""``parallel { call a  call b ... }``: the calls run concurrently in one task group.

- A call whose ``if = step.marker`` is false gets a ``skipped`` row and does not count
  toward ``min_success`` either way.
- ``min_success`` defaults to every call that runs; fewer successes fail the block.
- With ``fail_fast`` (the default) the first call that fails for good cancels the
  siblings still running — their executors' ``cancel`` hooks are called and their rows
  record the interruption.
- Calls that completed before a resume are restored and count as successes.
"""

from __future__ import annotations

import uuid

import anyio

from runkon.dsl import ParallelCall, ParallelNode
from runkon.engine._node_call import CallSpec, run_call, step_key
from runkon.engine._state import RunState, event
from runkon.events import EventType
from runkon.persistence import StepRole, StepStatus, StepUpdate


def _spec(node: ParallelNode, call: ParallelCall) -> CallSpec:
    return CallSpec(
        agent=call.agent,
        retries=call.retries,
        output=call.output or node.output,
        snippets=node.snippets + call.snippets,
    )


async def run_parallel_node(state: RunState, node: ParallelNode, path: str, iteration: int) -> None:
    group_id = uuid.uuid4().hex
    runnable: list[tuple[int, ParallelCall, int]] = []
    skipped = 0
    for index, call in enumerate(node.calls):
        position = state.next_position()
        if call.condition is not None and not state.has_marker(
            call.condition.step, call.condition.marker
        ):
            await _record_condition_skip(
                state, call, f"{path}/{index}", position, iteration, group_id
            )
            skipped += 1
            continue
        runnable.append((index, call, position))

    successes = 0
    failures = 0
    required = node.min_success if node.min_success is not None else len(runnable)

    async def branch(index: int, call: ParallelCall, position: int) -> None:
        nonlocal successes, failures
        succeeded = await run_call(
            state,
            _spec(node, call),
            f"{path}/{index}",
            iteration,
            position=position,
            parallel_group_id=group_id,
        )
        if succeeded:
            successes += 1
            return
        if state.results.get(call.agent.step_key) is not None and (
            state.results[call.agent.step_key].status == StepStatus.SKIPPED
        ):
            return  # on_fail = continue: neither a success nor a block failure
        failures += 1
        if node.fail_fast and len(runnable) - failures < required:
            tg.cancel_scope.cancel()  # min_success can no longer be met: stop the rest

    # Branch failures are reported by the block, not one by one: collect, then decide.
    failed_before, error_before = state.failed, state.error
    state_fail_fast = state.fail_fast
    state.fail_fast = False
    try:
        async with anyio.create_task_group() as tg:
            for index, call, position in runnable:
                tg.start_soon(branch, index, call, position, name=f"parallel {call.agent.label}")
    finally:
        state.fail_fast = state_fail_fast
    branch_error = state.error if state.failed and not failed_before else None
    state.failed, state.error = failed_before, error_before

    if successes < required:
        reason = branch_error or "a call failed"
        state.fail(
            None,
            f"parallel block: {successes} of {len(runnable)} call(s) succeeded, "
            f"{required} required ({skipped} skipped by condition); first error: {reason}",
        )
    elif failures:
        state.log.info("parallel block met min_success despite failures", successes=successes)


async def _record_condition_skip(
    state: RunState,
    call: ParallelCall,
    path: str,
    position: int,
    iteration: int,
    group_id: str,
) -> None:
    name = call.agent.step_key
    key = step_key(name, path)
    state.record_skipped(name)
    earlier = state.latest(key)
    if earlier is not None and earlier.status == StepStatus.SKIPPED:
        return  # recorded before a resume
    assert call.condition is not None
    reason = f"skipped: {call.condition.step}.{call.condition.marker} not emitted"
    step = await state.insert_step(
        name,
        key,
        role=StepRole.AGENT,
        kind="call",
        position=position,
        iteration=iteration,
        status=StepStatus.PENDING,
        parallel_group_id=group_id,
    )
    await state.update_step(
        step.id,
        StepUpdate(StepStatus.SKIPPED, result_text=reason),
        [event(EventType.STEP_SKIPPED, step_name=name, step_id=step.id, reason=reason)],
    )
