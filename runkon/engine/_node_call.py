"""``call <agent> { ... }``: one action executor call, with retries, a preempting timeout
and ``on_fail``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from runkon.dsl import AgentRef, CallNode, OnFail, format_duration
from runkon.engine._attempts import Failure, Outcome, Success, describe_error, run_attempts
from runkon.engine._protocols import ActionOutput, ActionParams, StepContext
from runkon.engine._registry import cancel_execution
from runkon.engine._state import RunState
from runkon.engine._variables import recorded_inputs
from runkon.persistence import StepRecord

CANCEL_HOOK_TIMEOUT = 10.0  # seconds an executor's cancel() may take


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What one call needs, whether written as ``call`` or inside ``parallel``."""

    agent: AgentRef
    retries: int = 0
    on_fail: OnFail | None = None
    output: str | None = None
    snippets: tuple[str, ...] = ()
    as_identity: str | None = None
    plugin_dirs: tuple[str, ...] = ()
    timeout: float | None = None
    max_turns: int | None = None


def step_key(name: str, path: str) -> str:
    """A step's resume key: its name and its place in the tree (with loop iterations)."""
    return f"{name}@{path}"


_SPECS: dict[int, tuple[CallNode, CallSpec]] = {}


def _plain_spec(node: CallNode) -> CallSpec:
    """The spec of a call outside any ``do`` block: the same every time, so built once."""
    cached = _SPECS.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    spec = CallSpec(
        agent=node.agent,
        retries=node.retries,
        on_fail=node.on_fail,
        output=node.output,
        snippets=node.snippets,
        as_identity=node.as_identity,
        plugin_dirs=node.plugin_dirs,
        timeout=node.timeout,
        max_turns=node.max_turns,
    )
    if len(_SPECS) > 10_000:
        _SPECS.clear()
    _SPECS[id(node)] = (node, spec)
    return spec


async def run_call_node(state: RunState, node: CallNode, path: str, iteration: int) -> None:
    if state.block.output is None and not state.block.snippets:
        await run_call(state, _plain_spec(node), path, iteration)
        return
    spec = CallSpec(
        agent=node.agent,
        retries=node.retries,
        on_fail=node.on_fail,
        output=node.output or state.block.output,
        snippets=state.block.snippets + node.snippets,
        as_identity=node.as_identity,
        plugin_dirs=node.plugin_dirs,
        timeout=node.timeout,
        max_turns=node.max_turns,
    )
    await run_call(state, spec, path, iteration)


async def run_call(
    state: RunState,
    spec: CallSpec,
    path: str,
    iteration: int,
    *,
    position: int | None = None,
    extra_inputs: dict[str, str] | None = None,
    parallel_group_id: str | None = None,
) -> bool:
    """Run (or, on resume, restore) one call. Returns True when it succeeded."""
    name = spec.agent.step_key
    key = step_key(name, path)
    position = state.next_position() if position is None else position
    done = state.completed(key)
    if done is not None:
        await state.restore(name, done)
        return done.status == "completed"

    async def attempt(step: StepRecord, attempt: int, retry_error: str | None) -> Outcome:
        return await _attempt(state, spec, step, attempt, retry_error, iteration, extra_inputs)

    def inputs() -> dict[str, str]:
        values = state.vars.current()
        return recorded_inputs({**values, **extra_inputs} if extra_inputs else values)

    return await run_attempts(
        state,
        name=name,
        key=key,
        kind="call",
        position=position,
        iteration=iteration,
        retries=spec.retries,
        on_fail=spec.on_fail,
        attempt_fn=attempt,
        on_fail_agent=on_fail_runner(state, name, path, iteration),
        parallel_group_id=parallel_group_id,
        inputs=inputs,
    )


async def _attempt(
    state: RunState,
    spec: CallSpec,
    step: StepRecord,
    attempt: int,
    retry_error: str | None,
    iteration: int,
    extra_inputs: dict[str, str] | None,
) -> Outcome:
    services = state.services
    label = spec.agent.label
    executor = (state.actions or services.actions).get(label)
    if executor is None:
        return Failure(f"no registered ActionExecutor for {label!r} and no fallback configured")
    variables = state.vars.snapshot()
    if extra_inputs:
        variables = variables.with_values(extra_inputs)
    try:
        schema = services.resolve_schema(spec.output)
    except Exception as exc:
        return Failure(f"output schema {spec.output!r} could not be resolved: {exc}")
    ctx = StepContext(
        run_id=state.run_id,
        workflow_name=state.workflow.name,
        step_id=step.id,
        step_name=label,
        step_key=step.resume_key or label,
        attempt=attempt,
        iteration=iteration,
        working_dir=state.working_dir,
        dry_run=state.dry_run,
        parent_run_id=state.run.parent_run_id,
        depth=state.depth,
        timeout=spec.timeout,
    )
    params = ActionParams(
        name=label,
        inputs=variables,
        retries_remaining=spec.retries - attempt,
        retry_error=retry_error,
        snippets=spec.snippets,
        dry_run=state.dry_run,
        gate_feedback=state.gate_feedback,
        gate_selections=state.gate_selections,
        output=spec.output,
        output_schema=schema,
        as_identity=spec.as_identity or state.as_identity or services.default_as_identity,
        plugin_dirs=spec.plugin_dirs,
        max_turns=spec.max_turns,
    )
    timed_out = False
    output: object = None
    try:
        if spec.timeout is None:
            output = await executor.execute(ctx, params)
        else:
            with anyio.move_on_after(spec.timeout) as deadline:
                output = await executor.execute(ctx, params)
            timed_out = deadline.cancelled_caught
    except anyio.get_cancelled_exc_class():
        await _cancel_hook(state, executor, step.id)
        raise
    except Exception as exc:
        state.log.debug("executor raised", step=label, attempt=attempt, error=str(exc))
        return Failure(describe_error(exc))
    if timed_out:
        await _cancel_hook(state, executor, step.id)
        assert spec.timeout is not None
        return Failure(f"timed out after {format_duration(spec.timeout)}", timed_out=True)
    if not isinstance(output, ActionOutput):
        return Failure(
            f"executor for {label!r} returned {type(output).__name__}, not an ActionOutput"
        )
    return checked_output(label, output)


def checked_output(label: str, output: ActionOutput) -> Outcome:
    """The executor's output as a success, or a failure naming what is wrong with it."""
    markers = tuple(output.markers)
    if not all(isinstance(marker, str) for marker in markers):
        return Failure(
            f"executor for {label!r} returned markers that are not all strings: {markers!r}"
        )
    context: object = output.context
    if context is not None and not isinstance(context, str):
        return Failure(f"executor for {label!r} returned a context that is not a string")
    try:
        structured = output.structured_json()
    except (TypeError, ValueError) as exc:
        return Failure(f"executor for {label!r} returned structured output that is not JSON: {exc}")
    metadata = dict(output.metadata)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        return Failure(f"executor for {label!r} returned metadata that is not all strings")
    return Success(
        markers=markers,
        context=output.context or "",
        structured_output=structured,
        result_text=None if output.result_text is None else str(output.result_text),
        child_run_id=output.child_run_id,
        metadata=metadata,
    )


async def _cancel_hook(state: RunState, executor: object, execution_id: str) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_HOOK_TIMEOUT):
        try:
            await cancel_execution(executor, execution_id)
        except Exception as exc:
            state.log.warning("executor cancel hook failed", error=describe_error(exc))


def on_fail_runner(
    state: RunState, failed_step: str, path: str, iteration: int
) -> Callable[[AgentRef, str, int], Awaitable[None]]:
    """The ``on_fail = <agent>`` handler for step ``failed_step`` at ``path``."""

    async def run(agent: AgentRef, error: str, attempt: int) -> None:
        await _run_on_fail_agent(state, agent, failed_step, error, attempt, path, iteration)

    return run


async def _run_on_fail_agent(
    state: RunState,
    agent: AgentRef,
    failed_step: str,
    error: str,
    attempt: int,
    path: str,
    iteration: int,
) -> None:
    """Run ``on_fail = <agent>`` once; its own failure is logged, never raised."""
    recovered_failed, recovered_error = state.failed, state.error
    await run_call(
        state,
        CallSpec(agent=agent),
        f"{path}/on_fail",
        iteration,
        extra_inputs={
            "failed_step": failed_step,
            "failure_reason": error,
            "retry_count": str(attempt),
        },
    )
    # The handler's outcome never changes the verdict on the failed step itself.
    state.failed, state.error = recovered_failed, recovered_error
