"""The HTTP API fuzzed against its own OpenAPI document (schemathesis): whatever a
client sends, the answer is never a 500 and always matches the documented schema."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings

from runkon import FlowEngine, InMemoryStore
from runkon.integrations.fastapi import create_app

from ._support import AUTH, WORKFLOWS, Recorder

schemathesis = pytest.importorskip("schemathesis")
checks = pytest.importorskip("schemathesis.specs.openapi.checks")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def api_schema() -> Iterator[Any]:
    """The app served by uvicorn in a thread; its schema, loaded over HTTP."""
    app = create_app(
        FlowEngine(InMemoryStore(), fallback_action=Recorder()),
        AUTH,
        workflows=WORKFLOWS,
        csrf_secret="fuzz",
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_api_answers_as_documented(api_schema: Any) -> None:
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": "Bearer t-alice"},
                # the documented answers; not positive_data_acceptance: a status filter
                # is documented as a string and an unknown one is refused (422)
                excluded_checks=[checks.positive_data_acceptance],
            )

        answers_as_documented()
