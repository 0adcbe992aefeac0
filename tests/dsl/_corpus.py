"""Shared helpers for the .wf corpus tests: where the cases live and how headers read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runkon.dsl import DirectoryWorkflowResolver, WorkflowDef
from runkon.errors import WorkflowNotFoundError

CASES = Path(__file__).parent / "cases"
VALID_DIR = CASES / "valid"
INVALID_DIR = CASES / "invalid"
SEMANTIC_DIR = CASES / "invalid_semantic"
SEMANTIC_LIB_DIR = SEMANTIC_DIR / "lib"  # children of semantic cases; not cases themselves

VALID_FILES = sorted(VALID_DIR.glob("*.wf"))
INVALID_FILES = sorted(INVALID_DIR.glob("*.wf"))
SEMANTIC_FILES = sorted(SEMANTIC_DIR.glob("*.wf"))

_EXPECT_RE = re.compile(r"^// expect: (\d+):(\d+): (.+)$")
_EXPECT_VALIDATION_RE = re.compile(r"^// expect-(validation|warning): (\d+):(\d+): (.+)$")
_VALIDATE_WITH_RE = re.compile(r"^// validate-with: (.+)$")


def ids(files: list[Path]) -> list[str]:
    return [f.name for f in files]


@dataclass(frozen=True)
class Expectation:
    line: int
    col: int
    substring: str


def syntax_expectation(path: Path) -> Expectation:
    """The `// expect: LINE:COL: substring` header (the file's first line)."""
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    match = _EXPECT_RE.match(first)
    assert match, f"{path.name}: first line must be `// expect: LINE:COL: substring`"
    return Expectation(int(match.group(1)), int(match.group(2)), match.group(3))


@dataclass(frozen=True)
class SemanticExpectation:
    errors: list[Expectation]
    warnings: list[Expectation]
    params: dict[str, Any]


def semantic_expectation(path: Path) -> SemanticExpectation:
    """The leading `// expect-validation:` / `// expect-warning:` / `// validate-with:` lines."""
    errors: list[Expectation] = []
    warnings: list[Expectation] = []
    params: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("//"):
            break
        if match := _EXPECT_VALIDATION_RE.match(line):
            kind, ln, col, sub = match.groups()
            target = errors if kind == "validation" else warnings
            target.append(Expectation(int(ln), int(col), sub))
        elif match := _VALIDATE_WITH_RE.match(line):
            params.update(json.loads(match.group(1)))
    assert errors or warnings, f"{path.name}: no `// expect-validation:` header"
    return SemanticExpectation(errors, warnings, params)


class ChainResolver:
    """Resolves a name from the first directory that has it."""

    def __init__(self, *roots: Path) -> None:
        self.resolvers = [DirectoryWorkflowResolver(root) for root in roots]

    def resolve(self, name: str) -> WorkflowDef:
        last: WorkflowNotFoundError | None = None
        for resolver in self.resolvers:
            try:
                return resolver.resolve(name)
            except WorkflowNotFoundError as exc:
                last = exc
        assert last is not None
        raise last


class FakeProvider:
    """An item provider whose capabilities come from a `validate-with` JSON object.

    Keys: ordered (bool), requires_filter (bool), scope_keys (list: allowed scope keys),
    filter_keys (list: allowed filter keys), scope_warning (str: returned as a warning).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def supports_ordered(self) -> bool:
        return bool(self.spec.get("ordered", False))

    def requires_filter(self) -> bool:
        return bool(self.spec.get("requires_filter", False))

    def parse_scope(self, scope: Any) -> Any:
        allowed = self.spec.get("scope_keys")
        if allowed is not None and scope:
            for key in scope:
                if key not in allowed:
                    raise ValueError(f"unknown scope key {key!r}")
        return scope

    def scope_warnings(self, scope: Any) -> list[str]:
        warning = self.spec.get("scope_warning")
        return [warning] if warning else []

    def validate_filter(self, filter: Any) -> None:
        allowed = self.spec.get("filter_keys")
        if allowed is not None:
            for key in filter:
                if key not in allowed:
                    raise ValueError(f"unknown filter key {key!r}")


def validation_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """`validate-with` parameters turned into keyword arguments of validate_workflow."""
    kwargs = dict(params)
    providers = kwargs.get("item_providers")
    if isinstance(providers, dict):
        kwargs["item_providers"] = {name: FakeProvider(spec) for name, spec in providers.items()}
    return kwargs
