"""The FastAPI adapter's implementation; the public names are re-exported by
:mod:`runkon.integrations.fastapi` (whose docstring shows how to use them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Annotated, Any, ClassVar

import anyio
from fastapi import APIRouter, Body, FastAPI, Header, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, HTTPBearer
from starlette.responses import StreamingResponse
from starlette.types import Send

from runkon import FlowEngine
from runkon.integrations._auth import Authorizer, TokenAuthorizer
from runkon.integrations._docs import add_docs
from runkon.integrations._inbox import (
    MAX_FORM_BYTES,
    PAGE_LIMIT,
    RECENT_RUNS,
    InboxCsrf,
    InboxFeed,
    Notice,
    clear_session_cookie,
    cookie_safe,
    decide,
    new_nonce,
    parse_form,
    render_list,
    render_page,
    render_problem,
    render_sign_in,
    return_path,
    same_origin,
    security_headers,
    session_cookie,
)
from runkon.integrations._run_page import load_run, render_run, render_run_page, run_changes
from runkon.integrations._schemas import (
    CancelOut,
    CancelRequest,
    DecisionRequest,
    ErrorOut,
    FeedbackRequest,
    GateOut,
    ReceiptOut,
    RunDetailOut,
    RunOut,
    StartedRunOut,
    StartRunRequest,
    StepLogsOut,
)
from runkon.integrations._service import (
    MAX_BODY_BYTES,
    MAX_SEQ,
    ApiError,
    RunkonApi,
    WorkflowCatalog,
    body_too_large,
    declared_too_large,
    encodable,
    sse_stream,
)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def runkon_lifespan(engine: FlowEngine, inner: Lifespan | None = None) -> Lifespan:
    """A FastAPI ``lifespan`` that runs ``engine`` while the app serves.

    The engine (its store, lease keeper and notification listener) starts before the
    first request and stops after the last; runs still going at shutdown stay
    resumable. ``inner`` is the app's own lifespan, entered inside the engine's.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine:
            if inner is None:
                yield
            else:
                async with inner(app):
                    yield

    return lifespan


# --------------------------------------------------------------------------- errors


def _error_response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    problems = encodable(jsonable_encoder(exc.errors()))
    first = problems[0] if problems else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = f"invalid request: {where}: {first.get('msg', 'invalid')}; fix it and resend"
    body = ErrorOut(error="invalid_request", message=message, detail={"errors": problems})
    return JSONResponse(body.model_dump(mode="json"), status_code=422)


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk and refused (413) as soon as it is over
    ``limit`` bytes, so a huge body is never held whole. The body is kept on the
    request, where FastAPI's own parsing finds it.

    Raises:
        ApiError: 413 ``body_too_large``.
    """
    if declared_too_large(request.headers.get("content-length"), limit):
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's cache of the body: FastAPI parses this one
    return body


class _RunkonRoute(APIRoute):
    """Answers :class:`ApiError` and request-validation errors as ``ErrorOut`` JSON, so
    the router needs no app-level exception handlers.

    A request that may carry a body is authenticated before the body is read (401 first,
    without reading it), then the body is read up to the api's ``max_body_bytes`` (413
    beyond)."""

    api: RunkonApi | None = None  # set by :func:`_route_class`

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        api = self.api

        async def guarded(request: Request) -> Response:
            try:
                if api is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
                    await api.identify(request.headers)
                    await read_capped(request, api.max_body_bytes)
                response: Response = await handler(request)
            except ApiError as exc:
                return _error_response(exc)
            except RequestValidationError as exc:
                return _validation_response(exc)
            return response

        return guarded


def _route_class(api: RunkonApi) -> type[APIRoute]:
    """:class:`_RunkonRoute` bound to ``api`` (for authentication and the body cap)."""
    return type("RunkonRoute", (_RunkonRoute,), {"api": api})


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _doc("No valid credentials"),
    403: _doc("The authorization hook refused"),
    413: _doc("The request body is over the server's limit"),
    422: _doc("Invalid request"),
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _doc("Unknown run or gate")}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _doc(
        "The gate is already decided, not waiting, or its deadline passed (the receipt in detail)"
    )
}

# Documented in OpenAPI; authentication itself is the Authorizer's job.
_bearer = HTTPBearer(auto_error=False, description="a token the Authorizer knows")
_cookie = APIKeyCookie(
    name=TokenAuthorizer.cookie_name,
    auto_error=False,
    description="the web inbox's sign-in cookie",
)


# --------------------------------------------------------------------------- SSE


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` answer, unbuffered by proxies, whose frames generator is
    always closed in the task that iterated it (also when the client disconnects).

    Event streams never end by themselves while their run (or the inbox) lives, and
    uvicorn waits for open responses before it shuts down: :meth:`close_all` ends every
    open stream cleanly. ``runkon serve`` calls it when it begins to shut down; with
    your own uvicorn, call it from your shutdown path or pass
    ``--timeout-graceful-shutdown``.
    """

    # None at class level: FastAPI then documents the route's error answers as JSON (the
    # 200 answer's text/event-stream is documented on the route itself).
    media_type = None
    _open: ClassVar[set[anyio.CancelScope]] = set()

    def __init__(self, frames: AsyncIterator[str]) -> None:
        super().__init__(
            frames,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            media_type="text/event-stream",
        )
        self._frames = frames

    @classmethod
    def close_all(cls) -> int:
        """End every event stream open in this process now (each response completes
        normally; an ``EventSource`` would reconnect). Returns how many were open."""
        scopes = list(cls._open)
        for scope in scopes:
            scope.cancel()
        return len(scopes)

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        scope = anyio.CancelScope()
        self._open.add(scope)
        try:
            async with aclosing(self._frames):  # type: ignore[type-var]
                with scope:
                    async for frame in self._frames:
                        body = frame.encode(self.charset)
                        await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self._open.discard(scope)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _api(
    engine: FlowEngine | RunkonApi,
    authorizer: Authorizer | None,
    workflows: WorkflowCatalog,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> RunkonApi:
    if isinstance(engine, RunkonApi):
        return engine
    if authorizer is None:
        raise TypeError("create_router(engine, authorizer): an Authorizer is required")
    return RunkonApi(engine, authorizer, workflows=workflows, max_body_bytes=max_body_bytes)


def _reject_cross_site(request: Request) -> None:
    """A browser-sent (cookie-authenticated) API write must come from this site."""
    if request.method == "GET" or "authorization" in request.headers:
        return
    own = f"{request.url.scheme}://{request.url.netloc}"
    if not same_origin(request.headers, own):
        raise ApiError(403, "cross_site", "cross-site requests are refused; call the API directly")


# --------------------------------------------------------------------------- JSON router


def create_router(
    engine: FlowEngine | RunkonApi,
    authorizer: Authorizer | None = None,
    *,
    workflows: WorkflowCatalog = None,
    prefix: str = "/api",
    keepalive: float = 15.0,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> APIRouter:
    """The JSON API (and the SSE event stream) over one engine.

    Args:
        engine: the engine (started by :func:`runkon_lifespan`), or a ready
            :class:`~runkon.integrations.RunkonApi` (then ``authorizer`` and
            ``workflows`` are taken from it).
        authorizer: the authorization hook.
        workflows: the catalog ``POST /runs`` starts from: a directory of ``.wf``
            files, a mapping name -> WorkflowDef, or a resolver.
        prefix: where the routes live (``/api/runs``, ...).
        keepalive: idle seconds between SSE comment lines.
        max_body_bytes: the largest request body accepted (413 ``body_too_large``
            beyond; unused when ``engine`` is a ready ``RunkonApi``, whose own limit
            holds). Bodies are read only once the caller is authenticated.

    Routes: ``POST /runs``, ``GET /runs``, ``GET /runs/{run_id}``,
    ``POST /runs/{run_id}/cancel``, ``GET /gates``,
    ``POST /runs/{run_id}/gates/{gate}/approve`` (``/reject``, ``/feedback``) and
    ``GET /runs/{run_id}/events`` (SSE, resumable from ``Last-Event-ID`` or ``?after=``).
    A gate is named by its name or its step id.
    """
    api = _api(engine, authorizer, workflows, max_body_bytes)
    router = APIRouter(
        prefix=prefix,
        tags=["runkon"],
        route_class=_route_class(api),
        dependencies=[Security(_bearer), Security(_cookie)],
        responses=_COMMON_ERRORS,
    )

    @router.post(
        "/runs",
        status_code=201,
        response_model=StartedRunOut,
        responses=_NOT_FOUND,
        summary="Start a run of a catalog workflow",
    )
    async def start_run(request: Request, body: StartRunRequest) -> StartedRunOut:
        _reject_cross_site(request)
        return await api.start_run(request.headers, body)

    @router.get("/runs", response_model=list[RunOut], summary="List runs, newest first")
    async def list_runs(
        request: Request,
        status: str | None = Query(None, description="only runs with this status"),
        workflow: str | None = Query(None, description="only runs of this workflow"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[RunOut]:
        return await api.list_runs(request.headers, status=status, workflow=workflow, limit=limit)

    @router.get(
        "/runs/{run_id}",
        response_model=RunDetailOut,
        responses=_NOT_FOUND,
        summary="A run with its steps",
    )
    async def get_run(request: Request, run_id: str) -> RunDetailOut:
        return await api.get_run(request.headers, run_id)

    @router.get(
        "/runs/{run_id}/steps/{step}/logs",
        response_model=StepLogsOut,
        responses=_NOT_FOUND,
        summary="What a step's programs wrote: the end of its stdout and stderr",
        description="`step` is the step's id, or its name (its latest attempt). Only "
        "`script` steps and calls whose executor runs programs have output (`captured` "
        "is false otherwise); the end of each stream is kept (64 KiB by default), "
        "`*_dropped_bytes` count what came before it.",
    )
    async def step_logs(request: Request, run_id: str, step: str) -> StepLogsOut:
        return await api.step_logs(request.headers, run_id, step)

    @router.post(
        "/runs/{run_id}/cancel",
        response_model=CancelOut,
        responses=_NOT_FOUND,
        summary="Cancel a run",
    )
    async def cancel_run(
        request: Request, run_id: str, body: Annotated[CancelRequest | None, Body()] = None
    ) -> CancelOut:
        _reject_cross_site(request)
        return await api.cancel_run(request.headers, run_id, body or CancelRequest())

    @router.get("/gates", response_model=list[GateOut], summary="The inbox: waiting gates")
    async def waiting_gates(
        request: Request,
        run_id: str | None = Query(None),
        workflow: str | None = Query(None),
        gate_type: str | None = Query(None),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[GateOut]:
        return await api.waiting_gates(
            request.headers, run_id=run_id, workflow=workflow, gate_type=gate_type, limit=limit
        )

    decision_responses = {**_NOT_FOUND, **_CONFLICT}

    @router.post(
        "/runs/{run_id}/gates/{gate}/approve",
        response_model=ReceiptOut,
        responses=decision_responses,
        summary="Approve a gate as the caller",
    )
    async def approve(
        request: Request,
        run_id: str,
        gate: str,
        body: Annotated[DecisionRequest | None, Body()] = None,
    ) -> ReceiptOut:
        _reject_cross_site(request)
        return await api.approve(request.headers, run_id, gate, body or DecisionRequest())

    @router.post(
        "/runs/{run_id}/gates/{gate}/reject",
        response_model=ReceiptOut,
        responses=decision_responses,
        summary="Reject a gate as the caller",
    )
    async def reject(
        request: Request,
        run_id: str,
        gate: str,
        body: Annotated[DecisionRequest | None, Body()] = None,
    ) -> ReceiptOut:
        _reject_cross_site(request)
        return await api.reject(request.headers, run_id, gate, body or DecisionRequest())

    @router.post(
        "/runs/{run_id}/gates/{gate}/feedback",
        response_model=ReceiptOut,
        responses=decision_responses,
        summary="Answer a gate with feedback (approves it)",
    )
    async def feedback(
        request: Request, run_id: str, gate: str, body: FeedbackRequest
    ) -> ReceiptOut:
        _reject_cross_site(request)
        return await api.feedback(request.headers, run_id, gate, body)

    @router.get(
        "/runs/{run_id}/events",
        status_code=200,
        response_class=EventStreamResponse,
        responses={
            200: {
                "description": (
                    "Server-sent events: `id` is the run's sequence number, `event` the "
                    "event type, `data` the event as JSON; `event: end` once the run ended"
                ),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            400: _doc("Last-Event-ID is not a sequence number"),
            **_NOT_FOUND,
        },
        summary="Stream a run's events (resumable)",
    )
    async def events(
        request: Request,
        run_id: str,
        after: int | None = Query(
            None, ge=0, le=MAX_SEQ, description="replay events after this seq"
        ),
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    ) -> EventStreamResponse:
        resume_from = last_event_id or (str(after) if after is not None else None)
        stream = await api.open_events(request.headers, run_id, resume_from)
        return EventStreamResponse(sse_stream(stream, keepalive=keepalive))

    return router


# --------------------------------------------------------------------------- web inbox


def create_inbox_router(
    api: RunkonApi,
    *,
    prefix: str = "/inbox",
    csrf_secret: bytes | str | None = None,
    trusted_origins: Sequence[str] = (),
    poll_interval: float = 1.0,
    keepalive: float = 15.0,
) -> APIRouter:
    """The web inbox: a server-rendered page of waiting gates with forms to approve,
    reject or give feedback, kept up to date live; a page per run (``{prefix}/runs/{id}``:
    its steps as a timeline with their output and gate decisions, live while it runs),
    linked from each gate and from the recent runs; plus sign-in and sign-out.

    Args:
        api: the HTTP surface (engine + authorization hook) the inbox acts through.
        prefix: where the page lives.
        csrf_secret: the key CSRF tokens are derived with; share it between processes
            serving one inbox (default: random per process).
        trusted_origins: other origins (``https://host``) whose forms are accepted,
            e.g. when a proxy rewrites the Host header.
        poll_interval: seconds between the live feed's checks of the waiting-gate set
            (for runs other processes drive on the same database).
        keepalive: idle seconds between comment lines on the live stream.
    """
    csrf = InboxCsrf(csrf_secret)
    feed = InboxFeed(api, interval=poll_interval)
    router = APIRouter(prefix=prefix, include_in_schema=False)

    def base_of(request: Request) -> str:
        return request.url_for("runkon_inbox").path.rstrip("/")

    def html(
        text: str, status: int = 200, *, nonce: str | None = None, cookie: str | None = None
    ) -> HTMLResponse:
        response = HTMLResponse(text, status_code=status, headers=security_headers(nonce))
        if cookie is not None:
            response.headers.append("Set-Cookie", cookie)
        return response

    def origin_ok(request: Request) -> bool:
        own = f"{request.url.scheme}://{request.url.netloc}"
        return same_origin(request.headers, own, trusted_origins)

    async def page(request: Request, notice: Notice | None = None, status: int = 200) -> Response:
        base = base_of(request)
        try:
            identity = await api.identify(request.headers)
        except ApiError:
            return html(render_sign_in(base=base), 401)
        version = await feed.version()  # before the lists: a later change is never missed
        gates = await api.waiting_gates(request.headers, limit=PAGE_LIMIT)
        runs = await api.list_runs(request.headers, limit=RECENT_RUNS)
        nonce = new_nonce()
        text = render_page(
            gates,
            runs,
            base=base,
            identity=identity,
            csrf=csrf.token(request.headers, identity),
            version=version,
            nonce=nonce,
            notice=notice,
        )
        return html(text, status, nonce=nonce)

    @router.get("", name="runkon_inbox")
    async def inbox(request: Request) -> Response:
        return await page(request)

    @router.get("/fragment")
    async def fragment(request: Request) -> Response:
        try:
            identity = await api.identify(request.headers)
        except ApiError as exc:
            return _error_response(exc)
        gates = await api.waiting_gates(request.headers, limit=PAGE_LIMIT)
        runs = await api.list_runs(request.headers, limit=RECENT_RUNS)
        token = csrf.token(request.headers, identity)
        return html(render_list(gates, runs, base=base_of(request), csrf=token))

    @router.get("/stream")
    async def stream(request: Request, since: str | None = Query(None)) -> Response:
        try:
            await api.identify(request.headers)
        except ApiError as exc:
            return _error_response(exc)
        since = request.headers.get("last-event-id") or since
        return EventStreamResponse(feed.stream(since, keepalive=keepalive))

    @router.get("/runs/{run_id}")
    async def run_page(request: Request, run_id: str) -> Response:
        base = base_of(request)
        try:
            identity = await api.identify(request.headers)
        except ApiError:  # signed in, the visitor comes back here
            return html(render_sign_in(base=base, then=request.url.path), 401)
        try:
            view = await load_run(api, request.headers, run_id)
        except ApiError as exc:
            text = f"{exc.message[:1].upper()}{exc.message[1:]}."
            title = "No such run" if exc.status == 404 else "Refused"
            return html(render_problem(base=base, title=title, text=text), exc.status)
        nonce = new_nonce()
        token = csrf.token(request.headers, identity)
        page = render_run_page(view, base=base, identity=identity, csrf=token, nonce=nonce)
        return html(page, nonce=nonce)

    @router.get("/runs/{run_id}/fragment")
    async def run_fragment(request: Request, run_id: str) -> Response:
        try:
            view = await load_run(api, request.headers, run_id)
        except ApiError as exc:
            return _error_response(exc)
        return html(render_run(view, base=base_of(request)))

    @router.get("/runs/{run_id}/stream")
    async def run_stream(request: Request, run_id: str) -> Response:
        try:
            events = await api.open_events(
                request.headers, run_id, request.headers.get("last-event-id")
            )
        except ApiError as exc:
            return _error_response(exc)
        return EventStreamResponse(run_changes(events, keepalive=keepalive))

    @router.post("/decide")
    async def decide_gate(request: Request) -> Response:
        base = base_of(request)
        try:
            identity = await api.identify(request.headers)
            form = parse_form(await read_capped(request, MAX_FORM_BYTES))
        except ApiError as exc:
            if exc.status == 401:
                return html(render_sign_in(base=base, error="Sign in again."), 401)
            return await page(request, Notice("error", exc.message), exc.status)
        token = (form.get("csrf") or [""])[0]
        if not origin_ok(request) or not csrf.valid(request.headers, identity, token):
            return html(
                render_problem(
                    base=base,
                    title="Refused",
                    text="This form is stale or came from another site; nothing changed. "
                    "Reload the inbox and try again.",
                ),
                403,
            )
        status, notice = await decide(api, request.headers, form)
        return await page(request, notice, status)

    @router.get("/sign-in")
    async def sign_in_page(request: Request, token: str | None = Query(None)) -> Response:
        # A GET never signs in (login CSRF): the link's token fills a form that the
        # visitor posts, same-site, with one click.
        return html(render_sign_in(base=base_of(request), token=token))

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        if not origin_ok(request):
            return html(render_sign_in(base=base_of(request), error="Refused: another site."), 403)
        try:
            form = parse_form(await read_capped(request, MAX_FORM_BYTES))
        except ApiError as exc:
            return html(render_sign_in(base=base_of(request), error=exc.message), exc.status)
        token = (form.get("token") or [""])[0].strip()
        return await _sign_in(request, token, (form.get("then") or [""])[0])

    async def _sign_in(request: Request, token: str, then: str) -> Response:
        base = base_of(request)
        identity = None
        if token:
            identity = await api.authorizer.authenticate({"authorization": f"Bearer {token}"})
        if identity is None:
            error = "Unknown token; check it and retry."
            return html(render_sign_in(base=base, error=error, then=then), 401)
        if not cookie_safe(token):
            error = "This token cannot be kept in a browser cookie; sign in with another one."
            return html(render_sign_in(base=base, error=error), 400)
        cookie = session_cookie(token, secure=request.url.scheme == "https")
        target = return_path(base, then)
        response = RedirectResponse(target, status_code=303, headers=security_headers())
        response.headers.append("Set-Cookie", cookie)
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        base = base_of(request)
        try:
            identity = await api.identify(request.headers)
            form = parse_form(await read_capped(request, MAX_FORM_BYTES))
        except ApiError:
            return html(render_sign_in(base=base), 401, cookie=clear_session_cookie())
        token = (form.get("csrf") or [""])[0]
        if not origin_ok(request) or not csrf.valid(request.headers, identity, token):
            return html(render_problem(base=base, title="Refused", text="Nothing changed."), 403)
        response = RedirectResponse(f"{base}/sign-in", status_code=303)
        response.headers.append("Set-Cookie", clear_session_cookie())
        return response

    return router


# --------------------------------------------------------------------------- app


def create_app(
    engine: FlowEngine,
    authorizer: Authorizer,
    *,
    workflows: WorkflowCatalog = None,
    inbox: bool = True,
    api_prefix: str = "/api",
    inbox_prefix: str = "/inbox",
    csrf_secret: bytes | str | None = None,
    poll_interval: float = 1.0,
    title: str = "runkon",
    max_body_bytes: int = MAX_BODY_BYTES,
    docs: bool = True,
) -> FastAPI:
    """A ready FastAPI app: the engine in its lifespan, the JSON API under
    ``api_prefix`` and (with ``inbox=True``) the web inbox under ``inbox_prefix``, with
    ``/`` redirecting to it. The :class:`~runkon.integrations.RunkonApi` is kept as
    ``app.state.runkon``.

    Args:
        engine: the engine to run; the app starts and stops it.
        authorizer: the authorization hook, e.g. ``TokenAuthorizer({token: "alice"})``.
        workflows: the catalog runs are started from by name (a directory, a mapping or
            a resolver).
        inbox: serve the web inbox too.
        csrf_secret: see :func:`create_inbox_router`.
        poll_interval: seconds between the inbox's checks of the waiting gates for
            changes made by other processes (event streams are woken by the store).
        max_body_bytes: the largest JSON API request body accepted (default 1 MiB);
            larger ones are answered 413 ``body_too_large`` without being read whole,
            and only after the caller was authenticated. Inbox forms are capped at
            ``MAX_FORM_BYTES`` (256 KiB).
        docs: serve ``/docs``, ``/redoc`` and ``/openapi.json``. They are served
            without a token (they describe the API, no data); ``False`` hides them.
            Their scripts are served by the app itself (no internet needed) when the
            ``fastapi-offline`` package of the ``fastapi`` extra is installed.
    """
    api = RunkonApi(engine, authorizer, workflows=workflows, max_body_bytes=max_body_bytes)
    # the docs pages are added by add_docs (their scripts served from the package)
    hidden: dict[str, Any] = {"docs_url": None, "redoc_url": None}
    if not docs:
        hidden["openapi_url"] = None
    app = FastAPI(title=title, lifespan=runkon_lifespan(engine), **hidden)
    if docs:
        add_docs(app)
    app.state.runkon = api
    app.include_router(create_router(api, prefix=api_prefix))
    if inbox:
        app.include_router(
            create_inbox_router(
                api, prefix=inbox_prefix, csrf_secret=csrf_secret, poll_interval=poll_interval
            )
        )

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse(inbox_prefix, status_code=307)

    return app
