"""``runkon cancel RUN``: cancel a run, wherever it runs.

The cancellation is written to the database; the process driving the run (``runkon
run`` in another terminal) learns of it through the store's change feed and stops the
run at once (its ``always`` block still runs). When no process drives the run (it was
interrupted, or its process died), this command finishes the cancellation itself, using
the same actions as ``run`` for the ``always`` block.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

import runkon
from runkon.cli._actions import load_actions
from runkon.cli._common import (
    CLI_LEASE_TTL,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    add_db_argument,
    default_user,
    execute,
    find_run,
    open_engine,
    say,
)

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
        help="executors for the `always` block, as for `runkon run` (default: ./actions/)",
    )
    parser.set_defaults(handler=lambda args: execute(cancel, args))


async def cancel(args: argparse.Namespace) -> int:
    loaded = load_actions(args.actions)
    async with open_engine(
        args.db, actions=loaded.actions, fallback_action=loaded.fallback_action
    ) as engine:
        run = await find_run(engine.store, args.run)
        if run.is_terminal or not await engine.cancel_run(
            run.id, reason=args.reason, by=args.by or default_user()
        ):
            run = await engine.store.get_run(run.id)
            raise CliError(f"run {run.id} already {run.status}; nothing to cancel", EXIT_FAILED)
        say(f"cancellation of run {run.id} requested")
        status = await _settle(engine, run.id)
    if status is None:
        say(f"run {run.id} will end cancelled when the process driving it gets to it")
    else:
        say(f"run {run.id} {status}")
    return EXIT_OK


async def _settle(engine: runkon.FlowEngine, run_id: str) -> str | None:
    """Wait for the run to end; drive the cancellation here if nobody else does.
    Returns the final status, or None if the run did not end in time."""
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            run = await engine.store.get_run(run_id)
            if run.is_terminal:
                return str(run.status)
            try:
                handle = await engine.resume(run_id)
            except runkon.ExecutionError:  # driven elsewhere (or a child run): wait
                await anyio.sleep(POLL_INTERVAL)
                continue
            result = await handle.result()
            return str(result.status)
    return None
