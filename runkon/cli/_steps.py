"""A run's steps as ``show`` and ``logs`` present them: attempts, JSON, naming a step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from runkon.cli._common import CliError, program
from runkon.persistence import CapturedOutput, GateRecord, StepRecord

__all__ = (
    "output_json",
    "printable",
    "select_steps",
    "step_json",
)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _attempt_json(number: int, step: StepRecord) -> dict[str, Any]:
    return {
        "attempt": number,
        "step_id": step.id,
        "status": str(step.status),
        "error": step.step_error,
        "started_at": _iso(step.started_at),
        "ended_at": _iso(step.ended_at),
        "duration_ms": step.duration_ms,
    }


def step_json(
    step: StepRecord, gate: GateRecord | None, attempts: list[StepRecord]
) -> dict[str, Any]:
    """One step as JSON: the HTTP API's step fields (``StepOut``), its output, the
    variables it ran with, its attempts and the gate's decision."""
    answer: dict[str, Any] = {
        "id": step.id,
        "name": step.step_name,
        "role": str(step.role),
        "kind": step.kind,
        "status": str(step.status),
        "position": step.position,
        "iteration": step.iteration,
        "retry_count": step.retry_count,
        "started_at": _iso(step.started_at),
        "ended_at": _iso(step.ended_at),
        "duration_ms": step.duration_ms,
        "markers": list(step.markers_out),
        "result_text": step.result_text,
        "context_out": step.context_out,
        "structured_output": step.structured_output,
        "error": step.step_error,
        "inputs": dict(step.inputs),
        "attempts": [_attempt_json(n, row) for n, row in enumerate(attempts, 1)],
        "child_run_id": step.child_run_id,
        "gate_type": step.gate_type,
        "gate_feedback": step.gate_feedback,
        "gate": None,
    }
    if gate is not None:
        answer["gate"] = {
            "type": gate.gate_type,
            "status": str(gate.status),
            "decision": None if gate.decision is None else str(gate.decision),
            "decided_by": gate.decided_by,
            "selections": list(gate.selections or ()),
            "feedback": gate.feedback,
        }
    return answer


def output_json(number: int, step: StepRecord, output: CapturedOutput) -> dict[str, Any]:
    """A step's captured output as ``logs --json`` prints it (one object per step)."""
    return {
        "number": number,
        "step_id": step.id,
        "name": step.step_name,
        "status": str(step.status),
        "retry_count": step.retry_count,
        "stdout": output.stdout,
        "stderr": output.stderr,
        "stdout_dropped_bytes": output.stdout_dropped_bytes,
        "stderr_dropped_bytes": output.stderr_dropped_bytes,
        "truncated": output.truncated,
    }


def select_steps(run_id: str, steps: list[StepRecord], which: str) -> list[tuple[int, StepRecord]]:
    """The steps ``which`` names, with their number in ``runkon show``'s table.

    ``which`` is that number (``3`` or ``#3``), a step id, or a step name (every attempt
    and iteration of the step).

    Raises:
        CliError: no step matches (the message lists the run's step names).
    """
    numbered = list(enumerate(steps, 1))
    number = which.removeprefix("#")
    if number.isdigit():
        found = [(n, step) for n, step in numbered if n == int(number)]
    else:
        found = [(n, step) for n, step in numbered if which in (step.id, step.step_name)]
    if found:
        return found
    names = list(dict.fromkeys(step.step_name for step in steps))
    known = ", ".join(repr(name) for name in names[:20]) or "none yet"
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    raise CliError(
        f"run {run_id} has no step {which!r}; give a step name, its number in "
        f"`{program()} show {run_id}` or its id (its steps: {known}{more})"
    )


def printable(line: str) -> str:
    """``line`` with control characters other than tab escaped (``\\x1b``).

    Step output is written by scripts and agents: terminal escape sequences are shown,
    never sent to the terminal.
    """
    return "".join(
        char if char == "\t" or char.isprintable() else repr(char)[1:-1] for char in line
    )
