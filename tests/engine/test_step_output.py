"""What a step ran with and what its programs wrote: recorded inputs, and a bounded tail
of stdout/stderr per attempt (``FlowEngine(output_tail_bytes=...)``), in both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runkon.engine import ActionOutput, ActionParams, FlowEngine, StepContext, run_program
from runkon.persistence import InMemoryStore, StepStatus, Store

from ._support import MakeEngine, parse


async def test_a_script_keeps_its_stdout_and_stderr_with_its_step(
    make_engine: MakeEngine, store: Store
) -> None:
    wf = parse(
        """
        workflow w {
          inputs { who required }
          script hello { run = "echo hello {{who}}; echo careful >&2; printf 'no newline'" }
        }
        """
    )
    async with make_engine() as engine:
        result = await engine.run(wf, inputs={"who": "Ada"})

    assert result.succeeded
    [step] = await store.get_steps(result.run_id)
    output = await store.get_step_output(step.id)
    assert output is not None
    assert output.stdout == "hello Ada\nno newline"
    assert output.stderr == "careful\n"
    assert (output.stdout_dropped_bytes, output.stderr_dropped_bytes) == (0, 0)
    assert not output.truncated
    assert dict(step.inputs) == {"who": "Ada"}


async def test_only_the_tail_is_kept_and_the_dropped_bytes_are_counted(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    # 3000 lines of 6 bytes on stdout, then a FLOW_OUTPUT block: the block is still read
    # (the capture bound is not the parser's), and only the last 1000 bytes are kept.
    (tmp_path / "noisy.sh").write_text(
        "seq 100001 103000\nseq 1 400 >&2\n"
        'printf \'<<<FLOW_OUTPUT>>>\\n{"markers": ["done"]}\\n<<<END_FLOW_OUTPUT>>>\\n\'\n'
    )
    wf = parse("""workflow w { script noisy { run = "sh noisy.sh" } }""")
    async with make_engine(output_tail_bytes=1000) as engine:
        result = await engine.run(wf)

    assert result.succeeded
    [step] = await store.get_steps(result.run_id)
    assert step.markers_out == ("done",)
    output = await store.get_step_output(step.id)
    assert output is not None
    block = '<<<FLOW_OUTPUT>>>\n{"markers": ["done"]}\n<<<END_FLOW_OUTPUT>>>\n'
    total_stdout = 3000 * 7 + len(block)
    assert len(output.stdout.encode()) == 1000
    assert output.stdout.endswith("102999\n103000\n" + block)
    assert output.stdout_dropped_bytes == total_stdout - 1000
    total_stderr = sum(len(f"{n}\n") for n in range(1, 401))
    assert len(output.stderr) == 1000
    assert output.stderr.endswith("399\n400\n")
    assert output.stderr_dropped_bytes == total_stderr - 1000
    assert output.truncated


async def test_a_cut_through_a_character_starts_the_tail_at_the_next_one(
    make_engine: MakeEngine, store: Store
) -> None:
    # "é" is two bytes: keeping the last 5 bytes of "ééé" cuts the first kept "é" in two.
    wf = parse("""workflow w { script s { run = "printf 'ééé'" } }""")
    async with make_engine(output_tail_bytes=5) as engine:
        result = await engine.run(wf)
    [step] = await store.get_steps(result.run_id)
    output = await store.get_step_output(step.id)
    assert output is not None
    assert (output.stdout, output.stdout_dropped_bytes) == ("éé", 2)


async def test_every_attempt_keeps_its_own_output(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    (tmp_path / "flaky.sh").write_text(
        "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n\n"
        "echo try $n; echo bad $n >&2; test $n -ge 1\n"
    )
    wf = parse("""workflow w { script flaky { run = "sh flaky.sh"\n retries = 1 } }""")
    async with make_engine() as engine:
        result = await engine.run(wf)

    assert result.succeeded
    first, second = await store.get_steps(result.run_id)
    assert (first.status, second.status) == (StepStatus.FAILED, StepStatus.COMPLETED)
    first_output = await store.get_step_output(first.id)
    second_output = await store.get_step_output(second.id)
    assert first_output is not None
    assert second_output is not None
    assert (first_output.stdout, first_output.stderr) == ("try 0\n", "bad 0\n")
    assert (second_output.stdout, second_output.stderr) == ("try 1\n", "bad 1\n")
    assert first.step_error is not None
    assert "bad 0" in first.step_error


async def test_a_call_whose_executor_runs_a_program_keeps_its_output(
    make_engine: MakeEngine, store: Store
) -> None:
    async def shout(ctx: StepContext, params: ActionParams) -> ActionOutput:
        result = await run_program(["sh", "-c", "echo from the program; echo oops >&2; exit 3"])
        raise RuntimeError(f"program {result.describe_exit()}")

    async def quiet(ctx: StepContext, params: ActionParams) -> ActionOutput:
        return ActionOutput(context="no program")

    wf = parse("workflow w { inputs { ticket required }\n call quiet\n call shout }")
    async with make_engine(actions={"shout": shout, "quiet": quiet}) as engine:
        result = await engine.run(wf, inputs={"ticket": "T-9"})

    assert not result.succeeded
    quiet_step, shout_step = await store.get_steps(result.run_id)
    assert await store.get_step_output(quiet_step.id) is None  # no program ran
    output = await store.get_step_output(shout_step.id)
    assert output is not None
    assert (output.stdout, output.stderr) == ("from the program\n", "oops\n")
    assert shout_step.inputs["ticket"] == "T-9"
    assert shout_step.inputs["prior_context"] == "no program"
    assert shout_step.inputs["workflow_run_id"] == result.run_id


async def test_recorded_inputs_are_bounded(make_engine: MakeEngine, store: Store) -> None:
    inputs = {"big": "x" * 5000, **{f"v{n:03}": "y" * 900 for n in range(40)}}
    declared = " ".join(inputs)
    wf = parse(f"workflow w {{ inputs {{ {declared} }}\n call plan }}")
    async with make_engine() as engine:
        result = await engine.run(wf, inputs=inputs)
    [step] = await store.get_steps(result.run_id)
    recorded = dict(step.inputs)
    assert recorded["big"] == "x" * 1000 + "… (4000 more characters)"
    assert sum(len(value) for value in recorded.values()) <= 16_000
    assert recorded["…"].endswith("more variables not kept")
    assert len(json.dumps(recorded)) < 20_000


async def test_recorded_inputs_hide_values_of_secret_looking_names(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    wf = parse(
        """
        workflow w {
          inputs { ticket required }
          call plan
          script s { run = "echo {{ticket}} {{github_token}}" }
        }
        """
    )
    injected = {"github_token": "ghp_secret", "API_KEY": "k-123", "db_password": "pw"}
    async with make_engine(injected_variables=injected) as engine:
        result = await engine.run(wf, inputs={"ticket": "T-1"})
    plan, script = await store.get_steps(result.run_id)
    assert plan.inputs["ticket"] == "T-1"
    assert (plan.inputs["github_token"], plan.inputs["API_KEY"], plan.inputs["db_password"]) == (
        "<redacted>",
        "<redacted>",
        "<redacted>",
    )
    assert dict(script.inputs) == {"ticket": "T-1", "github_token": "<redacted>"}
    assert "ghp_secret" not in repr([dict(step.inputs) for step in (plan, script)])


async def test_output_tail_bytes_zero_keeps_nothing(make_engine: MakeEngine, store: Store) -> None:
    wf = parse("""workflow w { script s { run = "echo hi" } }""")
    async with make_engine(output_tail_bytes=0) as engine:
        result = await engine.run(wf)
    [step] = await store.get_steps(result.run_id)
    assert step.context_out == "hi\n"
    assert await store.get_step_output(step.id) is None


@pytest.mark.parametrize("bad", [-1, 1.5, "64k", True])
def test_output_tail_bytes_must_be_a_byte_count(bad: object) -> None:
    with pytest.raises(ValueError, match="output_tail_bytes must be a whole number of bytes"):
        FlowEngine(InMemoryStore(), output_tail_bytes=bad)  # type: ignore[arg-type]
