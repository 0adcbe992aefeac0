"""Execution errors raised by the engine (kept here until they join runkon.errors)."""

from __future__ import annotations

from runkon.errors import ExecutionError


class InputError(ExecutionError):
    """A run's inputs do not fit the workflow's ``inputs`` block."""


class RunAlreadyOwnedError(ExecutionError):
    """Another engine holds a live lease on the run."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id!r} is owned by another engine (its lease is live); "
            "wait for that engine to stop or for the lease to expire"
        )


class WorkingDirectoryError(ExecutionError):
    """A run's working directory cannot be used: it is gone, or it is not a directory.

    Raised by ``FlowEngine.start`` for a ``working_dir`` that is not a directory, and by
    ``FlowEngine.resume`` (and recovery, which then skips the run) before the run is
    claimed, so that the run stays resumable once the directory is back.

    Attributes:
        run_id: the run, or None when a new run was refused.
        working_dir: the directory, as given or as stored with the run.
    """

    def __init__(self, run_id: str | None, working_dir: str) -> None:
        self.run_id = run_id
        self.working_dir = working_dir
        if run_id is None:
            message = (
                f"working directory {working_dir!r} is not a directory; "
                "create it or pass an existing one as working_dir"
            )
        else:
            message = (
                f"run {run_id!r} runs its steps in {working_dir!r}, which is no longer a "
                "directory; recreate it (the run stays resumable) and resume the run again"
            )
        super().__init__(message)
