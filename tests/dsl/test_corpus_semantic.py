"""The semantic-validation corpus: every file in cases/invalid_semantic/ parses, and
`runkon.validate_workflow` reports exactly the errors (and warnings) its
`// expect-validation: LINE:COL: substring` (`// expect-warning: ...`) headers list, in
that order, each located at that line:col of the file. `// validate-with: {json}` passes
registry parameters (actions, gate_types, item_providers, valid_targets, ...).

Children are resolved from cases/invalid_semantic, then its lib/ folder, then
cases/valid."""

from __future__ import annotations

from pathlib import Path

import pytest

import runkon
from runkon.dsl import InMemoryWorkflowResolver, ValidationIssue

from ._corpus import (
    SEMANTIC_DIR,
    SEMANTIC_FILES,
    SEMANTIC_LIB_DIR,
    VALID_DIR,
    ChainResolver,
    Expectation,
    ids,
    semantic_expectation,
    validation_kwargs,
)


def resolver() -> ChainResolver:
    return ChainResolver(SEMANTIC_DIR, SEMANTIC_LIB_DIR, VALID_DIR)


def _matches(issue: ValidationIssue, expect: Expectation, path: Path) -> bool:
    return (
        issue.location is not None
        and issue.location.source == str(path)
        and (issue.location.line, issue.location.col) == (expect.line, expect.col)
        and expect.substring in issue.message
    )


def _show(issues: tuple[ValidationIssue, ...]) -> str:
    return "\n".join(str(issue) for issue in issues) or "(none)"


def test_semantic_corpus_is_large_enough() -> None:
    assert len(SEMANTIC_FILES) >= 30


@pytest.mark.parametrize("path", SEMANTIC_FILES, ids=ids(SEMANTIC_FILES))
def test_semantic_case_reports_expected_issues(path: Path) -> None:
    expect = semantic_expectation(path)
    wf = runkon.load_workflow(path)
    assert wf.name == path.stem
    report = runkon.validate_workflow(wf, resolver=resolver(), **validation_kwargs(expect.params))
    assert len(report.errors) == len(expect.errors), _show(report.errors)
    for issue, wanted in zip(report.errors, expect.errors, strict=True):
        assert issue.severity == "error"
        assert _matches(issue, wanted, path), f"{wanted} vs\n{_show(report.errors)}"
        assert str(issue).startswith(f"{path}:{wanted.line}:{wanted.col}: ")
    assert len(report.warnings) == len(expect.warnings), _show(report.warnings)
    for issue, wanted in zip(report.warnings, expect.warnings, strict=True):
        assert issue.severity == "warning"
        assert _matches(issue, wanted, path), f"{wanted} vs\n{_show(report.warnings)}"
    assert report.ok == (not expect.errors)


def test_semantic_errors_raise_for_errors() -> None:
    path = SEMANTIC_DIR / "cond-unproduced-step.wf"
    report = runkon.validate_workflow(runkon.load_workflow(path), resolver=resolver())
    with pytest.raises(runkon.errors.WorkflowValidationError) as info:
        report.raise_for_errors("cond-unproduced-step")
    assert "review" in str(info.value)
    assert info.value.report is report


def test_undeclared_child_input_suggests_the_declared_one() -> None:
    path = SEMANTIC_DIR / "subworkflow-undeclared-input.wf"
    report = runkon.validate_workflow(runkon.load_workflow(path), resolver=resolver())
    (issue,) = report.errors
    assert issue.hint is not None
    assert "'channel'" in issue.hint


def test_missing_boolean_input_hint_shows_the_declaration() -> None:
    path = SEMANTIC_DIR / "cond-undeclared-input.wf"
    report = runkon.validate_workflow(runkon.load_workflow(path), resolver=resolver())
    (issue,) = report.errors
    assert issue.hint is not None
    assert "`fast boolean`" in issue.hint
    assert str(issue).endswith(f"(hint: {issue.hint})")


def test_foreach_missing_input_hint_mentions_item_fields() -> None:
    path = SEMANTIC_DIR / "foreach-child-missing-input.wf"
    report = runkon.validate_workflow(runkon.load_workflow(path), resolver=resolver())
    (issue,) = report.errors
    assert issue.hint is not None
    assert "{{item.id}}" in issue.hint


def test_syntax_error_in_child_is_reported_with_its_location() -> None:
    path = SEMANTIC_DIR / "subworkflow-syntax-error.wf"
    report = runkon.validate_workflow(runkon.load_workflow(path), resolver=resolver())
    (issue,) = report.errors
    assert f"{SEMANTIC_LIB_DIR / 'broken-child.wf'}:3:" in issue.message


def test_child_issue_keeps_the_child_location() -> None:
    path = SEMANTIC_DIR / "subworkflow-with-error.wf"
    report = runkon.validate_workflow(runkon.load_workflow(path), resolver=resolver())
    (issue,) = report.errors
    child = SEMANTIC_LIB_DIR / "child-with-bad-condition.wf"
    assert f"{child}:3:3: condition references step 'ghost'" in issue.message


def test_nesting_at_the_limit_is_fine() -> None:
    """deep-1 -> ... -> deep-6 is five levels of `call workflow` below deep-1: allowed."""
    wf = runkon.load_workflow(SEMANTIC_LIB_DIR / "deep-1.wf")
    report = runkon.validate_workflow(wf, resolver=resolver())
    assert report.errors == ()


def test_cycles_and_depth_are_not_checked_without_a_resolver() -> None:
    wf = runkon.load_workflow(SEMANTIC_DIR / "self-cycle.wf")
    assert runkon.validate_workflow(wf).errors == ()


def test_fallback_action_satisfies_every_call() -> None:
    wf = runkon.load_workflow(SEMANTIC_DIR / "registry-unknown-action.wf")
    report = runkon.validate_workflow(wf, actions=[], fallback_action=True)
    assert report.errors == ()


def test_builtin_gate_types_need_no_registry_entry() -> None:
    wf = runkon.parse_workflow(
        """workflow g {
          call plan
          gate human_approval
          gate human_review
          gate pr_approval
          gate pr_checks
          gate quality_gate { source = plan threshold = 1 }
        }"""
    )
    report = runkon.validate_workflow(wf, gate_types=[])
    assert report.errors == ()
    assert report.warnings == ()


def test_registered_custom_gate_type_is_fine() -> None:
    wf = runkon.load_workflow(SEMANTIC_DIR / "registry-gate-type-option.wf")
    report = runkon.validate_workflow(wf, gate_types=["slack_reaction"])
    assert report.errors == ()
    assert report.warnings == ()


def test_item_providers_as_plain_names() -> None:
    wf = runkon.load_workflow(SEMANTIC_DIR / "registry-unknown-provider.wf")
    report = runkon.validate_workflow(wf, item_providers=["repo"])
    assert report.errors == ()
    report = runkon.validate_workflow(wf, item_providers=["repos"])
    assert [issue.message for issue in report.errors] == [
        "foreach 'per-repo': unknown provider 'repo'; no ItemProvider is registered under this name"
    ]
    assert report.errors[0].hint == "did you mean 'repos'?"


def test_unordered_foreach_needs_no_ordering_support() -> None:
    wf = runkon.load_workflow(SEMANTIC_DIR / "provider-ordered-unsupported.wf")
    fixed = wf.model_copy(update={"body": (wf.body[0].model_copy(update={"ordered": False}),)})
    kwargs = validation_kwargs({"item_providers": {"repos": {"ordered": False}}})
    assert runkon.validate_workflow(fixed, **kwargs).errors == ()


def test_cycle_search_scales_with_workflows_not_paths() -> None:
    """A library of 30 workflows per level, each calling all 30 of the next level, five
    levels deep (151 workflows, legal depth, no cycle). Checking cycles and depth must
    visit workflows, not each of the 30**5 = 24,300,000 call paths (which would run into
    the test timeout)."""
    width, levels = 30, 5
    workflows = []
    for level in range(levels):
        for i in range(width):
            if level == levels - 1:
                body = "call leaf"
            else:
                body = " ".join(f"call workflow l{level + 1}-{j}" for j in range(width))
            workflows.append(runkon.parse_workflow(f"workflow l{level}-{i} {{ {body} }}"))
    calls = " ".join(f"call workflow l0-{j}" for j in range(width))
    root = runkon.parse_workflow(f"workflow root {{ {calls} }}")
    report = runkon.validate_workflow(root, resolver=InMemoryWorkflowResolver(workflows))
    assert report.errors == ()
