"""The ``runkon`` command line: argument parsing and dispatch to one module per command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import structlog

import runkon
from runkon.cli import (
    _cancel,
    _decide,
    _events,
    _gates,
    _logs,
    _resume,
    _run,
    _runs,
    _serve,
    _show,
    _validate,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runkon",
        description="Run and inspect runkon workflows (.wf files).",
    )
    parser.add_argument("--version", action="version", version=f"runkon {runkon.__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the engine's log (info level) on stderr",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _validate.add_parser(commands)
    _run.add_parser(commands)
    _resume.add_parser(commands)
    _runs.add_parser(commands)
    _show.add_parser(commands)
    _logs.add_parser(commands)
    _gates.add_parser(commands)
    _decide.add_parsers(commands)
    _cancel.add_parser(commands)
    _events.add_parser(commands)
    _serve.add_parser(commands)
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
    _configure_logging(verbose=args.verbose)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # e.g. `runkon events RUN | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return EXIT_FAILED
    return code


def _configure_logging(*, verbose: bool) -> None:
    """The CLI is an application: it decides where runkon's log goes. runkon's loggers
    follow structlog's configuration once there is one; a command's own output is its
    stdout, so the log goes to stderr, and only warnings and errors unless ``--verbose``."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.INFO if verbose else logging.WARNING
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
