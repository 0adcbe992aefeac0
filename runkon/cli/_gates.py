"""``runkon gates``: the inbox -- every gate waiting for a decision, in any process."""

from __future__ import annotations

import argparse
import json
from typing import Any

from runkon.cli._common import (
    EXIT_OK,
    RUN_ID_KEEP,
    Column,
    add_db_argument,
    execute,
    find_run,
    local_time,
    open_store,
    print_table,
    program,
    say,
    time_left,
    warn,
)
from runkon.cli._progress import db_option
from runkon.persistence import WaitingGate

PROMPT_WIDTH = 40


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "gates",
        help="the inbox: gates waiting for a decision",
        description="List every gate waiting for a decision, earliest deadline first: "
        "run, workflow, gate, type, prompt, options, deadline (and time left) and "
        "approvals so far. Decide one with `runkon approve` or `runkon reject`.",
    )
    add_db_argument(parser)
    parser.add_argument("--run", metavar="RUN", help="only gates of this run")
    parser.add_argument("--workflow", metavar="NAME", help="only gates of this workflow")
    parser.add_argument("--type", dest="gate_type", metavar="TYPE", help="only gates of this type")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per line (the HTTP API's fields)"
    )
    parser.set_defaults(handler=lambda args: execute(list_gates, args))


async def list_gates(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        run_id = None if args.run is None else (await find_run(store, args.run)).id
        gates = await store.list_waiting_gates(
            run_id=run_id, workflow_name=args.workflow, gate_type=args.gate_type
        )
    if args.json:
        for gate in gates:
            say(json.dumps(as_json(gate)))
        return EXIT_OK
    if not gates:
        warn("no gate is waiting")
        return EXIT_OK
    print_table(
        [
            Column("run", keep=RUN_ID_KEEP),
            Column("workflow", shrink=True),
            Column("gate", shrink=True),
            "type",
            Column("prompt", shrink=True, limit=PROMPT_WIDTH),
            Column("options", shrink=True),
            "deadline",
            "approvals",
        ],
        (
            [
                gate.run_id,
                gate.workflow_name,
                gate.gate_name,
                gate.gate_type,
                gate.prompt or "",
                ",".join(option.value for option in gate.options),
                _deadline(gate),
                f"{gate.approvals}/{gate.min_approvals}",
            ]
            for gate in gates
        ),
    )
    say()
    runkon, db = program(), db_option(args.db)
    say(
        f"decide: {runkon} approve RUN GATE{db} [--select OPTION] [--feedback TEXT]"
        f"  |  {runkon} reject RUN GATE{db} [--feedback TEXT]"
    )
    return EXIT_OK


def _deadline(gate: WaitingGate) -> str:
    if gate.deadline_at is None:
        return "none"
    return f"{local_time(gate.deadline_at, seconds=False)} ({time_left(gate.deadline_at)})"


def as_json(gate: WaitingGate) -> dict[str, Any]:
    """``gate`` as the HTTP API answers it (the same field names)."""
    return {
        "step_id": gate.step_id,
        "run_id": gate.run_id,
        "workflow_name": gate.workflow_name,
        "gate_name": gate.gate_name,
        "gate_type": gate.gate_type,
        "prompt": gate.prompt,
        "options": [{"value": option.value, "label": option.label} for option in gate.options],
        "deadline_at": None if gate.deadline_at is None else gate.deadline_at.isoformat(),
        "opened_at": None if gate.opened_at is None else gate.opened_at.isoformat(),
        "approvals": gate.approvals,
        "min_approvals": gate.min_approvals,
        "select": gate.select,
        "allow_none": gate.allow_none,
    }
