"""``script <name> { run = "..." }``: a shell command under ``sh -c``.

Variables never become shell syntax in ``run``: each ``{{name}}`` is replaced by a
reference to an environment variable (``RUNKON_ARG_1``, ...) holding the value, written
for the quoting around it, so the value arrives verbatim whether the placeholder is
unquoted (one word), inside ``"..."`` or inside ``'...'`` (see ``shell_substitute``).
In ``env`` values are substituted raw. The process runs in its own session: a timeout
or a cancellation kills its whole process group (SIGTERM, then SIGKILL after a grace
period). The step records the variables its ``run`` and ``env`` use (its inputs) and
the tail of the script's stdout and stderr. ``retries`` and ``on_fail`` work as for
calls; a timeout records the attempt ``timed_out``. Exit 0 parses a FLOW_OUTPUT block
from stdout (in a worker thread when large); a non-zero exit fails with the tail of
stderr.
"""

from __future__ import annotations

import re

from runkon.dsl import ScriptNode, format_duration
from runkon.engine._attempts import Failure, Outcome, Success, describe_error, run_attempts
from runkon.engine._flow_output import parse_flow_output_async
from runkon.engine._node_call import on_fail_runner, step_key
from runkon.engine._process import ERROR_TAIL, inherited_environment, run_program
from runkon.engine._protocols import StepContext
from runkon.engine._state import RunState
from runkon.engine._variables import placeholders, recorded_inputs, shell_substitute, substitute
from runkon.persistence import StepRecord

# Names an ``env`` block may not set: they change what the shell or the program loads
# or runs before the step's command (loader, interpreter start-up and shell start-up
# variables). Every ``LD_*`` and ``DYLD_*`` name and exported bash functions
# (``BASH_FUNC_*``) are refused too, see ``_refused_env_key``.
SENSITIVE_ENV_KEYS = frozenset(
    {
        "PATH",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYLIB",
        "RUBYOPT",
        "NODE_PATH",
        "NODE_OPTIONS",
        "GH_TOKEN",
    }
)
_REFUSED_ENV_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_")
_INPUT_KEY_RE = re.compile(r"[A-Za-z0-9_]+")


async def run_script_node(state: RunState, node: ScriptNode, path: str, iteration: int) -> None:
    key = step_key(node.name, path)
    position = state.next_position()
    done = state.completed(key)
    if done is not None:
        await state.restore(node.name, done)
        return

    async def attempt(step: StepRecord, attempt: int, retry_error: str | None) -> Outcome:
        if state.dry_run:
            return Success(result_text="dry-run: script not executed")
        return await _run_once(state, node, step, attempt, iteration)

    def inputs() -> dict[str, str]:
        variables = state.vars.snapshot()
        used = placeholders(node.run, *node.env.values())
        return recorded_inputs({name: variables[name] for name in used if name in variables})

    await run_attempts(
        state,
        name=node.name,
        key=key,
        kind="script",
        position=position,
        iteration=iteration,
        retries=node.retries,
        on_fail=node.on_fail,
        attempt_fn=attempt,
        on_fail_agent=on_fail_runner(state, node.name, path, iteration),
        inputs=inputs,
    )


async def script_env(state: RunState, node: ScriptNode, ctx: StepContext) -> dict[str, str]:
    """The process environment: ours (without runkon's secrets, see
    ``inherited_environment``), the provider's, the inputs, then ``node.env`` (whose
    refused names are logged and skipped)."""
    env = inherited_environment()
    provider = state.services.script_env
    if provider is not None:
        identity = node.as_identity or state.as_identity or state.services.default_as_identity
        env.update(await provider.env(ctx, identity))
    for key, value in state.inputs.items():
        if _INPUT_KEY_RE.fullmatch(key):
            env[f"RUNKON_{key.upper()}"] = value
            env[f"CONDUCTOR_{key.upper()}"] = value  # what runkon-flow's scripts read
    variables = state.vars.snapshot()
    for key, template in node.env.items():
        if _refused_env_key(key):
            state.log.warning("script env key refused", script=node.name, key=key)
            continue
        value = substitute(template, variables)
        if "\0" in value:
            state.log.warning("script env value has a NUL byte; refused", key=key)
            continue
        env[key] = value
    return env


def _refused_env_key(key: str) -> bool:
    """Whether an ``env`` block may not set ``key`` (see ``SENSITIVE_ENV_KEYS``)."""
    upper = key.upper()
    return (
        not key
        or "=" in key
        or "\0" in key
        or upper in SENSITIVE_ENV_KEYS
        or upper.startswith(_REFUSED_ENV_PREFIXES)
    )


async def _run_once(
    state: RunState, node: ScriptNode, step: StepRecord, attempt: int, iteration: int
) -> Outcome:
    ctx = StepContext(
        run_id=state.run_id,
        workflow_name=state.workflow.name,
        step_id=step.id,
        step_name=node.name,
        step_key=step.resume_key or node.name,
        attempt=attempt,
        iteration=iteration,
        working_dir=state.working_dir,
        dry_run=state.dry_run,
        parent_run_id=state.run.parent_run_id,
        depth=state.depth,
        timeout=node.timeout,
    )
    command, arguments = shell_substitute(node.run, state.vars.snapshot())
    try:
        env = await script_env(state, node, ctx)
        env.update(arguments)
    except Exception as exc:
        return Failure(
            f"script {node.name!r}: the script env provider failed: {describe_error(exc)}"
        )
    try:
        result = await run_program(
            ["sh", "-c", command], cwd=state.working_dir, env=env, timeout=node.timeout
        )
    except OSError as exc:
        return Failure(f"script {node.name!r} could not start: {describe_error(exc)}")
    if result.timed_out:
        assert node.timeout is not None
        return Failure(
            f"script {node.name!r} timed out after {format_duration(node.timeout)}"
            + result.stderr_tail(),
            timed_out=True,
        )
    if result.returncode != 0:
        return Failure(f"script {node.name!r} {result.describe_exit()}" + result.stderr_tail())
    flow = await parse_flow_output_async(result.stdout)
    if flow is None:
        return Success(
            context=result.stdout[:ERROR_TAIL], result_text=f"script {node.name!r} completed"
        )
    return Success(
        markers=flow.markers,
        context=flow.context,
        structured_output=flow.to_json(),
        result_text=f"script {node.name!r} completed",
    )
