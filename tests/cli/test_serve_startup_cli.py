"""``runkon serve`` that cannot start says why in one line and exits non-zero, at once:
no traceback, no hang (issue 14.7). Real ``runkon serve`` processes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ._support import runkon


def one_line_error(result_stderr: str) -> str:
    assert "Traceback" not in result_stderr, result_stderr
    [line] = result_stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("kind", ["not a database", "a directory"])
def test_serve_on_something_that_is_no_database_exits_2_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    if kind == "a directory":
        db = tmp_path / "somedir"
        db.mkdir()
        detail = "unable to open database file"
    else:
        db = tmp_path / "notes.db"
        db.write_text("these are my notes, not a database\n" * 100)
        detail = "file is not a database"

    result = runkon("serve", "--db", str(db), "--port", "0", cwd=tmp_path, timeout=60)

    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line_error(result.stderr)
    assert line.startswith(f"runkon: the server could not start: database {str(db)!r}")
    assert detail in line
    assert "API:" not in result.stdout


def test_serve_on_a_taken_port_exits_1_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runkon("serve", "--db", "runs.db", "--port", str(port), cwd=tmp_path, timeout=60)

    assert result.returncode == 1, result.stdout + result.stderr
    line = one_line_error(result.stderr)
    assert line.startswith(f"runkon: the server could not start on 127.0.0.1:{port}: ")
    assert "address already in use" in line
