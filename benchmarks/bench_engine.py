"""Engine throughput: steps/s for a 100-step workflow of instant actions, and for 1,000
runs of it... at once, on the in-memory and the SQLite store.

Run: ``python -m benchmarks.bench_engine [--runs N] [--steps S] [--repeat R]``. Prints the
median over R repeats and compares with the targets of issue 4 (in-memory >= 10,000
steps/s, SQLite >= 1,500 steps/s).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
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


async def measure(make_store: object, wf: runkon.WorkflowDef, runs: int, steps: int) -> float:
    store: Store = make_store()  # type: ignore[operator]
    async with FlowEngine(store, fallback_action=instant) as engine:
        start = time.perf_counter()
        handles = [await engine.start(wf) for _ in range(runs)]
        for handle in handles:
            result = await handle.result()
            assert result.succeeded, result.error
        elapsed = time.perf_counter() - start
    return runs * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1000, help="concurrent runs")
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
        for label, runs in (("1 run", 1), (f"{args.runs} concurrent runs", args.runs)):
            rates = [anyio.run(measure, make, wf, runs, args.steps) for _ in range(args.repeat)]
            rate = statistics.median(rates)
            target = TARGETS[name]
            verdict = "PASS" if rate >= target else "FAIL"
            ratio = rate / target
            print(f"{name:8} {label:22} {rate:10,.0f} {target:10,.0f}  {verdict} ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
