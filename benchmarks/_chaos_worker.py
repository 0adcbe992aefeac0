"""The chaos campaign's worker process: drives one run on a SQLite file until it ends or
the campaign kills it with SIGKILL.

Usage: ``python _chaos_worker.py standby``, then one JSON line on stdin: ``{"mode":
"start" or "resume", "run_id": ..., "db": ..., "flows": ..., "actions": ..., "stderr": a
file for its stderr, "env": {variables for the steps}}`` (the campaign starts workers
ahead, so that one has imported runkon by the time the one before is killed).

- ``start`` starts ``FLOWS_DIR/chaos.wf``; ``resume RUN_ID`` continues that run (waiting
  for a dead process's lease to expire first).
- ``call`` steps run the executables of ``ACTIONS_DIR`` through the CLI's
  ``--actions DIR`` executor; ``call workflow`` and ``foreach`` find their children in
  ``FLOWS_DIR``; ``foreach ... over = chaos_items`` fans out over three items.
- Scripts run in the database's directory.

Its stdout and stderr go to the order's file; SIGUSR1 writes every thread's stack there
(the campaign sends it to a worker that hangs, before killing it).

Exit status: 0 the run ended (its status is printed), 3 the run's lease was lost, 1 any
other error (on stderr). Run by file path: it imports nothing but runkon.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import runkon
from runkon.cli._actions import ActionsDirectory  # the executor behind `--actions DIR`
from runkon.engine import BaseItemProvider, FanOutItem, ProviderContext
from runkon.persistence import SqliteStore

LEASE_TTL = 1.0
LEASE_REFRESH = 0.25
EXIT_LEASE_LOST = 3
ITEMS = ("a", "b", "c")


class ChaosItems(BaseItemProvider):
    """``foreach ... over = chaos_items``: three fixed items."""

    name = "chaos_items"

    async def items(
        self, ctx: ProviderContext, scope: object, filter: Mapping[str, str]
    ) -> Sequence[FanOutItem]:
        return [FanOutItem(item, "part", f"ref-{item}") for item in ITEMS]


async def claim(engine: runkon.FlowEngine, run_id: str) -> runkon.RunHandle:
    """Resume ``run_id``, waiting for the lease of a killed process to run out."""
    for _ in range(20):
        try:
            return await engine.resume(run_id)
        except runkon.RunAlreadyOwnedError:
            run = await engine.store.get_run(run_id)
            until = run.lease_until
            wait = 0.05 if until is None else (until - datetime.now(UTC)).total_seconds()
            await anyio.sleep(min(max(wait, 0.0) + 0.05, 5 * LEASE_TTL))
    raise SystemExit(f"run {run_id} stayed claimed by another process")


async def main(command: dict[str, Any]) -> int:
    mode, run_id, db = command["mode"], command.get("run_id") or "", command["db"]
    flows, actions = command["flows"], command["actions"]
    engine = runkon.FlowEngine(
        SqliteStore(db),
        fallback_action=ActionsDirectory(actions),
        item_providers=[ChaosItems()],
        workflows=runkon.DirectoryWorkflowResolver(flows),
        working_dir=Path(db).parent,
        lease_ttl=LEASE_TTL,
        lease_refresh_interval=LEASE_REFRESH,
    )
    async with engine:
        if mode == "start":
            handle = await engine.start(runkon.load_workflow(Path(flows) / "chaos.wf"))
        else:
            handle = await claim(engine, run_id)
        try:
            result = await handle.result()
        except runkon.LeaseLostError as exc:
            print(f"lease lost: {exc}", file=sys.stderr)
            return EXIT_LEASE_LOST
    print(f"{result.run_id} {result.status}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["standby"]:
        sys.exit(__doc__)
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)  # not needed after all
    order = json.loads(line)
    with open(order["stderr"], "ab") as stderr:  # its stdout (runkon's log lines) too
        os.dup2(stderr.fileno(), 1)
        os.dup2(stderr.fileno(), 2)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the campaign asks if it hangs
    os.environ.update(order["env"])  # inherited by the steps' programs
    sys.exit(anyio.run(main, order))
