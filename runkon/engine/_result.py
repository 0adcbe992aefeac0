"""What a run gives back: :class:`WorkflowResult`, awaited through a :class:`RunHandle`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from runkon.errors import RunkonError
from runkon.persistence import RunStatus

if TYPE_CHECKING:
    from runkon.engine._engine import FlowEngine


@dataclass(frozen=True, slots=True)
class WorkflowResult:
    """The outcome of a finished run.

    A failed run is a result with ``succeeded=False``, not an exception.

    Attributes:
        run_id: the run's id.
        workflow_name: the workflow that ran.
        status: ``completed``, ``failed`` or ``cancelled``.
        error: the first error (for ``failed``), or the cancellation reason.
        summary: one line per step, as stored in the run's ``result_summary``.
        duration_ms: wall-clock time of this execution.
        metrics: totals reported by steps (cost, turns, tokens).
    """

    run_id: str
    workflow_name: str
    status: RunStatus
    error: str | None = None
    summary: str = ""
    duration_ms: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """True when the run completed."""
        return self.status == RunStatus.COMPLETED


class RunHandle:
    """A started run: its id, and a way to wait for it or cancel it."""

    def __init__(self, engine: FlowEngine, run_id: str, workflow_name: str) -> None:
        self._engine = engine
        self.run_id = run_id
        self.workflow_name = workflow_name
        self._done: anyio.Event | None = None  # created only if someone waits early
        self._finished = False
        self._result: WorkflowResult | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "done" if self._finished else "running"
        return f"<RunHandle {self.run_id} {self.workflow_name!r} {state}>"

    @property
    def done(self) -> bool:
        """True once the run stopped (finished, or stopped by shutdown or lease loss)."""
        return self._finished

    async def result(self, *, timeout: float | None = None) -> WorkflowResult:
        """Wait for the run to finish and return its result.

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the run goes on).
            LeaseLostError: another engine took the run over.
            ExecutionError: the engine shut down before the run finished (resume it
                later with ``engine.resume(run_id)``).
        """
        if not self._finished:
            if self._done is None:
                self._done = anyio.Event()
            with anyio.fail_after(math.inf if timeout is None else timeout):
                await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    async def cancel(self, reason: str | None = None) -> bool:
        """Cancel the run (see :meth:`FlowEngine.cancel_run`)."""
        return await self._engine.cancel_run(self.run_id, reason=reason)

    def _finish(self, result: WorkflowResult | None, error: BaseException | None) -> None:
        self._result = result
        self._error = error
        self._finished = True
        if self._done is not None:
            self._done.set()


class EngineShutdownError(RunkonError):
    """The engine stopped before the run finished; the run can be resumed.

    Not an :class:`~runkon.errors.ExecutionError`: nothing failed, and code that handles
    failures must not swallow a shutdown."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"the engine shut down before run {run_id!r} finished; "
            "resume it with engine.resume(run_id) or `runkon resume`"
        )
