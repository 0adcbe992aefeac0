"""The aiohttp integration over HTTP: runs, the inbox, decisions, cancellation, the
resumable event stream and every refusal (which must change nothing), on every store
backend (ids ``memory`` and ``sqlite``, a real file)."""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import runkon
from runkon.integrations import Identity, Permission, RunkonApi, Target, TokenAuthorizer
from runkon.integrations.aiohttp import RUNKON_API, add_routes, create_app, engine_context
from runkon.persistence import InMemoryStore, NewRun, SqliteStore, StepRole, Store

Client: TypeAlias = "TestClient[web.Request, web.Application]"


def parse(text: str) -> runkon.WorkflowDef:
    return runkon.parse_workflow(textwrap.dedent(text))


RELEASE = parse(
    """
    workflow release {
      inputs { version default = "1.2" }
      call build
      gate approval {
        type    = human_approval
        prompt  = "Ship {{version}}?"
        options = ["ship", "hold"]
        timeout = "1h"
      }
      if approval.ship { call publish }
      call announce
    }
    """
)
QUORUM = parse(
    """
    workflow quorum {
      gate two { type = pr_approval  min_approvals = 2  timeout = "1h" }
      call merge
    }
    """
)
REVIEW = parse(
    """
    workflow review {
      gate answers { type = human_review  prompt = "Answer the questions"  timeout = "1h" }
      call draft
    }
    """
)
NEEDS_INPUT = parse(
    """
    workflow needs-input {
      inputs { ticket required }
      call work
    }
    """
)
CATALOG = {wf.name: wf for wf in (RELEASE, QUORUM, REVIEW, NEEDS_INPUT)}


def viewers_only_read(who: Identity, permission: Permission, target: Target) -> bool:
    return permission is Permission.READ or "viewer" not in who.roles


AUTH = TokenAuthorizer(
    {
        "t-alice": "alice",
        "t-bob": "bob",
        "t-vic": Identity("vic", frozenset({"viewer"})),
    },
    rule=viewers_only_read,
)


EVIL = "https://evil.example"


def auth(token: str = "t-alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Recorder:
    """The fallback executor: records what every call was asked."""

    calls: list[runkon.ActionParams] = field(default_factory=list)

    async def __call__(
        self, ctx: runkon.StepContext, params: runkon.ActionParams
    ) -> runkon.ActionOutput:
        self.calls.append(params)
        return runkon.ActionOutput(context=f"{params.name} done")

    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    def of(self, name: str) -> runkon.ActionParams:
        [call] = [call for call in self.calls if call.name == name]
        return call


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = (
        InMemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "runs.db")
    )
    async with backend:
        yield backend


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(store: Store, rec: Recorder) -> runkon.FlowEngine:
    # the store stays open after the app stopped, so tests can read what it holds
    return runkon.FlowEngine(store, fallback_action=rec, manage_store=False)


@pytest.fixture
async def client(engine: runkon.FlowEngine) -> AsyncIterator[Client]:
    app = create_app(engine, AUTH, workflows=CATALOG)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


# --------------------------------------------------------------------------- helpers


async def start(client: Client, workflow: str, **inputs: str) -> str:
    resp = await client.post(
        "/api/runs", json={"workflow": workflow, "inputs": inputs}, headers=auth()
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["workflow_name"] == workflow
    run_id: str = body["run_id"]
    return run_id


async def start_waiting(client: Client, workflow: str) -> tuple[str, dict[str, Any]]:
    """Start a run and wait until its gate is in the inbox."""
    run_id = await start(client, workflow)
    with anyio.fail_after(10):
        while True:
            resp = await client.get("/api/gates", params={"run_id": run_id}, headers=auth())
            assert resp.status == 200
            gates = await resp.json()
            if gates:
                return run_id, gates[0]
            await anyio.sleep(0.01)


async def finished(client: Client, run_id: str) -> dict[str, Any]:
    """The run once it finished (read over HTTP)."""
    with anyio.fail_after(10):
        while True:
            resp = await client.get(f"/api/runs/{run_id}", headers=auth())
            assert resp.status == 200
            run: dict[str, Any] = await resp.json()
            if run["status"] in ("completed", "failed", "cancelled"):
                return run
            await anyio.sleep(0.01)


async def snapshot(store: Store, run_id: str) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    run = await store.get_run(run_id)
    steps = await store.get_steps(run_id)
    gates = [await store.get_gate(s.id) for s in steps if s.role == StepRole.GATE]
    events = await store.read_events(run_id)
    return run.status, run.cancel_reason, steps, gates, [e.seq for e in events]


async def post(
    client: Client,
    path: str,
    *,
    token: str | None = "t-alice",
    body: Any = None,
    raw: str = "",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {**(auth(token) if token else {}), "Content-Type": content_type, **(headers or {})}
    data = json.dumps(body) if body is not None else raw
    resp = await client.post(path, data=data, headers=headers)
    return resp.status, await resp.json()


async def no_subscribers(engine: runkon.FlowEngine) -> None:
    """Wait (up to 5 s) until no event stream holds a subscription of the engine."""
    with anyio.fail_after(5):
        while True:
            if engine.events.subscriber_count == 0:
                return
            await anyio.sleep(0.02)


def assert_error(body: Any, error: str) -> None:
    assert set(body) == {"error", "message", "detail"}
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert body["message"]


# --------------------------------------------------------------------------- runs and gates


async def test_start_list_inbox_approve_with_selections_and_read_the_steps(
    client: Client, rec: Recorder
) -> None:
    resp = await client.post("/api/runs", json={"workflow": "release"}, headers=auth())
    assert resp.status == 201
    started = await resp.json()
    assert started["status"] in ("pending", "running", "waiting")
    run_id = started["run_id"]

    _, gate = await start_waiting(client, "release")  # a second run, left waiting
    resp = await client.get("/api/gates", headers=auth())
    inbox = await resp.json()
    assert {g["run_id"] for g in inbox} == {run_id, gate["run_id"]}
    [mine] = [g for g in inbox if g["run_id"] == run_id]
    assert mine["gate_name"] == "approval"
    assert mine["gate_type"] == "human_approval"
    assert mine["prompt"] == "Ship 1.2?"
    assert mine["options"] == [
        {"value": "ship", "label": "ship"},
        {"value": "hold", "label": "hold"},
    ]
    assert mine["deadline_at"] is not None
    assert (mine["approvals"], mine["min_approvals"]) == (0, 1)

    resp = await client.get("/api/runs", headers=auth())
    assert resp.status == 200
    listed = await resp.json()
    assert {r["id"] for r in listed} == {run_id, gate["run_id"]}
    assert {r["status"] for r in listed} == {"waiting"}

    status, receipt = await post(
        client,
        f"/api/runs/{run_id}/gates/approval/approve",
        token="t-bob",
        body={"feedback": "go", "selections": ["ship"]},
    )
    assert status == 200
    assert receipt["outcome"] == "accepted"
    assert receipt["decision"] == "approved"
    assert receipt["decided_by"] == "bob"  # the identity of the token, not the body
    assert receipt["run_id"] == run_id

    run = await finished(client, run_id)
    assert run["status"] == "completed"
    assert [s["name"] for s in run["steps"]] == ["build", "approval", "publish", "announce"]
    assert {s["status"] for s in run["steps"]} == {"completed"}
    gate_step = run["steps"][1]
    assert (gate_step["role"], gate_step["gate_type"]) == ("gate", "human_approval")
    assert rec.of("publish").gate_selections == ("ship",)
    assert rec.of("publish").inputs["gate_feedback"] == "ship"

    resp = await client.get("/api/runs", params={"status": "completed"}, headers=auth())
    assert [r["id"] for r in await resp.json()] == [run_id]
    resp = await client.get("/api/runs", params={"workflow": "quorum"}, headers=auth())
    assert await resp.json() == []
    resp = await client.get("/api/gates", params={"gate_type": "human_approval"}, headers=auth())
    assert [g["run_id"] for g in await resp.json()] == [gate["run_id"]]


async def test_quorum_needs_two_distinct_identities(client: Client, rec: Recorder) -> None:
    run_id, gate = await start_waiting(client, "quorum")
    assert gate["min_approvals"] == 2
    path = f"/api/runs/{run_id}/gates/two/approve"

    status, first = await post(client, path, token="t-alice")
    assert (status, first["outcome"], first["approvals"]) == (200, "approval_recorded", 1)
    status, again = await post(client, path, token="t-alice", body={"feedback": "me again"})
    assert (status, again["outcome"], again["approvals"]) == (200, "already_approved", 1)
    resp = await client.get("/api/gates", params={"run_id": run_id}, headers=auth())
    [still] = await resp.json()
    assert still["approvals"] == 1
    assert rec.calls == []

    status, second = await post(client, path, token="t-bob")
    assert (status, second["outcome"], second["approvals_needed"]) == (200, "accepted", 2)
    assert (await finished(client, run_id))["status"] == "completed"
    assert rec.names() == ["merge"]


async def test_feedback_reaches_later_steps_as_gate_feedback(
    client: Client, rec: Recorder, store: Store
) -> None:
    run_id, _ = await start_waiting(client, "review")
    status, receipt = await post(
        client, f"/api/runs/{run_id}/gates/answers/feedback", body={"feedback": "use option B"}
    )
    assert (status, receipt["outcome"]) == (200, "accepted")
    run = await finished(client, run_id)
    assert run["status"] == "completed"
    assert run["steps"][0]["gate_feedback"] == "use option B"
    draft = rec.of("draft")
    assert draft.gate_feedback == "use option B"
    assert draft.inputs["gate_feedback"] == "use option B"


async def test_a_rejection_fails_the_run(client: Client, rec: Recorder) -> None:
    run_id, _ = await start_waiting(client, "release")
    status, receipt = await post(
        client, f"/api/runs/{run_id}/gates/approval/reject", body={"feedback": "not now"}
    )
    assert (status, receipt["outcome"], receipt["decision"]) == (200, "accepted", "rejected")
    run = await finished(client, run_id)
    assert run["status"] == "failed"
    assert "not now" in run["error"]
    assert rec.names() == ["build"]


async def test_cancel_a_waiting_run(client: Client, store: Store) -> None:
    run_id, _ = await start_waiting(client, "release")
    status, body = await post(client, f"/api/runs/{run_id}/cancel", body={"reason": "obsolete"})
    assert (status, body) == (200, {"run_id": run_id, "cancelling": True})
    run = await finished(client, run_id)
    assert (run["status"], run["cancel_reason"]) == ("cancelled", "obsolete")
    resp = await client.get("/api/gates", headers=auth())
    assert await resp.json() == []

    # a second cancel (no body at all) answers that the run had finished already
    status, body = await post(client, f"/api/runs/{run_id}/cancel")
    assert (status, body) == (200, {"run_id": run_id, "cancelling": False})


async def test_routes_on_an_existing_app_under_another_prefix(store: Store, rec: Recorder) -> None:
    engine = runkon.FlowEngine(store, fallback_action=rec, manage_store=False)
    api = RunkonApi(engine, AUTH, workflows=CATALOG)

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="my own route")

    app = web.Application()
    app.router.add_get("/", hello)
    app.cleanup_ctx.append(engine_context(engine))
    add_routes(app, api, prefix="/flows/")
    async with TestClient(TestServer(app)) as client:
        assert await (await client.get("/")).text() == "my own route"
        resp = await client.post("/flows/runs", json={"workflow": "quorum"}, headers=auth())
        assert resp.status == 201
        run_id = (await resp.json())["run_id"]
        resp = await client.get(f"/flows/runs/{run_id}", headers=auth())
        assert (await resp.json())["id"] == run_id
        assert (await client.get("/api/runs", headers=auth())).status == 404


async def test_create_app_keeps_its_api_and_runs_the_engine_only_while_up(
    engine: runkon.FlowEngine,
) -> None:
    app = create_app(engine, AUTH)
    assert app[RUNKON_API].engine is engine
    with pytest.raises(runkon.ExecutionError):
        await engine.start(RELEASE)  # not running before the app starts
    async with TestClient(TestServer(app)) as client:
        handle = await engine.start(QUORUM)
        resp = await client.get(f"/api/runs/{handle.run_id}", headers=auth())
        assert resp.status == 200
        # no catalog: starting by name over HTTP is refused
        status, body = await post(client, "/api/runs", body={"workflow": "quorum"})
        assert status == 404
        assert_error(body, "no_catalog")
    with pytest.raises(runkon.ExecutionError):
        await engine.start(RELEASE)


async def test_the_app_may_start_and_stop_in_different_tasks(engine: runkon.FlowEngine) -> None:
    """As test fixtures and some servers do: the engine is held by a task of its own."""
    client = TestClient(TestServer(create_app(engine, AUTH, workflows=CATALOG)))
    async with anyio.create_task_group() as group:
        group.start_soon(client.start_server)
    try:
        run_id, _ = await start_waiting(client, "quorum")
    finally:
        await client.close()
    assert run_id not in engine.active_runs()
    with pytest.raises(runkon.ExecutionError):
        await engine.start(QUORUM)


async def test_the_app_does_not_start_when_the_engine_cannot(tmp_path: Path) -> None:
    engine = runkon.FlowEngine(SqliteStore(tmp_path))  # a directory, not a database file
    server = TestServer(create_app(engine, AUTH))
    with pytest.raises(runkon.StoreError):
        await server.start_server()
    await server.close()


# --------------------------------------------------------------------------- refusals


async def test_refused_decisions_change_nothing(client: Client, store: Store) -> None:
    run_id, _ = await start_waiting(client, "release")
    before = await snapshot(store, run_id)
    approve = f"/api/runs/{run_id}/gates/approval/approve"
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (approve, {"token": None}, 401, "unauthenticated"),
        (approve, {"token": "t-wrong"}, 401, "unauthenticated"),
        (approve, {"token": "t-vic"}, 403, "forbidden"),
        (f"/api/runs/{run_id}/gates/approval/reject", {"token": None}, 401, "unauthenticated"),
        (f"/api/runs/{run_id}/gates/approval/reject", {"token": "t-vic"}, 403, "forbidden"),
        (
            f"/api/runs/{run_id}/gates/approval/feedback",
            {"token": "t-vic", "body": {"feedback": "x"}},
            403,
            "forbidden",
        ),
        (f"/api/runs/{run_id}/cancel", {"token": "t-vic"}, 403, "forbidden"),
        (f"/api/runs/{run_id}/cancel", {"token": None}, 401, "unauthenticated"),
        (approve, {"body": {"selections": ["ship", "sink"]}}, 422, "invalid_selection"),
        (approve, {"body": {"feedback": "fine"}}, 422, "selection_required"),
        (
            f"/api/runs/{run_id}/gates/approval/feedback",
            {"body": {"feedback": "ship"}},
            422,
            "selection_required",
        ),
        (
            f"/api/runs/{run_id}/gates/approval/reject",
            {"body": {"selections": ["hold"]}},
            422,
            "invalid_selection",
        ),
        (f"/api/runs/{run_id}/gates/nope/approve", {}, 404, "unknown_gate"),
        ("/api/runs/no-such-run/gates/approval/approve", {}, 404, "unknown_run"),
        ("/api/runs/no-such-run/cancel", {}, 404, "unknown_run"),
        # an anonymous caller learns nothing, not even whether a run exists
        ("/api/runs/no-such-run/gates/approval/approve", {"token": None}, 401, "unauthenticated"),
        ("/api/runs/no-such-run/cancel", {"token": None}, 401, "unauthenticated"),
        (approve, {"raw": "{not json"}, 422, "invalid_request"),
        (approve, {"body": {}, "content_type": "text/plain"}, 422, "invalid_request"),
        (
            approve,
            {"token": None, "headers": {"Cookie": "runkon_token=t-alice", "Origin": EVIL}},
            403,
            "cross_site",
        ),
        (approve, {"raw": "[1, 2]"}, 422, "invalid_request"),
        (approve, {"body": {"selections": "ship"}}, 422, "invalid_request"),
        # the approver comes from the token: a name in the body is refused, not used
        (approve, {"body": {"by": "mallory"}}, 422, "invalid_request"),
        (
            f"/api/runs/{run_id}/gates/approval/feedback",
            {"body": {"feedback": ""}},
            422,
            "invalid_request",
        ),
        (f"/api/runs/{run_id}/gates/approval/feedback", {}, 422, "invalid_request"),
        (f"/api/runs/{run_id}/cancel", {"raw": "{"}, 422, "invalid_request"),
    ]
    for path, options, expected_status, expected_error in cases:
        status, body = await post(client, path, **options)
        assert (status, body["error"]) == (expected_status, expected_error), (path, options)
        assert_error(body, expected_error)
        assert await snapshot(store, run_id) == before, (path, options)

    _, invalid = await post(client, approve, body={"selections": ["sink"]})
    assert invalid["detail"]["invalid"] == ["sink"]
    assert invalid["detail"]["allowed"] == ["ship", "hold"]
    _, required = await post(client, approve, body={})
    assert required["detail"] == {
        "invalid": [],
        "allowed": ["ship", "hold"],
        "select": "many",
        "earlier": [],
    }
    assert "needs a choice; choose one or more of ['ship', 'hold']" in required["message"]
    _, malformed = await post(client, approve, raw="{not json")
    assert malformed["detail"]["errors"][0]["type"] == "json_invalid"

    resp = await client.post(approve)
    assert resp.headers["WWW-Authenticate"] == "Bearer"

    # the gate is still waiting and can still be decided, by a browser of this site too
    own = str(client.make_url("/")).rstrip("/")
    status, receipt = await post(
        client,
        approve,
        token=None,
        headers={"Cookie": "runkon_token=t-bob", "Origin": own},
        body={"selections": ["hold"]},
    )
    assert (status, receipt["outcome"], receipt["decided_by"]) == (200, "accepted", "bob")


async def test_deciding_an_already_decided_gate_is_a_conflict(client: Client, store: Store) -> None:
    run_id, _ = await start_waiting(client, "release")
    approve = f"/api/runs/{run_id}/gates/approval/approve"
    assert (await post(client, approve, token="t-alice", body={"selections": ["ship"]}))[0] == 200
    assert (await finished(client, run_id))["status"] == "completed"
    before = await snapshot(store, run_id)
    for path in (approve, approve.replace("approve", "reject")):
        status, body = await post(client, path, token="t-bob")
        assert status == 409
        assert_error(body, "already_resolved")
        assert body["detail"]["decided_by"] == "alice"
        assert body["detail"]["decision"] == "approved"
        assert await snapshot(store, run_id) == before


async def test_refused_starts_and_reads(client: Client, store: Store) -> None:
    runs_before = await store.list_runs()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"token": None, "body": {"workflow": "release"}}, 401, "unauthenticated"),
        ({"token": "t-vic", "body": {"workflow": "release"}}, 403, "forbidden"),
        ({"body": {"workflow": "nope"}}, 404, "unknown_workflow"),
        ({"body": {"workflow": "needs-input"}}, 422, "invalid_inputs"),
        ({"body": {"workflow": ""}}, 422, "invalid_request"),
        ({"body": {}}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ({"raw": "workflow=release"}, 422, "invalid_request"),
        ({"body": {"workflow": "release", "inputs": {"version": 3}}}, 422, "invalid_request"),
    ]
    for options, expected_status, expected_error in cases:
        status, body = await post(client, "/api/runs", **options)
        assert status == expected_status, options
        assert_error(body, expected_error)
    assert await store.list_runs() == runs_before

    reads: list[tuple[str, dict[str, str], dict[str, str], int, str]] = [
        ("/api/runs", {}, {}, 401, "unauthenticated"),
        ("/api/gates", {}, {}, 401, "unauthenticated"),
        ("/api/runs/no-such-run", auth(), {}, 404, "unknown_run"),
        ("/api/runs", auth(), {"limit": "ten"}, 422, "invalid_request"),
        ("/api/runs", auth(), {"limit": "0"}, 422, "invalid_request"),
        ("/api/runs", auth(), {"status": "sleepy"}, 422, "invalid_status"),
        ("/api/gates", auth(), {"limit": "1.5"}, 422, "invalid_request"),
        ("/api/gates", auth(), {"limit": "100000"}, 422, "invalid_request"),
    ]
    for path, headers, params, expected_status, expected_error in reads:
        resp = await client.get(path, headers=headers, params=params)
        assert resp.status == expected_status, (path, params)
        assert_error(await resp.json(), expected_error)


async def test_a_rule_hides_runs_and_gates_the_caller_may_not_read(
    engine: runkon.FlowEngine,
) -> None:
    def only_own_workflow(who: Identity, permission: Permission, target: Target) -> bool:
        return who.name == "alice" or target.workflow_name == "quorum"

    app = create_app(
        engine,
        TokenAuthorizer({"t-alice": "alice", "t-bob": "bob"}, rule=only_own_workflow),
        workflows=CATALOG,
    )
    async with TestClient(TestServer(app)) as client:
        release, _ = await start_waiting(client, "release")
        quorum, _ = await start_waiting(client, "quorum")
        resp = await client.get("/api/runs", headers=auth("t-bob"))
        assert [r["id"] for r in await resp.json()] == [quorum]
        resp = await client.get("/api/gates", headers=auth("t-bob"))
        assert [g["run_id"] for g in await resp.json()] == [quorum]
        resp = await client.get(f"/api/runs/{release}", headers=auth("t-bob"))
        assert resp.status == 403
        resp = await client.get(f"/api/runs/{release}/events", headers=auth("t-bob"))
        assert resp.status == 403
        resp = await client.get("/api/gates", headers=auth("t-alice"))
        assert len(await resp.json()) == 2


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Frame:
    id: int | None
    event: str
    data: Any


async def read_frames(
    resp: aiohttp.ClientResponse, *, until: Callable[[Frame], bool]
) -> list[Frame]:
    """Frames of an SSE response up to and including the first for which ``until``."""
    frames: list[Frame] = []
    fields: dict[str, str] = {}
    with anyio.fail_after(10):
        while True:
            line = (await resp.content.readline()).decode()
            assert line, "the stream ended early"
            line = line.rstrip("\n")
            if line.startswith(":"):
                continue  # a comment (keepalive)
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            frame = Frame(
                int(fields["id"]) if "id" in fields else None,
                fields.get("event", "message"),
                json.loads(fields.get("data", "null")),
            )
            fields = {}
            frames.append(frame)
            if until(frame):
                return frames


async def test_events_resume_from_last_event_id_without_gaps_or_repeats(
    client: Client, engine: runkon.FlowEngine
) -> None:
    run_id, _ = await start_waiting(client, "release")
    resp = await client.get(f"/api/runs/{run_id}/events", headers=auth())
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    first = await read_frames(resp, until=lambda f: f.event == "gate_waiting")
    resp.close()  # the client goes away mid-run
    await no_subscribers(engine)

    status, _ = await post(
        client, f"/api/runs/{run_id}/gates/approval/approve", body={"selections": ["ship"]}
    )
    assert status == 200
    resp = await client.get(
        f"/api/runs/{run_id}/events", headers={**auth(), "Last-Event-ID": str(first[-1].id)}
    )
    rest = await read_frames(resp, until=lambda f: f.event == "end")
    resp.close()

    end = rest.pop()
    assert (end.id, end.data) == (None, {})
    seqs = [f.id for f in first + rest]
    stored = await engine.read_events(run_id)
    assert seqs == [e.seq for e in stored]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [f.event for f in first + rest] == [e.type for e in stored]
    assert rest[-1].event == "run_completed"
    assert all(f.data["run_id"] == run_id and f.data["seq"] == f.id for f in first + rest)

    # a finished run replays from ?after= and ends
    resp = await client.get(f"/api/runs/{run_id}/events", params={"after": "2"}, headers=auth())
    replay = await read_frames(resp, until=lambda f: f.event == "end")
    assert [f.id for f in replay[:-1]] == seqs[2:]


async def test_event_stream_refusals(client: Client) -> None:
    run_id, _ = await start_waiting(client, "release")
    cases: list[tuple[str, dict[str, str], dict[str, str], int, str]] = [
        (run_id, {}, {}, 401, "unauthenticated"),
        ("no-such-run", auth(), {}, 404, "unknown_run"),
        (run_id, {**auth(), "Last-Event-ID": "seven"}, {}, 400, "invalid_last_event_id"),
        (run_id, auth(), {"after": "seven"}, 422, "invalid_request"),
        # beyond a 64-bit sequence number: refused, not a dead stream
        (run_id, {**auth(), "Last-Event-ID": str(2**63)}, {}, 400, "invalid_last_event_id"),
        (run_id, {**auth(), "Last-Event-ID": "-1"}, {}, 400, "invalid_last_event_id"),
        (run_id, auth(), {"after": str(2**63)}, 422, "invalid_request"),
    ]
    for run, headers, params, expected_status, expected_error in cases:
        resp = await client.get(f"/api/runs/{run}/events", headers=headers, params=params)
        assert resp.status == expected_status
        assert_error(await resp.json(), expected_error)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_vanished_client_is_noticed_without_handler_cancellation(
    engine: runkon.FlowEngine,
) -> None:
    """``web.run_app`` does not cancel handlers of closed connections (TestServer does):
    the stream must still let go of its subscription."""
    app = create_app(engine, AUTH, workflows=CATALOG, sse_keepalive=60)
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            resp = await session.post("/api/runs", json={"workflow": "release"}, headers=auth())
            run_id = (await resp.json())["run_id"]
            resp = await session.get(f"/api/runs/{run_id}/events", headers=auth())
            await read_frames(resp, until=lambda f: f.event == "gate_waiting")
            assert engine.events.subscriber_count == 1
            resp.close()
            await no_subscribers(engine)
    finally:
        await runner.cleanup()


async def test_shutdown_ends_open_event_streams(engine: runkon.FlowEngine) -> None:
    """The server does not wait (60 s by default) for streams of runs still waiting:
    they end cleanly, then the engine stops."""
    app = create_app(engine, AUTH, workflows=CATALOG)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        try:
            resp = await session.post("/api/runs", json={"workflow": "release"}, headers=auth())
            run_id = (await resp.json())["run_id"]
            resp = await session.get(f"/api/runs/{run_id}/events", headers=auth())
            await read_frames(resp, until=lambda f: f.event == "gate_waiting")
        finally:
            with anyio.fail_after(5):
                await runner.cleanup()
        assert await resp.content.read() == b""  # the stream ended, not broken off
    assert engine.events.subscriber_count == 0
    with pytest.raises(runkon.ExecutionError):
        await engine.start(RELEASE)


async def test_a_rule_on_the_gate_name_holds_when_the_gate_is_named_by_step_id(
    engine: runkon.FlowEngine,
) -> None:
    def gate_name_rule(who: Identity, permission: Permission, target: Target) -> bool:
        if permission is Permission.DECIDE and target.gate_name == "approval":
            return who.name == "alice"
        return True

    app = create_app(
        engine,
        TokenAuthorizer({"t-alice": "alice", "t-bob": "bob"}, rule=gate_name_rule),
        workflows=CATALOG,
    )
    async with TestClient(TestServer(app)) as client:
        run_id, gate = await start_waiting(client, "release")
        for ref in ("approval", gate["step_id"]):
            for decision in ("approve", "reject"):
                resp = await client.post(
                    f"/api/runs/{run_id}/gates/{ref}/{decision}", json={}, headers=auth("t-bob")
                )
                assert resp.status == 403, (ref, decision, await resp.text())
        resp = await client.post(
            f"/api/runs/{run_id}/gates/{gate['step_id']}/approve",
            json={"selections": ["ship"]},
            headers=auth("t-alice"),
        )
        assert resp.status == 200, await resp.text()


async def test_an_unknown_workflow_answer_shows_no_server_path(
    engine: runkon.FlowEngine, tmp_path: Path
) -> None:
    app = create_app(engine, AUTH, workflows=tmp_path)
    async with TestClient(TestServer(app)) as client:
        status, body = await post(client, "/api/runs", body={"workflow": "nope"})
        assert status == 404
        assert_error(body, "unknown_workflow")
        assert str(tmp_path) not in json.dumps(body)
        assert "nope" in body["message"]


async def test_a_run_no_engine_drives_is_stalled(client: Client, store: Store) -> None:
    run_id, _ = await start_waiting(client, "release")
    orphan = await store.create_run(NewRun(workflow_name="release"))  # nobody holds it

    resp = await client.get("/api/runs", headers=auth())
    stalled = {run["id"]: run["stalled"] for run in await resp.json()}
    assert stalled == {run_id: False, orphan.id: True}
    resp = await client.get(f"/api/runs/{orphan.id}", headers=auth())
    body = await resp.json()
    assert (body["status"], body["stalled"]) == ("pending", True)
