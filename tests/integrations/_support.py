"""Shared workflows, identities and helpers for the web integration tests."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

import runkon
from runkon import ActionOutput, ActionParams, FlowEngine, StepContext, Store
from runkon.integrations import Authorizer, Identity, Permission, Target, TokenAuthorizer
from runkon.integrations.fastapi import create_app
from runkon.persistence import GateOption, NewGate, NewRun

WORKFLOWS = {
    "ship": runkon.parse_workflow(
        """
        workflow ship {
          inputs { ticket required }
          gate human_approval {
            prompt = "Ship {{ticket}}?"  options = ["ship", "hold"]  timeout = "1h"
          }
          if human_approval.ship { call deploy }
        }
        """
    ),
    "quorum": runkon.parse_workflow(
        """
        workflow quorum {
          gate human_approval { prompt = "Two of you, please"  min_approvals = 2  timeout = "1h" }
          call deploy
        }
        """
    ),
    "review": runkon.parse_workflow(
        """
        workflow review {
          gate human_review { prompt = "What should change?"  timeout = "1h" }
          call publish
        }
        """
    ),
}

TOKENS = {"t-alice": "alice", "t-bob": "bob", "t-carol": Identity("carol", frozenset({"viewer"}))}
ALICE = {"Authorization": "Bearer t-alice"}
BOB = {"Authorization": "Bearer t-bob"}
CAROL = {"Authorization": "Bearer t-carol"}


def viewers_only_read(who: Identity, permission: Permission, target: Target) -> bool:
    """carol (a viewer) may read but not start, decide or cancel."""
    return permission is Permission.READ or "viewer" not in who.roles


AUTH = TokenAuthorizer(TOKENS, rule=viewers_only_read)


@dataclass
class Recorder:
    """The fallback executor: records every call with the gate feedback it saw."""

    calls: list[tuple[str, str | None, tuple[str, ...]]] = field(default_factory=list)

    async def __call__(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        self.calls.append((params.name, params.gate_feedback, params.gate_selections))
        return ActionOutput(context=f"{params.name} done")

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


@dataclass
class Harness:
    engine: FlowEngine
    app: FastAPI
    client: httpx.AsyncClient
    rec: Recorder
    store: Store

    async def start(
        self, workflow: str, inputs: dict[str, str] | None = None, *, gates: int = 1
    ) -> str:
        """Start a run over HTTP and wait until ``gates`` of its gates are waiting."""
        answer = await self.client.post(
            "/api/runs", json={"workflow": workflow, "inputs": inputs or {}}, headers=ALICE
        )
        assert answer.status_code == 201, answer.text
        run_id: str = answer.json()["run_id"]
        await wait_until(lambda: self.waiting(run_id), lambda found: len(found) >= gates)
        return run_id

    async def waiting(self, run_id: str) -> list[runkon.WaitingGate]:
        return await self.engine.waiting_gates(run_id=run_id)

    async def finished(self, run_id: str) -> str:
        """Wait until the run ends; its status."""
        run = await wait_until(
            lambda: self.store.get_run(run_id),
            lambda r: r.status in ("completed", "failed", "cancelled"),
        )
        return str(run.status)


async def wait_until(read: Any, done: Any, *, timeout: float = 5.0) -> Any:
    """Call ``read()`` until ``done(value)``; the value."""
    with anyio.fail_after(timeout):
        while True:
            value = await read()
            if done(value):
                return value
            await anyio.sleep(0.01)


@asynccontextmanager
async def serving(
    store: Store, *, authorizer: Authorizer = AUTH, action: Any = None, **app_options: Any
) -> AsyncIterator[Harness]:
    """The app (engine started by its lifespan) and a client talking to it in-process;
    ``action`` replaces the recording fallback executor."""
    rec = Recorder()
    engine = FlowEngine(store, fallback_action=action or rec, manage_store=False)
    options: dict[str, Any] = {"workflows": WORKFLOWS, "csrf_secret": "test-secret"}
    options.update(app_options)
    app = create_app(engine, authorizer, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(engine, app, client, rec, store)


async def gate_past_its_deadline(store: Store) -> tuple[str, str]:
    """A run of ``ship`` that no engine drives, waiting at gate ``review`` whose deadline
    passed a minute ago: ``(run_id, step_id)``."""
    run = await store.create_run(NewRun("ship"))
    generation = await store.acquire_lease(run.id, "gone", 60)
    assert generation is not None
    gate = await store.open_gate(
        NewGate(
            run.id,
            "review",
            "human_approval",
            0,
            options=[GateOption("ship", "ship"), GateOption("hold", "hold")],
            deadline_at=datetime.now(UTC) - timedelta(minutes=1),
        ),
        generation=generation,
    )
    await store.release_lease(run.id, "gone", generation)
    return run.id, gate.step_id


async def store_state(store: Store, run_id: str) -> tuple[Any, ...]:
    """Everything the store holds about a run (lease renewal time aside)."""
    run = dataclasses.replace(await store.get_run(run_id), lease_until=None)
    return (
        run,
        await store.get_steps(run_id),
        await store.read_events(run_id),
        await store.list_waiting_gates(run_id=run_id),
    )


def csrf_of(page: str) -> str:
    """The CSRF token embedded in an inbox page's forms."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None, page
    return found.group(1)


def sse_frames(text: str) -> list[dict[str, str]]:
    """Parse server-sent events (comments skipped) into field dicts."""
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            frames.append(fields)
    return frames
