"""The FastAPI router over both stores: runs, the inbox, decisions, cancellation, and
every refusal leaving the store exactly as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from runkon import FlowEngine, Store
from runkon.integrations import Identity, Permission, Target, TokenAuthorizer
from runkon.integrations.fastapi import create_router, runkon_lifespan
from runkon.persistence import NewRun

from ._support import (
    ALICE,
    AUTH,
    BOB,
    CAROL,
    TOKENS,
    WORKFLOWS,
    Recorder,
    gate_past_its_deadline,
    serving,
    store_state,
)


async def test_start_list_and_get_a_run_with_its_steps(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})

        listed = await h.client.get("/api/runs", headers=ALICE)
        assert listed.status_code == 200
        assert [(r["id"], r["workflow_name"]) for r in listed.json()] == [(run_id, "ship")]
        waiting = await h.client.get("/api/runs?status=waiting&workflow=ship", headers=ALICE)
        assert [r["id"] for r in waiting.json()] == [run_id]
        other = await h.client.get("/api/runs?workflow=quorum", headers=ALICE)
        assert other.json() == []

        detail = await h.client.get(f"/api/runs/{run_id}", headers=ALICE)
        assert detail.status_code == 200
        body = detail.json()
        assert body["inputs"] == {"ticket": "T-1"}
        assert [(s["name"], s["status"]) for s in body["steps"]] == [("human_approval", "waiting")]


async def test_inbox_then_approve_with_selections_as_the_authenticated_caller(
    store: Store,
) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        inbox = await h.client.get("/api/gates", headers=CAROL)  # viewers may read
        assert inbox.status_code == 200
        [gate] = inbox.json()
        assert gate["run_id"] == run_id
        assert gate["prompt"] == "Ship T-1?"
        assert [o["value"] for o in gate["options"]] == ["ship", "hold"]
        assert (gate["approvals"], gate["min_approvals"]) == (0, 1)
        assert gate["deadline_at"] is not None

        answer = await h.client.post(
            f"/api/runs/{run_id}/gates/human_approval/approve",
            json={"selections": ["ship"], "feedback": "go"},
            headers=ALICE,
        )
        assert answer.status_code == 200, answer.text
        receipt = answer.json()
        assert (receipt["outcome"], receipt["decided_by"]) == ("accepted", "alice")
        assert await h.finished(run_id) == "completed"
        assert h.rec.calls == [("deploy", "ship", ("ship",))]  # selections win
        assert (await h.client.get("/api/gates", headers=ALICE)).json() == []


async def test_quorum_needs_two_distinct_approvers(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("quorum")
        url = f"/api/runs/{run_id}/gates/human_approval/approve"
        first = (await h.client.post(url, headers=ALICE)).json()
        assert (first["outcome"], first["approvals"], first["approvals_needed"]) == (
            "approval_recorded",
            1,
            2,
        )
        again = (await h.client.post(url, headers=ALICE)).json()
        assert (again["outcome"], again["approvals"]) == ("already_approved", 1)
        [gate] = (await h.client.get(f"/api/gates?run_id={run_id}", headers=ALICE)).json()
        assert gate["approvals"] == 1
        second = (await h.client.post(url, headers=BOB)).json()
        assert (second["outcome"], second["decided_by"]) == ("accepted", "bob")
        assert await h.finished(run_id) == "completed"


async def test_feedback_reaches_the_next_step(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("review")
        answer = await h.client.post(
            f"/api/runs/{run_id}/gates/human_review/feedback",
            json={"feedback": "shorter title"},
            headers=BOB,
        )
        assert answer.status_code == 200, answer.text
        assert await h.finished(run_id) == "completed"
        assert h.rec.calls == [("publish", "shorter title", ())]
        empty = await h.client.post(
            f"/api/runs/{run_id}/gates/human_review/feedback", json={}, headers=BOB
        )
        assert empty.status_code == 422


async def test_reject_fails_the_run(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-2"})
        answer = await h.client.post(
            f"/api/runs/{run_id}/gates/human_approval/reject",
            json={"feedback": "not today"},
            headers=BOB,
        )
        assert answer.status_code == 200
        assert (answer.json()["decision"], answer.json()["decided_by"]) == ("rejected", "bob")
        assert await h.finished(run_id) == "failed"
        assert h.rec.calls == []


async def test_cancel_a_waiting_run(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-3"})
        answer = await h.client.post(
            f"/api/runs/{run_id}/cancel", json={"reason": "wrong ticket"}, headers=ALICE
        )
        assert answer.json() == {"run_id": run_id, "cancelling": True}
        assert await h.finished(run_id) == "cancelled"
        detail = (await h.client.get(f"/api/runs/{run_id}", headers=ALICE)).json()
        assert detail["cancel_reason"] == "wrong ticket"
        again = await h.client.post(f"/api/runs/{run_id}/cancel", headers=ALICE)
        assert again.json() == {"run_id": run_id, "cancelling": False}


REFUSALS: list[tuple[str, str, dict[str, str], Any, int, str]] = [
    # (name, path template, headers, JSON body, status, error code)
    ("no credentials", "/api/runs/{run}/gates/human_approval/approve", {}, None, 401,
     "unauthenticated"),
    ("unknown token", "/api/runs/{run}/gates/human_approval/approve",
     {"Authorization": "Bearer nope"}, None, 401, "unauthenticated"),
    ("no credentials, rejection with selections", "/api/runs/{run}/gates/human_approval/reject",
     {}, {"selections": ["ship"]}, 401, "unauthenticated"),
    ("viewer may not decide", "/api/runs/{run}/gates/human_approval/approve", CAROL, None, 403,
     "forbidden"),
    ("viewer may not reject", "/api/runs/{run}/gates/human_approval/reject", CAROL, None, 403,
     "forbidden"),
    ("viewer may not cancel", "/api/runs/{run}/cancel", CAROL, None, 403, "forbidden"),
    ("invalid selection", "/api/runs/{run}/gates/human_approval/approve", ALICE,
     {"selections": ["ship", "yolo"]}, 422, "invalid_selection"),
    ("no selection on a gate with options", "/api/runs/{run}/gates/human_approval/approve",
     ALICE, {"feedback": "looks fine"}, 422, "selection_required"),
    ("feedback is no choice on a gate with options",
     "/api/runs/{run}/gates/human_approval/feedback", ALICE, {"feedback": "ship"}, 422,
     "selection_required"),
    ("selections on a rejection", "/api/runs/{run}/gates/human_approval/reject", ALICE,
     {"selections": ["ship"]}, 422, "invalid_selection"),
    ("approver named in the body", "/api/runs/{run}/gates/human_approval/approve", ALICE,
     {"by": "mallory"}, 422, "invalid_request"),
    ("unknown gate", "/api/runs/{run}/gates/nope/approve", ALICE, None, 404, "unknown_gate"),
    ("unknown run", "/api/runs/run-nope/gates/human_approval/approve", ALICE, None, 404,
     "unknown_run"),
    ("unknown run cancelled", "/api/runs/run-nope/cancel", ALICE, None, 404, "unknown_run"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "error"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
async def test_refusals_change_nothing(
    store: Store, path: str, headers: dict[str, str], body: Any, status: int, error: str
) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-4"})
        before = await store_state(store, run_id)
        answer = await h.client.post(path.format(run=run_id), json=body, headers=headers)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"] == error
        assert set(answer.json()) == {"error", "message", "detail"}
        if status == 401:
            assert answer.headers["www-authenticate"] == "Bearer"
        assert await store_state(store, run_id) == before
        assert await h.waiting(run_id)  # still waiting for a decision


async def test_a_decided_gate_answers_409_and_changes_nothing(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-5"})
        url = f"/api/runs/{run_id}/gates/human_approval"
        assert (await h.client.post(f"{url}/reject", headers=ALICE)).status_code == 200
        assert await h.finished(run_id) == "failed"
        before = await store_state(store, run_id)
        for action in ("approve", "reject"):
            answer = await h.client.post(f"{url}/{action}", headers=BOB)
            assert answer.status_code == 409
            body = answer.json()
            assert body["error"] == "already_resolved"
            assert "'alice'" in body["message"]
            assert body["detail"]["decided_by"] == "alice"
        assert await store_state(store, run_id) == before


async def test_a_decision_after_the_gates_deadline_answers_409_and_changes_nothing(
    store: Store,
) -> None:
    async with serving(store) as h:
        run, gate = await gate_past_its_deadline(store)
        before = await store_state(store, run)
        for action in ("approve", "reject"):
            answer = await h.client.post(
                f"/api/runs/{run}/gates/review/{action}", json={}, headers=ALICE
            )
            assert answer.status_code == 409
            body = answer.json()
            assert body["error"] == "deadline_passed"
            assert "gate timed out: its deadline passed at " in body["message"]
            assert body["detail"]["deadline_at"] is not None
        assert await store_state(store, run) == before
        assert (await store.get_gate(gate)).status == "waiting"  # left for its run to time out


async def test_bad_requests_are_422_error_bodies(store: Store) -> None:
    async with serving(store) as h:
        limit = await h.client.get("/api/runs?limit=0", headers=ALICE)
        assert limit.status_code == 422
        assert limit.json()["error"] == "invalid_request"
        assert "limit" in limit.json()["message"]
        status = await h.client.get("/api/runs?status=sleepy", headers=ALICE)
        assert (status.status_code, status.json()["error"]) == (422, "invalid_status")
        broken = await h.client.post(
            "/api/runs",
            content=b"{not json",
            headers={**ALICE, "Content-Type": "application/json"},
        )
        assert (broken.status_code, broken.json()["error"]) == (422, "invalid_request")
        missing = await h.client.post("/api/runs", json={"workflow": "ship"}, headers=ALICE)
        assert (missing.status_code, missing.json()["error"]) == (422, "invalid_inputs")
        unknown = await h.client.post("/api/runs", json={"workflow": "nope"}, headers=ALICE)
        assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_workflow")
        viewer = await h.client.post("/api/runs", json={"workflow": "quorum"}, headers=CAROL)
        assert viewer.status_code == 403
        assert await store.list_runs() == []


async def test_approving_a_gate_with_options_without_a_choice_is_a_422_listing_them(
    store: Store,
) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-10"})
        answer = await h.client.post(
            f"/api/runs/{run_id}/gates/human_approval/approve", json={}, headers=ALICE
        )
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["error"] == "selection_required"
        assert "needs a choice; choose one or more of ['ship', 'hold']" in body["message"]
        assert body["detail"] == {
            "invalid": [],
            "allowed": ["ship", "hold"],
            "select": "many",
            "earlier": [],
        }
        [gate] = (await h.client.get("/api/gates", params={"run_id": run_id}, headers=ALICE)).json()
        assert (gate["select"], gate["allow_none"], gate["approvals"]) == ("many", False, 0)


async def test_cookie_authenticated_writes_from_another_site_are_refused(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-6"})
        before = await store_state(store, run_id)
        answer = await h.client.post(
            f"/api/runs/{run_id}/gates/human_approval/approve",
            headers={"Cookie": "runkon_token=t-alice", "Origin": "https://evil.example"},
        )
        assert (answer.status_code, answer.json()["error"]) == (403, "cross_site")
        assert await store_state(store, run_id) == before
        same_site = await h.client.post(
            f"/api/runs/{run_id}/gates/human_approval/approve",
            json={"selections": ["ship"]},
            headers={"Cookie": "runkon_token=t-alice", "Origin": "http://testserver"},
        )
        assert same_site.json()["outcome"] == "accepted"


async def test_the_router_in_an_app_of_your_own(store: Store) -> None:
    """Included anywhere, the router answers its own errors as ErrorOut JSON; the engine
    runs in the app's lifespan around the app's own."""
    entered: list[str] = []

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[None]:
        entered.append("own")
        yield

    engine = FlowEngine(store, fallback_action=Recorder(), manage_store=False)
    app = FastAPI(lifespan=runkon_lifespan(engine, own_lifespan))
    app.include_router(create_router(engine, AUTH, workflows=WORKFLOWS, prefix="/runkon"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            started = await client.post("/runkon/runs", json={"workflow": "quorum"}, headers=ALICE)
            assert started.status_code == 201
            assert started.json()["run_id"] in engine.active_runs()
            invalid = await client.post("/runkon/runs", json={"inputs": {}}, headers=ALICE)
            assert (invalid.status_code, invalid.json()["error"]) == (422, "invalid_request")
            anonymous = await client.get("/runkon/gates")
            assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthenticated")
    assert entered == ["own"]
    with pytest.raises(TypeError, match="Authorizer is required"):
        create_router(engine)


def gate_name_rule(who: Identity, permission: Permission, target: Target) -> bool:
    """Only alice may decide the gate named ``human_approval``."""
    if permission is Permission.DECIDE and target.gate_name == "human_approval":
        return who.name == "alice"
    return True


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_rule_on_the_gate_name_holds_when_the_gate_is_named_by_step_id(
    store: Store, decision: str
) -> None:
    authorizer = TokenAuthorizer(TOKENS, rule=gate_name_rule)
    async with serving(store, authorizer=authorizer) as h:
        run_id = await h.start("ship", {"ticket": "T-9"})
        [gate] = await h.waiting(run_id)
        before = await store_state(store, run_id)
        for ref in ("human_approval", gate.step_id):
            answer = await h.client.post(
                f"/api/runs/{run_id}/gates/{ref}/{decision}", json={}, headers=BOB
            )
            assert answer.status_code == 403, (ref, answer.text)
        assert await store_state(store, run_id) == before
        body = {"selections": ["ship"]} if decision == "approve" else {}
        answer = await h.client.post(
            f"/api/runs/{run_id}/gates/{gate.step_id}/{decision}", json=body, headers=ALICE
        )
        assert answer.status_code == 200, answer.text


async def test_an_unknown_workflow_answer_shows_no_server_path(
    store: Store, tmp_path: Path
) -> None:
    async with serving(store, workflows=tmp_path) as h:
        unknown = await h.client.post("/api/runs", json={"workflow": "nope"}, headers=ALICE)
        assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_workflow")
        assert str(tmp_path) not in unknown.text
        assert "nope" in unknown.json()["message"]


async def test_no_catalog_tells_library_users_about_workflows_argument(store: Store) -> None:
    async with serving(store, workflows=None) as h:
        answer = await h.client.post("/api/runs", json={"workflow": "ship"}, headers=ALICE)
        assert (answer.status_code, answer.json()["error"]) == (404, "no_catalog")
        assert "workflows=" in answer.json()["message"]
        assert "--workflows" not in answer.json()["message"]


async def test_no_catalog_tells_serve_users_about_the_workflows_flag(store: Store) -> None:
    from runkon.integrations._server import build_app

    engine = FlowEngine(store, manage_store=False)
    app = build_app(engine, "t-op", None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.post(
                "/api/runs", json={"workflow": "ship"}, headers={"Authorization": "Bearer t-op"}
            )
    assert (answer.status_code, answer.json()["error"]) == (404, "no_catalog")
    assert "--workflows DIR" in answer.json()["message"]
    assert "workflows=" not in answer.json()["message"]


@pytest.mark.parametrize("docs", [False, True])
async def test_serve_shows_the_api_docs_only_when_asked(store: Store, docs: bool) -> None:
    from runkon.integrations._server import build_app

    app = build_app(FlowEngine(store, manage_store=False), "t-op", None, docs=docs)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path in ("/docs", "/openapi.json"):
            answer = await client.get(path)
            assert answer.status_code == (200 if docs else 404), path


async def test_the_docs_pages_need_no_internet(store: Store) -> None:
    async with serving(store) as h:
        for page, script in (
            ("/docs", "/docs/static/swagger-ui-bundle.js"),
            ("/redoc", "/docs/static/redoc.standalone.js"),
        ):
            html = await h.client.get(page)
            assert html.status_code == 200
            assert script in html.text
            assert "cdn.jsdelivr.net" not in html.text
            asset = await h.client.get(script)
            assert asset.status_code == 200
            assert asset.headers["content-type"].startswith("text/javascript")
            assert len(asset.content) > 100_000
        css = await h.client.get("/docs/static/swagger-ui.css")
        assert (css.status_code, css.headers["content-type"][:8]) == (200, "text/css")
        assert (await h.client.get("/docs/static/nope.js")).status_code == 404


async def test_a_run_no_engine_drives_is_stalled(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        orphan = await store.create_run(NewRun(workflow_name="ship"))  # nobody holds it

        listed = await h.client.get("/api/runs", headers=ALICE)
        assert {r["id"]: r["stalled"] for r in listed.json()} == {run_id: False, orphan.id: True}
        detail = (await h.client.get(f"/api/runs/{orphan.id}", headers=ALICE)).json()
        assert (detail["status"], detail["stalled"]) == ("pending", True)
