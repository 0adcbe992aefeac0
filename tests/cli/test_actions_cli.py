"""``--actions``: executors from a Python module, or a directory of executables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._support import flow_output, runkon, write_actions

PLAN_REVIEW = """workflow plan-review {
  inputs { ticket required }
  call plan
  if plan.risky { call review }
  unless plan.risky { call skip-review }
}
"""

MODULE = """
import runkon

async def plan(ctx, params):
    return runkon.ActionOutput(markers=["risky"], context=f"plan for {params.inputs['ticket']}")

class Review:
    name = "review"

    async def execute(self, ctx, params):
        with open("review.txt", "w") as out:
            out.write(params.inputs["prior_context"])
        return runkon.ActionOutput(context="reviewed")

actions = {"plan": plan, "review": Review()}
fallback_action = None
"""


def run_plan_review(tmp_path: Path, *options: str) -> tuple[int, str, str]:
    (tmp_path / "flow.wf").write_text(PLAN_REVIEW)
    result = runkon(
        "run", "flow.wf", "--input", "ticket=T-1", "--db", "r.db", *options, cwd=tmp_path
    )
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout, result.stderr


def test_actions_from_a_python_file(tmp_path: Path) -> None:
    (tmp_path / "acts.py").write_text(
        MODULE + '\nasync def skip(ctx, params):\n    return None\nactions["skip-review"] = skip\n'
    )
    code, out, err = run_plan_review(tmp_path, "--actions", "acts.py")
    assert code == 0, out + err
    assert "step 'plan' completed" in out
    assert "[risky]" in out
    assert "step 'review' completed" in out
    assert "skip-review" not in out
    assert (tmp_path / "review.txt").read_text() == "plan for T-1"


def test_actions_from_a_module_path_with_a_fallback(tmp_path: Path) -> None:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(
        MODULE.replace("fallback_action = None", "fallback_action = plan")
    )
    code, out, err = run_plan_review(tmp_path, "--actions", "mypkg.flows")
    assert code == 0, out + err
    assert "step 'review' completed" in out


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, "nosuch.mod", "--actions 'nosuch.mod': no module named 'nosuch'"),
        ("x = 1 / 0\n", "broken.py", "actions module 'broken.py' failed to import: "),
        ("x = 1\n", "empty.py", "defines neither `actions` (a dict of name -> executor)"),
        ("actions = ['plan']\n", "listy.py", "`actions` in module 'listy.py' must be a dict"),
        ("actions = {'plan': 42}\n", "bad.py", "action 'plan' in module 'bad.py' is not an"),
        (None, "missing.py", "--actions 'missing.py': no such file"),
        (None, "not a module!", "is not a directory, a .py file or a module name"),
    ],
)
def test_unusable_actions_are_usage_errors(
    tmp_path: Path, source: str | None, spec: str, message: str
) -> None:
    if source is not None:
        (tmp_path / spec).write_text(source)
    code, _, err = run_plan_review(tmp_path, "--actions", spec)
    assert code == 2
    assert message in err
    assert not (tmp_path / "r.db").exists()  # nothing was started


def test_a_call_without_an_executor_is_a_usage_error_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "acts.py").write_text(MODULE)
    code, _, err = run_plan_review(tmp_path, "--actions", "acts.py")
    assert code == 2
    assert "flow.wf:5:23: call 'skip-review': no registered ActionExecutor" in err


def test_a_directory_of_executables_with_flow_output_and_variables(tmp_path: Path) -> None:
    # no --actions: ./actions/ is used because it exists
    write_actions(
        tmp_path / "actions",
        {
            "plan.sh": flow_output('["risky"]', "plan for $RUNKON_TICKET", '"owner": "ann"'),
            "review": 'echo "$RUNKON_OWNER|$RUNKON_PRIOR_CONTEXT|$RUNKON_STEP|$PWD" > review.txt',
            "skip-review": "exit 0",
        },
    )
    code, out, err = run_plan_review(tmp_path)
    assert code == 0, out + err
    assert "step 'plan' completed in " in out
    assert "[risky]" in out
    assert (tmp_path / "review.txt").read_text() == f"ann|plan for T-1|review|{tmp_path}\n"


def test_a_failing_executable_fails_the_run_with_its_stderr(tmp_path: Path) -> None:
    write_actions(
        tmp_path / "acts",
        {
            "plan": "echo working; echo 'boom: disk full' >&2; exit 3",
            "review": "",
            "skip-review": "",
        },
    )
    code, out, _ = run_plan_review(tmp_path, "--actions", "acts")
    assert code == 1
    assert (
        "step 'plan' failed: ActionFailedError: acts/plan exited with code 3 boom: disk full" in out
    )
    run_id = out.split()[1]
    shown = runkon("show", run_id, "--db", "r.db", cwd=tmp_path)
    assert re.search(r"^status\s+failed$", shown.stdout, re.M)
    assert "acts/plan exited with code 3" in shown.stdout


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"plan.sh": 0o755, "plan.py": 0o755}, "call 'plan' matches several programs in"),
        ({"plan.sh": 0o644}, "plan.sh in"),
        ({"other": 0o755}, "no program for call 'plan' in the actions directory"),
    ],
)
def test_a_call_the_directory_cannot_run_is_a_usage_error(
    tmp_path: Path, files: dict[str, int], message: str
) -> None:
    actions = tmp_path / "acts"
    write_actions(actions, {"review": "", "skip-review": ""})
    for name, mode in files.items():
        (actions / name).write_text("#!/bin/sh\n")
        (actions / name).chmod(mode)
    code, _, err = run_plan_review(tmp_path, "--actions", "acts")
    assert code == 2
    assert "flow.wf:3:3: " in err
    assert message in err
    if files == {"plan.sh": 0o644}:
        assert "is not executable; run `chmod +x" in err


def test_a_dry_run_executes_nothing_and_passes_its_gates(tmp_path: Path) -> None:
    (tmp_path / "flow.wf").write_text(
        """workflow dry {
  script touch { run = "touch touched" }
  call plan
  gate ok { type = human_approval  prompt = "go?" }
}
"""
    )
    result = runkon("run", "flow.wf", "--dry-run", "--db", "r.db", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started (dry run)" in result.stdout
    assert "step 'ok' completed [approved]" in result.stdout
    assert not (tmp_path / "touched").exists()


def test_executables_do_not_inherit_runkon_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    import runkon as rk
    from runkon.cli._actions import _environment

    monkeypatch.setenv("RUNKON_TOKEN", "server-secret")
    monkeypatch.setenv("CONDUCTOR_SECRET", "server-secret")
    monkeypatch.setenv("HOME_FOR_TEST", "kept")
    ctx = rk.StepContext(
        run_id="r", workflow_name="w", step_id="s", step_name="plan", step_key="plan"
    )
    env = _environment(ctx, rk.ActionParams(name="plan", inputs={"ticket": "T-1"}))
    assert "RUNKON_TOKEN" not in env
    assert "CONDUCTOR_SECRET" not in env
    assert env["HOME_FOR_TEST"] == "kept"
    assert env["RUNKON_TICKET"] == "T-1"
