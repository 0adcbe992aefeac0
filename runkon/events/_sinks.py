"""Ready-made event sinks."""

from __future__ import annotations

from typing import Any

from runkon._log import get_logger
from runkon.events._models import EngineEvent, event_payload


class StructlogSink:
    """Logs every event as one line: ``event=<type>`` with ``run_id``, ``seq`` and the
    event's fields as key-value pairs (ids are never formatted into the message).

    By default it logs with runkon's ``runkon.events`` logger, which the application's
    logging (or structlog) configuration decides, like every runkon log line: with no
    configuration nothing is shown. ``logger``: any structlog-style logger to use instead
    (e.g. ``structlog.get_logger()``); ``level``: the method called on it.
    """

    def __init__(self, logger: Any = None, *, level: str = "info") -> None:
        self._log = logger if logger is not None else get_logger("runkon.events")
        self._level = level

    def __repr__(self) -> str:
        return f"StructlogSink(level={self._level!r})"

    async def emit(self, event: EngineEvent) -> None:
        method = getattr(self._log, self._level)
        method(event.type.value, run_id=event.run_id, seq=event.seq, **event_payload(event))


class CallbackSink:
    """Calls an async function for each event (a convenience for tests and small hosts)."""

    def __init__(self, callback: Any) -> None:
        self._callback = callback

    def __repr__(self) -> str:
        return f"CallbackSink({self._callback!r})"

    async def emit(self, event: EngineEvent) -> None:
        await self._callback(event)
