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

Every route authenticates and authorizes through the
:class:`~runkon.integrations.Authorizer` (the hook); the approver of a gate is the
identity it returns, never a name from the request. Bodies are JSON sent as
``application/json``. Every error is an ``ErrorOut`` body (``{"error", "message",
"detail"}``), worded exactly as the FastAPI router words it: a missing, malformed or
invalid body or a bad query parameter is a 422 ``invalid_request``; the rest come from
:class:`~runkon.integrations.ApiError` (401, 403, 404, 409, 422). A cookie-authenticated
(browser) write from another site's page is refused (403 ``cross_site``).

Example::

    from runkon.integrations import TokenAuthorizer
    from runkon.integrations.aiohttp import create_app

    app = create_app(engine, TokenAuthorizer({"s3cret": "alice"}), workflows="flows/")
    web.run_app(app)

Or add the routes to an app of your own, and run the engine with it::

    add_routes(app, RunkonApi(engine, authorizer, workflows="flows/"), prefix="/runkon")
    app.cleanup_ctx.append(engine_context(engine))

Needs the ``aiohttp`` extra (``pip install 'runkon[aiohttp]'``).
"""

from runkon.integrations._aiohttp import RUNKON_API as RUNKON_API
from runkon.integrations._aiohttp import add_routes as add_routes
from runkon.integrations._aiohttp import create_app as create_app
from runkon.integrations._aiohttp import engine_context as engine_context

__all__ = ("RUNKON_API", "add_routes", "create_app", "engine_context")
