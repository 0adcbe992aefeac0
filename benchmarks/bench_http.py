"""HTTP load check: runs waiting at a gate behind the FastAPI app under uvicorn, approved
over HTTP by concurrent clients on loopback.

Run: ``python -m benchmarks.bench_http [--runs 1000] [--clients 50] [--store sqlite|memory]``.

The server is a separate process (``uvicorn`` serving ``create_app`` with a SQLite file by
default, the embedded default store), so client and server do not share an event loop.
The client starts ``--runs`` runs of ``workflow bench { gate approve ... call after }``
through ``POST /api/runs``, waits until every gate waits (``GET /api/gates``), then
``--clients`` concurrent clients (aiohttp, one connection each) approve them all through
``POST /api/runs/{id}/gates/ship/approve``. It prints:

- approvals/s: approvals divided by the time from the first request sent to the last
  answer received;
- approve HTTP round trip p50/p99: request sent to answer received;
- approve-to-resume p50/p99: request sent to the ``after`` step starting in the server
  (its executor records ``time.time()``, read back from the run's steps afterwards; both
  processes share the machine's clock).

Issue 6 names no target for these figures; they are printed for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "bench-token"
WORKFLOW = """
workflow bench {
  gate ship { type = human_approval  prompt = "ship it?"  timeout = "1h" }
  call after
}
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


# --------------------------------------------------------------------------- server


def make_app() -> object:
    """The server's app (uvicorn factory): the FastAPI app of ``runkon.integrations``
    over the store named by ``RUNKON_BENCH_DB`` (``:memory:`` for the in-memory store)."""
    import logging

    import structlog

    import runkon
    from runkon.integrations import TokenAuthorizer
    from runkon.integrations.fastapi import create_app

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def after(ctx: runkon.StepContext, params: runkon.ActionParams) -> runkon.ActionOutput:
        return runkon.ActionOutput(result_text=repr(time.time()))

    db = os.environ["RUNKON_BENCH_DB"]
    store: runkon.Store = runkon.InMemoryStore() if db == ":memory:" else runkon.SqliteStore(db)
    engine = runkon.FlowEngine(store, actions={"after": after})
    catalog = {"bench": runkon.parse_workflow(WORKFLOW, source="bench.wf")}
    return create_app(engine, TokenAuthorizer({TOKEN: "bench"}), workflows=catalog, inbox=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, db: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNKON_BENCH_DB": db}
    command = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.bench_http:make_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--no-access-log"]
    return subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent)


# --------------------------------------------------------------------------- client


async def measure(base: str, runs: int, clients: int) -> dict[str, float]:
    import aiohttp

    headers = {"Authorization": f"Bearer {TOKEN}"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as http:
        for _ in range(200):  # wait for the server
            try:
                async with http.get("/api/gates?limit=1") as answer:
                    if answer.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("bench_http: the server did not come up within 20 s")

        run_ids: list[str] = []

        async def start(count: int) -> None:
            for _ in range(count):
                async with http.post("/api/runs", json={"workflow": "bench"}) as answer:
                    answer.raise_for_status()
                    run_ids.append((await answer.json())["run_id"])

        began = time.perf_counter()
        await asyncio.gather(
            *(start(runs // clients + (i < runs % clients)) for i in range(clients))
        )
        while True:
            async with http.get("/api/gates", params={"limit": "1000"}) as answer:
                waiting = len(await answer.json())
            if waiting >= min(runs, 1000):
                break
            await asyncio.sleep(0.05)
        opened_s = time.perf_counter() - began
        print(f"  {runs:,} runs started and waiting at their gate in {opened_s:.1f} s")

        queue: asyncio.Queue[str] = asyncio.Queue()
        for run_id in run_ids:
            queue.put_nowait(run_id)
        sent_at: dict[str, float] = {}
        round_trips: list[float] = []
        refused = 0

        async def approver() -> None:
            nonlocal refused
            while not queue.empty():
                run_id = queue.get_nowait()
                url = f"/api/runs/{run_id}/gates/ship/approve"
                sent_at[run_id] = time.time()
                t0 = time.perf_counter()
                async with http.post(url, json={}) as answer:
                    await answer.read()
                    round_trips.append(time.perf_counter() - t0)
                    if answer.status != 200:
                        refused += 1

        first = time.perf_counter()
        await asyncio.gather(*(approver() for _ in range(clients)))
        approve_s = time.perf_counter() - first

        resumed: dict[str, float] = {}
        while len(resumed) < len(run_ids):
            for run_id in run_ids:
                if run_id in resumed:
                    continue
                async with http.get(f"/api/runs/{run_id}") as answer:
                    run = await answer.json()
                if run["status"] in ("completed", "failed", "cancelled"):
                    after = [s for s in run["steps"] if s["name"] == "after"]
                    if run["status"] != "completed" or not after:
                        raise SystemExit(f"bench_http: run {run_id} ended {run['status']}")
                    resumed[run_id] = float(after[0]["result_text"])
            await asyncio.sleep(0.05)

    resume_ms = [(resumed[r] - sent_at[r]) * 1000 for r in run_ids]
    rtt_ms = [t * 1000 for t in round_trips]
    return {
        "approvals_per_s": len(run_ids) / approve_s,
        "refused": float(refused),
        "rtt_p50": statistics.median(rtt_ms),
        "rtt_p99": percentile(rtt_ms, 99),
        "resume_p50": statistics.median(resume_ms),
        "resume_p99": percentile(resume_ms, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument(
        "--url", help="measure a server already running `make_app` (e.g. under a profiler)"
    )
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error("--runs must be between 1 and 1000 (the inbox lists at most 1000)")
    if args.url:
        figures = asyncio.run(measure(args.url, args.runs, args.clients))
        report(figures)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = ":memory:" if args.store == "memory" else str(Path(tmp) / "bench.db")
        port = free_port()
        server = start_server(port, db)
        try:
            print(
                f"bench_http: {args.runs:,} runs waiting at a gate, FastAPI under uvicorn "
                f"({args.store} store), approved by {args.clients} concurrent clients"
            )
            figures = asyncio.run(measure(f"http://127.0.0.1:{port}", args.runs, args.clients))
        finally:
            server.terminate()
            server.wait(timeout=30)
    report(figures)


def report(figures: dict[str, float]) -> None:
    print(f"  approvals/s                      {figures['approvals_per_s']:8.0f}")
    print(f"  approvals refused                {figures['refused']:8.0f}")
    print(
        f"  approve round trip p50 / p99     {figures['rtt_p50']:6.1f} / "
        f"{figures['rtt_p99']:.1f} ms"
    )
    print(
        f"  approve-to-resume p50 / p99      {figures['resume_p50']:6.1f} / "
        f"{figures['resume_p99']:.1f} ms"
    )


if __name__ == "__main__":
    main()
