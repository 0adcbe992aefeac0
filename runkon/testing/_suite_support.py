"""Small helpers the store conformance checks share (runner-agnostic: no pytest)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from runkon.persistence import (
    GateOption,
    NewGate,
    NewRun,
    NewStep,
    RunRecord,
    StepRecord,
    StepRole,
    Store,
)

_E = TypeVar("_E", bound=BaseException)

OWNER = "engine-a"
OTHER_OWNER = "engine-b"


async def raises(exc_type: type[_E], call: Awaitable[Any]) -> _E:
    """Await ``call`` and return the ``exc_type`` it raised; fail if it raised nothing."""
    try:
        await call
    except exc_type as exc:
        return exc
    raise AssertionError(f"expected {exc_type.__name__}, but the call succeeded")


def utc_in(seconds: float) -> datetime:
    """An aware UTC datetime ``seconds`` from now."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def leased_run(
    store: Store, workflow_name: str = "wf", *, owner: str = OWNER, **fields: Any
) -> tuple[RunRecord, int]:
    """Create a run and take its lease; return the run (as leased) and the generation."""
    run = await store.create_run(NewRun(workflow_name, **fields))
    generation = await store.acquire_lease(run.id, owner, 60)
    assert generation is not None, "a fresh run's lease must be free"
    return await store.get_run(run.id), generation


async def running_step(
    store: Store, run_id: str, generation: int, position: int = 0, name: str = "plan"
) -> StepRecord:
    """Insert a running agent step."""
    return await store.insert_step(
        NewStep(run_id, name, StepRole.AGENT, position), generation=generation
    )


def new_gate(run_id: str, name: str = "review", position: int = 1, **fields: Any) -> NewGate:
    """A gate with two options, one approval needed and a deadline an hour away."""
    fields.setdefault("options", (GateOption("ship", "Ship it"), GateOption("hold", "Hold")))
    fields.setdefault("deadline_at", utc_in(3600))
    fields.setdefault("prompt", "Ship the release?")
    return NewGate(run_id, name, fields.pop("gate_type", "human_approval"), position, **fields)


async def steal_lease(store: Store, run_id: str) -> int:
    """Let the current lease lapse and give the run to another owner; return its generation."""
    await store.release_lease(run_id, OWNER, (await store.get_run(run_id)).generation)
    generation = await store.acquire_lease(run_id, OTHER_OWNER, 60)
    assert generation is not None
    return generation
