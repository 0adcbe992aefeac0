"""The invalid corpus: every file in cases/invalid/ must fail to parse, at the exact
line:col its `// expect: LINE:COL: substring` header names, with that substring in the
problem text. Line numbers count the header line (it is a comment, so the whole file is
parsed as a user's editor shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest

import runkon
from runkon import DslSyntaxError

from ._corpus import INVALID_DIR, INVALID_FILES, ids, syntax_expectation


def test_invalid_corpus_is_large_enough() -> None:
    assert len(INVALID_FILES) >= 60


@pytest.mark.parametrize("path", INVALID_FILES, ids=ids(INVALID_FILES))
def test_invalid_case_fails_at_expected_position(path: Path) -> None:
    expect = syntax_expectation(path)
    with pytest.raises(DslSyntaxError) as info:
        runkon.load_workflow(path)
    err = info.value
    assert (err.line, err.col) == (expect.line, expect.col), str(err)
    assert expect.substring in err.problem, str(err)
    assert str(err).startswith(f"{path}:{expect.line}:{expect.col}: "), str(err)
    assert err.source == str(path)


def _outcome(call: object) -> object:
    try:
        return call()  # type: ignore[operator]
    except DslSyntaxError as err:
        return (err.line, err.col, err.problem, err.hint)


def test_parse_workflow_and_load_workflow_agree_on_every_invalid_case() -> None:
    """parse_workflow on the text behaves exactly like load_workflow on the file."""
    for path in INVALID_FILES:
        text = path.read_text(encoding="utf-8")
        loaded = _outcome(lambda path=path: runkon.load_workflow(path))
        source = str(path)
        parsed = _outcome(lambda text=text, source=source: runkon.parse_workflow(text, source))
        assert loaded == parsed, path.name


# Hints a user relies on to fix the mistake (did-you-mean and syntax reminders).
HINTS = {
    "call-unknown-option.wf": "did you mean 'retries'?",
    "meta-unknown-key.wf": "did you mean 'title'?",
    "while-unknown-option.wf": "did you mean 'max_iterations'?",
    "parallel-unknown-option.wf": "did you mean 'fail_fast'?",
    "parallel-per-call-unknown.wf": "did you mean 'output'?",
    "gate-unknown-option.wf": "did you mean 'prompt'?",
    "script-unknown-option.wf": "did you mean 'env'?",
    "foreach-unknown-option.wf": "did you mean 'max_parallel'?",
    "file-unknown-step.wf": "did you mean 'call'?",
    "while-on-max-iter-typo.wf": "did you mean 'continue'?",
    "gate-bad-mode.wf": "did you mean 'review_decision'?",
    "do-old-syntax.wf": "do { ... } while step.marker",
    "lex-hash-comment.wf": "comments start with //",
    "lex-single-quotes.wf": "double quotes",
    "lex-block-comment.wf": "block comments are not supported",
    "parallel-nested-if.wf": "only `call` steps",
    "parallel-per-call-on-fail.wf": "only output, with, if and retries",
    "gate-source-on-human-gate.wf": "quality gates",
    "qg-options.wf": "remove 'options'",
    "do-plain-loop-option.wf": "do { ... } while step.marker",
    "file-top-level-option.wf": "meta",
    "while-bool-condition.wf": "step.marker",
    "foreach-skip-dependents-unordered.wf": "ordered = true",
}


@pytest.mark.parametrize(("name", "hint"), sorted(HINTS.items()), ids=sorted(HINTS))
def test_invalid_case_hint(name: str, hint: str) -> None:
    path = INVALID_DIR / name
    with pytest.raises(DslSyntaxError) as info:
        runkon.load_workflow(path)
    assert info.value.hint is not None, str(info.value)
    assert hint in info.value.hint, str(info.value)
    assert f"(hint: {info.value.hint})" in str(info.value)


def test_unknown_option_error_names_what_was_found() -> None:
    with pytest.raises(DslSyntaxError) as info:
        runkon.load_workflow(INVALID_DIR / "call-unknown-option.wf")
    assert info.value.found == "'retires'"


def test_mismatch_error_names_expected_and_found() -> None:
    with pytest.raises(DslSyntaxError) as info:
        runkon.load_workflow(INVALID_DIR / "file-missing-open-brace.wf")
    assert info.value.expected is not None
    assert "'{'" in info.value.expected
    assert info.value.found == "identifier 'call'"
    assert "expected" in info.value.problem
    assert "found identifier 'call'" in info.value.problem
