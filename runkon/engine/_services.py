"""What every run of an engine shares: the store, the registries, the gate waiters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runkon.dsl import WorkflowDef, WorkflowResolver
from runkon.engine._capture import DEFAULT_OUTPUT_TAIL_BYTES
from runkon.engine._gates import GateWaiters
from runkon.engine._protocols import GateResolver, ItemProvider, ScriptEnvProvider
from runkon.engine._registry import ActionRegistry
from runkon.persistence import Store

if TYPE_CHECKING:
    from runkon.engine._result import WorkflowResult
    from runkon.engine._state import RunState


@dataclass(frozen=True, slots=True)
class ChildRequest:
    """A child run to start (or continue) for ``call workflow`` or a ``foreach`` item."""

    workflow: WorkflowDef
    inputs: Mapping[str, str]
    parent_step_id: str
    iteration: int
    existing_run_id: str | None = None
    on_started: Callable[[str], Awaitable[None]] | None = None
    """Called with the child's run id once its record exists (before it runs), also
    when an existing child is resumed; it records the id where the parent finds it
    again after a crash (and must do nothing if it is already recorded)."""
    as_identity: str | None = None
    """Identity for the child's steps that name none (``call workflow x { as = ... }``)."""


RunChild = Callable[["RunState", ChildRequest], Awaitable["WorkflowResult"]]


@dataclass(eq=False)
class EngineServices:
    """The engine's shared collaborators, handed to every node function."""

    store: Store
    actions: ActionRegistry
    item_providers: dict[str, ItemProvider]
    gate_resolvers: dict[str, GateResolver]
    workflows: WorkflowResolver | None
    script_env: ScriptEnvProvider | None
    working_dir: Path | None  # default of new runs; None: the cwd when each starts
    run_child: RunChild
    schema_resolver: Callable[[str], Any] | None = None
    default_as_identity: str | None = None
    injected_variables: Mapping[str, str] = field(default_factory=dict)
    gates: GateWaiters = field(default_factory=GateWaiters)
    output_tail_bytes: int = DEFAULT_OUTPUT_TAIL_BYTES

    def resolve_schema(self, name: str | None) -> Any:
        """The output schema object for ``name`` (None without a resolver or a name)."""
        if name is None or self.schema_resolver is None:
            return None
        return self.schema_resolver(name)
