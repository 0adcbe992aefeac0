"""``runkon serve``: the HTTP API and the web inbox on the SQLite database (uvicorn).

The server lives in ``runkon.integrations.server`` and needs the ``fastapi`` extra; it is
imported only when this command runs, so the rest of the CLI works without it.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

import runkon
from runkon.cli._actions import (
    MEMO_ACTIONS,
    LoadedActions,
    check_calls,
    load_actions,
    stored_actions,
)
from runkon.cli._common import (
    DEFAULT_DB,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_db_argument,
    say,
    warn,
)
from runkon.engine import ActionRegistry
from runkon.errors import SchemaVersionError, StoreBackendError

SERVER_MODULE = "runkon.integrations.server"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the HTTP API and the web inbox",
        description="Serve runkon's HTTP API and the web inbox of waiting gates on the "
        "SQLite database, with uvicorn. Requests need the token (--token, else "
        "$RUNKON_TOKEN, else one is generated and printed at start). Needs the fastapi "
        "extra: pip install 'runkon[fastapi]'.",
    )
    add_db_argument(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--token", metavar="TOKEN", help="the API token (default: $RUNKON_TOKEN)")
    parser.add_argument(
        "--actions",
        metavar="MODULE_OR_DIR",
        help="executors for runs started over HTTP, as for `runkon run` (default: "
        "./actions/); runs that `runkon run` started and serve recovers keep their own",
    )
    parser.add_argument(
        "--workflows", metavar="DIR", help="directory of the workflows runs are started from"
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help="serve the API docs at /docs and /openapi.json (readable without a token)",
    )
    parser.set_defaults(handler=serve)


class RecoveredActions:
    """``FlowEngine(run_actions=...)`` for serve: a run that ``runkon run`` started is
    recovered with the actions it was started with (its ``--actions``, loaded from its
    working directory, as ``runkon resume`` does); other runs with serve's own."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str | None], tuple[LoadedActions, str]] = {}

    def __call__(self, run: runkon.persistence.RunRecord) -> ActionRegistry | None:
        spec = run.memo.get(MEMO_ACTIONS)
        if spec is None:
            return None
        key = (spec, run.working_dir)
        try:
            if key not in self._loaded:
                self._loaded[key] = stored_actions(run, None)
            loaded, using = self._loaded[key]
            workflow = runkon.WorkflowDef.from_json(run.definition_snapshot or "")
        except CliError as exc:
            raise runkon.ExecutionError(exc.message) from None
        problems = check_calls(workflow, loaded)
        if problems:
            raise runkon.ExecutionError(
                f"run {run.id} cannot resume with {loaded.source}: " + "; ".join(problems)
            )
        say(f"recovering run {run.id} with {using}")
        return ActionRegistry(loaded.actions, loaded.fallback_action)


def serve(args: argparse.Namespace) -> int:
    try:
        loaded = load_actions(args.actions)
    except CliError as exc:
        warn(f"runkon: {exc.message}")
        return exc.code
    try:
        server = importlib.import_module(SERVER_MODULE)
        run_server = server.serve
        serve_error = server.ServeError
    except (ImportError, AttributeError) as exc:
        warn(
            f"runkon: `runkon serve` needs the web server and its dependencies ({exc}); "
            "install them with: pip install 'runkon[fastapi]'"
        )
        return EXIT_USAGE
    try:
        run_server(
            db=args.db or DEFAULT_DB,
            host=args.host,
            port=args.port,
            token=args.token or os.environ.get("RUNKON_TOKEN") or None,
            actions=loaded.actions,
            fallback_action=loaded.fallback_action,
            workflows_dir=args.workflows,
            docs=args.docs,
            run_actions=RecoveredActions(),
        )
    except KeyboardInterrupt:
        pass
    except serve_error as exc:
        warn(f"runkon: {exc}")
        usage = isinstance(exc.__cause__, StoreBackendError | SchemaVersionError)
        return EXIT_USAGE if usage else EXIT_FAILED  # --db names no runkon database: 2
    return EXIT_OK
