"""``runkon approve`` and ``runkon reject``: decide a waiting gate from any terminal.

The decision is one compare-and-set in the database; the process running the workflow
(``runkon run`` in another terminal) learns of it through the store's change feed and
goes on at once. The receipt is printed in words.
"""

from __future__ import annotations

import argparse
import shlex
from datetime import UTC, datetime
from typing import Any

import runkon
from runkon.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_db_argument,
    default_user,
    execute,
    find_run,
    local_time,
    open_engine,
    program,
    say,
    warn,
)
from runkon.cli._progress import db_option
from runkon.persistence import GateReceipt, ReceiptOutcome, RunRecord

EPILOG = """\
Exit status: 0 the decision was accepted (or, for a gate that needs several approvers,
recorded, or already recorded for this approver), 1 it was refused (the gate was already
decided, is not waiting, or its deadline has passed), 2 usage error (unknown run or gate,
an option the gate does not offer, no --select for a gate with options, several --select
for a gate that takes one, several gates waiting and no GATE given)."""


def add_parsers(commands: Any) -> None:
    approve = commands.add_parser(
        "approve",
        help="approve a waiting gate",
        description="Approve gate GATE of run RUN (GATE may be left out when the run has "
        "exactly one waiting gate). The run goes on at once, in whichever process drives it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_arguments(approve)
    approve.add_argument(
        "--select",
        action="append",
        metavar="OPTION",
        help="an option of the gate to select (repeat for several); a gate with options "
        "needs one unless its workflow says allow_none = true",
    )
    approve.set_defaults(handler=lambda args: execute(approve_gate, args))
    reject = commands.add_parser(
        "reject",
        help="reject a waiting gate",
        description="Reject gate GATE of run RUN (GATE may be left out when the run has "
        "exactly one waiting gate); the gate's step fails.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_arguments(reject)
    reject.set_defaults(handler=lambda args: execute(reject_gate, args), select=None)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="the run id (or a unique prefix)")
    parser.add_argument(
        "gate", metavar="GATE", nargs="?", help="the gate's name (default: the only waiting one)"
    )
    add_db_argument(parser)
    parser.add_argument(
        "--by", metavar="NAME", help="who decides (default: $RUNKON_USER, else your user name)"
    )
    parser.add_argument(
        "--feedback",
        metavar="TEXT",
        help="a comment kept with the decision; later steps read it as "
        "{{gate_feedback_text}}, and as {{gate_feedback}} unless --select is given (then "
        "{{gate_feedback}} holds the selected options)",
    )


async def approve_gate(args: argparse.Namespace) -> int:
    return await _decide(args, approve=True)


async def reject_gate(args: argparse.Namespace) -> int:
    return await _decide(args, approve=False)


async def _decide(args: argparse.Namespace, *, approve: bool) -> int:
    by = args.by or default_user()
    async with open_engine(args.db) as engine:
        run = await find_run(engine.store, args.run)
        gate = args.gate or await _only_waiting_gate(engine, run, args.db)
        try:
            if approve:
                receipt = await engine.approve_gate(
                    run.id, gate, by=by, feedback=args.feedback, selections=args.select
                )
            else:
                receipt = await engine.reject_gate(run.id, gate, by=by, feedback=args.feedback)
        except runkon.UnknownGateError as exc:
            waiting = [w.gate_name for w in await engine.waiting_gates(run_id=run.id)]
            now = f"waiting now: {', '.join(waiting)}" if waiting else "no gate is waiting now"
            raise CliError(f"run {run.id} has no gate {gate!r} ({now})") from exc
        except runkon.InvalidSelectionError as exc:
            raise CliError(_selection_problem(exc, gate, run.id, args.db)) from exc
        after = await _what_next(engine, run.id, args.db, approve)
        return _print_receipt(receipt, run.id, gate, by, approve, after)


def _selection_problem(exc: runkon.InvalidSelectionError, gate: str, run_id: str, db: str) -> str:
    """What is wrong with the approval's ``--select`` and the command that fixes it."""
    if not exc.allowed:
        return f"gate {gate!r} has no options; approve it without --select"
    allowed = ", ".join(exc.allowed)
    how_many = "exactly one" if exc.select == "one" else "one or more"
    repeat = "" if exc.select == "one" else " (repeat --select for several)"
    first = shlex.quote(exc.allowed[0])
    example = f"{program()} approve {run_id} {shlex.quote(gate)} --select {first}{db_option(db)}"
    if exc.earlier:
        agreed = shlex.quote(exc.earlier[0])
        return (
            f"gate {gate!r} takes exactly one option and earlier approvals chose "
            f"{exc.earlier[0]}; approve with --select {agreed} too, or reject it"
        )
    if isinstance(exc, runkon.SelectionRequiredError):
        problem = f"gate {gate!r} offers options and needs a choice"
    elif all(value in exc.allowed for value in exc.invalid):
        problem = f"gate {gate!r} takes exactly one option, got --select {', '.join(exc.invalid)}"
    else:
        unknown = ", ".join(value for value in exc.invalid if value not in exc.allowed)
        problem = f"--select {unknown}: not an option of gate {gate!r}"
    return f"{problem}; choose {how_many} of: {allowed}{repeat}, e.g. {example}"


async def _only_waiting_gate(engine: runkon.FlowEngine, run: RunRecord, db: str) -> str:
    waiting = await engine.waiting_gates(run_id=run.id)
    if len(waiting) == 1:
        return waiting[0].gate_name
    if not waiting:
        raise CliError(f"run {run.id} has no gate waiting (it is {run.status})", EXIT_FAILED)
    names = ", ".join(gate.gate_name for gate in waiting)
    raise CliError(
        f"run {run.id} has {len(waiting)} gates waiting ({names}); name one: "
        f"{program()} approve {run.id} GATE{db_option(db)}",
        EXIT_USAGE,
    )


def _print_receipt(
    receipt: GateReceipt, run_id: str, gate: str, by: str, approve: bool, after: str
) -> int:
    what = f"gate {gate!r} of run {run_id}"
    match receipt.outcome:
        case ReceiptOutcome.ACCEPTED:
            say(f"{'approved' if approve else 'rejected'} {what} (by {by}); {after}")
            return EXIT_OK
        case ReceiptOutcome.APPROVAL_RECORDED:
            missing = receipt.approvals_needed - receipt.approvals
            say(
                f"approval recorded for {what} (by {by}): "
                f"{receipt.approvals}/{receipt.approvals_needed}; it waits for {missing} more"
            )
            return EXIT_OK
        case ReceiptOutcome.ALREADY_APPROVED:
            missing = receipt.approvals_needed - receipt.approvals
            say(
                f"{by} had already approved {what}; nothing changed: "
                f"{receipt.approvals}/{receipt.approvals_needed}; it waits for {missing} more"
            )
            return EXIT_OK
        case ReceiptOutcome.DEADLINE_PASSED:
            warn(
                f"runkon: {what} timed out: its deadline passed at "
                f"{local_time(receipt.deadline_at)}; the decision was refused and nothing "
                "changed (the gate times out when its run goes on)"
            )
            return EXIT_FAILED
        case ReceiptOutcome.ALREADY_RESOLVED:
            decision = str(receipt.decision) if receipt.decision else "decided"
            who = f" by {receipt.decided_by}" if receipt.decided_by else ""
            when = f" at {local_time(receipt.decided_at)}" if receipt.decided_at else ""
            warn(f"runkon: {what} was already {decision}{who}{when}; nothing changed")
            return EXIT_FAILED
        case ReceiptOutcome.NOT_WAITING:
            warn(f"runkon: {what} is not waiting for a decision; nothing changed")
            return EXIT_FAILED
    warn(f"runkon: no gate {gate!r} in run {run_id}; list waiting gates with `runkon gates`")
    return EXIT_USAGE


async def _what_next(engine: runkon.FlowEngine, run_id: str, db: str, approve: bool) -> str:
    """What happens next: the process driving the run acts on the decision at once, or,
    when no process drives it, the decision waits for a resume."""
    run = await engine.store.get_run(run_id)
    lease_until = run.lease_until
    if run.is_terminal:
        return f"the run is {run.status}"
    if run.owner_token is None or lease_until is None or lease_until < datetime.now(UTC):
        return (
            f"no process runs it now: continue it with `{program()} resume {run_id}{db_option(db)}`"
        )
    return "the run goes on" if approve else "the gate's step fails, and the run with it"
