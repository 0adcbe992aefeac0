"""FLOW_OUTPUT parsing: linear on pathological output, bounded, off the event loop, and
fuzzed against a simple reference model."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runkon.engine import _flow_output
from runkon.engine._flow_output import (
    END_MARKER,
    START_MARKER,
    FlowOutput,
    parse_flow_output,
    parse_flow_output_async,
)

BLOCK = START_MARKER + '\n{"markers": ["done"], "context": "ok"}\n' + END_MARKER


def _loaded_chars(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the length of every body the parser tries to load."""
    sizes: list[int] = []
    real = _flow_output._load

    def counting(body: str) -> Any:
        sizes.append(len(body))
        return real(body)

    monkeypatch.setattr(_flow_output, "_load", counting)
    return sizes


def test_repeated_start_markers_are_parsed_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (START_MARKER + "{") * 13_000  # ~230 kB (took 1.3 GB before)
    sizes = _loaded_chars(monkeypatch)
    assert parse_flow_output(text) is None
    assert sum(sizes) <= len(text)


def test_start_markers_sharing_end_markers_are_parsed_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit = (START_MARKER + '{"a": ') * 200 + END_MARKER
    text = unit * (4 * 1024 * 1024 // len(unit))  # 4 MiB (blocked the loop for 51 s)
    sizes = _loaded_chars(monkeypatch)
    assert parse_flow_output(text + BLOCK) == FlowOutput(("done",), "ok", {})
    assert parse_flow_output(text) is None
    assert sum(sizes) <= 2 * len(text)


def test_only_the_last_limit_characters_are_parsed() -> None:
    text = BLOCK + "x" * 100
    assert parse_flow_output(text, limit=len(text)) == FlowOutput(("done",), "ok", {})
    assert parse_flow_output(text, limit=100) is None


def test_a_body_ends_at_the_next_start_marker() -> None:
    text = START_MARKER + '{"markers": ["old"]}\n' + BLOCK
    assert parse_flow_output(text) == FlowOutput(("done",), "ok", {})
    unterminated = START_MARKER + '{"markers": ["first"]}\n' + START_MARKER + "{broken"
    assert parse_flow_output(unterminated) == FlowOutput(("first",), "", {})


async def test_large_output_is_parsed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real = _flow_output.parse_flow_output

    def recording(text: str, *, limit: int) -> FlowOutput | None:
        threads.append(threading.current_thread())
        return real(text, limit=limit)

    monkeypatch.setattr(_flow_output, "parse_flow_output", recording)
    loop_thread = threading.current_thread()
    assert await parse_flow_output_async("x" * 10 + BLOCK) is not None
    assert await parse_flow_output_async("x" * (1024 * 1024) + BLOCK) is not None
    assert threads[0] is loop_thread
    assert threads[1] is not loop_thread


# --- fuzz against a reference model ------------------------------------------------

PIECES = st.one_of(
    st.just(START_MARKER),
    st.just(END_MARKER),
    st.just("\n"),
    st.just("```json\n"),
    st.just("```"),
    st.sampled_from(["{", "}", "[", "]", ",", '"', "\\", ":", " "]),
    st.builds(
        lambda m, c: json.dumps({"markers": m, "context": c}),
        st.lists(st.text(max_size=5), max_size=3),
        st.text(max_size=10),
    ),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)),
    st.text(max_size=8),
)


def _reference(text: str) -> FlowOutput | None:
    """The documented rule, naively: try each start marker from the last; its body runs
    to the next end or start marker."""
    at = len(text)
    while True:
        at = text.rfind(START_MARKER, 0, at)
        if at == -1:
            return None
        begin = at + len(START_MARKER)
        found = (text.find(END_MARKER, begin), text.find(START_MARKER, begin))
        stops = [p for p in found if p != -1]
        body = text[begin : min(stops, default=len(text))].strip()
        if not body.startswith(("{", "[", "```")):
            continue
        try:
            data = _flow_output._load(body)
        except (ValueError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        markers = data.pop("markers", [])
        context = data.pop("context", "")
        context = "" if context is None else context
        strings = isinstance(markers, list) and all(isinstance(m, str) for m in markers)
        if strings and isinstance(context, str):
            return FlowOutput(tuple(markers), context, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=30).map("".join))
def test_fuzz_never_crashes_and_matches_the_reference(text: str) -> None:
    assert parse_flow_output(text) == _reference(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_random_text_never_crashes(text: str) -> None:
    result = parse_flow_output(text)
    assert result is None or isinstance(result, FlowOutput)
