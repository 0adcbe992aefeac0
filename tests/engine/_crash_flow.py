"""The workflow and executor of the crash test, shared by the test and its worker.

Every execution appends ``start``/``end`` lines to a log file (flushed and fsynced),
so what ran before a SIGKILL is known exactly. Line format::

    <start|end> <who> <workflow> <step_key> iter=<iteration> attempt=<attempt>
"""

from __future__ import annotations

import os

import anyio

from runkon.engine import ActionOutput, ActionParams, StepContext

WORKFLOW = """
workflow crashy {
  inputs { ticket required  log required }
  call plan
  call verify
  call workflow notify-child { inputs { ticket = "{{ticket}}" } }
  call implement
  call verify
  script stamp { run = "echo start script crashy stamp >> {{log}}; echo end script crashy stamp >> {{log}}" }
  do {
    max_iterations = 5
    call review
    if review.needs_changes { call fix }
  } while review.needs_changes
  call ship
}
"""

CHILD = """
workflow notify-child {
  inputs { ticket required }
  call notify
}
"""

HANG_STEP = "fix"
HANG_ITERATION = 1


def append(log: str, line: str) -> None:
    with open(log, "a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


class LoggingExecutor:
    """Logs each execution; ``review`` needs changes in iterations 0 and 1; the worker
    (``hang=True``) hangs in ``fix`` of iteration 1, where it gets killed."""

    name = "logging"

    def __init__(self, log: str, who: str, *, hang: bool = False) -> None:
        self.log = log
        self.who = who
        self.hang = hang

    async def execute(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        where = f"{ctx.workflow_name} {ctx.step_key} iter={ctx.iteration} attempt={ctx.attempt}"
        append(self.log, f"start {self.who} {where}")
        if self.hang and params.name == HANG_STEP and ctx.iteration == HANG_ITERATION:
            await anyio.sleep(3600)
        await anyio.sleep(0.01)
        markers = ["needs_changes"] if params.name == "review" and ctx.iteration < 2 else []
        append(self.log, f"end {self.who} {where}")
        return ActionOutput(markers=markers, context=f"{params.name} done")
