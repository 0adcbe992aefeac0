"""runkon's loggers: key-value logging that the application's configuration decides.

runkon is a library and configures no output of its own. Its loggers are named
``runkon.<package>`` (``runkon.engine``, ``runkon.persistence``, ``runkon.events``) and
take structlog-style calls (``log.info("run finished", status="completed")``,
``log.bind(run_id=...)``). Each call goes:

- through structlog's configuration (``structlog.get_logger(name)``) when the
  application has configured structlog (``structlog.configure``): it decides then;
- otherwise to the standard ``logging`` module, as a record of logger
  ``runkon.<package>`` whose message is the event followed by its ``key=value`` pairs,
  each pair also set as an attribute of the record (``record.run_id``) for formatters
  and filters. ``logging.basicConfig``/``dictConfig`` decide what is shown.

A ``NullHandler`` on the ``runkon`` logger keeps Python's last-resort handler from
printing runkon's warnings to stderr when the application configured no logging at all:
with no configuration, runkon prints nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import structlog

logging.getLogger("runkon").addHandler(logging.NullHandler())

# LogRecord attributes a key-value pair must not overwrite (logging refuses it)
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_STACKLEVEL = 3  # the caller of RunkonLogger.info (-> _log -> Logger.log)


def _text(value: object) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "='\"" for c in value):
        return value
    return repr(value)


class RunkonLogger:
    """A structlog-style logger (``debug``/``info``/``warning``/``error``/``exception``,
    ``bind``) that logs through the application's configuration (see the module)."""

    __slots__ = ("_context", "_stdlib", "name")

    def __init__(self, name: str, context: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self._context = dict(context or {})
        self._stdlib = logging.getLogger(name)

    def __repr__(self) -> str:
        return f"RunkonLogger({self.name!r}, context={self._context!r})"

    def bind(self, **values: Any) -> RunkonLogger:
        """A logger adding ``values`` to every line."""
        return RunkonLogger(self.name, {**self._context, **values})

    def debug(self, event: str, **values: Any) -> None:
        self._log(logging.DEBUG, "debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._log(logging.INFO, "info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._log(logging.WARNING, "warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._log(logging.ERROR, "error", event, values)

    def exception(self, event: str, **values: Any) -> None:
        """``error`` with the exception being handled (its traceback)."""
        values.setdefault("exc_info", True)
        self._log(logging.ERROR, "error", event, values)

    def _log(self, level: int, method: str, event: str, values: dict[str, Any]) -> None:
        if structlog.is_configured():
            logger = structlog.get_logger(self.name)
            if self._context:
                logger = logger.bind(**self._context)
            getattr(logger, method)(event, **values)
            return
        if not self._stdlib.isEnabledFor(level):
            return
        fields = {**self._context, **values}
        exc_info = fields.pop("exc_info", None)
        stack_info = bool(fields.pop("stack_info", False))
        message = event + "".join(f" {key}={_text(value)}" for key, value in fields.items())
        self._stdlib.log(
            level,
            message,
            exc_info=exc_info,
            stack_info=stack_info,
            extra={key: value for key, value in fields.items() if key not in _RESERVED},
            stacklevel=_STACKLEVEL,
        )


def get_logger(name: str) -> RunkonLogger:
    """runkon's logger called ``name`` (``runkon.<package>``)."""
    return RunkonLogger(name)
