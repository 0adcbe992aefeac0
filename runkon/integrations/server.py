"""``runkon serve``: runkon's JSON API and web inbox over one SQLite database, served by
uvicorn (needs the ``fastapi`` extra). :func:`serve` blocks until interrupted."""

from runkon.integrations._server import ServeError as ServeError
from runkon.integrations._server import serve as serve

__all__ = ("ServeError", "serve")
