"""runkon prints nothing unless the application configures logging (issue 10.4).

Its loggers (``runkon.engine``, ``runkon.persistence``, ...) go through the standard
``logging`` module, or through structlog's configuration when the application has one.
The README's Quickstart, run as a program, prints exactly what it prints itself.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import structlog
import structlog.testing

import runkon
from runkon.engine import ActionOutput, FlowEngine
from runkon.events import StructlogSink
from runkon.persistence import InMemoryStore, SqliteStore

README = Path(__file__).resolve().parent.parent / "README.md"

# Runs a program, recording what the program's own print() calls (not the library's)
# write to stdout in printed.txt.
RECORDING = """
import builtins, io, os, runpy, sys
program = os.path.abspath(sys.argv[1])
printed = io.StringIO()
original = builtins.print
def recording_print(*args, **kwargs):
    caller = os.path.abspath(sys._getframe(1).f_code.co_filename)
    if caller == program and kwargs.get("file") in (None, sys.stdout):
        original(*args, **{**kwargs, "file": printed})
    original(*args, **kwargs)
builtins.print = recording_print
try:
    runpy.run_path(program, run_name="__main__")
finally:
    with open("printed.txt", "w") as out:
        out.write(printed.getvalue())
"""


def quickstart() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(block for block in blocks if "FlowEngine" in block)


def run_program(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "program.py").write_text(code, encoding="utf-8")
    (tmp_path / "recording.py").write_text(RECORDING, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "recording.py", "program.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )


def test_the_quickstart_prints_exactly_what_it_prints(tmp_path: Path) -> None:
    result = run_program(tmp_path, quickstart())
    assert result.returncode == 0, result.stderr
    printed = (tmp_path / "printed.txt").read_text()
    assert printed.strip().splitlines()[-1] == "completed"
    assert result.stdout == printed  # no "[info] run finished ..." from the library
    assert result.stderr == ""


def test_no_warning_reaches_stderr_without_logging_configuration(tmp_path: Path) -> None:
    """Python's last-resort handler would print warnings; runkon's NullHandler stops it."""
    program = textwrap.dedent(
        """
        import anyio, runkon

        async def agent(ctx, params):  # a metric that is not a number: runkon warns
            return runkon.ActionOutput(metadata={"cost_usd": "a lot"})

        async def main():
            async with runkon.FlowEngine(runkon.InMemoryStore(), fallback_action=agent) as e:
                print((await e.run(runkon.parse_workflow("workflow w { call a }"))).status)

        anyio.run(main)
        """
    )
    result = run_program(tmp_path, program)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("completed\n", "")

    configured = run_program(tmp_path, "import logging\nlogging.basicConfig()\n" + program)
    assert "WARNING:runkon.engine:non-numeric metric ignored key=cost_usd" in configured.stderr


def test_with_basic_config_the_run_finished_record_goes_through_logging(tmp_path: Path) -> None:
    program = "import logging\nlogging.basicConfig(level=logging.INFO)\n" + quickstart()
    result = run_program(tmp_path, program)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (tmp_path / "printed.txt").read_text()

    async def run_id() -> str:
        async with SqliteStore(tmp_path / "runs.db") as store:
            [run] = await store.list_runs()
            return run.id

    finished = f"INFO:runkon.engine:run finished run_id={anyio.run(run_id)} workflow=review "
    assert finished + "status=completed" in result.stderr


@pytest.fixture
def structlog_unconfigured() -> Iterator[None]:
    """structlog as in an application that never configured it."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


async def agent(ctx: object, params: object) -> ActionOutput:
    return ActionOutput()


@pytest.mark.usefixtures("structlog_unconfigured")
async def test_records_carry_their_fields_as_attributes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runkon")
    async with FlowEngine(InMemoryStore(), fallback_action=agent) as engine:
        result = await engine.run(runkon.parse_workflow("workflow w { call a }"))
    [record] = [r for r in caplog.records if r.getMessage().startswith("run finished")]
    assert record.name == "runkon.engine"
    assert record.levelno == logging.INFO
    assert record.run_id == result.run_id  # type: ignore[attr-defined]
    assert record.status == "completed"  # type: ignore[attr-defined]
    assert record.funcName == "_record_outcome"  # where runkon logged it, not the wrapper


@pytest.mark.usefixtures("structlog_unconfigured")
async def test_a_structlog_configuration_of_the_application_decides() -> None:
    with structlog.testing.capture_logs() as logs:
        async with FlowEngine(InMemoryStore(), fallback_action=agent) as engine:
            result = await engine.run(runkon.parse_workflow("workflow w { call a }"))
    [finished] = [entry for entry in logs if entry["event"] == "run finished"]
    assert finished["run_id"] == result.run_id
    assert finished["log_level"] == "info"


@pytest.mark.usefixtures("structlog_unconfigured")
async def test_the_structlog_sink_logs_through_runkons_logger(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="runkon.events")
    async with FlowEngine(
        InMemoryStore(), fallback_action=agent, event_sinks=[StructlogSink()]
    ) as engine:
        result = await engine.run(runkon.parse_workflow("workflow w { call a }"))
    types = [r.getMessage().split(" ")[0] for r in caplog.records if r.name == "runkon.events"]
    assert types[0] == "run_started"
    assert "run_completed" in types
    assert all(
        r.run_id == result.run_id  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "runkon.events"
    )
    assert capsys.readouterr() == ("", "")
