"""The SSE event stream, served by uvicorn: read part of a run's events, disconnect,
reconnect with ``Last-Event-ID`` (or ``?after=``) and get exactly the rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import uvicorn

from runkon import FlowEngine, Store
from runkon.integrations import RunkonApi
from runkon.integrations._service import sse_stream
from runkon.integrations.fastapi import EventStreamResponse, create_app

from ._support import ALICE, AUTH, WORKFLOWS, Recorder, serving, sse_frames, wait_until


@asynccontextmanager
async def uvicorn_serving(store: Store) -> AsyncIterator[tuple[str, FlowEngine]]:
    """The app under a real uvicorn server on a free port, in this event loop."""
    engine = FlowEngine(store, fallback_action=Recorder(), manage_store=False)
    app = create_app(engine, AUTH, workflows=WORKFLOWS)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, log_level="warning",
        timeout_graceful_shutdown=2,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: asyncio.sleep(0, server.started), bool)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", engine
    finally:
        server.should_exit = True
        await task


async def read_frames(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], *, until: str
) -> list[dict[str, str]]:
    """Frames of one connection, up to and including the first of type ``until``; then
    the client hangs up."""
    frames: list[dict[str, str]] = []
    buffer = ""
    with anyio.fail_after(10):
        async with client.stream("GET", url, headers=headers) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            async for chunk in answer.aiter_text():
                buffer += chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    frames.extend(sse_frames(block + "\n\n"))
                    if frames and frames[-1].get("event") == until:
                        return frames
    return frames


async def test_reconnecting_with_last_event_id_gets_exactly_the_rest(store: Store) -> None:
    async with uvicorn_serving(store) as (base, engine), httpx.AsyncClient(base_url=base) as client:
        started = await client.post(
            "/api/runs", json={"workflow": "ship", "inputs": {"ticket": "T-9"}}, headers=ALICE
        )
        run_id = started.json()["run_id"]
        url = f"/api/runs/{run_id}/events"

        first = await read_frames(client, url, ALICE, until="gate_waiting")  # then hang up
        assert first[0]["event"] == "run_started"
        last_seen = first[-1]["id"]

        approved = await client.post(
            f"/api/runs/{run_id}/gates/human_approval/approve",
            json={"selections": ["ship"]},
            headers=ALICE,
        )
        assert approved.json()["outcome"] == "accepted"
        rest = await read_frames(client, url, {**ALICE, "Last-Event-ID": last_seen}, until="end")
        assert rest[-1]["event"] == "end"
        assert rest[-2]["event"] == "run_completed"

        stored = [event.seq for event in await engine.read_events(run_id)]
        seen = [int(frame["id"]) for frame in first + rest[:-1]]
        assert seen == stored  # no gap, no repeat
        assert seen == list(range(1, len(stored) + 1))

        by_query = await read_frames(client, f"{url}?after={last_seen}", ALICE, until="end")
        assert by_query == rest


async def test_event_stream_of_a_finished_run_and_its_errors(store: Store) -> None:
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-8"})
        await h.client.post(f"/api/runs/{run_id}/gates/human_approval/reject", headers=ALICE)
        assert await h.finished(run_id) == "failed"
        answer = await h.client.get(f"/api/runs/{run_id}/events", headers=ALICE)
        frames = sse_frames(answer.text)
        assert [f["event"] for f in frames][-2:] == ["run_failed", "end"]
        assert answer.headers["cache-control"] == "no-cache"

        tail = await h.client.get(
            f"/api/runs/{run_id}/events", headers={**ALICE, "Last-Event-ID": frames[-3]["id"]}
        )
        assert [f["event"] for f in sse_frames(tail.text)] == ["run_failed", "end"]

        unauthenticated = await h.client.get(f"/api/runs/{run_id}/events")
        assert unauthenticated.status_code == 401
        unknown = await h.client.get("/api/runs/run-nope/events", headers=ALICE)
        assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_run")
        bad_id = await h.client.get(
            f"/api/runs/{run_id}/events", headers={**ALICE, "Last-Event-ID": "x"}
        )
        assert (bad_id.status_code, bad_id.json()["error"]) == (400, "invalid_last_event_id")
        for beyond in (str(2**63), "-1"):  # refused, not a dead stream
            huge = await h.client.get(
                f"/api/runs/{run_id}/events", headers={**ALICE, "Last-Event-ID": beyond}
            )
            assert (huge.status_code, huge.json()["error"]) == (400, "invalid_last_event_id")
        huge_after = await h.client.get(f"/api/runs/{run_id}/events?after={2**63}", headers=ALICE)
        assert (huge_after.status_code, huge_after.json()["error"]) == (422, "invalid_request")


async def test_open_streams_end_cleanly_when_the_server_shuts_them(store: Store) -> None:
    async with uvicorn_serving(store) as (base, _), httpx.AsyncClient(base_url=base) as client:
        started = await client.post(
            "/api/runs", json={"workflow": "ship", "inputs": {"ticket": "T-10"}}, headers=ALICE
        )
        url = f"/api/runs/{started.json()['run_id']}/events"
        with anyio.fail_after(10):
            async with client.stream("GET", url, headers=ALICE) as answer:
                text = ""
                async for chunk in answer.aiter_text():
                    text += chunk
                    if "event: gate_waiting" in text:
                        assert EventStreamResponse.close_all() == 1
                # the response ended normally: no error, no `end` frame (the run goes on)
                assert "event: end" not in text
        assert EventStreamResponse.close_all() == 0


async def test_an_event_stream_closed_between_frames_ends_without_an_error(store: Store) -> None:
    """A consumer that stops reading (its send failed) closes the frames generator between
    two frames: it must end quietly, not raise an exception group of GeneratorExit over
    the consumer's own error."""
    async with serving(store) as h:
        run_id = await h.start("ship", {"ticket": "T-11"})
        events = await RunkonApi(h.engine, AUTH).open_events(ALICE, run_id, None)
        with anyio.fail_after(10):
            frames = sse_stream(events, keepalive=60)
            seen = [await anext(frames)]
            while "event: gate_waiting" not in seen[-1]:
                seen.append(await anext(frames))
            await frames.aclose()
        assert seen[0].startswith("id: 1\nevent: run_started\n")
