"""Extension points: what hosts plug into the engine, as async ``typing.Protocol``s.

Each mirrors a runkon-flow trait (reference §4), made async. A plain ``async def`` is
accepted wherever a one-method executor is expected (see :class:`ActionRegistry`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = (
    "ActionCallable",
    "ActionExecutor",
    "ActionOutput",
    "ActionParams",
    "BaseItemProvider",
    "FanOutItem",
    "GateRequest",
    "GateResolver",
    "GateVerdict",
    "ItemProvider",
    "ProviderContext",
    "ScriptEnvProvider",
    "StepContext",
)


@dataclass(slots=True)
class StepContext:
    """Where a step runs: the run, the step's identity and the environment.

    Built fresh for every attempt; treat it as read-only (it is not frozen only because
    building it sits on the engine's hot path).

    Attributes:
        run_id: the run's id.
        workflow_name: the running workflow.
        step_id: the id of this attempt's step record (the ``execution_id`` passed to
            an executor's ``cancel``).
        step_name: the step's name (agent label, script name, ...).
        step_key: the step's unique identity within the run (stable across resumes).
        attempt: 0 for the first attempt, 1 for the first retry, ...
        iteration: the innermost enclosing loop's iteration (0 outside loops).
        working_dir: the directory scripts run in.
        dry_run: the run is a dry run.
        parent_run_id: the parent run of a child workflow.
        depth: nesting depth of the run (0 at top level).
        timeout: the step's timeout in seconds, if it has one (the engine enforces it).
    """

    run_id: str
    workflow_name: str
    step_id: str
    step_name: str
    step_key: str
    attempt: int = 0
    iteration: int = 0
    working_dir: Path = field(default_factory=Path.cwd)  # the engine always passes it
    dry_run: bool = False
    parent_run_id: str | None = None
    depth: int = 0
    timeout: float | None = None


@dataclass(slots=True)
class ActionParams:
    """What a ``call`` asks of its executor (fresh per attempt; treat it as read-only).

    Attributes:
        name: the agent as written (a name or a path).
        inputs: the variable map (§3.4): inputs, ``prior_context``, ``gate_feedback``,
            ``gate_feedback_text`` (the feedback text even when selections were made), ...
        retries_remaining: attempts left after this one.
        retry_error: the previous attempt's error, on a retry.
        snippets: ``with`` snippets (enclosing ``do``/``parallel`` blocks' first).
        dry_run: the run is a dry run: the executor decides what that means.
        gate_feedback: the latest gate feedback (or the selections, joined by ``, ``).
        gate_selections: the latest gate's selected options.
        output: the output schema name (``output = ...``), if any.
        output_schema: that schema as resolved by the engine's ``schema_resolver``.
        as_identity: the identity to act as (``as = ...``, else the engine default).
        plugin_dirs: plugin directories.
        max_turns: the call's ``max_turns``.
        extensions: anything else the host wants to pass along.
    """

    name: str
    inputs: Mapping[str, str]
    retries_remaining: int = 0
    retry_error: str | None = None
    snippets: tuple[str, ...] = ()
    dry_run: bool = False
    gate_feedback: str | None = None
    gate_selections: tuple[str, ...] = ()
    output: str | None = None
    output_schema: Any = None
    as_identity: str | None = None
    plugin_dirs: tuple[str, ...] = ()
    max_turns: int | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionOutput:
    """What an executor reports.

    Attributes:
        markers: flags later conditions test (``if step.marker``).
        context: a summary passed on as ``{{prior_context}}``.
        result_text: the step's result text (stored on the step).
        structured_output: JSON text, or a dict/list that the engine serialises.
        metadata: metrics (``cost_usd``, ``num_turns``, ``duration_ms``, token counts)
            and anything else, as strings.
        child_run_id: a run the executor started, if any.
    """

    markers: Sequence[str] = ()
    context: str | None = None
    result_text: str | None = None
    structured_output: str | dict[str, Any] | list[Any] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    child_run_id: str | None = None

    def structured_json(self) -> str | None:
        """``structured_output`` as JSON text."""
        if self.structured_output is None or isinstance(self.structured_output, str):
            return self.structured_output
        return json.dumps(self.structured_output, ensure_ascii=False)


@runtime_checkable
class ActionExecutor(Protocol):
    """Runs ``call`` steps. Register by ``name``; an optional ``cancel(execution_id)``
    coroutine is called when a running attempt is cancelled or times out."""

    name: str

    async def execute(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        """Run one attempt. Raise any exception to fail it (it may be retried)."""
        ...


ActionCallable = Callable[[StepContext, ActionParams], Awaitable[ActionOutput | None]]
"""A plain ``async def fn(ctx, params)`` used as an executor; ``None`` means no output."""


@dataclass(frozen=True, slots=True)
class FanOutItem:
    """One item a ``foreach`` fans out over.

    ``context`` entries become the child's ``item.<key>`` inputs, next to ``item.id``,
    ``item.type`` and ``item.ref``.
    """

    item_id: str
    item_type: str = "item"
    item_ref: str = ""
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What an :class:`ItemProvider` knows about the ``foreach`` asking it."""

    run_id: str
    workflow_name: str
    step_id: str
    step_name: str
    inputs: Mapping[str, str]


@runtime_checkable
class ItemProvider(Protocol):
    """Supplies ``foreach`` items. Register by ``name`` (the ``over = ...`` value).

    Subclass :class:`BaseItemProvider` for defaults of the optional hooks
    (``parse_scope``, ``scope_warnings``, ``requires_filter``, ``validate_filter``,
    ``supports_ordered``, ``dependencies``).
    """

    name: str

    async def items(
        self, ctx: ProviderContext, scope: object, filter: Mapping[str, str]
    ) -> Sequence[FanOutItem]:
        """The items to fan out over."""
        ...


class BaseItemProvider:
    """Defaults for the optional :class:`ItemProvider` hooks."""

    name: str = ""

    def parse_scope(self, scope: Mapping[str, str] | None) -> object:
        """Turn the raw ``scope = {...}`` map into what :meth:`items` receives.

        Raises:
            ValueError: the scope is invalid (reported by validation).
        """
        if scope:
            raise ValueError(f"provider {self.name!r} does not support scope")
        return None

    def scope_warnings(self, scope: Mapping[str, str] | None) -> Sequence[str]:
        return ()

    def requires_filter(self) -> bool:
        return False

    def validate_filter(self, filter: Mapping[str, str]) -> None:
        """Raise ValueError for a filter this provider cannot apply."""

    def supports_ordered(self) -> bool:
        return False

    async def dependencies(
        self, ctx: ProviderContext, items: Sequence[FanOutItem]
    ) -> Sequence[tuple[str, str]]:
        """``(blocker_id, dependent_id)`` edges between items, for ``ordered = true``."""
        return ()

    async def items(
        self, ctx: ProviderContext, scope: object, filter: Mapping[str, str]
    ) -> Sequence[FanOutItem]:
        raise NotImplementedError


@runtime_checkable
class ScriptEnvProvider(Protocol):
    """Extra environment for ``script`` steps (e.g. ``PATH``, a token for ``as``)."""

    async def env(self, ctx: StepContext, as_identity: str | None) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class GateRequest:
    """A waiting gate, as its :class:`GateResolver` sees it."""

    run_id: str
    workflow_name: str
    step_id: str
    gate_name: str
    gate_type: str
    prompt: str | None
    options: tuple[str, ...]
    min_approvals: int
    approval_mode: str
    deadline_at: datetime | None
    as_identity: str | None
    inputs: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """A resolver's verdict."""

    approved: bool
    feedback: str | None = None
    selections: tuple[str, ...] = ()
    by: str = "resolver"
    kind: Literal["decision"] = "decision"


@runtime_checkable
class GateResolver(Protocol):
    """Decides gates of one ``gate_type`` on its own schedule (e.g. polling GitHub every
    30 s for a PR's approvals).

    ``resolve`` is started when the gate opens and CANCELLED the moment the gate is
    decided any other way (an approval, a timeout, the run's cancellation). It returns
    a :class:`GateVerdict`, or None to leave the gate to people and the deadline.
    """

    gate_type: str

    async def resolve(self, gate: GateRequest) -> GateVerdict | None: ...
