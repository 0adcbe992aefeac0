"""The aiohttp adapter's implementation; the public names are re-exported by
:mod:`runkon.integrations.aiohttp` (whose docstring shows how to use them)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

import anyio
from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from runkon import FlowEngine
from runkon._log import get_logger
from runkon.events import EngineEvent
from runkon.integrations._auth import Authorizer
from runkon.integrations._inbox import same_origin
from runkon.integrations._schemas import (
    CancelRequest,
    DecisionRequest,
    FeedbackRequest,
    StartRunRequest,
)
from runkon.integrations._service import (
    MAX_BODY_BYTES,
    MAX_LIST,
    MAX_SEQ,
    ApiError,
    RunkonApi,
    WorkflowCatalog,
    body_too_large,
    declared_too_large,
    encodable,
    sse_stream,
)

_log = get_logger("runkon.integrations")

RUNKON_API = web.AppKey("runkon_api", RunkonApi)
"""Where :func:`create_app` keeps its :class:`~runkon.integrations.RunkonApi`
(``app[RUNKON_API].engine`` is the engine)."""

# How often an event stream checks that its client is still there. aiohttp cancels the
# handler of a closed connection only with ``handler_cancellation=True``; without it a
# vanished client would hold its subscription until the next keepalive write fails.
DISCONNECT_CHECK_INTERVAL = 1.0

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    engine: FlowEngine,
    authorizer: Authorizer,
    *,
    workflows: WorkflowCatalog = None,
    prefix: str = "/api",
    sse_keepalive: float = 15.0,
    max_body_bytes: int = MAX_BODY_BYTES,
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
        max_body_bytes: the largest request body accepted (default 1 MiB); larger ones
            are answered 413 ``body_too_large`` without being read whole, and only
            after the caller was authenticated.

    Returns:
        The application; ``app[RUNKON_API]`` is its :class:`~runkon.integrations.RunkonApi`.
    """
    app = web.Application()
    api = RunkonApi(engine, authorizer, workflows=workflows, max_body_bytes=max_body_bytes)
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

        def report(done: asyncio.Task[None]) -> None:
            if done.cancelled() or stop.is_set() or not ready.done():
                return
            if done.exception() is not None:
                # the app keeps serving, but runs no longer progress: say so at once
                _log.error("engine stopped while the app serves", exc_info=done.exception())

        task = asyncio.create_task(hold(), name="runkon-engine")
        task.add_done_callback(report)
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
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/runs", routes.start_run),
        ("GET", "/runs", routes.list_runs),
        ("GET", "/runs/{run_id}", routes.get_run),
        ("GET", "/runs/{run_id}/steps/{step}/logs", routes.step_logs),
        ("POST", "/runs/{run_id}/cancel", routes.cancel_run),
        ("GET", "/gates", routes.waiting_gates),
        ("POST", "/runs/{run_id}/gates/{gate}/approve", routes.approve),
        ("POST", "/runs/{run_id}/gates/{gate}/reject", routes.reject),
        ("POST", "/runs/{run_id}/gates/{gate}/feedback", routes.feedback),
        ("GET", "/runs/{run_id}/events", routes.events),
    ]
    for method, path, handler in table:
        app.router.add_route(method, base + path, _guarded(handler))
    app.on_shutdown.append(routes.close_streams)


# --------------------------------------------------------------------------- handlers

_LIMIT = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_LIST)])
_AFTER = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_SEQ)])


def _guarded(handler: Handler) -> Handler:
    """Answer an :class:`ApiError` as its ``ErrorOut`` JSON and status."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return web.json_response(exc.body(), status=exc.status, headers=headers)

    return guarded


def _json(payload: BaseModel | list[Any], *, status: int = 200) -> web.Response:
    if isinstance(payload, BaseModel):
        body: Any = payload.model_dump(mode="json")
    else:
        body = [item.model_dump(mode="json") for item in payload]
    return web.json_response(body, status=status)


def _invalid_request(errors: list[dict[str, Any]]) -> ApiError:
    """A 422 ``invalid_request`` worded as the FastAPI router words it."""
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"invalid request: {where}: {first.get('msg', 'invalid')}; fix it and resend"
    return ApiError(422, "invalid_request", message, {"errors": errors})


_JSON_SCALARS = (str, int, float, bool, type(None))


def _errors(exc: ValidationError, *loc: str) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = encodable(exc.errors(include_url=False))
    for error in errors:
        if "ctx" in error:  # e.g. the ValueError of a validator, as FastAPI shows it
            error["ctx"] = {
                key: encodable(value if isinstance(value, _JSON_SCALARS) else str(value))
                for key, value in error["ctx"].items()
            }
    for error in errors:
        error["loc"] = [*loc, *error["loc"]]
    return errors


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is over ``limit`` bytes."""
    if declared_too_large(request.headers.get("Content-Length"), limit):
        raise body_too_large(limit)
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise body_too_large(limit)
    return bytes(body)


async def _body(
    request: web.Request, model: type[ModelT], *, optional: bool, api: RunkonApi
) -> ModelT:
    """The JSON request body as ``model``; an absent (or ``null``) body is ``model()``
    when ``optional``. A body must be sent as ``application/json``. Errors are worded as
    FastAPI words them (the same JSON answers). The caller is authenticated first, so an
    anonymous request gets its 401 before its body is read.

    Raises:
        ApiError: 401 without valid credentials, 413 ``body_too_large`` for a body over
            ``api.max_body_bytes``, 422 ``invalid_request`` for a missing, malformed or
            invalid body.
    """
    await api.identify(request.headers)
    raw = await _read_capped(request, api.max_body_bytes)
    if raw and not _is_json(request):
        # as FastAPI does: only a JSON content type is parsed (a browser form cannot
        # post JSON cross-site without a preflight)
        try:
            return model.model_validate(raw, from_attributes=True)
        except ValidationError as exc:
            raise _invalid_request(_errors(exc, "body")) from exc
    try:
        data = json.loads(raw) if raw.strip() else None
    except RecursionError as exc:
        deep = {"type": "json_invalid", "loc": ["body"], "msg": "JSON nested too deeply"}
        raise _invalid_request([deep]) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.reason
        malformed = {
            "type": "json_invalid",
            "loc": ["body", position],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": reason},
        }
        raise _invalid_request([malformed]) from exc
    if data is None:
        if optional:
            return model()
        missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
        raise _invalid_request([missing])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid_request(_errors(exc, "body")) from exc


def _is_json(request: web.Request) -> bool:
    if "Content-Type" not in request.headers:
        return False
    kind, _, subtype = request.content_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _query(request: web.Request, name: str, adapter: TypeAdapter[int]) -> int | None:
    """Query parameter ``name`` validated by ``adapter``; ``None`` when absent."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        raise _invalid_request(_errors(exc, "query", name)) from exc


def _same_site(request: web.Request) -> None:
    """Refuse a cookie-authenticated (browser) write that another site's page sent."""
    if "Authorization" in request.headers:
        return
    if not same_origin(request.headers, f"{request.scheme}://{request.host}"):
        raise ApiError(403, "cross_site", "cross-site requests are refused; call the API directly")


class _Routes:
    """The request handlers of one :func:`add_routes` call."""

    def __init__(self, api: RunkonApi, sse_keepalive: float) -> None:
        self.api = api
        self.sse_keepalive = sse_keepalive
        self._open_streams: set[anyio.CancelScope] = set()

    async def start_run(self, request: web.Request) -> web.Response:
        body = await _body(request, StartRunRequest, optional=False, api=self.api)
        _same_site(request)
        return _json(await self.api.start_run(request.headers, body), status=201)

    async def list_runs(self, request: web.Request) -> web.Response:
        limit = _query(request, "limit", _LIMIT)
        runs = await self.api.list_runs(
            request.headers,
            status=request.query.get("status"),
            workflow=request.query.get("workflow"),
            limit=100 if limit is None else limit,
        )
        return _json(runs)

    async def get_run(self, request: web.Request) -> web.Response:
        return _json(await self.api.get_run(request.headers, request.match_info["run_id"]))

    async def step_logs(self, request: web.Request) -> web.Response:
        run_id, step = request.match_info["run_id"], request.match_info["step"]
        return _json(await self.api.step_logs(request.headers, run_id, step))

    async def cancel_run(self, request: web.Request) -> web.Response:
        body = await _body(request, CancelRequest, optional=True, api=self.api)
        _same_site(request)
        run_id = request.match_info["run_id"]
        return _json(await self.api.cancel_run(request.headers, run_id, body))

    async def waiting_gates(self, request: web.Request) -> web.Response:
        limit = _query(request, "limit", _LIMIT)
        gates = await self.api.waiting_gates(
            request.headers,
            run_id=request.query.get("run_id"),
            workflow=request.query.get("workflow"),
            gate_type=request.query.get("gate_type"),
            limit=100 if limit is None else limit,
        )
        return _json(gates)

    async def approve(self, request: web.Request) -> web.Response:
        body = await _body(request, DecisionRequest, optional=True, api=self.api)
        _same_site(request)
        run_id, gate = request.match_info["run_id"], request.match_info["gate"]
        return _json(await self.api.approve(request.headers, run_id, gate, body))

    async def reject(self, request: web.Request) -> web.Response:
        body = await _body(request, DecisionRequest, optional=True, api=self.api)
        _same_site(request)
        run_id, gate = request.match_info["run_id"], request.match_info["gate"]
        return _json(await self.api.reject(request.headers, run_id, gate, body))

    async def feedback(self, request: web.Request) -> web.Response:
        body = await _body(request, FeedbackRequest, optional=False, api=self.api)
        _same_site(request)
        run_id, gate = request.match_info["run_id"], request.match_info["gate"]
        return _json(await self.api.feedback(request.headers, run_id, gate, body))

    # ----------------------------------------------------------------- events

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The run's events as SSE, after ``Last-Event-ID`` (or ``?after=``), until the
        run finishes (``event: end``), the client goes away or the app shuts down."""
        after = _query(request, "after", _AFTER)
        last_event_id = request.headers.get("Last-Event-ID") or (
            str(after) if after is not None else None
        )
        run_id = request.match_info["run_id"]
        events = await self.api.open_events(request.headers, run_id, last_event_id)
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
