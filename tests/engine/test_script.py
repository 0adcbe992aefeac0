"""``script``: ``sh -c`` in the working directory, quoted variables, a guarded
environment, timeouts that kill the process group, retries, FLOW_OUTPUT, stderr."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import anyio
import pytest

from runkon.engine import StepContext, run_program
from runkon.persistence import RunStatus, StepStatus, Store

from ._support import MakeEngine, Recorder, parse, rows, wait_dead


def same_directory(reported: str, expected: Path) -> bool:
    return os.path.samefile(reported, expected)


FLOW = """noise before
<<<FLOW_OUTPUT>>>
{"markers": ["has_issues"], "context": "4 files need fixing", "fixed_count": "0"}
<<<END_FLOW_OUTPUT>>>
"""


async def test_flow_output_of_a_script_sets_markers_context_and_structured_output(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    (tmp_path / "flow.txt").write_text(FLOW)
    wf = parse(
        """
        workflow w {
          script scan { run = "cat flow.txt" }
          if scan.has_issues { call fix }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert rec.names() == ["fix"]
    [scan, _] = await store.get_steps(result.run_id)
    assert scan.status == StepStatus.COMPLETED
    assert scan.kind == "script"
    assert scan.markers_out == ("has_issues",)
    assert scan.context_out == "4 files need fixing"
    assert json.loads(scan.structured_output or "")["fixed_count"] == "0"
    assert rec.of("fix")[0].inputs["prior_context"] == "4 files need fixing"


async def test_without_a_flow_output_block_stdout_is_the_context(
    make_engine: MakeEngine, store: Store
) -> None:
    async with make_engine() as engine:
        result = await engine.run(parse('workflow w { script hello { run = "echo hello; pwd" } }'))

    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.COMPLETED
    assert step.markers_out == ()
    assert step.context_out is not None
    assert step.context_out.startswith("hello\n")


async def test_scripts_run_in_the_engine_working_directory(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    async with make_engine() as engine:
        assert (
            await engine.run(parse('workflow w { script s { run = "pwd > where.txt" } }'))
        ).succeeded
    assert same_directory((tmp_path / "where.txt").read_text().strip(), tmp_path)


async def test_a_non_zero_exit_fails_with_the_code_and_stderr(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    wf = parse(
        """
        workflow w {
          script check { run = "echo out; echo 'lint: 3 errors' >&2; exit 3" }
          call after
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.FAILED
    assert "exited with code 3" in (step.step_error or "")
    assert "lint: 3 errors" in (step.step_error or "")
    assert "lint: 3 errors" in (result.error or "")
    assert rec.calls == []


async def test_a_hostile_value_is_one_shell_word_in_run_and_raw_in_env(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    hostile = "a'b; rm -rf x"
    (tmp_path / "x").write_text("precious")
    wf = parse(
        """
        workflow w {
          inputs { value required }
          script quoted {
            run = "printf '%s' {{value}} > run.txt; printf '%s' \\"$RAW\\" > env.txt"
            env = { RAW = "{{value}}" }
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf, {"value": hostile})

    assert result.succeeded, result.error
    assert (tmp_path / "x").read_text() == "precious"  # nothing was injected
    assert (tmp_path / "run.txt").read_text() == hostile
    assert (tmp_path / "env.txt").read_text() == hostile


HOSTILE = [
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "a\nb; touch pwned",
    "$HOME and ${HOME}",
    "x' \"$(touch pwned)\" 'y",
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_a_value_never_becomes_shell_syntax_in_any_quoting_position(
    make_engine: MakeEngine, tmp_path: Path, hostile: str
) -> None:
    wf = parse(
        """
        workflow w {
          inputs { value required }
          script positions {
            run = "printf '%s' {{value}} > plain.txt
                   printf '%s' \\"<{{value}}>\\" > double.txt
                   printf '%s' '<{{value}}>' > single.txt"
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf, {"value": hostile})

    assert result.succeeded, result.error
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "plain.txt").read_text() == hostile
    assert (tmp_path / "double.txt").read_text() == f"<{hostile}>"
    assert (tmp_path / "single.txt").read_text() == f"<{hostile}>"


async def test_script_environment_inputs_env_block_provider_and_refused_keys(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    asked: list[tuple[str, str | None]] = []

    class EnvProvider:
        async def env(self, ctx: StepContext, as_identity: str | None) -> Mapping[str, str]:
            asked.append((ctx.step_name, as_identity))
            return {"FROM_PROVIDER": "yes", "CI": "true"}

    wf = parse(
        """
        workflow w {
          inputs { ticket required }
          script show {
            run = "env > env.txt"
            as  = builder
            env = {
              GREETING        = "hello {{ticket}}"
              PATH            = "/evil"
              LD_PRELOAD      = "/evil.so"
              GH_TOKEN        = "stolen"
              PYTHONPATH      = "/evil"
              DYLD_INSERT_LIBRARIES = "/evil"
            }
          }
        }
        """
    )
    async with make_engine(script_env=EnvProvider()) as engine:
        result = await engine.run(wf, {"ticket": "T-7"})

    assert result.succeeded, result.error
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "env.txt").read_text().splitlines()
        if "=" in line
    )
    assert env["GREETING"] == "hello T-7"
    assert env["RUNKON_TICKET"] == "T-7"
    assert env["CONDUCTOR_TICKET"] == "T-7"
    assert env["FROM_PROVIDER"] == "yes"
    assert env["PATH"] == os.environ["PATH"]
    assert "LD_PRELOAD" not in env
    assert env.get("GH_TOKEN") == os.environ.get("GH_TOKEN")
    assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
    assert "DYLD_INSERT_LIBRARIES" not in env
    assert asked == [("show", "builder")]


async def test_scripts_do_not_inherit_runkon_secrets_nor_set_loader_or_shell_variables(
    make_engine: MakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNKON_TOKEN", "server-secret")
    monkeypatch.setenv("RUNKON_API_KEY", "server-secret")
    monkeypatch.setenv("RUNKON_USER", "alice")
    wf = parse(
        """
        workflow w {
          script show {
            run = "env > env.txt"
            env = {
              LD_AUDIT       = "/evil.so"
              LD_BIND_NOW    = "1"
              BASH_ENV       = "/evil.sh"
              ENV            = "/evil.sh"
              IFS            = "x"
              PYTHONSTARTUP  = "/evil.py"
              NODE_OPTIONS   = "--require /evil.js"
              KEPT           = "yes"
            }
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded, result.error
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "env.txt").read_text().splitlines()
        if "=" in line
    )
    assert "server-secret" not in (tmp_path / "env.txt").read_text()
    assert env["RUNKON_USER"] == "alice"
    assert env["KEPT"] == "yes"
    for name in ("LD_AUDIT", "LD_BIND_NOW", "BASH_ENV", "ENV", "PYTHONSTARTUP", "NODE_OPTIONS"):
        assert name not in env, name
    assert env.get("IFS") != "x"


async def test_a_script_timeout_kills_the_whole_process_group(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    wf = parse(
        """
        workflow w {
          script hang {
            run     = "sleep 30 & echo $! > bg.pid; echo $$ > sh.pid; wait"
            timeout = "300ms"
          }
        }
        """
    )
    async with make_engine() as engine:
        began = time.monotonic()
        result = await engine.run(wf)
        elapsed = time.monotonic() - began

    assert elapsed < 5
    assert result.status == RunStatus.FAILED
    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.TIMED_OUT  # not "failed" (reference §7 item 18)
    assert "timed out" in (step.step_error or "")
    for name in ("bg.pid", "sh.pid"):
        pid = int((tmp_path / name).read_text())
        assert await wait_dead(pid), f"{name} process {pid} survived the timeout"


async def test_a_timeout_kills_a_child_that_ignores_sigterm_after_the_leader_exits(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    # The leader dies on SIGTERM at once; its child ignores SIGTERM (issue 14.9).
    wf = parse(
        """
        workflow w {
          script hang {
            run     = "(trap '' TERM; exec sleep 60) >/dev/null 2>&1 & echo $! > child.pid; wait"
            timeout = "300ms"
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    pid = int((tmp_path / "child.pid").read_text())
    assert await wait_dead(pid), f"the child {pid} that ignores SIGTERM survived"


async def test_a_cancel_kills_a_child_that_ignores_sigterm_after_the_leader_exits(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"(trap '' TERM; exec sleep 60) >/dev/null 2>&1 & echo $! > {pidfile}; wait"
    with anyio.move_on_after(0.3):
        await run_program(["sh", "-c", script])
    pid = int(pidfile.read_text())
    assert await wait_dead(pid), f"the child {pid} that ignores SIGTERM survived the cancel"


async def test_script_retries_are_honoured(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    wf = parse(
        """
        workflow w {
          script flaky {
            run     = "n=$(cat count 2>/dev/null || echo 0)
                       n=$((n+1)); echo $n > count
                       [ $n -ge 3 ]"
            retries = 3
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert (tmp_path / "count").read_text().strip() == "3"
    assert [(s.retry_count, s.status) for s in await store.get_steps(result.run_id)] == [
        (0, StepStatus.FAILED),
        (1, StepStatus.FAILED),
        (2, StepStatus.COMPLETED),
    ]


async def test_script_on_fail_continue(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    wf = parse('workflow w { script bad { run = "exit 1"  on_fail = continue }  call after }')
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert result.succeeded
    assert rec.names() == ["after"]
    assert await rows(store, result.run_id) == [("bad", "skipped"), ("after", "completed")]


async def test_script_on_fail_agent_runs_with_the_failure(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    """``on_fail = <agent>`` on a script runs the agent, as for a call (reference §7
    item 18: runkon-flow ignores it for scripts)."""
    wf = parse('workflow w { script deploy { run = "echo nope >&2; exit 2"  on_fail = rescue } }')
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.status == RunStatus.FAILED
    assert rec.names() == ["rescue"]
    [rescue] = rec.calls
    assert rescue.inputs["failed_step"] == "deploy"
    assert "exited with code 2" in rescue.inputs["failure_reason"]


async def test_the_last_valid_flow_output_block_wins_and_broken_json_is_repaired(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    (tmp_path / "out.txt").write_text(
        "<<<FLOW_OUTPUT>>>\n"
        '{"markers": ["old"], "context": "first"}\n'
        "<<<END_FLOW_OUTPUT>>>\n"
        "talking about <<<FLOW_OUTPUT>>> in prose\n"
        "<<<FLOW_OUTPUT>>>\n"
        "```json\n"
        '{"markers": ["new",], "context": "second",}\n'
        "```\n"
        "<<<END_FLOW_OUTPUT>>>\n"
    )
    async with make_engine() as engine:
        result = await engine.run(parse('workflow w { script s { run = "cat out.txt" } }'))
    [step] = await store.get_steps(result.run_id)
    assert step.markers_out == ("new",)
    assert step.context_out == "second"
