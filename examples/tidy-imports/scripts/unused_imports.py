"""Lists (or with --fix, removes) the unused top-level imports of the Python files under a
directory. Used by scan-imports.sh and the import-fixer action of tidy-imports.wf.

    python3 unused_imports.py DIR          # one line per unused import: path:line: name
    python3 unused_imports.py --fix DIR    # rewrite the files without them
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def _bound_name(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".")[0]


def _used_names(tree: ast.Module) -> set[str]:
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    for node in ast.walk(tree):  # names re-exported through __all__ count as used
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            used |= {
                element.value
                for element in getattr(node.value, "elts", [])
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
            }
    return used


def unused(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, list[ast.alias]]]:
    """Each top-level import statement with its aliases that nothing in the module uses."""
    used = _used_names(tree)
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            dead = [a for a in node.names if a.name != "*" and _bound_name(a) not in used]
            if dead:
                found.append((node, dead))
    return found


def _rewritten(node: ast.Import | ast.ImportFrom, keep: list[ast.alias]) -> str:
    names = ", ".join(f"{a.name} as {a.asname}" if a.asname else a.name for a in keep)
    if isinstance(node, ast.Import):
        return f"import {names}\n"
    return f"from {'.' * node.level}{node.module or ''} import {names}\n"


def fix(path: Path, tree: ast.Module) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for node, dead in reversed(unused(tree)):
        keep = [alias for alias in node.names if alias not in dead]
        start, end = node.lineno - 1, node.end_lineno or node.lineno
        lines[start:end] = [_rewritten(node, keep)] if keep else []
    path.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str]) -> int:
    fixing = "--fix" in argv
    [directory] = [arg for arg in argv if arg != "--fix"]
    for path in sorted(Path(directory).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if fixing:
            fix(path, tree)
            continue
        for node, dead in unused(tree):
            for alias in dead:
                print(f"{path}:{node.lineno}: {alias.asname or alias.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
