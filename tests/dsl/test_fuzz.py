"""Property tests: whatever the text, parsing yields a WorkflowDef or a DslSyntaxError
(never another exception, never a RecursionError, never a hang), errors are located
inside the text, and what parses survives JSON and validation.

Inputs: random text, random token soups, and character- and token-level mutations
(insert, delete, replace, duplicate, swap, truncate) of the valid corpus. Plus
pathological inputs (100,000 nested brackets or blocks, megabytes of text), each of
which must finish in bounded time.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runkon
from runkon import DslSyntaxError
from runkon.dsl import InMemoryWorkflowResolver, WorkflowDef

from ._corpus import VALID_FILES
from ._expect import strip

CORPUS = {path.stem: path.read_text(encoding="utf-8") for path in VALID_FILES}
CORPUS_NAMES = sorted(CORPUS)
RESOLVER = InMemoryWorkflowResolver([runkon.parse_workflow(text) for text in CORPUS.values()])

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYWORDS = [
    "workflow",
    "meta",
    "inputs",
    "call",
    "if",
    "unless",
    "while",
    "do",
    "parallel",
    "gate",
    "always",
    "script",
    "foreach",
    "required",
    "default",
    "description",
    "boolean",
]
OPTION_KEYS = [
    "retries",
    "on_fail",
    "output",
    "with",
    "as",
    "plugin_dirs",
    "timeout",
    "max_turns",
    "max_iterations",
    "stuck_after",
    "on_max_iter",
    "fail_fast",
    "min_success",
    "type",
    "prompt",
    "min_approvals",
    "mode",
    "on_timeout",
    "options",
    "source",
    "threshold",
    "run",
    "env",
    "over",
    "max_parallel",
    "scope",
    "filter",
    "ordered",
    "on_cycle",
    "on_child_fail",
    "title",
    "trigger",
    "targets",
    "group",
]
VALUES = [
    "true",
    "false",
    "continue",
    "fail",
    "manual",
    "review_decision",
    "skip_dependents",
    "0",
    "1",
    "2",
    "100",
    "101",
    "4294967295",
    "4294967296",
    "99999999999",
    "5m",
    "1h30m",
    '"30s"',
    '"250ms"',
    '"2d"',
    '"x"',
    '""',
    '"a.b"',
    '"../x.md"',
    '"\\n"',
    "a.b",
    "a.b.c",
    "human_approval",
    "quality_gate",
    "pr_checks",
    "slack_reaction",
    "repo-check",
]
PUNCT = ["{", "}", "[", "]", ",", "=", "."]
NOISE = ["// comment\n", "\n", "\t", "#", "'", '"', "\\", "-", "é", "\ufeff", "\r\n", "/"]
TOKENS = KEYWORDS + OPTION_KEYS + VALUES + PUNCT + NOISE


def check(text: str) -> WorkflowDef | DslSyntaxError:
    """Parse `text`; anything but a WorkflowDef or a well-formed DslSyntaxError fails."""
    try:
        wf = runkon.parse_workflow(text, source="fuzz.wf")
    except DslSyntaxError as exc:
        return _check_error(text, exc)
    assert isinstance(wf, WorkflowDef)
    assert WorkflowDef.from_json(wf.to_json()) == wf
    report = runkon.validate_workflow(wf, resolver=RESOLVER)  # must never raise
    assert report.ok == (not report.errors)
    return wf


def _check_error(text: str, err: DslSyntaxError) -> DslSyntaxError:
    lines = text.split("\n")
    assert err.source == "fuzz.wf"
    assert 1 <= err.line <= len(lines), (err.line, len(lines))
    assert 1 <= err.col <= len(lines[err.line - 1]) + 1, (err.col, lines[err.line - 1][:80])
    assert str(err).startswith(f"fuzz.wf:{err.line}:{err.col}: ")
    assert err.problem
    return err


# ----------------------------------------------------------------------- random text


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.text(max_size=300))
def test_random_text_inside_a_workflow(text: str) -> None:
    check("workflow w {\n" + text + "\n}\n")


@FUZZ
@given(
    st.lists(st.sampled_from(TOKENS), max_size=80),
    st.sampled_from([" ", "\n", "", " // c\n"]),
)
def test_token_soup(tokens: list[str], sep: str) -> None:
    check("workflow w {" + sep + sep.join(tokens) + sep + "}")


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=80))
def test_token_soup_without_frame(tokens: list[str]) -> None:
    check(" ".join(tokens))


# ----------------------------------------------------------------------- mutations

_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|\s+|[A-Za-z_][A-Za-z0-9_-]*|[0-9]\w*|.', re.S)


def tokens_of(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


@st.composite
def char_mutation(draw: st.DrawFn) -> str:
    text = CORPUS[draw(st.sampled_from(CORPUS_NAMES))]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate"]))
        pos = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(TOKENS) | st.text(max_size=3)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        elif op == "replace" and pos < len(text):
            text = text[:pos] + draw(st.characters()) + text[pos + 1 :]
        elif op == "duplicate":
            end = min(len(text), pos + draw(st.integers(1, 200)))
            text = text[:end] + text[pos:end] + text[end:]
        elif op == "truncate":
            text = text[:pos]
    return text


@st.composite
def token_mutation(draw: st.DrawFn) -> str:
    tokens = tokens_of(CORPUS[draw(st.sampled_from(CORPUS_NAMES))])
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "swap", "truncate"]))
        i = draw(st.integers(0, len(tokens) - 1))
        if op == "insert":
            tokens.insert(i, " " + draw(st.sampled_from(TOKENS)) + " ")
        elif op == "delete":
            del tokens[i]
        elif op == "replace":
            tokens[i] = " " + draw(st.sampled_from(TOKENS)) + " "
        elif op == "duplicate":
            end = min(len(tokens), i + draw(st.integers(1, 30)))
            tokens[i:i] = tokens[i:end]
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens = tokens[:i]
    return "".join(tokens)


@FUZZ
@given(char_mutation())
def test_character_mutations_of_the_corpus(text: str) -> None:
    check(text)


@FUZZ
@given(token_mutation())
def test_token_mutations_of_the_corpus(text: str) -> None:
    check(text)


@st.composite
def relayout(draw: st.DrawFn) -> tuple[str, str]:
    """A corpus file with comments, newlines and blanks added between its tokens."""
    name = draw(st.sampled_from(CORPUS_NAMES))
    out = []
    for token in tokens_of(CORPUS[name]):
        out.append(token)
        if not token.startswith("//"):
            out.append(draw(st.sampled_from(["", "", "", " ", "\n", "\t", " // note\n", "\n\n"])))
        else:
            out.append("\n")
    return name, "".join(out)


@FUZZ
@given(relayout())
def test_layout_and_comments_do_not_change_meaning(case: tuple[str, str]) -> None:
    """Newlines are not significant and comments may stand between any two tokens."""
    name, text = case
    original = runkon.parse_workflow(CORPUS[name])
    relaid = runkon.parse_workflow(text)
    assert strip(relaid.model_dump(mode="json")) == strip(original.model_dump(mode="json"))


# ----------------------------------------------------------------------- pathological

N = 100_000


def _bounded(text: str, seconds: float = 30.0) -> WorkflowDef | DslSyntaxError:
    start = time.perf_counter()
    result = check(text)
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    return result


PATHOLOGICAL = {
    "100k-open-brackets": "workflow w { call x { with = " + "[" * N + " } }",
    "100k-open-braces-in-value": "workflow w { call x { with = " + "{" * N + " } }",
    "100k-nested-maps": 'workflow w { script s { run = "x" env = ' + "{ a = " * N + " } }",
    "100k-if-blocks": "workflow w { " + "if a { " * N,
    "100k-if-blocks-closed": "workflow w { " + "if a { " * N + "}" * N + " }",
    "100k-do-blocks": "workflow w { " + "do { " * N,
    "100k-always-blocks": "workflow w { " + "always { " * N,
    "100k-while-blocks": "workflow w { " + "while a.b { max_iterations = 1 " * N,
    "100k-parallel": "workflow w { " + "parallel { " * N,
    "100k-close-braces": "workflow w { }" + "}" * N,
    "100k-dots": "workflow w { call x { output = a" + ".a" * N + " } }",
    "5mb-string": 'workflow w { call x { output = "' + "a" * 5_000_000 + '" } }',
    "5mb-unterminated-string": 'workflow w { call x { output = "' + "ab\\n" * 1_250_000,
    "5mb-comment": "workflow w { // " + "x" * 5_000_000 + "\n call x }",
    "5mb-whitespace": "workflow w {" + " \n\t" * 1_700_000 + "call x }",
    "5mb-identifier": "workflow w { call " + "a" * 5_000_000 + " }",
    "5mb-newlines": "workflow w {" + "\n" * 5_000_000 + "@ }",
    "1mb-quotes": "workflow w { " + '"' * 1_000_001,
    "1mb-bad-characters": "@" * 1_000_000,
    "many-inputs": "workflow w { inputs { " + " ".join(f"i{k}" for k in range(50_000)) + " } }",
    "many-calls": "workflow w { " + "call x " * 30_000 + "}",
    "long-list": "workflow w { call x { with = [" + "a, " * 200_000 + "] } }",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL), ids=sorted(PATHOLOGICAL))
def test_pathological_input_finishes(name: str) -> None:
    _bounded(PATHOLOGICAL[name])


def test_deep_but_legal_nesting_parses_validates_and_round_trips() -> None:
    """64 nested blocks is the limit: it parses, and nothing downstream recurses too deep."""
    text = "workflow w { call a " + "if a.b { " * 64 + "call x " + "} " * 64 + "}"
    wf = _bounded(text)
    assert isinstance(wf, WorkflowDef)
    assert sum(1 for _ in wf.walk()) == 66
    assert runkon.validate_workflow(wf).errors == ()


def test_nesting_limit_counts_every_block_kind() -> None:
    """Mixed block kinds share one nesting budget."""
    opener = ["if a.b { ", "unless a.b { ", "do { ", "always { ", "while a.b { max_iterations = 1 "]
    text = "workflow w { call a " + "".join(opener[k % 5] for k in range(65)) + "call x "
    text += "} " * 65 + "}"
    err = _bounded(text)
    assert isinstance(err, DslSyntaxError)
    assert "nested more than 64 levels" in err.problem


def test_value_nesting_limit_is_exactly_16() -> None:
    """16 levels of nested values parse (and are then refused cleanly, because env values
    must be strings); the 17th level is a nesting error."""
    head = 'workflow w { script s { run = "x" env = '
    err = check(head + "{ a = " * 16 + '"v"' + " }" * 16 + " } }")
    assert isinstance(err, DslSyntaxError)
    assert "must be strings" in err.problem
    err = check(head + "{ a = " * 17 + '"v"' + " }" * 17 + " } }")
    assert isinstance(err, DslSyntaxError)
    assert "nested more than 16 levels" in err.problem
    assert err.col == len(head) + len("{ a = ") * 16 + 1
