"""Hostile HTTP input at the edge, on both apps: bodies are read only after
authentication and never past the cap (413), invalid text and absurd numbers are 4xx
answers, never a 500."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from runkon import FlowEngine, Store
from runkon.integrations.aiohttp import create_app as create_aiohttp_app

from ._support import ALICE, AUTH, WORKFLOWS, Recorder, serving

LIMIT = 64 * 1024
MiB = 1024 * 1024

# JSON bodies whose strings are no valid Unicode (a lone surrogate), each a 422
SURROGATE_BODIES = [
    b'{"workflow": "\\ud800"}',
    b'{"workflow": "ship", "inputs": {"ticket": "\\ud800"}}',
    b'{"workflow": "ship", "inputs": {"\\udfff": "T-1"}}',
]


class Counting:
    """A request body of ``total`` bytes in 64 KiB chunks that counts what was pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += 64 * 1024
            yield b" " * (64 * 1024)


def _exchange(port: int, raw: bytes) -> bytes:
    """Send raw request bytes (headers no HTTP client would send); the whole reply."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


# --------------------------------------------------------------------------- FastAPI


async def test_fastapi_an_anonymous_body_is_refused_unread_and_a_big_one_is_413(
    store: Store,
) -> None:
    async with serving(store, max_body_bytes=LIMIT) as h:
        body = Counting(64 * MiB)
        answer = await h.client.post(
            "/api/runs", content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 401
        assert body.sent <= 64 * 1024  # at most the first chunk was pulled

        body = Counting(64 * MiB)
        answer = await h.client.post(
            "/api/runs", content=body, headers={**ALICE, "Content-Type": "application/json"}
        )
        assert (answer.status_code, answer.json()["error"]) == (413, "body_too_large")
        assert body.sent <= LIMIT + 64 * 1024
        declared = await h.client.post(
            "/api/runs",
            content=b"{}" + b" " * LIMIT,
            headers={**ALICE, "Content-Type": "application/json"},
        )
        assert (declared.status_code, declared.json()["error"]) == (413, "body_too_large")
        assert await store.list_runs() == []


async def test_fastapi_sign_in_form_is_not_read_past_its_cap(store: Store) -> None:
    async with serving(store) as h:
        body = Counting(64 * MiB)
        answer = await h.client.post(
            "/inbox/sign-in",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": "http://testserver",
            },
        )
        assert answer.status_code == 413
        assert body.sent <= 256 * 1024 + 64 * 1024


async def test_fastapi_inbox_decide_with_too_many_fields_is_413(store: Store) -> None:
    async with serving(store) as h:
        fields = "&".join(f"f{i}=x" for i in range(1001)).encode()
        answer = await h.client.post(
            "/inbox/decide",
            content=fields,
            headers={
                "Cookie": "runkon_token=t-alice",
                "Origin": "http://testserver",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert answer.status_code == 413


@pytest.mark.parametrize("body", SURROGATE_BODIES)
async def test_fastapi_lone_surrogates_are_422(store: Store, body: bytes) -> None:
    async with serving(store) as h:
        answer = await h.client.post(
            "/api/runs", content=body, headers={**ALICE, "Content-Type": "application/json"}
        )
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_request")
        assert await store.list_runs() == []


# --------------------------------------------------------------------------- aiohttp


@pytest.fixture
async def aio(store: Store) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    engine = FlowEngine(store, fallback_action=Recorder(), manage_store=False)
    app = create_aiohttp_app(engine, AUTH, workflows=WORKFLOWS, max_body_bytes=LIMIT)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_aiohttp_an_anonymous_body_is_401_and_a_big_one_is_413(
    aio: TestClient[web.Request, web.Application], store: Store
) -> None:
    big = b"{}" + b" " * (2 * MiB)
    answer = await aio.post(
        "/api/runs", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert answer.status == 401
    answer = await aio.post(
        "/api/runs", data=io.BytesIO(big), headers={**ALICE, "Content-Type": "application/json"}
    )
    assert answer.status == 413
    assert (await answer.json())["error"] == "body_too_large"
    assert await store.list_runs() == []


async def test_aiohttp_undecodable_credentials_are_401(
    aio: TestClient[web.Request, web.Application],
) -> None:
    port = aio.server.port
    assert port is not None
    for header in (b"Authorization: Bearer \xff\xfe", b"Cookie: runkon_token=\xff\xfe"):
        raw = b"GET /api/runs HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n"
        reply = await anyio.to_thread.run_sync(_exchange, port, raw)
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]


async def test_aiohttp_deeply_nested_json_is_422(
    aio: TestClient[web.Request, web.Application],
) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000
    answer = await aio.post(
        "/api/runs", data=deep, headers={**ALICE, "Content-Type": "application/json"}
    )
    assert answer.status == 422
    assert (await answer.json())["error"] == "invalid_request"


@pytest.mark.parametrize("body", SURROGATE_BODIES)
async def test_aiohttp_lone_surrogates_are_422(
    aio: TestClient[web.Request, web.Application], store: Store, body: bytes
) -> None:
    answer = await aio.post(
        "/api/runs", data=body, headers={**ALICE, "Content-Type": "application/json"}
    )
    assert answer.status == 422
    assert (await answer.json())["error"] == "invalid_request"
    assert await store.list_runs() == []
