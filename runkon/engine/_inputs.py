"""Run inputs: checked against the workflow's declarations, defaults applied."""

from __future__ import annotations

from collections.abc import Mapping

from runkon.dsl import WorkflowDef
from runkon.engine._errors import InputError
from runkon.engine._text import has_surrogate

_TRUE_FALSE = ("true", "false")


def _as_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InputError(
        f"input {name!r} must be a string (or bool/number), got {type(value).__name__}"
    )


def apply_inputs(workflow: WorkflowDef, given: Mapping[str, object] | None) -> dict[str, str]:
    """The run's inputs: ``given`` checked and completed with defaults.

    Boolean inputs default to ``"false"`` and accept ``true``/``false`` (any case, or a
    Python bool). ``item.*`` keys (set by ``foreach``) pass through undeclared.

    Raises:
        InputError: a required input is missing, an input is not declared, a boolean
            input has another value, or a value is not valid text (it holds a lone
            surrogate, e.g. bytes that were not UTF-8). The message names every problem
            and the fix.
    """
    values = {name: _as_text(name, value) for name, value in (given or {}).items()}
    problems: list[str] = [
        f"input {name!r} is not valid text (a lone surrogate, e.g. from bytes that are not "
        "UTF-8); pass UTF-8 text"
        for name, value in values.items()
        if has_surrogate(name) or has_surrogate(value)
    ]
    declared = {decl.name: decl for decl in workflow.inputs}
    for name in values:
        if name not in declared and not name.startswith("item."):
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"unknown input {name!r} (declared inputs: {known})")
    for decl in workflow.inputs:
        if decl.name in values:
            if decl.input_type == "boolean":
                lowered = values[decl.name].lower()
                if lowered not in _TRUE_FALSE:
                    problems.append(
                        f"boolean input {decl.name!r} must be true or false, "
                        f"got {values[decl.name]!r}"
                    )
                values[decl.name] = lowered
            continue
        if decl.required:
            problems.append(
                f"missing required input {decl.name!r}; pass it as inputs={{{decl.name!r}: ...}} "
                f"(CLI: --input {decl.name}=<value>)"
            )
        elif decl.default is not None:
            values[decl.name] = decl.default
        elif decl.input_type == "boolean":
            values[decl.name] = "false"
    if problems:
        raise InputError(f"workflow {workflow.name!r}: " + "; ".join(problems))
    return values
