"""Test support for engine tests: a recording executor, an item provider and helpers.

Everything here is what a user of runkon would write to test their own workflows:
executors that record what they were asked and answer as scripted, and small helpers
to read back what a run left in the store.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

import runkon
from runkon.engine import (
    ActionOutput,
    ActionParams,
    BaseItemProvider,
    FanOutItem,
    FlowEngine,
    ProviderContext,
    StepContext,
)
from runkon.persistence import EventRecord, StepRecord, Store, WaitingGate

MakeEngine = Callable[..., FlowEngine]
"""The ``make_engine`` fixture: ``make_engine(**FlowEngine_options) -> FlowEngine``."""


def parse(text: str, source: str = "<test>") -> runkon.WorkflowDef:
    """Parse an inline workflow (indentation removed)."""
    return runkon.parse_workflow(textwrap.dedent(text), source=source)


def workflows(**texts: str) -> dict[str, runkon.WorkflowDef]:
    """Child workflows for ``FlowEngine(workflows=...)``: name -> parsed definition.

    Keyword names use ``_`` where the workflow name has ``-``.
    """
    parsed = {name: parse(text, source=f"{name}.wf") for name, text in texts.items()}
    return {wf.name: wf for wf in parsed.values()}


@dataclass(frozen=True)
class Reply:
    """How the recording executor answers one execution.

    Attributes:
        markers, context, structured, result_text, metadata: the ActionOutput fields.
        error: raise this (an exception, or a message for a RuntimeError).
        delay: sleep this long first (cancellable, as a real agent's I/O would be).
        wait: wait for this event first.
        hook: an async function awaited with (ctx, params) before answering.
    """

    markers: Sequence[str] = ()
    context: str | None = None
    structured: Any = None
    result_text: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    error: BaseException | str | None = None
    delay: float = 0.0
    wait: anyio.Event | None = None
    hook: Callable[[StepContext, ActionParams], Awaitable[None]] | None = None


OK = Reply()
FAIL = Reply(error="boom")
FOREVER = Reply(delay=math.inf)


@dataclass(frozen=True, eq=False)
class Call:
    """One execution the recorder received, with everything it was given (compared by
    identity: each execution is a distinct event)."""

    name: str
    step_key: str
    step_id: str
    run_id: str
    workflow_name: str
    attempt: int
    iteration: int
    depth: int
    parent_run_id: str | None
    timeout: float | None
    inputs: dict[str, str]
    snippets: tuple[str, ...]
    output: str | None
    output_schema: Any
    gate_feedback: str | None
    gate_selections: tuple[str, ...]
    dry_run: bool
    ctx_dry_run: bool
    retry_error: str | None
    retries_remaining: int
    as_identity: str | None
    plugin_dirs: tuple[str, ...]
    max_turns: int | None


class Recorder:
    """An ``ActionExecutor`` that records every execution and answers as scripted.

    Register it as ``fallback_action`` (or by name). ``on(name, *replies)`` scripts the
    answers to executions of ``name``: by default the n-th execution gets the n-th reply
    (the last one repeats); with ``by="attempt"`` the reply is chosen by the attempt
    number instead. Unscripted names succeed with no markers.
    """

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.finished: list[Call] = []
        self.interrupted: list[Call] = []
        self.cancel_requests: list[str] = []
        self.timeline: list[tuple[str, Call]] = []  # ("start" | "end", call), in order
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self._replies: dict[str, tuple[tuple[Reply, ...], str]] = {}
        self._count: Counter[str] = Counter()
        self._changed: anyio.Event | None = None

    # ----------------------------------------------------------------- scripting

    def on(self, name: str, *replies: Reply, by: str = "call") -> Recorder:
        assert replies
        assert by in ("call", "attempt")
        self._replies[name] = (replies, by)
        return self

    def _reply(self, name: str, attempt: int) -> Reply:
        scripted = self._replies.get(name)
        count = self._count[name]
        self._count[name] += 1
        if scripted is None:
            return OK
        replies, by = scripted
        index = count if by == "call" else attempt
        return replies[min(index, len(replies) - 1)]

    # ----------------------------------------------------------------- observing

    def names(self) -> list[str]:
        """Names of the executions, in the order they started."""
        return [call.name for call in self.calls]

    def of(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (re-checked at each execution start/end)."""
        with anyio.fail_after(timeout):
            while not predicate():
                if self._changed is None:
                    self._changed = anyio.Event()
                with anyio.move_on_after(0.05):
                    await self._changed.wait()

    async def started(self, name: str, count: int = 1, *, timeout: float = 10.0) -> Call:
        """Wait until ``name`` has started ``count`` times; return the latest such call."""
        await self.wait_for(lambda: len(self.of(name)) >= count, timeout=timeout)
        return self.of(name)[-1]

    # ----------------------------------------------------------------- the executor

    async def execute(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        call = Call(
            name=params.name,
            step_key=ctx.step_key,
            step_id=ctx.step_id,
            run_id=ctx.run_id,
            workflow_name=ctx.workflow_name,
            attempt=ctx.attempt,
            iteration=ctx.iteration,
            depth=ctx.depth,
            parent_run_id=ctx.parent_run_id,
            timeout=ctx.timeout,
            inputs=dict(params.inputs),
            snippets=tuple(params.snippets),
            output=params.output,
            output_schema=params.output_schema,
            gate_feedback=params.gate_feedback,
            gate_selections=tuple(params.gate_selections),
            dry_run=params.dry_run,
            ctx_dry_run=ctx.dry_run,
            retry_error=params.retry_error,
            retries_remaining=params.retries_remaining,
            as_identity=params.as_identity,
            plugin_dirs=tuple(params.plugin_dirs),
            max_turns=params.max_turns,
        )
        reply = self._reply(params.name, ctx.attempt)
        self.calls.append(call)
        self.timeline.append(("start", call))
        self.active[params.name] += 1
        self.peak[params.name] = max(self.peak[params.name], self.active[params.name])
        self.peak_total = max(self.peak_total, sum(self.active.values()))
        self._notify()
        try:
            if reply.delay:
                await anyio.sleep(reply.delay)
            if reply.wait is not None:
                await reply.wait.wait()
            if reply.hook is not None:
                await reply.hook(ctx, params)
        except anyio.get_cancelled_exc_class():
            self.interrupted.append(call)
            raise
        finally:
            self.active[params.name] -= 1
            self.timeline.append(("end", call))
            self._notify()
        if reply.error is not None:
            if isinstance(reply.error, BaseException):
                raise reply.error
            raise RuntimeError(reply.error)
        self.finished.append(call)
        return ActionOutput(
            markers=list(reply.markers),
            context=reply.context,
            result_text=reply.result_text if reply.result_text is not None else f"{call.name} ok",
            structured_output=reply.structured,
            metadata=dict(reply.metadata),
        )

    async def cancel(self, execution_id: str) -> None:
        self.cancel_requests.append(execution_id)
        self._notify()


class Items(BaseItemProvider):
    """An ``ItemProvider`` with fixed items, optional dependencies, scope and filter.

    ``scope = { label = "x" }`` keeps items whose context has ``label == x``;
    ``filter = { k = v }`` keeps items whose context has ``k == v``.
    """

    def __init__(
        self,
        name: str,
        items: Sequence[FanOutItem],
        *,
        edges: Sequence[tuple[str, str]] = (),
        requires_filter: bool = False,
    ) -> None:
        self.name = name
        self._items = list(items)
        self._edges = list(edges)
        self._requires_filter = requires_filter
        self.calls: list[tuple[ProviderContext, object, dict[str, str]]] = []

    def parse_scope(self, scope: Mapping[str, str] | None) -> object:
        if not scope:
            return None
        unknown = set(scope) - {"label"}
        if unknown:
            raise ValueError(f"unknown scope keys: {sorted(unknown)}")
        return ("label", scope["label"])

    def requires_filter(self) -> bool:
        return self._requires_filter

    def supports_ordered(self) -> bool:
        return True

    async def dependencies(
        self, ctx: ProviderContext, items: Sequence[FanOutItem]
    ) -> Sequence[tuple[str, str]]:
        return self._edges

    async def items(
        self, ctx: ProviderContext, scope: object, filter: Mapping[str, str]
    ) -> Sequence[FanOutItem]:
        self.calls.append((ctx, scope, dict(filter)))
        chosen = self._items
        if scope is not None:
            _, label = scope  # type: ignore[misc]
            chosen = [i for i in chosen if i.context.get("label") == label]
        for key, value in filter.items():
            chosen = [i for i in chosen if i.context.get(key) == value]
        return chosen


def item(item_id: str, **context: str) -> FanOutItem:
    return FanOutItem(item_id=item_id, item_type="repo", item_ref=f"ref-{item_id}", context=context)


async def until(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy; return that.

    For conditions outside the engine's events (files a script writes, store state)."""
    with anyio.fail_after(timeout):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await anyio.sleep(interval)


async def waiting_gates(engine: FlowEngine, run_id: str) -> list[WaitingGate]:
    """Wait until the run has a gate waiting; return the run's waiting gates."""
    gates: list[WaitingGate] = await until(lambda: engine.waiting_gates(run_id=run_id))
    return gates


async def steps(store: Store, run_id: str) -> list[StepRecord]:
    return await store.get_steps(run_id)


async def rows(store: Store, run_id: str) -> list[tuple[str, str]]:
    """(step_name, status) of every step row of the run, in position order."""
    return [(s.step_name, s.status.value) for s in await store.get_steps(run_id)]


async def events(store: Store, run_id: str) -> list[EventRecord]:
    return await store.read_events(run_id)


async def event_types(store: Store, run_id: str) -> list[str]:
    return [e.type for e in await store.read_events(run_id)]


def pid_written(path: Path) -> bool:
    """True once a script has written a pid (a whole line) to ``path``."""
    return path.exists() and path.read_text().endswith("\n")


async def wait_dead(pid: int, *, timeout: float = 3.0) -> bool:
    """True once ``pid`` is gone (a signalled process may take a moment to die when the
    machine is busy); False if it is still alive after ``timeout`` seconds."""
    try:
        await until(lambda: not pid_alive(pid), timeout=timeout, interval=0.02)
    except TimeoutError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie we reaped)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, not ours
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
