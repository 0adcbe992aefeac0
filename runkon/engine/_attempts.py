"""The attempt loop shared by ``call`` and ``script``: rows, retries, timeouts, ``on_fail``.

Each attempt is one step row (``retry_count`` = attempt). A failed attempt with retries
left is recorded ``failed`` (or ``timed_out``) and retried; after the last one:

- ``on_fail = continue`` records the last row ``skipped`` (its error kept in
  ``step_error``), so the run goes on and a resume does not run the step again;
- ``on_fail = <agent>`` runs that agent once (with ``failed_step``, ``failure_reason``
  and ``retry_count`` inputs), then the step fails;
- otherwise the step fails, and with ``fail_fast`` the block stops.

A cancelled attempt is recorded ``failed`` ("cancelled") under a shield, then the
cancellation continues. Lone surrogates in an attempt's output or error (text UTF-8
cannot encode) are replaced by U+FFFD before anything is stored or passed on.

Each attempt's row records the variables it runs with (``inputs``, bounded) and, when
programs ran during the attempt (a script, an executor using ``run_program``), the tail
of their stdout and stderr (``FlowEngine(output_tail_bytes=...)``), whatever the outcome.

An attempt a crash left open is closed (``failed``, "interrupted") and run again in a new
row, except when the caller passes it as ``continue_row``: then that attempt goes on in
its own row (``call workflow`` does so, as its child run is continued, not restarted).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import anyio

from runkon.dsl import AgentRef, OnFail
from runkon.engine._capture import CaptureScope
from runkon.engine._state import RunState, event, extras_of
from runkon.engine._text import valid_data, valid_text
from runkon.errors import StoreError
from runkon.events import EventType
from runkon.persistence import CapturedOutput, StepRecord, StepRole, StepStatus, StepUpdate


@dataclass(slots=True)
class Success:
    """A successful attempt's output."""

    markers: tuple[str, ...] = ()
    context: str = ""
    structured_output: str | None = None
    result_text: str | None = None
    child_run_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Failure:
    """A failed attempt: why, and whether it ran out of time."""

    error: str
    timed_out: bool = False


Outcome = Success | Failure
AttemptFn = Callable[[StepRecord, int, str | None], Awaitable[Outcome]]


def describe_error(exc: BaseException) -> str:
    text = valid_text(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def valid_outcome(outcome: Outcome) -> Outcome:
    """The attempt's outcome with lone surrogates in its text replaced by U+FFFD (see
    ``runkon.engine._text``): what executors and scripts return is stored as given
    otherwise, and a step never fails on it."""
    if isinstance(outcome, Failure):
        return Failure(valid_text(outcome.error), outcome.timed_out)
    structured = outcome.structured_output
    return Success(
        markers=tuple(valid_text(marker) for marker in outcome.markers),
        context=valid_text(outcome.context),
        structured_output=None if structured is None else valid_text(structured),
        result_text=None if outcome.result_text is None else valid_text(outcome.result_text),
        child_run_id=outcome.child_run_id,
        metadata=valid_data(dict(outcome.metadata)),
    )


async def mark_cancelled(
    state: RunState,
    step: StepRecord,
    what: str = "cancelled",
    output: CapturedOutput | None = None,
) -> None:
    """Record an interrupted step as failed; never raises (the run is stopping anyway)."""
    with anyio.CancelScope(shield=True):
        try:
            await state.update_step(
                step.id,
                StepUpdate(StepStatus.FAILED, result_text=what, step_error=what, output=output),
            )
        except StoreError as exc:
            state.log.debug("could not record cancelled step", step_id=step.id, error=str(exc))


INTERRUPTED = "interrupted: the engine stopped before this attempt finished; it ran again"
"""The error of a row :func:`close_interrupted` closed."""


async def close_interrupted(state: RunState, step: StepRecord) -> None:
    """Close a row an engine stop or crash left open; the step runs again in a new row."""
    await state.update_step(
        step.id, StepUpdate(StepStatus.FAILED, result_text=INTERRUPTED, step_error=INTERRUPTED)
    )


async def run_attempts(
    state: RunState,
    *,
    name: str,
    key: str,
    kind: str,
    position: int,
    iteration: int,
    retries: int,
    on_fail: OnFail | None,
    attempt_fn: AttemptFn,
    on_fail_agent: Callable[[AgentRef, str, int], Awaitable[None]] | None = None,
    parallel_group_id: str | None = None,
    role: StepRole = StepRole.AGENT,
    result_name: str | None = None,
    inputs: Callable[[], Mapping[str, str]] | None = None,
    continue_row: StepRecord | None = None,
) -> bool:
    """Run attempts until one succeeds or none are left. Returns True on success.

    ``name`` is the step's stored name; ``result_name`` (default: ``name``) is the name
    conditions use for its result. ``inputs`` gives the variables an attempt runs with,
    as recorded on its row (bounded by the caller). ``continue_row``: an attempt row a
    crash left open, to go on with (same row, same attempt number) instead of closing it.
    """
    result_name = result_name or name
    retry_error: str | None = None
    first = 0
    if continue_row is not None:
        first = min(continue_row.retry_count, retries)
    else:
        earlier = state.latest(key)
        if earlier is not None and not earlier.is_terminal:
            await close_interrupted(state, earlier)
    for attempt in range(first, retries + 1):
        if continue_row is not None:
            step, continue_row = continue_row, None
        else:
            step = await state.insert_step(
                name,
                key,
                role=role,
                kind=kind,
                position=position,
                iteration=iteration,
                attempt=attempt,
                parallel_group_id=parallel_group_id,
                inputs=None if inputs is None else inputs(),
                events=[
                    event(
                        EventType.STEP_STARTED,
                        step_name=name,
                        kind=kind,
                        attempt=attempt,
                        iteration=iteration,
                    )
                ],
            )
        began = time.monotonic()
        with CaptureScope(state.services.output_tail_bytes) as capture:
            try:
                outcome = await attempt_fn(step, attempt, retry_error)
            except anyio.get_cancelled_exc_class():
                if not (state.shutdown or state.lease_lost):  # a shutdown leaves it resumable
                    output = None if capture is None else capture.result()
                    await mark_cancelled(state, step, output=output)
                raise
        output = None if capture is None else capture.result()
        outcome = valid_outcome(outcome)
        if isinstance(outcome, Success):
            await state.update_step(
                step.id,
                StepUpdate(
                    StepStatus.COMPLETED,
                    child_run_id=outcome.child_run_id,
                    result_text=outcome.result_text,
                    context_out=outcome.context,
                    markers_out=outcome.markers,
                    retry_count=attempt,
                    structured_output=outcome.structured_output,
                    output=output,
                ),
                [
                    event(
                        EventType.STEP_COMPLETED,
                        step_name=name,
                        step_id=step.id,
                        markers=list(outcome.markers),
                        duration_ms=int((time.monotonic() - began) * 1000),
                    )
                ],
            )
            state.record_success(
                result_name,
                iteration,
                markers=outcome.markers,
                context=outcome.context,
                structured_output=outcome.structured_output,
                result_text=outcome.result_text,
                child_run_id=outcome.child_run_id,
                extras=extras_of(outcome.structured_output),
                metadata=outcome.metadata,
            )
            return True
        retry_error = outcome.error
        status = StepStatus.TIMED_OUT if outcome.timed_out else StepStatus.FAILED
        if attempt < retries:
            await state.update_step(
                step.id,
                StepUpdate(
                    status, result_text=outcome.error, step_error=outcome.error, output=output
                ),
                [
                    event(
                        EventType.STEP_RETRYING,
                        step_name=name,
                        step_id=step.id,
                        attempt=attempt + 1,
                        error=outcome.error,
                    )
                ],
            )
            continue
        failure = event(
            EventType.STEP_FAILED,
            step_name=name,
            step_id=step.id,
            error=outcome.error,
            attempt=attempt,
            timed_out=outcome.timed_out,
        )
        if on_fail == "continue":
            await state.update_step(
                step.id,
                StepUpdate(
                    StepStatus.SKIPPED,
                    result_text=f"failed, continuing (on_fail = continue): {outcome.error}",
                    step_error=outcome.error,
                    output=output,
                ),
                [
                    failure,
                    event(
                        EventType.STEP_SKIPPED,
                        step_name=name,
                        step_id=step.id,
                        reason="on_fail = continue",
                    ),
                ],
            )
            state.record_skipped(result_name)
            return False
        await state.update_step(
            step.id,
            StepUpdate(status, result_text=outcome.error, step_error=outcome.error, output=output),
            [failure],
        )
        if isinstance(on_fail, AgentRef) and on_fail_agent is not None:
            await on_fail_agent(on_fail, outcome.error, attempt)
        attempts = retries + 1
        state.fail(
            result_name,
            f"step {name!r} failed after {attempts} attempt{'s' if attempts > 1 else ''}: "
            f"{outcome.error}",
        )
    return False
