"""``runkon validate`` as a user runs it: a real subprocess, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VALID = """workflow greet {
  inputs { who default = "world" }
  call hello { retries = 1 }
  if hello.shouted { call calm-down }
}
"""


def runkon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runkon.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_file_exits_zero_and_prints_no_problem(tmp_path: Path) -> None:
    (tmp_path / "greet.wf").write_text(VALID)
    result = runkon("validate", "greet.wf", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "1 valid" in result.stderr


def test_syntax_error_is_printed_as_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "bad.wf").write_text("workflow bad {\n  call plan { retires = 2 }\n}\n")
    result = runkon("validate", "bad.wf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "bad.wf:2:15: unknown option 'retires' for call 'plan' (hint: did you mean 'retries'?)"
    ]


def test_semantic_error_is_printed_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "sem.wf").write_text("workflow sem {\n  call a\n  if b.done { call c }\n}\n")
    result = runkon("validate", "sem.wf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("sem.wf:3:3: condition references step 'b'")


def test_one_invalid_file_among_valid_ones_exits_one(tmp_path: Path) -> None:
    (tmp_path / "greet.wf").write_text(VALID)
    (tmp_path / "bad.wf").write_text("workflow bad { call a } trailing")
    result = runkon("validate", "greet.wf", "bad.wf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("bad.wf:1:25: unexpected identifier 'trailing'")
    assert "1 valid, 1 invalid" in result.stderr


def test_child_workflows_resolve_from_the_files_directory(tmp_path: Path) -> None:
    (tmp_path / "child.wf").write_text("workflow child { inputs { ticket required } call x }")
    (tmp_path / "parent.wf").write_text(
        'workflow parent { call workflow child { inputs { tiket = "T-1" } } }'
    )
    result = runkon("validate", "parent.wf", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "parent.wf:1:19: sub-workflow 'child' requires input 'ticket'" in lines[0]
    assert "passes input 'tiket'" in lines[1]
    assert "did you mean 'ticket'?" in lines[1]


def test_warnings_fail_only_with_strict(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text("workflow w { meta { trigger = pr } call a }")
    relaxed = runkon("validate", "w.wf", cwd=tmp_path)
    strict = runkon("validate", "--strict", "w.wf", cwd=tmp_path)
    assert relaxed.returncode == 0
    assert "w.wf:1:1: warning: trigger 'pr' is not implemented" in relaxed.stdout
    assert strict.returncode == 1


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runkon("validate", "nope.wf", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read 'nope.wf': no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_arguments_is_a_usage_error(tmp_path: Path) -> None:
    result = runkon("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_non_utf8_file_is_reported_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "bin.wf").write_bytes(b"workflow x {\n  call \xff\n}")
    result = runkon("validate", "bin.wf", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("bin.wf:2:8: file is not UTF-8 text")


def test_a_fifo_or_device_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.wf")
    for path in ("pipe.wf", "/dev/zero"):
        result = runkon("validate", path, cwd=tmp_path)
        assert result.returncode == 2, result
        assert "not a regular file" in result.stderr
        assert "Traceback" not in result.stderr
