"""The run summary stored in ``result_summary`` (runkon-flow's format)."""

from __future__ import annotations

from collections.abc import Sequence

from runkon.persistence import RunStatus, StepRecord, StepStatus

_LABELS = {
    StepStatus.PENDING: "-",
    StepStatus.RUNNING: "...",
    StepStatus.COMPLETED: "ok",
    StepStatus.FAILED: "FAIL",
    StepStatus.SKIPPED: "skip",
    StepStatus.WAITING: "wait",
    StepStatus.TIMED_OUT: "tout",
}


def build_summary(
    workflow_name: str, steps: Sequence[StepRecord], status: RunStatus, error: str | None
) -> str:
    """``Workflow 'N': c/t steps completed, f failed, s skipped, x timed out``, one line per
    step (``[ok] name (iter i)``), the verdict, and the error if any."""
    counts = dict.fromkeys(StepStatus, 0)
    for step in steps:
        counts[step.status] += 1
    lines = [
        f"Workflow {workflow_name!r}: {counts[StepStatus.COMPLETED]}/{len(steps)} steps "
        f"completed, {counts[StepStatus.FAILED]} failed, {counts[StepStatus.SKIPPED]} skipped, "
        f"{counts[StepStatus.TIMED_OUT]} timed out"
    ]
    for step in steps:
        attempt = f" (attempt {step.retry_count + 1})" if step.retry_count else ""
        lines.append(
            f"  [{_LABELS[step.status]}] {step.step_name} (iter {step.iteration}){attempt}"
        )
    verdict = {"completed": "SUCCESS", "failed": "FAILED", "cancelled": "CANCELLED"}
    lines.append(f"Status: {verdict.get(status.value, status.value.upper())}")
    if error:
        lines.append(f"Error: {error}")
    return "\n".join(lines)
