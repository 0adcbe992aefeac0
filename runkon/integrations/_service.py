"""The HTTP surface without a framework: every operation the FastAPI router and the
aiohttp app expose, with authentication, authorization and error mapping done once.

Each operation takes the request's headers, authenticates them through the
:class:`~runkon.integrations.Authorizer`, checks the permission on the target, calls the
public engine API and returns a response model; a problem is raised as
:class:`ApiError` carrying the HTTP status. Nothing is changed when a check fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple

import anyio

from runkon import (
    DirectoryWorkflowResolver,
    DslError,
    FlowEngine,
    InMemoryWorkflowResolver,
    InputError,
    InvalidSelectionError,
    SelectionRequiredError,
    UnknownGateError,
    UnknownRunError,
    WorkflowDef,
    WorkflowNotFoundError,
    WorkflowResolver,
    WorkflowValidationError,
)
from runkon.errors import UnknownStepError
from runkon.events import EngineEvent
from runkon.integrations._auth import Authorizer, Identity, Permission, Target
from runkon.integrations._schemas import (
    CancelOut,
    CancelRequest,
    DecisionRequest,
    FeedbackRequest,
    GateOut,
    ReceiptOut,
    RunDetailOut,
    RunOut,
    StartedRunOut,
    StartRunRequest,
    StepLogsOut,
    StepOut,
)
from runkon.persistence import (
    GateReceipt,
    ReceiptOutcome,
    RunRecord,
    RunStatus,
    StepRecord,
    StepRole,
    attempts_by_step,
)

MAX_LIST = 1_000
MAX_SEQ = 2**63 - 1  # the largest event sequence number a store keeps (SQLite INTEGER)
MAX_BODY_BYTES = 1024 * 1024  # the default cap on a request body (JSON API: 1 MiB)
NO_CATALOG_HINT = "start it with workflows=<a directory, mapping or resolver>"


class ApiError(Exception):
    """An HTTP error answer: ``status``, a machine-readable ``error`` code and a message
    that says what to do; ``detail`` carries structured extras (e.g. a receipt)."""

    def __init__(
        self, status: int, error: str, message: str, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer (an ``ErrorOut``)."""
        return {"error": self.error, "message": self.message, "detail": self.detail}


WorkflowCatalog = WorkflowResolver | Mapping[str, WorkflowDef] | str | os.PathLike[str] | None


def _catalog(workflows: WorkflowCatalog) -> WorkflowResolver | None:
    # a path first: pathlib.Path has a ``resolve`` method of its own
    if isinstance(workflows, str | os.PathLike):
        return DirectoryWorkflowResolver(workflows)
    if workflows is None or hasattr(workflows, "resolve"):
        return workflows
    return InMemoryWorkflowResolver(workflows)


def encodable(value: Any) -> Any:
    """``value`` (JSON-like) with every string made UTF-8 encodable: a lone surrogate
    sent in a request (``"\\ud800"``) is shown escaped when an error echoes it."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(item) for item in value]
    return value


def body_too_large(limit: int) -> ApiError:
    """The 413 answer to a request body over ``limit`` bytes."""
    return ApiError(
        413,
        "body_too_large",
        f"the request body is larger than the {limit} bytes this server accepts; "
        "send a smaller one",
    )


def declared_too_large(content_length: str | None, limit: int) -> bool:
    """Whether a ``Content-Length`` header already says the body is over ``limit``."""
    return content_length is not None and content_length.isdigit() and int(content_length) > limit


class CheckedRun(NamedTuple):
    """What :meth:`RunkonApi.check_run` found: the caller, the run, and the step id of
    the waiting gate the request names (``None``: none of that name waits)."""

    identity: Identity
    run: RunRecord
    gate_step_id: str | None

    def gate_ref(self, gate: str) -> tuple[str | None, str]:
        """``(run_id, gate)`` for the engine's decisions: the waiting gate's step id
        when found (no second lookup), else the run and the name as given."""
        if self.gate_step_id is not None:
            return None, self.gate_step_id
        return self.run.id, gate


class RunkonApi:
    """The operations of runkon's HTTP surface over one engine.

    Args:
        engine: the engine (started by the app's lifespan).
        authorizer: the authorization hook; every operation goes through it.
        workflows: the catalog runs may be started from, by name: a resolver, a
            directory of ``.wf`` files or a mapping. ``None``: starting runs over HTTP
            is refused (404).
        max_body_bytes: the largest request body accepted; a larger one is answered
            413 ``body_too_large`` without being read whole. Bodies are read only after
            the caller was authenticated (an anonymous request gets its 401 first).

    Attributes:
        no_catalog_hint: how the 404 ``no_catalog`` answer says to give the server a
            catalog; a front end such as ``runkon serve`` words it for its own users.
    """

    def __init__(
        self,
        engine: FlowEngine,
        authorizer: Authorizer,
        *,
        workflows: WorkflowCatalog = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.authorizer = authorizer
        self.workflows: WorkflowResolver | None = _catalog(workflows)
        self.no_catalog_hint = NO_CATALOG_HINT

    # ----------------------------------------------------------------- auth

    async def identify(self, headers: Mapping[str, str]) -> Identity:
        """The caller, or :class:`ApiError` 401."""
        identity = await self.authorizer.authenticate(
            {key.lower(): value for key, value in headers.items()}
        )
        if identity is None:
            raise ApiError(
                401,
                "unauthenticated",
                "no valid credentials; send 'Authorization: Bearer <token>'",
            )
        return identity

    async def check(
        self, headers: Mapping[str, str], permission: Permission, target: Target
    ) -> Identity:
        """Authenticate and authorize; :class:`ApiError` 401 or 403 otherwise."""
        identity = await self.identify(headers)
        await self._authorize(identity, permission, target)
        return identity

    async def check_run(
        self,
        headers: Mapping[str, str],
        permission: Permission,
        run_id: str,
        gate: str | None = None,
    ) -> CheckedRun:
        """Authenticate (401 first: an anonymous caller learns nothing, not even whether
        the run exists), then look the run up (404) and authorize on it (403).

        ``gate`` may be a gate's name or its step id; a waiting gate is resolved first
        and the authorizer sees its real name and type, whatever the caller wrote."""
        identity = await self.identify(headers)
        try:
            run = await self.engine.store.get_run(run_id)
        except UnknownRunError as exc:
            raise ApiError(404, "unknown_run", str(exc)) from exc
        waiting = None
        if gate is not None:
            waiting = next(
                (
                    candidate
                    for candidate in await self.engine.waiting_gates(run_id=run_id)
                    if gate in (candidate.gate_name, candidate.step_id)
                ),
                None,
            )
        # Authorize against the resolved gate, whether the caller named it by its name
        # or by its step id: a rule keyed on the gate name must hold either way.
        target = Target(
            workflow_name=run.workflow_name,
            run_id=run_id,
            gate_name=waiting.gate_name if waiting is not None else gate,
            gate_type=waiting.gate_type if waiting is not None else None,
        )
        await self._authorize(identity, permission, target)
        return CheckedRun(identity, run, waiting.step_id if waiting is not None else None)

    async def _authorize(self, identity: Identity, permission: Permission, target: Target) -> None:
        if not await self.authorizer.authorize(identity, permission, target):
            raise ApiError(
                403,
                "forbidden",
                f"{identity.name!r} may not {permission.value} here; ask an administrator",
            )

    # ----------------------------------------------------------------- runs

    async def start_run(
        self, headers: Mapping[str, str], request: StartRunRequest
    ) -> StartedRunOut:
        """Start a run of a catalog workflow (permission ``start``)."""
        await self.check(headers, Permission.START, Target(workflow_name=request.workflow))
        workflow = await self._resolve(request.workflow)
        try:
            handle = await self.engine.start(
                workflow, inputs=request.inputs, dry_run=request.dry_run or None
            )
        except InputError as exc:
            raise ApiError(422, "invalid_inputs", str(exc)) from exc
        except WorkflowValidationError as exc:
            raise ApiError(422, "invalid_workflow", str(exc)) from exc
        run = await self.engine.store.get_run(handle.run_id)
        return StartedRunOut(run_id=run.id, workflow_name=run.workflow_name, status=run.status)

    async def _resolve(self, name: str) -> WorkflowDef:
        if self.workflows is None:
            raise ApiError(
                404,
                "no_catalog",
                f"this server has no workflow catalog; {self.no_catalog_hint}",
            )
        resolver = self.workflows
        try:
            return await anyio.to_thread.run_sync(resolver.resolve, name)
        except WorkflowNotFoundError as exc:
            # the resolver's detail may name server paths: never shown to clients
            raise ApiError(
                404,
                "unknown_workflow",
                f"no workflow {name!r} in this server's catalog; check the name",
            ) from exc
        except DslError as exc:
            raise ApiError(422, "invalid_workflow", str(exc)) from exc

    async def get_run(self, headers: Mapping[str, str], run_id: str) -> RunDetailOut:
        """A run with its steps (permission ``read``)."""
        run = (await self.check_run(headers, Permission.READ, run_id)).run
        store = self.engine.store
        steps = await store.get_steps(run_id)
        gates = {step.id: await store.get_gate(step.id) for step in steps if step.role == _GATE}
        attempts = attempts_by_step(steps)
        return RunDetailOut(
            **RunOut.of(run).model_dump(),
            steps=[StepOut.of(step, attempts[step.id], gates.get(step.id)) for step in steps],
        )

    async def step_logs(self, headers: Mapping[str, str], run_id: str, step: str) -> StepLogsOut:
        """What a step's programs wrote (permission ``read``). ``step`` is the step's id,
        or its name (then its latest attempt)."""
        await self.check_run(headers, Permission.READ, run_id)
        found = await self._find_step(run_id, step)
        return StepLogsOut.of(found, await self.engine.store.get_step_output(found.id))

    async def _find_step(self, run_id: str, step: str) -> StepRecord:
        store = self.engine.store
        try:
            found = await store.get_step(step)
        except UnknownStepError:
            pass
        else:
            if found.run_id == run_id:
                return found
        named = [row for row in await store.get_steps(run_id) if row.step_name == step]
        if named:
            return max(named, key=lambda row: row.id)  # ULIDs: the latest attempt
        raise ApiError(
            404,
            "unknown_step",
            f"run {run_id} has no step {step!r}; name a step by its id or its name "
            f"(GET /runs/{run_id} lists them)",
        )

    async def list_runs(
        self,
        headers: Mapping[str, str],
        *,
        status: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> list[RunOut]:
        """Runs, newest first, filtered; only those the caller may read."""
        identity = await self.identify(headers)
        statuses = None
        if status is not None:
            try:
                statuses = [RunStatus(status)]
            except ValueError as exc:
                allowed = ", ".join(s.value for s in RunStatus)
                raise ApiError(
                    422, "invalid_status", f"unknown status {status!r}; use one of: {allowed}"
                ) from exc
        runs = await self.engine.store.list_runs(
            statuses=statuses, workflow_name=workflow, limit=_limit(limit)
        )
        visible = []
        for run in runs:
            target = Target(workflow_name=run.workflow_name, run_id=run.id)
            if await self.authorizer.authorize(identity, Permission.READ, target):
                visible.append(RunOut.of(run))
        return visible

    async def cancel_run(
        self, headers: Mapping[str, str], run_id: str, request: CancelRequest
    ) -> CancelOut:
        """Cancel a run (permission ``cancel``)."""
        identity = (await self.check_run(headers, Permission.CANCEL, run_id)).identity
        accepted = await self.engine.cancel_run(run_id, reason=request.reason, by=identity.name)
        return CancelOut(run_id=run_id, cancelling=accepted)

    # ----------------------------------------------------------------- gates

    async def waiting_gates(
        self,
        headers: Mapping[str, str],
        *,
        run_id: str | None = None,
        workflow: str | None = None,
        gate_type: str | None = None,
        limit: int = 100,
    ) -> list[GateOut]:
        """The inbox: waiting gates, earliest deadline first, that the caller may see."""
        identity = await self.identify(headers)
        gates = await self.engine.waiting_gates(
            run_id=run_id, workflow_name=workflow, gate_type=gate_type, limit=_limit(limit)
        )
        visible = []
        for gate in gates:
            target = Target(
                workflow_name=gate.workflow_name,
                run_id=gate.run_id,
                gate_name=gate.gate_name,
                gate_type=gate.gate_type,
            )
            if await self.authorizer.authorize(identity, Permission.READ, target):
                visible.append(GateOut.of(gate))
        return visible

    async def approve(
        self, headers: Mapping[str, str], run_id: str, gate: str, request: DecisionRequest
    ) -> ReceiptOut:
        """Approve a gate as the caller (permission ``decide``).

        Raises:
            ApiError: 401/403; 404 unknown run or gate; 422 ``invalid_selection`` (a
                selection the gate does not offer, or two for a ``select = one`` gate) or
                ``selection_required`` (a gate with options approved with none, unless it
                says ``allow_none``), the gate's options in the message and in
                ``detail.allowed``;
                409 the gate is already decided or not waiting (the receipt in
                ``detail``).
        """
        checked = await self.check_run(headers, Permission.DECIDE, run_id, gate)
        try:
            receipt = await self.engine.approve_gate(
                *checked.gate_ref(gate),
                by=checked.identity.name,
                feedback=request.feedback,
                selections=request.selections,
            )
        except InvalidSelectionError as exc:
            required = isinstance(exc, SelectionRequiredError)
            raise ApiError(
                422,
                "selection_required" if required else "invalid_selection",
                str(exc),
                {
                    "invalid": list(exc.invalid),
                    "allowed": list(exc.allowed),
                    "select": exc.select,
                    "earlier": list(exc.earlier),
                },
            ) from exc
        except UnknownGateError as exc:
            raise ApiError(404, "unknown_gate", str(exc)) from exc
        return _receipt(receipt)

    async def feedback(
        self, headers: Mapping[str, str], run_id: str, gate: str, request: FeedbackRequest
    ) -> ReceiptOut:
        """Approve a gate with feedback (a ``human_review``'s answer).

        The same decision as :meth:`approve`: on a gate with options the feedback does
        not replace the choice (422 ``selection_required`` without selections).
        """
        decision = DecisionRequest(feedback=request.feedback, selections=request.selections)
        return await self.approve(headers, run_id, gate, decision)

    async def reject(
        self, headers: Mapping[str, str], run_id: str, gate: str, request: DecisionRequest
    ) -> ReceiptOut:
        """Reject a gate as the caller (permission ``decide``); errors as :meth:`approve`."""
        checked = await self.check_run(headers, Permission.DECIDE, run_id, gate)
        if request.selections:
            raise ApiError(422, "invalid_selection", "a rejection takes no selections")
        try:
            receipt = await self.engine.reject_gate(
                *checked.gate_ref(gate), by=checked.identity.name, feedback=request.feedback
            )
        except UnknownGateError as exc:
            raise ApiError(404, "unknown_gate", str(exc)) from exc
        return _receipt(receipt)

    # ----------------------------------------------------------------- events

    async def open_events(
        self, headers: Mapping[str, str], run_id: str, last_event_id: str | None
    ) -> AsyncIterator[EngineEvent]:
        """Check access, then return the run's events after ``last_event_id`` (the SSE
        ``Last-Event-ID``): stored ones first, then live ones, until the run finishes."""
        await self.check_run(headers, Permission.READ, run_id)
        after = 0
        if last_event_id:
            try:
                after = int(last_event_id)
            except ValueError:
                after = -1
            if not 0 <= after <= MAX_SEQ:
                shown = last_event_id if len(last_event_id) <= 40 else last_event_id[:40] + "..."
                raise ApiError(
                    400,
                    "invalid_last_event_id",
                    f"Last-Event-ID {shown!r} is not an event sequence number "
                    f"(0 to {MAX_SEQ}); send the id of the last event you received",
                )
        return self._events(run_id, after)

    async def _events(self, run_id: str, after_seq: int) -> AsyncIterator[EngineEvent]:
        # the bus for runs this engine drives, the store's change feed for the others
        async for event in self.engine.follow_events(run_id, after_seq=after_seq):
            yield event


_GATE = StepRole.GATE


def _receipt(receipt: GateReceipt) -> ReceiptOut:
    out = ReceiptOut.of(receipt)
    if receipt.outcome in (ReceiptOutcome.ALREADY_RESOLVED, ReceiptOutcome.NOT_WAITING):
        who = f" by {receipt.decided_by!r}" if receipt.decided_by else ""
        message = (
            f"gate already {receipt.decision}{who}; nothing changed"
            if receipt.outcome is ReceiptOutcome.ALREADY_RESOLVED
            else "gate is not waiting for a decision; nothing changed"
        )
        raise ApiError(409, str(receipt.outcome), message, out.model_dump(mode="json"))
    if receipt.outcome is ReceiptOutcome.DEADLINE_PASSED:
        deadline = "" if receipt.deadline_at is None else f" at {receipt.deadline_at.isoformat()}"
        raise ApiError(
            409,
            str(receipt.outcome),
            f"gate timed out: its deadline passed{deadline}; the decision was refused and "
            "nothing changed (the gate times out when its run goes on)",
            out.model_dump(mode="json"),
        )
    if receipt.outcome is ReceiptOutcome.UNKNOWN:
        raise ApiError(404, "unknown_gate", f"no gate step {receipt.step_id!r}")
    return out


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIST:
        raise ApiError(422, "invalid_limit", f"limit must be between 1 and {MAX_LIST}")
    return limit


def sse_frame(event: EngineEvent) -> str:
    """One server-sent event: ``id`` is the run's sequence number (what a reconnecting
    client sends back as ``Last-Event-ID``), ``event`` the event type, ``data`` JSON."""
    data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type.value}\ndata: {data}\n\n"


KEEPALIVE = ": keepalive\n\n"


async def sse_stream(
    events: AsyncIterator[EngineEvent], *, keepalive: float = 15.0
) -> AsyncIterator[str]:
    """SSE frames for ``events``, with a comment line after ``keepalive`` idle seconds so
    proxies keep the connection open; ends with ``event: end`` when the run finished."""
    send, receive = anyio.create_memory_object_stream[EngineEvent | None](16)

    async def pump() -> None:
        try:
            async with send:
                async for event in events:
                    await send.send(event)
                await send.send(None)
        finally:
            # cut off (client gone, server stopping): close the event iterator now, so its
            # bus subscription ends here rather than whenever the collector finds it
            close = getattr(events, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()

    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            async with receive:
                while True:
                    with anyio.move_on_after(keepalive) as idle:
                        event = await receive.receive()
                    if idle.cancelled_caught:
                        yield KEEPALIVE
                        continue
                    if event is None:
                        yield "event: end\ndata: {}\n\n"
                        break
                    yield sse_frame(event)
        except GeneratorExit:
            pass  # closed between frames: end here (never leave the task group with it)
        finally:
            group.cancel_scope.cancel()
