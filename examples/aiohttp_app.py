"""runkon embedded in an aiohttp app: a custom async executor, a workflow with a gate.

Run it from the repository root (runs are kept in ./runkon.db, or $RUNKON_DB)::

    python -m aiohttp.web -H 127.0.0.1 -P 8080 examples.aiohttp_app:make_app
    python examples/aiohttp_app.py

Then start a run, see it in the inbox, approve it and watch its events::

    A=localhost:8080/api; T='Authorization: Bearer demo-token'; J='Content-Type: application/json'
    curl -H "$T" -H "$J" -d '{"workflow": "deploy"}' $A/runs        # -> {"run_id": RUN, ...}
    curl -H "$T" $A/gates                                          # the inbox
    curl -H "$T" -H "$J" -d '{"selections": ["go"]}' $A/runs/RUN/gates/approval/approve
    curl -N -H "$T" $A/runs/RUN/events                            # live, as SSE
"""

import argparse
import os

import anyio
from aiohttp import web

import runkon
from runkon.integrations import TokenAuthorizer
from runkon.integrations.aiohttp import create_app

DEPLOY = runkon.parse_workflow("""
workflow deploy {
  inputs { service default = "web" }
  call build
  gate approval {
    type = human_approval  prompt = "Deploy {{service}}?"  options = ["go", "wait"]  timeout = "1h"
  }
  if approval.go { call release }
}
""")


async def step(ctx: runkon.StepContext, params: runkon.ActionParams) -> runkon.ActionOutput:
    """The executor of every `call`: a real one would await an API or a subprocess."""
    await anyio.sleep(0.1)
    service = params.inputs["service"]
    return runkon.ActionOutput(result_text=f"{params.name} {service}: {params.gate_feedback}")


def make_app(argv: list[str] | None = None) -> web.Application:
    """The app factory `python -m aiohttp.web` calls (with its extra arguments)."""
    parser = argparse.ArgumentParser(prog="aiohttp_app")
    parser.add_argument("--db", default=os.environ.get("RUNKON_DB", "runkon.db"))
    options = parser.parse_args(argv or [])
    engine = runkon.FlowEngine(runkon.SqliteStore(options.db), fallback_action=step)
    token = os.environ.get("RUNKON_TOKEN", "demo-token")
    return create_app(engine, TokenAuthorizer({token: "demo"}), workflows={"deploy": DEPLOY})


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=8080)
