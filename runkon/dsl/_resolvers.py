"""Workflow resolvers: how ``call workflow <name>`` and ``foreach`` find their children."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from runkon.dsl._ast import WorkflowDef
from runkon.dsl._load import load_workflow
from runkon.errors import WorkflowNotFoundError

_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


@runtime_checkable
class WorkflowResolver(Protocol):
    """Finds a workflow definition by name.

    ``resolve`` is synchronous: it is called by (synchronous) validation, and resolvers
    are cheap lookups. The engine calls it in a worker thread, so a file-backed resolver
    never blocks the event loop.
    """

    def resolve(self, name: str) -> WorkflowDef:
        """The workflow called ``name``.

        Raises:
            WorkflowNotFoundError: there is no such workflow.
            DslSyntaxError: it exists but does not parse.
        """
        ...


def validate_workflow_name(name: str) -> None:
    """Check that ``name`` is a workflow name: letters, digits, ``-`` and ``_`` only.

    Raises:
        WorkflowNotFoundError: the name is empty or has other characters (e.g. ``/`` or
            ``..``), which also rules out path traversal.
    """
    if not _NAME_RE.fullmatch(name):
        raise WorkflowNotFoundError(
            name, detail="a workflow name has only letters, digits, '-' and '_'"
        )


class DirectoryWorkflowResolver:
    """Resolves ``name`` to ``<root>/<name>.wf``, re-read when the file changes.

    Names are checked (:func:`validate_workflow_name`) and the resolved file must lie
    inside ``root`` even after following symlinks, so no name can reach outside it.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root: Path = Path(root)
        self._cache: dict[str, tuple[float, int, WorkflowDef]] = {}

    def __repr__(self) -> str:
        return f"DirectoryWorkflowResolver({str(self.root)!r})"

    def path_for(self, name: str) -> Path:
        """The file ``name`` resolves to (checked, not necessarily existing)."""
        validate_workflow_name(name)
        return self.root / f"{name}.wf"

    def resolve(self, name: str) -> WorkflowDef:
        path = self.path_for(name)
        try:
            real = path.resolve(strict=True)
            stat = real.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise WorkflowNotFoundError(name, detail=f"no file {str(path)!r}") from None
        except OSError as exc:
            raise WorkflowNotFoundError(name, detail=f"{path}: {exc.strerror}") from None
        if not real.is_relative_to(self.root.resolve()):
            raise WorkflowNotFoundError(name, detail=f"{path} points outside {self.root}")
        cached = self._cache.get(name)
        if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
            return cached[2]
        workflow = load_workflow(path)
        self._cache[name] = (stat.st_mtime, stat.st_size, workflow)
        return workflow

    def names(self) -> list[str]:
        """The names of every ``*.wf`` file in ``root``, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.stem for p in self.root.glob("*.wf") if _NAME_RE.fullmatch(p.stem) and p.is_file()
        )


class InMemoryWorkflowResolver:
    """Resolves names from workflows given up front (by their ``name``, or a mapping)."""

    def __init__(self, workflows: Mapping[str, WorkflowDef] | Iterable[WorkflowDef] = ()) -> None:
        if isinstance(workflows, Mapping):
            self._workflows: dict[str, WorkflowDef] = dict(workflows)
        else:
            self._workflows = {wf.name: wf for wf in workflows}

    def __repr__(self) -> str:
        return f"InMemoryWorkflowResolver({sorted(self._workflows)!r})"

    def add(self, workflow: WorkflowDef, name: str | None = None) -> None:
        """Register ``workflow`` under ``name`` (default: its own name)."""
        self._workflows[name or workflow.name] = workflow

    def resolve(self, name: str) -> WorkflowDef:
        workflow = self._workflows.get(name)
        if workflow is None:
            known = ", ".join(sorted(self._workflows)) or "none"
            raise WorkflowNotFoundError(name, detail=f"known workflows: {known}")
        return workflow

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._workflows)
