"""``runkon cancel RUN``: cancel a run, wherever it runs.

The cancellation is written to the database; the process driving the run (``runkon
run`` in another terminal) learns of it through the store's change feed and stops the
run at once (its ``always`` block still runs). When no process drives the run (it was
interrupted, or its process died), this command finishes the cancellation itself, using
the actions the run was started with (or ``--actions``) for the ``always`` block, in
the run's working directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio

import runkon
from runkon.cli._actions import MEMO_WORKFLOWS, LoadedActions, stored_actions
from runkon.cli._common import (
    CLI_LEASE_TTL,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_db_argument,
    default_user,
    execute,
    find_run,
    open_engine,
    open_store,
    say,
)
from runkon.dsl import DirectoryWorkflowResolver

SETTLE_TIMEOUT = CLI_LEASE_TTL + 5  # a dead `runkon run`'s claim expires within its TTL
POLL_INTERVAL = 0.1


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "cancel",
        help="cancel a run",
        description="Cancel run RUN (an id, or a unique prefix of 6+ characters). The "
        "process running it stops it at once; if none does, this command finishes the "
        "cancellation itself (running the workflow's `always` block). Exit status: 0 the "
        "run is cancelled (or being cancelled), 1 it had already finished, 2 usage error.",
    )
    parser.add_argument("run", metavar="RUN", help="the run id")
    add_db_argument(parser)
    parser.add_argument("--reason", metavar="TEXT", help="why (kept with the run)")
    parser.add_argument(
        "--by", metavar="NAME", help="who cancels (default: $RUNKON_USER, else your user name)"
    )
    parser.add_argument(
        "--actions",
        metavar="MODULE_OR_DIR",
        help="executors for the `always` block, as for `runkon run` (default: the actions "
        "the run was started with)",
    )
    parser.set_defaults(handler=lambda args: execute(cancel, args))


async def cancel(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        run = await find_run(store, args.run)
    if run.is_terminal:
        raise CliError(f"run {run.id} already {run.status}; nothing to cancel", EXIT_FAILED)
    if _directory_gone(run):  # the run cannot be finished here; the request still counts
        loaded, using = LoadedActions(), ""
    else:
        loaded, using = stored_actions(run, args.actions)
    async with open_engine(
        args.db,
        actions=loaded.actions,
        fallback_action=loaded.fallback_action,
        workflows=DirectoryWorkflowResolver(run.memo.get(MEMO_WORKFLOWS) or "."),
    ) as engine:
        if not await engine.cancel_run(run.id, reason=args.reason, by=args.by or default_user()):
            run = await engine.store.get_run(run.id)
            raise CliError(f"run {run.id} already {run.status}; nothing to cancel", EXIT_FAILED)
        say(f"cancellation of run {run.id} requested")
        status = await _settle(engine, run.id, using)
    if status is None:
        say(f"run {run.id} will end cancelled when the process driving it gets to it")
    else:
        say(f"run {run.id} {status}")
    return EXIT_OK


def _directory_gone(run: runkon.persistence.RunRecord) -> bool:
    return run.working_dir is not None and not Path(run.working_dir).is_dir()


async def _settle(engine: runkon.FlowEngine, run_id: str, using: str) -> str | None:
    """Wait for the run to end; drive the cancellation here if nobody else does.
    Returns the final status, or None if the run did not end in time.

    Raises:
        CliError: nobody drives the run and its working directory is gone (exit 2).
    """
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            run = await engine.store.get_run(run_id)
            if run.is_terminal:
                return str(run.status)
            try:
                handle = await engine.resume(run_id)
            except runkon.WorkingDirectoryError as exc:
                raise CliError(
                    f"run {run_id} is being cancelled, but this command cannot finish the "
                    f"cancellation (its `always` block): {exc}",
                    EXIT_USAGE,
                ) from exc
            except runkon.ExecutionError:  # driven elsewhere (or a child run): wait
                await anyio.sleep(POLL_INTERVAL)
                continue
            say(f"finishing the cancellation here: {using}")
            result = await handle.result()
            return str(result.status)
    return None
