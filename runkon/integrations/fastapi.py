"""runkon in a FastAPI app: the engine in the app's lifespan, a JSON router with an SSE
event stream, and the web inbox.

Quick use::

    from runkon import FlowEngine, SqliteStore
    from runkon.integrations import TokenAuthorizer
    from runkon.integrations.fastapi import create_app

    engine = FlowEngine(SqliteStore("runs.db"), fallback_action=agent)
    app = create_app(engine, TokenAuthorizer({"s3cret": "alice"}), workflows="flows/")

Or mount the pieces into your own app::

    api = RunkonApi(engine, authorizer, workflows=catalog)
    app = FastAPI(lifespan=runkon_lifespan(engine))
    app.include_router(create_router(api))        # /api/runs, /api/gates, ...
    app.include_router(create_inbox_router(api))  # /inbox

Every route authenticates and authorizes through the
:class:`~runkon.integrations.Authorizer` (the hook); the approver of a gate is the
identity it returns, never a name from the request. Errors are JSON
:class:`~runkon.integrations.ErrorOut` bodies with the matching status (401, 403, 404,
409, 422), request-validation errors included — the router answers them itself, so it
behaves the same in any app it is included in.

Needs the ``fastapi`` extra (``pip install 'runkon[fastapi]'``).
"""

from runkon.integrations._fastapi import EventStreamResponse as EventStreamResponse
from runkon.integrations._fastapi import create_app as create_app
from runkon.integrations._fastapi import create_inbox_router as create_inbox_router
from runkon.integrations._fastapi import create_router as create_router
from runkon.integrations._fastapi import runkon_lifespan as runkon_lifespan

__all__ = (
    "EventStreamResponse",
    "create_app",
    "create_inbox_router",
    "create_router",
    "runkon_lifespan",
)
