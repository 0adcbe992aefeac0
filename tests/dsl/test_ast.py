"""Expected ASTs: the valid corpus parses exactly as reference §1 says, defaults included.

Expectations are written with the builders of `_expect`, which spell out the reference
default of every field (gate timeout 86400 s, on_timeout fail, fail_fast true, boolean
inputs never required, string inputs without default required, ...).
"""

from __future__ import annotations

from typing import Any

import pytest

import runkon
from runkon.dsl import (
    AgentRef,
    CallNode,
    CallWorkflowNode,
    DoWhileNode,
    ForEachNode,
    GateNode,
    IfNode,
    ParallelNode,
    ScriptNode,
    UnlessNode,
    WorkflowDef,
)

from ._corpus import VALID_DIR
from ._expect import (
    always,
    boolean,
    call,
    call_workflow,
    do,
    do_while,
    foreach,
    gate,
    if_,
    inp,
    list_options,
    marker,
    parallel,
    path,
    pcall,
    quality_gate,
    script,
    static_options,
    step_ref,
    strip,
    unless,
    while_,
    workflow,
)

EXPECTED: dict[str, dict[str, Any]] = {}

EXPECTED["tidy-imports"] = workflow(
    "tidy-imports",
    title="Tidy Imports",
    description="Find unused or unsorted imports, fix them, and re-check until clean",
    trigger="manual",
    targets=("worktree",),
    group="Maintenance",
    inputs=(
        inp("source_dir", required=False, default="src"),
        inp("base_branch", required=False, default="main"),
    ),
    body=(
        do_while(
            "scan-imports",
            "has_import_issues",
            script("scan-imports", "scripts/scan-imports.sh", env={"TARGET_DIR": "{{source_dir}}"}),
            if_(marker("scan-imports", "has_import_issues"), call("import-fixer", retries=1)),
            max_iterations=4,
            on_max_iter="fail",
        ),
        script("check-branch-state", "scripts/branch-state.sh"),
        if_(
            marker("check-branch-state", "behind_base"),
            script("fast-forward", "scripts/fast-forward.sh", env={"BASE": "{{base_branch}}"}),
            unless(marker("fast-forward", "clean_merge"), call("merge-helper")),
        ),
        unless(
            marker("check-branch-state", "dirty_tree"),
            script("publish-branch", "scripts/publish-branch.sh", as_identity="committer"),
        ),
    ),
)

EXPECTED["triage-request"] = workflow(
    "triage-request",
    title="Triage Request",
    description="Classify an incoming request and ask a human until nothing is ambiguous",
    targets=("ticket",),
    group="Intake",
    inputs=(
        inp("request_id", required=True, description="Tracker id of the request"),
        inp("priority", required=False, default="normal"),
    ),
    body=(
        script("classify-request", "scripts/classify.sh {{request_id}} {{priority}}"),
        parallel(
            pcall("scope-estimator", retries=1),
            pcall("duplicate-finder", retries=1, snippets=("search-tips",)),
            pcall(
                "billing-reviewer",
                retries=2,
                condition=marker("classify-request", "touches_billing"),
            ),
            pcall(
                "privacy-reviewer",
                output="privacy-notes",
                condition=marker("classify-request", "touches_personal_data"),
            ),
            fail_fast=False,
            min_success=2,
            output="triage-notes",
            snippets=("triage-rubric",),
        ),
        do_while(
            "draft-clarifications",
            "needs_answers",
            call("draft-clarifications", output="clarification-list"),
            if_(
                marker("draft-clarifications", "needs_answers"),
                gate(
                    "human_review",
                    prompt="Answer the open points listed above; put your answers in the "
                    "approval feedback.",
                    timeout=48 * 3600.0,
                    on_timeout="continue",
                ),
            ),
            max_iterations=4,
            on_max_iter="continue",
        ),
    ),
)

EXPECTED["ship-request"] = workflow(
    "ship-request",
    title="Ship Request",
    description="Implement a triaged request, open a PR, and optionally land it",
    targets=("worktree",),
    group="Delivery",
    inputs=(
        inp("request_id", required=True),
        inp("skip_triage", required=False, input_type="boolean"),
        inp("merge_when_green", required=False, input_type="boolean"),
    ),
    body=(
        unless(
            boolean("skip_triage"),
            call_workflow(
                "triage-request",
                retries=1,
                inputs={"request_id": "{{request_id}}", "priority": "high"},
            ),
        ),
        call("design-change", output="change-plan"),
        call("write-change", retries=2, as_identity="builder", snippets=("repo-conventions",)),
        script(
            "open-pr",
            "scripts/open-pr.sh",
            as_identity="builder",
            env={"REQUEST": "{{request_id}}"},
        ),
        unless(
            marker("open-pr", "nothing_to_commit"),
            if_(
                boolean("merge_when_green"),
                gate("pr_checks", timeout=90 * 60.0, on_timeout="fail"),
                gate(
                    "pr_approval",
                    approval_mode="review_decision",
                    as_identity="approver",
                    timeout=48 * 3600.0,
                    on_timeout="fail",
                ),
                script(
                    "land-pr",
                    "scripts/land-pr.sh",
                    as_identity="lander",
                    env={"REQUEST": "{{request_id}}"},
                ),
            ),
        ),
    ),
)

EXPECTED["release-check"] = workflow(
    "release-check",
    title="Release Check",
    description="Demo of all node kinds",
    trigger="manual",
    targets=("worktree", "pr"),
    group="Demo",
    inputs=(
        inp("branch", required=False, default="main"),
        inp("ticket", required=True, description="Ticket id"),
        inp("fast", required=False, input_type="boolean"),
    ),
    body=(
        script(
            "detect", "./scripts/detect.sh {{branch}}", timeout=120.0, env={"BASE": "{{branch}}"}
        ),
        unless(
            boolean("fast"),
            parallel(
                pcall("lint"),
                pcall("audit", retries=2, condition=marker("detect", "has_code")),
                fail_fast=False,
                min_success=1,
                snippets=("style-guide",),
            ),
        ),
        call(
            "plan",
            output="task-plan",
            retries=1,
            on_fail_="continue",
            timeout=600.0,
            max_turns=40,
            as_identity="developer",
        ),
        quality_gate("quality_gate", source="plan", threshold=70, on_fail_="continue"),
        do_while(
            "review",
            "needs_changes",
            call("review"),
            if_(marker("review", "needs_changes"), call("fix", snippets=("fix-hints",))),
            max_iterations=3,
            stuck_after=2,
            on_max_iter="continue",
        ),
        gate(
            "human_approval",
            prompt="Ship it?",
            timeout=86400.0,
            on_timeout="fail",
            options=list_options("ship", "hold"),
        ),
        foreach(
            "per-repo",
            over="repos",
            max_parallel=4,
            workflow_="repo-check",
            inputs={"repo": "{{item.id}}"},
            on_child_fail="continue",
        ),
        call_workflow("notify", inputs={"ticket": "{{ticket}}"}),
    ),
    always=(script("cleanup", "./scripts/cleanup.sh {{workflow_status}}"),),
)

EXPECTED["gates-tour"] = workflow(
    "gates-tour",
    title="Gates Tour",
    description="Every gate type with every option",
    group="Tour",
    body=(
        call("collect-choices", output="choices"),
        gate("human_approval"),
        gate(
            "human_approval",
            prompt="Ship it?",
            min_approvals=3,
            approval_mode="min_approvals",
            timeout=36 * 3600.0,
            on_timeout="continue",
            as_identity="approver-bot",
            options=list_options("ship", "hold"),
            select="one",
        ),
        gate(
            "human_review",
            prompt="What should change?",
            options=static_options({"accept": "Accept as is", "revise": "Send back for changes"}),
            allow_none=True,
        ),
        gate(
            "pick-option", gate_type="human_review", options=step_ref("collect-choices", "options")
        ),
        gate(
            "pick-quoted", gate_type="human_review", options=step_ref("collect-choices", "options")
        ),
        gate(
            "pr_approval",
            approval_mode="review_decision",
            as_identity="approver",
            timeout=3600.0,
            on_timeout="fail",
        ),
        gate("second-approval", gate_type="pr_approval", min_approvals=2),
        gate("pr_checks", timeout=5400.0, on_timeout="fail"),
        quality_gate(
            "quality_gate",
            source="collect-choices",
            threshold=0,
            on_fail_="continue",
            as_identity="scorer",
        ),
        quality_gate("confidence-check", source="collect-choices", threshold=100),
        gate("slack_reaction", prompt="React with :+1:"),
        gate("change-window", gate_type="change-calendar", timeout=2 * 86400.0),
    ),
)

EXPECTED["inputs-tour"] = workflow(
    "inputs-tour",
    title="Inputs Tour",
    description="Inputs in every shape",
    group="Tour",
    inputs=(
        inp("ticket", required=True),
        inp("branch", required=False, default="main"),
        inp("reason", required=True, description="Why this run happens"),
        inp("fast", required=False, input_type="boolean"),
        inp("verbose", required=False, default="true", input_type="boolean"),
        inp("label", required=False, default="nightly", description="Shown in the UI"),
        inp("count", required=False, default="3"),
        inp(
            "dry", required=False, description="Only print what would happen", input_type="boolean"
        ),
        inp("approver", required=True, description="Who approves"),
        inp("region", required=False, default="eu-west-1"),
        inp("canary", required=False, input_type="boolean"),
    ),
    body=(
        if_(boolean("fast"), call("quick-check")),
        unless(boolean("verbose"), call("quiet-mode")),
        if_(
            boolean("canary"),
            unless(boolean("dry"), call("deploy-canary", snippets=("region-{{region}}",))),
        ),
        call("summarize"),
    ),
)

EXPECTED["lexical-tour"] = workflow(
    "lexical-tour",
    title='Lexical "Tour"',
    description="tab:\there\nnewline; backslash: \\ ; unknown escape q is q",
    body=(
        script(
            "multi-line",
            'set -e\necho "first line"\n\techo indented with a tab\n',
            env={
                "GREETING": "hello,\tworld",
                "EMPTY": "",
                "QUOTE": 'say "hi"',
                "PATHS": "C:\\tools\\bin",
            },
        ),
        call("a", retries=1, output="o", snippets=("x", "y", "z")),
        call("b", snippets=("p", "q")),
        call("c", retries=2, output="c-out"),
        call("d", as_identity="tabbed"),
        call("unicode", output="naïve café ✓ — ünïcødé"),
        call("comment-in-string", output="// not a comment"),
    ),
)

EXPECTED["keywords-as-names"] = workflow(
    "keywords-as-names",
    inputs=(
        inp("timeout", required=False, default="30"),
        inp("output", required=False, input_type="boolean"),
        inp("manual", required=False, input_type="boolean"),
    ),
    body=(
        call("required"),
        call("default", output="default"),
        call("description", snippets=("if", "while", "gate", "workflow")),
        call("boolean"),
        call("inputs"),
        call("if"),
        call("unless"),
        call("while"),
        call("parallel"),
        call("gate"),
        call("always"),
        call("script"),
        call("foreach"),
        call("as", as_identity="as"),
        call("true", output="false"),
        script(
            "workflow",
            "echo workflow",
            env={"if": "1", "workflow": "2", "inputs": "3", "call": "4", "default": "5"},
        ),
        if_(marker("required", "done"), call("with")),
        unless(marker("if", "skipped"), call("timeout")),
        if_(boolean("output"), call("retries")),
        unless(boolean("manual"), call("on_fail")),
        while_("gate", "again", call("gate"), max_iterations=2),
        parallel(
            pcall("foreach", condition=marker("required", "done")),
            pcall("parallel", condition=marker("script", "ready")),
        ),
    ),
)

EXPECTED["durations"] = workflow(
    "durations",
    body=(
        call("millis", timeout=0.25),
        call("seconds", timeout=30.0),
        call("minutes", timeout=300.0),
        call("hours-mins", timeout=5400.0),
        call("days", timeout=172800.0),
        call("bare-int", timeout=90.0),
        call("quoted-int", timeout=90.0),
        call("bare-unit", timeout=300.0),
        call("every-unit", timeout=86400.0 + 7200.0 + 180.0 + 4.0 + 0.005),
        script("script-int", "sleep 1", timeout=120.0),
        script("script-seconds", "sleep 1", timeout=45.0),
        script("script-hours", "sleep 1", timeout=3600.0),
        script("script-millis", "sleep 1", timeout=1.5),
        gate("human_approval", timeout=86400.0),
        gate("pr_checks", timeout=45.0),
        gate("pr_approval", timeout=5400.0),
        gate("human_review", timeout=172800.0),
        gate("long-wait", gate_type="human_review", timeout=365 * 86400.0),
    ),
)

EXPECTED["do-blocks"] = workflow(
    "do-blocks",
    body=(
        call("prepare"),
        do(
            call("first-in-block"),
            call("second-in-block", output="own-schema"),
            output="shared-schema",
            snippets=("shared-snippet", "another-snippet"),
        ),
        do(call("bare-block")),
        do(call("check-state")),
        while_("check-state", "pending", call("wait-for-state"), max_iterations=2),
        do_while("poll", "pending", call("poll"), max_iterations=4),
        do_while(
            "refine",
            "improving",
            call("refine", output="draft"),
            do(call("polish"), snippets=("nested-plain-do",)),
            if_(marker("refine", "blocked"), always(call("log-blocker"))),
            max_iterations=10,
            stuck_after=4,
            on_max_iter="fail",
        ),
        while_(
            "refine",
            "improving",
            always(call("record-iteration")),
            call("refine", output="draft"),
            max_iterations=2,
            on_max_iter="continue",
        ),
    ),
    always=(call("cleanup"),),
)

EXPECTED["conditions-tour"] = workflow(
    "conditions-tour",
    title="Conditions Tour",
    group="Tour",
    inputs=(
        inp("deploy", required=False, input_type="boolean"),
        inp("skip_tests", required=False, input_type="boolean"),
    ),
    body=(
        script("detect", "scripts/detect.sh"),
        if_(
            marker("detect", "has_code"),
            unless(
                boolean("skip_tests"),
                call("unit-tests"),
                if_(marker("unit-tests", "flaky"), call("rerun-flaky", retries=3)),
            ),
        ),
        unless(marker("detect", "has_code"), call("docs-only-check")),
        if_(boolean("deploy"), unless(marker("detect", "risky"), call("deploy-canary"))),
        if_(boolean("deploy")),
        parallel(
            pcall("lint-a"),
            pcall("lint-b", condition=marker("detect", "has_code")),
            pcall(
                path(".claude/agents/lint-c.md"),
                condition=marker("detect", "has_docs"),
                output="lint-c-report",
                snippets=("lint-c-hints",),
                retries=2,
            ),
        ),
        if_(marker("lint-c", "failed"), call("notify-docs-team")),
        parallel(pcall("shard-1"), pcall("shard-2"), fail_fast=True, min_success=2),
        parallel(
            pcall("shard-3", output="special-report"),
            pcall("shard-4", snippets=("extra",)),
            fail_fast=False,
            min_success=1,
            output="shard-report",
            snippets=("shard-snippet",),
        ),
    ),
)

EXPECTED["foreach-tour"] = workflow(
    "foreach-tour",
    inputs=(inp("label", required=False, default="ready"),),
    body=(
        foreach("few-options", over="repos", max_parallel=1, workflow_="minimal"),
        foreach(
            "every-option",
            over="tickets",
            max_parallel=4,
            workflow_="repo-check",
            scope={},
            filter_={"state": "open", "label": "{{label}}"},
            inputs={"repo": "{{item.ref}}"},
            ordered=True,
            on_cycle="fail",
            on_child_fail="continue",
        ),
        foreach(
            "halting",
            over="repos",
            max_parallel=16,
            workflow_="repo-check",
            scope={"org": "acme"},
            inputs={"repo": "{{item.id}}"},
            ordered=False,
            on_cycle="warn",
            on_child_fail="halt",
        ),
    ),
)

EXPECTED["minimal"] = workflow("minimal", body=(call("hello"),))

EXPECTED["defaults-tour"] = workflow(
    "defaults-tour",
    inputs=(inp("flag", required=False, input_type="boolean"),),
    body=(
        call("plain"),
        call_workflow("minimal"),
        if_(marker("plain", "done")),
        unless(boolean("flag")),
        while_("plain", "again", max_iterations=1),
        do_while("plain", "again", max_iterations=1),
        do(),
        parallel(pcall("solo")),
        gate("human_approval"),
        quality_gate("quality_gate", source="plain", threshold=50),
        script("quiet", "true"),
        foreach("each", over="repos", max_parallel=1, workflow_="minimal"),
    ),
)

EXPECTED["calls-tour"] = workflow(
    "calls-tour",
    body=(
        call("bare"),
        call("with-block"),
        call("retries-only", retries=3),
        call("on-fail-continue", on_fail_="continue"),
        call("on-fail-agent", on_fail_="fixer"),
        call("on-fail-quoted-name", on_fail_="fixer"),
        call("on-fail-path", on_fail_=path(".claude/agents/fixer.md")),
        call("output-bare", output="task-plan"),
        call("output-quoted", output="task-plan"),
        call("with-one", snippets=("single-snippet",)),
        call("with-list", snippets=("a", "b")),
        call("identity", as_identity="github-app-bot"),
        call("plugins", plugin_dirs=(".claude/plugins", "/opt/plugins")),
        call("timed", timeout=600.0),
        call("turns", max_turns=40),
        call(
            "everything",
            retries=2,
            on_fail_="continue",
            output="full-schema",
            snippets=("s1", "s2"),
            as_identity="bot",
            plugin_dirs=("p",),
            timeout=3600.0,
            max_turns=1,
        ),
        call(path(".claude/agents/plan.md"), retries=1, output="task-plan"),
        call(path("agents/review.md")),
        call_workflow("notify", inputs={"ticket": "T-1"}),
        call_workflow(
            "notify",
            retries=1,
            on_fail_="continue",
            as_identity="bot",
            inputs={"ticket": "T-2", "channel": "#ops"},
        ),
        call_workflow("notify", inputs={"ticket": "T-3"}),
        call_workflow("notify", inputs={"ticket": "T-4"}, retries=2),
        call_workflow("notify", on_fail_="notify-fallback", inputs={"ticket": "T-5"}),
        call_workflow("tidy-imports"),
        script(
            "all-options",
            "scripts/all.sh {{ticket}}",
            env={"A": "1", "B": "two"},
            timeout=30.0,
            retries=2,
            on_fail_="continue",
            as_identity="runner",
        ),
        script("agent-on-fail", "scripts/may-fail.sh", on_fail_="script-doctor"),
    ),
)


def load(name: str) -> WorkflowDef:
    return runkon.load_workflow(VALID_DIR / f"{name}.wf")


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_expected_ast(name: str) -> None:
    assert strip(load(name).model_dump(mode="json")) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=sorted(EXPECTED))
def test_expected_ast_node_order_is_source_order(name: str) -> None:
    """Every node's (line, col) is after the previous node's, depth first."""
    wf = load(name)
    positions = [(node.line, node.col) for node in wf.walk()]
    assert all(pos > (0, 0) for pos in positions)
    assert positions == sorted(positions)


def test_node_locations_point_at_the_keyword() -> None:
    wf = load("release-check")
    assert (wf.line, wf.col) == (2, 1)
    assert [(i.name, i.line, i.col) for i in wf.inputs] == [
        ("branch", 12, 5),
        ("ticket", 13, 5),
        ("fast", 14, 5),
    ]
    detect, unless_fast, plan, qgate, loop, human, per_repo, notify = wf.body
    assert (detect.line, detect.col) == (17, 3)
    assert (unless_fast.line, unless_fast.col) == (24, 3)
    assert isinstance(unless_fast, UnlessNode)
    par = unless_fast.body[0]
    assert isinstance(par, ParallelNode)
    assert (par.line, par.col) == (25, 5)
    assert [(c.line, c.col) for c in par.calls] == [(29, 7), (30, 7)]
    assert (plan.line, plan.col) == (34, 3)
    assert (qgate.line, qgate.col) == (44, 3)
    assert isinstance(loop, DoWhileNode)
    assert (loop.line, loop.col) == (50, 3)
    assert (loop.body[0].line, loop.body[0].col) == (54, 5)
    assert (human.line, human.col) == (60, 3)
    assert (per_repo.line, per_repo.col) == (67, 3)
    assert (notify.line, notify.col) == (75, 3)
    (cleanup,) = wf.always
    assert (cleanup.line, cleanup.col) == (80, 5)


def test_reference_defaults_spelled_out() -> None:
    """The defaults of reference §1.4-§1.6, read off the parsed objects themselves."""
    wf = load("defaults-tour")
    assert wf.title is None
    assert wf.display_name == "defaults-tour"
    assert wf.description == ""
    assert wf.trigger == "manual"
    assert wf.targets == ()
    assert wf.group is None
    assert wf.always == ()
    (flag,) = wf.inputs
    assert flag.required is False
    assert flag.default is None
    assert flag.input_type == "boolean"
    call_node = wf.body[0]
    assert isinstance(call_node, CallNode)
    assert call_node.retries == 0
    assert call_node.on_fail is None
    assert call_node.timeout is None
    par = wf.body[7]
    assert isinstance(par, ParallelNode)
    assert par.fail_fast is True
    assert par.min_success is None
    human = wf.body[8]
    assert isinstance(human, GateNode)
    assert human.gate_type == "human_approval"
    assert human.timeout == 86400.0
    assert human.on_timeout == "fail"
    assert human.min_approvals == 1
    assert human.approval_mode == "min_approvals"
    assert human.options is None
    assert human.quality_gate is None
    assert not human.is_quality_gate
    qgate = wf.body[9]
    assert isinstance(qgate, GateNode)
    assert qgate.is_quality_gate
    assert qgate.quality_gate is not None
    assert qgate.quality_gate.on_fail == "fail"
    assert qgate.timeout == 0.0
    quiet = wf.body[10]
    assert isinstance(quiet, ScriptNode)
    assert quiet.env == {}
    assert quiet.timeout is None
    each = wf.body[11]
    assert isinstance(each, ForEachNode)
    assert each.ordered is False
    assert each.on_cycle == "fail"
    assert each.on_child_fail == "continue"
    assert each.scope is None
    assert each.step_key == "foreach:each"


def test_required_input_with_default_stays_required() -> None:
    wf = runkon.parse_workflow('workflow w { inputs { a required default = "x" } }')
    (decl,) = wf.inputs
    assert decl.required is True
    assert decl.default == "x"


def test_boolean_required_input_is_not_required() -> None:
    wf = runkon.parse_workflow("workflow w { inputs { a required boolean } }")
    (decl,) = wf.inputs
    assert decl.required is False
    assert decl.input_type == "boolean"


def test_repeated_step_names_are_kept_in_order() -> None:
    wf = load("ticket-to-pr")
    names = []
    for node in wf.walk():
        if isinstance(node, CallNode):
            names.append(node.agent.step_key)
        elif isinstance(node, GateNode):
            names.append(f"gate:{node.name}")
        elif isinstance(node, ScriptNode):
            names.append(f"script:{node.name}")
        elif isinstance(node, CallWorkflowNode):
            names.append(f"workflow:{node.workflow}")
    assert names == [
        "ticket-reader",
        "plan",
        "gate:human_review",
        "plan",
        "implement",
        "verify",
        "implement",
        "verify",
        "script:open-pr",
        "gate:pr_checks",
        "workflow:iterate-pr",
        "gate:pr_checks",
        "workflow:iterate-pr",
        "script:merge-pr",
    ]
    second_checks = [n for n in wf.body if isinstance(n, GateNode) and n.name == "pr_checks"]
    assert [g.on_timeout for g in second_checks] == ["fail", "continue"]


def test_path_agent_step_key_is_file_stem() -> None:
    wf = load("ticket-to-pr")
    first = wf.body[0]
    assert isinstance(first, CallNode)
    assert first.agent.kind == "path"
    assert first.agent.label == ".claude/agents/ticket-reader.md"
    assert first.agent.step_key == "ticket-reader"
    plan = wf.body[1]
    assert isinstance(plan, CallNode)
    assert plan.on_fail is not None
    assert plan.on_fail != "continue"
    assert isinstance(plan.on_fail, AgentRef)
    assert plan.on_fail.kind == "path"
    implement_again = wf.body[5].body[0]  # type: ignore[union-attr]
    assert isinstance(implement_again, CallNode)
    assert implement_again.on_fail == AgentRef(kind="name", value="debugger")


def test_do_while_vs_do_followed_by_while() -> None:
    wf = load("do-blocks")
    kinds = [node.type for node in wf.body]
    assert kinds == ["call", "do", "do", "do", "while", "do_while", "do_while", "while"]
    nested_if = wf.body[6].body[2]  # type: ignore[union-attr]
    assert isinstance(nested_if, IfNode)
    assert nested_if.body[0].type == "always"
