"""The HTTP surface's request and response models (pydantic), shared by the FastAPI and
aiohttp integrations so both speak the same JSON and one OpenAPI schema describes them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runkon.persistence import (
    CapturedOutput,
    GateReceipt,
    GateRecord,
    RunRecord,
    StepRecord,
    WaitingGate,
)


class _Model(BaseModel):
    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- requests


def _check_text(value: Any) -> Any:
    """``value`` unchanged if every string in it is encodable text; JSON allows lone
    surrogates (``"\\ud800"``), which no store or page could keep."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "text with a lone surrogate (e.g. \\ud800) is not valid Unicode; send UTF-8 text"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_text(item)
    return value


class _Request(_Model):
    """A request body: every string in it must be valid Unicode (422 otherwise)."""

    _text = field_validator("*", mode="after")(_check_text)


class StartRunRequest(_Request):
    """Start a run of a workflow the server knows by name."""

    workflow: str = Field(min_length=1, description="name of a workflow in the server's catalog")
    inputs: dict[str, str] = Field(default_factory=dict, description="the run's inputs")
    dry_run: bool = False


class DecisionRequest(_Request):
    """Approve or reject a gate. The approver is the authenticated caller."""

    feedback: str | None = Field(default=None, max_length=100_000)
    selections: list[str] | None = Field(
        default=None, description="option values chosen (must be among the gate's options)"
    )


class FeedbackRequest(_Request):
    """Approve a gate with feedback (a ``human_review``'s answer)."""

    feedback: str = Field(min_length=1, max_length=100_000)
    selections: list[str] | None = None


class CancelRequest(_Request):
    """Cancel a run."""

    reason: str | None = Field(default=None, max_length=10_000)


# --------------------------------------------------------------------------- responses


class RunOut(_Model):
    """A run, without its steps.

    ``status`` is the stored status; ``stalled`` is true when the run has not finished
    but no engine drives it (its lease was given back or expired): it waits for a resume.
    """

    id: str
    workflow_name: str
    status: str
    stalled: bool
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None
    inputs: dict[str, str]
    dry_run: bool
    parent_run_id: str | None
    error: str | None
    result_summary: str | None
    blocked_on: dict[str, Any] | None
    cancel_reason: str | None

    @classmethod
    def of(cls, run: RunRecord) -> RunOut:
        return cls(
            id=run.id,
            workflow_name=run.workflow_name,
            status=str(run.status),
            stalled=run.is_stalled(),
            started_at=run.started_at,
            ended_at=run.ended_at,
            duration_ms=run.total_duration_ms,
            inputs=dict(run.inputs),
            dry_run=run.dry_run,
            parent_run_id=run.parent_run_id,
            error=run.error,
            result_summary=run.result_summary,
            blocked_on=dict(run.blocked_on) if run.blocked_on is not None else None,
            cancel_reason=run.cancel_reason,
        )


class AttemptOut(_Model):
    """One attempt of a step (a retried step has several; each is a step of the run)."""

    attempt: int = Field(description="1 for the first attempt, 2 for the first retry, ...")
    step_id: str
    status: str
    error: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, number: int, step: StepRecord) -> AttemptOut:
        return cls(
            attempt=number,
            step_id=step.id,
            status=str(step.status),
            error=step.step_error,
            started_at=step.started_at,
            ended_at=step.ended_at,
            duration_ms=step.duration_ms,
        )


class StepGateOut(_Model):
    """How a gate step was decided (or that it waits)."""

    type: str
    status: str
    decision: str | None
    decided_by: str | None
    selections: list[str]
    feedback: str | None

    @classmethod
    def of(cls, gate: GateRecord) -> StepGateOut:
        return cls(
            type=gate.gate_type,
            status=str(gate.status),
            decision=None if gate.decision is None else str(gate.decision),
            decided_by=gate.decided_by,
            selections=list(gate.selections or ()),
            feedback=gate.feedback,
        )


class StepOut(_Model):
    """One step of a run: what it ran with, what it produced, its attempts.

    ``inputs`` are the variables the step ran with (values over 1000 characters cut,
    those of names containing token, secret, password or key shown as ``<redacted>``);
    ``attempts`` lists every attempt of the same step, this one included. What the step's
    programs wrote is at ``GET /runs/{run_id}/steps/{step_id}/logs``.
    """

    id: str
    name: str
    role: str
    kind: str | None
    status: str
    position: int
    iteration: int
    retry_count: int
    started_at: datetime | None
    ended_at: datetime | None
    markers: list[str]
    result_text: str | None
    error: str | None
    child_run_id: str | None
    gate_type: str | None
    gate_feedback: str | None
    duration_ms: int | None = None
    context_out: str | None = None
    structured_output: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    attempts: list[AttemptOut] = Field(default_factory=list)
    gate: StepGateOut | None = None

    @classmethod
    def of(
        cls,
        step: StepRecord,
        attempts: Sequence[StepRecord] = (),
        gate: GateRecord | None = None,
    ) -> StepOut:
        return cls(
            id=step.id,
            name=step.step_name,
            role=str(step.role),
            kind=step.kind,
            status=str(step.status),
            position=step.position,
            iteration=step.iteration,
            retry_count=step.retry_count,
            started_at=step.started_at,
            ended_at=step.ended_at,
            markers=list(step.markers_out),
            result_text=step.result_text,
            error=step.step_error,
            child_run_id=step.child_run_id,
            gate_type=step.gate_type,
            gate_feedback=step.gate_feedback,
            duration_ms=step.duration_ms,
            context_out=step.context_out,
            structured_output=step.structured_output,
            inputs=dict(step.inputs),
            attempts=[AttemptOut.of(n, row) for n, row in enumerate(attempts or [step], 1)],
            gate=None if gate is None else StepGateOut.of(gate),
        )


class StepLogsOut(_Model):
    """What a step's programs wrote: the END of stdout and of stderr.

    Only ``script`` steps and calls whose executor runs programs have output
    (``captured`` is false otherwise). The engine keeps a bounded tail of each stream
    (``FlowEngine(output_tail_bytes=...)``, 64 KiB by default); ``*_dropped_bytes``
    count the bytes cut from the start, and ``truncated`` says whether any were.
    """

    run_id: str
    step_id: str
    name: str
    status: str
    captured: bool
    stdout: str
    stderr: str
    stdout_dropped_bytes: int
    stderr_dropped_bytes: int
    truncated: bool

    @classmethod
    def of(cls, step: StepRecord, output: CapturedOutput | None) -> StepLogsOut:
        kept = output or CapturedOutput()
        return cls(
            run_id=step.run_id,
            step_id=step.id,
            name=step.step_name,
            status=str(step.status),
            captured=output is not None,
            stdout=kept.stdout,
            stderr=kept.stderr,
            stdout_dropped_bytes=kept.stdout_dropped_bytes,
            stderr_dropped_bytes=kept.stderr_dropped_bytes,
            truncated=kept.truncated,
        )


class RunDetailOut(RunOut):
    """A run with its steps, in execution order."""

    steps: list[StepOut]


class StartedRunOut(_Model):
    """A run just started."""

    run_id: str
    workflow_name: str
    status: str


class GateOptionOut(_Model):
    value: str
    label: str


class GateOut(_Model):
    """A gate waiting for a decision (an inbox entry).

    ``select`` is ``one`` when an approval may choose at most one option (show radio
    buttons), else ``many``; ``allow_none`` says whether it may choose none. Approving a
    gate with options and no selection is refused (422 ``selection_required``) unless
    ``allow_none``.
    """

    step_id: str
    run_id: str
    workflow_name: str
    gate_name: str
    gate_type: str
    prompt: str | None
    options: list[GateOptionOut]
    deadline_at: datetime | None
    opened_at: datetime | None
    approvals: int
    min_approvals: int
    select: Literal["one", "many"] = "many"
    allow_none: bool = True

    @classmethod
    def of(cls, gate: WaitingGate) -> GateOut:
        return cls(
            step_id=gate.step_id,
            run_id=gate.run_id,
            workflow_name=gate.workflow_name,
            gate_name=gate.gate_name,
            gate_type=gate.gate_type,
            prompt=gate.prompt,
            options=[GateOptionOut(value=o.value, label=o.label) for o in gate.options],
            deadline_at=gate.deadline_at,
            opened_at=gate.opened_at,
            approvals=gate.approvals,
            min_approvals=gate.min_approvals,
            select="one" if gate.select == "one" else "many",
            allow_none=gate.allow_none,
        )


class ReceiptOut(_Model):
    """The answer to a decision: ``accepted``, ``approval_recorded`` (quorum not met yet),
    ``already_approved`` (this approver's approval was recorded before; nothing changed),
    ``already_resolved`` (with by whom and when), ``not_waiting`` or ``deadline_passed``
    (refused: the gate's deadline, ``deadline_at``, had passed)."""

    outcome: str
    step_id: str
    run_id: str | None
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    approvals: int
    approvals_needed: int
    deadline_at: datetime | None = None

    @classmethod
    def of(cls, receipt: GateReceipt) -> ReceiptOut:
        return cls(
            outcome=str(receipt.outcome),
            step_id=receipt.step_id,
            run_id=receipt.run_id,
            decision=str(receipt.decision) if receipt.decision is not None else None,
            decided_by=receipt.decided_by,
            decided_at=receipt.decided_at,
            approvals=receipt.approvals,
            approvals_needed=receipt.approvals_needed,
            deadline_at=receipt.deadline_at,
        )


class CancelOut(_Model):
    run_id: str
    cancelling: bool = Field(description="false if the run had already finished")


class ErrorOut(_Model):
    """Every error answer: a machine-readable code and a sentence saying what to do."""

    error: str
    message: str
    detail: dict[str, Any] | None = None
