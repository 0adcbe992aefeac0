"""The workflow and executor of the crash test, shared by the test and its worker.

Every execution appends ``start``/``end`` lines to a log file (flushed and fsynced),
so what ran before a SIGKILL is known exactly. Line format::

    <start|end> <who> <workflow> <step_key> iter=<iteration> run=<run_id> attempt=<attempt>

The worker hangs (and is killed) in one chosen step: ``HANGS`` names the places.
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
  script stamp {
    run = "echo start script crashy stamp >> {{log}}
           echo end script crashy stamp >> {{log}}"
  }
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

HANGS = {
    # where: (step name, loop iteration)
    "loop": ("fix", 1),  # `fix` nested in `if` inside the do-while, second iteration
    "child": ("notify", 0),  # inside the child workflow's run
}


def append(log: str, line: str) -> None:
    with open(log, "a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


class LoggingExecutor:
    """Logs each execution; ``review`` needs changes in iterations 0 and 1; with
    ``hang=(name, iteration)`` it hangs in that step (where the worker gets killed)."""

    name = "logging"

    def __init__(self, log: str, who: str, *, hang: tuple[str, int] | None = None) -> None:
        self.log = log
        self.who = who
        self.hang = hang

    async def execute(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        where = (
            f"{ctx.workflow_name} {ctx.step_key} iter={ctx.iteration} run={ctx.run_id} "
            f"attempt={ctx.attempt}"
        )
        append(self.log, f"start {self.who} {where}")
        if self.hang == (params.name, ctx.iteration):
            await anyio.sleep(3600)
        await anyio.sleep(0.01)
        markers = ["needs_changes"] if params.name == "review" and ctx.iteration < 2 else []
        append(self.log, f"end {self.who} {where}")
        return ActionOutput(markers=markers, context=f"{params.name} done")
