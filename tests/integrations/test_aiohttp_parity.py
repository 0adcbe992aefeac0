"""The aiohttp app and the FastAPI app answer the same requests the same way: one script
of requests (successes and refusals) is played against each, on its own engine, and the
answers — status codes and JSON, ids and times normalised — must be equal."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import pytest

pytest.importorskip("fastapi")

import httpx
from aiohttp.test_utils import TestClient, TestServer

import runkon
from runkon.integrations import Identity, Permission, Target, TokenAuthorizer
from runkon.integrations import aiohttp as runkon_aiohttp
from runkon.integrations import fastapi as runkon_fastapi


def parse(text: str) -> runkon.WorkflowDef:
    return runkon.parse_workflow(textwrap.dedent(text))


CATALOG = {
    wf.name: wf
    for wf in (
        parse(
            """
            workflow release {
              inputs { version default = "1.2" }
              call build
              gate approval {
                type = human_approval  prompt = "Ship {{version}}?"
                options = ["ship", "hold"]  timeout = "1h"
              }
              if approval.ship { call publish }
            }
            """
        ),
        parse(
            """
            workflow quorum {
              gate two { type = pr_approval  min_approvals = 2  timeout = "1h" }
              call merge
            }
            """
        ),
        parse(
            """
            workflow shell {
              inputs { who default = "Ada" }
              script greet { run = "echo hello {{who}}; echo careful >&2" }
              call report
            }
            """
        ),
        parse(
            """
            workflow review {
              gate answers { type = human_review  prompt = "Answer"  timeout = "1h" }
              call draft
            }
            """
        ),
    )
}


def viewers_only_read(who: Identity, permission: Permission, target: Target) -> bool:
    return permission is Permission.READ or "viewer" not in who.roles


AUTH = TokenAuthorizer(
    {"t-alice": "alice", "t-bob": "bob", "t-vic": Identity("vic", frozenset({"viewer"}))},
    rule=viewers_only_read,
)
ALICE = {"Authorization": "Bearer t-alice"}
BOB = {"Authorization": "Bearer t-bob"}
VIC = {"Authorization": "Bearer t-vic"}
JSON = {"Content-Type": "application/json"}


async def executor(ctx: runkon.StepContext, params: runkon.ActionParams) -> runkon.ActionOutput:
    return runkon.ActionOutput(context=f"{params.name} saw {params.gate_feedback}")


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: Any  # parsed JSON, or the text of an event stream
    www_authenticate: str | None


class Driver(Protocol):
    engine: runkon.FlowEngine

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        raw: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer: ...


def _decode(status: int, content_type: str, text: str, www: str | None) -> Answer:
    media = content_type.split(";")[0]
    body: Any = json.loads(text) if media == "application/json" else text
    return Answer(status, content_type, body, www)


@asynccontextmanager
async def aiohttp_driver() -> AsyncIterator[Driver]:
    engine = runkon.FlowEngine(runkon.InMemoryStore(), fallback_action=executor)
    app = runkon_aiohttp.create_app(engine, AUTH, workflows=CATALOG)
    async with TestClient(TestServer(app)) as client:

        class Aiohttp:
            def __init__(self) -> None:
                self.engine = engine

            async def __call__(
                self,
                method: str,
                path: str,
                *,
                headers: dict[str, str] | None = None,
                body: Any = None,
                raw: str | None = None,
                params: dict[str, str] | None = None,
            ) -> Answer:
                data = json.dumps(body) if body is not None else raw
                resp = await client.request(method, path, headers=headers, data=data, params=params)
                text = await resp.text()
                return _decode(
                    resp.status,
                    resp.headers["Content-Type"],
                    text,
                    resp.headers.get("WWW-Authenticate"),
                )

        yield Aiohttp()


@asynccontextmanager
async def fastapi_driver() -> AsyncIterator[Driver]:
    engine = runkon.FlowEngine(runkon.InMemoryStore(), fallback_action=executor)
    app = runkon_fastapi.create_app(engine, AUTH, workflows=CATALOG, inbox=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

            class FastApi:
                def __init__(self) -> None:
                    self.engine = engine

                async def __call__(
                    self,
                    method: str,
                    path: str,
                    *,
                    headers: dict[str, str] | None = None,
                    body: Any = None,
                    raw: str | None = None,
                    params: dict[str, str] | None = None,
                ) -> Answer:
                    content = json.dumps(body) if body is not None else raw
                    resp = await http.request(
                        method, path, headers=headers, content=content, params=params
                    )
                    return _decode(
                        resp.status_code,
                        resp.headers["content-type"],
                        resp.text,
                        resp.headers.get("www-authenticate"),
                    )

            yield FastApi()


async def gate_waiting(engine: runkon.FlowEngine, run_id: str) -> None:
    with anyio.fail_after(10):
        while True:
            if await engine.waiting_gates(run_id=run_id):
                return
            await anyio.sleep(0.01)


async def run_ended(engine: runkon.FlowEngine, run_id: str) -> None:
    with anyio.fail_after(10):
        while True:
            run = await engine.store.get_run(run_id)
            if run.status in ("completed", "failed", "cancelled"):
                return
            await anyio.sleep(0.01)


Step = tuple[str, Answer]


async def script(call: Driver) -> list[Step]:
    """The requests, in order; each answer labelled."""
    out: list[Step] = []

    async def do(label: str, method: str, path: str, **options: Any) -> Answer:
        answer = await call(method, path, **options)
        out.append((label, answer))
        return answer

    await do("start unauthenticated", "POST", "/api/runs", headers=JSON, body={"workflow": "x"})
    await do(
        "start as viewer", "POST", "/api/runs", headers={**VIC, **JSON}, body={"workflow": "x"}
    )
    await do(
        "start unknown", "POST", "/api/runs", headers={**ALICE, **JSON}, body={"workflow": "x"}
    )
    await do(
        "start as text/plain",
        "POST",
        "/api/runs",
        headers={**ALICE, "Content-Type": "text/plain"},
        body={"workflow": "release"},
    )
    await do("start no body", "POST", "/api/runs", headers=ALICE)
    await do("start empty", "POST", "/api/runs", headers={**ALICE, **JSON}, body={})
    await do(
        "start bad inputs",
        "POST",
        "/api/runs",
        headers={**ALICE, **JSON},
        body={"workflow": "release", "inputs": {"version": 3}},
    )
    started = await do(
        "start", "POST", "/api/runs", headers={**ALICE, **JSON}, body={"workflow": "release"}
    )
    run = started.body["run_id"]
    await gate_waiting(call.engine, run)
    gate = f"/api/runs/{run}/gates/approval"

    await do("inbox", "GET", "/api/gates", headers=ALICE)
    await do("inbox of run", "GET", "/api/gates", headers=ALICE, params={"run_id": run})
    await do("inbox unauthenticated", "GET", "/api/gates")
    await do("runs", "GET", "/api/runs", headers=ALICE)
    await do("runs limit word", "GET", "/api/runs", headers=ALICE, params={"limit": "ten"})
    await do("runs limit 0", "GET", "/api/runs", headers=ALICE, params={"limit": "0"})
    await do("gates limit big", "GET", "/api/gates", headers=ALICE, params={"limit": "5000"})
    await do("runs bad status", "GET", "/api/runs", headers=ALICE, params={"status": "x"})
    await do("run", "GET", f"/api/runs/{run}", headers=ALICE)
    await do("run unknown", "GET", "/api/runs/nope", headers=ALICE)

    await do("approve unauthenticated", "POST", f"{gate}/approve")
    await do("approve as viewer", "POST", f"{gate}/approve", headers=VIC)
    await do(
        "approve bad selection",
        "POST",
        f"{gate}/approve",
        headers={**ALICE, **JSON},
        body={"selections": ["sink"]},
    )
    await do(
        "approve with a name",
        "POST",
        f"{gate}/approve",
        headers={**ALICE, **JSON},
        body={"by": "mallory"},
    )
    await do(
        "approve wrong type",
        "POST",
        f"{gate}/approve",
        headers={**ALICE, **JSON},
        body={"selections": "ship"},
    )
    await do("approve unknown gate", "POST", f"/api/runs/{run}/gates/nope/approve", headers=ALICE)
    await do("approve unknown run", "POST", "/api/runs/nope/gates/approval/approve", headers=ALICE)
    await do(
        "reject with selections",
        "POST",
        f"{gate}/reject",
        headers={**ALICE, **JSON},
        body={"selections": ["hold"]},
    )
    await do("feedback empty", "POST", f"{gate}/feedback", headers={**ALICE, **JSON}, body={})
    await do(
        "cross-site cookie approve",
        "POST",
        f"{gate}/approve",
        headers={"Cookie": "runkon_token=t-alice", "Origin": "https://evil.example", **JSON},
        body={},
    )
    await do(
        "approve",
        "POST",
        f"{gate}/approve",
        headers={**BOB, **JSON},
        body={"feedback": "go", "selections": ["ship"]},
    )
    await run_ended(call.engine, run)
    await do("approve again", "POST", f"{gate}/approve", headers=ALICE)
    await do("reject decided", "POST", f"{gate}/reject", headers=ALICE)
    await do("finished run", "GET", f"/api/runs/{run}", headers=ALICE)
    await do("events", "GET", f"/api/runs/{run}/events", headers=ALICE)
    await do(
        "events after 3", "GET", f"/api/runs/{run}/events", headers=ALICE, params={"after": "3"}
    )
    await do(
        "events last id",
        "GET",
        f"/api/runs/{run}/events",
        headers={**ALICE, "Last-Event-ID": "5"},
    )
    await do(
        "events bad last id",
        "GET",
        f"/api/runs/{run}/events",
        headers={**ALICE, "Last-Event-ID": "five"},
    )
    await do(
        "events bad after", "GET", f"/api/runs/{run}/events", headers=ALICE, params={"after": "-1"}
    )
    await do("events unauthenticated", "GET", f"/api/runs/{run}/events")

    quorum = await do(
        "start quorum", "POST", "/api/runs", headers={**ALICE, **JSON}, body={"workflow": "quorum"}
    )
    two = quorum.body["run_id"]
    await gate_waiting(call.engine, two)
    await do("quorum alice", "POST", f"/api/runs/{two}/gates/two/approve", headers=ALICE)
    await do("quorum alice again", "POST", f"/api/runs/{two}/gates/two/approve", headers=ALICE)
    await do("quorum inbox", "GET", "/api/gates", headers=ALICE, params={"run_id": two})
    await do("quorum bob", "POST", f"/api/runs/{two}/gates/two/approve", headers=BOB)
    await run_ended(call.engine, two)

    review = await do(
        "start review", "POST", "/api/runs", headers={**ALICE, **JSON}, body={"workflow": "review"}
    )
    answers = review.body["run_id"]
    await gate_waiting(call.engine, answers)
    await do("cancel as viewer", "POST", f"/api/runs/{answers}/cancel", headers=VIC)
    await do(
        "cancel bad json", "POST", f"/api/runs/{answers}/cancel", headers={**ALICE, **JSON}, raw="{"
    )
    await do("cancel", "POST", f"/api/runs/{answers}/cancel", headers=ALICE)
    await run_ended(call.engine, answers)
    await do(
        "cancel again",
        "POST",
        f"/api/runs/{answers}/cancel",
        headers={**ALICE, **JSON},
        body={"reason": "twice"},
    )
    await do("cancelled run", "GET", f"/api/runs/{answers}", headers=ALICE)

    shell = await do(
        "start shell", "POST", "/api/runs", headers={**ALICE, **JSON}, body={"workflow": "shell"}
    )
    ran = shell.body["run_id"]
    await run_ended(call.engine, ran)
    await do("shell run", "GET", f"/api/runs/{ran}", headers=ALICE)
    await do("step logs", "GET", f"/api/runs/{ran}/steps/greet/logs", headers=ALICE)
    await do("step logs no output", "GET", f"/api/runs/{ran}/steps/report/logs", headers=ALICE)
    await do("step logs unknown step", "GET", f"/api/runs/{ran}/steps/nope/logs", headers=ALICE)
    await do("step logs unknown run", "GET", "/api/runs/nope/steps/greet/logs", headers=ALICE)
    await do("step logs unauthenticated", "GET", f"/api/runs/{ran}/steps/greet/logs")
    await do("all runs", "GET", "/api/runs", headers=ALICE)
    return out


ULID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
MILLIS = re.compile(r'"(duration_ms|ts|timestamp_ms|elapsed_ms)":\s?\d+(\.\d+)?')


def normalise(steps: list[Step]) -> list[tuple[str, int, str, Any, str | None]]:
    """Ids replaced by their order of appearance, times and durations by placeholders."""
    seen: dict[str, str] = {}

    def ids(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"<id{len(seen)}>")

    def scrub(text: str) -> str:
        text = ULID.sub(ids, text)
        text = TIME.sub("<time>", text)
        return MILLIS.sub(r'"\1": 0', text)

    out = []
    for label, answer in steps:
        text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        body = scrub(text)
        media = answer.content_type.split(";")[0]
        out.append((label, answer.status, media, body, answer.www_authenticate))
    return out


async def test_aiohttp_and_fastapi_answer_the_same_script_the_same_way() -> None:
    async with aiohttp_driver() as call:
        ours = normalise(await script(call))
    async with fastapi_driver() as call:
        theirs = normalise(await script(call))

    assert [s[0] for s in ours] == [s[0] for s in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine == reference, mine[0]
