"""``runkon serve``'s implementation: the API and the web inbox over one SQLite database,
served by uvicorn. Public as :func:`runkon.integrations.server.serve`."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import FrameType
from typing import Any, TextIO

import uvicorn
from fastapi import FastAPI

from runkon import FlowEngine, RunkonError, SqliteStore
from runkon.engine import ActionRegistry
from runkon.integrations._auth import TokenAuthorizer
from runkon.integrations._fastapi import EventStreamResponse, create_app
from runkon.persistence import RunRecord

TOKEN_ENV = "RUNKON_TOKEN"
UVICORN_LOGGER = "uvicorn.error"
GRACEFUL_SHUTDOWN = 3  # seconds open streams (inbox pages, SSE) get to close on exit


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (e.g. a container without a passwd entry)
        return "operator"


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def serve(
    *,
    db: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    actions: Mapping[str, Any] | None = None,
    fallback_action: Any | None = None,
    workflows_dir: str | None = None,
    docs: bool = False,
    run_actions: Callable[[RunRecord], ActionRegistry | None] | None = None,
) -> None:
    """Serve runkon's JSON API (``/api``) and web inbox (``/inbox``) until interrupted.

    Builds ``FlowEngine(SqliteStore(db), ..., recover=True)`` — runs left behind by a
    crashed process are resumed — and runs it in the app's lifespan under uvicorn.
    Runs started over HTTP come from ``workflows_dir`` (``<name>.wf``); gates of runs
    that other processes drive on the same database show up in the inbox too.

    Args:
        db: the SQLite database file (created if missing).
        host: the interface to listen on (``127.0.0.1``: this machine only).
        port: the TCP port (0: any free port; the address is printed).
        token: the bearer token that grants access; default ``$RUNKON_TOKEN``, else a
            random one, printed at start with the inbox's sign-in link.
        actions: executors by name, for the runs this server drives.
        fallback_action: executor for every other call name.
        workflows_dir: the directory of ``.wf`` files ``POST /api/runs`` starts by name.
        docs: serve the API docs (``/docs``, ``/openapi.json``), which need no token;
            off by default.
        run_actions: the executors of each run the server resumes (recovery), e.g.
            those its starter noted in ``RunRecord.memo`` (see ``FlowEngine``); None:
            ``actions``/``fallback_action`` for all. Recovered runs run their steps in
            their own working directory in any case.

    Blocks until Ctrl-C or SIGTERM; open streams get a few seconds to close, and runs
    still going stay resumable.

    Raises:
        ServeError: the server could not start (the database cannot be opened, the port
            is taken, ...); nothing is served. Its message is one line, and its
            ``__cause__`` the runkon error behind it, if any.
    """
    chosen = token or os.environ.get(TOKEN_ENV) or None
    generated = chosen is None
    secret = chosen if chosen is not None else secrets.token_urlsafe(24)
    engine = FlowEngine(
        SqliteStore(db),
        actions=actions,
        fallback_action=fallback_action,
        workflows=workflows_dir,
        recover=True,
        run_actions=run_actions,
    )
    app = build_app(engine, secret, workflows_dir, docs=docs)
    failures: list[BaseException] = []
    _record_startup_failure(app, failures)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    announce = _Announcement(db, workflows_dir, secret if generated else None, docs=docs)
    startup_errors = _StartupErrors()
    server = _Server(config, host, announce, startup_errors)
    uvicorn_log = logging.getLogger(UVICORN_LOGGER)
    uvicorn_log.addFilter(startup_errors)
    try:
        with _terminate_returns():
            asyncio.run(server.serve())
    except SystemExit:  # uvicorn's way to give up at startup (exit status 3)
        if server.started:
            raise
        cause = failures[0] if failures else None
        raise ServeError(_startup_problem(cause, startup_errors.messages, host, port)) from cause
    finally:
        uvicorn_log.removeFilter(startup_errors)


class ServeError(RunkonError):
    """``runkon serve`` could not start; the message says why, in one line."""


def _startup_problem(cause: BaseException | None, logged: list[str], host: str, port: int) -> str:
    if isinstance(cause, RunkonError):
        return f"the server could not start: {cause}"
    if cause is not None:
        return f"the server could not start: {type(cause).__name__}: {cause}"
    detail = logged[0].splitlines()[0] if logged else "see the messages above"
    return f"the server could not start on {host}:{port}: {detail}"


def _record_startup_failure(app: FastAPI, failures: list[BaseException]) -> None:
    """Wrap ``app``'s lifespan so that an error while it starts (the engine opening the
    database) is kept in ``failures`` for a one-line report, not a logged traceback."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        started = False
        try:
            async with inner(app) as state:
                started = True
                yield state
        except Exception as exc:
            if not started:
                failures.append(exc)
            raise

    app.router.lifespan_context = lifespan


class _StartupErrors(logging.Filter):
    """Keeps, and hides, what uvicorn logs as errors until the server listens: serve
    reports a failed start in one line of its own (uvicorn would print the lifespan's
    traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.listening = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.listening or record.levelno < logging.ERROR:
            return True
        self.messages.append(record.getMessage())
        return False


SERVE_NO_CATALOG_HINT = "restart `runkon serve` with --workflows DIR (a directory of .wf files)"


def build_app(
    engine: FlowEngine, token: str, workflows_dir: str | None, *, docs: bool = False
) -> FastAPI:
    """The app :func:`serve` runs: one token for the operator, answers worded for
    ``runkon serve``'s users (its flags, not the library's arguments), the API docs
    only when asked for (``--docs``)."""
    app = create_app(
        engine, TokenAuthorizer({token: _operator()}), workflows=workflows_dir, docs=docs
    )
    app.state.runkon.no_catalog_hint = SERVE_NO_CATALOG_HINT
    return app


class _Terminated(BaseException):
    """SIGTERM arrived (uvicorn re-raises it once it has shut down gracefully)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextlib.contextmanager
def _terminate_returns() -> Iterator[None]:
    """Ctrl-C and SIGTERM end :func:`serve` by returning, after the graceful shutdown."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        yield
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


class _Announcement:
    def __init__(
        self, db: str, workflows_dir: str | None, generated_token: str | None, *, docs: bool
    ) -> None:
        self.db = db
        self.docs = docs
        self.workflows_dir = workflows_dir
        self.generated_token = generated_token

    def print(self, url: str, out: TextIO) -> None:
        lines = [f"runkon serve: database {self.db}"]
        if self.workflows_dir is not None:
            lines.append(f"  workflows: {self.workflows_dir}/<name>.wf")
        docs = f"; docs at {url}/docs" if self.docs else ""
        lines.append(f"  API:   {url}/api  (Authorization: Bearer <token>{docs})")
        if self.generated_token is not None:
            lines.append(f"  inbox: {url}/inbox/sign-in?token={self.generated_token}")
            lines.append(
                f"  token: {self.generated_token}  (generated; set {TOKEN_ENV} to choose one)"
            )
        else:
            lines.append(f"  inbox: {url}/inbox  (sign in with the token from {TOKEN_ENV})")
        lines.append("Press Ctrl-C to stop.")
        print("\n".join(lines), file=out, flush=True)


class _Server(uvicorn.Server):
    """Prints where it listens once it does (the port may have been 0)."""

    def __init__(
        self,
        config: uvicorn.Config,
        host: str,
        announce: _Announcement,
        startup_errors: _StartupErrors,
    ) -> None:
        super().__init__(config)
        self._host = host
        self._announce = announce
        self._startup_errors = startup_errors

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        EventStreamResponse.close_all()  # open inbox pages and SSE clients must not hold us
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._startup_errors.listening = True
        if self.started and self.servers:
            port = self.servers[0].sockets[0].getsockname()[1]
            self._announce.print(f"http://{_display_host(self._host)}:{port}", sys.stdout)
