"""``foreach <name> { over = provider  workflow = child  max_parallel = N ... }``.

Items come from the ``ItemProvider`` and are recorded once (idempotently); each runs as a
child run under a ``CapacityLimiter(max_parallel)``, in dependency order with
``ordered = true``. ``on_child_fail``: ``continue`` goes on, ``halt`` cancels the children
in flight and dispatches no more, ``skip_dependents`` skips everything that depends on the
failed item. Items caught in a dependency cycle are skipped; with ``on_cycle = fail`` that
fails the step. On resume, finished items are kept, and an item left unfinished by a
crash goes on with its child run if one exists (also one a crash left unrecorded on the
item), so no completed step of a child runs twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio

from runkon.dsl import MAX_WORKFLOW_DEPTH, ForEachNode
from runkon.engine._attempts import describe_error, mark_cancelled
from runkon.engine._node_call import step_key
from runkon.engine._node_call_workflow import resolve_workflow
from runkon.engine._protocols import FanOutItem, ProviderContext
from runkon.engine._services import ChildRequest
from runkon.engine._state import RunState, event
from runkon.engine._text import valid_data, valid_text
from runkon.engine._variables import substitute
from runkon.errors import DslError, ExecutionError, StoreError
from runkon.events import EventType
from runkon.persistence import (
    FanOutItemRecord,
    FanOutItemStatus,
    FanOutItemUpdate,
    NewFanOutItem,
    StepRecord,
    StepRole,
    StepStatus,
    StepUpdate,
)

_TERMINAL = (FanOutItemStatus.COMPLETED, FanOutItemStatus.FAILED, FanOutItemStatus.SKIPPED)


async def run_foreach_node(state: RunState, node: ForEachNode, path: str, iteration: int) -> None:
    name = node.step_key
    key = step_key(name, path)
    position = state.next_position()
    done = state.completed(key)
    if done is not None:
        await state.restore(name, done)
        return
    earlier = state.latest(key)
    continued = earlier is not None and not earlier.is_terminal
    if earlier is not None and continued:
        step = earlier  # a crash left it running: continue with its items
    else:
        step = await state.insert_step(
            name,
            key,
            role=StepRole.FOREACH,
            kind="foreach",
            position=position,
            iteration=iteration,
            events=[
                event(EventType.STEP_STARTED, step_name=name, kind="foreach", iteration=iteration)
            ],
        )
    try:
        await _Fanout(state, node, step, iteration, continued=continued).run()
    except anyio.get_cancelled_exc_class():
        if not (state.shutdown or state.lease_lost):
            await mark_cancelled(state, step)
        raise


def _check_items(items: Sequence[object]) -> str | None:
    """Why the provider's items cannot be used, or None."""
    for item in items:
        if not isinstance(item, FanOutItem):
            return f"returned {type(item).__name__}, not a FanOutItem"
        fields: tuple[object, ...] = (item.item_id, item.item_type, item.item_ref)
        if not all(isinstance(value, str) for value in fields) or not item.item_id:
            return f"returned an item whose id, type or ref is not a string: {item!r}"
        pairs: list[tuple[object, object]] = list(item.context.items())
        for key, value in pairs:
            if not isinstance(key, str) or not isinstance(value, str):
                return (
                    f"returned item {item.item_id!r} whose context {key!r} is not a string "
                    f"({type(value).__name__}); context values become the child's inputs"
                )
    return None


class _Fanout:
    def __init__(
        self,
        state: RunState,
        node: ForEachNode,
        step: StepRecord,
        iteration: int,
        *,
        continued: bool = False,
    ) -> None:
        self.state = state
        self.continued = continued
        self.unrecorded: dict[str, str] = {}  # item_id -> child run a crash left unrecorded
        self.node = node
        self.step = step
        self.iteration = iteration
        self.name = node.step_key
        self.rows: dict[str, FanOutItemRecord] = {}  # item_id -> latest row
        self.blockers: dict[str, set[str]] = {}
        self.dependents: dict[str, set[str]] = {}
        self.halted = False

    async def fail(self, error: str) -> None:
        await self.state.update_step(
            self.step.id,
            StepUpdate(StepStatus.FAILED, result_text=error, step_error=error),
            [event(EventType.STEP_FAILED, step_name=self.name, step_id=self.step.id, error=error)],
        )
        self.state.fail(self.name, error)

    async def run(self) -> None:
        state, node = self.state, self.node
        if state.depth + 1 > MAX_WORKFLOW_DEPTH:
            await self.fail(
                f"foreach {node.name!r}: workflow nesting depth exceeds the maximum of "
                f"{MAX_WORKFLOW_DEPTH}"
            )
            return
        provider = state.services.item_providers.get(node.over)
        if provider is None:
            known = ", ".join(sorted(state.services.item_providers)) or "none"
            await self.fail(
                f"foreach {node.name!r}: no ItemProvider registered as {node.over!r} "
                f"(registered: {known})"
            )
            return
        try:
            child = await resolve_workflow(state, node.workflow)
        except ExecutionError as exc:
            await self.fail(f"foreach {node.name!r}: {exc}")
            return
        ctx = ProviderContext(
            run_id=state.run_id,
            workflow_name=state.workflow.name,
            step_id=self.step.id,
            step_name=self.name,
            inputs=state.vars.snapshot(),
        )
        try:
            parse_scope = getattr(provider, "parse_scope", None)
            scope = parse_scope(node.scope) if parse_scope is not None else node.scope
            items = list(await provider.items(ctx, scope, node.filter or {}))
            edges: Sequence[tuple[str, str]] = ()
            supports = getattr(provider, "supports_ordered", None)
            if node.ordered and supports is not None and supports():
                edges = await provider.dependencies(ctx, items)  # type: ignore[attr-defined]
        except Exception as exc:
            await self.fail(
                f"foreach {node.name!r}: provider {node.over!r} failed: {describe_error(exc)}"
            )
            return
        problem = _check_items(items)
        if problem is not None:
            await self.fail(f"foreach {node.name!r}: provider {node.over!r} {problem}")
            return
        await state.store.insert_fan_out_items(
            self.step.id,
            [
                NewFanOutItem(
                    valid_text(i.item_type),
                    valid_text(i.item_id),
                    valid_text(i.item_ref),
                    valid_data(dict(i.context)),
                )
                for i in items
            ],
            run_id=state.run_id,
            generation=state.generation,
            events=[
                event(EventType.FAN_OUT_ITEMS_COLLECTED, step_name=self.name, count=len(items))
            ],
        )
        for row in await state.store.get_fan_out_items(self.step.id):
            self.rows[row.item_id] = row
        if self.continued:
            await self._find_unrecorded_children()
        if not self.rows:
            await self.finish()
            return
        for blocker, dependent in valid_data([tuple(edge) for edge in edges]):
            if blocker in self.rows and dependent in self.rows and blocker != dependent:
                self.blockers.setdefault(dependent, set()).add(blocker)
                self.dependents.setdefault(blocker, set()).add(dependent)
        limiter = anyio.CapacityLimiter(max(1, node.max_parallel))
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for item_id in list(self.rows):
                if self._ready(item_id):
                    tg.start_soon(self._run_item, child, item_id, limiter)
        await self.finish()

    async def _find_unrecorded_children(self) -> None:
        """Child runs created for pending items whose ids a crash kept off the item rows
        (between creating the child and recording it): they are continued, not lost."""
        pending = {i for i, row in self.rows.items() if row.status == FanOutItemStatus.PENDING}
        if not pending:
            return
        for run in await self.state.store.list_runs(parent_run_id=self.state.run_id):
            item_id = run.inputs.get("item.id")
            if run.parent_step_id == self.step.id and item_id in pending:
                self.unrecorded.setdefault(item_id, run.id)  # newest first

    def _ready(self, item_id: str) -> bool:
        row = self.rows[item_id]
        if row.status in _TERMINAL or self.halted:
            return False
        return all(self.rows[b].status in _TERMINAL for b in self.blockers.get(item_id, ()))

    def _child_inputs(self, row: FanOutItemRecord) -> dict[str, str]:
        item_vars = {
            "item.id": row.item_id,
            "item.type": row.item_type,
            "item.ref": row.item_ref,
            **{f"item.{k}": v for k, v in row.context.items()},
        }
        variables = self.state.vars.snapshot().with_values(item_vars)
        inputs = {k: substitute(v, variables) for k, v in self.node.inputs.items()}
        return {**item_vars, **inputs}

    async def _update(self, row: FanOutItemRecord, update: FanOutItemUpdate, *events: Any) -> None:
        [stored] = await self.state.store.update_fan_out_items(
            [(row.id, update)],
            run_id=self.state.run_id,
            generation=self.state.generation,
            events=events,
        )
        self.rows[row.item_id] = stored

    async def _run_item(self, child: Any, item_id: str, limiter: anyio.CapacityLimiter) -> None:
        state = self.state
        async with limiter:
            if self.halted:
                return
            row = self.rows[item_id]
            if row.status == FanOutItemStatus.RUNNING:
                existing = row.child_run_id
            else:
                existing = self.unrecorded.get(item_id)

            async def started(child_run_id: str) -> None:
                if row.status == FanOutItemStatus.RUNNING and row.child_run_id == child_run_id:
                    return  # resumed: the item already names its child
                await self._update(
                    row,
                    FanOutItemUpdate(FanOutItemStatus.RUNNING, child_run_id=child_run_id),
                    event(
                        EventType.FAN_OUT_ITEM_STARTED,
                        step_name=self.name,
                        item_id=item_id,
                        child_run_id=child_run_id,
                    ),
                )

            request = ChildRequest(
                child, self._child_inputs(row), self.step.id, self.iteration, existing, started
            )
            try:
                result = await state.services.run_child(state, request)
                succeeded, detail = result.succeeded, result.error
            except anyio.get_cancelled_exc_class():
                if not (state.shutdown or state.lease_lost):
                    with anyio.CancelScope(shield=True):
                        await self._finish_item(item_id, False, "cancelled")
                raise
            except (ExecutionError, DslError) as exc:
                succeeded, detail = False, str(exc)
            await self._finish_item(item_id, succeeded, detail)
        self._after(child, item_id, succeeded, limiter)

    async def _finish_item(self, item_id: str, succeeded: bool, detail: str | None) -> None:
        status = FanOutItemStatus.COMPLETED if succeeded else FanOutItemStatus.FAILED
        row = self.rows[item_id]
        try:
            await self._update(
                row,
                FanOutItemUpdate(status),
                event(
                    EventType.FAN_OUT_ITEM_COMPLETED,
                    step_name=self.name,
                    item_id=item_id,
                    succeeded=succeeded,
                    status=status.value,
                ),
            )
        except StoreError as exc:
            if succeeded:
                raise
            self.state.log.debug("could not record failed item", item=item_id, error=str(exc))
        if not succeeded:
            self.state.log.info(
                "foreach item failed", foreach=self.node.name, item=item_id, detail=detail
            )

    def _after(
        self, child: Any, item_id: str, succeeded: bool, limiter: anyio.CapacityLimiter
    ) -> None:
        """Schedule what the finished item unblocked, or apply ``on_child_fail``."""
        if not succeeded and self.node.on_child_fail == "halt":
            self.halted = True
            self.tg.cancel_scope.cancel()
            return
        if not succeeded and self.node.on_child_fail == "skip_dependents":
            self.tg.start_soon(self._skip_dependents, item_id)
            return
        for dependent in sorted(self.dependents.get(item_id, ())):
            if self._ready(dependent):
                self.tg.start_soon(self._run_item, child, dependent, limiter)

    async def _skip_dependents(self, item_id: str) -> None:
        pending = list(self.dependents.get(item_id, ()))
        seen: set[str] = set()
        updates = []
        while pending:
            dependent = pending.pop()
            if dependent in seen or self.rows[dependent].status in _TERMINAL:
                continue
            seen.add(dependent)
            pending.extend(self.dependents.get(dependent, ()))
            updates.append((self.rows[dependent].id, FanOutItemUpdate(FanOutItemStatus.SKIPPED)))
        if updates:
            for stored in await self.state.store.update_fan_out_items(
                updates, run_id=self.state.run_id, generation=self.state.generation
            ):
                self.rows[stored.item_id] = stored

    async def finish(self) -> None:
        """Skip what never became ready (halt, cycles), then record the step's outcome."""
        state, node = self.state, self.node
        stranded = [row for row in self.rows.values() if row.status not in _TERMINAL]
        cycle_error = None
        if stranded:
            if not self.halted:
                ids = ", ".join(sorted(row.item_id for row in stranded))
                cycle_error = f"foreach {node.name!r}: items in a dependency cycle: {ids}"
                state.log.warning("foreach dependency cycle", items=ids, on_cycle=node.on_cycle)
            for stored in await state.store.update_fan_out_items(
                [(row.id, FanOutItemUpdate(FanOutItemStatus.SKIPPED)) for row in stranded],
                run_id=state.run_id,
                generation=state.generation,
            ):
                self.rows[stored.item_id] = stored
        counts = dict.fromkeys(_TERMINAL, 0)
        for row in self.rows.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        completed, failed = counts[FanOutItemStatus.COMPLETED], counts[FanOutItemStatus.FAILED]
        skipped = counts[FanOutItemStatus.SKIPPED]
        total = len(self.rows)
        summary = (
            f"foreach {node.name}: {completed} completed, {failed} failed, "
            f"{skipped} skipped of {total} {node.over}"
        )
        output = json.dumps(
            {
                "items": [
                    {"item_id": r.item_id, "status": r.status.value, "child_run_id": r.child_run_id}
                    for r in sorted(self.rows.values(), key=lambda r: r.item_id)
                ]
            }
        )
        error = None
        if failed:
            error = f"foreach {node.name!r}: {failed} of {total} items failed"
        elif cycle_error and node.on_cycle == "fail":
            error = cycle_error
        elif self.halted:
            error = f"foreach {node.name!r}: halted"
        if error is None:
            if not total:
                summary = f"foreach {node.name}: no items to process"
            await state.update_step(
                self.step.id,
                StepUpdate(
                    StepStatus.COMPLETED,
                    result_text=summary,
                    context_out=summary,
                    structured_output=output,
                ),
                [event(EventType.STEP_COMPLETED, step_name=self.name, step_id=self.step.id)],
            )
            state.record_success(
                self.name,
                self.iteration,
                context=summary,
                structured_output=output,
                result_text=summary,
            )
            return
        await state.update_step(
            self.step.id,
            StepUpdate(
                StepStatus.FAILED,
                result_text=summary,
                context_out=summary,
                structured_output=output,
                step_error=error,
            ),
            [event(EventType.STEP_FAILED, step_name=self.name, step_id=self.step.id, error=error)],
        )
        state.fail(self.name, error)
