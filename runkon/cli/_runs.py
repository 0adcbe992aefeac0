"""``runkon runs``: the runs in the database, newest first, as a table (or JSON)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import runkon
from runkon.cli._common import (
    EXIT_OK,
    RUN_ID_KEEP,
    Column,
    add_db_argument,
    between,
    execute,
    local_time,
    open_store,
    print_table,
    say,
    shorten,
    warn,
)
from runkon.persistence import RunRecord, RunStatus


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "runs",
        help="list runs, newest first",
        description="List the runs in the database, newest first: id, workflow, status, "
        "start time, duration (so far, for runs not finished) and what a waiting run is "
        "blocked on.",
    )
    add_db_argument(parser)
    parser.add_argument(
        "--status",
        action="append",
        choices=[status.value for status in RunStatus],
        metavar="STATUS",
        help="only runs with this status (repeat for several): "
        + ", ".join(status.value for status in RunStatus),
    )
    parser.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    parser.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line (the HTTP API's fields)"
    )
    parser.set_defaults(handler=lambda args: execute(list_runs, args))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("give at least 1")
    return value


def blocked_on(run: RunRecord) -> str:
    """What a waiting run waits for, in words."""
    blocked = run.blocked_on
    if not blocked:
        return ""
    name = blocked.get("gate_name")
    if name:
        return f"gate {name} ({blocked.get('type', 'gate')})"
    return shorten(json.dumps(blocked), 40)


async def list_runs(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        runs = await store.list_runs(
            statuses=args.status, workflow_name=args.workflow, limit=args.limit
        )
    if args.json:
        for run in runs:
            say(json.dumps(run_as_json(run)))
        return EXIT_OK
    if not runs:
        warn("no runs" + (" match" if args.status or args.workflow else " yet"))
        return EXIT_OK
    print_table(
        [
            Column("id", keep=RUN_ID_KEEP),
            Column("workflow", shrink=True),
            Column("status", status=True),
            "started",
            "duration",
            Column("blocked on", shrink=True),
        ],
        (
            [
                run.id,
                run.workflow_name,
                run.display_status(),
                local_time(run.started_at),
                between(run.started_at, run.ended_at),
                blocked_on(run),
            ]
            for run in runs
        ),
    )
    return EXIT_OK


def run_as_json(run: runkon.persistence.RunRecord) -> dict[str, Any]:
    """``run`` as the HTTP API answers it (the same field names)."""
    return {
        "id": run.id,
        "workflow_name": run.workflow_name,
        "status": str(run.status),
        "stalled": run.is_stalled(),
        "started_at": run.started_at.isoformat(),
        "ended_at": None if run.ended_at is None else run.ended_at.isoformat(),
        "duration_ms": run.total_duration_ms,
        "inputs": dict(run.inputs),
        "dry_run": run.dry_run,
        "parent_run_id": run.parent_run_id,
        "error": run.error,
        "result_summary": run.result_summary,
        "blocked_on": None if run.blocked_on is None else dict(run.blocked_on),
        "cancel_reason": run.cancel_reason,
    }
