"""What validation found: errors and warnings, each with a message, a hint and a place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runkon.errors import WorkflowValidationError


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a ``.wf`` source: ``source:line:col`` (1-based)."""

    source: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem validation found.

    ``str(issue)`` reads ``source:line:col: message (hint: ...)``.
    """

    message: str
    severity: Literal["error", "warning"] = "error"
    hint: str | None = None
    location: Location | None = None

    def __str__(self) -> str:
        text = self.message if self.location is None else f"{self.location}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The result of :func:`runkon.validate_workflow`: errors (the workflow cannot run)
    and warnings (it can, but probably not as meant)."""

    errors: tuple[ValidationIssue, ...] = ()
    warnings: tuple[ValidationIssue, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def raise_for_errors(self, workflow_name: str) -> None:
        """Raise :class:`~runkon.errors.WorkflowValidationError` if there are errors."""
        if self.errors:
            raise WorkflowValidationError(
                workflow_name, self, [str(issue) for issue in self.errors]
            )
