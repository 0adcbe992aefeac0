"""Store benchmark: durable step transitions and gate resolutions per second.

Run it with ``python -m benchmarks.bench_store``. For each backend (in-memory, SQLite on a
temporary file) it measures, sequentially, one awaited call after another:

- **step transitions**: ``insert_step`` (running) then ``update_step`` (completed);
- **gate resolutions**: ``open_gate`` then ``approve_gate``.

Each figure is the median of ``--repeats`` rounds of about ``--seconds`` each, and is
compared with the targets of issue 3. The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio

from runkon.persistence import (
    InMemoryStore,
    NewGate,
    NewRun,
    NewStep,
    SqliteStore,
    StepRole,
    StepStatus,
    StepUpdate,
    Store,
)

TARGETS = {("memory", "steps"): 50_000.0, ("sqlite", "steps"): 2_000.0}
"""Minimum step transitions per second, per backend (issue 3)."""

Round = Callable[[Store, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def open_store(backend: str, directory: Path) -> AsyncIterator[Store]:
    """Open a fresh store of ``backend`` (SQLite: a new file in ``directory``)."""
    store: Store
    if backend == "memory":
        store = InMemoryStore()
    else:
        store = SqliteStore(directory / f"bench-{time.monotonic_ns()}.db")
    async with store:
        yield store


async def _leased_run(store: Store) -> tuple[str, int]:
    run = await store.create_run(NewRun("bench"))
    generation = await store.acquire_lease(run.id, "bench", 3600)
    assert generation is not None
    return run.id, generation


async def step_transitions(store: Store, count: int) -> None:
    """Insert ``count`` running steps, completing each before the next."""
    run_id, generation = await _leased_run(store)
    for position in range(count):
        step = await store.insert_step(
            NewStep(run_id, "step", StepRole.AGENT, position), generation=generation
        )
        await store.update_step(
            step.id, StepUpdate(StepStatus.COMPLETED, result_text="ok"), generation=generation
        )


async def gate_resolutions(store: Store, count: int) -> None:
    """Open ``count`` gates, approving each before opening the next."""
    run_id, generation = await _leased_run(store)
    for position in range(count):
        gate = await store.open_gate(
            NewGate(run_id, "review", "human_approval", position), generation=generation
        )
        receipt = await store.approve_gate(gate.step_id, by="bench")
        assert receipt.accepted


async def measure(backend: str, workload: Round, seconds: float, repeats: int) -> float:
    """Median operations per second of ``workload`` over ``repeats`` rounds."""
    with tempfile.TemporaryDirectory(prefix="runkon-bench-") as tmp:
        directory = Path(tmp)
        async with open_store(backend, directory) as store:
            started = time.perf_counter()
            await workload(store, 200)  # warm-up, and a first estimate of the rate
            count = max(200, int(200 / (time.perf_counter() - started) * seconds))
        rates = []
        for _ in range(repeats):
            async with open_store(backend, directory) as store:
                started = time.perf_counter()
                await workload(store, count)
                rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


async def main(seconds: float, repeats: int, backends: list[str]) -> int:
    """Measure every backend, print the table and the target checks; return the exit code."""
    results: dict[tuple[str, str], float] = {}
    for backend in backends:
        results[backend, "steps"] = await measure(backend, step_transitions, seconds, repeats)
        results[backend, "gates"] = await measure(backend, gate_resolutions, seconds, repeats)

    print(f"{'backend':<8} {'step transitions/s':>20} {'gate resolutions/s':>20}")
    for backend in backends:
        steps, gates = results[backend, "steps"], results[backend, "gates"]
        print(f"{backend:<8} {steps:>20,.0f} {gates:>20,.0f}")
    print()
    failed = False
    for (backend, workload), target in TARGETS.items():
        if backend not in backends:
            continue
        measured = results[backend, workload]
        verdict = "PASS" if measured >= target else "FAIL"
        failed |= verdict == "FAIL"
        print(f"{verdict}  {backend}: {measured:,.0f} step transitions/s (target >= {target:,.0f})")
    return 1 if failed else 0


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument(
        "--backend",
        action="append",
        choices=["memory", "sqlite"],
        help="backend to measure (repeatable; default: both)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args(sys.argv[1:])
    sys.exit(anyio.run(main, args.seconds, args.repeats, args.backend or ["memory", "sqlite"]))
