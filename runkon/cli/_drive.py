"""Drive a run in this process with live progress (``run`` and ``resume``).

Progress comes from the engine's event bus (``engine.follow_events``): stored events
after a sequence number, then live ones; a decision made in another process is read back
from the store when the run's next event shows the gap. Ctrl-C (or SIGTERM) stops the run
WITHOUT cancelling it: the engine releases its lease and the run stays resumable with
``runkon resume``.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import cast

import anyio

import runkon
from runkon.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    duration,
    program,
    say,
    shorten,
    warn,
)
from runkon.cli._progress import Describer, db_option, gate_hint, status_of
from runkon.cli._table import print_line
from runkon.events import FINAL_EVENT_TYPES, GateWaiting, RunResumed, RunStarted

PRINT_GRACE = 2.0  # seconds to let the last events print after the run finished


async def drive(
    engine: runkon.FlowEngine,
    handle: runkon.RunHandle,
    *,
    db: str,
    after_seq: int = 0,
    waiting: Sequence[runkon.WaitingGate] = (),
) -> int:
    """Print the run's progress until it ends; return the exit code (0 completed, 1
    failed or cancelled, 130 interrupted). ``waiting`` are gates already waiting (on
    resume) whose decision hints are printed first."""
    run_id = handle.run_id
    for gate in waiting:
        say(f"gate {gate.gate_name!r} waits ({gate.gate_type})" + _prompt(gate.prompt))
        hint = gate_hint(
            run_id,
            gate.gate_name,
            db=db,
            options=[option.value for option in gate.options],
            deadline_at=gate.deadline_at,
            min_approvals=gate.min_approvals,
            approvals=gate.approvals,
            select=gate.select,
            allow_none=gate.allow_none,
            indent="          ",
        )
        for line in hint:
            say(line)
    printed_final = anyio.Event()
    result: runkon.WorkflowResult | None = None
    error: BaseException | None = None
    with anyio.CancelScope() as waiting_scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, waiting_scope)
            tg.start_soon(_print_progress, engine, run_id, after_seq, db, printed_final)
            try:
                result = await handle.result()
            except (runkon.LeaseLostError, runkon.EngineShutdownError) as exc:
                error = exc
            with anyio.move_on_after(PRINT_GRACE):
                await printed_final.wait()
            tg.cancel_scope.cancel()
    if waiting_scope.cancelled_caught:
        warn(
            f"interrupted: run {run_id} is stopped but not cancelled; continue it with "
            f"`{program()} resume {run_id}{db_option(db)}`"
        )
        return EXIT_INTERRUPTED
    if error is not None:
        warn(f"runkon: run {run_id} stopped: {error}")
        return EXIT_FAILED
    assert result is not None
    if not printed_final.is_set():  # the bus fell behind: say it from the result
        _print_result(result)
    if result.succeeded:
        return EXIT_OK
    say(f"see its steps: {program()} show {run_id}{db_option(db)}")
    return EXIT_FAILED


def _prompt(prompt: str | None) -> str:
    return f": {prompt}" if prompt else ""


def _print_result(result: runkon.WorkflowResult) -> None:
    if result.succeeded:
        say(f"run {result.run_id} completed in {duration(result.duration_ms / 1000)}")
    else:
        say(f"run {result.run_id} {result.status}: {shorten(result.error, 200)}")


async def _print_progress(
    engine: runkon.FlowEngine, run_id: str, after_seq: int, db: str, printed_final: anyio.Event
) -> None:
    stream = cast(
        AsyncGenerator[runkon.EngineEvent], engine.follow_events(run_id, after_seq=after_seq)
    )
    describer = Describer()
    async with aclosing(stream) as events:
        async for event in events:
            if isinstance(event, RunStarted | RunResumed) and event.run_id == run_id:
                continue  # said when the run was started
            line = describer.line(event)
            if line is not None:
                print_line(line, status_of(event))
            if isinstance(event, GateWaiting):
                for hint in gate_hint(
                    run_id,
                    event.gate_name,
                    db=db,
                    options=event.options,
                    deadline_at=event.deadline_at,
                    min_approvals=event.min_approvals,
                    select=event.select,
                    allow_none=event.allow_none,
                    indent="          ",
                ):
                    say(hint)
            if event.type in FINAL_EVENT_TYPES:
                printed_final.set()
                return


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            warn("stopping (the run stays resumable)...")
            scope.cancel()
            return
