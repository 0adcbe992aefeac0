"""Cancellation: immediate, the executor's ``cancel`` hook called, scripts killed, the
``always`` block run (shielded), the run ending ``cancelled``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import pytest

from runkon.persistence import (
    GateDecision,
    ReceiptOutcome,
    RunStatus,
    SqliteStore,
    StepStatus,
    Store,
)

from ._support import (
    FOREVER,
    MakeEngine,
    Recorder,
    Reply,
    events,
    parse,
    pid_written,
    until,
    wait_dead,
    waiting_gates,
)


async def survivors(directory: Path, *pid_files: str) -> list[str]:
    """The pid files whose process is still alive after a short grace; those processes
    are killed so that a failing test leaves nothing behind."""
    alive = []
    for name in pid_files:
        pid = int((directory / name).read_text())
        if not await wait_dead(pid):
            alive.append(f"{name}={pid}")
            os.kill(pid, signal.SIGKILL)
    return alive


async def test_cancel_run_interrupts_the_executor_at_once_and_runs_always(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("work", FOREVER)
    rec.on("cleanup", Reply(delay=0.2))  # the always block takes a moment: still completes
    wf = parse(
        """
        workflow w {
          call work
          call never
          always { call cleanup }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        work = await rec.started("work")
        began = time.monotonic()
        assert await engine.cancel_run(handle.run_id, reason="user pressed stop", by="alice")
        result = await handle.result(timeout=10)
        elapsed = time.monotonic() - began

    assert elapsed < 2
    assert result.status == RunStatus.CANCELLED
    assert result.error == "user pressed stop"
    assert rec.interrupted == [work]
    assert rec.cancel_requests == [work.step_id]
    assert rec.names() == ["work", "cleanup"]
    assert [c.name for c in rec.finished] == ["cleanup"]
    assert rec.of("cleanup")[0].inputs["workflow_status"] == "cancelled"

    run = await store.get_run(handle.run_id)
    assert run.status == RunStatus.CANCELLED
    assert run.cancel_reason == "user pressed stop"
    assert run.cancel_requested_by == "alice"
    by_name = {s.step_name: s.status for s in await store.get_steps(handle.run_id)}
    assert by_name == {"work": StepStatus.FAILED, "cleanup": StepStatus.COMPLETED}
    stored = await events(store, handle.run_id)
    types = [e.type for e in stored]
    assert "cancellation_requested" in types
    assert types[-1] == "run_cancelled"
    assert stored[-1].data["reason"] == "user pressed stop"


async def test_nested_always_blocks_run_on_cancel_too(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("work", FOREVER)
    wf = parse(
        """
        workflow w {
          do {
            call work
            always { call nested-cleanup }
            call never
          }
          call after
          always { call cleanup }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await rec.started("work")
        await engine.cancel_run(handle.run_id)
        result = await handle.result(timeout=10)
    assert result.status == RunStatus.CANCELLED
    assert rec.names() == ["work", "nested-cleanup", "cleanup"]


async def test_cancel_during_a_long_script_kills_it(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    wf = parse(
        """
        workflow w {
          script long { run = "echo $$ > sh.pid; sleep 30 & echo $! > sleep.pid; wait" }
          always { call cleanup }
        }
        """
    )
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await until(lambda: pid_written(tmp_path / "sleep.pid"))
        await anyio.sleep(0.5)  # the script is well under way (see the next test)
        began = time.monotonic()
        await engine.cancel_run(handle.run_id)
        result = await handle.result(timeout=10)
        elapsed = time.monotonic() - began

    assert elapsed < 3
    assert result.status == RunStatus.CANCELLED
    assert await survivors(tmp_path, "sh.pid", "sleep.pid") == []
    assert rec.names() == ["cleanup"]
    [script, _] = await store.get_steps(handle.run_id)
    assert script.status == StepStatus.FAILED


async def test_cancel_while_a_busy_engine_is_still_starting_the_script_kills_its_children(
    make_engine: MakeEngine, rec: Recorder, tmp_path: Path
) -> None:
    """Another run's executor does CPU-bound work in slices, so the event loop is slow to
    finish starting the script while the script already runs and forks. A cancel that
    lands then must still kill the script's whole process group, not just ``sh``."""
    stop = anyio.Event()

    async def busy(ctx: object, params: object) -> None:
        while not stop.is_set():
            time.sleep(0.2)  # noqa: ASYNC251 - a blocking slice of CPU-bound work
            await anyio.lowlevel.checkpoint()

    rec.on("crunch", Reply(hook=busy))
    wf = parse('workflow w { script long { run = "sleep 30 & echo $! > sleep.pid; wait" } }')
    async with make_engine() as engine:
        crunching = await engine.start(parse("workflow other { call crunch }"))
        await rec.started("crunch")
        handle = await engine.start(wf)
        await until(lambda: pid_written(tmp_path / "sleep.pid"), interval=0.001)
        await engine.cancel_run(handle.run_id)
        result = await handle.result(timeout=10)
        stop.set()
        assert (await crunching.result(timeout=10)).succeeded

    assert result.status == RunStatus.CANCELLED
    assert await survivors(tmp_path, "sleep.pid") == []


async def test_cancelling_a_finished_run_returns_false(
    make_engine: MakeEngine, store: Store
) -> None:
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call a }"))
        assert await engine.cancel_run(result.run_id) is False
    assert (await store.get_run(result.run_id)).status == RunStatus.COMPLETED


async def test_cancelling_a_run_waiting_at_a_gate(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    wf = parse('workflow w { gate ok { type = human_approval  timeout = "1h" }  call after }')
    async with make_engine() as engine:
        handle = await engine.start(wf)
        [gate] = await waiting_gates(engine, handle.run_id)
        await engine.cancel_run(handle.run_id, reason="wrong ticket", by="carol")
        result = await handle.result(timeout=10)
        assert await engine.waiting_gates() == []
        late = await engine.approve_gate(handle.run_id, "ok", by="late")

    assert result.status == RunStatus.CANCELLED
    # nobody rejected the gate: it reads as cancelled, by whom the run was cancelled
    assert (late.outcome, late.decision, late.decided_by) == (
        ReceiptOutcome.ALREADY_RESOLVED,
        GateDecision.CANCELLED,
        "carol",
    )
    closed = await store.get_gate(gate.step_id)
    assert (closed.decision, closed.feedback) == (GateDecision.CANCELLED, "wrong ticket")
    resolved = [e for e in await events(store, handle.run_id) if e.type == "gate_resolved"]
    assert [(e.data["decision"], e.data["approved"], e.data["by"]) for e in resolved] == [
        ("cancelled", False, "carol")
    ]
    assert rec.calls == []


async def test_a_cancel_written_to_the_store_reaches_the_run_without_polling(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    rec.on("work", FOREVER)
    async with make_engine() as engine:
        handle = await engine.start(parse("workflow w { call work }"))
        await rec.started("work")
        began = time.monotonic()
        assert await store.request_cancel(handle.run_id, reason="from the API", by="ops")
        result = await handle.result(timeout=10)
        assert time.monotonic() - began < 2
    assert result.status == RunStatus.CANCELLED
    assert rec.cancel_requests == [rec.of("work")[0].step_id]


async def test_a_cancel_from_another_process_reaches_the_run(rec: Recorder, tmp_path: Path) -> None:
    """SQLite only: a second connection (as another process would) asks for the cancel;
    the store's change feed delivers it."""
    from runkon.engine import FlowEngine

    path = tmp_path / "shared.db"
    rec.on("work", FOREVER)
    async with FlowEngine(SqliteStore(path), fallback_action=rec) as engine:
        handle = await engine.start(parse("workflow w { call work }"))
        await rec.started("work")
        async with SqliteStore(path) as elsewhere:
            began = time.monotonic()
            assert await elsewhere.request_cancel(handle.run_id, reason="cli")
            result = await handle.result(timeout=10)
            assert time.monotonic() - began < 3
        assert result.status == RunStatus.CANCELLED
        assert result.error == "cli"  # the reason given elsewhere
        final = (await engine.read_events(handle.run_id))[-1]
        assert final.type == "run_cancelled"
        assert final.reason == "cli"  # type: ignore[union-attr]
    assert rec.interrupted == rec.of("work")


async def test_the_handle_can_cancel_its_run(make_engine: MakeEngine, rec: Recorder) -> None:
    rec.on("work", FOREVER)
    async with make_engine() as engine:
        handle = await engine.start(parse("workflow w { call work }"))
        await rec.started("work")
        assert await handle.cancel(reason="bye")
        result = await handle.result(timeout=10)
    assert result.status == RunStatus.CANCELLED
    assert result.error == "bye"


async def test_a_run_cancelled_while_no_engine_drives_it_starts_no_more_steps(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """A cancel requested while the run's engine is down (the run is ``cancelling``):
    the engine that recovers it must only run the ``always`` block and end it
    ``cancelled`` -- no body step may be dispatched (reference §3.3 checks the token
    before every node)."""
    from runkon.engine import EngineShutdownError

    rec.on("b", FOREVER)
    wf = parse("workflow w { call a  call b  call c  always { call cleanup } }")
    async with make_engine() as engine:
        handle = await engine.start(wf)
        await rec.started("b")
    with pytest.raises(EngineShutdownError):
        await handle.result(timeout=5)
    assert await store.request_cancel(handle.run_id, reason="cancelled while down")

    again = Recorder()
    async with make_engine(fallback_action=again, recover=True) as engine:
        [recovered] = engine.recovered
        result = await recovered.result(timeout=10)

    assert result.status == RunStatus.CANCELLED
    assert result.error == "cancelled while down"
    assert again.names() == ["cleanup"]  # neither b nor c was started again


async def test_a_run_cancelled_right_after_start_runs_no_body_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        handle = await engine.start(parse("workflow w { call a  call b  always { call cleanup } }"))
        assert await engine.cancel_run(handle.run_id, reason="changed my mind")
        result = await handle.result(timeout=10)
    assert result.status == RunStatus.CANCELLED
    assert rec.names() == ["cleanup"]
    assert (await store.get_run(handle.run_id)).status == RunStatus.CANCELLED
