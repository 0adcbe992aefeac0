"""Waiting gates at scale: runkon's awaitable gates against the reference's polling loop.

Run: ``python -m benchmarks.bench_gates [--sizes 1000,10000,100000] [--backends memory,sqlite]
[--idle 5] [--samples 1000] [--skip-baseline]``.

For each backend and each N it measures, for runkon (``FlowEngine``, a gate per run):

- the time to open N waiting gates (N runs started, every gate waiting);
- memory per waiting gate: growth of the process's resident memory while they opened,
  divided by N (run, step, gate and event records of the store included);
- while all N wait idle for ``--idle`` seconds: CPU used (percent of one core) and the
  store calls made (for SQLite also the change-feed queries);
- approve-to-resume latency: from ``engine.approve_gate`` to the step after the gate
  starting, over ``--samples`` approvals made one after another;
- timeout skew: how late the step after a gate starts, relative to the gate's persisted
  deadline, over ``--samples`` gates timing out (``on_timeout = continue``).

In the same run, the baseline is an honest asyncio re-creation of runkon-flow's gate
executor (seed-gate-executor.rs): each waiter task loops ``get_gate`` (its
``get_gate_approval``) + ``is_cancel_requested`` and sleeps ``--poll-interval`` seconds
(5 s, runkon-flow's default), checking its timeout against a monotonic start time. Its
approvals are made all at once (sequentially they would take hours) and each is timed
from its own approval.

Targets (issue 5, in-memory): 100,000 gates open within 30 s; at most 16 KB per waiting
gate; idle CPU under 2 %; zero store queries by waiting gates while idle (the engine's
lease keeper renews all leases in batches of ~10 ms each per interval, counted apart);
approve-to-resume p99 under 2 ms; SQLite approve-to-resume p99 under 10 ms; timeout
skew p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import structlog

import runkon
from runkon.engine import ActionOutput, ActionParams, FlowEngine, StepContext
from runkon.persistence import (
    InMemoryStore,
    NewGate,
    NewRun,
    SqliteStore,
    StepStatus,
    Store,
)

WAIT_WF = runkon.parse_workflow(
    'workflow wait { gate human_approval { prompt = "ok?" timeout = "24h" }  call after }'
)
TIMEOUT_SECONDS = 3.0
TIMEOUT_WF = runkon.parse_workflow(
    "workflow expire { gate human_approval { timeout = "
    f'"{int(TIMEOUT_SECONDS * 1000)}ms"  on_timeout = continue }}  call after }}'
)
TARGETS = {
    "open_100k_s": 30.0,
    "kb_per_gate": 16.0,
    "idle_cpu_pct": 2.0,
    "p99_ms": {"memory": 2.0, "sqlite": 10.0},
    "skew_p99_ms": 50.0,
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


class Counter:
    """Counts the store's awaited calls (and SQLite's change-feed queries)."""

    def __init__(self, store: Store) -> None:
        self.calls = 0
        self.leases = 0  # the lease keeper's batched renewals, counted apart
        self.feed = 0
        for name in (
            "get_gate",
            "get_run",
            "get_steps",
            "is_cancel_requested",
            "list_waiting_gates",
            "read_events",
            "get_step",
        ):
            self._wrap(store, name)
        original_refresh = store.refresh_leases

        async def refresh(*args: Any, **kwargs: Any) -> Any:
            self.leases += 1
            return await original_refresh(*args, **kwargs)

        store.refresh_leases = refresh  # type: ignore[method-assign]
        conns = getattr(store, "_conns", None)
        if conns is not None:  # SQLite: count the change feed's polls (run inline or not)
            original = conns.run

            async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
                if getattr(fn, "__name__", "") == "feed_poll":
                    self.feed += 1
                return await original(fn, *args, **kwargs)

            conns.run = counted

    def _wrap(self, store: Store, name: str) -> None:
        original = getattr(store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await original(*args, **kwargs)

        setattr(store, name, counted)


@dataclass
class Figures:
    open_s: float = 0.0
    kb_per_gate: float = 0.0
    idle_cpu_pct: float = 0.0
    idle_calls: int = 0
    idle_leases: int = 0
    idle_feed: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    skew_p50_ms: float = 0.0
    skew_p99_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


StoreFactory = Callable[[], Store]


# --------------------------------------------------------------------------- runkon


async def runkon_figures(make_store: StoreFactory, n: int, idle: float, samples: int) -> Figures:
    figures = Figures()
    resumed: dict[str, float] = {}

    async def after(ctx: StepContext, params: ActionParams) -> ActionOutput:
        resumed[ctx.run_id] = time.perf_counter()
        return ActionOutput()

    store = make_store()
    async with FlowEngine(store, actions={"after": after}) as engine:
        gc.collect()
        before = rss_bytes()
        waiting = 0
        async with engine.events.subscribe(types={"gate_waiting"}, max_buffer=n + 10) as opened:
            start = time.perf_counter()
            handles = [await engine.start(WAIT_WF) for _ in range(n)]
            async for _ in opened:  # every gate_waiting event: one more gate waits
                waiting += 1
                if waiting == n:
                    break
        figures.open_s = time.perf_counter() - start
        gc.collect()
        figures.kb_per_gate = (rss_bytes() - before) / n / 1024

        counter = Counter(store)
        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        await anyio.sleep(idle)
        cpu = cpu_seconds() - cpu_before
        figures.idle_cpu_pct = 100 * cpu / (time.perf_counter() - wall_before)
        figures.idle_calls, figures.idle_feed = counter.calls, counter.feed
        figures.idle_leases = counter.leases

        latencies = []
        for handle in random.sample(handles, min(samples, n)):
            began = time.perf_counter()
            receipt = await engine.approve_gate(handle.run_id, "human_approval", by="bench")
            assert receipt.accepted, receipt
            while handle.run_id not in resumed:
                await anyio.lowlevel.checkpoint()
            latencies.append((resumed[handle.run_id] - began) * 1000)
        figures.p50_ms = statistics.median(latencies)
        figures.p99_ms = percentile(latencies, 99)
        figures.skew_p50_ms, figures.skew_p99_ms = await runkon_skew(engine, resumed, samples)
        for handle in handles:  # the rest are done with: cancel them
            if handle.run_id not in resumed:
                await engine.cancel_run(handle.run_id, reason="benchmark done")
    return figures


async def runkon_skew(
    engine: FlowEngine, resumed: dict[str, float], samples: int
) -> tuple[float, float]:
    """Gates timing out while the N others still wait: how late does each run resume?"""
    deadlines: dict[str, datetime] = {}
    async with engine.events.subscribe(types={"gate_waiting"}, max_buffer=samples + 10) as s:
        handles = []
        for _ in range(samples):  # spread the deadlines over ~1 s
            handles.append(await engine.start(TIMEOUT_WF))
            await anyio.sleep(1.0 / samples)
        async for event in s:
            if event.run_id in {h.run_id for h in handles}:
                deadlines[event.run_id] = event.deadline_at  # type: ignore[union-attr]
            if len(deadlines) == samples:
                break
    for handle in handles:
        await handle.result()
    # `after` records perf_counter(); convert the deadline to the same clock
    offset = time.time() - time.perf_counter()
    skews = [
        (resumed[run_id] + offset - deadline.timestamp()) * 1000
        for run_id, deadline in deadlines.items()
    ]
    return statistics.median(skews), percentile(skews, 99)


# --------------------------------------------------------------------------- baseline


async def open_gates(store: Store, n: int, timeout: float) -> list[tuple[str, str, int]]:
    """N runs, each with one gate waiting (what the engine would have written)."""
    opened = []
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    for _ in range(n):
        run = await store.create_run(NewRun("poll", definition_snapshot=None))
        generation = await store.acquire_lease(run.id, "poller", 3600)
        assert generation is not None
        gate = await store.open_gate(
            NewGate(run.id, "human_approval", "human_approval", 1, deadline_at=deadline),
            generation=generation,
        )
        opened.append((run.id, gate.step_id, generation))
    return opened


async def poll_gate(
    store: Store, run_id: str, step_id: str, timeout: float, poll: float, seen: dict[str, float]
) -> None:
    """runkon-flow's gate loop: get_gate_approval, is_run_cancelled, sleep poll_interval.

    Gates open at different moments in real life, so each poller starts at a random
    point of its interval (otherwise all N would poll in lock-step).
    """
    started = time.monotonic()
    await anyio.sleep(random.uniform(0, min(poll, timeout)))
    while True:
        if time.monotonic() - started > timeout:
            seen[step_id] = time.time()
            return
        gate = await store.get_gate(step_id)
        if gate.status != StepStatus.WAITING:
            seen[step_id] = time.time()
            return
        if await store.is_cancel_requested(run_id):
            return
        await anyio.sleep(poll)


async def baseline_figures(
    make_store: StoreFactory, n: int, idle: float, samples: int, poll: float
) -> Figures:
    figures = Figures()
    seen: dict[str, float] = {}
    store = make_store()
    async with store, anyio.create_task_group() as tg:
        gc.collect()
        before = rss_bytes()
        start = time.perf_counter()
        gates = await open_gates(store, n, timeout=3600)
        for run_id, step_id, _ in gates:
            tg.start_soon(poll_gate, store, run_id, step_id, 3600, poll, seen)
        await anyio.lowlevel.checkpoint()
        figures.open_s = time.perf_counter() - start
        gc.collect()
        figures.kb_per_gate = (rss_bytes() - before) / n / 1024

        counter = Counter(store)
        cpu_before, wall_before = cpu_seconds(), time.perf_counter()
        await anyio.sleep(idle)
        figures.idle_cpu_pct = (
            100 * (cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
        )
        figures.idle_calls, figures.idle_feed = counter.calls, counter.feed
        figures.idle_leases = counter.leases

        sample = random.sample(gates, min(samples, n))
        approved_at: dict[str, float] = {}
        for _, step_id, _ in sample:
            approved_at[step_id] = time.time()
            await store.approve_gate(step_id, by="bench")
        while any(step_id not in seen for step_id in approved_at):  # noqa: ASYNC110
            await anyio.sleep(0.05)  # the harness only waits for the pollers to notice
        latencies = [(seen[s] - approved_at[s]) * 1000 for s in approved_at]
        figures.p50_ms = statistics.median(latencies)
        figures.p99_ms = percentile(latencies, 99)

        deadlines: dict[str, float] = {}  # gates timing out while the N others poll
        for _ in range(samples):
            [(run_id, step_id, _)] = await open_gates(store, 1, TIMEOUT_SECONDS)
            deadlines[step_id] = time.time() + TIMEOUT_SECONDS
            tg.start_soon(poll_gate, store, run_id, step_id, TIMEOUT_SECONDS, poll, seen)
            await anyio.sleep(1.0 / samples)
        while any(step_id not in seen for step_id in deadlines):  # noqa: ASYNC110
            await anyio.sleep(0.05)
        skews = [(seen[s] - deadlines[s]) * 1000 for s in deadlines]
        figures.skew_p50_ms, figures.skew_p99_ms = statistics.median(skews), percentile(skews, 99)
        tg.cancel_scope.cancel()
    return figures


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(backend: str, n: int, ours: Figures, base: Figures | None) -> None:
    print(f"\n== {backend}, N = {n:,} waiting gates")
    rows: list[tuple[str, str, str, str]] = [
        ("open all gates", f"{ours.open_s:.1f} s", "", ""),
        ("memory per waiting gate", f"{ours.kb_per_gate:.1f} KB", "", ""),
        ("idle CPU", f"{ours.idle_cpu_pct:.2f} %", "", ""),
        ("store queries by gates, idle", f"{ours.idle_calls}", "", ""),
        ("lease renewal calls, idle", f"{ours.idle_leases}", "", ""),
        ("change-feed queries, idle", f"{ours.idle_feed}", "", ""),
        ("approve-to-resume p50", f"{ours.p50_ms:.2f} ms", "", ""),
        ("approve-to-resume p99", f"{ours.p99_ms:.2f} ms", "", ""),
        ("timeout skew p50", f"{ours.skew_p50_ms:.1f} ms", "", ""),
        ("timeout skew p99", f"{ours.skew_p99_ms:.1f} ms", "", ""),
    ]
    if base is not None:
        values = [
            f"{base.open_s:.1f} s",
            f"{base.kb_per_gate:.1f} KB",
            f"{base.idle_cpu_pct:.2f} %",
            f"{base.idle_calls}",
            f"{base.idle_leases}",
            f"{base.idle_feed}",
            f"{base.p50_ms:.0f} ms",
            f"{base.p99_ms:.0f} ms",
            f"{base.skew_p50_ms:.0f} ms",
            f"{base.skew_p99_ms:.0f} ms",
        ]
        rows = [
            (label, mine, theirs, "")
            for (label, mine, _, _), theirs in zip(rows, values, strict=True)
        ]
    checks = {
        "memory per waiting gate": ours.kb_per_gate <= TARGETS["kb_per_gate"],
        "idle CPU": ours.idle_cpu_pct < TARGETS["idle_cpu_pct"],
        "approve-to-resume p99": ours.p99_ms < TARGETS["p99_ms"][backend],  # type: ignore[index]
        "timeout skew p99": ours.skew_p99_ms < TARGETS["skew_p99_ms"],
    }
    if n >= 100_000:
        checks["open all gates"] = ours.open_s <= TARGETS["open_100k_s"]
    if backend == "memory":
        checks["store queries by gates, idle"] = ours.idle_calls == 0
    print(f"{'':34} {'runkon':>14} {'polling baseline':>18}  target")
    for label, mine, theirs, _ in rows:
        mark = verdict(checks[label]) if label in checks else ""
        if backend == "sqlite" and label in (
            "memory per waiting gate",
            "idle CPU",
            "open all gates",
        ):
            mark = f"({mark} vs in-memory target)" if mark else ""
        print(f"{label:34} {mine:>14} {theirs:>18}  {mark}")


def measure_one(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints its figures as JSON."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    tmp = Path(tempfile.mkdtemp(prefix="runkon-gates-"))
    counter = iter(range(1_000_000))
    factories: dict[str, StoreFactory] = {
        "memory": InMemoryStore,
        "sqlite": lambda: SqliteStore(tmp / f"gates-{next(counter)}.db"),
    }
    backend, system, n = args.one[0], args.one[1], int(args.one[2])
    if system == "runkon":
        figures = anyio.run(runkon_figures, factories[backend], n, args.idle, args.samples)
    else:
        figures = anyio.run(
            baseline_figures, factories[backend], n, args.idle, args.samples, args.poll_interval
        )
    print(json.dumps(dataclasses.asdict(figures)))


def run_one(args: argparse.Namespace, backend: str, system: str, n: int) -> Figures:
    """Measure in a fresh interpreter, so that memory figures are not skewed by earlier
    measurements (freed memory is reused, not returned)."""
    command = [
        sys.executable, "-m", "benchmarks.bench_gates", "--one", backend, system, str(n),
        "--idle", str(args.idle), "--samples", str(args.samples),
        "--poll-interval", str(args.poll_interval),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{backend}/{system}/{n} failed:\n{done.stderr}")
    return Figures(**json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--one", nargs=3, metavar=("BACKEND", "SYSTEM", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        measure_one(args)
        return
    print(
        f"bench_gates: idle window {args.idle:g} s, {args.samples} samples, baseline polls "
        f"every {args.poll_interval:g} s; each figure measured in a fresh process"
    )
    for backend in args.backends.split(","):
        for n in (int(size) for size in args.sizes.split(",")):
            ours = run_one(args, backend, "runkon", n)
            base = None if args.skip_baseline else run_one(args, backend, "baseline", n)
            report(backend, n, ours, base)


if __name__ == "__main__":
    main()
