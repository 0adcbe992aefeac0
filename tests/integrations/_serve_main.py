"""Runs ``runkon.integrations.server.serve`` as ``runkon serve`` would, for the browser
test: ``python _serve_main.py DB WORKFLOWS_DIR`` (port 0; token from the environment or
generated and printed)."""

from __future__ import annotations

import sys

from runkon import ActionOutput, ActionParams, StepContext
from runkon.integrations.server import serve


async def agent(ctx: StepContext, params: ActionParams) -> ActionOutput:
    return ActionOutput(context=f"{params.name} done")


if __name__ == "__main__":
    serve(db=sys.argv[1], port=0, fallback_action=agent, workflows_dir=sys.argv[2])
