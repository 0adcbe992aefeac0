"""The shipped examples work as documented."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
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


def runkon_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runkon.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_release_example_runs_and_its_gate_is_decided_from_the_cli(tmp_path: Path) -> None:
    """The README's main job (what scripts/demo does): run examples/release.wf in one
    process, approve its gate from another, and the run completes."""
    root = EXAMPLES.parent
    db = str(tmp_path / "release.db")
    run = subprocess.Popen(
        [sys.executable, "-m", "runkon.cli", "run", "examples/release.wf",
         "--actions", "examples/actions", "--db", db],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        gates: list[dict[str, Any]] = []
        while not gates and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
            listed = runkon_cli("gates", "--json", "--db", db, cwd=root)
            gates = [json.loads(line) for line in listed.stdout.splitlines()]
        [gate] = gates
        assert (gate["gate_name"], gate["prompt"]) == ("approve-release", "Ship release 1.2.0?")
        assert [option["value"] for option in gate["options"]] == ["ship", "hold"]
        assert (gate["select"], gate["allow_none"]) == ("one", False)
        for wrong in ([], ["--select", "ship", "--select", "hold"]):  # ship OR hold
            refused = runkon_cli(
                "approve", gate["run_id"], "approve-release", *wrong, "--db", db, cwd=root
            )  # fmt: skip
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "choose exactly one of: ship, hold, e.g. " in refused.stderr
            assert f" approve {gate['run_id']} approve-release --select ship" in refused.stderr
        approved = runkon_cli(
            "approve", gate["run_id"], "approve-release", "--select", "ship", "--by", "demo",
            "--db", db, cwd=root,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, out + err
    for line in (
        "step 'build' completed",
        "step 'unit-tests' completed",
        "step 'lint' completed",
        "step 'changelog-check' completed in",  # the FLOW_OUTPUT marker needs_notes...
        "step 'write-notes' completed",  # ...made this call run
        "gate 'approve-release' approved by demo (selected: ship)",
        "step 'publish' completed",
    ):
        assert line in out
    assert f"run {gate['run_id']} completed in" in out.splitlines()[-1]


def scratch_repository(path: Path, *, conflicting: bool) -> Path:
    """A git repository on branch `feature`, behind `main`, with unused imports in src/."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    (path / "src").mkdir(parents=True)
    module = path / "src" / "mod.py"
    module.write_text(
        "import os\nimport sys, json\nfrom typing import Any, List\n\nprint(sys.argv, Any)\n"
    )
    git("init", "-q", "-b", "main")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "dev")
    git("add", "-A")
    git("commit", "-qm", "init")
    git("branch", "feature")
    if conflicting:  # main rewrites the import lines the fixer will change
        module.write_text(module.read_text().replace("sys, json", "sys, json, re"))
    else:
        (path / "NOTES").write_text("main moved on\n")
    git("add", "-A")
    git("commit", "-qm", "main moves")
    git("checkout", "-q", "feature")
    return path


def run_tidy_imports(repo: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runkon.cli", "run", "tidy-imports.wf", "--actions", "actions",
         "-i", f"source_dir={repo / 'src'}", "--db", str(db)],
        cwd=EXAMPLES / "tidy-imports", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_tidy_imports_example_runs_against_a_scratch_repository(tmp_path: Path) -> None:
    repo = scratch_repository(tmp_path / "repo", conflicting=False)
    done = run_tidy_imports(repo, tmp_path / "tidy.db")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step 'scan-imports' completed" in done.stdout
    assert "[has_import_issues]" in done.stdout
    assert "step 'import-fixer' completed" in done.stdout
    assert "[behind_base]" in done.stdout
    assert "[clean_merge]" in done.stdout
    assert "step 'publish-branch' completed" in done.stdout
    assert (
        repo / "src" / "mod.py"
    ).read_text() == "import sys\nfrom typing import Any\n\nprint(sys.argv, Any)\n"
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log[:2] == ["Merge branch 'main' into feature", "Remove unused imports"]


def test_the_tidy_imports_example_hands_a_conflicting_merge_to_a_person(tmp_path: Path) -> None:
    repo = scratch_repository(tmp_path / "repo", conflicting=True)
    done = run_tidy_imports(repo, tmp_path / "tidy.db")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step 'merge-helper' failed" in done.stdout
    assert "resolve it by hand" in done.stdout + done.stderr
    assert "publish-branch" not in done.stdout
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""  # the failed merge was aborted, the tree is clean
