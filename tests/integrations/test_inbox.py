"""The web inbox through the app: sign-in, the page, decisions with CSRF protection,
HTML escaping, and the live feed."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import httpx
import pytest

from runkon import FlowEngine, SqliteStore, Store
from runkon.integrations import RunkonApi
from runkon.integrations._inbox import InboxFeed, cookie_safe, session_cookie
from runkon.persistence import NewRun

from ._support import (
    AUTH,
    WORKFLOWS,
    Harness,
    Recorder,
    csrf_of,
    gate_past_its_deadline,
    serving,
    store_state,
)

ALICE_COOKIE = {"Cookie": "runkon_token=t-alice"}
SAME_SITE = {**ALICE_COOKIE, "Origin": "http://testserver"}
FORM = "application/x-www-form-urlencoded"


async def post_form(
    h: Harness, path: str, fields: list[tuple[str, str]], headers: dict[str, str]
) -> httpx.Response:
    body = str(httpx.QueryParams(fields)).encode()
    return await h.client.post(path, content=body, headers={**headers, "Content-Type": FORM})


async def test_sign_in_sets_a_strict_http_only_cookie(store: Store) -> None:
    async with serving(store) as h:
        anonymous = await h.client.get("/inbox")
        assert anonymous.status_code == 401
        assert 'action="/inbox/sign-in"' in anonymous.text

        wrong = await post_form(h, "/inbox/sign-in", [("token", "nope")], {})
        assert wrong.status_code == 401
        assert "Unknown token" in wrong.text
        assert "set-cookie" not in wrong.headers

        signed = await post_form(h, "/inbox/sign-in", [("token", "t-alice")], {})
        assert (signed.status_code, signed.headers["location"]) == (303, "/inbox")
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("runkon_token=t-alice;")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie

        # the printed link never signs in by GET (login CSRF): it fills a form to post
        link = await h.client.get("/inbox/sign-in?token=t-alice")
        assert link.status_code == 200
        assert "set-cookie" not in link.headers
        assert '<input type="hidden" name="token" value="t-alice">' in link.text
        assert 'method="post" action="/inbox/sign-in"' in link.text

        page = await h.client.get("/inbox", headers=ALICE_COOKIE)
        assert page.status_code == 200
        assert "signed in as <strong>alice</strong>" in page.text
        assert "No gate is waiting." in page.text

        odd = await post_form(h, "/inbox/sign-in", [("token", "t odd;")], {})
        assert odd.status_code == 401  # unknown, and never put into a cookie
        assert "set-cookie" not in odd.headers

        cross = await post_form(
            h, "/inbox/sign-in", [("token", "t-alice")], {"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403


async def test_the_page_lists_waiting_gates_with_everything_to_decide(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        quorum_id = await h.start("quorum")
        page = await h.client.get("/inbox", headers=ALICE_COOKIE)
        html = page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "Waiting gates (2)" in html
        assert "Ship T-1?" in html
        assert "Two of you, please" in html
        assert f'data-run="{run_id}"' in html
        assert f'data-run="{quorum_id}"' in html
        assert 'name="selections" value="ship"' in html
        assert 'name="selections" value="hold"' in html
        assert "0/1" in html
        assert "0/2" in html
        assert re.search(r'data-deadline="[^"]+">in 59m \d+s<', html)
        assert "<dd>ship</dd>" in html  # the workflow
        csp = page.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", csp)
        assert nonce is not None
        assert html.count("<script") == 1
        assert f'<script nonce="{nonce.group(1)}">' in html

        fragment = await h.client.get("/inbox/fragment", headers=ALICE_COOKIE)
        assert fragment.status_code == 200
        assert "Ship T-1?" in fragment.text
        assert "<html" not in fragment.text
        assert (await h.client.get("/inbox/fragment")).status_code == 401


async def test_approving_from_the_inbox_shows_the_receipt(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        step = (await h.waiting(run_id))[0].step_id
        decision = [("csrf", csrf), ("run_id", run_id), ("gate", step)]

        invalid = await post_form(
            h,
            "/inbox/decide",
            [*decision, ("action", "approve"), ("selections", "yolo")],
            SAME_SITE,
        )
        assert invalid.status_code == 422
        assert "Invalid selection" in invalid.text
        assert "ship, hold" in invalid.text

        answer = await post_form(
            h,
            "/inbox/decide",
            [
                *decision,
                ("gate_name", "human_approval"),
                ("action", "approve"),
                ("selections", "ship"),
                ("feedback", ""),
            ],
            SAME_SITE,
        )
        assert answer.status_code == 200
        assert 'class="notice ok"' in answer.text
        assert f"Approved gate human_approval of run {run_id}: accepted." in answer.text
        assert await h.finished(run_id) == "completed"
        assert h.rec.names == ["deploy"]

        again = await post_form(h, "/inbox/decide", [*decision, ("action", "reject")], SAME_SITE)
        assert again.status_code == 409
        assert "was already approved by alice; nothing changed." in again.text


async def test_a_decision_after_the_deadline_shows_that_the_gate_timed_out(
    store: Store,
) -> None:
    async with serving(store) as h:
        run, gate = await gate_past_its_deadline(store)
        before = await store_state(store, run)
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        fields = [("csrf", csrf), ("run_id", run), ("gate", gate), ("gate_name", "review")]
        for action in ("approve", "reject"):
            refused = await post_form(h, "/inbox/decide", [*fields, ("action", action)], SAME_SITE)
            assert refused.status_code == 409
            assert "Gate review timed out: its deadline passed at " in refused.text
            assert "nothing changed." in refused.text
        assert await store_state(store, run) == before


async def test_a_second_approval_by_the_same_person_says_it_was_already_recorded(
    store: Store,
) -> None:
    async with serving(store) as h:
        run_id = await h.start("quorum")
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        step = (await h.waiting(run_id))[0].step_id
        form = [("csrf", csrf), ("run_id", run_id), ("gate", step), ("action", "approve")]
        first = await post_form(h, "/inbox/decide", form, SAME_SITE)
        assert "Approval recorded for gate" in first.text
        again = await post_form(h, "/inbox/decide", form, SAME_SITE)
        assert again.status_code == 200
        assert f"Your approval of gate {step} of run {run_id} was already recorded" in again.text
        assert "nothing changed: 1/2 approvals so far." in again.text


async def test_quorum_feedback_and_reject_from_the_inbox(store: Store) -> None:
    async with serving(store) as h:
        quorum_id = await h.start("quorum")
        review_id = await h.start("review")
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)

        step = (await h.waiting(quorum_id))[0].step_id
        form = [("csrf", csrf), ("run_id", quorum_id), ("gate", step), ("action", "approve")]
        recorded = await post_form(h, "/inbox/decide", form, SAME_SITE)
        assert "1/2 approvals so far" in recorded.text

        step = (await h.waiting(review_id))[0].step_id
        form = [("csrf", csrf), ("run_id", review_id), ("gate", step)]
        empty = await post_form(
            h, "/inbox/decide", [*form, ("action", "feedback"), ("feedback", " ")], SAME_SITE
        )
        assert empty.status_code == 422
        assert "Write some feedback" in empty.text
        sent = await post_form(
            h, "/inbox/decide", [*form, ("action", "feedback"), ("feedback", "tl;dr")], SAME_SITE
        )
        assert "Feedback sent to gate" in sent.text
        assert await h.finished(review_id) == "completed"
        assert h.rec.calls == [("publish", "tl;dr", ())]

        carol = {"Cookie": "runkon_token=t-carol", "Origin": "http://testserver"}
        carol_csrf = csrf_of((await h.client.get("/inbox", headers=carol)).text)
        step = (await h.waiting(quorum_id))[0].step_id
        refused = await post_form(
            h,
            "/inbox/decide",
            [("csrf", carol_csrf), ("run_id", quorum_id), ("gate", step), ("action", "reject")],
            carol,
        )
        assert refused.status_code == 403
        assert "&#x27;carol&#x27; may not decide here" in refused.text

        # boxes ticked before choosing Reject do not get in the way
        form = [("csrf", csrf), ("run_id", quorum_id), ("gate", step), ("action", "reject")]
        rejected = await post_form(h, "/inbox/decide", [*form, ("selections", "x")], SAME_SITE)
        assert rejected.status_code == 200
        assert f"Rejected gate {step} of run {quorum_id}: accepted." in rejected.text
        assert await h.finished(quorum_id) == "failed"


async def test_forms_without_a_valid_csrf_token_or_from_another_site_change_nothing(
    store: Store,
) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        bob_csrf = csrf_of(
            (await h.client.get("/inbox", headers={"Cookie": "runkon_token=t-bob"})).text
        )
        step = (await h.waiting(run_id))[0].step_id
        decision = [("run_id", run_id), ("gate", step), ("action", "approve")]
        before = await store_state(store, run_id)

        attempts = [
            (decision, SAME_SITE),  # no token
            ([("csrf", "0" * 64), *decision], SAME_SITE),  # a made-up token
            ([("csrf", bob_csrf), *decision], SAME_SITE),  # another session's token
            ([("csrf", csrf), *decision], {**ALICE_COOKIE, "Origin": "https://evil.example"}),
            ([("csrf", csrf), *decision], {**ALICE_COOKIE, "Referer": "https://evil.example/x"}),
        ]
        for fields, headers in attempts:
            answer = await post_form(h, "/inbox/decide", fields, headers)
            assert answer.status_code == 403, fields
            assert "nothing changed" in answer.text
        assert await store_state(store, run_id) == before

        unauthenticated = await post_form(h, "/inbox/decide", [("csrf", csrf), *decision], {})
        assert unauthenticated.status_code == 401
        assert await store_state(store, run_id) == before


async def test_prompts_and_inputs_are_html_escaped(store: Store) -> None:
    async with serving(store) as h:
        evil = '<script>alert("x")</script>'
        run_id = await h.start("ship", {"ticket": evil})
        page = (await h.client.get("/inbox", headers=ALICE_COOKIE)).text
        assert evil not in page
        assert "Ship &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;?" in page
        assert page.count("<script") == 1  # only the page's own, nonce-tagged script
        step = (await h.waiting(run_id))[0].step_id
        csrf = csrf_of(page)
        answer = await post_form(
            h,
            "/inbox/decide",
            [("csrf", csrf), ("run_id", run_id), ("gate", step), ("action", "approve"),
             ("selections", '"><img src=x onerror=alert(1)>')],
            SAME_SITE,
        )  # fmt: skip
        assert answer.status_code == 422
        assert "<img" not in answer.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in answer.text


async def test_sign_out_clears_the_cookie(store: Store) -> None:
    async with serving(store) as h:
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        refused = await post_form(h, "/inbox/sign-out", [], SAME_SITE)
        assert refused.status_code == 403
        out = await post_form(h, "/inbox/sign-out", [("csrf", csrf)], SAME_SITE)
        assert out.status_code == 303
        assert out.headers["set-cookie"].startswith("runkon_token=;")
        assert "Max-Age=0" in out.headers["set-cookie"]


async def next_frame(frames: AsyncGenerator[str, None]) -> str:
    with anyio.fail_after(5):
        return await anext(frames)


async def test_the_live_feed_announces_changes_of_this_and_other_processes(
    tmp_path: Path,
) -> None:
    """Gates opened here arrive through the event bus; gates opened by another engine on
    the same database (whose events this bus never sees) through the periodic check."""
    path = tmp_path / "shared.db"
    here = FlowEngine(SqliteStore(path), fallback_action=Recorder())
    elsewhere = FlowEngine(SqliteStore(path), fallback_action=Recorder())
    async with here, elsewhere:
        feed = InboxFeed(RunkonApi(here, AUTH), interval=0.2)
        start_version = await feed.version()
        frames = feed.stream(start_version, keepalive=60)
        try:
            assert await next_frame(frames) == "retry: 2000\n\n"
            await here.start(WORKFLOWS["quorum"])
            changed = await next_frame(frames)
            assert "event: changed" in changed
            assert changed.startswith(f"id: {await feed.version()}\n")

            await elsewhere.start(WORKFLOWS["ship"], inputs={"ticket": "T-7"})
            assert "event: changed" in await next_frame(frames)
            assert [g.workflow_name for g in await here.waiting_gates()] == ["quorum", "ship"]
        finally:
            await frames.aclose()

    # a page rendered from an older version is told at once that it is stale
    async with FlowEngine(SqliteStore(path)) as again:
        frames = InboxFeed(RunkonApi(again, AUTH), interval=0.2).stream(start_version)
        try:
            await next_frame(frames)
            assert "event: changed" in await next_frame(frames)
        finally:
            await frames.aclose()


def test_only_cookie_safe_tokens_become_cookies() -> None:
    assert cookie_safe("AFAEBrv7-dtke_oMkuG~jd+TfB/Z1q=")
    for odd in ("t odd", "a;b", "a\r\nSet-Cookie: x=y", 'a"b', ""):
        assert not cookie_safe(odd)
        with pytest.raises(ValueError, match="cannot be kept in a cookie"):
            session_cookie(odd, secure=False)


async def test_recent_runs_show_a_run_no_engine_drives_as_stalled(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        orphan = await store.create_run(NewRun(workflow_name="ship"))  # nobody holds it
        page = (await h.client.get("/inbox", headers=ALICE_COOKIE)).text
    cells = (
        '"><td><a class="run-link" href="/inbox/runs/{0}"><code>{0}</code></a></td>'
        '<td>ship</td><td class="status">{1}</td>'
    )
    assert cells.format(orphan.id, "stalled") in page
    assert cells.format(run_id, "waiting") in page
