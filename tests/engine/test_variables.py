"""The variable map and ``{{var}}`` substitution (reference §3.4)."""

from __future__ import annotations

import json
from pathlib import Path

from runkon.persistence import Store

from ._support import MakeEngine, Recorder, Reply, parse

EXTRAS = """<<<FLOW_OUTPUT>>>
{"markers": [], "context": "made a branch", "branch_name": "feat/x y", "count": 3,
 "workflow_run_id": "forged", "nested": {"a": "b"}}
<<<END_FLOW_OUTPUT>>>
"""


async def test_executors_get_the_engine_variables(make_engine: MakeEngine, rec: Recorder) -> None:
    rec.on("a", Reply(context="ctx of a", structured={"plan": [1, 2]}))
    rec.on("b", Reply(context="ctx of b"))
    wf = parse('workflow flow-x { inputs { who default = "me" }  call a  call b  call c }')
    async with make_engine() as engine:
        result = await engine.run(wf)

    a, b, c = rec.calls
    assert a.inputs["who"] == "me"
    assert a.inputs["workflow_run_id"] == result.run_id
    assert a.inputs["workflow_name"] == "flow-x"
    assert a.inputs["dry_run"] == "false"
    assert a.inputs["prior_context"] == ""
    assert json.loads(a.inputs["prior_contexts"]) == []
    assert b.inputs["prior_context"] == "ctx of a"
    assert json.loads(b.inputs["prior_output"]) == {"plan": [1, 2]}
    assert c.inputs["prior_context"] == "ctx of b"
    history = json.loads(c.inputs["prior_contexts"])
    assert [(h["step"], h["context"]) for h in history] == [("a", "ctx of a"), ("b", "ctx of b")]


async def test_flow_output_extras_become_variables_for_later_steps(
    make_engine: MakeEngine, rec: Recorder, tmp_path: Path
) -> None:
    (tmp_path / "extras.txt").write_text(EXTRAS)
    wf = parse(
        """
        workflow w {
          script make-branch { run = "cat extras.txt" }
          call push
          script use {
            run = "printf '%s|%s|%s' {{branch_name}} {{count}} {{workflow_run_id}} > used.txt"
          }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded, result.error
    [push] = rec.calls
    assert push.inputs["branch_name"] == "feat/x y"
    assert "count" not in push.inputs  # only string-valued extras are exported
    assert "nested" not in push.inputs
    assert push.inputs["workflow_run_id"] == result.run_id  # reserved: cannot be forged
    # each value is quoted into the script as one word; the unresolved `count`
    # disappears entirely (no empty word), so printf gets two arguments
    assert (tmp_path / "used.txt").read_text() == f"feat/x y|{result.run_id}|"


async def test_string_fields_of_an_executors_structured_output_become_variables(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("open-pr", Reply(structured={"markers": [], "context": "", "pr_url": "https://x/1"}))
    rec.on("again", Reply(structured={"pr_url": "https://x/2"}))
    async with make_engine() as engine:
        await engine.run(parse("workflow w { call open-pr  call review  call again  call last }"))
    assert rec.of("review")[0].inputs["pr_url"] == "https://x/1"
    assert rec.of("last")[0].inputs["pr_url"] == "https://x/2"  # later wins


async def test_substitution_is_one_pass_and_values_are_not_rescanned(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    wf = parse(
        """
        workflow w {
          inputs { a required  b default = "B" }
          script s { run = "printf '%s' {{a}}{{ b }}{{missing}} > out.txt" }
        }
        """
    )
    async with make_engine() as engine:
        assert (await engine.run(wf, {"a": "{{b}}"})).succeeded
    assert (tmp_path / "out.txt").read_text() == "{{b}}B"


async def test_injected_host_variables_are_visible_but_engine_variables_win(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    injected = {"repo_path": "/srv/repo", "workflow_run_id": "host-value"}
    async with make_engine(injected_variables=injected) as engine:
        result = await engine.run(parse("workflow w { call a }"))
    [a] = rec.calls
    assert a.inputs["repo_path"] == "/srv/repo"
    assert a.inputs["workflow_run_id"] == result.run_id


async def test_the_always_block_sees_workflow_status(
    make_engine: MakeEngine, rec: Recorder, store: Store, tmp_path: Path
) -> None:
    rec.on("work", Reply(error="nope"))
    wf = parse(
        """
        workflow w {
          call work
          always { script report { run = "printf '%s' {{workflow_status}} > status.txt" } }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf)
    assert (tmp_path / "status.txt").read_text() == "failed"
    assert result.status == "failed"
