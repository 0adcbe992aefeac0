"""runkon's exception hierarchy.

Every error runkon raises derives from :class:`RunkonError`. Subclasses are grouped by
what callers catch: DSL errors (:class:`DslError`), execution errors
(:class:`ExecutionError`), gate errors (:class:`GateError`) and persistence errors
(:class:`StoreError`). Structured fields (``source``, ``line``, ``col``, ``run_id``, ...)
live on the exception; the message is built in ``__init__`` and says what is wrong and
what to do.

This module imports nothing else of runkon, so every layer may use it.
"""

from __future__ import annotations

__all__ = (
    "CorruptRecordError",
    "DatabaseLockedError",
    "DatabaseReadOnlyError",
    "DslError",
    "DslSyntaxError",
    "ExecutionError",
    "GateError",
    "InvalidSelectionError",
    "InvalidTransitionError",
    "LeaseLostError",
    "RunkonError",
    "SchemaVersionError",
    "SelectionRequiredError",
    "StoreBackendError",
    "StoreClosedError",
    "StoreError",
    "UnknownFanOutItemError",
    "UnknownGateError",
    "UnknownRunError",
    "UnknownStepError",
    "WorkflowNotFoundError",
    "WorkflowValidationError",
)


class RunkonError(Exception):
    """Root of every error runkon raises."""


# --------------------------------------------------------------------------- DSL


class DslError(RunkonError):
    """A workflow definition could not be loaded, parsed or validated."""


class DslSyntaxError(DslError):
    """A ``.wf`` text is not valid DSL.

    The message reads ``source:line:col: what is wrong``; ``expected`` and ``found``
    name the tokens involved when the error is a mismatch, and ``hint`` (if any) says how
    to fix it.

    Attributes:
        source: the file name (or ``"<string>"``) the text came from.
        line: 1-based line of the offending token.
        col: 1-based column of the offending token.
        problem: the bare description, without the location prefix.
        expected: what the parser expected at this point, if it expected something.
        found: what it found instead, if relevant.
        hint: how to fix it, if runkon can tell.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        line: int,
        col: int,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.col = col
        self.expected = expected
        self.found = found
        self.hint = hint
        message = f"{source}:{line}:{col}: {problem}"
        if hint:
            message += f" (hint: {hint})"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor: teach pickle (multiprocessing, pytest-xdist) to rebuild it.
        return (_rebuild_syntax_error, (self.problem, self.__dict__.copy()))


def _rebuild_syntax_error(problem: str, fields: dict[str, object]) -> DslSyntaxError:
    err = DslSyntaxError.__new__(DslSyntaxError)
    err.__dict__.update(fields)
    Exception.__init__(err, f"{fields['source']}:{fields['line']}:{fields['col']}: {problem}")
    return err


class WorkflowNotFoundError(DslError):
    """A workflow resolver has no workflow of this name."""

    def __init__(self, name: str, *, detail: str | None = None) -> None:
        self.name = name
        self.detail = detail
        message = f"workflow {name!r} not found"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class WorkflowValidationError(DslError):
    """A workflow failed validation; ``report`` holds every problem found.

    ``report`` is a :class:`runkon.dsl.ValidationReport`; it is typed loosely here so
    that this module stays free of imports.
    """

    def __init__(self, workflow_name: str, report: object, errors: list[str]) -> None:
        self.workflow_name = workflow_name
        self.report = report
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(
            f"workflow {workflow_name!r} failed validation with {len(errors)} error(s); "
            f"fix them and start it again:\n{lines}"
        )


# --------------------------------------------------------------------------- execution


class ExecutionError(RunkonError):
    """A run could not be started, resumed or continued."""


# --------------------------------------------------------------------------- gates


class GateError(RunkonError):
    """A gate decision was refused (unknown gate, invalid selection, ...)."""


class UnknownGateError(GateError):
    """No gate matches the given run and gate name or step id."""

    def __init__(self, run_id: str | None, gate: str) -> None:
        self.run_id = run_id
        self.gate = gate
        where = f" in run {run_id!r}" if run_id else ""
        super().__init__(
            f"no gate {gate!r}{where}; list waiting gates with `runkon gates` or "
            "engine.waiting_gates() and use one of those names"
        )


# --------------------------------------------------------------------------- persistence


class StoreError(RunkonError):
    """A persistence operation failed. Backend exceptions are chained as ``__cause__``."""


class StoreClosedError(StoreError):
    """The store was used outside its ``async with`` block."""

    def __init__(self, store: str) -> None:
        super().__init__(f"{store} is not open; use it inside `async with store:`")


class UnknownRunError(StoreError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"unknown run {run_id!r}; check the id with `runkon runs`")


class UnknownStepError(StoreError):
    """No step has this id."""

    def __init__(self, step_id: str) -> None:
        self.step_id = step_id
        super().__init__(f"unknown step {step_id!r}; check the id with `runkon show RUN`")


class LeaseLostError(StoreError):
    """A run-scoped write carried a lease generation that is no longer current.

    Another engine owns the run now; the writer must stop working on it.
    """

    def __init__(self, run_id: str, *, expected: int, actual: int | None) -> None:
        self.run_id = run_id
        self.expected = expected
        self.actual = actual
        now = "holds no lease" if actual is None else f"is at generation {actual}"
        super().__init__(
            f"lease on run {run_id!r} lost: write carried generation {expected} but the run "
            f"{now}; another engine owns it now, so this one must stop"
        )


class CorruptRecordError(StoreError):
    """A stored row holds data runkon cannot read (e.g. malformed JSON)."""

    def __init__(self, table: str, row_id: str, column: str, detail: str) -> None:
        self.table = table
        self.row_id = row_id
        self.column = column
        super().__init__(
            f"corrupted {column!r} in {table} row {row_id!r}: {detail}; "
            "repair or clear the value by hand"
        )


class DatabaseLockedError(StoreError):
    """The database stayed locked by another connection longer than the busy timeout."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(
            f"database {path!r} is locked by another connection ({detail}); "
            "retry, or raise busy_timeout"
        )


class DatabaseReadOnlyError(StoreError):
    """The database file (or its directory) cannot be written."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(
            f"database {path!r} is read-only ({detail}); "
            "check the permissions of the file and its directory"
        )


# --------------------------------------------------------------------------- added by the store


class InvalidSelectionError(GateError):
    """A gate approval's selections break the gate's rules.

    Raised when a selection is not among the gate's options, when a gate without
    options gets selections, and when a ``select = one`` gate gets more than one (also
    across the approvals of a gate that needs several: they must agree). Its
    subclass :class:`SelectionRequiredError` is raised when a gate needs a choice and
    got none. The message lists the gate's options and says how to choose.

    Attributes:
        step_id: the gate step.
        invalid: the selections that break the rules (empty when none were chosen).
        allowed: the option values the gate offers (empty when it has no options).
        select: ``"one"`` if the gate takes exactly one option, else ``"many"``.
        gate_name: the gate's name, when known.
        earlier: for a ``select = one`` gate needing several approvals, the option the
            earlier approvals chose when this one chose another (else empty).
    """

    def __init__(
        self,
        step_id: str,
        *,
        invalid: list[str],
        allowed: list[str],
        select: str = "many",
        gate_name: str | None = None,
        earlier: list[str] | None = None,
    ) -> None:
        self.step_id = step_id
        self.invalid = invalid
        self.allowed = allowed
        self.select = select
        self.gate_name = gate_name
        self.earlier: list[str] = earlier or []
        super().__init__(self._message(_gate_words(step_id, gate_name)))

    def _message(self, gate: str) -> str:
        if self.earlier:
            return (
                f"{gate} takes exactly one option and earlier approvals chose "
                f"{self.earlier[0]!r}; approve with {self.earlier[0]!r} too, or reject it"
            )
        if not self.allowed:
            return (
                f"{gate} has no options, but selections {self.invalid!r} were given; "
                "approve it without selections"
            )
        unknown = [value for value in self.invalid if value not in self.allowed]
        if unknown:
            return f"selections {unknown!r} are not options of {gate}; {_choose(self)}"
        return f"{gate} takes exactly one option, got {self.invalid!r}; {_choose(self)}"


class SelectionRequiredError(InvalidSelectionError):
    """A gate with options was approved without choosing one.

    A gate that offers options needs an explicit choice unless its workflow says
    ``allow_none = true``. Same attributes as :class:`InvalidSelectionError`
    (``invalid`` is empty).
    """

    def __init__(
        self,
        step_id: str,
        *,
        allowed: list[str],
        select: str = "many",
        gate_name: str | None = None,
    ) -> None:
        super().__init__(step_id, invalid=[], allowed=allowed, select=select, gate_name=gate_name)

    def _message(self, gate: str) -> str:
        return f"{gate} offers options and needs a choice; {_choose(self)}"


def _gate_words(step_id: str, gate_name: str | None) -> str:
    return f"gate {gate_name!r} (step {step_id!r})" if gate_name else f"gate step {step_id!r}"


def _choose(error: InvalidSelectionError) -> str:
    how_many = "exactly one" if error.select == "one" else "one or more"
    return f"choose {how_many} of {error.allowed!r}"


class InvalidTransitionError(StoreError):
    """A write asked for a status change the store never makes.

    A finished run or step (``completed``, ``failed``, ``cancelled``, ``skipped``,
    ``timed_out``) is never overwritten, and a run marked ``cancelling`` only moves on to
    a finished status.

    Attributes:
        entity: ``"run"`` or ``"step"``.
        entity_id: the id of the run or step.
        current: its status now.
        requested: the status the write asked for.
    """

    def __init__(self, entity: str, entity_id: str, *, current: str, requested: str) -> None:
        self.entity = entity
        self.entity_id = entity_id
        current, requested = str(current), str(requested)  # plain text, also for status enums
        self.current: str = current
        self.requested: str = requested
        if current == "cancelling":
            why = "a cancellation was requested, so it may only finish"
        else:
            why = "it has finished, and a finished record is never changed"
        super().__init__(
            f"{entity} {entity_id!r} cannot go from {current!r} to {requested!r}: {why}; "
            f"read its status again and stop writing to it"
        )


class UnknownFanOutItemError(StoreError):
    """No fan-out item row has this id (in the given run)."""

    def __init__(self, item_row_id: str) -> None:
        self.item_row_id = item_row_id
        super().__init__(
            f"unknown fan-out item {item_row_id!r}; use the ids returned by "
            "insert_fan_out_items or get_fan_out_items"
        )


class SchemaVersionError(StoreError):
    """The database was written by a newer runkon whose schema this one does not know."""

    def __init__(self, path: str, *, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"database {path!r} has runkon schema version {found}, but this runkon knows "
            f"versions up to {supported}; upgrade runkon to open it"
        )


class StoreBackendError(StoreError):
    """The database failed in a way runkon has no narrower error for.

    Examples: the file is not a SQLite database, it is corrupted, or the disk failed.
    The backend's own exception is chained as ``__cause__``.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"database {path!r} failed: {detail}; check that the path names a database "
            "runkon created (or the canonical schema) and that the disk is healthy"
        )
