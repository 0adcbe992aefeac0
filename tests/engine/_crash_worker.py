"""The crash test's worker process: runs the crash workflow on a SQLite file until the
test kills it with SIGKILL.

Usage: python _crash_worker.py DB_PATH LOG_PATH RUN_ID_PATH HANG (a key of HANGS)
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from _crash_flow import CHILD, HANGS, WORKFLOW, LoggingExecutor

import runkon
from runkon.engine import FlowEngine
from runkon.persistence import SqliteStore

LEASE_TTL = 1.0
LEASE_REFRESH = 0.3


async def main(db: str, log: str, run_id_path: str, hang: str) -> None:
    child = runkon.parse_workflow(CHILD, source="notify-child.wf")
    engine = FlowEngine(
        SqliteStore(db),
        fallback_action=LoggingExecutor(log, "worker", hang=HANGS[hang]),
        workflows={"notify-child": child},
        working_dir=Path(db).parent,
        lease_ttl=LEASE_TTL,
        lease_refresh_interval=LEASE_REFRESH,
    )
    async with engine:
        handle = await engine.start(
            runkon.parse_workflow(WORKFLOW, source="crashy.wf"), {"ticket": "T-1", "log": log}
        )
        await anyio.Path(run_id_path).write_text(handle.run_id)
        await handle.result()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:5])
