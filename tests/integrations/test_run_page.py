"""The inbox's run page through the app: the timeline (status, duration, markers, output
excerpts, gate decisions), links to it, sign-in, unknown runs, escaping of hostile step
output, and the live feed that keeps it up to date."""

from __future__ import annotations

import re
from contextlib import aclosing

import anyio
import httpx

import runkon
from runkon import ActionOutput, ActionParams, StepContext, Store
from runkon.integrations import Identity, Permission, RunkonApi, Target, TokenAuthorizer
from runkon.integrations._run_page import EXCERPT_LINES, excerpt, render_logs, run_changes, tail
from runkon.persistence import CapturedOutput, NewRun

from ._support import ALICE, AUTH, TOKENS, WORKFLOWS, Harness, serving, sse_frames

ALICE_COOKIE = {"Cookie": "runkon_token=t-alice"}
SCRIPT = '<script>alert("x")</script>'
IMG = '"><img src=x onerror=alert(1)>'
LEAKY = runkon.parse_workflow(
    """
    workflow leaky {
      inputs { ticket required }
      call inspect
      gate human_review { prompt = "Review {{ticket}}"  timeout = "1h" }
      call publish
    }
    """
)
CATALOG = {**WORKFLOWS, "leaky": LEAKY}


async def hostile(ctx: StepContext, params: ActionParams) -> ActionOutput:
    """An executor whose every output field carries markup (as agents' output may)."""
    if params.name == "inspect":
        return ActionOutput(
            markers=["has_issues", "<b>bold</b>"],
            context=SCRIPT,
            result_text=IMG,
            structured_output={"note": "<i>x</i>"},
        )
    return ActionOutput(context="".join(f"line {n}\n" for n in range(1, 101)))


def step_item(page: str, name: str) -> str:
    """The timeline entry of step ``name``."""
    found = re.search(
        rf'<li class="step [^"]*"[^>]*data-name="{name}".*?</li>(?=<li class="step|</ol>)',
        page,
        re.S,
    )
    assert found is not None, page
    return found.group(0)


async def test_the_run_page_shows_the_timeline_live_state_and_gate_decision(
    store: Store,
) -> None:
    async with serving(store, action=hostile, workflows=CATALOG) as h:
        run_id = await h.start("leaky", {"ticket": "T-1"})
        answer = await h.client.get(f"/inbox/runs/{run_id}", headers=ALICE_COOKIE)
        assert answer.status_code == 200
        page = answer.text
        assert "signed in as <strong>alice</strong>" in page
        assert f'<section id="run" data-run="{run_id}" data-status="waiting">' in page
        assert 'data-live="true"' in page  # the page follows the run
        assert "<dt>Inputs</dt><dd><code>ticket</code> = <code>T-1</code></dd>" in page

        inspect = step_item(page, "inspect")
        assert 'data-status="completed"' in inspect
        assert '<span class="kind">call</span>' in inspect
        assert "<li>has_issues</li>" in inspect
        assert re.search(r"took \d+ ms|took \d+\.\d s", inspect)
        assert "context:<pre>" in inspect

        gate = step_item(page, "human_review")
        assert 'data-status="waiting"' in gate
        assert '<span class="kind">gate: human_review</span>' in gate
        assert '<p class="prompt">Review T-1</p>' in gate
        assert "Waiting for a decision: 0/1 approvals, deadline <time" in gate
        assert "so far" in gate  # a waiting step's duration is still growing
        assert "publish" not in page  # not started yet

        # the page is reachable from the gate card and from the recent runs
        inbox = (await h.client.get("/inbox", headers=ALICE_COOKIE)).text
        link = f'<a class="run-link" href="/inbox/runs/{run_id}"><code>{run_id}</code></a>'
        card = re.search(rf'<article class="gate"[^>]*data-run="{run_id}">.*?</article>', inbox)
        assert card is not None
        assert link in card.group(0)
        assert f'<tr data-run="{run_id}" data-status="waiting"><td>{link}</td>' in inbox

        approved = await h.client.post(
            f"/api/runs/{run_id}/gates/human_review/feedback",
            json={"feedback": "looks fine,\nship it"},
            headers=ALICE,
        )
        assert approved.status_code == 200, approved.text
        assert await h.finished(run_id) == "completed"

        page = (await h.client.get(f"/inbox/runs/{run_id}", headers=ALICE_COOKIE)).text
        assert f'data-run="{run_id}" data-status="completed"' in page
        assert 'data-live="false"' in page  # nothing to follow any more
        assert '<dt>Result</dt><dd><span class="summary">Workflow &#x27;leaky&#x27;' in page
        gate = step_item(page, "human_review")
        assert 'data-status="completed"' in gate
        assert '<dt>Decision</dt><dd><span class="decision">approved</span></dd>' in gate
        assert "<dt>By</dt><dd>alice</dd><dt>At</dt><dd><time" in gate
        assert '<span class="feedback">looks fine,\nship it</span>' in gate
        assert "Waiting for a decision" not in gate

        publish = step_item(page, "publish")
        assert 'data-status="completed"' in publish
        shown, left_out = excerpt("".join(f"line {n}\n" for n in range(1, 101)))
        assert f"<pre>{shown}</pre>" in publish
        assert shown == "\n".join(f"line {n}" for n in range(1, EXCERPT_LINES + 1))
        assert f"\u2026 {left_out} more characters" in publish

        # the live part alone, as the page's script fetches it
        fragment = await h.client.get(f"/inbox/runs/{run_id}/fragment", headers=ALICE_COOKIE)
        assert fragment.status_code == 200
        assert fragment.text.startswith(f'<section id="run" data-run="{run_id}"')
        assert "<html" not in fragment.text


async def test_hostile_step_output_inputs_and_feedback_render_as_text(store: Store) -> None:
    async with serving(store, action=hostile, workflows=CATALOG) as h:
        run_id = await h.start("leaky", {"ticket": IMG})
        sent = await h.client.post(
            f"/api/runs/{run_id}/gates/human_review/feedback",
            json={"feedback": SCRIPT + IMG},
            headers=ALICE,
        )
        assert sent.status_code == 200, sent.text
        assert await h.finished(run_id) == "completed"
        answer = await h.client.get(f"/inbox/runs/{run_id}", headers=ALICE_COOKIE)

    page = answer.text
    nonce = re.search(r"'nonce-([^']+)'", answer.headers["content-security-policy"])
    assert nonce is not None
    assert page.count("<script") == 1  # only the page's own, nonce-tagged script
    assert f'<script nonce="{nonce.group(1)}">' in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "<i>" not in page
    escaped_img = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    escaped_script = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert f"<code>ticket</code> = <code>{escaped_img}</code>" in page  # input
    assert f'<p class="prompt">Review {escaped_img}</p>' in page  # prompt
    inspect = step_item(page, "inspect")
    assert "<li>&lt;b&gt;bold&lt;/b&gt;</li>" in inspect  # marker
    assert f"context:<pre>{escaped_script}</pre>" in inspect
    assert f"result:<pre>{escaped_img}</pre>" in inspect
    assert "output:<pre>{&quot;note&quot;: &quot;&lt;i&gt;x&lt;/i&gt;&quot;}</pre>" in inspect
    assert f'<span class="feedback">{escaped_script}{escaped_img}</span>' in page


async def test_the_run_page_needs_sign_in_a_known_run_and_read_permission(store: Store) -> None:
    def no_bob(who: Identity, permission: Permission, target: Target) -> bool:
        return who.name != "bob"

    async with serving(store, authorizer=TokenAuthorizer(TOKENS, rule=no_bob)) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        for path in ("", "/fragment", "/stream"):
            anonymous = await h.client.get(f"/inbox/runs/{run_id}{path}")
            assert anonymous.status_code == 401, path
            assert "Ship T-1?" not in anonymous.text
        assert 'action="/inbox/sign-in"' in (await h.client.get(f"/inbox/runs/{run_id}")).text
        wrong = {"Cookie": "runkon_token=nope"}
        assert (await h.client.get(f"/inbox/runs/{run_id}", headers=wrong)).status_code == 401

        unknown = await h.client.get("/inbox/runs/01NOSUCHRUN", headers=ALICE_COOKIE)
        assert unknown.status_code == 404
        assert "Unknown run &#x27;01NOSUCHRUN&#x27;" in unknown.text
        assert 'href="/inbox">Back to the inbox</a>' in unknown.text
        for path in ("/fragment", "/stream"):
            answer = await h.client.get(f"/inbox/runs/01NOSUCHRUN{path}", headers=ALICE_COOKIE)
            assert (answer.status_code, answer.json()["error"]) == (404, "unknown_run")

        bob = {"Cookie": "runkon_token=t-bob"}
        refused = await h.client.get(f"/inbox/runs/{run_id}", headers=bob)
        assert refused.status_code == 403
        assert "may not read here" in refused.text
        assert "<title>Refused — runkon inbox</title>" in refused.text
        assert "Ship T-1?" not in refused.text
        assert (await h.client.get(f"/inbox/runs/{run_id}/fragment", headers=bob)).status_code == (
            403
        )


async def sign_in(h: Harness, token: str, then: str) -> httpx.Response:
    body = str(httpx.QueryParams([("token", token), ("then", then)])).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return await h.client.post("/inbox/sign-in", content=body, headers=headers)


async def test_signing_in_from_a_run_page_leads_back_to_it_and_nowhere_else(
    store: Store,
) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        page = f"/inbox/runs/{run_id}"
        anonymous = await h.client.get(page)
        assert f'<input type="hidden" name="then" value="{page}">' in anonymous.text

        wrong = await sign_in(h, "nope", page)
        assert wrong.status_code == 401
        assert f'<input type="hidden" name="then" value="{page}">' in wrong.text

        signed = await sign_in(h, "t-alice", page)
        assert (signed.status_code, signed.headers["location"]) == (303, page)
        assert signed.headers["set-cookie"].startswith("runkon_token=t-alice;")

        for elsewhere in (
            "https://evil.example/inbox/runs/x",
            "//evil.example/inbox/runs/x",
            "/inbox/runs/..",
            "/inbox/runs/x/../../../api/runs",
            "/inbox\\runs\\x",
            "/other/runs/x",
            "",
        ):
            signed = await sign_in(h, "t-alice", elsewhere)
            assert (signed.status_code, signed.headers["location"]) == (303, "/inbox"), elsewhere


async def test_quorum_approvals_rejections_and_stalled_runs_on_the_run_page(
    store: Store,
) -> None:
    async with serving(store) as h:
        quorum_id = await h.start("quorum")
        await h.engine.approve_gate(quorum_id, "human_approval", by="alice", feedback="ok <3")
        page = (await h.client.get(f"/inbox/runs/{quorum_id}", headers=ALICE_COOKIE)).text
        gate = step_item(page, "human_approval")
        assert "Waiting for a decision: 1/2 approvals" in gate
        assert re.search(r'<ul class="approvals"><li><strong>alice</strong> at <time[^>]*>', gate)
        assert ": ok &lt;3</li></ul>" in gate

        ship_id = await h.start("ship", {"ticket": "T-2"})
        await h.engine.reject_gate(ship_id, "human_approval", by="bob", feedback="not today")
        assert await h.finished(ship_id) == "failed"
        page = (await h.client.get(f"/inbox/runs/{ship_id}", headers=ALICE_COOKIE)).text
        gate = step_item(page, "human_approval")
        assert 'data-status="failed"' in gate
        assert '<dd><span class="decision">rejected</span></dd><dt>By</dt><dd>bob</dd>' in gate
        assert '<span class="feedback">not today</span>' in gate
        assert '<dt>Error</dt><dd><span class="error">' in page  # the run's error

        cancelled_id = await h.start("ship", {"ticket": "T-3"})
        await h.engine.cancel_run(cancelled_id, reason="wrong ticket", by="carol")
        assert await h.finished(cancelled_id) == "cancelled"
        page = (await h.client.get(f"/inbox/runs/{cancelled_id}", headers=ALICE_COOKIE)).text
        assert "<dt>Cancel</dt><dd>requested by carol: wrong ticket</dd>" in page
        gate = step_item(page, "human_approval")
        assert '<span class="decision">cancelled</span>' in gate  # nobody rejected it
        assert "rejected" not in gate

        orphan = await store.create_run(NewRun(workflow_name="ship"))  # no engine drives it
        page = (await h.client.get(f"/inbox/runs/{orphan.id}", headers=ALICE_COOKIE)).text
        assert '<span class="badge s-stalled">stalled</span>' in page
        assert 'data-live="true"' in page  # a resume elsewhere would show up
        assert "No step has started yet." in page


NOISY = runkon.parse_workflow(
    """
    workflow noisy {
      inputs { ticket required }
      script build {
        run = "echo building {{ticket}}; seq -f 'out %g' 30; echo '<b>w</b>' >&2"
      }
    }
    """
)


async def test_the_run_page_folds_a_steps_inputs_and_the_end_of_its_captured_output(
    store: Store,
) -> None:
    async with serving(store, workflows={"noisy": NOISY}) as h:
        started = await h.client.post(
            "/api/runs", json={"workflow": "noisy", "inputs": {"ticket": SCRIPT}}, headers=ALICE
        )
        run_id = started.json()["run_id"]
        assert await h.finished(run_id) == "completed"
        page = (await h.client.get(f"/inbox/runs/{run_id}", headers=ALICE_COOKIE)).text
    build = step_item(page, "build")
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    inputs = re.search(r'<details data-key="[^"]+:inputs"><summary>inputs \((\d+)\)', build)
    assert inputs is not None
    assert f"<dt>ticket</dt><dd><code>{escaped}</code></dd>" in build
    logs = re.search(
        r'<details data-key="[^"]+:logs"><summary>captured output</summary>.*', build, re.S
    )
    assert logs is not None
    stdout = "\n".join(f"out {n}" for n in range(31 - EXCERPT_LINES, 31))
    earlier = [f"building {SCRIPT}", *(f"out {n}" for n in range(1, 31 - EXCERPT_LINES))]
    hidden = sum(len(line) + 1 for line in earlier)
    assert (
        f'stdout:<div class="more">\u2026 {hidden} earlier characters not shown</div>'
        f"<pre>{stdout}</pre>"
    ) in logs.group(0)
    assert "stderr:<pre>&lt;b&gt;w&lt;/b&gt;</pre>" in logs.group(0)
    assert "<b>" not in page


def test_captured_output_says_how_much_was_not_kept() -> None:
    shown, left_out = tail("a\n" * 3)
    assert (shown, left_out) == ("a\na\na", 0)
    html = render_logs("s1", CapturedOutput(stdout="end\n", stdout_dropped_bytes=4096))
    assert 'stdout:<div class="more">\u2026 4096 earlier bytes not kept</div><pre>end</pre>' in html


async def test_the_stream_of_a_finished_run_says_changed_once_then_end(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        approved = await h.client.post(
            f"/api/runs/{run_id}/gates/human_approval/approve",
            json={"selections": ["ship"]},
            headers=ALICE,
        )
        assert approved.status_code == 200
        assert await h.finished(run_id) == "completed"
        last = (await store.read_events(run_id))[-1].seq
        with anyio.fail_after(10):
            answer = await h.client.get(f"/inbox/runs/{run_id}/stream", headers=ALICE_COOKIE)
        assert answer.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(answer.text)
        # every stored event at once: one "changed" naming the latest, then the end
        assert frames == [
            {"retry": "2000"},
            {"id": str(last), "event": "changed", "data": "{}"},
            {"event": "end", "data": "{}"},
        ]
        resumed = await h.client.get(
            f"/inbox/runs/{run_id}/stream", headers={**ALICE_COOKIE, "Last-Event-ID": str(last)}
        )
        assert sse_frames(resumed.text) == [{"retry": "2000"}, {"event": "end", "data": "{}"}]


async def test_run_changes_follows_a_running_run_until_it_ends(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-1"})
        api = RunkonApi(h.engine, AUTH)
        events = await api.open_events(ALICE, run_id, None)
        # one scope around the whole iteration: the generator holds a task group
        with anyio.fail_after(10):
            async with aclosing(run_changes(events, keepalive=60)) as frames:
                assert await anext(frames) == "retry: 2000\n\n"
                latest = (await store.read_events(run_id))[-1].seq
                assert await anext(frames) == f"id: {latest}\nevent: changed\ndata: {{}}\n\n"

                await h.engine.approve_gate(
                    run_id, "human_approval", by="alice", selections=["ship"]
                )
                seen = [await anext(frames)]
                while seen[-1] != "event: end\ndata: {}\n\n":
                    seen.append(await anext(frames))
        final = (await store.read_events(run_id))[-1].seq
        assert seen[-2] == f"id: {final}\nevent: changed\ndata: {{}}\n\n"
        ids = [int(frame.split("\n")[0][4:]) for frame in seen[:-1]]
        assert ids == sorted(set(ids))  # each frame names a later event
        assert all(latest < seq <= final for seq in ids)


async def test_run_changes_keeps_a_quiet_stream_alive_and_closes_between_frames(
    store: Store,
) -> None:
    async with serving(store) as h:
        quiet = await store.create_run(NewRun(workflow_name="ship"))  # no events, not driven
        events = await RunkonApi(h.engine, AUTH).open_events(ALICE, quiet.id, None)
        with anyio.fail_after(10):
            frames = run_changes(events, keepalive=0.01)
            assert await anext(frames) == "retry: 2000\n\n"
            assert await anext(frames) == ": keepalive\n\n"
            await frames.aclose()  # the page went away while the run waits: no error
