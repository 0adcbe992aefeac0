"""The action registry: executors by name, plain async callables, and a fallback."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from runkon.engine._protocols import (
    ActionCallable,
    ActionExecutor,
    ActionOutput,
    ActionParams,
    StepContext,
)

Action = ActionExecutor | ActionCallable


class _CallableExecutor:
    """Adapts ``async def fn(ctx, params)`` to :class:`ActionExecutor`."""

    def __init__(self, name: str, fn: ActionCallable) -> None:
        self.name = name
        self._fn = fn

    def __repr__(self) -> str:
        return f"<executor {self.name!r} {getattr(self._fn, '__qualname__', self._fn)!r}>"

    async def execute(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        result = self._fn(ctx, params)
        if not inspect.isawaitable(result):
            raise TypeError(
                f"action {self.name!r} is not async; define it with `async def fn(ctx, params)`"
            )
        output = await result
        if output is None:
            return ActionOutput()
        if not isinstance(output, ActionOutput):
            raise TypeError(
                f"action {self.name!r} returned {type(output).__name__}; "
                "return an ActionOutput (or None)"
            )
        return output


def as_executor(name: str, action: Action) -> ActionExecutor:
    """``action`` as an :class:`ActionExecutor` (wrapping a plain async callable).

    Raises:
        TypeError: ``action`` is neither an executor nor an async callable.
    """
    if hasattr(action, "execute"):
        return action  # type: ignore[return-value]
    if callable(action):
        return _CallableExecutor(name, action)
    raise TypeError(
        f"action {name!r} must be an ActionExecutor (with an async execute method) or an "
        f"async function (ctx, params), got {action!r}"
    )


class ActionRegistry:
    """Named executors plus an optional catch-all.

    Args:
        actions: name -> executor or ``async def fn(ctx, params)``.
        fallback: used for every name not in ``actions``.
    """

    def __init__(
        self, actions: Mapping[str, Action] | None = None, fallback: Action | None = None
    ) -> None:
        self._named: dict[str, ActionExecutor] = {
            name: as_executor(name, action) for name, action in (actions or {}).items()
        }
        self.fallback: ActionExecutor | None = (
            None if fallback is None else as_executor("fallback", fallback)
        )

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._named or self.fallback is not None)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._named)

    def get(self, name: str) -> ActionExecutor | None:
        """The executor for ``name`` (named first, then the fallback), or None."""
        return self._named.get(name, self.fallback)

    def register(self, name: str, action: Action) -> None:
        """Add or replace the executor for ``name``."""
        self._named[name] = as_executor(name, action)


async def cancel_execution(executor: Any, execution_id: str) -> None:
    """Call the executor's optional ``cancel(execution_id)`` hook."""
    cancel = getattr(executor, "cancel", None)
    if cancel is None:
        return
    result = cancel(execution_id)
    if inspect.isawaitable(result):
        await result
