"""Engine throughput: steps/s for a 100-step workflow of instant actions, run one after
another and as 1,000 concurrent runs, on the in-memory and the SQLite store.

Run: ``python -m benchmarks.bench_engine [--runs N] [--sequential K] [--steps S]
[--repeat R]``. The engine is open before the clock starts (its start-up is not a step).
Prints the median over R repeats and compares with the targets of issue 4 (in-memory
>= 10,000 steps/s, SQLite >= 1,500 steps/s).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import anyio
import structlog

import runkon
from runkon.engine import ActionOutput, ActionParams, FlowEngine, StepContext
from runkon.persistence import InMemoryStore, SqliteStore, Store

TARGETS = {"memory": 10_000.0, "sqlite": 1_500.0}
_OUTPUT = ActionOutput()


async def instant(ctx: StepContext, params: ActionParams) -> ActionOutput:
    return _OUTPUT


def workflow(steps: int) -> runkon.WorkflowDef:
    body = "\n".join(f"  call step-{i}" for i in range(steps))
    return runkon.parse_workflow(f"workflow bench {{\n{body}\n}}\n", source="bench.wf")


async def measure(
    make_store: object, wf: runkon.WorkflowDef, runs: int, steps: int, *, concurrent: bool = True
) -> float:
    """Steps/s over ``runs`` runs of ``wf``: started all at once, or one after another."""
    store: Store = make_store()  # type: ignore[operator]
    async with FlowEngine(store, fallback_action=instant) as engine:
        start = time.perf_counter()
        if concurrent:
            handles = [await engine.start(wf) for _ in range(runs)]
            results = [await handle.result() for handle in handles]
        else:
            results = [await engine.run(wf) for _ in range(runs)]
        elapsed = time.perf_counter() - start
    assert all(result.succeeded for result in results)
    return runs * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1000, help="concurrent runs")
    parser.add_argument("--sequential", type=int, default=20, help="runs one after another")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    wf = workflow(args.steps)
    tmp = Path(tempfile.mkdtemp(prefix="runkon-bench-"))
    counter = iter(range(1_000_000))
    backends = {
        "memory": InMemoryStore,
        "sqlite": lambda: SqliteStore(tmp / f"bench-{next(counter)}.db"),
    }
    print(f"engine: {args.steps}-step workflow of instant actions, median of {args.repeat}")
    print(f"{'backend':8} {'scenario':22} {'steps/s':>10} {'target':>10}  verdict")
    for name, make in backends.items():
        scenarios = (
            (f"{args.sequential} runs in a row", args.sequential, False),
            (f"{args.runs} concurrent runs", args.runs, True),
        )
        for label, runs, concurrent in scenarios:
            rates = [
                anyio.run(partial(measure, concurrent=concurrent), make, wf, runs, args.steps)
                for _ in range(args.repeat)
            ]
            rate = statistics.median(rates)
            target = TARGETS[name]
            verdict = "PASS" if rate >= target else "FAIL"
            ratio = rate / target
            print(f"{name:8} {label:22} {rate:10,.0f} {target:10,.0f}  {verdict} ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
