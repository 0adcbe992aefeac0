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
