"""``call workflow <name> { inputs { ... } }``: a child run with its own record.

The child runs in the parent's task, so cancelling the parent cancels it. On success the
child's completed steps bubble up (``if review-agg.has_findings`` works after
``call workflow review``), and the step takes the markers and context of the child's last
completed step. A child left unfinished by a crash is resumed, not started again: the
attempt row the crash left open goes on (it keeps the child's run id), so any number of
crashes, at any depth, continue the same child run (see :func:`interrupted_attempt`).
"""

from __future__ import annotations

import anyio

from runkon.dsl import MAX_WORKFLOW_DEPTH, CallWorkflowNode, WorkflowDef
from runkon.engine._attempts import (
    INTERRUPTED,
    Failure,
    Outcome,
    Success,
    describe_error,
    run_attempts,
)
from runkon.engine._node_call import on_fail_runner, step_key
from runkon.engine._services import ChildRequest
from runkon.engine._state import RunState, StepResult
from runkon.engine._variables import ContextEntry, substitute
from runkon.errors import DslError, ExecutionError
from runkon.persistence import StepRecord, StepRole, StepStatus, StepUpdate


async def resolve_workflow(state: RunState, name: str) -> WorkflowDef:
    """The child definition, via the engine's resolver (in a worker thread: it may read
    files).

    Raises:
        ExecutionError: no resolver is configured, or it cannot load ``name``.
    """
    resolver = state.services.workflows
    if resolver is None:
        raise ExecutionError(
            f"cannot run workflow {name!r}: the engine has no workflow resolver; pass "
            "workflows=DirectoryWorkflowResolver(...) to FlowEngine"
        )
    try:
        return await anyio.to_thread.run_sync(resolver.resolve, name)
    except Exception as exc:  # a host's resolver may fail in any way (I/O, network share)
        raise ExecutionError(
            f"workflow {name!r} could not be loaded: {describe_error(exc)}"
        ) from exc


async def bubble_up(state: RunState, child_run_id: str) -> tuple[tuple[str, ...], str]:
    """Copy the child's completed steps into the parent's results; return the markers
    and context of its last completed step."""
    steps = await state.store.get_steps(child_run_id)
    last: StepRecord | None = None
    for step in steps:
        if step.status != StepStatus.COMPLETED:
            continue
        name = step.step_name.removeprefix("workflow:")
        state.results[name] = StepResult(
            name,
            StepStatus.COMPLETED,
            step.markers_out,
            step.context_out or "",
            step.structured_output,
            step.result_text,
            step.child_run_id,
        )
        state.vars.contexts.append(
            ContextEntry(
                name,
                step.iteration,
                step.context_out or "",
                step.markers_out,
                step.structured_output,
            )
        )
        last = step
    if last is None:
        return (), ""
    return last.markers_out, last.context_out or ""


async def interrupted_attempt(state: RunState, key: str) -> tuple[StepRecord | None, str | None]:
    """The attempt row of step ``key`` a crash left open, and the child run to continue.

    The child's id is on the row once the child exists; a crash between creating the
    child run and recording its id leaves it findable by its ``parent_step_id``. Rows
    closed as interrupted by earlier versions (which ran the attempt again in a new row
    without the child's id) are followed back too.
    """
    rows = state.history(key)
    if not rows or rows[-1].is_terminal:
        return None, None
    chain = [rows[-1]]
    for row in reversed(rows[:-1]):
        if row.step_error != INTERRUPTED:
            break
        chain.append(row)
    for row in chain:
        if row.child_run_id:
            return rows[-1], row.child_run_id
    ids = {row.id for row in chain}
    for run in await state.store.list_runs(parent_run_id=state.run_id):  # newest first
        if run.parent_step_id in ids:
            return rows[-1], run.id
    return rows[-1], None


async def run_call_workflow_node(
    state: RunState, node: CallWorkflowNode, path: str, iteration: int
) -> None:
    name = node.workflow
    stored_name = f"workflow:{name}"
    key = step_key(stored_name, path)
    position = state.next_position()
    done = state.completed(key)
    if done is not None:
        if done.child_run_id and done.status == StepStatus.COMPLETED:
            await bubble_up(state, done.child_run_id)
        await state.restore(name, done)  # after the bubbling: its own result wins
        return
    interrupted, resumable = await interrupted_attempt(state, key)

    async def attempt(step: StepRecord, attempt_no: int, retry_error: str | None) -> Outcome:
        nonlocal resumable
        if state.depth + 1 > MAX_WORKFLOW_DEPTH:
            return Failure(
                f"workflow nesting depth exceeds the maximum of {MAX_WORKFLOW_DEPTH}: "
                f"{state.workflow.name!r} calling {name!r}"
            )
        try:
            child = await resolve_workflow(state, name)
        except ExecutionError as exc:
            return Failure(str(exc))
        variables = state.vars.snapshot()
        inputs = {k: substitute(v, variables, keep_unresolved=True) for k, v in node.inputs.items()}

        async def started(child_run_id: str) -> None:
            if step.child_run_id == child_run_id:
                return  # the continued row already names it
            await state.update_step(
                step.id, StepUpdate(StepStatus.RUNNING, child_run_id=child_run_id)
            )

        request = ChildRequest(
            child, inputs, step.id, iteration, resumable, started, node.as_identity
        )
        resumable = None
        try:
            result = await state.services.run_child(state, request)
        except ExecutionError as exc:
            return Failure(f"sub-workflow {name!r}: {exc}")
        except DslError as exc:
            return Failure(f"sub-workflow {name!r}: {describe_error(exc)}")
        if not result.succeeded:
            return Failure(
                f"sub-workflow {name!r} {result.status}: {result.error or 'no error given'}"
            )
        markers, context = await bubble_up(state, result.run_id)
        return Success(
            markers=markers,
            context=context,
            result_text=f"sub-workflow {name!r} completed",
            child_run_id=result.run_id,
        )

    await run_attempts(
        state,
        name=stored_name,
        result_name=name,
        key=key,
        kind="call_workflow",
        position=position,
        iteration=iteration,
        retries=node.retries,
        on_fail=node.on_fail,
        attempt_fn=attempt,
        on_fail_agent=on_fail_runner(state, stored_name, path, iteration),
        role=StepRole.WORKFLOW,
        continue_row=interrupted,
    )
