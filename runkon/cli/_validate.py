"""``runkon validate FILE...``: parse and validate workflows, print every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import runkon
from runkon.dsl import DirectoryWorkflowResolver, ValidationIssue

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "validate",
        help="check .wf files for syntax and semantic errors",
        description=(
            "Parse and validate each FILE. Prints one line per problem as "
            "'file:line:col: message'. Exit status: 0 all valid, 1 any invalid, "
            "2 usage error (e.g. a file that cannot be read)."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=".wf files to check")
    parser.add_argument(
        "--workflows",
        metavar="DIR",
        help="directory of child workflows for `call workflow` / `foreach` "
        "(default: each file's own directory)",
    )
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors (exit 1)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print problems only, no summary"
    )
    parser.set_defaults(handler=run)


def _print_issue(issue: ValidationIssue, source: str) -> None:
    text = str(issue)
    if issue.location is None:
        text = f"{source}: {text}"
    if issue.severity == "warning":
        head, sep, tail = text.partition(": ")
        text = f"{head}: warning: {tail}" if sep else f"warning: {text}"
    print(text)


def run(args: argparse.Namespace) -> int:
    invalid = unreadable = 0
    for name in args.files:
        path = Path(name)
        try:
            workflow = runkon.load_workflow(path)
        except runkon.WorkflowNotFoundError as exc:
            print(f"runkon validate: cannot read {name!r}: {exc.detail}", file=sys.stderr)
            unreadable += 1
            continue
        except runkon.DslSyntaxError as exc:
            print(exc)
            invalid += 1
            continue
        resolver = DirectoryWorkflowResolver(args.workflows or path.parent)
        report = runkon.validate_workflow(workflow, resolver=resolver)
        for issue in (*report.errors, *report.warnings):
            _print_issue(issue, name)
        if report.errors or (args.strict and report.warnings):
            invalid += 1
    if not args.quiet:
        checked = len(args.files)
        valid = checked - invalid - unreadable
        summary = f"{checked} file(s) checked: {valid} valid, {invalid} invalid"
        if unreadable:
            summary += f", {unreadable} unreadable"
        print(summary, file=sys.stderr)
    if unreadable:
        return EXIT_USAGE
    return EXIT_INVALID if invalid else EXIT_OK
