"""``gate <name> { ... }``: quality gates decide at once; every other gate waits.

Waiting (see :mod:`runkon.engine._gates`): the gate opens with an ABSOLUTE deadline and
its options persisted, the run becomes ``waiting``; a decision, the resolver, the deadline
or a cancellation ends the wait. On resume a waiting gate is re-attached with its
original deadline, and a gate decided meanwhile is honoured without waiting.

A decided gate leaves a result for conditions: markers ``approved`` / ``rejected`` /
``timed_out`` plus the selected option values, so ``if deploy.ship`` works.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import anyio

from runkon.dsl import GateNode, StaticGateOptions, StepRefGateOptions
from runkon.engine._gates import wait_for_decision
from runkon.engine._node_call import step_key
from runkon.engine._protocols import GateRequest
from runkon.engine._state import RunState, event
from runkon.engine._variables import substitute
from runkon.errors import StoreError
from runkon.events import EventType
from runkon.persistence import (
    GateDecision,
    GateOption,
    GateRecord,
    NewGate,
    StepRole,
    StepStatus,
    StepUpdate,
)


async def run_gate_node(state: RunState, node: GateNode, path: str, iteration: int) -> None:
    key = step_key(node.name, path)
    position = state.next_position()
    if node.quality_gate is not None:
        await _quality_gate(state, node, key, position, iteration)
        return
    earlier = state.latest(key)
    if earlier is not None and earlier.role == StepRole.GATE:
        gate = await state.store.get_gate(earlier.id)
        if gate.status == StepStatus.WAITING:
            state.skipped_on_resume += 1
            await _wait_and_apply(state, node, gate.step_id, gate.deadline_at, iteration)
            return
        if gate.decision is not None:
            state.skipped_on_resume += 1
            await state.append_events(
                event(
                    EventType.STEP_SKIPPED,
                    step_name=node.name,
                    step_id=gate.step_id,
                    reason="decided before the resume",
                )
            )
            _apply(state, node, gate, iteration)
            return
    if state.dry_run:
        await _dry_run(state, node, key, position, iteration)
        return
    opened = await _open(state, node, key, position, iteration)
    if opened is not None:
        # Only the step id and the deadline stay alive while the gate waits: with
        # 100,000 gates waiting, every object held here counts (memory, GC time).
        await _wait_and_apply(state, node, *opened, iteration)


async def _open(
    state: RunState, node: GateNode, key: str, position: int, iteration: int
) -> tuple[str, datetime] | None:
    """Open the gate (step ``waiting``, run ``waiting``, deadline persisted); None if its
    options cannot be resolved (the step is then recorded failed)."""
    try:
        options = _options(state, node)
    except ValueError as exc:
        await _fail_before_open(state, node, key, position, iteration, str(exc))
        return None
    prompt = None if node.prompt is None else substitute(node.prompt, state.vars.snapshot())
    deadline_at = datetime.now(UTC) + timedelta(seconds=node.timeout)
    gate = await state.store.open_gate(
        NewGate(
            run_id=state.run_id,
            step_name=node.name,
            gate_type=node.gate_type,
            position=position,
            iteration=iteration,
            resume_key=key,
            prompt=prompt,
            options=options,
            min_approvals=node.min_approvals,
            deadline_at=deadline_at,
            timeout_secs=node.timeout,
            select=node.select,
            allow_none=node.allow_none,
        ),
        generation=state.generation,
        events=[
            event(
                EventType.GATE_WAITING,
                gate_name=node.name,
                gate_type=node.gate_type,
                prompt=prompt,
                options=[option.value for option in options],
                select=node.select,
                allow_none=node.allow_none,
                deadline_at=deadline_at.isoformat(),
                min_approvals=node.min_approvals,
            )
        ],
    )
    return gate.step_id, deadline_at


async def _wait_and_apply(
    state: RunState,
    node: GateNode,
    step_id: str,
    deadline_at: datetime | None,
    iteration: int,
) -> None:
    resolver = state.services.gate_resolvers.get(node.gate_type)
    request = None
    if resolver is not None:
        gate = await state.store.get_gate(step_id)
        request = GateRequest(
            run_id=state.run_id,
            workflow_name=state.workflow.name,
            step_id=gate.step_id,
            gate_name=node.name,
            gate_type=node.gate_type,
            prompt=gate.prompt,
            options=tuple(option.value for option in gate.options),
            min_approvals=gate.min_approvals,
            approval_mode=node.approval_mode,
            deadline_at=gate.deadline_at,
            as_identity=node.as_identity or state.as_identity or state.services.default_as_identity,
            inputs=state.vars.snapshot(),
        )
        del gate
    try:
        decided = await wait_for_decision(state, step_id, deadline_at, resolver, request)
    except anyio.get_cancelled_exc_class():
        if not (state.shutdown or state.lease_lost):
            await _close_cancelled(state, step_id)
        raise
    _apply(state, node, decided, iteration)


async def _close_cancelled(state: RunState, step_id: str) -> None:
    """A cancelled run's gate stops waiting, resolved ``cancelled`` (nobody rejected
    it): it leaves the inbox, later decisions are refused as already cancelled."""
    with anyio.CancelScope(shield=True):
        try:
            run = await state.store.get_run(state.run_id)
            await state.store.cancel_gate(
                step_id,
                generation=state.generation,
                by=run.cancel_requested_by,
                reason=state.cancel_reason or run.cancel_reason,
            )
        except StoreError as exc:
            state.log.debug("could not close cancelled gate", error=str(exc))


def _apply(state: RunState, node: GateNode, gate: GateRecord, iteration: int) -> None:
    """Turn a decided gate into a step result (and feedback for later steps)."""
    selections = tuple(gate.selections or ())
    if gate.decision == GateDecision.APPROVED:
        state.set_gate_feedback(gate.feedback, selections)
        state.record_success(
            node.name,
            iteration,
            markers=("approved", *selections),
            context=gate.feedback or "",
            result_text=f"approved by {gate.decided_by}",
        )
        return
    if gate.decision == GateDecision.TIMED_OUT:
        if node.on_timeout == "continue":
            state.record_success(
                node.name, iteration, markers=("timed_out",), result_text="gate timed out"
            )
            return
        state.fail(node.name, f"gate {node.name!r} timed out")
        state.results[node.name].markers = ("timed_out",)
        return
    if gate.feedback:
        state.set_gate_feedback(gate.feedback, ())
    reason = f": {gate.feedback}" if gate.feedback else ""
    state.fail(node.name, f"gate {node.name!r} rejected by {gate.decided_by}{reason}")
    state.results[node.name].markers = ("rejected",)


def _options(state: RunState, node: GateNode) -> list[GateOption]:
    """The gate's options, resolved now (a ``step.field`` reference reads that step's
    structured output: a JSON object of value -> label, or a list of values).

    Raises:
        ValueError: the reference cannot be resolved.
    """
    if node.options is None:
        return []
    if isinstance(node.options, StaticGateOptions):
        return [GateOption(value, label) for value, label in node.options.values.items()]
    assert isinstance(node.options, StepRefGateOptions)
    ref = node.options
    where = f"options of gate {node.name!r} reference {ref.step}.{ref.field}"
    result = state.results.get(ref.step)
    if result is None:
        raise ValueError(f"{where}, but step {ref.step!r} has no result yet")
    if result.structured_output is None:
        raise ValueError(f"{where}, but step {ref.step!r} has no structured output")
    try:
        data = json.loads(result.structured_output)
    except ValueError as exc:
        raise ValueError(f"{where}, but its structured output is not JSON: {exc}") from None
    value = data.get(ref.field) if isinstance(data, dict) else None
    if isinstance(value, dict):
        options = [GateOption(k, v) for k, v in value.items() if isinstance(v, str)]
    elif isinstance(value, list):
        options = [GateOption(v, v) for v in dict.fromkeys(value) if isinstance(v, str)]
    else:
        raise ValueError(f"{where}, but field {ref.field!r} is not a JSON object or list")
    if not options:
        raise ValueError(f"{where}, but it holds no string options")
    return options


async def _fail_before_open(
    state: RunState, node: GateNode, key: str, position: int, iteration: int, error: str
) -> None:
    """Record a gate that cannot open as failed — never left ``waiting`` (unlike
    runkon-flow, §7 item 29)."""
    step = await state.insert_step(
        node.name,
        key,
        role=StepRole.GATE,
        kind="gate",
        position=position,
        iteration=iteration,
        status=StepStatus.PENDING,
    )
    await state.update_step(
        step.id,
        StepUpdate(StepStatus.FAILED, result_text=error, step_error=error),
        [event(EventType.STEP_FAILED, step_name=node.name, step_id=step.id, error=error)],
    )
    state.fail(node.name, error)


async def _dry_run(
    state: RunState, node: GateNode, key: str, position: int, iteration: int
) -> None:
    step = await state.insert_step(
        node.name,
        key,
        role=StepRole.GATE,
        kind="gate",
        position=position,
        iteration=iteration,
        status=StepStatus.PENDING,
    )
    await state.update_step(
        step.id,
        StepUpdate(
            StepStatus.COMPLETED, result_text="dry-run: auto-approved", markers_out=("approved",)
        ),
        [
            event(
                EventType.STEP_COMPLETED, step_name=node.name, step_id=step.id, markers=["approved"]
            )
        ],
    )
    state.record_success(
        node.name, iteration, markers=("approved",), result_text="dry-run: auto-approved"
    )


def _confidence(state: RunState, source: str) -> tuple[int, str]:
    """The source step's ``confidence`` (0..100), or 0 and the reason it defaulted."""
    result = state.results[source]
    if not result.structured_output:
        return 0, f"source step {source!r} has no structured output"
    try:
        data = json.loads(result.structured_output)
    except ValueError as exc:
        return 0, f"failed to parse structured output from {source!r}: {exc}"
    value = data.get("confidence") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0, f"'confidence' missing or not a number in structured output from {source!r}"
    return min(int(value), 100), ""


async def _quality_gate(
    state: RunState, node: GateNode, key: str, position: int, iteration: int
) -> None:
    config = node.quality_gate
    assert config is not None
    done = state.completed(key)
    if done is not None:
        await state.restore(node.name, done)
        return
    step = await state.insert_step(
        node.name,
        key,
        role=StepRole.GATE,
        kind="quality_gate",
        position=position,
        iteration=iteration,
        status=StepStatus.RUNNING,
    )
    if config.source not in state.results:
        error = f"quality gate {node.name!r}: source step {config.source!r} has no result"
        await state.update_step(
            step.id,
            StepUpdate(StepStatus.FAILED, result_text=error, step_error=error),
            [event(EventType.STEP_FAILED, step_name=node.name, step_id=step.id, error=error)],
        )
        state.fail(node.name, error)
        return
    confidence, note = _confidence(state, config.source)
    passed = confidence >= config.threshold
    text = (
        f"quality_gate: confidence={confidence}, threshold={config.threshold}, "
        f"result={'pass' if passed else 'fail'}"
    )
    if note:
        text += f" (confidence defaulted to 0: {note})"
    markers = ("passed",) if passed else ("failed",)
    if not passed and config.on_fail == "fail":
        error = (
            f"quality gate {node.name!r} failed: confidence {confidence} is below "
            f"threshold {config.threshold}"
        )
        await state.update_step(
            step.id,
            StepUpdate(StepStatus.FAILED, result_text=text, step_error=error, markers_out=markers),
            [event(EventType.STEP_FAILED, step_name=node.name, step_id=step.id, error=error)],
        )
        state.fail(node.name, error)
        state.results[node.name].markers = markers
        return
    if not passed:
        text += " (on_fail=continue, proceeding)"
    await state.update_step(
        step.id,
        StepUpdate(StepStatus.COMPLETED, result_text=text, markers_out=markers),
        [
            event(
                EventType.STEP_COMPLETED,
                step_name=node.name,
                step_id=step.id,
                markers=list(markers),
            )
        ],
    )
    state.record_success(node.name, iteration, markers=markers, result_text=text)
