"""The import layering of ARCHITECTURE.md §1, enforced on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runkon"

# package -> runkon packages it may import (besides itself, runkon.errors and runkon._log,
# the loggers, which every package may use)
ALLOWED: dict[str, set[str]] = {
    "dsl": set(),
    "persistence": set(),
    "events": set(),
    "engine": {"dsl", "persistence", "events"},
}
PUBLIC_API_ONLY = {"testing", "integrations", "cli"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _violations(package: str) -> list[str]:
    problems = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        reported: set[int] = set()
        for line, name in _imports(path):
            if line in reported:
                continue
            if name.startswith("."):
                problems.append(f"{rel}:{line}: relative import {name!r}; import absolutely")
                continue
            parts = name.split(".")
            if parts[0] != "runkon" or len(parts) == 1:
                continue
            target = parts[1]
            if target in (package, "errors", "_log"):
                continue
            if package in ALLOWED:
                if target not in ALLOWED[package]:
                    problems.append(f"{rel}:{line}: {package} must not import {name}")
                    reported.add(line)
            elif package in PUBLIC_API_ONLY and any(part.startswith("_") for part in parts[1:]):
                problems.append(f"{rel}:{line}: {package} may use only the public API, not {name}")
                reported.add(line)
    return problems


@pytest.mark.parametrize("package", sorted({*ALLOWED, *PUBLIC_API_ONLY}))
def test_package_respects_import_layering(package: str) -> None:
    assert _violations(package) == []


@pytest.mark.parametrize("module", ["errors.py", "_log.py"])
def test_shared_modules_import_nothing_of_runkon(module: str) -> None:
    """``runkon.errors`` and ``runkon._log`` (the loggers) are usable by every layer."""
    imports = [name for _, name in _imports(PACKAGE / module)]
    assert [name for name in imports if name.startswith("runkon")] == []


def test_layering_check_catches_a_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "runkon" / "dsl"
    fake.mkdir(parents=True)
    (fake / "_bad.py").write_text("from runkon.engine import FlowEngine\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "runkon")
    assert _violations("dsl") == ["runkon/dsl/_bad.py:1: dsl must not import runkon.engine"]
