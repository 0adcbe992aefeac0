"""The long SIGKILL chaos campaign (issue 14): random trials, each killing a worker process
1-3 times at random points and resuming the run in a new process, then checking that no
completed step ran twice, every run ended, events have no gaps and the SQLite file is
intact (see ``benchmarks/_chaos_campaign.py`` for the workflow and the checks).

Run: ``python -m benchmarks.chaos [--trials 1000] [--seed S] [--first I] [--minutes M]
[--directed] [--keep] [--quiet]``.

- ``--seed`` makes the campaign reproducible (default: a random one, printed);
  trial ``I`` of seed ``S`` is rerun alone with ``--seed S --first I --trials 1``.
- ``--minutes`` stops starting new trials after that long, and reports what ran.
- ``--directed`` runs the directed trials first (killed twice in a nested child, killed
  while a gate waits, killed during a parallel retry).
- A failing trial's directory (database, step log, workers' stderr) is kept and printed;
  ``--keep`` keeps every trial's.

Prints a line per failing trial (or per trial without ``--quiet``), then the figures:
trials, kills, duplicates, stuck, event gaps, integrity failures, duration. Exits 1 if
any trial failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import anyio

from benchmarks._chaos_campaign import (
    DIRECTED,
    Figures,
    TrialPlan,
    Workers,
    prepare,
    random_plan,
    remove,
    run_trial,
)


async def campaign(args: argparse.Namespace, root: Path) -> Figures:
    flows, actions = prepare(root)
    plans: list[tuple[TrialPlan, str]] = []
    if args.directed:
        plans += [(plan, f"pytest tests/chaos -k {name}") for name, plan in DIRECTED.items()]
    for index in range(args.first, args.first + args.trials):
        hint = f"python -m benchmarks.chaos --seed {args.seed} --first {index} --trials 1"
        plans.append((random_plan(args.seed, index), hint))
    figures = Figures()
    workers = Workers()
    try:
        await _trials(args, root, plans, flows, actions, workers, figures)
    finally:
        workers.close()
    return figures


async def _trials(
    args: argparse.Namespace,
    root: Path,
    plans: list[tuple[TrialPlan, str]],
    flows: Path,
    actions: Path,
    workers: Workers,
    figures: Figures,
) -> None:
    stop_at = time.monotonic() + args.minutes * 60 if args.minutes else None
    began = time.monotonic()
    for number, (plan, hint) in enumerate(plans):
        if stop_at is not None and time.monotonic() >= stop_at:
            print(f"time budget of {args.minutes} min reached after {number} trials", flush=True)
            break
        directory = root / f"trial-{number:05d}"
        result = await run_trial(plan, directory, flows, actions, workers)
        figures.add(result)
        if not result.ok:
            print(f"FAILED {result.report()}", flush=True)
            print(f"  reproduce: {hint}", flush=True)
        elif not args.quiet:
            print(
                f"ok {plan.describe()} ({result.kills} kills, {result.duration:.1f}s)",
                flush=True,
            )
        if result.ok and not args.keep:
            remove(directory)
        if (number + 1) % 25 == 0:
            print(f"[{number + 1} trials, {time.monotonic() - began:.0f}s] {figures.summary()}")
    figures.duration = time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=1000, help="random trials (1000)")
    parser.add_argument("--seed", type=int, default=None, help="campaign seed (random)")
    parser.add_argument("--first", type=int, default=0, help="index of the first trial (0)")
    parser.add_argument("--minutes", type=float, default=None, help="time budget")
    parser.add_argument("--directed", action="store_true", help="run the directed trials too")
    parser.add_argument("--keep", action="store_true", help="keep every trial's directory")
    parser.add_argument("--dir", default=None, help="where trials run (a temporary directory)")
    parser.add_argument("--quiet", action="store_true", help="print failing trials only")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    root = Path(args.dir or tempfile.mkdtemp(prefix="runkon-chaos-"))
    print(
        f"chaos campaign: seed {args.seed}, {args.trials} trials from {args.first}"
        + (f", at most {args.minutes} min" if args.minutes else "")
        + f", in {root}",
        flush=True,
    )
    figures = anyio.run(campaign, args, root)
    print(f"command: python -m benchmarks.chaos {' '.join(sys.argv[1:])}")
    print(f"seed {args.seed}: {figures.summary()}")
    if figures.failed_trials == 0 and not args.keep:
        remove(root)
    sys.exit(1 if figures.failed_trials else 0)


if __name__ == "__main__":
    main()
