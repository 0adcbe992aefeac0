"""Events in words: one line per event for ``run``/``resume`` progress and ``events``,
and the commands that decide a waiting gate."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from datetime import datetime

import runkon
from runkon.cli._common import (
    DEFAULT_DB,
    clock,
    duration,
    local_time,
    program,
    shorten,
    time_left,
)
from runkon.events import (
    CancellationRequested,
    EventsDropped,
    FanOutItemCompleted,
    FanOutItemsCollected,
    FanOutItemStarted,
    GateApprovalRecorded,
    GateResolved,
    GateTimedOut,
    GateWaiting,
    LeaseLost,
    MetricsUpdated,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
)

ERROR_WIDTH = 200


class Describer:
    """Turns events into lines, remembering when each step started so that a step's
    completion can say how long it took (step names are unique among running steps)."""

    def __init__(self) -> None:
        self._started: dict[str, datetime] = {}  # step name -> when it started

    def line(self, event: runkon.EngineEvent) -> str | None:
        """``HH:MM:SS  <description>`` for live progress (None: nothing to say)."""
        text = self.describe(event)
        return None if text is None else f"{clock(event.timestamp)}  {text}"

    def describe(self, event: runkon.EngineEvent) -> str | None:
        """What ``event`` says, in one line (None for events not worth a line)."""
        if isinstance(event, StepStarted):
            self._started[event.step_name] = event.timestamp
        elif isinstance(event, StepCompleted | StepFailed | StepSkipped):
            started = self._started.pop(event.step_name, None)
            if isinstance(event, StepCompleted) and not event.duration_ms and started:
                took = (event.timestamp - started).total_seconds()
                markers = f" [{', '.join(event.markers)}]" if event.markers else ""
                return f"step {event.step_name!r} completed in {duration(took)}{markers}"
        return describe(event)


def describe(event: runkon.EngineEvent) -> str | None:
    """What ``event`` says, in one line (None for events not worth a line)."""
    match event:
        case RunStarted():
            return f"run {event.run_id} started (workflow {event.workflow_name!r})"
        case RunResumed():
            skipped = (
                f", {event.skipped_steps} finished step(s) kept" if event.skipped_steps else ""
            )
            return f"run {event.run_id} resumed (workflow {event.workflow_name!r}{skipped})"
        case RunCompleted():
            return f"run {event.run_id} completed in {duration(event.duration_ms / 1000)}"
        case RunFailed():
            return f"run {event.run_id} failed: {shorten(event.error, ERROR_WIDTH)}"
        case RunCancelled():
            reason = f": {event.reason}" if event.reason else ""
            return f"run {event.run_id} cancelled{reason}"
        case CancellationRequested():
            by = f" by {event.by}" if event.by else ""
            reason = f": {event.reason}" if event.reason else ""
            return f"cancellation requested{by}{reason}"
        case StepStarted():
            again = f", attempt {event.attempt + 1}" if event.attempt else ""
            loop = f", iteration {event.iteration}" if event.iteration else ""
            return f"step {event.step_name!r} started ({event.kind}{again}{loop})"
        case StepCompleted():
            markers = f" [{', '.join(event.markers)}]" if event.markers else ""
            took = f" in {duration(event.duration_ms / 1000)}" if event.duration_ms else ""
            return f"step {event.step_name!r} completed{took}{markers}"
        case StepFailed():
            what = "timed out" if event.timed_out else "failed"
            return f"step {event.step_name!r} {what}: {shorten(event.error, ERROR_WIDTH)}"
        case StepSkipped():
            reason = f": {event.reason}" if event.reason else ""
            return f"step {event.step_name!r} skipped{reason}"
        case StepRetrying():
            error = shorten(event.error, ERROR_WIDTH)
            return (
                f"step {event.step_name!r} failed, retrying (attempt {event.attempt + 1}): {error}"
            )
        case GateWaiting():
            prompt = f": {event.prompt}" if event.prompt else ""
            return f"gate {event.gate_name!r} waits ({event.gate_type}){prompt}"
        case GateApprovalRecorded():
            return (
                f"gate {event.gate_name!r}: approval {event.approvals}/{event.approvals_needed}"
                f" by {event.by}"
            )
        case GateResolved():
            verdict = "approved" if event.approved else (event.decision or "rejected")
            text = f"gate {event.gate_name!r} {verdict}"
            if event.by:
                text += f" by {event.by}"
            if event.selections:
                text += f" (selected: {', '.join(event.selections)})"
            if event.feedback:
                text += f": {shorten(event.feedback, ERROR_WIDTH)}"
            return text
        case GateTimedOut():
            return f"gate {event.gate_name!r} timed out (on_timeout = {event.on_timeout})"
        case FanOutItemsCollected():
            return f"foreach {event.step_name!r}: {event.count} item(s)"
        case FanOutItemStarted():
            child = f" (run {event.child_run_id})" if event.child_run_id else ""
            return f"foreach {event.step_name!r}: item {event.item_id!r} started{child}"
        case FanOutItemCompleted():
            return f"foreach {event.step_name!r}: item {event.item_id!r} {event.status or 'done'}"
        case LeaseLost():
            return f"run {event.run_id} taken over by another process; this one stopped"
        case EventsDropped():
            return f"({event.count} event(s) not shown: the output fell behind)"
        case MetricsUpdated():
            return None


def status_of(event: runkon.EngineEvent) -> str | None:
    """The status an event's line shows in colour on a terminal (None: no colour)."""
    match event:
        case StepCompleted() | RunCompleted():
            return "completed"
        case StepFailed() | RunFailed() | LeaseLost():
            return "failed"
        case StepRetrying() | RunCancelled() | CancellationRequested():
            return "cancelled"  # yellow: a warning
        case GateWaiting():
            return "waiting"
        case StepSkipped():
            return "skipped"
        case GateResolved():
            return "completed" if event.approved else "failed"
    return None


def db_option(db: str) -> str:
    return "" if db == DEFAULT_DB else f" --db {shlex.quote(db)}"


def gate_hint(
    run_id: str,
    gate_name: str,
    *,
    db: str,
    options: Sequence[str] = (),
    deadline_at: datetime | None = None,
    min_approvals: int = 1,
    approvals: int = 0,
    select: str = "many",
    allow_none: bool = True,
    indent: str = "",
) -> list[str]:
    """How to decide a waiting gate from another terminal, as lines to print (the
    commands as the user ran runkon: see :func:`~runkon.cli._common.program`).

    ``--select`` is shown as required when the gate needs a choice (``allow_none`` false).
    """
    target = f"{run_id} {shlex.quote(gate_name)}{db_option(db)}"
    flag = f"--select {'|'.join(options)}"
    choose = "" if not options else f" [{flag}]" if allow_none else f" {flag}"
    lines = []
    details = []
    if options:
        words = {
            ("one", False): "choose one",
            ("one", True): "choose at most one",
            ("many", False): "choose one or more",
        }
        choice = words.get((select, allow_none), "choose any")
        details.append(f"options: {', '.join(options)} ({choice})")
    if min_approvals > 1:
        details.append(f"approvals: {approvals}/{min_approvals}")
    if deadline_at is not None:
        details.append(f"deadline: {local_time(deadline_at)} ({time_left(deadline_at)})")
    if details:
        lines.append(f"{indent}{'; '.join(details)}")
    runkon = program()
    lines.append(f"{indent}approve: {runkon} approve {target}{choose} [--feedback TEXT]")
    lines.append(f"{indent}reject:  {runkon} reject {target} [--feedback TEXT]")
    return lines
