"""The README's quickstart runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runkon

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs_and_completes(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    quickstart = next(block for block in blocks if "FlowEngine" in block)
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "completed"
    assert "human_approval" in result.stdout  # the inbox listed the waiting gate
    assert (tmp_path / "runs.db").exists()


def test_the_cli_actions_module_example_runs(tmp_path: Path) -> None:
    """The `--actions` module shown in the README's CLI section works as written."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    module = next(block for block in blocks if "fallback_action = None" in block)
    (tmp_path / "acts.py").write_text(textwrap.dedent(module), encoding="utf-8")
    (tmp_path / "flow.wf").write_text(
        "workflow w { inputs { ticket required } call plan  if plan.risky { call plan } }"
    )
    result = subprocess.run(
        [sys.executable, "-m", "runkon.cli", "run", "flow.wf", "-i", "ticket=T-1",
         "--actions", "acts.py", "--db", "runs.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("step 'plan' completed") == 2  # the marker made it run again
    assert "[risky]" in result.stdout


def test_the_readme_test_command_installs_the_browser_itself() -> None:
    """`scripts/test` (the README's test command) sets up a fresh machine on its own,
    chromium included; CI only calls it, so there is no CI-only setup step."""
    root = Path(__file__).parent.parent
    test_script = (root / "scripts" / "test").read_text()
    assert "bash scripts/setup" in test_script
    assert "bash scripts/browser" in test_script
    browser = (root / "scripts" / "browser").read_text()
    assert "apt-get install -y -q chromium chromium-driver" in browser
    assert "sudo" in browser
    assert "apt-get" not in (root / ".ci" / "run").read_text()
    result = subprocess.run(
        ["bash", "-n", str(root / "scripts" / "browser")], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_syntax_error_example_is_what_the_quickstart_gives() -> None:
    """The README's error example is the message the Quickstart's workflow gives when its
    `retries` is misspelt `retires` (position included)."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    quickstart = next(block for block in blocks if "FlowEngine" in block)
    [source] = re.findall(r'parse_workflow\(\n    """(.*?)""",', quickstart, re.S)
    [shown] = re.findall(r"```\n(review\.wf:\d+:\d+: .*?)\n```", text)
    with pytest.raises(runkon.DslSyntaxError) as error:
        runkon.parse_workflow(source.replace("retries", "retires"), source="review.wf")
    assert str(error.value) == shown
