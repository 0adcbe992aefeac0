"""The ``runkon`` command line: argument parsing and dispatch to one module per command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import runkon
from runkon.cli import _validate

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runkon",
        description="Run and inspect runkon workflows (.wf files).",
    )
    parser.add_argument("--version", action="version", version=f"runkon {runkon.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _validate.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``runkon`` command; returns the process exit code.

    Exit codes: 0 success, 1 the command ran and found a problem (an invalid workflow,
    a failed run), 2 a usage error (bad arguments, unreadable file).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = args.handler(args)
    return code
