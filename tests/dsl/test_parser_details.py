"""Focused parser behaviours a user notices, beyond the corpus files: text encodings and
layout, positions, durations, step keys, error objects, loading and resolvers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

import runkon
from runkon import DslSyntaxError
from runkon.dsl import (
    AgentRef,
    CallNode,
    DirectoryWorkflowResolver,
    GateNode,
    IfNode,
    InMemoryWorkflowResolver,
    ScriptNode,
    StepMarkerCondition,
    format_duration,
    parse_duration,
)
from runkon.errors import WorkflowNotFoundError

from ._corpus import VALID_DIR, VALID_FILES


def parse(text: str) -> runkon.WorkflowDef:
    return runkon.parse_workflow(text, source="t.wf")


def error(text: str) -> DslSyntaxError:
    with pytest.raises(DslSyntaxError) as info:
        runkon.parse_workflow(text, source="t.wf")
    return info.value


# ----------------------------------------------------------------------- layout


def test_default_source_name_in_errors() -> None:
    with pytest.raises(DslSyntaxError) as info:
        runkon.parse_workflow("flow")
    assert info.value.source == "<string>"
    assert str(info.value).startswith("<string>:1:1: ")


def test_statements_need_no_newlines() -> None:
    wf = parse('workflow w { inputs { a b boolean } call x { retries = 1 output = "o" } call y }')
    assert [i.name for i in wf.inputs] == ["a", "b"]
    assert [n.agent.value for n in wf.body] == ["x", "y"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "space",
    ["\u00a0", "\u2003", "\u3000", "\v", "\f", "\r"],
    ids=["nbsp", "em", "ideo", "vt", "ff", "cr"],
)
def test_any_unicode_whitespace_separates_tokens(space: str) -> None:
    wf = parse(f"workflow{space}w{space}{{{space}call{space}x{space}}}")
    assert wf.name == "w"
    assert len(wf.body) == 1


def test_crlf_line_endings_keep_line_numbers() -> None:
    text = "workflow w {\r\n  call x\r\n  call y { retries = lots }\r\n}\r\n"
    err = error(text)
    assert (err.line, err.col) == (3, 22)
    wf = parse(text.replace("lots", "2"))
    assert [(n.line, n.col) for n in wf.body] == [(2, 3), (3, 3)]


def test_tab_counts_as_one_column() -> None:
    err = error("workflow w {\n\t\tcall x { retries = lots }\n}")
    assert (err.line, err.col) == (2, 22)


def test_positions_after_a_multi_line_string() -> None:
    text = (
        'workflow w {\n  script s {\n    run = "line 1\nline 2\nline 3"\n  }\n'
        "  call x { retries = lots }\n}"
    )
    err = error(text)
    assert (err.line, err.col) == (7, 22)


def test_positions_after_non_ascii_text() -> None:
    err = error('workflow w {\n  call x { output = "ünïcødé ✓" retries = lots }\n}')
    assert (err.line, err.col) == (2, 43)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.wf"
    path.write_bytes(b"\xef\xbb\xbfworkflow bom {\n  call x\n}\n")
    wf = runkon.load_workflow(path)
    assert wf.name == "bom"
    assert (wf.body[0].line, wf.body[0].col) == (2, 3)


def test_comment_at_end_of_file_without_newline() -> None:
    assert parse("workflow w { call x } // done").name == "w"


@pytest.mark.parametrize(
    ("escaped", "value"),
    [
        (r"\n", "\n"),
        (r"\t", "\t"),
        (r"\"", '"'),
        (r"\\", "\\"),
        (r"\q", "q"),  # any other \c yields c (reference §1.1)
        (r"\r", "r"),
        (r"\{\{x}}", "{{x}}"),
        ("a\nb", "a\nb"),  # raw newlines are kept
    ],
)
def test_string_escapes(escaped: str, value: str) -> None:
    wf = parse('workflow w { call x { output = "' + escaped + '" } }')
    assert wf.body[0].output == value  # type: ignore[union-attr]


def test_identifiers_may_contain_hyphens_and_underscores() -> None:
    wf = parse("workflow my-flow_v2 { call review-pr_2 if review-pr_2.has_code-changes { } }")
    assert wf.name == "my-flow_v2"
    node = wf.body[1]
    assert isinstance(node, IfNode)
    cond = node.condition
    assert isinstance(cond, StepMarkerCondition)
    assert (cond.step, cond.marker) == ("review-pr_2", "has_code-changes")


# ----------------------------------------------------------------------- values


def test_largest_u32_is_accepted() -> None:
    wf = parse("workflow w { call x { retries = 4294967295 } }")
    assert wf.body[0].retries == 4294967295  # type: ignore[union-attr]


def test_too_large_loop_bound_names_the_real_limit() -> None:
    """4294967296 is too LARGE: the message must not claim it is below the minimum."""
    err = error("workflow w { call a while a.b { max_iterations = 4294967296 call a } }")
    assert (err.line, err.col) == (1, 50)
    assert "at least" not in err.problem, err.problem
    assert "4294967295" in err.problem or "too large" in err.problem, err.problem


@pytest.mark.parametrize("spelling", ["True", "TRUE", "yes", "1", "on"])
def test_booleans_must_be_true_or_false(spelling: str) -> None:
    """Reference §7.25: `fail_fast = yes` silently meant false; runkon refuses it."""
    err = error("workflow w { parallel { fail_fast = " + spelling + " call a } }")
    assert "true or false" in err.problem
    assert (err.line, err.col) == (1, 37)


def test_quoted_booleans_are_accepted() -> None:
    wf = parse('workflow w { parallel { fail_fast = "false" call a } }')
    assert wf.body[0].fail_fast is False  # type: ignore[union-attr]


def test_lists_accept_commas_or_none() -> None:
    wf = parse('workflow w { call x { with = [a "b", c, d e,] plugin_dirs = [] } }')
    node = wf.body[0]
    assert isinstance(node, CallNode)
    assert node.snippets == ("a", "b", "c", "d", "e")
    assert node.plugin_dirs == ()


def test_dotted_values_keep_their_dot() -> None:
    wf = parse("workflow w { call x { output = schemas.plan } }")
    assert wf.body[0].output == "schemas.plan"  # type: ignore[union-attr]


# ----------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1d2h3m4s5ms", 93784.005),
        (" 5m ", 300.0),
        ("366d", 366 * 86400.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1.5h", "5x", "m5", "-5s", "5 m", "1h-30m", "367d", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.25, 30.0, 300.0, 5400.0, 172800.0, 93784.005, 1.5])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_timeouts_in_every_spelling_parse_to_seconds() -> None:
    wf = parse(
        "workflow w {\n"
        '  call a { timeout = "1h30m" }\n'
        "  call b { timeout = 45 }\n"
        '  script s { run = "x" timeout = "2m" }\n'
        '  script t { run = "x" timeout = 120 }\n'
        "  gate pr_checks { timeout = 2d }\n"
        "}"
    )
    assert [n.timeout for n in wf.body] == [5400.0, 45.0, 120.0, 120.0, 172800.0]  # type: ignore[union-attr]


# ----------------------------------------------------------------------- step keys


@pytest.mark.parametrize(
    ("agent", "key"),
    [
        (".claude/agents/plan.md", "plan"),
        ("agents/review", "review"),
        ("plan.md", "plan"),
        ("agents/plan.v2.md", "plan.v2"),  # the file stem keeps inner dots
        ("agents/.hidden.md", ".hidden"),  # a leading dot is part of the stem
    ],
)
def test_path_agent_step_key_is_the_file_stem(agent: str, key: str) -> None:
    """Reference §1.6: step_key() is the file stem of the path (Path::file_stem)."""
    wf = parse('workflow w { call "' + agent + '" }')
    node = wf.body[0]
    assert isinstance(node, CallNode)
    assert node.agent == AgentRef(kind="path", value=agent)
    assert node.agent.step_key == key
    assert node.agent.step_key == Path(agent).stem


def test_condition_on_a_path_agent_uses_its_stem() -> None:
    wf = parse('workflow w { call ".claude/agents/plan.md" if plan.ready { call x } }')
    assert runkon.validate_workflow(wf).errors == ()


def test_condition_on_a_gate_result_validates() -> None:
    """runkon gates leave a result (approved/rejected/... markers) that conditions read."""
    wf = parse("workflow w { gate human_review if human_review.approved { call ship } }")
    assert runkon.validate_workflow(wf).errors == ()


def test_gate_type_option_decouples_name_and_type() -> None:
    wf = parse(
        "workflow w { gate first-review { type = human_review } "
        "gate second-review { type = human_review } }"
    )
    gates = [n for n in wf.body if isinstance(n, GateNode)]
    assert [(g.name, g.gate_type) for g in gates] == [
        ("first-review", "human_review"),
        ("second-review", "human_review"),
    ]


# ----------------------------------------------------------------------- error objects


def test_syntax_error_pickles() -> None:
    err = error("workflow w { call x { retires = 1 } }")
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, DslSyntaxError)
    assert (again.source, again.line, again.col) == (err.source, err.line, err.col)
    assert (again.problem, again.hint, again.found) == (err.problem, err.hint, err.found)
    assert str(again).startswith("t.wf:1:23: ")


def test_syntax_error_is_a_runkon_dsl_error() -> None:
    err = error("workflow")
    assert isinstance(err, runkon.errors.DslError)
    assert isinstance(err, runkon.errors.RunkonError)


def test_unknown_option_lists_valid_ones_when_nothing_is_close() -> None:
    err = error('workflow w { script s { run = "x" zzzzzz = 1 } }')
    assert err.hint is not None
    for key in ("as", "env", "on_fail", "retries", "run", "timeout"):
        assert key in err.hint


# ----------------------------------------------------------------------- loading


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowNotFoundError):
        runkon.load_workflow(tmp_path / "nope.wf")


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkflowNotFoundError):
        runkon.load_workflow(tmp_path)


def test_load_non_utf8_file_points_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.wf"
    path.write_bytes(b'workflow w {\n  call x { output = "caf\xe9" }\n}\n')
    with pytest.raises(DslSyntaxError) as info:
        runkon.load_workflow(path)
    assert (info.value.line, info.value.col) == (2, 25)
    assert "UTF-8" in info.value.problem


def test_load_accepts_str_and_pathlike() -> None:
    path = VALID_FILES[0]
    assert runkon.load_workflow(str(path)) == runkon.load_workflow(path)


# ----------------------------------------------------------------------- resolvers


def test_directory_resolver_lists_and_resolves_the_corpus() -> None:
    resolver = DirectoryWorkflowResolver(VALID_DIR)
    assert resolver.names() == sorted(p.stem for p in VALID_FILES)
    assert resolver.resolve("notify").name == "notify"


@pytest.mark.parametrize("name", ["../valid/notify", "notify.wf", "", "a/b", "..", "no such"])
def test_directory_resolver_refuses_bad_names(name: str) -> None:
    with pytest.raises(WorkflowNotFoundError):
        DirectoryWorkflowResolver(VALID_DIR).resolve(name)


def test_directory_resolver_rereads_changed_files(tmp_path: Path) -> None:
    path = tmp_path / "flow.wf"
    path.write_text("workflow flow { call a }")
    resolver = DirectoryWorkflowResolver(tmp_path)
    assert [n.agent.value for n in resolver.resolve("flow").body] == ["a"]  # type: ignore[union-attr]
    path.write_text("workflow flow { call a call b }")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000_000))
    assert [n.agent.value for n in resolver.resolve("flow").body] == ["a", "b"]  # type: ignore[union-attr]


def test_directory_resolver_reports_syntax_errors_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.wf").write_text("workflow bad { call }")
    with pytest.raises(DslSyntaxError) as info:
        DirectoryWorkflowResolver(tmp_path).resolve("bad")
    assert info.value.source == str(tmp_path / "bad.wf")


def test_directory_resolver_refuses_symlinks_out_of_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside.wf"
    outside.write_text("workflow outside { call a }")
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape.wf").symlink_to(outside)
    with pytest.raises(WorkflowNotFoundError):
        DirectoryWorkflowResolver(root).resolve("escape")


def test_in_memory_resolver() -> None:
    wf = parse("workflow child { call a }")
    resolver = InMemoryWorkflowResolver([wf])
    assert resolver.resolve("child") is wf
    resolver.add(wf, name="alias")
    assert resolver.names() == ["alias", "child"]
    with pytest.raises(WorkflowNotFoundError):
        resolver.resolve("other")


def test_validation_with_in_memory_resolver_matches_directory_resolver() -> None:
    workflows = [runkon.load_workflow(p) for p in VALID_FILES]
    memory = InMemoryWorkflowResolver(workflows)
    directory = DirectoryWorkflowResolver(VALID_DIR)
    for wf in workflows:
        by_memory = runkon.validate_workflow(wf, resolver=memory)
        by_directory = runkon.validate_workflow(wf, resolver=directory)
        assert by_memory.errors == by_directory.errors == ()


def test_script_env_is_a_read_only_mapping() -> None:
    wf = parse('workflow w { script s { run = "x" env = { A = "1" } } }')
    node = wf.body[0]
    assert isinstance(node, ScriptNode)
    assert dict(node.env) == {"A": "1"}
    with pytest.raises(TypeError):
        node.env["A"] = "2"  # type: ignore[index]


def test_load_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wf"
    os.mkfifo(fifo)
    with pytest.raises(WorkflowNotFoundError) as info:
        runkon.load_workflow(fifo)
    assert "not a regular file" in str(info.value)


def test_load_refuses_a_device() -> None:
    with pytest.raises(WorkflowNotFoundError) as info:
        runkon.load_workflow("/dev/zero")
    assert "not a regular file" in str(info.value)


def test_load_refuses_a_file_over_the_size_cap_reading_only_the_cap(tmp_path: Path) -> None:
    from runkon.dsl._load import MAX_FILE_BYTES

    big = tmp_path / "big.wf"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no 16 MiB write
    with pytest.raises(DslSyntaxError) as info:
        runkon.load_workflow(big)
    assert "larger than 16 MiB" in info.value.problem
