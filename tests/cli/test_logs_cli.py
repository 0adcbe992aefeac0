"""``runkon logs RUN [STEP]`` and what ``runkon show`` says of each step: inputs,
attempts, error, duration, and how much its programs wrote."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from ._support import PYTHON_M, runkon

BOTH = r"""workflow w {
  inputs { who required }
  script greet { run = "echo hello {{who}}; echo careful >&2; printf 'x\\033[31my\\n'" }
  script quiet { run = "true" }
  call report
}
"""


def started(ran_stdout: str) -> str:
    found = re.search(r"^run (\w+) started", ran_stdout, re.M)
    assert found is not None, ran_stdout
    return found.group(1)


def make_actions(tmp_path: Path) -> None:
    actions = tmp_path / "actions"
    actions.mkdir()
    report = actions / "report.sh"
    report.write_text("#!/bin/sh\necho report for $RUNKON_WHO\necho 'report warning' >&2\n")
    report.chmod(report.stat().st_mode | stat.S_IXUSR)


def test_logs_prints_each_steps_stdout_and_stderr_under_a_header(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text(BOTH)
    make_actions(tmp_path)
    ran = runkon("run", "w.wf", "--input", "who=Ada", "--db", "runs.db", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = started(ran.stdout)

    logs = runkon("logs", run_id[:8], "--db", "runs.db", cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == [
        "==> step greet (#1, completed) stdout <==",
        "hello Ada",
        r"x\x1b[31my",
        "==> step greet (#1, completed) stderr <==",
        "careful",
        "==> step report (#3, completed) stdout <==",
        "report for Ada",
        "==> step report (#3, completed) stderr <==",
        "report warning",
    ]

    one = runkon("logs", run_id, "report", "--db", "runs.db", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[0] == "==> step report (#3, completed) stdout <=="
    assert "greet" not in one.stdout
    assert runkon("logs", run_id, "#1", "--db", "runs.db", cwd=tmp_path).stdout.startswith(
        "==> step greet (#1, completed) stdout <==\n"
    )

    raw = runkon("logs", run_id, "greet", "--raw", "--db", "runs.db", cwd=tmp_path)
    assert (raw.stdout, raw.stderr) == ("hello Ada\nx\x1b[31my\n", "careful\n")

    quiet = runkon("logs", run_id, "quiet", "--db", "runs.db", cwd=tmp_path)
    assert quiet.returncode == 0
    assert quiet.stdout == ""
    assert "step 'quiet': its programs wrote nothing" in quiet.stderr

    [greet, report] = [
        json.loads(line)
        for line in runkon("logs", run_id, "--json", "--db", "runs.db", cwd=tmp_path)
        .stdout.replace('"quiet"', "")
        .splitlines()
        if '"greet"' in line or '"report"' in line
    ]
    assert greet["stdout"] == "hello Ada\nx\x1b[31my\n"
    assert (greet["number"], greet["truncated"], greet["stdout_dropped_bytes"]) == (1, False, 0)
    assert report["stderr"] == "report warning\n"


def test_logs_of_a_long_output_shows_the_tail_and_says_it_was_truncated(tmp_path: Path) -> None:
    # 20,000 numbered lines (108,894 bytes): more than the default 64 KiB bound.
    (tmp_path / "w.wf").write_text('workflow w { script big { run = "seq 1 20000" } }\n')
    ran = runkon("run", "w.wf", "--db", "runs.db", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = started(ran.stdout)

    logs = runkon("logs", run_id, "big", "--db", "runs.db", cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    total = sum(len(f"{n}\n") for n in range(1, 20001))
    assert lines[0] == "==> step big (#1, completed) stdout <=="
    assert lines[1] == f"[truncated: {total - 65536} earlier bytes of stdout were not kept]"
    assert lines[-1] == "20000"
    assert "1" not in lines  # the start is gone
    assert len("\n".join(lines[2:]).encode()) + 1 <= 65536

    shown = runkon("show", run_id, "--db", "runs.db", cwd=tmp_path)
    assert re.search(
        rf"{total - 65536} earlier bytes not kept \({PYTHON_M} logs {run_id} 1 --db runs.db\)",
        shown.stdout,
    )


def test_logs_of_an_unknown_step_exits_2_naming_the_steps(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text('workflow w { script build { run = "echo hi" } }\n')
    ran = runkon("run", "w.wf", "--db", "runs.db", cwd=tmp_path)
    run_id = started(ran.stdout)

    for which in ("deploy", "7"):
        logs = runkon("logs", run_id, which, "--db", "runs.db", cwd=tmp_path)
        assert logs.returncode == 2
        assert logs.stdout == ""
        assert re.fullmatch(
            re.escape(
                f"runkon: run {run_id} has no step {which!r}; give a step name, its number in "
            )
            + f"`{PYTHON_M} show {run_id}`"
            + re.escape(" or its id (its steps: 'build')"),
            logs.stderr.strip(),
        ), logs.stderr
    unknown_run = runkon("logs", "01NOSUCHRUN", "--db", "runs.db", cwd=tmp_path)
    assert unknown_run.returncode == 2
    assert "unknown run '01NOSUCHRUN'" in unknown_run.stderr


FLAKY = r"""workflow w {
  inputs { ticket required }
  script flaky {
    run = "sh flaky.sh {{ticket}}"
    retries = 2
  }
}
"""


def test_show_gives_each_steps_inputs_error_attempts_and_duration(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text(FLAKY)
    (tmp_path / "flaky.sh").write_text(
        "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; echo try $1 $n\n"
        "test $n -ge 1 || { echo 'not yet' >&2; exit 3; }\n"
    )
    ran = runkon("run", "w.wf", "--input", "ticket=T-7", "--db", "runs.db", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = started(ran.stdout)

    shown = runkon("show", run_id, "--db", "runs.db", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.split("step flaky (#1, failed)\n", 1)[1].split("\n\n", 1)[0]
    lines = first.splitlines()
    assert lines[:2] == ["  inputs:", "    ticket = T-7"]
    assert "  error:" in lines
    assert "    script 'flaky' exited with code 3" in lines
    assert "    not yet" in lines
    attempts = lines[lines.index("  attempts:") + 1 : lines.index("  attempts:") + 3]
    assert re.fullmatch(
        r"    1\. failed after \d+\.\ds: script 'flaky' exited with code 3 not yet", attempts[0]
    ), attempts
    assert re.fullmatch(r"    2\. completed after \d+\.\ds", attempts[1]), attempts
    assert re.search(
        rf"stdout 1 line; stderr 1 line \({PYTHON_M} logs {run_id} 1 --db runs.db\)", first
    )

    answer = json.loads(runkon("show", run_id, "--json", "--db", "runs.db", cwd=tmp_path).stdout)
    failed, completed = answer["steps"]
    assert failed["inputs"] == {"ticket": "T-7"}
    assert failed["error"].startswith("script 'flaky' exited with code 3")
    assert isinstance(failed["duration_ms"], int)
    assert failed["duration_ms"] >= 0
    assert [(a["attempt"], a["status"]) for a in failed["attempts"]] == [
        (1, "failed"),
        (2, "completed"),
    ]
    assert failed["attempts"] == completed["attempts"]
    assert failed["attempts"][0]["error"] == failed["error"]
    assert completed["error"] is None
