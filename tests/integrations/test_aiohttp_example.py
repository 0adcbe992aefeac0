"""``examples/aiohttp_app.py`` works as its docstring says: in-process through the test
client, and served by ``python -m aiohttp.web`` in a subprocess, stopped with Ctrl-C."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parents[2]
TOKEN = {"Authorization": "Bearer demo-token"}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "aiohttp_app", ROOT / "examples" / "aiohttp_app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def drive(session: Any) -> dict[str, Any]:
    """Start a deploy, approve its gate over HTTP, return the finished run."""
    resp = await session.post("/api/runs", json={"workflow": "deploy"}, headers=TOKEN)
    assert resp.status == 201, await resp.text()
    run_id = (await resp.json())["run_id"]
    with anyio.fail_after(10):
        while True:
            resp = await session.get("/api/gates", params={"run_id": run_id}, headers=TOKEN)
            gates = await resp.json()
            if gates:
                break
            await anyio.sleep(0.02)
    assert gates[0]["prompt"] == "Deploy web?"
    resp = await session.post(
        f"/api/runs/{run_id}/gates/approval/approve", json={"selections": ["go"]}, headers=TOKEN
    )
    assert (await resp.json())["outcome"] == "accepted"
    with anyio.fail_after(10):
        while True:
            resp = await session.get(f"/api/runs/{run_id}", headers=TOKEN)
            run: dict[str, Any] = await resp.json()
            if run["status"] not in ("pending", "running", "waiting"):
                return run
            await anyio.sleep(0.02)


async def test_the_example_app_runs_a_gated_workflow(tmp_path: Path) -> None:
    example = load_example()
    app = example.make_app(["--db", str(tmp_path / "example.db")])
    async with TestClient(TestServer(app)) as client:
        run = await drive(client)
    assert run["status"] == "completed"
    assert [(s["name"], s["status"]) for s in run["steps"]] == [
        ("build", "completed"),
        ("approval", "completed"),
        ("release", "completed"),
    ]
    assert run["steps"][2]["result_text"] == "release web: go"  # the selection reached it
    assert (tmp_path / "example.db").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_example_serves_with_python_m_aiohttp_web(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "aiohttp.web", "-H", "127.0.0.1", "-P", str(port)]
    command.append("examples.aiohttp_app:make_app")
    env = {**os.environ, "RUNKON_DB": str(tmp_path / "served.db"), "PYTHONUNBUFFERED": "1"}
    server = await anyio.open_process(command, cwd=ROOT, env=env)
    async with server:
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                with anyio.fail_after(15):
                    while True:
                        try:
                            await session.get("/api/runs", headers=TOKEN)
                            break
                        except aiohttp.ClientConnectionError:
                            assert server.returncode is None, "the server exited"
                            await anyio.sleep(0.05)
                run = await drive(session)
            assert run["status"] == "completed"
        finally:
            server.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                await server.wait()
        assert server.stderr is not None
        stderr = b"".join([chunk async for chunk in server.stderr]).decode()
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "destroyed" not in stderr, stderr
