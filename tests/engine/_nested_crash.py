"""The nested crash test's workflows, executor and worker process (issue 14.1).

A parent calls a child workflow which calls a grandchild; the first step of the child
and of the grandchild is a script appending to a log file, later steps are calls whose
executor logs ``start``/``end`` lines (fsynced) and hangs in one chosen step, where the
test kills the worker process with SIGKILL.

Usage as a worker: python _nested_crash.py DB LOG RUN_ID_PATH WHO HANG [RUN_ID]
(without RUN_ID it starts a new run and writes its id; with it, it resumes that run).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

import runkon
from runkon.engine import ActionOutput, ActionParams, FlowEngine, StepContext
from runkon.persistence import SqliteStore

PARENT = """
workflow nest-parent {
  inputs { log required }
  call p-first
  call workflow nest-child { inputs { log = "{{log}}" } }
  call p-last
}
"""

CHILD = """
workflow nest-child {
  inputs { log required }
  script c-first { run = "echo end script c-first run={{workflow_run_id}} >> {{log}}" }
  call workflow nest-grandchild { inputs { log = "{{log}}" } }
  call c-wait
  call c-last
}
"""

GRANDCHILD = """
workflow nest-grandchild {
  inputs { log required }
  script g-first { run = "echo end script g-first run={{workflow_run_id}} >> {{log}}" }
  call g-wait
  call g-last
}
"""


def workflows() -> dict[str, runkon.WorkflowDef]:
    """The child and grandchild, as ``FlowEngine(workflows=...)`` takes them."""
    return {
        "nest-child": runkon.parse_workflow(CHILD, source="nest-child.wf"),
        "nest-grandchild": runkon.parse_workflow(GRANDCHILD, source="nest-grandchild.wf"),
    }


class LoggingExecutor:
    """Appends ``start``/``end <who> <step> run=<run id>`` lines; hangs in step ``hang``."""

    name = "logging"

    def __init__(self, log: str, who: str, hang: str | None = None) -> None:
        self.log, self.who, self.hang = log, who, hang

    def _append(self, line: str) -> None:
        with open(self.log, "a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())

    async def execute(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        self._append(f"start {self.who} {params.name} run={ctx.run_id}")
        if params.name == self.hang:
            await anyio.sleep(3600)
        self._append(f"end {self.who} {params.name} run={ctx.run_id}")
        return ActionOutput(context=f"{params.name} done")


def engine(db: str | Path, log: str, who: str, hang: str | None, **options: object) -> FlowEngine:
    return FlowEngine(
        SqliteStore(db),
        fallback_action=LoggingExecutor(log, who, hang),
        workflows=workflows(),
        working_dir=Path(db).parent,
        lease_ttl=1.0,
        lease_refresh_interval=0.3,
        **options,  # type: ignore[arg-type]
    )


async def main(db: str, log: str, run_id_path: str, who: str, hang: str, *run_id: str) -> None:
    async with engine(db, log, who, hang) as flow:
        if run_id:
            handle = await flow.resume(run_id[0])
        else:
            parent = runkon.parse_workflow(PARENT, source="nest-parent.wf")
            handle = await flow.start(parent, {"log": log})
            await anyio.Path(run_id_path).write_text(handle.run_id)
        await handle.result()


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:])
