"""``FlowEngine``: runs workflows against a store, one task per run, nothing polling."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from runkon._log import get_logger
from runkon.dsl import (
    DirectoryWorkflowResolver,
    ForEachNode,
    InMemoryWorkflowResolver,
    Location,
    ValidationIssue,
    ValidationReport,
    WorkflowDef,
    WorkflowResolver,
    validate_workflow,
    workflow_refs,
)
from runkon.engine._attempts import describe_error
from runkon.engine._capture import DEFAULT_OUTPUT_TAIL_BYTES
from runkon.engine._errors import RunAlreadyOwnedError, WorkingDirectoryError
from runkon.engine._event_stream import follow_events, stored_events
from runkon.engine._gates import GateWaiters
from runkon.engine._inputs import apply_inputs
from runkon.engine._interpreter import execute_nodes
from runkon.engine._protocols import GateResolver, ItemProvider, ScriptEnvProvider
from runkon.engine._registry import Action, ActionRegistry
from runkon.engine._result import EngineShutdownError, RunHandle, WorkflowResult
from runkon.engine._services import ChildRequest, EngineServices
from runkon.engine._state import Metrics, RunState, event
from runkon.engine._summary import build_summary
from runkon.errors import (
    CorruptRecordError,
    ExecutionError,
    InvalidTransitionError,
    LeaseLostError,
    StoreError,
    UnknownGateError,
    WorkflowValidationError,
)
from runkon.events import (
    EngineEvent,
    EventBus,
    EventSink,
    EventType,
    LeaseLost,
    event_from_record,
)
from runkon.persistence import (
    MEMO_PREFIX,
    EventRecord,
    GateReceipt,
    NewRun,
    NotificationKind,
    RunRecord,
    RunStatus,
    StepRole,
    Store,
    WaitingGate,
)

_log = get_logger("runkon.engine")
LEASE_BATCH_SECONDS = 0.005  # renewal batches are sized to take about this long
LEASE_BATCH_MAX = 20_000

WorkflowsArg = WorkflowResolver | str | os.PathLike[str] | Mapping[str, WorkflowDef] | None


def _as_resolver(workflows: WorkflowsArg) -> WorkflowResolver | None:
    if workflows is None or hasattr(workflows, "resolve"):
        return workflows  # type: ignore[return-value]
    if isinstance(workflows, str | os.PathLike):
        return DirectoryWorkflowResolver(workflows)
    return InMemoryWorkflowResolver(workflows)


def _run_options(
    fail_fast: bool, working_dir: Path, memo: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What a run keeps of how it was started, so a resume behaves the same."""
    options = {"fail_fast": "true" if fail_fast else "false", "working_dir": str(working_dir)}
    for key, value in (memo or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"memo entries must be strings, got {key!r}: {value!r}")
        options[MEMO_PREFIX + key] = value
    return options


def _stored_working_dir(run: RunRecord) -> Path | None:
    """The run's working directory as stored with it (None for runs from before)."""
    stored = run.working_dir
    return Path(stored) if stored else None


def _check_working_dir(run: RunRecord) -> None:
    """Refuse to resume ``run`` when its working directory is gone.

    Raises:
        WorkingDirectoryError: the stored directory is not a directory (any more).
    """
    directory = _stored_working_dir(run)
    if directory is not None and not directory.is_dir():
        raise WorkingDirectoryError(run.id, str(directory))


def _require_resolver(workflow: WorkflowDef, report: ValidationReport) -> ValidationReport:
    """Without a resolver, a workflow that calls children cannot run: say so up front."""
    missing = [
        ValidationIssue(
            f"{'foreach' if isinstance(node, ForEachNode) else 'call workflow'} needs "
            f"workflow {name!r}, but the engine has no workflow resolver",
            hint="pass workflows=DirectoryWorkflowResolver('flows/') (or a mapping) to FlowEngine",
            location=Location(workflow.source, node.line, node.col) if node.line else None,
        )
        for name, node in workflow_refs(workflow)
    ]
    if not missing:
        return report
    return ValidationReport((*report.errors, *missing), report.warnings)


@dataclass(eq=False, slots=True)
class _ActiveRun:
    state: RunState
    handle: RunHandle | None  # None for child runs (awaited by their parent)
    lease: tuple[str, str, int]  # (run id, owner, generation), as refresh_leases takes it


class FlowEngine:
    """Runs ``.wf`` workflows on a store.

    Use it as ``async with FlowEngine(store=..., actions=...) as engine:``; the block
    opens the store, starts the background services (one lease keeper for all runs, one
    notification listener) and, on exit, stops every run it still drives WITHOUT marking
    it cancelled — such runs stay resumable (``engine.resume(run_id)``). An exception
    raised in the block leaves it as itself, never wrapped in an ``ExceptionGroup``
    (see :meth:`__aexit__` for the one case where a group surfaces).

    Args:
        store: where runs live (``InMemoryStore()``, ``SqliteStore(path)``, ...).
        actions: name -> ``ActionExecutor`` or ``async def fn(ctx, params)``.
        fallback_action: executor for every call name not in ``actions``.
        gate_resolvers: ``GateResolver``s by their ``gate_type``.
        item_providers: ``ItemProvider``s by their ``name``.
        workflows: finds children of ``call workflow``/``foreach``: a resolver, a
            directory path, or a mapping of name -> WorkflowDef.
        script_env: extra environment for scripts.
        event_sinks: receivers of every event (each fed by its own task).
        working_dir: the default working directory of new runs (``start`` may give
            another): their scripts and action programs run there, also when resumed by
            a process started elsewhere. Default: the current directory when each run
            starts.
        schema_resolver: turns ``output = name`` into a schema object for executors.
        default_as_identity: identity for steps without ``as = ...``.
        injected_variables: host variables added to every step's variable map.
        fail_fast: stop a run at its first failed step (default True).
        dry_run: default for runs: gates auto-approve, scripts do not execute.
        lease_ttl: seconds a run's lease lasts without a refresh.
        lease_refresh_interval: seconds between the keeper's batched refreshes.
        recover: on start, resume runs whose lease expired (after a crash).
        manage_store: open and close the store with the engine (default True).
        event_buffer: events buffered per subscriber before the drop policy applies.
        output_tail_bytes: bytes kept of the stdout and of the stderr of each step
            attempt that runs programs (``script`` steps, and ``call`` executors running
            them through ``runkon.engine.run_program``, such as the CLI's actions
            directory): the END of each stream, stored with the step
            (``Store.get_step_output``, ``runkon logs``); the bytes dropped from the
            start are counted. Default 64 KiB; 0 keeps nothing.
        run_actions: chooses the executors of each run this engine RESUMES
            (``resume``, ``recover=True``), e.g. from what the run's starter noted in
            ``RunRecord.memo``: returns an ``ActionRegistry`` (used instead of
            ``actions``/``fallback_action`` for that run and its children) or None (the
            engine's). Called before the run is claimed; an ``ExecutionError`` (or any
            exception, wrapped in one) refuses the resume and leaves the run as it was.
            ``runkon serve`` uses it so that recovered runs keep their ``--actions``.
    """

    def __init__(
        self,
        store: Store,
        *,
        actions: Mapping[str, Action] | None = None,
        fallback_action: Action | None = None,
        gate_resolvers: Iterable[GateResolver] = (),
        item_providers: Iterable[ItemProvider] = (),
        workflows: WorkflowsArg = None,
        script_env: ScriptEnvProvider | None = None,
        event_sinks: Iterable[EventSink] = (),
        working_dir: str | os.PathLike[str] | None = None,
        schema_resolver: Any = None,
        default_as_identity: str | None = None,
        injected_variables: Mapping[str, str] | None = None,
        fail_fast: bool = True,
        dry_run: bool = False,
        lease_ttl: float = 30.0,
        lease_refresh_interval: float = 10.0,
        recover: bool = False,
        manage_store: bool = True,
        event_buffer: int = 1000,
        run_actions: Callable[[RunRecord], ActionRegistry | None] | None = None,
        output_tail_bytes: int = DEFAULT_OUTPUT_TAIL_BYTES,
    ) -> None:
        if lease_refresh_interval >= lease_ttl:
            raise ValueError("lease_refresh_interval must be shorter than lease_ttl")
        if (
            not isinstance(output_tail_bytes, int)
            or isinstance(output_tail_bytes, bool)
            or output_tail_bytes < 0
        ):
            raise ValueError(
                f"output_tail_bytes must be a whole number of bytes, 0 or more (0 keeps no "
                f"output), not {output_tail_bytes!r}"
            )
        self.store = store
        self.owner: str = f"engine-{uuid.uuid4().hex[:12]}"
        self.fail_fast = fail_fast
        self.dry_run = dry_run
        self.lease_ttl = lease_ttl
        self.lease_refresh_interval = lease_refresh_interval
        self.recover = recover
        self.manage_store = manage_store
        self.run_actions = run_actions
        self.events: EventBus = EventBus(event_sinks, max_buffer=event_buffer)
        self.services: EngineServices = EngineServices(
            store=store,
            actions=ActionRegistry(actions, fallback_action),
            item_providers={provider.name: provider for provider in item_providers},
            gate_resolvers={resolver.gate_type: resolver for resolver in gate_resolvers},
            workflows=_as_resolver(workflows),
            script_env=script_env,
            working_dir=Path(working_dir) if working_dir is not None else None,
            run_child=self._run_child,
            schema_resolver=schema_resolver,
            default_as_identity=default_as_identity,
            injected_variables=dict(injected_variables or {}),
            gates=GateWaiters(),
            output_tail_bytes=output_tail_bytes,
        )
        self.recovered: list[RunHandle] = []
        self._runs: dict[str, _ActiveRun] = {}
        self._validated: dict[int, tuple[WorkflowDef, str]] = {}  # id -> (wf, its JSON)
        self._tg: TaskGroup | None = None
        # Runs are plain asyncio tasks in an asyncio.TaskGroup: anyio's task handles carry
        # an Event each, which 100,000 waiting runs would pay for.
        self._run_tasks: asyncio.TaskGroup | None = None
        self._services_scope: anyio.CancelScope | None = None
        self._remove_listener: Any = None
        self._last_refresh = time.monotonic()
        self._lease_batch = 2_000  # adapted to the store's speed by refresh_leases

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise ExecutionError("this FlowEngine is already running")
        if self.manage_store:
            await self.store.__aenter__()
        self._remove_listener = self.store.add_event_listener(self._on_events)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._run_tasks = asyncio.TaskGroup()
        await self._run_tasks.__aenter__()
        self._services_scope = anyio.CancelScope()
        await self._tg.start(self._services)
        if self.recover:
            await self._recover()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Stop every run this engine drives (they stay resumable), then the background
        services, and close the store if the engine manages it.

        An exception leaving the block leaves as itself (never wrapped in an
        ``ExceptionGroup``): the background services are stopped without being handed
        it. Only a failure of runkon's own background services (the lease keeper, the
        notification listener, an event sink's feeder, e.g. on a store that stopped
        working) surfaces, as an ``ExceptionGroup`` holding it, when the block ended
        normally or was cancelled because of that failure; if the block raised an
        exception of its own meanwhile, that exception wins and the background failure
        is logged (logger ``runkon.engine``, level ERROR).
        """
        assert self._tg is not None
        own = exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class())
        try:
            with anyio.CancelScope(shield=True):
                for active in list(self._runs.values()):
                    active.state.shutdown = True
                for active in list(self._runs.values()):
                    active.state.cancel_scope.cancel()
                    for scope in active.state.always_scopes:
                        scope.cancel()
                if self._run_tasks is not None:
                    await self._run_tasks.__aexit__(None, None, None)
                if self._services_scope is not None:
                    self._services_scope.cancel()
        finally:
            try:
                self._run_tasks = None
                if own:
                    await self._stop_services_quietly()
                else:  # a cancellation must reach the task group that may have caused it
                    await self._tg.__aexit__(exc_type, exc, tb)
            finally:
                self._tg = None
                self.events.stop()
                if self._remove_listener is not None:
                    self._remove_listener()
                if self.manage_store:
                    await self.store.__aexit__(exc_type, exc, tb)
        return False

    async def _stop_services_quietly(self) -> None:
        """Leave the services' task group while the caller's own exception propagates:
        a background failure (or a cancellation) meanwhile must not replace it."""
        assert self._tg is not None
        try:
            await self._tg.__aexit__(None, None, None)
        except anyio.get_cancelled_exc_class():
            pass  # an enclosing scope's cancellation: it is delivered again at its next await
        except BaseException as failure:
            _log.error(
                "a background service failed while the engine's block raised",
                exc_info=failure,
            )

    def _register(self, state: RunState, handle: RunHandle | None) -> None:
        """Track a run this engine now drives (its lease joins the keeper's batch)."""
        lease = (state.run_id, self.owner, state.generation)
        self._runs[state.run_id] = _ActiveRun(state, handle, lease)

    def _check_open(self) -> asyncio.TaskGroup:
        if self._run_tasks is None:
            raise ExecutionError("the engine is not running; use it inside `async with engine:`")
        return self._run_tasks

    async def _services(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        assert self._services_scope is not None
        assert self._tg is not None
        with self._services_scope:
            async with anyio.create_task_group() as tg:
                await self.events.start(tg)
                await tg.start(self._listen)
                tg.start_soon(self._keep_leases, name="runkon lease keeper")
                task_status.started()

    # ----------------------------------------------------------------- events

    def _on_events(self, records: Sequence[EventRecord]) -> None:
        """Store listener: typed events go to the bus after each commit."""
        bus = self.events
        if not bus.has_consumers:
            return
        for record in records:
            if not bus.wants(record.run_id, record.type):
                continue
            try:
                typed = event_from_record(
                    record.run_id, record.seq, record.type, record.created_at, dict(record.data)
                )
            except ValueError as exc:
                _log.warning("unreadable event not published", type=record.type, error=str(exc))
                continue
            self.events.publish(typed)

    async def _listen(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Wake gate waiters and cancel runs as the store's notifications arrive."""
        async with self.store.notifications() as notes:
            task_status.started()
            async for note in notes:
                if note.kind == NotificationKind.GATE_DECIDED and note.step_id:
                    self.services.gates.wake(note.step_id)
                elif note.kind == NotificationKind.CANCEL_REQUESTED:
                    active = self._runs.get(note.run_id)
                    if active is not None and not active.state.cancel_scope.cancel_called:
                        active.state.log.info("cancellation requested elsewhere")
                        active.state.cancel_scope.cancel()

    # ----------------------------------------------------------------- leases

    async def _keep_leases(self) -> None:
        """Refresh every lease this engine holds in one batch per interval."""
        while True:
            await anyio.sleep(self.lease_refresh_interval)
            await self.refresh_leases()

    async def refresh_leases(self) -> set[str]:
        """Renew all held leases now; stop the runs whose lease was lost. Returns those."""
        leases = [active.lease for active in self._runs.values()]
        if not leases:
            self._last_refresh = time.monotonic()
            return set()
        try:
            lost: set[str] = set()
            start = 0
            while start < len(leases):
                # Batches sized to take ~5 ms each, with as long a pause after each:
                # renewing 100,000 leases in one go would stall the event loop (and every
                # gate's timer) for 150-200 ms, and back-to-back batches would still add
                # a batch to each await of a run resuming meanwhile.
                batch = leases[start : start + self._lease_batch]
                began = time.perf_counter()
                lost |= await self.store.refresh_leases(batch, self.lease_ttl)
                took = max(time.perf_counter() - began, 1e-4)
                start += len(batch)
                self._lease_batch = max(
                    100, min(LEASE_BATCH_MAX, int(len(batch) * LEASE_BATCH_SECONDS / took))
                )
                if start < len(leases):
                    await anyio.sleep(min(took, LEASE_BATCH_SECONDS * 2))
            self._last_refresh = time.monotonic()
        except StoreError as exc:
            _log.warning("lease refresh failed; retrying", error=str(exc))
            if time.monotonic() - self._last_refresh < self.lease_ttl:
                return set()
            lost = {run_id for run_id, _, _ in leases}  # our leases have expired by now
        for run_id in lost:
            active = self._runs.get(run_id)
            if active is not None and not active.state.lease_lost:
                active.state.lease_lost = True
                active.state.log.warning("lease lost; stopping the run")
                active.state.cancel_scope.cancel()
                for scope in active.state.always_scopes:
                    scope.cancel()
        return lost

    # ----------------------------------------------------------------- starting runs

    def _snapshot(self, workflow: WorkflowDef) -> str | None:
        """The validated workflow's JSON snapshot (shared by all its runs), or None."""
        cached = self._validated.get(id(workflow))
        return cached[1] if cached is not None and cached[0] is workflow else None

    def _check_runnable(self, workflow: WorkflowDef, actions: ActionRegistry) -> None:
        """Validate ``workflow`` against the registries (with ``actions`` as executors).

        Raises:
            WorkflowValidationError: it has errors (all listed).
        """
        services = self.services
        report = validate_workflow(
            workflow,
            resolver=services.workflows,
            actions=actions.names,
            fallback_action=actions.fallback is not None,
            gate_types=set(services.gate_resolvers),
            item_providers=services.item_providers,
        )
        if services.workflows is None:
            report = _require_resolver(workflow, report)
        report.raise_for_errors(workflow.name)

    async def _check_runnable_async(self, workflow: WorkflowDef, actions: ActionRegistry) -> None:
        """:meth:`_check_runnable`, off the event loop when child workflows are read."""
        resolver = self.services.workflows
        if workflow_refs(workflow) and not (
            resolver is None or isinstance(resolver, InMemoryWorkflowResolver)
        ):
            await anyio.to_thread.run_sync(self._check_runnable, workflow, actions)
        else:
            self._check_runnable(workflow, actions)

    def _validate(self, workflow: WorkflowDef) -> None:
        if self._snapshot(workflow) is not None:
            return
        self._check_runnable(workflow, self.services.actions)
        if len(self._validated) > 256:
            self._validated.clear()
        self._validated[id(workflow)] = (workflow, workflow.to_json())

    async def _validate_async(self, workflow: WorkflowDef) -> str:
        """Validate (once per workflow object) and return the definition snapshot."""
        snapshot = self._snapshot(workflow)
        if snapshot is not None:
            return snapshot
        resolver = self.services.workflows
        if resolver is None or isinstance(resolver, InMemoryWorkflowResolver):
            self._validate(workflow)
        elif workflow_refs(workflow):
            await anyio.to_thread.run_sync(self._validate, workflow)
        else:
            self._validate(workflow)
        snapshot = self._snapshot(workflow)
        assert snapshot is not None
        return snapshot

    async def start(
        self,
        workflow: WorkflowDef,
        inputs: Mapping[str, object] | None = None,
        *,
        dry_run: bool | None = None,
        fail_fast: bool | None = None,
        trigger: str = "manual",
        working_dir: str | os.PathLike[str] | None = None,
        memo: Mapping[str, str] | None = None,
    ) -> RunHandle:
        """Create a run of ``workflow`` and start it; returns at once.

        The workflow is validated against the engine's registries first, and the inputs
        checked and completed with defaults, so a run that starts can run.

        Args:
            workflow: the workflow to run.
            inputs: its inputs (defaults are applied).
            dry_run: gates auto-approve, scripts do not execute (default: the engine's).
            fail_fast: stop at the first failed step (default: the engine's).
            trigger: what started the run, kept with it (``"manual"``, ``"api"``, ...).
            working_dir: the directory the run's ``script`` steps and action programs
                run in, kept with the run as an absolute path: a resume (``resume``,
                ``recover=True``, ``runkon resume``) runs them there too, wherever it is
                started (default: the engine's ``working_dir``, else the current
                directory).
            memo: the host's notes on how it started the run (strings), kept with the
                run and read back as ``RunRecord.memo``; e.g. the CLI notes its
                ``--actions`` there so ``runkon resume`` can load the same actions.

        Raises:
            WorkflowValidationError: the workflow has errors (all listed).
            InputError: inputs are missing, undeclared or ill-typed.
            WorkingDirectoryError: ``working_dir`` is not a directory.
            TypeError: a memo key or value is not a string.
        """
        tg = self._check_open()
        directory = self._working_dir(working_dir)
        snapshot = await self._validate_async(workflow)
        values = apply_inputs(workflow, inputs)
        dry = self.dry_run if dry_run is None else dry_run
        fail = self.fail_fast if fail_fast is None else fail_fast
        run = await self.store.create_run(
            NewRun(
                workflow_name=workflow.name,
                dry_run=dry,
                trigger=trigger,
                definition_snapshot=snapshot,
                inputs=values,
                workflow_title=workflow.title,
                options=_run_options(fail, directory, memo),
            )
        )
        generation = await self.store.acquire_lease(run.id, self.owner, self.lease_ttl)
        if generation is None:  # pragma: no cover - a brand-new run has no owner
            raise RunAlreadyOwnedError(run.id)
        state = RunState(
            self.services,
            run,
            workflow,
            generation,
            values,
            dry_run=dry,
            fail_fast=fail,
            working_dir=directory,
        )
        handle = RunHandle(self, run.id, workflow.name)
        self._register(state, handle)
        tg.create_task(self._drive(run.id), name=f"runkon run {run.id}")
        return handle

    def _working_dir(self, given: str | os.PathLike[str] | None, *, check: bool = True) -> Path:
        """The absolute working directory of a new run (see :meth:`start`); with
        ``check``, refused (WorkingDirectoryError) unless it is a directory."""
        if given is None:
            given = self.services.working_dir
        directory = Path(os.path.abspath(given if given is not None else os.getcwd()))
        if check and not directory.is_dir():
            raise WorkingDirectoryError(None, str(directory))
        return directory

    async def run(
        self,
        workflow: WorkflowDef,
        inputs: Mapping[str, object] | None = None,
        **options: Any,
    ) -> WorkflowResult:
        """Start a run and wait for its result (``start`` + ``result``)."""
        handle = await self.start(workflow, inputs, **options)
        return await handle.result()

    async def resume(self, run_id: str) -> RunHandle:
        """Continue a run from its persisted state.

        Completed steps are skipped and their outputs restored; a waiting gate keeps its
        original deadline; a ``cancelling`` run finishes its cancellation. Scripts and
        action programs run in the run's own working directory (see :meth:`start`), not
        this process's.

        The run's workflow (its definition snapshot) is validated against this engine's
        registries first, as :meth:`start` does, before the run is claimed: a run whose
        executors (or child workflows, gate types, item providers) are missing here is
        refused and left untouched, resumable by an engine that has them.

        Raises:
            UnknownRunError: no such run.
            CorruptRecordError: the run's definition snapshot cannot be read.
            WorkflowValidationError: this engine cannot run the workflow (e.g. an action
                has no executor); the run is left as it was.
            WorkingDirectoryError: the run's working directory is gone; the run is left
                as it was, resumable once the directory is back.
            ExecutionError: the run already finished, is a child run (resume its top-level
                run), or has no definition snapshot.
            RunAlreadyOwnedError: another engine holds a live lease on it.
        """
        tg = self._check_open()
        active = self._runs.get(run_id)
        if active is not None and active.handle is not None:
            return active.handle
        run = await self.store.get_run(run_id)
        if run.is_terminal:
            raise ExecutionError(f"run {run_id!r} already {run.status}; there is nothing to resume")
        if run.parent_run_id is not None:
            raise ExecutionError(
                f"run {run_id!r} is a child of run {run.parent_run_id!r}; resume that run"
            )
        _check_working_dir(run)
        workflow = _snapshot_workflow(run)
        actions = self._run_actions(run) if self.run_actions is not None else None
        await self._check_runnable_async(workflow, actions or self.services.actions)
        state = await self._resume_state(run, depth=0)
        state.actions = actions
        handle = RunHandle(self, run.id, state.workflow.name)
        self._register(state, handle)
        tg.create_task(self._drive(run.id), name=f"runkon run {run.id}")
        return handle

    def _run_actions(self, run: RunRecord) -> ActionRegistry | None:
        """The executors ``run_actions`` chooses for resuming ``run`` (None: the engine's).

        Raises:
            ExecutionError: ``run_actions`` failed (the run is left as it was).
        """
        assert self.run_actions is not None
        try:
            return self.run_actions(run)
        except ExecutionError:
            raise
        except Exception as exc:
            raise ExecutionError(
                f"run {run.id!r}: run_actions could not give its executors: {describe_error(exc)}"
            ) from exc

    async def _resume_state(
        self,
        run: RunRecord,
        depth: int,
        *,
        wait_for_lease: bool = False,
        parent: RunState | None = None,
    ) -> RunState:
        workflow = _snapshot_workflow(run)
        directory = _stored_working_dir(run)
        if directory is None:  # a run stored before runkon kept its directory
            if parent is not None:
                directory = parent.working_dir
            else:
                directory = self._working_dir(None, check=False)
        generation = await self.store.acquire_lease(run.id, self.owner, self.lease_ttl)
        if generation is None and wait_for_lease:
            generation = await self._await_expired_lease(run.id)
        if generation is None:
            raise RunAlreadyOwnedError(run.id)
        # The record read before the claim may be stale: the engine driving the run may
        # have finished it and let go of its lease in between (a `runkon cancel` racing
        # the process it cancels). Never drive a finished run again.
        run = await self.store.get_run(run.id)
        if run.is_terminal:
            await self.store.release_lease(run.id, self.owner, generation)
            raise ExecutionError(f"run {run.id!r} already {run.status}; there is nothing to resume")
        steps = await self.store.get_steps(run.id)
        state = RunState(
            self.services,
            run,
            workflow,
            generation,
            dict(run.inputs),
            depth=depth,
            dry_run=run.dry_run,
            fail_fast=run.options.get("fail_fast", "true" if self.fail_fast else "false") == "true",
            working_dir=directory,
            resumed=True,
        )
        state.load_history(steps)
        if run.status == RunStatus.CANCELLING:
            state.cancel_reason = run.cancel_reason
            state.cancel_scope.cancel()
        return state

    async def _await_expired_lease(self, run_id: str) -> int | None:
        """Claim a child run whose lease is about to run out (its parent's engine died;
        the child's lease was refreshed in the same batch, so it expires within a TTL)."""
        for _ in range(3):
            run = await self.store.get_run(run_id)
            if run.lease_until is None:
                delay = 0.0
            else:
                delay = (run.lease_until - datetime.now(UTC)).total_seconds() + 0.05
            if delay > 2 * self.lease_ttl:
                return None  # a live engine holds it for longer than a dead one could
            await anyio.sleep(max(delay, 0.0))
            generation = await self.store.acquire_lease(run_id, self.owner, self.lease_ttl)
            if generation is not None:
                return generation
        return None

    async def _recover(self) -> None:
        for run in await self.store.list_recoverable_runs():
            if run.parent_run_id is not None or run.id in self._runs:
                continue
            try:
                self.recovered.append(await self.resume(run.id))
            except (ExecutionError, StoreError, WorkflowValidationError) as exc:
                _log.warning("run not recovered; it stays resumable", run_id=run.id, error=str(exc))

    async def _run_child(self, parent: RunState, request: ChildRequest) -> WorkflowResult:
        """Run (or resume) a child workflow inline, in the parent's task."""
        existing = None
        if request.existing_run_id is not None:
            existing = await self.store.get_run(request.existing_run_id)
        if existing is not None and existing.is_terminal:
            return WorkflowResult(
                existing.id, existing.workflow_name, existing.status, existing.error
            )
        if existing is not None:
            state = await self._resume_state(
                existing, depth=parent.depth + 1, wait_for_lease=True, parent=parent
            )
            if request.on_started is not None:  # the parent's row must name it (issue 14.1)
                await request.on_started(existing.id)
        else:
            values = apply_inputs(request.workflow, request.inputs)
            run = await self.store.create_run(
                NewRun(
                    workflow_name=request.workflow.name,
                    parent_run_id=parent.run_id,
                    parent_step_id=request.parent_step_id,
                    dry_run=parent.dry_run,
                    trigger="workflow",
                    definition_snapshot=request.workflow.to_json(),
                    inputs=values,
                    workflow_title=request.workflow.title,
                    iteration=request.iteration,
                    depth=parent.depth + 1,
                    options=_run_options(parent.fail_fast, parent.working_dir),
                )
            )
            generation = await self.store.acquire_lease(run.id, self.owner, self.lease_ttl)
            if generation is None:  # pragma: no cover
                raise RunAlreadyOwnedError(run.id)
            state = RunState(
                self.services,
                run,
                request.workflow,
                generation,
                values,
                depth=parent.depth + 1,
                dry_run=parent.dry_run,
                fail_fast=parent.fail_fast,
                working_dir=parent.working_dir,
            )
            if request.on_started is not None:
                await request.on_started(run.id)
        state.shutdown = parent.shutdown
        state.parent = parent
        state.actions = parent.actions
        state.as_identity = request.as_identity or parent.as_identity
        self._register(state, None)
        try:
            return await self._execute(state)
        finally:
            self._runs.pop(state.run_id, None)

    # ----------------------------------------------------------------- driving runs

    async def _drive(self, run_id: str) -> None:
        active = self._runs[run_id]
        assert active.handle is not None
        try:
            result = await self._execute(active.state)
        except (LeaseLostError, EngineShutdownError) as exc:
            active.handle._finish(None, exc)
        except Exception as exc:
            active.state.log.exception("run crashed")
            active.handle._finish(
                None, ExecutionError(f"run {run_id!r} stopped on an internal error: {exc}")
            )
        else:
            active.handle._finish(result, None)
        finally:
            self._runs.pop(run_id, None)

    async def _execute(self, state: RunState) -> WorkflowResult:
        """Run the body, then the ``always`` block, then record the final status."""
        try:
            with state.cancel_scope:
                await self._mark_started(state)
                await execute_nodes(state, state.workflow.body, "b", 0)
        except anyio.get_cancelled_exc_class():
            # cancelled from outside this run (its parent): finish, then let it propagate
            with anyio.CancelScope(shield=True):
                if state.shutdown:
                    await self._release(state)  # resumable at once by another engine
                elif not state.lease_lost:
                    await self._finish(state, cancelled=True)
            raise
        except LeaseLostError:
            state.lease_lost = True
        except EngineShutdownError:  # a child stopped by the shutdown: stop here too
            state.shutdown = True
        except Exception as exc:  # a bug, or an extension misbehaving beyond its step
            state.log.exception("run stopped by an internal error")
            state.fail(None, f"internal error: {describe_error(exc)}")
        return await self._finish(state, cancelled=state.cancel_scope.cancel_called)

    async def _mark_started(self, state: RunState) -> None:
        run = state.run
        if state.resumed:
            start = event(
                EventType.RUN_RESUMED,
                workflow_name=state.workflow.name,
                skipped_steps=state.completed_count(),
            )
        else:
            start = event(
                EventType.RUN_STARTED,
                workflow_name=state.workflow.name,
                parent_run_id=run.parent_run_id,
            )
        if run.status in (RunStatus.WAITING, RunStatus.CANCELLING) or (
            state.cancel_scope.cancel_called
        ):
            await state.append_events(start)  # status moves on when the gate is decided
            return
        try:
            await self.store.set_run_status(
                run.id, RunStatus.RUNNING, generation=state.generation, events=[start]
            )
        except InvalidTransitionError:  # cancelled (elsewhere) before it could start
            await state.append_events(start)
            state.cancel_scope.cancel()

    async def _finish(self, state: RunState, *, cancelled: bool) -> WorkflowResult:
        if state.lease_lost:
            self.events.publish(
                LeaseLost(run_id=state.run_id, timestamp=datetime.now(UTC), owner=self.owner)
            )
            raise LeaseLostError(state.run_id, expected=state.generation, actual=None)
        if state.shutdown:
            with anyio.CancelScope(shield=True):
                await self._release(state)
            raise EngineShutdownError(state.run_id)
        with anyio.CancelScope(shield=True) as shield:
            state.always_scopes = (*state.always_scopes, shield)
            try:
                await self._run_always(state, cancelled)
            finally:
                state.always_scopes = tuple(s for s in state.always_scopes if s is not shield)
            result = await self._record_outcome(state, cancelled)
        return result

    async def _run_always(self, state: RunState, cancelled: bool) -> None:
        if not state.workflow.always:
            return
        status = "cancelled" if cancelled else ("failed" if state.failed else "completed")
        state.vars.set("workflow_status", status)
        failed, error = state.failed, state.error
        try:
            await execute_nodes(state, state.workflow.always, "a", 0, respect_fail_fast=False)
        except LeaseLostError:
            state.lease_lost = True
        except anyio.get_cancelled_exc_class():  # pragma: no cover - shielded
            raise
        if state.failed and not failed:
            state.log.warning(
                "the always block failed; the run's outcome stands", error=state.error
            )
        state.failed, state.error = failed, error

    async def _record_outcome(self, state: RunState, cancelled: bool) -> WorkflowResult:
        """Write the final status (after the ``always`` block, which may have lost the
        lease or met the shutdown, or during which a cancellation may have come)."""
        if state.lease_lost:
            raise LeaseLostError(state.run_id, expected=state.generation, actual=None)
        if state.shutdown:
            await self._release(state)
            raise EngineShutdownError(state.run_id)
        cancelled = cancelled or state.cancel_scope.cancel_called
        steps = await self.store.get_steps(state.run_id)
        duration_ms = state.elapsed_ms()
        metrics = state.metrics or Metrics()
        if cancelled:
            if state.cancel_reason is None:  # requested by another process: the store has it
                state.cancel_reason = (await self.store.get_run(state.run_id)).cancel_reason
            status = RunStatus.CANCELLED
            error = state.cancel_reason or "cancelled"
            final = event(EventType.RUN_CANCELLED, reason=state.cancel_reason)
        elif state.failed:
            status, error = RunStatus.FAILED, state.error or "failed"
            final = event(EventType.RUN_FAILED, error=error, duration_ms=duration_ms)
        else:
            status, error = RunStatus.COMPLETED, None
            final = event(EventType.RUN_COMPLETED, duration_ms=duration_ms)
        summary = build_summary(state.workflow.name, steps, status, error)
        try:
            await self.store.set_run_status(
                state.run_id,
                status,
                generation=state.generation,
                result_summary=summary,
                error=error,
                events=[
                    event(
                        EventType.METRICS_UPDATED,
                        total_cost=metrics.cost_usd,
                        total_turns=metrics.turns,
                        total_duration_ms=metrics.duration_ms,
                    ),
                    final,
                ],
            )
        except LeaseLostError:
            state.lease_lost = True
            raise
        await self._release(state)
        state.log.info("run finished", status=status.value, error=error)
        return WorkflowResult(
            run_id=state.run_id,
            workflow_name=state.workflow.name,
            status=status,
            error=error,
            summary=summary,
            duration_ms=duration_ms,
            metrics={
                "cost_usd": metrics.cost_usd,
                "turns": metrics.turns,
                "duration_ms": metrics.duration_ms,
                "input_tokens": metrics.input_tokens,
                "output_tokens": metrics.output_tokens,
            },
        )

    async def _release(self, state: RunState) -> None:
        try:
            await self.store.release_lease(state.run_id, self.owner, state.generation)
        except StoreError as exc:
            state.log.debug("lease not released", error=str(exc))

    # ----------------------------------------------------------------- control

    async def cancel_run(
        self, run_id: str, *, reason: str | None = None, by: str | None = None
    ) -> bool:
        """Cancel a run at once: its scope is cancelled (the executor's ``cancel`` hook is
        called, scripts are killed, children cancelled), its ``always`` block runs, and it
        ends ``cancelled``. A run driven by another process learns of it through the
        store's notifications.

        Returns:
            True if the run is (now) being cancelled; False if it had already finished.

        Raises:
            UnknownRunError: no such run.
        """
        accepted: bool = await self.store.request_cancel(run_id, reason=reason, by=by)
        active = self._runs.get(run_id)
        if accepted and active is not None:
            active.state.cancel_reason = reason
            active.state.cancel_scope.cancel()
        return accepted

    # ----------------------------------------------------------------- gates

    async def waiting_gates(
        self,
        *,
        run_id: str | None = None,
        workflow_name: str | None = None,
        gate_type: str | None = None,
        limit: int | None = None,
    ) -> list[WaitingGate]:
        """The inbox: every gate waiting for a decision (in any process using this store),
        earliest deadline first, with prompt, options, deadline and approvals so far."""
        gates: list[WaitingGate] = await self.store.list_waiting_gates(
            run_id=run_id, workflow_name=workflow_name, gate_type=gate_type, limit=limit
        )
        return gates

    async def _gate_step_id(self, run_id: str | None, gate: str) -> str:
        """The step id of gate ``gate`` (a name or a step id) of ``run_id``: the waiting
        one if any, else the latest one of that name."""
        if run_id is None:
            return gate
        for waiting in await self.store.list_waiting_gates(run_id=run_id):
            if gate in (waiting.gate_name, waiting.step_id):
                return waiting.step_id
        for step in reversed(await self.store.get_steps(run_id)):
            if step.role == StepRole.GATE and gate in (step.step_name, step.id):
                return step.id
        raise UnknownGateError(run_id, gate)

    async def approve_gate(
        self,
        run_id: str | None,
        gate: str,
        *,
        by: str,
        feedback: str | None = None,
        selections: Sequence[str] | None = None,
    ) -> GateReceipt:
        """Approve a gate (by run and gate name, or ``run_id=None`` and its step id).

        ``feedback`` reaches later steps as ``{{gate_feedback_text}}``, and as
        ``{{gate_feedback}}`` unless selections were made (a ``human_review``'s answer);
        ``selections`` must be among the gate's options. A gate with options needs at
        least one selection unless its workflow says ``allow_none = true``, and at most
        one with ``select = one`` (a quorum's approvals must then agree). With
        ``min_approvals = N`` the gate passes at the N-th distinct approver, with the
        union of all approvers' selections (in approval order, each value once). The
        decision wakes the waiting run at once, in this process or another. After the
        gate's deadline the decision is refused (the gate times out instead).

        Returns:
            The store's receipt: accepted, approval_recorded (quorum not yet met),
            already_approved (this approver counted before; nothing changed),
            already_resolved (by whom, when), not_waiting, deadline_passed (with the
            deadline) or unknown.

        Raises:
            UnknownGateError: the run has no gate of that name.
            SelectionRequiredError: the gate has options and none was selected (its
                workflow does not say ``allow_none = true``); nothing is recorded.
            InvalidSelectionError: a selection is not one of the gate's options, or a
                ``select = one`` gate got more than one; nothing is recorded.
        """
        step_id = await self._gate_step_id(run_id, gate)
        receipt: GateReceipt = await self.store.approve_gate(
            step_id, by=by, feedback=feedback, selections=selections
        )
        self.services.gates.wake(step_id)
        return receipt

    async def reject_gate(
        self, run_id: str | None, gate: str, *, by: str, feedback: str | None = None
    ) -> GateReceipt:
        """Reject a gate; the waiting run fails at once (see :meth:`approve_gate`)."""
        step_id = await self._gate_step_id(run_id, gate)
        receipt: GateReceipt = await self.store.reject_gate(step_id, by=by, feedback=feedback)
        self.services.gates.wake(step_id)
        return receipt

    # ----------------------------------------------------------------- events

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[EngineEvent]:
        """The run's stored events after sequence number ``after_seq``, typed (replay).

        Raises:
            UnknownRunError: no such run.
        """
        return await stored_events(self.store, run_id, after_seq=after_seq, limit=limit)

    def follow_events(self, run_id: str, *, after_seq: int = 0) -> AsyncIterator[EngineEvent]:
        """Stored events after ``after_seq``, then live ones, until the run finishes —
        without gaps or repeats (for SSE with ``Last-Event-ID``). Runs this engine drives
        are followed on its event bus; runs another process drives (same database) are
        woken through the store's change feed (``Store.wait_for_events``), not polled.

        Raises:
            UnknownRunError: no such run (when iteration starts).
        """
        return follow_events(
            self.store, self.events, run_id, after_seq=after_seq, is_local=self._runs.__contains__
        )

    def active_runs(self) -> list[str]:
        """Ids of the runs this engine is driving now (children included)."""
        return list(self._runs)


def _snapshot_workflow(run: RunRecord) -> WorkflowDef:
    """The workflow ``run`` was started with, rebuilt from its definition snapshot.

    Raises:
        ExecutionError: the run has no snapshot.
        CorruptRecordError: the snapshot cannot be read.
    """
    if not run.definition_snapshot:
        raise ExecutionError(f"run {run.id!r} has no definition snapshot to resume from")
    try:
        return WorkflowDef.from_json(run.definition_snapshot)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        detail = str(exc).splitlines()[0]
        raise CorruptRecordError("workflow_runs", run.id, "definition_snapshot", detail) from None
