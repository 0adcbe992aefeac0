"""runkon in an aiohttp app: the engine started with the app, and the HTTP API.

The same routes and JSON as :mod:`runkon.integrations.fastapi`, over the same
framework-neutral :class:`~runkon.integrations.RunkonApi` (authentication, authorization,
error answers). Paths are relative to ``prefix`` (``/api`` by default)::

    POST /runs                                  start a run       (StartRunRequest)
    GET  /runs?status=&workflow=&limit=         list runs         -> [RunOut]
    GET  /runs/{run_id}                         a run and steps   -> RunDetailOut
    POST /runs/{run_id}/cancel                  cancel a run      (CancelRequest, optional)
    GET  /gates?run_id=&workflow=&gate_type=&limit=   the inbox   -> [GateOut]
    POST /runs/{run_id}/gates/{gate}/approve    approve           (DecisionRequest, optional)
    POST /runs/{run_id}/gates/{gate}/reject     reject            (DecisionRequest, optional)
    POST /runs/{run_id}/gates/{gate}/feedback   approve with feedback (FeedbackRequest)
    GET  /runs/{run_id}/events?after=           server-sent events, resumable

Every error is answered with an ``ErrorOut`` body (``{"error", "message", "detail"}``):
a malformed JSON body, a body the model rejects or a query parameter of the wrong type is
a 422 ``invalid_request``; the rest come from :class:`~runkon.integrations.ApiError`.

Example::

    from runkon.integrations import TokenAuthorizer
    from runkon.integrations.aiohttp import create_app

    app = create_app(engine, TokenAuthorizer({"s3cret": "alice"}), workflows="flows/")
    web.run_app(app)

Needs the ``aiohttp`` extra (``pip install 'runkon[aiohttp]'``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar, cast

import anyio
from aiohttp import web
from pydantic import BaseModel, ValidationError

from runkon import FlowEngine
from runkon.events import EngineEvent
from runkon.integrations._auth import Authorizer
from runkon.integrations._schemas import (
    CancelRequest,
    DecisionRequest,
    FeedbackRequest,
    StartRunRequest,
)
from runkon.integrations._service import ApiError, RunkonApi, WorkflowCatalog, sse_stream

__all__ = ["RUNKON_API", "add_routes", "create_app", "engine_context"]

RUNKON_API = web.AppKey("runkon_api", RunkonApi)
"""Where :func:`create_app` keeps its :class:`~runkon.integrations.RunkonApi`
(``app[RUNKON_API].engine`` is the engine)."""

# How often an event stream checks that its client is still there. aiohttp cancels the
# handler of a closed connection only with ``handler_cancellation=True``; without it a
# vanished client would hold its subscription until the next keepalive write fails.
DISCONNECT_CHECK_INTERVAL = 1.0

ModelT = TypeVar("ModelT", bound=BaseModel)


def create_app(
    engine: FlowEngine,
    authorizer: Authorizer,
    *,
    workflows: WorkflowCatalog = None,
    prefix: str = "/api",
    sse_keepalive: float = 15.0,
) -> web.Application:
    """An aiohttp application serving runkon's HTTP API over ``engine``.

    The engine is entered (``async with engine``) when the app starts and left when it
    shuts down, after the open event streams were ended.

    Args:
        engine: the engine; not yet entered.
        authorizer: the authorization hook (e.g. a
            :class:`~runkon.integrations.TokenAuthorizer`).
        workflows: the catalog runs may be started from by name (a resolver, a
            directory of ``.wf`` files or a mapping name -> WorkflowDef); ``None``
            refuses ``POST /runs`` with 404.
        prefix: the path the routes are mounted under (``""`` for the root).
        sse_keepalive: idle seconds after which an event stream sends a comment line.

    Returns:
        The application; ``app[RUNKON_API]`` is its :class:`~runkon.integrations.RunkonApi`.
    """
    app = web.Application()
    api = RunkonApi(engine, authorizer, workflows=workflows)
    app[RUNKON_API] = api
    app.cleanup_ctx.append(engine_context(engine))
    add_routes(app, api, prefix=prefix, sse_keepalive=sse_keepalive)
    return app


def engine_context(
    engine: FlowEngine,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context (for ``app.cleanup_ctx``) that runs ``engine`` while the app
    runs: use it with :func:`add_routes` on an app of your own.

    The engine is entered and left by a task of its own, so the app may be started and
    cleaned up by different tasks (as test fixtures do). A failure to start the engine
    fails the app's startup.
    """

    async def run_engine(app: web.Application) -> AsyncIterator[None]:
        ready = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            async with engine:
                ready.set_result(None)
                await stop.wait()

        task = asyncio.create_task(hold(), name="runkon-engine")
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            await task  # raises why the engine did not start
        try:
            yield
        finally:
            stop.set()
            await task

    return run_engine


def add_routes(
    app: web.Application, api: RunkonApi, *, prefix: str = "/api", sse_keepalive: float = 15.0
) -> None:
    """Add runkon's routes under ``prefix`` to an existing (not yet started) ``app``.

    The engine's lifetime stays yours (see :func:`engine_context`). An ``on_shutdown``
    hook ends the event streams still open, so the server does not wait for them.
    """
    routes = _Routes(api, sse_keepalive)
    base = prefix.rstrip("/")
    app.router.add_post(f"{base}/runs", routes.start_run)
    app.router.add_get(f"{base}/runs", routes.list_runs)
    app.router.add_get(f"{base}/runs/{{run_id}}", routes.get_run)
    app.router.add_post(f"{base}/runs/{{run_id}}/cancel", routes.cancel_run)
    app.router.add_get(f"{base}/gates", routes.waiting_gates)
    app.router.add_post(f"{base}/runs/{{run_id}}/gates/{{gate}}/approve", routes.approve)
    app.router.add_post(f"{base}/runs/{{run_id}}/gates/{{gate}}/reject", routes.reject)
    app.router.add_post(f"{base}/runs/{{run_id}}/gates/{{gate}}/feedback", routes.feedback)
    app.router.add_get(f"{base}/runs/{{run_id}}/events", routes.events)
    app.on_shutdown.append(routes.close_streams)


# --------------------------------------------------------------------------- handlers


def _json(payload: BaseModel | list[Any], *, status: int = 200) -> web.Response:
    if isinstance(payload, BaseModel):
        body: Any = payload.model_dump(mode="json")
    else:
        body = [item.model_dump(mode="json") for item in payload]
    return web.json_response(body, status=status)


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status)


def _invalid(message: str, errors: list[Any]) -> ApiError:
    return ApiError(422, "invalid_request", message, {"errors": errors})


async def _body(request: web.Request, model: type[ModelT], *, optional: bool) -> ModelT:
    """The request body as ``model``; an absent body is ``model()`` when ``optional``."""
    raw = await request.read()
    if not raw.strip() and optional:
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False))
        if any(error.get("type") == "json_invalid" for error in errors):
            raise _invalid(
                "the request body is not valid JSON; send a JSON object", errors
            ) from exc
        raise _invalid(
            f"the request body is not a valid {model.__name__}; see detail.errors", errors
        ) from exc


def _query_int(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise _invalid(
            f"query parameter {name!r} must be an integer, not {raw!r}",
            [{"type": "int_parsing", "loc": ["query", name], "msg": "not an integer"}],
        ) from None


class _Routes:
    """The request handlers of one :func:`add_routes` call."""

    def __init__(self, api: RunkonApi, sse_keepalive: float) -> None:
        self.api = api
        self.sse_keepalive = sse_keepalive
        self._open_streams: set[anyio.CancelScope] = set()

    async def start_run(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request, StartRunRequest, optional=False)
            return _json(await self.api.start_run(request.headers, body), status=201)
        except ApiError as exc:
            return _error(exc)

    async def list_runs(self, request: web.Request) -> web.Response:
        try:
            limit = _query_int(request, "limit", 100)
            assert limit is not None
            runs = await self.api.list_runs(
                request.headers,
                status=request.query.get("status"),
                workflow=request.query.get("workflow"),
                limit=limit,
            )
            return _json(runs)
        except ApiError as exc:
            return _error(exc)

    async def get_run(self, request: web.Request) -> web.Response:
        try:
            return _json(await self.api.get_run(request.headers, request.match_info["run_id"]))
        except ApiError as exc:
            return _error(exc)

    async def cancel_run(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request, CancelRequest, optional=True)
            run_id = request.match_info["run_id"]
            return _json(await self.api.cancel_run(request.headers, run_id, body))
        except ApiError as exc:
            return _error(exc)

    async def waiting_gates(self, request: web.Request) -> web.Response:
        try:
            limit = _query_int(request, "limit", 100)
            assert limit is not None
            gates = await self.api.waiting_gates(
                request.headers,
                run_id=request.query.get("run_id"),
                workflow=request.query.get("workflow"),
                gate_type=request.query.get("gate_type"),
                limit=limit,
            )
            return _json(gates)
        except ApiError as exc:
            return _error(exc)

    async def approve(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request, DecisionRequest, optional=True)
            run_id, gate = request.match_info["run_id"], request.match_info["gate"]
            return _json(await self.api.approve(request.headers, run_id, gate, body))
        except ApiError as exc:
            return _error(exc)

    async def reject(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request, DecisionRequest, optional=True)
            run_id, gate = request.match_info["run_id"], request.match_info["gate"]
            return _json(await self.api.reject(request.headers, run_id, gate, body))
        except ApiError as exc:
            return _error(exc)

    async def feedback(self, request: web.Request) -> web.Response:
        try:
            body = await _body(request, FeedbackRequest, optional=False)
            run_id, gate = request.match_info["run_id"], request.match_info["gate"]
            return _json(await self.api.feedback(request.headers, run_id, gate, body))
        except ApiError as exc:
            return _error(exc)

    # ----------------------------------------------------------------- events

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The run's events as SSE, after ``Last-Event-ID`` (or ``?after=``), until the
        run finishes (``event: end``), the client goes away or the app shuts down."""
        try:
            after = _query_int(request, "after", None)
            last_event_id = request.headers.get("Last-Event-ID")
            if last_event_id is None and after is not None:
                last_event_id = str(after)
            run_id = request.match_info["run_id"]
            events = await self.api.open_events(request.headers, run_id, last_event_id)
        except ApiError as exc:
            return _error(exc)
        response = web.StreamResponse(
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        await response.prepare(request)
        scope = anyio.CancelScope()
        self._open_streams.add(scope)
        try:
            with scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._write_frames, response, events, group.cancel_scope)
                    group.start_soon(_watch_disconnect, request, group.cancel_scope)
        finally:
            self._open_streams.discard(scope)
        return response

    async def _write_frames(
        self,
        response: web.StreamResponse,
        events: AsyncIterator[EngineEvent],
        done: anyio.CancelScope,
    ) -> None:
        # The frames generator holds a task group across its yields, so it is iterated
        # and closed in this one task, with no cancel scope entered in between.
        frames = cast("AsyncGenerator[str, None]", sse_stream(events, keepalive=self.sse_keepalive))
        try:
            async for frame in frames:
                await response.write(frame.encode())
        except ConnectionResetError:
            pass  # the client went away
        finally:
            await frames.aclose()
        done.cancel()

    async def close_streams(self, app: web.Application) -> None:
        """End every open event stream (``on_shutdown``)."""
        for scope in list(self._open_streams):
            scope.cancel()


async def _watch_disconnect(request: web.Request, done: anyio.CancelScope) -> None:
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            break
        await anyio.sleep(DISCONNECT_CHECK_INTERVAL)
    done.cancel()
