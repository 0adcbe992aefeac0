"""The API docs pages (Swagger UI and ReDoc) with their scripts served by the app
itself, so ``/docs`` works without internet access.

The assets come from the ``fastapi-offline`` package (part of the ``fastapi`` extra),
which ships the Swagger UI 5 and ReDoc bundles. Without it the pages load them from
FastAPI's default CDN, as plain FastAPI does.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def _assets() -> Traversable | None:
    try:
        root = importlib.resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None
    return root if root.joinpath("swagger-ui-bundle.js").is_file() else None


def add_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add ``docs_url`` (Swagger UI) and ``redoc_url`` (ReDoc) to ``app``, whose own
    docs routes must be off (``docs_url=None, redoc_url=None``); the assets are served
    under ``{docs_url}/static/`` when the package that ships them is installed."""
    assets = _assets()
    static = f"{docs_url}/static"
    openapi_url = app.openapi_url or "/openapi.json"

    def local(name: str, default: str) -> str:
        return f"{static}/{name}" if assets is not None else default

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=local(
                "swagger-ui-bundle.js",
                "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
            ),
            swagger_css_url=local(
                "swagger-ui.css", "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
            ),
            swagger_favicon_url=local(
                "favicon.png", "https://fastapi.tiangolo.com/img/favicon.png"
            ),
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=local(
                "redoc.standalone.js",
                "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
            ),
            redoc_favicon_url=local("favicon.png", "https://fastapi.tiangolo.com/img/favicon.png"),
        )

    @app.get(f"{static}/{{name}}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if assets is None or name not in ASSETS:
            raise HTTPException(404)
        data = assets.joinpath(name).read_bytes()
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(data, media_type=ASSETS[name], headers=headers)
