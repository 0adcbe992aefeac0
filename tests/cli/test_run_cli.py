"""``runkon run`` waiting at a gate in one process, decided from others: the two-terminal
flow of the README, end to end on one SQLite file."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from pathlib import Path

from ._support import PYTHON_M, Background, flow_output, runkon, write_actions

SHIP = """workflow ship {
  inputs { ticket required }
  script prepare { run = "echo preparing {{ticket}}" }
  parallel {
    call check-a
    call check-b
  }
  gate approve-ship {
    type          = human_approval
    prompt        = "Ship {{ticket}}?"
    options       = ["ship", "hold"]
    min_approvals = MIN
    timeout       = "1h"
  }
  if approve-ship.ship { call deploy }
}
"""

FINISH_BOUND = 10.0  # seconds from the decision to the run process's exit (generous)


def ship(tmp_path: Path, min_approvals: int = 1) -> Path:
    (tmp_path / "ship.wf").write_text(SHIP.replace("MIN", str(min_approvals)))
    write_actions(
        tmp_path / "actions",
        {
            "check-a.sh": flow_output('["clean"]', "check a: clean"),
            "check-b": "echo check b passed",
            "deploy": 'echo "$RUNKON_TICKET|$RUNKON_GATE_SELECTIONS|$PWD" > deployed.txt',
        },
    )
    return tmp_path


def start_waiting(
    tmp_path: Path, background: list[Background], *extra: str
) -> tuple[Background, str]:
    """``runkon run ship.wf`` until its gate waits; returns the process and the run id."""
    run = Background(
        "run", "ship.wf", "--input", "ticket=T-7", "--db", "runs.db", *extra, cwd=tmp_path
    )
    background.append(run)
    run_id = run.wait_for(r"^run (\w+) started: workflow 'ship'").group(1)
    run.wait_for(r"gate 'approve-ship' waits \(human_approval\): Ship T-7\?")
    return run, run_id


def test_approve_from_another_process_finishes_the_waiting_run(
    tmp_path: Path, background: list[Background]
) -> None:
    ship(tmp_path, min_approvals=2)
    run, run_id = start_waiting(tmp_path, background)
    run.wait_for(r"options: ship, hold \(choose one or more\)")
    run.wait_for(
        rf"approve: {PYTHON_M} approve {run_id} approve-ship --db runs.db --select ship\|hold "
    )
    assert "step 'check-a' completed" in run.stdout
    assert "[clean]" in run.stdout  # the FLOW_OUTPUT marker of actions/check-a.sh

    inbox = runkon("gates", "--db", "runs.db", cwd=tmp_path)
    assert inbox.returncode == 0, inbox.stderr
    [row] = [line for line in inbox.stdout.splitlines() if line.startswith(run_id)]
    for cell in ("ship", "approve-ship", "human_approval", "Ship T-7?", "ship,hold", "0/2"):
        assert cell in row

    wrong = runkon("approve", run_id, "--select", "maybe", "--db", "runs.db", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "--select maybe: not an option of gate 'approve-ship'; choose one or more of: " in (
        wrong.stderr
    )
    # a gate with options needs a choice (issue 10.1): exit 2, the options and the flag
    bare = runkon("approve", run_id, "--feedback", "ok", "--db", "runs.db", cwd=tmp_path)
    assert bare.returncode == 2, bare.stdout + bare.stderr
    assert re.fullmatch(
        "runkon: gate 'approve-ship' offers options and needs a choice; choose one or more "
        r"of: ship, hold \(repeat --select for several\), e\.g\. "
        rf"{PYTHON_M} approve {run_id} approve-ship --select ship --db runs\.db\n",
        bare.stderr,
    ), bare.stderr
    assert "Traceback" not in bare.stderr

    first = runkon("approve", run_id, "--select", "ship", "--db", "runs.db", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "approval recorded for gate 'approve-ship'" in first.stdout
    assert "(by tester): 1/2; it waits for 1 more" in first.stdout  # --by from $RUNKON_USER

    decided_at = time.monotonic()
    second = runkon(
        "approve", run_id[:12], "approve-ship", "--by", "bob", "--feedback", "go",
        "--select", "ship", "--db", "runs.db", cwd=tmp_path,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert f"approved gate 'approve-ship' of run {run_id} (by bob); the run goes on" in (
        second.stdout
    )
    assert run.wait(timeout=FINISH_BOUND + 5) == 0, run.stderr
    assert time.monotonic() - decided_at < FINISH_BOUND
    assert "gate 'approve-ship' approved by bob (selected: ship): go" in run.stdout
    assert "step 'deploy' completed" in run.stdout
    assert re.search(rf"run {run_id} completed in \S+$", run.stdout.splitlines()[-1])
    # the program ran in the run's working directory with the step's variables
    assert (tmp_path / "deployed.txt").read_text() == f"T-7|ship|{tmp_path}\n"
    assert "Traceback" not in run.stderr

    again = runkon("approve", run_id, "approve-ship", "--db", "runs.db", cwd=tmp_path)
    assert again.returncode == 1
    assert "was already approved by bob at" in again.stderr

    shown = runkon("show", run_id, "--db", "runs.db", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^status\s+completed$", shown.stdout, re.M)
    assert re.search(r"^inputs\s+ticket=T-7$", shown.stdout, re.M)
    rows = {
        line.split()[1]: line.split() for line in shown.stdout.splitlines() if line[:1].isdigit()
    }
    assert list(rows) == ["prepare", "check-a", "check-b", "approve-ship", "deploy"]
    assert rows["prepare"][2:4] == ["script", "completed"]
    assert rows["check-a"][2:4] == ["call", "completed"]
    assert "clean" in rows["check-a"]
    assert rows["approve-ship"][2:4] == ["gate:human_approval", "completed"]
    assert "approved by bob [ship]" in shown.stdout
    assert re.search(r"^step check-a \(#2, completed\)\n(  .*\n)*?  result:\n", shown.stdout, re.M)
    assert "  context:\n    check a: clean\n" in shown.stdout
    as_json = runkon("show", run_id, "--json", "--db", "runs.db", cwd=tmp_path)
    steps = {step["name"]: step for step in json.loads(as_json.stdout)["steps"]}
    assert steps["check-a"]["markers"] == ["clean"]
    assert steps["approve-ship"]["gate"]["decided_by"] == "bob"
    assert steps["approve-ship"]["gate"]["selections"] == ["ship"]

    listed = runkon("runs", "--db", "runs.db", cwd=tmp_path)
    assert listed.returncode == 0
    assert re.search(rf"^{run_id}\s+ship\s+completed\s", listed.stdout, re.M)

    events = runkon("events", run_id, "--db", "runs.db", cwd=tmp_path)
    assert events.returncode == 0
    kinds = [line.split()[3] for line in events.stdout.splitlines()]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "run_completed"
    assert kinds.index("gate_waiting") < kinds.index("gate_approval_recorded")
    assert kinds.index("gate_approval_recorded") < kinds.index("gate_resolved")

    as_json = runkon("events", run_id, "--json", "--after", "3", "--db", "runs.db", cwd=tmp_path)
    parsed = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert parsed[0]["seq"] == 4
    assert [event["type"] for event in parsed][-1] == "run_completed"


def test_reject_fails_the_run_and_events_follow_ends_with_it(
    tmp_path: Path, background: list[Background]
) -> None:
    ship(tmp_path)
    run, run_id = start_waiting(tmp_path, background)
    follow = Background("events", run_id, "--follow", "--db", "runs.db", cwd=tmp_path)
    background.append(follow)
    follow.wait_for(r"gate_waiting\s+gate 'approve-ship' waits")

    rejected = runkon("reject", run_id, "--feedback", "not today", "--db", "runs.db", cwd=tmp_path)
    assert rejected.returncode == 0, rejected.stderr
    assert f"rejected gate 'approve-ship' of run {run_id} (by tester)" in rejected.stdout
    assert run.wait(timeout=FINISH_BOUND) == 1
    assert "gate 'approve-ship' rejected by tester: not today" in run.stdout
    assert re.search(rf"see its steps: {PYTHON_M} show {run_id} --db runs.db", run.stdout)
    assert not (tmp_path / "deployed.txt").exists()

    assert follow.wait(timeout=FINISH_BOUND) == 0  # --follow ends when the run does
    assert "gate_resolved" in follow.stdout
    assert follow.stdout.splitlines()[-1].split()[3] == "run_failed"

    again = runkon("reject", run_id, "approve-ship", "--db", "runs.db", cwd=tmp_path)
    assert again.returncode == 1
    assert "was already rejected by tester" in again.stderr
    none_left = runkon("approve", run_id, "--db", "runs.db", cwd=tmp_path)
    assert none_left.returncode == 1
    assert f"run {run_id} has no gate waiting (it is failed)" in none_left.stderr


def test_cancel_stops_a_waiting_run_in_another_process(
    tmp_path: Path, background: list[Background]
) -> None:
    ship(tmp_path)
    run, run_id = start_waiting(tmp_path, background)
    cancelled = runkon(
        "cancel", run_id, "--reason", "wrong ticket", "--db", "runs.db", cwd=tmp_path
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {run_id} cancelled" in cancelled.stdout
    assert run.wait(timeout=FINISH_BOUND) == 1
    assert "cancellation requested by tester: wrong ticket" in run.stdout
    assert f"run {run_id} cancelled" in run.stdout

    listed = runkon("runs", "--status", "cancelled", "--db", "runs.db", cwd=tmp_path)
    assert run_id in listed.stdout
    # nobody rejected the gate: show, show --json and the receipts say it was cancelled
    shown = runkon("show", run_id, "--db", "runs.db", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    [gate_row] = [line for line in shown.stdout.splitlines() if " approve-ship " in line]
    assert gate_row.split()[2:4] == ["gate:human_approval", "cancelled"]
    assert "cancelled by tester: wrong ticket" in gate_row
    assert "rejected" not in shown.stdout
    as_json = runkon("show", run_id, "--json", "--db", "runs.db", cwd=tmp_path)
    steps = {step["name"]: step for step in json.loads(as_json.stdout)["steps"]}
    assert steps["approve-ship"]["gate"]["decision"] == "cancelled"
    assert steps["approve-ship"]["markers"] == ["cancelled"]
    late = runkon("approve", run_id, "approve-ship", "--db", "runs.db", cwd=tmp_path)
    assert late.returncode == 1
    assert "was already cancelled by tester at" in late.stderr
    again = runkon("cancel", run_id, "--db", "runs.db", cwd=tmp_path)
    assert again.returncode == 1
    assert "already cancelled; nothing to cancel" in again.stderr


def test_ctrl_c_leaves_the_run_resumable(tmp_path: Path, background: list[Background]) -> None:
    ship(tmp_path)
    run, run_id = start_waiting(tmp_path, background)
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    assert re.search(rf"`{PYTHON_M} resume {run_id} --db runs.db`", run.stderr)
    assert "Traceback" not in run.stderr
    listed = runkon("runs", "--db", "runs.db", cwd=tmp_path)  # no process drives it now
    assert re.search(rf"^{run_id}\s+ship\s+stalled\s.*gate approve-ship", listed.stdout, re.M)
    [as_json] = runkon("runs", "--json", "--db", "runs.db", cwd=tmp_path).stdout.splitlines()
    assert (json.loads(as_json)["status"], json.loads(as_json)["stalled"]) == ("waiting", True)
    shown = runkon("show", run_id, "--db", "runs.db", cwd=tmp_path)
    assert re.search(r"^status\s+stalled on gate approve-ship", shown.stdout, re.M), shown.stdout

    resumed = Background("resume", run_id, "--db", "runs.db", cwd=tmp_path)
    background.append(resumed)
    resumed.wait_for(rf"^run {run_id} resumed")
    resumed.wait_for(
        rf"approve: {PYTHON_M} approve .* approve-ship --db runs.db"
    )  # the gate still waits
    approved = runkon("approve", run_id, "--select", "ship", "--db", "runs.db", cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert resumed.wait(timeout=FINISH_BOUND) == 0, resumed.stderr
    assert "step 'prepare' skipped: completed before the resume" in resumed.stdout
    assert "step 'deploy' completed" in resumed.stdout


def test_resume_takes_over_a_run_whose_process_was_killed(
    tmp_path: Path, background: list[Background]
) -> None:
    ship(tmp_path)
    run, run_id = start_waiting(tmp_path, background, "--lease-ttl", "1")
    run.process.kill()  # SIGKILL: no chance to release the run
    run.wait()
    approved = runkon("approve", run_id, "--select", "ship", "--db", "runs.db", cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr

    resumed = runkon("resume", run_id, "--db", "runs.db", cwd=tmp_path, timeout=30)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "step 'approve-ship' skipped: decided before the resume" in resumed.stdout
    assert "step 'deploy' completed" in resumed.stdout
    assert (tmp_path / "deployed.txt").read_text().startswith("T-7|ship|")
    finished = runkon("resume", run_id, "--db", "runs.db", cwd=tmp_path)
    assert finished.returncode == 1
    assert "already completed; there is nothing to resume" in finished.stderr


def test_resume_without_the_runs_executors_refuses_and_leaves_it_resumable(
    tmp_path: Path, background: list[Background]
) -> None:
    ship(tmp_path)
    (tmp_path / "actions").rename(tmp_path / "acts")
    run, run_id = start_waiting(tmp_path, background, "--actions", "acts")
    run.signal(signal.SIGINT)
    assert run.wait() == 130

    write_actions(tmp_path / "some", {"check-a": "true", "check-b": "true"})  # no deploy
    refused = runkon("resume", run_id, "--actions", "some", "--db", "runs.db", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "'deploy'" in refused.stderr
    assert "Traceback" not in refused.stderr
    listed = runkon("runs", "--db", "runs.db", cwd=tmp_path)
    assert re.search(rf"^{run_id}\s+ship\s+stalled\s", listed.stdout, re.M)

    resumed = Background("resume", run_id, "--db", "runs.db", cwd=tmp_path)  # its own acts/
    background.append(resumed)
    resumed.wait_for(rf"approve: {PYTHON_M} approve .* approve-ship --db runs.db")
    approved = runkon("approve", run_id, "--select", "ship", "--db", "runs.db", cwd=tmp_path)
    assert approved.returncode == 0, approved.stderr
    assert resumed.wait(timeout=FINISH_BOUND) == 0, resumed.stderr
    assert "step 'deploy' completed" in resumed.stdout


def test_a_run_with_a_corrupt_snapshot_is_a_clear_error_and_serve_still_serves(
    tmp_path: Path, background: list[Background]
) -> None:
    ship(tmp_path)
    run, run_id = start_waiting(tmp_path, background)
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute("UPDATE workflow_runs SET definition_snapshot = '{\"x' WHERE id = ?", (run_id,))

    resumed = runkon("resume", run_id, "--db", "runs.db", cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stderr
    [line] = resumed.stderr.strip().splitlines()
    assert run_id in line
    assert "definition_snapshot" in line

    server = Background("serve", "--port", "0", "--db", "runs.db", cwd=tmp_path)
    background.append(server)
    server.wait_for(r"API:\s+http://")
    server.signal(signal.SIGINT)
    assert server.wait() == 0, server.stderr


def test_runs_and_gates_json_use_the_http_apis_field_names(
    tmp_path: Path, background: list[Background]
) -> None:
    from runkon.integrations._schemas import GateOut, RunOut

    ship(tmp_path)
    start_waiting(tmp_path, background)
    [run] = runkon("runs", "--json", "--db", "runs.db", cwd=tmp_path).stdout.splitlines()
    [gate] = runkon("gates", "--json", "--db", "runs.db", cwd=tmp_path).stdout.splitlines()
    assert set(json.loads(run)) == set(RunOut.model_fields)
    assert set(json.loads(gate)) == set(GateOut.model_fields)
