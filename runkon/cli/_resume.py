"""``runkon resume RUN``: continue a stopped run from its persisted state, with progress.

A run whose ``run`` process was stopped with Ctrl-C resumes at once. One whose process
died (killed, crashed, machine rebooted) is still claimed by that process's lease for up
to ``--lease-ttl`` seconds (10 by default): resume says so and waits for the claim to
expire. If the claim is renewed meanwhile, another process is alive and driving the run,
and resume refuses (exit 1).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import runkon
from runkon.cli._actions import MEMO_WORKFLOWS, LoadedActions, check_calls, stored_actions
from runkon.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    add_db_argument,
    clock,
    duration,
    execute,
    find_run,
    open_engine,
    open_store,
    program,
    say,
    warn,
)
from runkon.cli._drive import drive
from runkon.cli._progress import db_option
from runkon.cli._run import add_engine_arguments
from runkon.dsl import DirectoryWorkflowResolver

MAX_LEASE_WAIT = 120.0  # seconds; a longer claim is not a dead `runkon run` process's

DESCRIPTION = """\
Continue run RUN from its persisted state: steps that completed are kept, a waiting
gate keeps its deadline (and a decision made meanwhile is honoured), and progress is
printed as for `runkon run`. RUN is a run id (or a unique prefix of 6+ characters).

The run's steps run in its working directory (where `runkon run` was started), wherever
resume is started. Without --actions, resume loads the actions the run was started with
(its --actions, or ./actions/, taken from that directory), and without --workflows the
child workflows from where the run found them; --actions/--workflows override them.
Resume prints which actions and directory it uses.

If the process that drove the run died, its claim on the run lasts up to its
--lease-ttl (10 s by default); resume waits for it to expire. Exit status as for
`runkon run`; 1 also when the run already finished or another live process drives it;
2 also when the run's working directory is gone or its actions cannot be loaded (the
run stays resumable)."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "resume",
        help="continue a stopped run",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="the run id")
    add_db_argument(parser)
    add_engine_arguments(parser)
    parser.set_defaults(handler=lambda args: execute(resume, args))


async def resume(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        run = await find_run(store, args.run)
    _check_resumable(run, args.db)
    loaded, using = stored_actions(run, args.actions)
    _check_programs(run, loaded)
    workflows = args.workflows or run.memo.get(MEMO_WORKFLOWS) or "."
    async with open_engine(
        args.db,
        actions=loaded.actions,
        fallback_action=loaded.fallback_action,
        workflows=DirectoryWorkflowResolver(workflows),
        lease_ttl=args.lease_ttl,
    ) as engine:
        run = await engine.store.get_run(run.id)
        _check_resumable(run, args.db)
        waiting = await engine.waiting_gates(run_id=run.id)
        events = await engine.read_events(run.id)
        handle = await _claim(engine, run, args.db)
        say(f"run {run.id} resumed: workflow {run.workflow_name!r}")
        say(f"  {using}")
        return await drive(
            engine,
            handle,
            db=args.db,
            after_seq=events[-1].seq if events else 0,
            waiting=waiting,
        )


def _check_resumable(run: runkon.persistence.RunRecord, db: str) -> None:
    """Refuse a finished run (exit 1) and one whose working directory is gone (exit 2)."""
    if run.is_terminal:
        raise CliError(
            f"run {run.id} already {run.status}; there is nothing to resume "
            f"(see `{program()} show {run.id}{db_option(db)}`)",
            EXIT_FAILED,
        )
    directory = run.working_dir
    if directory is not None and not Path(directory).is_dir():
        raise CliError(str(runkon.WorkingDirectoryError(run.id, directory)), EXIT_USAGE)


def _check_programs(run: runkon.persistence.RunRecord, loaded: LoadedActions) -> None:
    """With a directory of executables, every call of the run's workflow must find its
    program there, as ``runkon run`` checks (the engine checks named executors)."""
    try:
        workflow = runkon.WorkflowDef.from_json(run.definition_snapshot or "")
    except ValueError:  # unreadable: the engine refuses it with a clear error
        return
    problems = check_calls(workflow, loaded)
    if not problems:
        return
    for problem in problems:
        warn(problem)
    raise CliError(
        f"run {run.id} cannot resume with {loaded.source}: {len(problems)} problem(s); "
        "the run is left as it was (pass --actions MODULE_OR_DIR with the missing programs)"
    )


async def _claim(
    engine: runkon.FlowEngine, run: runkon.persistence.RunRecord, db: str
) -> runkon.RunHandle:
    """Resume ``run``, waiting once for a dead process's lease to expire."""
    for attempt in range(2):
        try:
            return await engine.resume(run.id)
        except runkon.RunAlreadyOwnedError:
            current = await engine.store.get_run(run.id)
            until = current.lease_until
            wait = 0.0 if until is None else (until - datetime.now(UTC)).total_seconds()
            if attempt == 1 or wait > MAX_LEASE_WAIT:
                raise CliError(
                    f"run {run.id} is being driven by another live process; stop that "
                    f"process first (follow the run with "
                    f"`{program()} events {run.id} --follow{db_option(db)}`)",
                    EXIT_FAILED,
                ) from None
            if until is not None:
                warn(
                    f"run {run.id} is claimed by another process until {clock(until)}; "
                    f"if that process died, the claim expires then: waiting {duration(wait)}..."
                )
            await anyio.sleep(max(wait, 0.0) + 0.2)
        except runkon.WorkingDirectoryError as exc:  # removed since we looked
            raise CliError(str(exc), EXIT_USAGE) from exc
        except runkon.ExecutionError as exc:
            raise CliError(str(exc), EXIT_FAILED) from exc
    raise AssertionError("unreachable")  # pragma: no cover
