"""``runkon show RUN``: each step's output under the step table."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ._support import PYTHON_M, runkon

HOSTILE = r"""workflow w {
  script a { run = "printf \"hi\\033[31mred\\nline2\"" }
}
"""


def test_show_prints_step_output_with_control_characters_escaped(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text(HOSTILE)
    ran = runkon("run", "w.wf", "--db", "runs.db", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    run_id = re.search(r"^run (\w+) started", ran.stdout, re.M)
    assert run_id is not None, ran.stdout

    shown = runkon("show", run_id.group(1), "--db", "runs.db", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    output = shown.stdout.split("step a (#1, completed)\n", 1)[1]
    assert output.splitlines()[:-1] == [
        "  result:",
        "    script 'a' completed",
        "  context:",
        r"    hi\x1b[31mred",
        "    line2",
        "  logs:",
    ]
    assert re.fullmatch(
        rf"    stdout 2 lines \({PYTHON_M} logs {run_id.group(1)} 1 --db runs.db\)",
        output.splitlines()[-1],
    ), output


def test_show_json_has_each_steps_output(tmp_path: Path) -> None:
    (tmp_path / "w.wf").write_text(HOSTILE)
    ran = runkon("run", "w.wf", "--db", "runs.db", cwd=tmp_path)
    run_id = re.search(r"^run (\w+) started", ran.stdout, re.M)
    assert run_id is not None, ran.stdout

    shown = runkon("show", run_id.group(1), "--json", "--db", "runs.db", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    assert answer["id"] == run_id.group(1)
    assert answer["status"] == "completed"
    [step] = answer["steps"]
    assert step["name"] == "a"
    assert step["kind"] == "script"
    assert step["status"] == "completed"
    assert step["context_out"] == "hi\x1b[31mred\nline2"
    assert step["gate"] is None
