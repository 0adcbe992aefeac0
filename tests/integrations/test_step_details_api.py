"""The HTTP API shows what a run did: each step's inputs, output, error, attempts and
duration in ``GET /api/runs/{id}``, and what its programs wrote at
``GET /api/runs/{id}/steps/{step}/logs`` (both stores; the aiohttp app answers the same,
see test_aiohttp_parity)."""

from __future__ import annotations

import runkon
from runkon import ActionOutput, ActionParams, StepContext, Store

from ._support import ALICE, WORKFLOWS, serving

SHELL = runkon.parse_workflow(
    """
    workflow shell {
      inputs { who required }
      script greet { run = "echo hello {{who}}; echo careful >&2" }
      call report { retries = 1 }
    }
    """
)


class FlakyReport:
    """Fails the first attempt of every call, then answers."""

    def __init__(self) -> None:
        self.seen = 0

    async def __call__(self, ctx: StepContext, params: ActionParams) -> ActionOutput:
        self.seen += 1
        if self.seen == 1:
            raise RuntimeError("report service busy")
        return ActionOutput(context="reported", markers=["sent"])


async def test_a_runs_steps_carry_inputs_output_error_attempts_and_duration(store: Store) -> None:
    catalog = {**WORKFLOWS, "shell": SHELL}
    async with serving(store, action=FlakyReport(), workflows=catalog) as h:
        started = await h.client.post(
            "/api/runs", json={"workflow": "shell", "inputs": {"who": "Ada"}}, headers=ALICE
        )
        run_id = started.json()["run_id"]
        assert await h.finished(run_id) == "completed"

        detail = await h.client.get(f"/api/runs/{run_id}", headers=ALICE)
        assert detail.status_code == 200
        greet, failed, report = detail.json()["steps"]
        assert (greet["name"], greet["status"]) == ("greet", "completed")
        assert greet["inputs"] == {"who": "Ada"}
        assert greet["context_out"] == "hello Ada\n"
        assert isinstance(greet["duration_ms"], int)
        assert [(a["attempt"], a["status"]) for a in greet["attempts"]] == [(1, "completed")]
        assert greet["gate"] is None

        assert (failed["status"], failed["error"]) == (
            "failed",
            "RuntimeError: report service busy",
        )
        assert failed["inputs"]["who"] == "Ada"
        assert failed["inputs"]["prior_context"] == "hello Ada\n"
        assert report["markers"] == ["sent"]
        assert report["context_out"] == "reported"
        assert report["error"] is None
        assert failed["attempts"] == report["attempts"]
        assert [
            (a["attempt"], a["step_id"], a["status"], a["error"]) for a in report["attempts"]
        ] == [
            (1, failed["id"], "failed", "RuntimeError: report service busy"),
            (2, report["id"], "completed", None),
        ]

        logs = await h.client.get(f"/api/runs/{run_id}/steps/greet/logs", headers=ALICE)
        assert logs.status_code == 200
        assert logs.json() == {
            "run_id": run_id,
            "step_id": greet["id"],
            "name": "greet",
            "status": "completed",
            "captured": True,
            "stdout": "hello Ada\n",
            "stderr": "careful\n",
            "stdout_dropped_bytes": 0,
            "stderr_dropped_bytes": 0,
            "truncated": False,
        }
        by_id = await h.client.get(f"/api/runs/{run_id}/steps/{greet['id']}/logs", headers=ALICE)
        assert by_id.json() == logs.json()

        nothing = await h.client.get(f"/api/runs/{run_id}/steps/report/logs", headers=ALICE)
        assert nothing.status_code == 200
        assert nothing.json()["step_id"] == report["id"]  # a name means its latest attempt
        assert (nothing.json()["captured"], nothing.json()["stdout"]) == (False, "")


async def test_step_logs_refuse_unknown_steps_runs_and_strangers(store: Store) -> None:
    catalog = {**WORKFLOWS, "shell": SHELL}
    async with serving(store, action=FlakyReport(), workflows=catalog) as h:
        first = await h.client.post(
            "/api/runs", json={"workflow": "shell", "inputs": {"who": "A"}}, headers=ALICE
        )
        other = await h.client.post(
            "/api/runs", json={"workflow": "shell", "inputs": {"who": "B"}}, headers=ALICE
        )
        run_id, other_id = first.json()["run_id"], other.json()["run_id"]
        await h.finished(run_id)
        await h.finished(other_id)
        [other_greet, *_] = (await h.client.get(f"/api/runs/{other_id}", headers=ALICE)).json()[
            "steps"
        ]

        unknown = await h.client.get(f"/api/runs/{run_id}/steps/deploy/logs", headers=ALICE)
        assert unknown.status_code == 404
        assert unknown.json()["error"] == "unknown_step"
        assert unknown.json()["message"] == (
            f"run {run_id} has no step 'deploy'; name a step by its id or its name "
            f"(GET /runs/{run_id} lists them)"
        )
        elsewhere = await h.client.get(
            f"/api/runs/{run_id}/steps/{other_greet['id']}/logs", headers=ALICE
        )
        assert elsewhere.status_code == 404  # a step of another run is not this run's
        no_run = await h.client.get("/api/runs/nope/steps/greet/logs", headers=ALICE)
        assert (no_run.status_code, no_run.json()["error"]) == (404, "unknown_run")
        stranger = await h.client.get(f"/api/runs/{run_id}/steps/greet/logs")
        assert stranger.status_code == 401
