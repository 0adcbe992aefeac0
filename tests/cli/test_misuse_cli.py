"""Every misuse of ``runkon`` gets a clear one-line message and exit 2, never a traceback;
read commands never create a database."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from runkon.cli import main

from ._support import runkon

NEEDS_TICKET = """workflow needs {
  inputs { ticket required  fast boolean }
  script hello { run = "echo hello {{ticket}}" }
}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with workflows and a database holding one completed run."""
    path = tmp_path_factory.mktemp("misuse")
    (path / "needs.wf").write_text(NEEDS_TICKET)
    (path / "bad.wf").write_text("workflow bad {\n  call plan { retires = 2 }\n}\n")
    (path / "a-dir").mkdir()
    done = runkon("run", "needs.wf", "-i", "ticket=T-1", "--db", "runs.db", cwd=path)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope.wf"], "runkon: cannot read 'nope.wf': no such file"),
        (["run", "needs.wf", "--input", "ticket"], "--input 'ticket' is not KEY=VALUE"),
        (["run", "needs.wf", "-i", "ticket=1", "-i", "ticket=2"], "'ticket' is given twice"),
        (["run", "needs.wf", "-i", "ticket=1", "-i", "tiket=2"], "unknown input 'tiket'"),
        (["run", "needs.wf"], "missing required input 'ticket'"),
        (["run", "needs.wf", "-i", "ticket=1", "-i", "fast=maybe"], "must be true or false"),
        (["run", "bad.wf"], "bad.wf:2:15: unknown option 'retires' for call 'plan'"),
        (["run", "needs.wf", "-i", "ticket=1", "--db", "a-dir"], "--db 'a-dir' is a directory"),
        (["run", "needs.wf", "--actions", "no_such_actions"], "no module named"),
        (["run", "needs.wf", "--lease-ttl", "0"], "give between 0.5 and 3600 seconds"),
        (["show", "NOPE", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["show", "NOPENOPE", "--db", "runs.db"], "runkon: unknown run 'NOPENOPE'"),
        (["events", "NOPE", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["approve", "NOPE", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["reject", "NOPE", "g", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["cancel", "NOPE", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["resume", "NOPE", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["gates", "--run", "NOPE", "--db", "runs.db"], "prefix 'NOPE' is too short"),
        (["runs", "--status", "bogus", "--db", "runs.db"], "invalid choice: 'bogus'"),
        (["runs", "--limit", "0", "--db", "runs.db"], "give at least 1"),
        (["runs", "--db", "bad.wf"], "runkon: database 'bad.wf' failed"),
        ([], "usage: runkon"),
    ],
)
def test_misuse_exits_two_with_a_clear_message(
    workdir: Path, args: list[str], message: str
) -> None:
    result = runkon(*args, cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["show", "X"],
        ["gates"],
        ["events", "X", "--follow"],
        ["approve", "X", "g"],
        ["reject", "X"],
        ["cancel", "X"],
        ["resume", "X"],
    ],
)
def test_read_and_decide_commands_never_create_a_database(tmp_path: Path, args: list[str]) -> None:
    result = runkon(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "runkon: no database at 'runkon.db'; start a run with `runkon run FILE" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_decisions_on_a_finished_run_are_refused(workdir: Path) -> None:
    run_id = runkon("runs", "--json", "--db", "runs.db", cwd=workdir).stdout.split('"')[3]
    approve = runkon("approve", run_id, "--db", "runs.db", cwd=workdir)
    assert approve.returncode == 1
    assert f"run {run_id} has no gate waiting (it is completed)" in approve.stderr
    unknown_gate = runkon("approve", run_id, "nope", "--db", "runs.db", cwd=workdir)
    assert unknown_gate.returncode == 2
    assert f"run {run_id} has no gate 'nope' (no gate is waiting now)" in unknown_gate.stderr


def test_listings_of_an_existing_database(workdir: Path) -> None:
    runs = runkon("runs", "--db", "runs.db", cwd=workdir)
    assert runs.returncode == 0
    assert runs.stdout.splitlines()[0].split() == [
        "id", "workflow", "status", "started", "duration", "blocked", "on"
    ]  # fmt: skip
    assert " needs " in runs.stdout
    assert " completed " in runs.stdout
    filtered = runkon("runs", "--workflow", "other", "--db", "runs.db", cwd=workdir)
    assert filtered.returncode == 0
    assert filtered.stdout == ""
    assert "no runs match" in filtered.stderr
    gates = runkon("gates", "--db", "runs.db", cwd=workdir)
    assert gates.returncode == 0
    assert "no gate is waiting" in gates.stderr


@pytest.mark.parametrize(
    "command",
    ["run", "resume", "runs", "show", "gates", "approve", "reject", "cancel", "events", "serve"],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: runkon {command}" in capsys.readouterr().out


def test_an_input_that_is_not_utf8_exits_two(workdir: Path) -> None:
    undecodable = os.fsdecode(b"ticket=\xff")  # the bytes reach the process as given
    result = runkon("run", "needs.wf", "-i", undecodable, "--db", "utf.db", cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--input 'ticket=\\xff' is not valid UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["show"],
        ["events"],
        ["approve"],
        ["reject", "RUN", "g"],
        ["cancel"],
        ["resume"],
        ["gates", "--run"],
    ],
)
def test_a_short_run_id_prefix_says_it_needs_six_characters(
    workdir: Path, command: list[str]
) -> None:
    listed = runkon("runs", "--db", "runs.db", cwd=workdir)
    short = re.search(r"^(01\w+)", listed.stdout, re.M)
    assert short is not None, listed.stdout
    args = [short.group(1)[:4] if a == "RUN" else a for a in command]
    if "RUN" not in command:
        args.append(short.group(1)[:4])
    result = runkon(*args, "--db", "runs.db", cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"run id prefix {short.group(1)[:4]!r} is too short" in result.stderr
    assert "6+ characters" in result.stderr
