"""The CLI fits the terminal: tables cut to its width with "…", colour and status symbols
on a terminal (none with NO_COLOR, none piped), and hints naming the command as run."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from runkon.cli._table import fit_widths

from ._support import PYTHON_M, WAIT, Background, cli_env, runkon

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG = """workflow a-workflow-with-a-rather-long-name-for-a-narrow-terminal {
  script say-hello-to-everyone-in-the-whole-wide-world { run = "echo hi" }
  script fails-badly {
    run = "sh fail.sh"
  }
}
"""
GATED = """workflow gated-workflow-with-a-long-name {
  gate approve-the-release-of-the-thing {
    type    = human_approval
    prompt  = "Release the thing to everyone, everywhere, all at once, right now?"
    options = ["ship", "hold"]
  }
}
"""


def on_terminal(
    *args: str,
    cwd: Path,
    columns: int,
    command: tuple[str, ...] = (),
    exit_code: int = 0,
    **env: str,
) -> str:
    """``runkon ARGS`` with a pseudo-terminal of ``columns`` columns as its stdout and
    stderr; everything it wrote, escape codes included ("\\r\\n" as "\\n")."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    environ = cli_env(TERM="xterm-256color", PYTHONUTF8="1", **env)
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR"):
        if name not in env:
            environ.pop(name, None)
    process = subprocess.Popen(
        [*(command or (sys.executable, "-m", "runkon.cli")), *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=environ,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        process.wait(timeout=WAIT)
    assert process.returncode == exit_code, output.decode(errors="replace")
    return output.decode().replace("\r\n", "\n")


def plain_lines(output: str) -> list[str]:
    return ESCAPE.sub("", output).splitlines()


def _fitted(lines: list[str]) -> list[str]:
    """The lines laid out to the terminal: `runs`, `gates` and `show`'s header and table,
    not the hint after a table (commands are never cut) nor `show`'s step output."""
    if "" in lines and lines[0].startswith("run "):  # gates: the table, then a hint
        return lines[: lines.index("")]
    ends = [index for index, line in enumerate(lines) if line.startswith("step ")]
    return lines[: ends[0]] if ends else lines


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A database with a failed run (long names, a long error) and a run whose gate
    waits (its process stopped); returns the directory and the two run ids. The tests
    only read it."""
    tmp_path = tmp_path_factory.mktemp("terminal")
    (tmp_path / "long.wf").write_text(LONG)
    (tmp_path / "fail.sh").write_text(
        "printf '\\033[31mred alert\\033[0m and a long message that goes on\\n' >&2; exit 3\n"
    )
    (tmp_path / "gated.wf").write_text(GATED)
    failed = runkon("run", "long.wf", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    failed_id = re.search(r"^run (\w+) started", failed.stdout, re.M).group(1)  # type: ignore[union-attr]
    waiting = Background("run", "gated.wf", cwd=tmp_path)
    try:
        waiting_id = waiting.wait_for(r"^run (\w+) started").group(1)
        waiting.wait_for(r"approve: ")
    finally:
        waiting.stop()
    return tmp_path, failed_id, waiting_id


def test_a_60_column_terminal_gets_tables_cut_with_an_ellipsis_in_colour(
    runs_db: tuple[Path, str, str],
) -> None:
    root, failed_id, waiting_id = runs_db
    for args in (["runs"], ["gates"], ["show", failed_id]):
        output = on_terminal(*args, cwd=root, columns=60)
        lines = plain_lines(output)
        assert max(len(line) for line in _fitted(lines)) <= 60, "\n".join(lines)
        assert "…" in output, output
        assert "\x1b[" in output, output  # colour
        assert not any(line != line.rstrip() for line in lines)
        if args[0] != "gates":
            assert "✗ failed" in ESCAPE.sub("", output)  # the status symbol
    shown = plain_lines(on_terminal("show", failed_id, cwd=root, columns=60))
    table = shown[shown.index(next(line for line in shown if line.startswith("#"))) :]
    assert re.match(r"1\s+say\S*…\s+\S+\s+✓ completed\s", table[1]), table
    runs = plain_lines(on_terminal("runs", cwd=root, columns=60))
    assert any(line.startswith(waiting_id[:10]) for line in runs), runs  # a usable prefix


def test_no_colour_with_no_color_set_but_still_fitted(runs_db: tuple[Path, str, str]) -> None:
    root, failed_id, _ = runs_db
    for args in (["runs"], ["gates"], ["show", failed_id]):
        output = on_terminal(*args, cwd=root, columns=60, NO_COLOR="1")
        assert "\x1b" not in output, output
        assert max(len(line) for line in _fitted(output.splitlines())) <= 60, output
        assert "…" in output, output


def test_piped_output_is_plain_whole_and_aligned(runs_db: tuple[Path, str, str]) -> None:
    root, failed_id, _ = runs_db
    listed = runkon("runs", cwd=root, COLUMNS="60")
    assert "\x1b" not in listed.stdout
    assert "…" not in listed.stdout
    assert re.search(
        rf"^{failed_id}  a-workflow-with-a-rather-long-name-for-a-narrow-terminal  failed  ",
        listed.stdout,
        re.M,
    )
    assert listed.stdout.splitlines()[0].split() == [
        "id", "workflow", "status", "started", "duration", "blocked", "on"
    ]  # fmt: skip
    gates = runkon("gates", cwd=root).stdout
    assert "\x1b" not in gates
    assert "Release the thing to everyone, everyw..." in gates  # cut at 40, as before
    shown = runkon("show", failed_id, cwd=root).stdout
    assert "\x1b" not in shown
    assert "say-hello-to-everyone-in-the-whole-wide-world  script  completed" in shown


def test_escape_sequences_in_a_step_error_are_shown_escaped_in_the_table(
    runs_db: tuple[Path, str, str],
) -> None:
    root, failed_id, _ = runs_db
    shown = runkon("show", failed_id, cwd=root).stdout
    assert "\x1b" not in shown
    assert "exited with code 3 \\x1b[31mred alert" in shown


def test_run_progress_is_coloured_on_a_terminal_only(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text(
        'workflow w { script ok { run = "true" }  script boom { run = "sh boom.sh" } }'
    )
    (tmp_path / "boom.sh").write_text("printf '\\033[2J' >&2; exit 3\n")
    coloured = on_terminal("run", "w.wf", "--db", "a.db", cwd=tmp_path, columns=80, exit_code=1)
    assert re.search(r"\x1b\[32m\d\d:\d\d:\d\d  step 'ok' completed", coloured), coloured
    assert re.search(r"\x1b\[1;31m\d\d:\d\d:\d\d  step 'boom' failed", coloured), coloured
    assert "\x1b[2J" not in coloured  # the script's escape sequence is shown escaped
    plain = on_terminal(
        "run", "w.wf", "--db", "b.db", cwd=tmp_path, columns=80, exit_code=1, NO_COLOR="1"
    )
    assert "\x1b" not in plain, plain
    assert "step 'boom' failed: script 'boom' exited with code 3 \\x1b[2J" in plain, plain


def test_column_widths_shrink_the_marked_columns_first() -> None:
    # id 26 (kept), workflow 41 (shrinks to 8 first), status 8
    assert fit_widths([26, 41, 8], [[26, 8, 8], [11, 8, 8]], 60) == [26, 26, 8]
    assert fit_widths([26, 41, 8], [[26, 8, 8], [11, 8, 8]], 40) == [24, 8, 8]
    assert fit_widths([26, 41, 8], [[26, 8, 8], [11, 8, 8]], 20) == [6, 7, 7]
    assert fit_widths([3, 4], [[3, 4]], 60) == [3, 4]


# --------------------------------------------------------------------------- the gate hint


def _hint(*args: str, cwd: Path, command: tuple[str, ...], path: str) -> str:
    """The `approve:` hint ``runkon run gated.wf`` prints, started as ``command``."""
    run = Background("run", "gated.wf", *args, cwd=cwd, command=command, PATH=path)
    try:
        return run.wait_for(r"approve: (.*)").group(1)
    finally:
        run.stop()


def _venv_runkon() -> Path:
    script = Path(sys.executable).parent / "runkon"
    if not script.exists():
        pytest.skip("runkon's console script is not installed beside this Python")
    return script


def test_the_gate_hint_names_runkon_by_the_path_it_was_run_by(tmp_path: Path) -> None:
    script = _venv_runkon()
    (tmp_path / "gated.wf").write_text(GATED)
    typed = os.path.relpath(script, tmp_path)  # e.g. ../../work/.venv/bin/runkon
    empty = tmp_path / "bin"
    empty.mkdir()
    hint = _hint(cwd=tmp_path, command=(typed,), path=str(empty))  # not on PATH
    assert re.fullmatch(
        rf"{re.escape(shlex.quote(typed))} approve \w+ approve-the-release-of-the-thing "
        r"\[?--select ship\|hold\]? \[--feedback TEXT\]",
        hint,
    ), hint


def test_the_gate_hint_says_runkon_when_that_is_on_path(tmp_path: Path) -> None:
    script = _venv_runkon()
    (tmp_path / "gated.wf").write_text(GATED)
    path = f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    hint = _hint("--db", "x.db", cwd=tmp_path, command=("runkon",), path=path)
    assert hint.startswith("runkon approve "), hint
    assert re.fullmatch(
        r"runkon approve \w+ approve-the-release-of-the-thing --db x\.db "
        r"\[?--select ship\|hold\]? \[--feedback TEXT\]",
        hint,
    ), hint


def test_the_gate_hint_names_python_m_runkon_cli_when_run_so(tmp_path: Path) -> None:
    (tmp_path / "gated.wf").write_text(GATED)
    empty = tmp_path / "bin"
    empty.mkdir()
    hint = _hint(
        cwd=tmp_path, command=(sys.executable, "-m", "runkon.cli"), path=str(empty)
    )  # the interpreter by its path, not on PATH
    assert hint.startswith(f"{shlex.quote(sys.executable)} -m runkon.cli approve "), hint
    python = Path(sys.executable)
    hint = _hint(cwd=tmp_path, command=(python.name, "-m", "runkon.cli"), path=str(python.parent))
    assert hint.startswith(f"{python.name} -m runkon.cli approve "), hint  # typed by name
    listed = runkon("gates", cwd=tmp_path, command=(python.name, "-m", "runkon.cli"),
                    PATH=str(python.parent))  # fmt: skip
    assert f"decide: {python.name} -m runkon.cli approve RUN GATE" in listed.stdout


def test_resume_refused_by_a_live_run_names_the_command_and_database(tmp_path: Path) -> None:
    (tmp_path / "gated.wf").write_text(GATED)
    run = Background("run", "gated.wf", "--db", "runs.db", "--lease-ttl", "3600", cwd=tmp_path)
    try:
        run_id = run.wait_for(r"^run (\w+) started").group(1)
        run.wait_for(r"approve: ")
        refused = runkon("resume", run_id, "--db", "runs.db", cwd=tmp_path)
    finally:
        run.stop()
    assert refused.returncode == 1, refused.stderr
    assert re.search(
        rf"follow the run with `{PYTHON_M} events {run_id} --follow --db runs.db`", refused.stderr
    ), refused.stderr
