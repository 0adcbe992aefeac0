"""Running an external program as a step does: in its own session, output collected,
and on a timeout or a cancellation its whole process group killed (SIGTERM, then
SIGKILL after a grace period). Used by ``script`` nodes and by executors that run
programs (the CLI's actions directory). Inside a step attempt, the program's output is
also kept for ``runkon logs`` (a bounded tail per stream, see ``_capture``)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import ByteReceiveStream, Process

from runkon.engine._capture import OutputCapture, TailBuffer, current_capture

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
STDOUT_LIMIT = 4 * 1024 * 1024  # keep the last 4 MiB (the FLOW_OUTPUT block is at the end)
STDERR_LIMIT = 64 * 1024
ERROR_TAIL = 2000
DRAIN_GRACE = 1.0  # seconds to finish reading output after the program exits


SECRET_ENV_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")


def inherited_environment() -> dict[str, str]:
    """Our environment as a step's program inherits it: without runkon's secrets.

    Every ``RUNKON_*`` or ``CONDUCTOR_*`` variable whose name contains ``TOKEN``,
    ``SECRET``, ``PASSWORD`` or ``KEY`` (e.g. the server's ``RUNKON_TOKEN``) is left out,
    so an untrusted step cannot read the API token. A step that needs one gets it
    explicitly (a ``script`` node's ``env`` block or the engine's ``script_env``).
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not (
            name.upper().startswith(("RUNKON_", "CONDUCTOR_"))
            and any(word in name.upper() for word in SECRET_ENV_WORDS)
        )
    }


@dataclass(frozen=True, slots=True)
class ProgramResult:
    """How a program ended.

    Attributes:
        returncode: the exit status (negative: killed by that signal); ``None`` only
            when it timed out before exiting.
        stdout: its standard output (the last 4 MiB), decoded as UTF-8.
        stderr: its standard error (the last 64 KiB), decoded as UTF-8.
        timed_out: ``timeout`` passed and the process group was killed.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    def stderr_tail(self, limit: int = ERROR_TAIL) -> str:
        """The end of stderr as a paragraph to append to an error message ("" if none)."""
        text = self.stderr.strip()
        if not text:
            return ""
        if len(text) > limit:
            text = "…" + text[-limit:]
        return f"\n{text}"

    def describe_exit(self) -> str:
        """``exited with code N`` or ``was killed by SIGNAME``."""
        code = self.returncode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"


async def run_program(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    on_start: Callable[[Process], None] | None = None,
) -> ProgramResult:
    """Run ``argv`` in a new session and wait for it, collecting its output.

    A ``timeout`` or a cancellation kills the whole process group (so a shell's
    children die too); a cancellation is re-raised after the kill. ``on_start`` receives
    the process as soon as it runs (e.g. to kill it from an executor's ``cancel``).

    Called during a step attempt (a ``script``, or an executor of a ``call``), the
    program's stdout and stderr are also kept with the step (a bounded tail of each,
    ``FlowEngine(output_tail_bytes=...)``), shown by ``runkon logs``.

    Raises:
        OSError: the program could not be started (not found, not executable, ...).
    """
    # Shielded: a cancellation landing mid-spawn must not lose the process handle (the
    # process may already run and fork); it is delivered right after.
    with anyio.CancelScope(shield=True):
        process = await anyio.open_process(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    if on_start is not None:
        on_start(process)
    stdout = TailBuffer(STDOUT_LIMIT)
    stderr = TailBuffer(STDERR_LIMIT)
    capture = current_capture()
    try:
        with anyio.move_on_after(math.inf if timeout is None else timeout) as deadline:
            await _communicate(process, stdout, stderr, capture)
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
    return ProgramResult(
        returncode=None if deadline.cancelled_caught else process.returncode,
        stdout=stdout.data.decode("utf-8", errors="replace"),
        stderr=stderr.data.decode("utf-8", errors="replace"),
        timed_out=deadline.cancelled_caught,
    )


async def kill_process_group(process: Process) -> None:
    """Stop the process and everything it started: SIGTERM to the group, then SIGKILL to
    the group after a grace period.

    The SIGKILL is sent whether or not the leader exited on SIGTERM: a child that ignores
    SIGTERM must not outlive the step. The grace ends early once the whole group is gone.
    """
    if process.returncode is not None:
        _signal_group(process.pid, signal.SIGKILL)  # whatever it left behind
        return
    _signal_group(process.pid, signal.SIGTERM)
    with anyio.move_on_after(KILL_GRACE):
        await process.wait()
        while _group_alive(process.pid):  # noqa: ASYNC110 (no event to wait on)
            await anyio.sleep(0.05)
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _communicate(
    process: Process, stdout: TailBuffer, stderr: TailBuffer, capture: OutputCapture | None
) -> None:
    """Collect output until the process exits and its pipes close.

    A background grandchild may keep the pipes open after the program exits: after
    ``DRAIN_GRACE`` seconds the rest of the process group is killed and reading stops.
    """
    assert process.stdout is not None
    assert process.stderr is not None
    done = [anyio.Event(), anyio.Event()]
    stdout_sinks, stderr_sinks = [stdout], [stderr]
    if capture is not None:
        kept_stdout, kept_stderr = capture.streams()
        stdout_sinks.append(kept_stdout)
        stderr_sinks.append(kept_stderr)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_drain, process.stdout, stdout_sinks, done[0])
        tg.start_soon(_drain, process.stderr, stderr_sinks, done[1])
        await process.wait()
        with anyio.move_on_after(DRAIN_GRACE):
            for event in done:
                await event.wait()
        if not all(event.is_set() for event in done):
            _signal_group(process.pid, signal.SIGKILL)
        tg.cancel_scope.cancel()


async def _drain(stream: ByteReceiveStream, sinks: list[TailBuffer], done: anyio.Event) -> None:
    try:
        async for chunk in stream:
            for sink in sinks:
                sink.write(chunk)
    finally:
        done.set()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
