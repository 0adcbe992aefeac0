"""An example GateResolver: decides ``pr_approval`` gates by polling GitHub every 30 s.

The engine starts ``resolve`` when the gate opens and cancels it the moment the gate is
decided any other way (a person approving in the inbox, the deadline, the run's
cancellation) — so the resolver only has to loop and return a verdict::

    engine = runkon.FlowEngine(
        store,
        gate_resolvers=[PullRequestApprovals(token=os.environ["GITHUB_TOKEN"])],
        ...
    )

The workflow names the pull request through its inputs (``repo`` as ``owner/name`` and
``pr`` as the number); ``min_approvals`` and ``mode = review_decision`` are honoured.
Reviews are fetched by ``fetch_reviews`` — by default GitHub's REST API in a worker
thread; tests pass a fake.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread

import runkon

Review = dict[str, Any]  # {"user": {"login": ...}, "state": "APPROVED" | "CHANGES_REQUESTED" | ...}
FetchReviews = Callable[[str, int], Awaitable[Sequence[Review]]]


class PullRequestApprovals:
    """Approves a ``pr_approval`` gate once its PR has enough approving reviews; with
    ``mode = review_decision`` a "changes requested" review rejects it."""

    gate_type = "pr_approval"

    def __init__(
        self,
        *,
        token: str | None = None,
        interval: float = 30.0,
        fetch_reviews: FetchReviews | None = None,
    ) -> None:
        self.interval = interval
        self._token = token
        self._fetch = fetch_reviews or self._fetch_from_github

    async def resolve(self, gate: runkon.GateRequest) -> runkon.GateVerdict | None:
        repo, number = gate.inputs.get("repo"), gate.inputs.get("pr")
        if not repo or not number or not number.isdigit():
            return None  # nothing to look at: leave the gate to people and its deadline
        while True:
            latest = _latest_per_reviewer(await self._fetch(repo, int(number)))
            if gate.approval_mode == "review_decision" and "CHANGES_REQUESTED" in latest.values():
                who = ", ".join(u for u, s in latest.items() if s == "CHANGES_REQUESTED")
                return runkon.GateVerdict(
                    approved=False, feedback=f"changes requested by {who}", by="github"
                )
            approvers = sorted(u for u, state in latest.items() if state == "APPROVED")
            if len(approvers) >= gate.min_approvals:
                return runkon.GateVerdict(
                    approved=True, feedback=f"approved by {', '.join(approvers)}", by="github"
                )
            await anyio.sleep(self.interval)

    async def _fetch_from_github(self, repo: str, number: int) -> Sequence[Review]:
        url = f"https://api.github.com/repos/{repo}/pulls/{number}/reviews?per_page=100"
        headers = {"Accept": "application/vnd.github+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"

        def get() -> Sequence[Review]:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=20) as response:
                reviews: Sequence[Review] = json.load(response)
                return reviews

        return await anyio.to_thread.run_sync(get)


def _latest_per_reviewer(reviews: Sequence[Review]) -> dict[str, str]:
    """Each reviewer's latest decisive review (comments do not change a decision)."""
    latest: dict[str, str] = {}
    for review in reviews:
        state = review.get("state", "")
        if state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[review["user"]["login"]] = state
    return latest
