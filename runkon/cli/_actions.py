"""Where ``call`` steps find their executors: ``--actions MODULE_OR_DIR``.

Used by ``runkon run``, ``resume``, ``cancel`` and ``serve``. Three sources:

**A Python module** -- ``--actions pkg.mod`` (imported with the current directory on
``sys.path``) or ``--actions path/to/file.py``. The module defines, at module level, the
same two things ``FlowEngine`` takes::

    actions = {"plan": plan, "review": ReviewExecutor()}   # name -> executor
    fallback_action = agent                                # optional: every other name

An executor is an ``ActionExecutor`` (``name``, ``async execute(ctx, params)``, optional
``async cancel(execution_id)``) or a plain ``async def fn(ctx, params)`` returning an
``ActionOutput`` (or None). The module must define at least one of the two names.

**A directory of executables** -- ``--actions DIR``: ``call plan`` runs ``DIR/plan`` or
``DIR/plan.<ext>`` (e.g. ``plan.sh``, ``plan.py``); two executable matches, or a match that
is not executable, is an error naming the files. The program runs:

- in the run's working directory (the directory ``runkon run`` was started in, kept with
  the run: ``resume``, ``cancel`` and ``serve`` run it there too), in its own process
  group, with stdin closed;
- with the current environment (without runkon's secrets such as ``RUNKON_TOKEN``, see
  ``runkon.engine.inherited_environment``) plus every variable of the step as ``RUNKON_<NAME>``
  (inputs, ``prior_context``, ``prior_output``, ``gate_feedback``, FLOW_OUTPUT extras of
  earlier steps, ...; the name upper-cased, characters other than letters, digits and
  ``_`` turned into ``_``) -- the names ``script`` steps get for inputs -- and
  ``RUNKON_RUN_ID``, ``RUNKON_WORKFLOW``, ``RUNKON_STEP``, ``RUNKON_STEP_ID``,
  ``RUNKON_ATTEMPT``, ``RUNKON_ITERATION``, ``RUNKON_DRY_RUN`` (``true``/``false``) and
  ``RUNKON_GATE_SELECTIONS`` (comma-separated), which win over variables of the same
  name. Variables only ever become ``RUNKON_*`` names, so no step can set ``PATH``,
  ``LD_PRELOAD`` or any other variable the program trusts; a value holding a NUL byte is
  left out;
- exit 0: its stdout's FLOW_OUTPUT block gives the step's markers, context and extras
  (without a block, stdout becomes the context); a non-zero exit fails the step with the
  tail of stderr; a timeout or cancellation kills its process group (SIGTERM, then
  SIGKILL after 2 s);
- in a dry run it is found but not executed.

**Nothing** -- without ``--actions``, a directory ``./actions/`` is used if it exists;
otherwise a ``call`` has no executor and the workflow does not validate.

``runkon run`` keeps the spec (as given, or ``actions`` for the default directory) with
the run, next to its working directory; ``resume`` and ``cancel`` without ``--actions``
load it again from there (see :func:`stored_actions`).
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from anyio.abc import Process

import runkon
from runkon.cli._common import CliError
from runkon.dsl import CallNode, CallWorkflowNode, ParallelNode, ScriptNode, iter_nodes
from runkon.engine import (
    ProgramResult,
    inherited_environment,
    kill_process_group,
    parse_flow_output_async,
    run_program,
)

__all__ = (
    "ActionFailedError",
    "ActionNotFoundError",
    "ActionsDirectory",
    "LoadedActions",
    "check_calls",
    "load_actions",
    "stored_actions",
)

DEFAULT_ACTIONS_DIR = "actions"
MEMO_ACTIONS = "actions"  # the run's memo entry holding its --actions spec
MEMO_WORKFLOWS = "workflows"  # ... and the absolute directory of its child workflows
ERROR_TAIL = 2000
_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ENV_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


class ActionNotFoundError(runkon.ExecutionError):
    """A directory of executables has no (single, executable) program for a call."""


class ActionFailedError(runkon.ExecutionError):
    """An action program exited with a non-zero status."""


# --------------------------------------------------------------------------- directory


class ActionsDirectory:
    """A fallback ``ActionExecutor`` that runs ``DIR/<name>`` or ``DIR/<name>.<ext>``
    (see the module docstring for the environment and output protocol)."""

    name = "actions-directory"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self._running: dict[str, Process] = {}

    def __repr__(self) -> str:
        return f"ActionsDirectory({str(self.root)!r})"

    def find(self, action: str) -> Path:
        """The program ``call <action>`` runs.

        Raises:
            ActionNotFoundError: no match, several executable matches, or a match that
                is not executable (the message names the files and the fix).
        """
        where = f"{str(self.root)!r}"
        if not action or "/" in action or "\\" in action or action.startswith("."):
            raise ActionNotFoundError(
                f"call {action!r} cannot name a program in the actions directory {where}; "
                "use a plain name such as `call plan`"
            )
        try:
            candidates = sorted(
                entry
                for entry in self.root.iterdir()
                if (entry.name == action or entry.name.startswith(action + ".")) and entry.is_file()
            )
        except OSError as exc:
            raise ActionNotFoundError(
                f"cannot read the actions directory {where}: {exc.strerror or exc}"
            ) from exc
        executable = [path for path in candidates if os.access(path, os.X_OK)]
        if len(executable) == 1:
            return executable[0]
        names = ", ".join(path.name for path in (executable or candidates))
        if len(executable) > 1:
            raise ActionNotFoundError(
                f"call {action!r} matches several programs in {where}: {names}; "
                "keep one, or make the others non-executable"
            )
        if candidates:
            raise ActionNotFoundError(
                f"call {action!r}: {names} in {where} is not executable; "
                f"run `chmod +x {self.root / candidates[0].name}`"
            )
        raise ActionNotFoundError(
            f"no program for call {action!r} in the actions directory {where}; "
            f"add an executable {action} or {action}.<ext> there"
        )

    async def execute(
        self, ctx: runkon.StepContext, params: runkon.ActionParams
    ) -> runkon.ActionOutput:
        program = self.find(params.name)
        shown = f"{self.root.name}/{program.name}"
        if ctx.dry_run or params.dry_run:
            return runkon.ActionOutput(result_text=f"dry-run: {shown} not executed")
        env = _environment(ctx, params)
        try:
            result = await self._run([str(program)], ctx, env)
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise ActionFailedError(f"{program} could not start: {exc.strerror}") from exc
            # A script without a #! line: run it with the shell, as a shell would.
            try:
                result = await self._run(["sh", str(program)], ctx, env)
            except OSError as exc:
                raise ActionFailedError(f"{program} could not start: {exc.strerror}") from exc
        if result.returncode != 0:
            raise ActionFailedError(f"{shown} {result.describe_exit()}" + result.stderr_tail())
        flow = await parse_flow_output_async(result.stdout)
        if flow is None:
            return runkon.ActionOutput(
                context=result.stdout.strip()[:ERROR_TAIL], result_text=f"{shown} completed"
            )
        return runkon.ActionOutput(
            markers=flow.markers,
            context=flow.context,
            structured_output=flow.to_json(),
            result_text=f"{shown} completed",
        )

    async def _run(
        self, argv: list[str], ctx: runkon.StepContext, env: dict[str, str]
    ) -> ProgramResult:
        def started(process: Process) -> None:
            self._running[ctx.step_id] = process

        try:
            return await run_program(argv, cwd=ctx.working_dir, env=env, on_start=started)
        finally:
            self._running.pop(ctx.step_id, None)

    async def cancel(self, execution_id: str) -> None:
        """Kill the program of step ``execution_id`` and everything it started."""
        process = self._running.get(execution_id)
        if process is not None:
            await kill_process_group(process)


def _environment(ctx: runkon.StepContext, params: runkon.ActionParams) -> dict[str, str]:
    env = inherited_environment()
    for name, value in params.inputs.items():
        if "\0" not in value:
            env["RUNKON_" + _ENV_NAME_RE.sub("_", name).upper()] = value
    env.update(
        RUNKON_RUN_ID=ctx.run_id,
        RUNKON_WORKFLOW=ctx.workflow_name,
        RUNKON_STEP=ctx.step_name,
        RUNKON_STEP_ID=ctx.step_id,
        RUNKON_ATTEMPT=str(ctx.attempt),
        RUNKON_ITERATION=str(ctx.iteration),
        RUNKON_DRY_RUN="true" if (ctx.dry_run or params.dry_run) else "false",
        RUNKON_GATE_SELECTIONS=",".join(params.gate_selections),
    )
    return env


@dataclass(frozen=True)
class LoadedActions:
    """Executors for ``FlowEngine(actions=..., fallback_action=...)`` and where they came
    from (``source`` is shown to the user; empty when there are none). ``spec`` is the
    ``--actions`` value that loads them again (``"actions"`` for the default directory,
    empty when there are none): ``runkon run`` keeps it with the run."""

    actions: Mapping[str, Any] = field(default_factory=dict)
    fallback_action: Any = None
    source: str = ""
    spec: str = ""

    @property
    def directory(self) -> ActionsDirectory | None:
        fallback = self.fallback_action
        return fallback if isinstance(fallback, ActionsDirectory) else None


def load_actions(spec: str | None, base: str | os.PathLike[str] | None = None) -> LoadedActions:
    """The executors ``--actions spec`` names (``./actions/`` or none when ``spec`` is None).

    Args:
        spec: the ``--actions`` value; None: ``actions/`` if that directory exists.
        base: the directory a relative ``spec`` (and a module's import path) is taken
            from, e.g. a resumed run's working directory (default: the current one).
            With a base, ``source`` names the absolute path.

    Raises:
        CliError: the directory, file or module cannot be used (exit 2).
    """
    root = Path(base) if base is not None else None
    if spec is None:
        default = DEFAULT_ACTIONS_DIR if root is None else str(root / DEFAULT_ACTIONS_DIR)
        if Path(default).is_dir():
            return _directory(default, DEFAULT_ACTIONS_DIR)
        return LoadedActions()
    path = Path(spec) if root is None else root / spec
    if path.is_dir():
        return _directory(str(path), spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise CliError(f"--actions {str(path)!r}: no such file")
        loaded = _from_module(_import_file(path), spec)
        return loaded if root is None else _sourced(loaded, f"module {path}")
    if not _MODULE_RE.fullmatch(spec):
        raise CliError(
            f"--actions {str(path)!r} is not a directory, a .py file or a module name; "
            "pass a directory of executables or a module such as `mypkg.actions`"
        )
    loaded = _from_module(_import_module(spec, str(root or os.getcwd())), spec)
    return loaded if root is None else _sourced(loaded, f"module {spec} (from {root})")


def stored_actions(
    run: runkon.persistence.RunRecord, given: str | None
) -> tuple[LoadedActions, str]:
    """The executors for continuing ``run`` and a line saying which (and where) they are.

    ``given`` (an explicit ``--actions``) wins; otherwise the spec ``runkon run`` kept
    with the run is loaded relative to the run's working directory (a run started
    without actions gets none; a run started otherwise, e.g. over HTTP, gets
    ``actions/`` of its working directory if there is one).

    Raises:
        CliError: the actions cannot be loaded (exit 2), naming where they came from.
    """
    directory = run.working_dir
    where = f"working directory {directory}" if directory else "the current directory"
    if given is not None:
        loaded = load_actions(given)
        return loaded, f"actions: {loaded.source or 'none'} (--actions); {where}"
    stored = run.memo.get(MEMO_ACTIONS)
    if stored == "":
        return LoadedActions(), f"actions: none (as the run was started); {where}"
    try:
        loaded = load_actions(stored, base=directory)
    except CliError as exc:
        raise CliError(
            f"{exc.message} (the actions run {run.id} was started with; pass --actions "
            "MODULE_OR_DIR to use others)",
            exc.code,
        ) from exc
    how = "as the run was started" if stored is not None else "the run's default"
    return loaded, f"actions: {loaded.source or 'none'} ({how}); {where}"


def _sourced(loaded: LoadedActions, source: str) -> LoadedActions:
    return LoadedActions(loaded.actions, loaded.fallback_action, source, loaded.spec)


def _directory(path: str, spec: str) -> LoadedActions:
    return LoadedActions(
        fallback_action=ActionsDirectory(path), source=f"directory {path}/", spec=spec
    )


def _import_file(path: Path) -> ModuleType:
    name = f"runkon_actions_{_ENV_NAME_RE.sub('_', path.stem)}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CliError(f"--actions {str(path)!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        raise CliError(_import_failure(str(path), exc)) from exc
    return module


def _import_module(name: str, directory: str) -> ModuleType:
    if directory not in sys.path:
        sys.path.insert(0, directory)  # as `python -m` would: modules next to you import
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise CliError(
                f"--actions {name!r}: no module named {exc.name!r} (looked in {directory} "
                "and the installed packages)"
            ) from exc
        raise CliError(_import_failure(name, exc)) from exc
    except BaseException as exc:
        raise CliError(_import_failure(name, exc)) from exc


def _import_failure(what: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"actions module {what!r} failed to import: {type(exc).__name__}: {exc}{where}"


def _from_module(module: ModuleType, spec: str) -> LoadedActions:
    actions = getattr(module, "actions", None)
    fallback = getattr(module, "fallback_action", None)
    if actions is None and fallback is None:
        raise CliError(
            f"actions module {spec!r} defines neither `actions` (a dict of name -> executor) "
            "nor `fallback_action`; define one of them at module level"
        )
    if actions is None:
        actions = {}
    if not isinstance(actions, Mapping) or not all(isinstance(k, str) for k in actions):
        raise CliError(
            f"`actions` in module {spec!r} must be a dict of name -> executor, "
            f"got {type(actions).__name__}"
        )
    for name, action in [*actions.items(), ("fallback_action", fallback)]:
        if action is not None and not (hasattr(action, "execute") or callable(action)):
            raise CliError(
                f"action {name!r} in module {spec!r} is not an executor: give an object with "
                "an async `execute(ctx, params)` method or an `async def fn(ctx, params)`"
            )
    return LoadedActions(dict(actions), fallback, f"module {spec}", spec)


# --------------------------------------------------------------------------- checking


def check_calls(workflow: runkon.WorkflowDef, loaded: LoadedActions) -> list[str]:
    """Problems of the workflow's calls with a directory of executables, one
    ``file:line:col: message`` each (calls with a named executor are fine)."""
    directory = loaded.directory
    if directory is None:
        return []
    problems: list[str] = []
    seen: set[str] = set()
    for node in iter_nodes((*workflow.body, *workflow.always)):
        labels = []
        if isinstance(node, CallNode):
            labels.append(node.agent.label)
        elif isinstance(node, ParallelNode):
            labels.extend(call.agent.label for call in node.calls)
        if isinstance(node, CallNode | CallWorkflowNode | ScriptNode) and not isinstance(
            node.on_fail, str | None
        ):
            labels.append(node.on_fail.label)
        for label in labels:
            if label in loaded.actions or label in seen:
                continue
            seen.add(label)
            try:
                directory.find(label)
            except ActionNotFoundError as exc:
                problems.append(f"{workflow.source}:{node.line}:{node.col}: {exc}")
    return problems
