"""``runkon run FILE``: start a workflow on the SQLite database and show its progress."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import runkon
from runkon.cli._actions import (
    MEMO_ACTIONS,
    MEMO_WORKFLOWS,
    LoadedActions,
    check_calls,
    load_actions,
)
from runkon.cli._common import (
    CLI_LEASE_TTL,
    EXIT_USAGE,
    CliError,
    add_db_argument,
    execute,
    open_engine,
    say,
    warn,
)
from runkon.cli._drive import drive
from runkon.dsl import DirectoryWorkflowResolver
from runkon.engine import apply_inputs

DESCRIPTION = """\
Start FILE as a new run in the SQLite database (./runkon.db unless --db) and print its
progress live: one line per step started, completed, failed, skipped or retried, and,
when a gate waits, the `runkon approve` / `runkon reject` commands that decide it from
another terminal. Ctrl-C stops the run without cancelling it: continue it later with
`runkon resume RUN`.

Actions: --actions names a Python module defining `actions = {name: executor}` (and/or
`fallback_action`), a .py file doing the same, or a directory of executables (`call plan`
runs DIR/plan or DIR/plan.*, with the step's variables as RUNKON_<NAME> environment
variables, and reads the FLOW_OUTPUT block it prints). Without --actions, ./actions/ is
used when it exists.

Exit status: 0 the run completed, 1 it failed or was cancelled, 2 usage error (missing
file, bad --input, unknown or missing input, invalid workflow, unusable --actions),
130 interrupted (resumable)."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run a workflow, with live progress",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="the .wf file to run")
    parser.add_argument(
        "-i",
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workflow input (repeat for several)",
    )
    add_db_argument(parser)
    add_engine_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="gates approve themselves, scripts and action programs do not execute; "
        "calls without an executor succeed doing nothing",
    )
    parser.set_defaults(handler=lambda args: execute(run, args))


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every command that drives runs (``run``, ``resume``)."""
    parser.add_argument(
        "--actions",
        metavar="MODULE_OR_DIR",
        help="where call steps find executors: a Python module (pkg.mod or file.py) "
        "or a directory of executables (default: ./actions/ if it exists; for resume, "
        "the actions the run was started with)",
    )
    parser.add_argument(
        "--workflows",
        metavar="DIR",
        help="directory of child workflows for `call workflow` / `foreach` "
        "(default: the directory of FILE for run, the run's for resume)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=_positive_seconds,
        default=CLI_LEASE_TTL,
        metavar="SECONDS",
        help="how long this process's claim on the run outlives it if it dies: "
        "`runkon resume` waits that long to take over (default: %(default)s)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError("give between 0.5 and 3600 seconds")
    return value


def parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict.

    Raises:
        CliError: an item has no ``=`` or an empty key, a key is given twice, or an
            item is not valid UTF-8 (bytes the locale could not decode).
    """
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--input {pair!r} is not KEY=VALUE (e.g. --input ticket=T-1)")
        if key in inputs:
            raise CliError(f"--input {key!r} is given twice; give each input once")
        try:
            pair.encode("utf-8")
        except UnicodeEncodeError:  # bytes the locale could not decode (surrogateescape)
            shown = repr(os.fsencode(pair))[2:-1]  # the bytes as given, e.g. ticket=\xff
            raise CliError(
                f"--input '{shown}' is not valid UTF-8 text; pass the value as UTF-8"
            ) from None
        inputs[key] = value
    return inputs


def load_file(file: str) -> runkon.WorkflowDef:
    """The workflow in ``file``; syntax errors are printed ``file:line:col: message``."""
    try:
        return runkon.load_workflow(file)
    except runkon.WorkflowNotFoundError as exc:
        raise CliError(f"cannot read {file!r}: {exc.detail or exc}") from exc
    except runkon.DslSyntaxError as exc:
        warn(str(exc))
        raise CliError(f"{file!r} is not a valid workflow; fix it and run again") from exc


async def _dry_run_call(
    ctx: runkon.StepContext, params: runkon.ActionParams
) -> runkon.ActionOutput:
    return runkon.ActionOutput(result_text=f"dry-run: no executor for {params.name!r}")


def check_workflow(
    workflow: runkon.WorkflowDef, loaded: LoadedActions, resolver: runkon.WorkflowResolver
) -> None:
    """Validate as the engine will (against the loaded actions); print every problem as
    ``file:line:col: message`` and raise a usage error if there is any."""
    report = runkon.validate_workflow(
        workflow,
        resolver=resolver,
        actions=loaded.actions.keys(),
        fallback_action=loaded.fallback_action is not None,
    )
    for issue in report.warnings:
        text = str(issue)
        head, sep, tail = text.partition(": ")
        warn(f"{head}: warning: {tail}" if sep and issue.location else f"warning: {text}")
    problems = [str(issue) for issue in report.errors] + check_calls(workflow, loaded)
    if not problems:
        return
    for problem in problems:
        warn(problem)
    hint = ""
    if any("executor" in problem for problem in problems) and not loaded.source:
        hint = " (no actions were loaded: pass --actions MODULE_OR_DIR)"
    raise CliError(f"{workflow.source!r} cannot run: {len(problems)} problem(s){hint}")


def run_memo(loaded: LoadedActions, workflows_dir: Path) -> dict[str, str]:
    """What ``runkon run`` keeps with the run so that ``resume``/``cancel`` load the same
    actions and child workflows (relative to the run's working directory)."""
    return {MEMO_ACTIONS: loaded.spec, MEMO_WORKFLOWS: str(workflows_dir.absolute())}


async def run(args: argparse.Namespace) -> int:
    inputs = parse_inputs(args.inputs)
    workflow = load_file(args.file)
    loaded = load_actions(args.actions)
    if args.dry_run and loaded.fallback_action is None:
        loaded = LoadedActions(loaded.actions, _dry_run_call, loaded.source, loaded.spec)
    workflows_dir = Path(args.workflows or Path(args.file).parent)
    resolver = DirectoryWorkflowResolver(workflows_dir)
    check_workflow(workflow, loaded, resolver)
    try:
        apply_inputs(workflow, inputs)
    except runkon.InputError as exc:
        raise CliError(str(exc)) from exc
    async with open_engine(
        args.db,
        create=True,
        actions=loaded.actions,
        fallback_action=loaded.fallback_action,
        workflows=resolver,
        lease_ttl=args.lease_ttl,
    ) as engine:
        try:
            handle = await engine.start(
                workflow,
                inputs,
                dry_run=args.dry_run or None,
                working_dir=os.getcwd(),
                memo=run_memo(loaded, workflows_dir),
            )
        except (runkon.InputError, runkon.WorkflowValidationError) as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        dry = " (dry run)" if args.dry_run else ""
        say(f"run {handle.run_id} started{dry}: workflow {workflow.name!r} from {args.file}")
        return await drive(engine, handle, db=args.db)
