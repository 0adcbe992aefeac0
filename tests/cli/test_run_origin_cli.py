"""A run remembers how it was started (issue 10.2, issue 14.8): its working directory and
its ``--actions``. ``resume`` and ``cancel`` started from another directory with no
flags use them; an explicit ``--actions`` overrides; a gone directory is refused (exit 2)
and the run stays resumable. Real processes on one SQLite file."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._support import Background, runkon, write_actions

FLOW = """workflow here {
  call prepare
  gate go {
    type    = human_approval
    prompt  = "Go on?"
    timeout = "1h"
  }
  call finish
  script note { run = "pwd > note.txt" }
  always {
    script tidy { run = "echo {{workflow_status}} > tidy.txt" }
  }
}
"""


def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Directory A (the workflow and its actions in ``acts/``), an unrelated directory B
    to run commands from, and the database (outside both)."""
    first, second = tmp_path / "A", tmp_path / "B"
    (tmp_path / "db").mkdir()
    second.mkdir()
    first.mkdir()
    (first / "flow.wf").write_text(FLOW)
    write_actions(
        first / "acts",
        {"prepare": "echo prepared > prepared.txt", "finish": "echo acts > finished.txt"},
    )
    return first, second, tmp_path / "db" / "runs.db"


def waiting_run(first: Path, db: Path, background: list[Background], *extra: str) -> str:
    """``runkon run flow.wf --actions acts`` from A until its gate waits, then stopped
    (``extra`` e.g. ``--lease-ttl 1`` for a SIGKILL); returns the run id."""
    run = Background("run", "flow.wf", "--actions", "acts", "--db", str(db), *extra, cwd=first)
    background.append(run)
    run_id = run.wait_for(r"^run (\w+) started: workflow 'here'").group(1)
    run.wait_for(r"gate 'go' waits")
    return run_id


def approve(run_id: str, db: Path, cwd: Path) -> None:
    approved = runkon("approve", run_id, "--db", str(db), cwd=cwd)
    assert approved.returncode == 0, approved.stderr


def run_json(db: Path, cwd: Path, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The only run, as ``runkon runs --json`` shows it, once ``until`` holds for it."""
    deadline = time.monotonic() + 30
    while True:
        [line] = runkon("runs", "--json", "--db", str(db), cwd=cwd).stdout.splitlines()
        run: dict[str, Any] = json.loads(line)
        if until(run) or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def test_resume_from_elsewhere_after_a_crash_uses_the_runs_actions_and_directory(
    tmp_path: Path, background: list[Background]
) -> None:
    first, second, db = project(tmp_path)
    run_id = waiting_run(first, db, background, "--lease-ttl", "1")
    background[-1].process.kill()  # SIGKILL: the process dies holding the run
    background[-1].wait()
    approve(run_id, db, second)

    resumed = runkon("resume", run_id, "--db", str(db), cwd=second, timeout=30)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (
        f"actions: directory {first / 'acts'}/ (as the run was started); working directory {first}"
    ) in resumed.stdout
    assert "step 'finish' completed" in resumed.stdout
    assert (first / "finished.txt").read_text() == "acts\n"
    assert Path((first / "note.txt").read_text().strip()).samefile(first)
    assert (first / "tidy.txt").read_text() == "completed\n"
    assert sorted(path.name for path in second.iterdir()) == []
    shown = runkon("show", run_id, "--db", str(db), cwd=second).stdout
    assert re.search(rf"^workdir\s+{re.escape(str(first))}$", shown, re.M), shown
    assert re.search(r"^actions\s+acts$", shown, re.M), shown


def test_an_explicit_actions_flag_overrides_the_runs_own(
    tmp_path: Path, background: list[Background]
) -> None:
    first, second, db = project(tmp_path)
    write_actions(second / "partial", {"prepare": "true"})
    write_actions(second / "other", {"prepare": "true", "finish": "echo other > finished.txt"})
    run_id = waiting_run(first, db, background)
    background[-1].signal(signal.SIGINT)
    assert background[-1].wait() == 130

    refused = runkon("resume", run_id, "--actions", "partial", "--db", str(db), cwd=second)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "'finish'" in refused.stderr
    assert "Traceback" not in refused.stderr

    approve(run_id, db, second)
    resumed = runkon("resume", run_id, "--actions", "other", "--db", str(db), cwd=second)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"actions: directory other/ (--actions); working directory {first}" in resumed.stdout
    assert (first / "finished.txt").read_text() == "other\n"  # their program, the run's dir


def test_a_gone_working_directory_is_refused_and_the_run_stays_resumable(
    tmp_path: Path, background: list[Background]
) -> None:
    first, second, db = project(tmp_path)
    run_id = waiting_run(first, db, background)
    background[-1].signal(signal.SIGINT)
    assert background[-1].wait() == 130
    moved = tmp_path / "A-moved"
    first.rename(moved)

    for command in ("resume", "cancel"):
        refused = runkon(command, run_id, "--db", str(db), cwd=second)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert run_id in line
        assert f"{str(first)!r}, which is no longer a directory" in line
    listed = runkon("runs", "--db", str(db), cwd=second)
    assert re.search(rf"^{run_id}\s+here\s+stalled\s", listed.stdout, re.M), listed.stdout

    moved.rename(first)  # back: the cancellation requested meanwhile is finished
    resumed = runkon("resume", run_id, "--db", str(db), cwd=second, timeout=30)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert (first / "tidy.txt").read_text() == "cancelled\n"
    shown = runkon("show", run_id, "--db", str(db), cwd=second)
    assert re.search(r"^status\s+cancelled", shown.stdout, re.M), shown.stdout


def test_cancel_from_elsewhere_runs_the_always_block_in_the_runs_directory(
    tmp_path: Path, background: list[Background]
) -> None:
    first, second, db = project(tmp_path)
    run_id = waiting_run(first, db, background)
    background[-1].signal(signal.SIGINT)
    assert background[-1].wait() == 130

    cancelled = runkon("cancel", run_id, "--db", str(db), cwd=second, timeout=30)

    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert (
        f"finishing the cancellation here: actions: directory {first / 'acts'}/ "
        f"(as the run was started); working directory {first}"
    ) in cancelled.stdout
    assert f"run {run_id} cancelled" in cancelled.stdout
    assert (first / "tidy.txt").read_text() == "cancelled\n"
    assert list(second.iterdir()) == []


def test_serve_started_elsewhere_recovers_a_run_with_its_actions_and_directory(
    tmp_path: Path, background: list[Background]
) -> None:
    first, second, db = project(tmp_path)
    run_id = waiting_run(first, db, background, "--lease-ttl", "1")
    background[-1].process.kill()
    background[-1].wait()
    run_json(db, second, until=lambda run: run["stalled"])  # the dead process's claim ran out

    server = Background("serve", "--port", "0", "--db", str(db), cwd=second)
    background.append(server)
    server.wait_for(
        rf"^recovering run {run_id} with actions: directory {re.escape(str(first / 'acts'))}/ "
        rf"\(as the run was started\); working directory {re.escape(str(first))}$"
    )
    server.wait_for(r"API:\s+http://")
    approve(run_id, db, second)
    finished = run_json(db, second, until=lambda run: run["status"] != "waiting")
    assert finished["status"] == "completed", server.stdout + server.stderr
    server.signal(signal.SIGINT)
    assert server.wait() == 0, server.stderr
    assert (first / "finished.txt").read_text() == "acts\n"
    assert Path((first / "note.txt").read_text().strip()).samefile(first)
    assert list(second.iterdir()) == []


ACTIONS_MODULE = """
from runkon import ActionOutput


async def prepare(ctx, params):
    return ActionOutput(context="prepared")


async def finish(ctx, params):
    (ctx.working_dir / "finished.txt").write_text("module\\n")
    return ActionOutput(context="finished")


actions = {"prepare": prepare, "finish": finish}
"""


def test_resume_from_elsewhere_imports_the_runs_actions_module_from_its_directory(
    tmp_path: Path, background: list[Background]
) -> None:
    first, second, db = project(tmp_path)
    (first / "flowactions.py").write_text(ACTIONS_MODULE)
    run = Background("run", "flow.wf", "--actions", "flowactions", "--db", str(db), cwd=first)
    background.append(run)
    run_id = run.wait_for(r"^run (\w+) started: workflow 'here'").group(1)
    run.wait_for(r"gate 'go' waits")
    run.signal(signal.SIGINT)
    assert run.wait() == 130
    approve(run_id, db, second)

    resumed = runkon("resume", run_id, "--db", str(db), cwd=second, timeout=30)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (
        f"actions: module flowactions (from {first}) (as the run was started); "
        f"working directory {first}"
    ) in resumed.stdout
    assert (first / "finished.txt").read_text() == "module\n"
    assert list(second.iterdir()) == []
