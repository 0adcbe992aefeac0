"""runkon embedded in a FastAPI app: custom async executors and a workflow with a gate.

Run it from the repository root with ``uvicorn examples.fastapi_app:app`` (runs are kept
in ./runkon.db, the CLI's default, so ``runkon runs`` and ``runkon show`` see them; set
``$RUNKON_DB`` for another file), then open http://127.0.0.1:8000/inbox
(sign in with the token, default ``dev-token``), or use the JSON API::

    H='Authorization: Bearer dev-token'
    curl -H "$H" -d '{"workflow": "deploy", "inputs": {"service": "api"}}' \\
         -H 'Content-Type: application/json' http://127.0.0.1:8000/api/runs
    curl -H "$H" http://127.0.0.1:8000/api/gates
    curl -H "$H" -d '{"selections": ["canary"]}' -H 'Content-Type: application/json' \\
         http://127.0.0.1:8000/api/runs/RUN_ID/gates/release/approve
"""

import os

import anyio

import runkon
from runkon.integrations import TokenAuthorizer
from runkon.integrations.fastapi import create_app

DEPLOY = runkon.parse_workflow(
    """
    workflow deploy {
      inputs { service required }
      call build
      gate release {
        type = human_approval  prompt = "Release {{service}}?"
        options = ["canary", "everywhere"]  timeout = "1h"
      }
      call ship
    }
    """,
    source="deploy.wf",
)


async def build(ctx: runkon.StepContext, params: runkon.ActionParams) -> runkon.ActionOutput:
    await anyio.sleep(0.05)  # stands in for real work; never block the event loop
    return runkon.ActionOutput(context=f"built {params.inputs['service']}")


async def ship(ctx: runkon.StepContext, params: runkon.ActionParams) -> runkon.ActionOutput:
    where = ", ".join(params.gate_selections) or "everywhere"
    return runkon.ActionOutput(result_text=f"shipped {params.inputs['service']} to {where}")


engine = runkon.FlowEngine(
    runkon.SqliteStore(os.environ.get("RUNKON_DB", "runkon.db")),
    actions={"build": build, "ship": ship},
)
token = os.environ.get("RUNKON_TOKEN", "dev-token")
app = create_app(engine, TokenAuthorizer({token: "dev"}), workflows={"deploy": DEPLOY})
