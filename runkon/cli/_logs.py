"""``runkon logs RUN [STEP]``: what a run's programs wrote (stdout and stderr tails)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runkon.cli._common import EXIT_OK, add_db_argument, execute, find_run, open_store, say, warn
from runkon.cli._steps import output_json, printable, select_steps
from runkon.persistence import CapturedOutput, StepRecord


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "logs",
        help="print what a run's steps wrote to stdout and stderr",
        description="Print the stdout and stderr captured from the programs of run RUN "
        "(an id, or a unique prefix of 6+ characters): `script` steps, and programs a "
        "`call` runs from an actions directory. Each step with output gets a header "
        "(`==> step NAME (#N, STATUS) stdout <==`); only the end of each stream is kept "
        "(64 KiB by default, FlowEngine(output_tail_bytes=...)), and a `[truncated: ...]` "
        "line says how much came before it. Control characters are shown escaped "
        "unless --raw.",
    )
    parser.add_argument("run", metavar="RUN", help="the run id")
    parser.add_argument(
        "step",
        metavar="STEP",
        nargs="?",
        help="only this step: its name (every attempt and iteration), its number in "
        "`runkon show RUN`, or its id (default: every step with output)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="print the output as the program wrote it (control characters included), "
        "without headers",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per step with output: number, step_id, name, status, "
        "stdout, stderr, stdout_dropped_bytes, stderr_dropped_bytes, truncated",
    )
    add_db_argument(parser)
    parser.set_defaults(handler=lambda args: execute(logs, args))


async def logs(args: argparse.Namespace) -> int:
    async with open_store(args.db) as store:
        run = await find_run(store, args.run)
        steps = await store.get_steps(run.id)
        chosen = (
            list(enumerate(steps, 1))
            if args.step is None
            else select_steps(run.id, steps, args.step)
        )
        found = [
            (number, step, output)
            for number, step in chosen
            if (output := await store.get_step_output(step.id)) is not None
        ]
    if args.json:
        for number, step, output in found:
            say(json.dumps(output_json(number, step, output)))
        return EXIT_OK
    shown = [(number, step, output) for number, step, output in found if not output.is_empty]
    if not shown:
        warn(_nothing(run.id, args.step, found))
        return EXIT_OK
    for number, step, output in shown:
        if args.raw:
            sys.stdout.write(output.stdout)
            sys.stdout.flush()
            sys.stderr.write(output.stderr)
            sys.stderr.flush()
        else:
            _print_output(number, step, output)
    return EXIT_OK


def _nothing(run_id: str, which: str | None, found: list[Any]) -> str:
    if found:
        what = "its programs wrote nothing"
    else:
        what = (
            "no output was captured (only `script` steps and programs a `call` runs "
            "from an actions directory have output)"
        )
    if which is None:
        return f"run {run_id}: {what}"
    return f"run {run_id}, step {which!r}: {what}"


def _print_output(number: int, step: StepRecord, output: CapturedOutput) -> None:
    streams = (
        ("stdout", output.stdout, output.stdout_dropped_bytes),
        ("stderr", output.stderr, output.stderr_dropped_bytes),
    )
    for stream, text, dropped in streams:
        if not text and not dropped:
            continue
        say(f"==> step {step.step_name} (#{number}, {step.status}) {stream} <==")
        if dropped:
            say(f"[truncated: {dropped} earlier bytes of {stream} were not kept]")
        for line in text.splitlines():
            say(printable(line))
