"""``examples/fastapi_app.py`` works as its docstring says: start a run over HTTP,
approve its gate with a selection, the run completes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from ._support import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"
H = {"Authorization": "Bearer dev-token"}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_runs_to_completion_after_an_approval_over_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNKON_DB", str(tmp_path / "example.db"))
    monkeypatch.delenv("RUNKON_TOKEN", raising=False)
    example = load_example()
    app = example.app
    async with app.router.lifespan_context(app):  # the app's lifespan starts the engine
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            started = await client.post(
                "/api/runs", json={"workflow": "deploy", "inputs": {"service": "api"}}, headers=H
            )
            assert started.status_code == 201, started.text
            run_id = started.json()["run_id"]

            async def gates() -> list[dict[str, object]]:
                answer = await client.get("/api/gates", params={"run_id": run_id}, headers=H)
                return answer.json()  # type: ignore[no-any-return]

            [gate] = await wait_until(gates, bool)
            assert gate["prompt"] == "Release api?"
            approved = await client.post(
                f"/api/runs/{run_id}/gates/release/approve",
                json={"selections": ["canary"]},
                headers=H,
            )
            assert approved.json()["outcome"] == "accepted"

            async def run() -> dict[str, object]:
                return (await client.get(f"/api/runs/{run_id}", headers=H)).json()  # type: ignore[no-any-return]

            done = await wait_until(run, lambda r: r["status"] == "completed")
            assert [s["result_text"] for s in done["steps"]][-1] == "shipped api to canary"
    assert "fastapi_app_example" not in sys.modules


def test_the_example_keeps_its_runs_in_the_clis_ignored_default_database(tmp_path: Path) -> None:
    """Started without $RUNKON_DB, the example keeps its runs in ./runkon.db (the CLI's
    default, which .gitignore lists), never in a stray runs.db in the checkout."""
    env = {key: value for key, value in os.environ.items() if key != "RUNKON_DB"}
    code = f"import runpy; print(runpy.run_path({str(EXAMPLE)!r})['engine'].store.path)"
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "runkon.db"
    assert "runkon.db" in (EXAMPLE.parents[1] / ".gitignore").read_text().splitlines()
