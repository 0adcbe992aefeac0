"""Gate decisions the store refuses or only acknowledges, from the command line: a
decision after the gate's deadline (no process driving the run), and a second approval
by the same person. Real ``runkon`` processes on one SQLite file."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from ._support import Background, runkon, write_actions

LATE = """workflow late {
  gate approve-ship {
    type       = human_approval
    prompt     = "Ship?"
    options    = ["ship", "hold"]
    timeout    = "5s"
    on_timeout = continue
  }
  if approve-ship.ship { call deploy }
  if approve-ship.timed_out { call escalate }
}
"""

QUORUM = """workflow quorum {
  gate approve-ship {
    type          = human_approval
    options       = ["ship", "docs", "hold"]
    min_approvals = 3
    timeout       = "1h"
  }
  call deploy
}
"""


def test_an_approval_after_the_deadline_is_refused_and_resume_times_the_gate_out(
    tmp_path: Path, background: list[Background]
) -> None:
    (tmp_path / "late.wf").write_text(LATE)
    write_actions(
        tmp_path / "actions",
        {"deploy": "touch deployed.txt", "escalate": "touch escalated.txt"},
    )
    run = Background("run", "late.wf", "--db", "runs.db", cwd=tmp_path)
    background.append(run)
    run_id = run.wait_for(r"^run (\w+) started: workflow 'late'").group(1)
    run.wait_for(r"gate 'approve-ship' waits")
    run.signal(signal.SIGINT)  # no process drives the run from now on
    assert run.wait() == 130

    listed = runkon("gates", "--json", "--db", "runs.db", cwd=tmp_path).stdout.splitlines()
    [gate] = [json.loads(line) for line in listed]
    deadline = datetime.fromisoformat(gate["deadline_at"])
    while datetime.now(UTC) <= deadline:
        time.sleep(0.2)

    for command in ("approve", "reject"):
        refused = runkon(command, run_id, "approve-ship", "--db", "runs.db", cwd=tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"gate 'approve-ship' of run {run_id} timed out: its deadline passed at " in (
            refused.stderr
        )
        assert "the decision was refused and nothing changed" in refused.stderr
    still = runkon("gates", "--json", "--db", "runs.db", cwd=tmp_path)
    assert [json.loads(line)["step_id"] for line in still.stdout.splitlines()] == [gate["step_id"]]

    resumed = runkon("resume", run_id, "--db", "runs.db", cwd=tmp_path, timeout=30)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "gate 'approve-ship' timed out" in resumed.stdout
    assert "step 'escalate' completed" in resumed.stdout  # its on_timeout path
    assert (tmp_path / "escalated.txt").exists()
    assert not (tmp_path / "deployed.txt").exists()
    shown = runkon("show", run_id, "--json", "--db", "runs.db", cwd=tmp_path)
    steps = {step["name"]: step for step in json.loads(shown.stdout)["steps"]}
    assert steps["approve-ship"]["status"] == "timed_out"
    assert steps["approve-ship"]["gate"]["decision"] == "timed_out"


def test_a_second_approval_says_already_recorded_and_the_quorum_keeps_every_selection(
    tmp_path: Path, background: list[Background]
) -> None:
    (tmp_path / "quorum.wf").write_text(QUORUM)
    write_actions(
        tmp_path / "actions", {"deploy": 'echo "$RUNKON_GATE_SELECTIONS" > selections.txt'}
    )
    run = Background("run", "quorum.wf", "--db", "runs.db", cwd=tmp_path)
    background.append(run)
    run_id = run.wait_for(r"^run (\w+) started: workflow 'quorum'").group(1)
    run.wait_for(r"gate 'approve-ship' waits")

    def approve(by: str, *selections: str) -> tuple[int, str, str]:
        flags = [arg for value in selections for arg in ("--select", value)]
        done = runkon("approve", run_id, "--by", by, *flags, "--db", "runs.db", cwd=tmp_path)
        return done.returncode, done.stdout, done.stderr

    code, out, err = approve("alice", "ship")
    assert code == 0, err
    assert "approval recorded for gate 'approve-ship'" in out
    assert "(by alice): 1/3; it waits for 2 more" in out
    code, out, err = approve("alice", "hold")  # the same person again: counted once
    assert code == 0, err
    assert f"alice had already approved gate 'approve-ship' of run {run_id}" in out
    assert "nothing changed: 1/3; it waits for 2 more" in out
    code, out, err = approve("bob", "docs", "ship")
    assert code == 0, err
    assert "2/3; it waits for 1 more" in out
    code, out, err = approve("carol")  # a gate with options needs each approver's choice
    assert code == 2
    assert "offers options and needs a choice" in err
    code, out, err = approve("carol", "ship")
    assert code == 0, err
    assert f"approved gate 'approve-ship' of run {run_id} (by carol)" in out

    assert run.wait(timeout=15) == 0, run.stderr
    # every approver's selections, in approval order, each once (alice's repeat ignored)
    assert "(selected: ship, docs)" in run.stdout
    assert (tmp_path / "selections.txt").read_text().strip() in ("ship,docs", "ship docs")
    shown = runkon("show", run_id, "--json", "--db", "runs.db", cwd=tmp_path)
    steps = {step["name"]: step for step in json.loads(shown.stdout)["steps"]}
    assert steps["approve-ship"]["gate"]["selections"] == ["ship", "docs"]
