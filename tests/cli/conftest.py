"""Fixtures of the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._support import Background


@pytest.fixture
def background() -> Iterator[list[Background]]:
    """Started background processes are killed at the end of the test."""
    started: list[Background] = []
    yield started
    for process in started:
        process.stop()
