"""``runkon show RUN``: a run's header and its steps as a table."""

from __future__ import annotations

import argparse
import json
from typing import Any

from runkon.cli._actions import MEMO_ACTIONS
from runkon.cli._common import (
    EXIT_OK,
    Column,
    add_db_argument,
    between,
    execute,
    find_run,
    local_time,
    open_store,
    print_table,
    program,
    say,
    shorten,
)
from runkon.cli._progress import db_option
from runkon.cli._runs import blocked_on, run_as_json
from runkon.cli._steps import printable, step_json
from runkon.cli._table import print_fields
from runkon.persistence import (
    CapturedOutput,
    GateDecision,
    GateRecord,
    RunRecord,
    StepRecord,
    StepRole,
    StepStatus,
    attempts_by_step,
)

NOTE_WIDTH = 60
OUTPUT_LINES = 20  # lines shown of each output field of a step


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "show",
        help="show a run and its steps",
        description="Show run RUN (an id, or a unique prefix of 6+ characters): its "
        "workflow, status, times, inputs, working directory, actions and error, then one "
        "row per step: name, kind, "
        "status, loop iteration, retries, duration, markers and a note (the error of a "
        "failed step, a gate's decision, a child run), then for each step: the variables "
        "it ran with, its result, the context it passes on, its structured output, its "
        f"error (at most {OUTPUT_LINES} lines each), its attempts when it was retried, "
        "and how much its programs wrote (print it with `runkon logs RUN N`).",
    )
    parser.add_argument("run", metavar="RUN", help="the run id")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: the run and its steps, with the HTTP API's field names",
    )
    add_db_argument(parser)
    parser.set_defaults(handler=lambda args: execute(show, args))


async def show(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        run = await find_run(store, args.run)
        steps = await store.get_steps(run.id)
        gates = {
            step.id: await store.get_gate(step.id) for step in steps if step.role == StepRole.GATE
        }
        outputs = (
            {} if args.json else {step.id: await store.get_step_output(step.id) for step in steps}
        )
    attempts = attempts_by_step(steps)
    if args.json:
        answer = run_as_json(run)
        answer["steps"] = [step_json(step, gates.get(step.id), attempts[step.id]) for step in steps]
        say(json.dumps(answer))
        return EXIT_OK
    _print_header(run)
    say()
    if not steps:
        say("no steps yet")
        return EXIT_OK
    print_table(
        [
            "#",
            Column("step", shrink=True),
            "kind",
            Column("status", status=True),
            "iter",
            "retries",
            "duration",
            Column("markers", shrink=True),
            Column("note", shrink=True, limit=NOTE_WIDTH),
        ],
        (_row(index, step, gates.get(step.id)) for index, step in enumerate(steps, 1)),
    )
    _print_details(run.id, steps, attempts, outputs, db=args.db)
    return EXIT_OK


def _print_details(
    run_id: str,
    steps: list[StepRecord],
    attempts: dict[str, list[StepRecord]],
    outputs: dict[str, CapturedOutput | None],
    *,
    db: str,
) -> None:
    """Under the table, for each step: the variables it ran with, its result, context,
    structured output and error, its attempts and how much its programs wrote.

    Step output is written by scripts and agents: control characters (terminal escape
    sequences among them) are shown escaped, never sent to the terminal.
    """
    for index, step in enumerate(steps, 1):
        fields = [
            (name, value)
            for name, value in (
                ("inputs", _inputs_text(step)),
                ("result", step.result_text),
                ("context", step.context_out),
                ("output", step.structured_output),
                ("error", step.step_error),
            )
            if value and not (name == "result" and value == step.step_error)
        ]
        tries = attempts[step.id]
        if len(tries) > 1:
            fields.append(("attempts", _attempts_text(tries)))
        logs = _logs_text(run_id, index, outputs.get(step.id), db)
        if logs:
            fields.append(("logs", logs))
        if step.role == StepRole.GATE or not fields:
            continue
        say()
        say(f"step {step.step_name} (#{index}, {step.status})")
        for name, value in fields:
            lines = [printable(line) for line in value.rstrip("\n").splitlines()]
            if len(lines) > OUTPUT_LINES:
                cut = len(lines) - OUTPUT_LINES
                lines = [*lines[:OUTPUT_LINES], f"... ({cut} more lines)"]
            say(f"  {name}:")
            for line in lines:
                say(f"    {line}")


def _inputs_text(step: StepRecord) -> str:
    """``name = value`` per variable; a value's first line only (`` ...`` if more)."""
    lines = []
    for name, value in step.inputs.items():
        first, _, rest = value.partition("\n")
        lines.append(f"{name} = {first}{' ...' if rest else ''}")
    return "\n".join(lines)


def _attempts_text(tries: list[StepRecord]) -> str:
    """One line per attempt of the step: number, status, duration, error."""
    lines = []
    for number, attempt in enumerate(tries, 1):
        took = between(attempt.started_at, attempt.ended_at) if attempt.started_at else "-"
        error = f": {shorten(attempt.step_error, 100)}" if attempt.step_error else ""
        lines.append(f"{number}. {attempt.status} after {took}{error}")
    return "\n".join(lines)


def _logs_text(run_id: str, number: int, output: CapturedOutput | None, db: str) -> str:
    """How much the step's programs wrote, and the command printing it ("" if nothing)."""
    if output is None or output.is_empty:
        return ""
    sizes = []
    for stream, text, dropped in (
        ("stdout", output.stdout, output.stdout_dropped_bytes),
        ("stderr", output.stderr, output.stderr_dropped_bytes),
    ):
        if text or dropped:
            lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
            cut = f", {dropped} earlier bytes not kept" if dropped else ""
            sizes.append(f"{stream} {lines} line{'' if lines == 1 else 's'}{cut}")
    return f"{'; '.join(sizes)} ({program()} logs {run_id} {number}{db_option(db)})"


def _print_header(run: RunRecord) -> None:
    title = f" ({run.workflow_title})" if run.workflow_title else ""
    status = run.display_status()
    if run.blocked_on:
        status += f" on {blocked_on(run)}"
    fields = [
        ("run", run.id),
        ("workflow", run.workflow_name + title),
        ("status", status),
        ("started", local_time(run.started_at)),
        ("ended", local_time(run.ended_at)),
        ("duration", between(run.started_at, run.ended_at)),
    ]
    if run.inputs:
        fields.append(("inputs", " ".join(f"{k}={v}" for k, v in sorted(run.inputs.items()))))
    if run.working_dir:
        fields.append(("workdir", run.working_dir))
    if run.memo.get(MEMO_ACTIONS):
        fields.append(("actions", run.memo[MEMO_ACTIONS]))
    if run.dry_run:
        fields.append(("dry run", "yes"))
    if run.parent_run_id:
        fields.append(("parent", run.parent_run_id))
    if run.cancel_requested_by or run.cancel_reason:
        by = f" by {run.cancel_requested_by}" if run.cancel_requested_by else ""
        reason = f": {run.cancel_reason}" if run.cancel_reason else ""
        fields.append(("cancel", f"requested{by}{reason}"))
    if run.error:
        fields.append(("error", shorten(run.error, 200)))
    print_fields(fields)


def _row(index: int, step: StepRecord, gate: GateRecord | None) -> list[str]:
    kind = step.kind or str(step.role)
    status = str(step.status)
    if gate is not None:
        kind = f"gate:{gate.gate_type}"
        if gate.decision is GateDecision.CANCELLED:
            status = "cancelled"  # stored as failed: the canonical schema has no such status
    return [
        str(index),
        step.step_name,
        kind,
        status,
        str(step.iteration),
        str(step.retry_count),
        between(step.started_at, step.ended_at) if step.started_at else "-",
        ",".join(step.markers_out),
        _note(step, gate),
    ]


def _note(step: StepRecord, gate: GateRecord | None) -> str:
    if gate is not None:
        return _gate_note(gate)
    if step.status in (StepStatus.FAILED, StepStatus.TIMED_OUT):
        return step.step_error or step.result_text or ""
    if step.child_run_id:
        return f"child run {step.child_run_id}"
    return ""


def _gate_note(gate: GateRecord) -> str:
    if gate.status == StepStatus.WAITING:
        approvals = (
            f" ({len(gate.approvals)}/{gate.min_approvals} approvals)"
            if gate.min_approvals > 1
            else ""
        )
        return f"waiting{approvals}: {gate.prompt or gate.step_name}"
    if gate.decision is None:
        return gate.feedback or ""
    text = str(gate.decision)
    if gate.decided_by:
        text += f" by {gate.decided_by}"
    if gate.selections:
        text += f" [{', '.join(gate.selections)}]"
    if gate.feedback:
        text += f": {gate.feedback}"
    return text
