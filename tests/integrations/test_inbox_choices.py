"""The inbox and gate options (issue 10.1): radio buttons for ``select = one``, checkboxes
otherwise; "Send feedback" only on gates that ask for an answer (``human_review``); an
approval without a choice is refused with the options named, nothing changes."""

from __future__ import annotations

import re

import httpx

import runkon
from runkon import Store

from ._support import WORKFLOWS, Harness, csrf_of, serving, store_state

ALICE_COOKIE = {"Cookie": "runkon_token=t-alice"}
SAME_SITE = {**ALICE_COOKIE, "Origin": "http://testserver"}
FORM = "application/x-www-form-urlencoded"

RELEASE = runkon.parse_workflow(
    """
    workflow release {
      gate approve-release {
        type = human_approval  prompt = "Ship it?"  options = ["ship", "hold"]
        select = one  timeout = "1h"
      }
      if approve-release.ship { call deploy }
    }
    """
)
CATALOG = {**WORKFLOWS, "release": RELEASE}


async def post_form(h: Harness, fields: list[tuple[str, str]]) -> httpx.Response:
    body = str(httpx.QueryParams(fields)).encode()
    return await h.client.post(
        "/inbox/decide", content=body, headers={**SAME_SITE, "Content-Type": FORM}
    )


def card(html: str, run_id: str) -> str:
    found = re.search(rf'<article class="gate"[^>]*data-run="{run_id}">.*?</article>', html)
    assert found is not None, html
    return found.group(0)


async def test_radio_buttons_for_select_one_checkboxes_for_many(store: Store) -> None:
    async with serving(store, workflows=CATALOG) as h:
        one = await h.start("release")
        many = await h.start("ship", {"ticket": "T-1"})
        review = await h.start("review")
        html = (await h.client.get("/inbox", headers=ALICE_COOKIE)).text

    radios = card(html, one)
    assert radios.count('type="radio" name="selections"') == 2
    assert 'type="checkbox"' not in radios
    assert "<legend>Choose one</legend>" in radios
    boxes = card(html, many)
    assert boxes.count('type="checkbox" name="selections"') == 2
    assert 'type="radio"' not in boxes
    assert "<legend>Choose one or more</legend>" in boxes
    # feedback is an answer only where the gate asks for one
    for approval in (radios, boxes):
        assert 'value="feedback"' not in approval
        assert 'value="approve"' in approval
        assert 'value="reject"' in approval
        assert 'name="feedback"' in approval  # text may accompany approve/reject
    assert 'value="feedback">Send feedback</button>' in card(html, review)


async def test_approving_without_a_choice_shows_the_refusal_and_changes_nothing(
    store: Store,
) -> None:
    async with serving(store, workflows=CATALOG) as h:
        run_id = await h.start("release")
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        step = (await h.waiting(run_id))[0].step_id
        form = [("csrf", csrf), ("run_id", run_id), ("gate", step)]
        form.append(("gate_name", "approve-release"))
        before = await store_state(store, run_id)
        for action in ("approve", "feedback"):  # "Send feedback" from an old page, too
            refused = await post_form(h, [*form, ("action", action), ("feedback", "fine")])
            assert refused.status_code == 422
            assert 'class="notice error"' in refused.text
            assert (
                "Gate approve-release needs a choice: tick one of: ship, hold before "
                "approving; nothing changed."
            ) in refused.text
        two = await post_form(
            h, [*form, ("action", "approve"), ("selections", "ship"), ("selections", "hold")]
        )
        assert two.status_code == 422
        assert "takes exactly one option (one of: ship, hold)" in two.text
        assert await store_state(store, run_id) == before

        answer = await post_form(
            h, [*form, ("action", "approve"), ("selections", "hold"), ("feedback", "not yet")]
        )
        assert answer.status_code == 200, answer.text
        assert await h.finished(run_id) == "completed"
        assert h.rec.names == []  # hold: deploy is skipped, by choice
        gate = await store.get_gate(step)
        assert (gate.selections, gate.feedback) == (("hold",), "not yet")


QUORUM = runkon.parse_workflow(
    """
    workflow pair {
      gate approve-release {
        type = human_approval  options = ["ship", "hold"]  select = one  min_approvals = 2
        timeout = "1h"
      }
      if approve-release.ship { call deploy }
    }
    """
)


async def test_the_approvals_of_a_select_one_quorum_must_agree(store: Store) -> None:
    async with serving(store, workflows={**CATALOG, "pair": QUORUM}) as h:
        run_id = await h.start("pair")
        step = (await h.waiting(run_id))[0].step_id
        form = [("run_id", run_id), ("gate", step), ("gate_name", "approve-release")]
        csrf = csrf_of((await h.client.get("/inbox", headers=ALICE_COOKIE)).text)
        first = await post_form(
            h, [("csrf", csrf), *form, ("action", "approve"), ("selections", "ship")]
        )
        assert "1/2 approvals so far" in first.text

        bob = {"Cookie": "runkon_token=t-bob", "Origin": "http://testserver"}
        bob_csrf = csrf_of((await h.client.get("/inbox", headers=bob)).text)
        fields = [("csrf", bob_csrf), *form, ("action", "approve"), ("selections", "hold")]
        body = str(httpx.QueryParams(fields)).encode()
        refused = await h.client.post(
            "/inbox/decide", content=body, headers={**bob, "Content-Type": FORM}
        )
        assert refused.status_code == 422
        assert (
            "Invalid selection: gate approve-release takes exactly one option and earlier "
            "approvals chose ship; tick ship too, or reject it; nothing changed."
        ) in refused.text
        assert (await store.get_gate(step)).approvals[0].approver == "alice"
        assert len((await store.get_gate(step)).approvals) == 1
