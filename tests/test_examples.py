"""The shipped examples work as documented."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

import runkon

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PR_FLOW = runkon.parse_workflow(
    """
    workflow ship {
      inputs { repo required  pr required }
      gate pr_approval { min_approvals = 2  timeout = "1h" }
      call merge
    }
    """
)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FakeGitHub:
    """Reviews appear over time; every fetch is recorded."""

    def __init__(self, *rounds: list[tuple[str, str]]) -> None:
        self.rounds = list(rounds)
        self.fetches: list[tuple[str, int]] = []

    async def __call__(self, repo: str, number: int) -> Sequence[dict[str, Any]]:
        self.fetches.append((repo, number))
        index = min(len(self.fetches), len(self.rounds)) - 1
        return [{"user": {"login": u}, "state": s} for u, s in self.rounds[index]]


async def merge(ctx: runkon.StepContext, params: runkon.ActionParams) -> runkon.ActionOutput:
    return runkon.ActionOutput(context=f"merged after: {params.gate_feedback}")


async def test_the_pr_resolver_approves_once_enough_reviewers_approved() -> None:
    example = load("pr_approval_resolver")
    github = FakeGitHub(
        [("ann", "COMMENTED")],
        [("ann", "APPROVED")],
        [("ann", "APPROVED"), ("bob", "APPROVED")],
    )
    resolver = example.PullRequestApprovals(interval=0.01, fetch_reviews=github)
    async with runkon.FlowEngine(
        runkon.InMemoryStore(), actions={"merge": merge}, gate_resolvers=[resolver]
    ) as engine:
        result = await engine.run(PR_FLOW, {"repo": "acme/app", "pr": "42"})
        [gate] = [s for s in await engine.store.get_steps(result.run_id) if s.role == "gate"]
        decided = await engine.store.get_gate(gate.id)
    assert result.succeeded
    assert github.fetches == [("acme/app", 42)] * 3
    assert (decided.decided_by, decided.feedback) == ("github", "approved by ann, bob")


async def test_the_pr_resolver_is_cancelled_when_a_person_decides_first() -> None:
    example = load("pr_approval_resolver")
    github = FakeGitHub([])  # nobody ever reviews
    resolver = example.PullRequestApprovals(interval=0.01, fetch_reviews=github)
    async with runkon.FlowEngine(
        runkon.InMemoryStore(), actions={"merge": merge}, gate_resolvers=[resolver]
    ) as engine:
        handle = await engine.start(PR_FLOW, {"repo": "acme/app", "pr": "42"})
        with anyio.fail_after(5):
            while len(github.fetches) < 3:  # noqa: ASYNC110 - waits for the resolver's polls
                await anyio.sleep(0.01)
        receipt = await engine.approve_gate(handle.run_id, "pr_approval", by="release-manager")
        assert receipt.outcome == runkon.persistence.ReceiptOutcome.APPROVAL_RECORDED
        receipt = await engine.approve_gate(handle.run_id, "pr_approval", by="cto")
        assert receipt.accepted
        result = await handle.result(timeout=5)
        polls = len(github.fetches)
        await anyio.sleep(0.1)
    assert result.succeeded
    assert len(github.fetches) == polls  # the resolver stopped polling when people decided
