"""``script <name> { run = "..." }``: a shell command under ``sh -c``.

Variables are shell-quoted into ``run`` (so a value is always one word) and substituted
raw into ``env``. The process runs in its own session: a timeout or a cancellation kills
its whole process group (SIGTERM, then SIGKILL after a grace period). ``retries`` and
``on_fail`` work as for calls; a timeout records the attempt ``timed_out``. Exit 0 parses
a FLOW_OUTPUT block from stdout; a non-zero exit fails with the tail of stderr.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess

import anyio
from anyio.abc import ByteReceiveStream, Process

from runkon.dsl import ScriptNode, format_duration
from runkon.engine._attempts import Failure, Outcome, Success, describe_error, run_attempts
from runkon.engine._flow_output import parse_flow_output
from runkon.engine._node_call import on_fail_runner, step_key
from runkon.engine._protocols import StepContext
from runkon.engine._state import RunState
from runkon.engine._variables import shell_quote, substitute
from runkon.persistence import StepRecord

SENSITIVE_ENV_KEYS = frozenset(
    {
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "PATH",
        "PYTHONPATH",
        "RUBYLIB",
        "NODE_PATH",
        "GH_TOKEN",
    }
)
_INPUT_KEY_RE = re.compile(r"[A-Za-z0-9_]+")
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
STDOUT_LIMIT = 4 * 1024 * 1024  # keep the last 4 MiB (the FLOW_OUTPUT block is at the end)
STDERR_LIMIT = 64 * 1024
ERROR_TAIL = 2000
DRAIN_GRACE = 1.0  # seconds to finish reading output after the script exits


async def run_script_node(state: RunState, node: ScriptNode, path: str, iteration: int) -> None:
    key = step_key(node.name, path)
    position = state.next_position()
    done = state.completed(key)
    if done is not None:
        await state.restore(node.name, done)
        return

    async def attempt(step: StepRecord, attempt: int, retry_error: str | None) -> Outcome:
        if state.dry_run:
            return Success(result_text="dry-run: script not executed")
        return await _run_once(state, node, step, attempt, iteration)

    await run_attempts(
        state,
        name=node.name,
        key=key,
        kind="script",
        position=position,
        iteration=iteration,
        retries=node.retries,
        on_fail=node.on_fail,
        attempt_fn=attempt,
        on_fail_agent=on_fail_runner(state, node.name, path, iteration),
    )


async def script_env(state: RunState, node: ScriptNode, ctx: StepContext) -> dict[str, str]:
    """The process environment: ours, the provider's, the inputs, then ``node.env``."""
    env = dict(os.environ)
    provider = state.services.script_env
    if provider is not None:
        identity = node.as_identity or state.as_identity or state.services.default_as_identity
        env.update(await provider.env(ctx, identity))
    for key, value in state.inputs.items():
        if _INPUT_KEY_RE.fullmatch(key):
            env[f"RUNKON_{key.upper()}"] = value
            env[f"CONDUCTOR_{key.upper()}"] = value  # what runkon-flow's scripts read
    variables = state.vars.snapshot()
    for key, template in node.env.items():
        if key.upper() in SENSITIVE_ENV_KEYS or "=" in key or "\0" in key or not key:
            state.log.warning("script env key refused", script=node.name, key=key)
            continue
        value = substitute(template, variables)
        if "\0" in value:
            state.log.warning("script env value has a NUL byte; refused", key=key)
            continue
        env[key] = value
    return env


async def _run_once(
    state: RunState, node: ScriptNode, step: StepRecord, attempt: int, iteration: int
) -> Outcome:
    ctx = StepContext(
        run_id=state.run_id,
        workflow_name=state.workflow.name,
        step_id=step.id,
        step_name=node.name,
        step_key=step.resume_key or node.name,
        attempt=attempt,
        iteration=iteration,
        working_dir=state.services.working_dir,
        dry_run=state.dry_run,
        parent_run_id=state.run.parent_run_id,
        depth=state.depth,
        timeout=node.timeout,
    )
    command = substitute(node.run, state.vars.snapshot(), quote=shell_quote)
    try:
        env = await script_env(state, node, ctx)
    except Exception as exc:
        return Failure(
            f"script {node.name!r}: the script env provider failed: {describe_error(exc)}"
        )
    try:
        # Shielded: a cancellation landing mid-spawn must not lose the process handle
        # (the process may already run and fork); it is delivered right after.
        with anyio.CancelScope(shield=True):
            process = await anyio.open_process(
                ["sh", "-c", command],
                cwd=state.services.working_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    except OSError as exc:
        return Failure(f"script {node.name!r} could not start: {describe_error(exc)}")
    stdout = bytearray()
    stderr = bytearray()
    timeout = math.inf if node.timeout is None else node.timeout
    try:
        with anyio.move_on_after(timeout) as deadline:
            await _communicate(process, stdout, stderr)
        if deadline.cancelled_caught:
            with anyio.CancelScope(shield=True):
                await kill_process_group(process)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await kill_process_group(process)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()  # closes the pipes (and reaps the process)
    if deadline.cancelled_caught:
        assert node.timeout is not None
        return Failure(
            f"script {node.name!r} timed out after {format_duration(node.timeout)}"
            + _tail("stderr", stderr),
            timed_out=True,
        )
    code = process.returncode
    out_text = stdout.decode("utf-8", errors="replace")
    if code != 0:
        return Failure(f"script {node.name!r} exited with code {code}" + _tail("stderr", stderr))
    flow = parse_flow_output(out_text)
    if flow is None:
        return Success(context=out_text[:ERROR_TAIL], result_text=f"script {node.name!r} completed")
    return Success(
        markers=flow.markers,
        context=flow.context,
        structured_output=flow.to_json(),
        result_text=f"script {node.name!r} completed",
    )


def _tail(label: str, data: bytearray) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    if len(text) > ERROR_TAIL:
        text = "…" + text[-ERROR_TAIL:]
    return f"\n{text}"


async def _communicate(process: Process, stdout: bytearray, stderr: bytearray) -> None:
    """Collect output until the process exits and its pipes close.

    A background grandchild may keep the pipes open after the script exits: after
    ``DRAIN_GRACE`` seconds the rest of the process group is killed and reading stops.
    """
    assert process.stdout is not None
    assert process.stderr is not None
    done = [anyio.Event(), anyio.Event()]
    async with anyio.create_task_group() as tg:
        tg.start_soon(_drain, process.stdout, stdout, STDOUT_LIMIT, done[0])
        tg.start_soon(_drain, process.stderr, stderr, STDERR_LIMIT, done[1])
        await process.wait()
        with anyio.move_on_after(DRAIN_GRACE):
            for event in done:
                await event.wait()
        if not all(event.is_set() for event in done):
            _signal_group(process.pid, signal.SIGKILL)
        tg.cancel_scope.cancel()


async def _drain(
    stream: ByteReceiveStream, buffer: bytearray, limit: int, done: anyio.Event
) -> None:
    try:
        async for chunk in stream:
            buffer.extend(chunk)
            if len(buffer) > limit:
                del buffer[: len(buffer) - limit]
    finally:
        done.set()


async def kill_process_group(process: Process) -> None:
    """Stop the process and everything it started: SIGTERM, then SIGKILL after a grace."""
    if process.returncode is not None:
        return
    _signal_group(process.pid, signal.SIGTERM)
    with anyio.move_on_after(KILL_GRACE):
        await process.wait()
        return
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
