"""The state of one executing run: its results, variables, resume map and store writes.

Every store write a run makes goes through :class:`RunState`, which attaches the run's
lease generation (fencing) and the events describing the change (recorded in the same
transaction, fanned out after commit by the engine's store listener).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from runkon._log import get_logger
from runkon.dsl import WorkflowDef
from runkon.engine._text import has_surrogate, valid_data, valid_text
from runkon.engine._variables import ContextEntry, RunVariables
from runkon.errors import StoreError
from runkon.events import EventType
from runkon.persistence import (
    NewEvent,
    NewStep,
    RunRecord,
    StepRecord,
    StepRole,
    StepStatus,
    StepUpdate,
)

if TYPE_CHECKING:
    from runkon.engine._registry import ActionRegistry
    from runkon.engine._services import EngineServices

METRIC_KEYS = ("cost_usd", "num_turns", "duration_ms", "input_tokens", "output_tokens")


@dataclass(slots=True)
class StepResult:
    """The latest outcome of a step name, as conditions (``if step.marker``) see it."""

    step_name: str
    status: StepStatus
    markers: tuple[str, ...] = ()
    context: str = ""
    structured_output: str | None = None
    result_text: str | None = None
    child_run_id: str | None = None


@dataclass(slots=True)
class Metrics:
    """Totals accumulated from steps' ``metadata``."""

    cost_usd: float = 0.0
    turns: int = 0
    duration_ms: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, metadata: Mapping[str, str]) -> None:
        for key in METRIC_KEYS:
            raw = metadata.get(key)
            if raw is None:
                continue
            try:
                value = float(raw)
            except ValueError:
                get_logger("runkon.engine").warning(
                    "non-numeric metric ignored", key=key, value=raw
                )
                continue
            if key == "cost_usd":
                self.cost_usd += value
            elif key == "num_turns":
                self.turns += int(value)
            elif key == "duration_ms":
                self.duration_ms += int(value)
            elif key == "input_tokens":
                self.input_tokens += int(value)
            else:
                self.output_tokens += int(value)


def extras_of(structured_output: str | None) -> dict[str, Any]:
    """The extra top-level fields of a FLOW_OUTPUT-shaped structured output (they become
    ``{{variables}}`` of later steps)."""
    if not structured_output or not structured_output.lstrip().startswith("{"):
        return {}
    try:
        data = json.loads(structured_output)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    extras = {k: v for k, v in data.items() if k not in ("markers", "context")}
    return valid_data(extras)  # type: ignore[no-any-return]  # JSON escapes of surrogates


def event(type: EventType, **data: Any) -> NewEvent:
    """A :class:`NewEvent` of ``type`` with ``data`` (``None`` values dropped, lone
    surrogates in its text replaced); the store keeps ``type`` as its plain string."""
    return NewEvent(
        type.value, valid_data({key: value for key, value in data.items() if value is not None})
    )


@dataclass(frozen=True, slots=True)
class BlockContext:
    """``output``/``with`` lent to calls by an enclosing ``do`` block."""

    output: str | None = None
    snippets: tuple[str, ...] = ()


NO_BLOCK = BlockContext()


@dataclass(eq=False)
class RunState:
    """Everything one run's execution reads and writes.

    Attributes:
        services: the engine's registries and store.
        run: the run's record as created or resumed.
        workflow: the definition being executed (the run's snapshot).
        generation: the lease generation every write carries.
        inputs: the run's inputs, defaults applied.
        depth: 0 for a top-level run, +1 per ``call workflow`` / ``foreach`` level.
        dry_run: gates auto-approve, scripts do not run, calls get ``dry_run = True``.
        fail_fast: stop at the first failed step (the default).
        working_dir: the absolute directory the run's scripts and programs run in
            (kept with the run, so a resume elsewhere runs them there too).
        actions: the run's own executors (``FlowEngine(run_actions=...)`` on resume),
            or None for the engine's.
    """

    services: EngineServices
    run: RunRecord
    workflow: WorkflowDef
    generation: int
    inputs: dict[str, str]
    depth: int = 0
    dry_run: bool = False
    fail_fast: bool = True
    working_dir: Path = field(default_factory=Path.cwd)  # the engine always passes it
    actions: ActionRegistry | None = None  # this run's executors, if not the engine's
    resumed: bool = False
    as_identity: str | None = None
    parent: RunState | None = None
    results: dict[str, StepResult] = field(default_factory=dict)
    failed: bool = False
    error: str | None = None
    gate_feedback: str | None = None
    gate_selections: tuple[str, ...] = ()
    position: int = 0
    block: BlockContext = NO_BLOCK
    metrics: Metrics | None = None  # created by the first step reporting metrics
    cancel_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    always_scopes: tuple[anyio.CancelScope, ...] = ()
    cancel_reason: str | None = None
    lease_lost: bool = False
    shutdown: bool = False
    started_at: float = field(default_factory=time.monotonic)
    skipped_on_resume: int = 0
    _history: dict[str, list[StepRecord]] | None = None  # resume only
    vars: RunVariables = field(init=False)

    def __post_init__(self) -> None:
        self.vars = RunVariables(
            inputs=self.inputs,
            injected=self.services.injected_variables,
            run_id=self.run.id,
            workflow_name=self.workflow.name,
            dry_run=self.dry_run,
        )
        self._log: Any = None

    @property
    def log(self) -> Any:
        """runkon's ``runkon.engine`` logger bound to this run (created on first use)."""
        if self._log is None:
            self._log = get_logger("runkon.engine").bind(
                run_id=self.run.id, workflow=self.workflow.name
            )
        return self._log

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def store(self) -> Any:
        return self.services.store

    # ----------------------------------------------------------------- resume

    def load_history(self, steps: Iterable[StepRecord]) -> None:
        """Index earlier step records by resume key (oldest first) for resume."""
        history: dict[str, list[StepRecord]] = {}
        for step in steps:
            if step.resume_key:
                history.setdefault(step.resume_key, []).append(step)
        self._history = history

    def latest(self, key: str) -> StepRecord | None:
        """The most recent record of step ``key`` from before this execution, if any."""
        if self._history is None:
            return None
        rows = self._history.get(key)
        return rows[-1] if rows else None

    def history(self, key: str) -> list[StepRecord]:
        """Every record of step ``key`` from before this execution, oldest first."""
        if self._history is None:
            return []
        return list(self._history.get(key, ()))

    def completed(self, key: str) -> StepRecord | None:
        """The record that finished step ``key`` before a resume (completed or skipped)."""
        row = self.latest(key)
        if row is not None and row.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
            return row
        return None

    def completed_count(self) -> int:
        """How many steps had finished before this execution (for ``run_resumed``)."""
        done = (StepStatus.COMPLETED, StepStatus.SKIPPED)
        history = self._history or {}
        return sum(1 for rows in history.values() if rows[-1].status in done)

    async def restore(self, key_name: str, row: StepRecord) -> None:
        """Make a step finished before the resume count as if it had just run, and tell
        event consumers it was skipped."""
        self.skipped_on_resume += 1
        await self.append_events(
            event(
                EventType.STEP_SKIPPED,
                step_name=row.step_name,
                step_id=row.id,
                reason="completed before the resume",
            )
        )
        if row.status == StepStatus.COMPLETED:
            self.record_success(
                key_name,
                row.iteration,
                markers=row.markers_out,
                context=row.context_out or "",
                structured_output=row.structured_output,
                result_text=row.result_text,
                child_run_id=row.child_run_id,
                extras=extras_of(row.structured_output),
            )
        else:
            self.results[key_name] = StepResult(key_name, row.status)

    # ----------------------------------------------------------------- results

    def has_marker(self, step: str, marker: str) -> bool:
        result = self.results.get(step)
        return result is not None and marker in result.markers

    def record_success(
        self,
        key_name: str,
        iteration: int,
        *,
        markers: Sequence[str] = (),
        context: str = "",
        structured_output: str | None = None,
        result_text: str | None = None,
        child_run_id: str | None = None,
        extras: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        markers = tuple(markers)
        self.results[key_name] = StepResult(
            key_name,
            StepStatus.COMPLETED,
            markers,
            context,
            structured_output,
            result_text,
            child_run_id,
        )
        self.vars.record(
            ContextEntry(key_name, iteration, context, markers, structured_output), extras
        )
        if metadata:
            if self.metrics is None:
                self.metrics = Metrics()
            self.metrics.add(metadata)

    def record_skipped(self, key_name: str) -> None:
        self.results[key_name] = StepResult(key_name, StepStatus.SKIPPED)

    def fail(self, key_name: str | None, error: str) -> None:
        """Mark the run failed (the first error is the run's error)."""
        if key_name is not None:
            self.results[key_name] = StepResult(key_name, StepStatus.FAILED, result_text=error)
        self.failed = True
        if self.error is None:
            self.error = valid_text(error)
        self.log.info("step failed", step=key_name, error=error)

    def cancel_requested(self) -> bool:
        """True when this run's scope, or an enclosing run's, has been cancelled."""
        state: RunState | None = self
        while state is not None:
            if state.cancel_scope.cancel_called:
                return True
            state = state.parent
        return False

    def stopped(self, respect_fail_fast: bool = True) -> bool:
        """True when the remaining steps of a block must not run."""
        return respect_fail_fast and self.failed and self.fail_fast

    def next_position(self) -> int:
        self.position += 1
        return self.position

    def set_gate_feedback(self, feedback: str | None, selections: Sequence[str]) -> None:
        """Feedback flows on as ``{{gate_feedback}}``; selections, joined, take precedence.

        The text alone also flows on as ``{{gate_feedback_text}}``, with or without
        selections. Neither is cleared by a later decision that gives none.
        """
        if feedback:
            self.gate_feedback = feedback
            self.vars.set("gate_feedback_text", feedback)
        if selections:
            self.gate_selections = tuple(selections)
            self.gate_feedback = ", ".join(selections)
        if self.gate_feedback is not None:
            self.vars.set("gate_feedback", self.gate_feedback)

    # ----------------------------------------------------------------- store writes

    async def insert_step(
        self,
        name: str,
        key: str,
        *,
        role: StepRole,
        kind: str,
        position: int,
        iteration: int,
        attempt: int = 0,
        status: StepStatus = StepStatus.RUNNING,
        parallel_group_id: str | None = None,
        events: Sequence[NewEvent] = (),
        inputs: Mapping[str, str] | None = None,
    ) -> StepRecord:
        step: StepRecord = await self.store.insert_step(
            NewStep(
                run_id=self.run.id,
                step_name=name,
                role=role,
                position=position,
                iteration=iteration,
                retry_count=attempt,
                status=status,
                resume_key=key,
                parallel_group_id=parallel_group_id,
                kind=kind,
                inputs=valid_data(dict(inputs)) if inputs else {},
            ),
            generation=self.generation,
            events=events,
        )
        return step

    async def update_step(
        self, step_id: str, update: StepUpdate, events: Sequence[NewEvent] = ()
    ) -> StepRecord:
        """Write a change to a step (fenced), its text made storable (see
        ``runkon.engine._text``).

        If the store refuses the change for another reason than the lease or the step's
        state (a ``StoreError``), the step is closed ``failed`` with that reason before the
        error propagates (the run then fails): no row is left ``running``.
        """
        update = _valid_update(update)
        try:
            step: StepRecord = await self.store.update_step(
                step_id, update, generation=self.generation, events=events
            )
        except StoreError:
            raise
        except Exception as exc:
            await self._close_unwritable(step_id, exc)
            raise
        return step

    async def _close_unwritable(self, step_id: str, exc: Exception) -> None:
        reason = valid_text(str(exc))
        what = f"the step's result could not be stored: {type(exc).__name__}: {reason}"
        with anyio.CancelScope(shield=True):
            try:
                await self.store.update_step(
                    step_id,
                    StepUpdate(StepStatus.FAILED, result_text=what, step_error=what),
                    generation=self.generation,
                )
            except Exception as again:
                self.log.warning("step left unclosed", step_id=step_id, error=str(again))

    async def append_events(self, *events: NewEvent) -> None:
        await self.store.append_events(self.run.id, events, generation=self.generation)

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)


def _valid_update(update: StepUpdate) -> StepUpdate:
    """``update`` with lone surrogates in its text replaced (itself when it has none)."""
    texts = (update.result_text, update.context_out, update.structured_output, update.step_error)
    markers = tuple(update.markers_out or ())
    if not any(text is not None and has_surrogate(text) for text in (*texts, *markers)):
        return update
    return replace(
        update,
        result_text=None if update.result_text is None else valid_text(update.result_text),
        context_out=None if update.context_out is None else valid_text(update.context_out),
        structured_output=None
        if update.structured_output is None
        else valid_text(update.structured_output),
        step_error=None if update.step_error is None else valid_text(update.step_error),
        markers_out=None if update.markers_out is None else [valid_text(m) for m in markers],
    )
