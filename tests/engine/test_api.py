"""The FlowEngine API (ARCHITECTURE.md §2): start/result/run, inputs checked at start,
registry validation before anything runs, what a run stores, executor kinds, events."""

from __future__ import annotations

import gc
import warnings

import anyio
import pytest

import runkon
from runkon.engine import ActionOutput, FlowEngine, InputError
from runkon.errors import ExecutionError, StoreClosedError, WorkflowValidationError
from runkon.events import CallbackSink, EngineEvent, RunCompleted, StepCompleted
from runkon.persistence import RunStatus, StepStatus, Store

from ._support import (
    FAIL,
    Items,
    MakeEngine,
    Recorder,
    Reply,
    event_types,
    events,
    item,
    parse,
    rows,
    until,
)

TWO_STEPS = """
workflow ship {
  inputs {
    ticket required
    branch default = "main"
    fast   boolean
  }
  call plan
  call build
}
"""


async def test_start_returns_a_handle_and_result_reports_the_outcome(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        wf = parse(TWO_STEPS)
        handle = await engine.start(wf, {"ticket": "T-1"})
        assert handle.run_id
        assert handle.workflow_name == "ship"

        result = await handle.result(timeout=10)

        assert result.succeeded
        assert result.status == RunStatus.COMPLETED
        assert result.run_id == handle.run_id
        assert result.workflow_name == "ship"
        assert result.error is None
        assert "plan" in result.summary
        assert "build" in result.summary
        assert result.duration_ms >= 0
        assert rec.names() == ["plan", "build"]
        assert handle.done
        assert await rows(store, handle.run_id) == [("plan", "completed"), ("build", "completed")]


async def test_the_run_record_keeps_the_definition_snapshot_and_inputs_with_defaults(
    make_engine: MakeEngine, store: Store
) -> None:
    async with make_engine() as engine:
        wf = parse(TWO_STEPS)
        result = await engine.run(wf, {"ticket": "T-1"})

        run = await store.get_run(result.run_id)
        assert run.status == RunStatus.COMPLETED
        assert run.workflow_name == "ship"
        assert dict(run.inputs) == {"ticket": "T-1", "branch": "main", "fast": "false"}
        assert run.definition_snapshot
        snapshot = runkon.WorkflowDef.from_json(run.definition_snapshot)
        assert snapshot.name == "ship"
        assert [n.agent.label for n in snapshot.body] == ["plan", "build"]  # type: ignore[union-attr]
        assert run.result_summary == result.summary
        assert run.ended_at is not None


async def test_executors_see_inputs_with_defaults_applied(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    async with make_engine() as engine:
        await engine.run(parse(TWO_STEPS), {"ticket": "T-9", "fast": True})

        inputs = rec.of("plan")[0].inputs
        assert inputs["ticket"] == "T-9"
        assert inputs["branch"] == "main"
        assert inputs["fast"] == "true"  # a Python bool becomes the DSL's "true"


async def test_a_missing_required_input_is_refused_at_start_and_no_run_is_created(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        with pytest.raises(InputError) as caught:
            await engine.start(parse(TWO_STEPS), {"branch": "dev"})

        assert "ticket" in str(caught.value)
        assert "missing required input" in str(caught.value)
        assert await store.list_runs() == []
        assert rec.calls == []


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"ticket": "T", "tciket": "x"}, "unknown input 'tciket'"),
        ({"ticket": "T", "fast": "maybe"}, "boolean input 'fast' must be true or false"),
        ({"ticket": ["a", "b"]}, "input 'ticket' must be a string"),
    ],
)
async def test_bad_inputs_are_refused_at_start_with_a_clear_error(
    make_engine: MakeEngine, store: Store, inputs: dict[str, object], expected: str
) -> None:
    async with make_engine() as engine:
        with pytest.raises(InputError, match=expected):
            await engine.start(parse(TWO_STEPS), inputs)
        assert await store.list_runs() == []


async def test_registry_validation_fails_at_start_before_any_step_and_creates_no_run(
    store: Store, tmp_path: object
) -> None:
    ran: list[str] = []

    async def plan(ctx: object, params: object) -> None:
        ran.append("plan")

    wf = parse(
        """
        workflow bad {
          call plan
          call deploy
          foreach each-repo { over = repos  max_parallel = 2  workflow = child }
          gate approval { type = slack_reaction  timeout = "1h" }
        }
        """
    )
    engine = FlowEngine(store, actions={"plan": plan}, manage_store=False)
    async with engine:
        with pytest.raises(WorkflowValidationError) as caught:
            await engine.start(wf)
    message = str(caught.value)
    assert "'deploy'" in message  # no executor
    assert "repos" in message  # no item provider
    assert "slack_reaction" in message  # no gate resolver
    assert ran == []
    assert await store.list_runs() == []


async def test_named_executors_plain_async_functions_and_the_fallback(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    seen: list[str] = []

    class Reviewer:
        name = "review"

        async def execute(self, ctx: object, params: object) -> ActionOutput:
            seen.append("review-object")
            return ActionOutput(markers=["lgtm"])

    async def plan(ctx: object, params: object) -> None:  # None means "no output"
        seen.append("plan-function")

    wf = parse(
        """
        workflow mix {
          call plan
          call review
          call anything-else
          if review.lgtm { call merge }
        }
        """
    )
    async with make_engine(actions={"plan": plan, "review": Reviewer()}) as engine:
        result = await engine.run(wf)

    assert result.succeeded
    assert seen == ["plan-function", "review-object"]
    assert rec.names() == ["anything-else", "merge"]


async def test_a_sync_function_registered_as_an_action_fails_the_step_with_a_clear_error(
    make_engine: MakeEngine, store: Store
) -> None:
    def not_async(ctx: object, params: object) -> ActionOutput:
        return ActionOutput()

    async with make_engine(actions={"plan": not_async}) as engine:
        result = await engine.run(parse("workflow w { call plan }"))

    assert result.status == RunStatus.FAILED
    assert "async" in (result.error or "")
    [step] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.FAILED


async def test_without_a_fallback_an_unknown_action_is_a_validation_error(store: Store) -> None:
    engine = FlowEngine(store, actions={}, manage_store=False)
    async with engine:
        with pytest.raises(WorkflowValidationError, match="no registered ActionExecutor"):
            await engine.run(parse("workflow w { call ghost }"))


async def test_a_failed_run_is_a_result_not_an_exception(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        rec.on("build", FAIL)
        result = await engine.run(parse(TWO_STEPS), {"ticket": "T"})

        assert not result.succeeded
        assert result.status == RunStatus.FAILED
        assert "build" in (result.error or "")
        assert "boom" in (result.error or "")
        assert await rows(store, result.run_id) == [("plan", "completed"), ("build", "failed")]
        [_, build] = await store.get_steps(result.run_id)
        assert "boom" in (build.step_error or "")
        run = await store.get_run(result.run_id)
        assert run.status == RunStatus.FAILED
        assert "boom" in (run.error or "")


async def test_fail_fast_stops_at_the_first_failure_and_false_carries_on(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    wf = parse("workflow w { call a  call b  call c }")
    rec.on("b", FAIL)
    async with make_engine() as engine:
        stopped = await engine.run(wf)
        carried_on = await engine.run(wf, fail_fast=False)

    assert stopped.status == RunStatus.FAILED
    assert carried_on.status == RunStatus.FAILED
    assert rec.names() == ["a", "b", "a", "b", "c"]


async def test_events_of_a_trivial_run_are_stored_in_order_with_gap_free_seq(
    make_engine: MakeEngine, store: Store
) -> None:
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call only }"))

        stored = await events(store, result.run_id)
        assert [e.type for e in stored] == [
            "run_started",
            "step_started",
            "step_completed",
            "metrics_updated",
            "run_completed",
        ]
        assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
        assert stored[0].data["workflow_name"] == "w"
        assert stored[1].data["step_name"] == "only"
        step_id = (await store.get_steps(result.run_id))[0].id
        assert stored[1].data["step_id"] == stored[2].data["step_id"] == step_id


async def test_step_completed_carries_the_attempt_duration(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    rec.on("slow", Reply(delay=0.05))
    async with (
        make_engine() as engine,
        engine.events.subscribe(types={"step_completed"}) as completed,
    ):
        await engine.run(parse("workflow w { call slow }"))
        event = await completed.receive(timeout=5)
    assert isinstance(event, StepCompleted)
    assert 40 <= event.duration_ms < 5_000


async def test_a_failed_run_stores_step_failed_and_run_failed(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        rec.on("only", FAIL)
        result = await engine.run(parse("workflow w { call only }"))

        assert await event_types(store, result.run_id) == [
            "run_started",
            "step_started",
            "step_failed",
            "metrics_updated",
            "run_failed",
        ]
        failed = (await events(store, result.run_id))[-1]
        assert "boom" in failed.data["error"]


async def test_subscribers_and_sinks_receive_the_stored_events_as_typed_models(
    make_engine: MakeEngine, store: Store
) -> None:
    sunk: list[EngineEvent] = []
    live: list[EngineEvent] = []

    async def collect(event: EngineEvent) -> None:
        sunk.append(event)

    async def scenario() -> str:
        wf = parse("workflow w { call a  call b }")
        async with make_engine(event_sinks=[CallbackSink(collect)]) as engine:
            async with engine.events.subscribe() as stream:
                result = await engine.run(wf)
                with anyio.fail_after(5):
                    async for event in stream:
                        live.append(event)
                        if isinstance(event, RunCompleted):
                            break
            await until(lambda: any(isinstance(e, RunCompleted) for e in sunk))
        return result.run_id

    # The leak of each subscription's receive stream is asserted on its own in
    # test_leaving_a_subscription_leaks_no_stream; here it must not hide the contract.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        run_id = await scenario()
        gc.collect()

    stored = [(e.seq, e.type) for e in await events(store, run_id)]
    assert [(e.seq, e.type) for e in live] == stored
    assert [(e.seq, e.type) for e in sunk] == stored
    completed = [e for e in live if isinstance(e, StepCompleted)]
    assert [e.step_name for e in completed] == ["a", "b"]
    assert all(e.run_id == run_id for e in live)


async def test_leaving_a_subscription_leaks_no_stream(make_engine: MakeEngine) -> None:
    """``async with engine.events.subscribe()`` (and a sink's feed) must close every
    stream it opened: under ``-W error`` a leaked stream is a ResourceWarning."""

    async def noop(event: EngineEvent) -> None:
        return None

    async def scenario() -> None:
        async with (
            make_engine(event_sinks=[CallbackSink(noop)]) as engine,
            engine.events.subscribe() as stream,
        ):
            await engine.run(parse("workflow w { call a }"))
            assert await stream.receive(timeout=5) is not None

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        await scenario()
        gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        caught.clear()  # a recorded warning keeps its leaked stream alive: let it go here
        gc.collect()
    assert leaks == []


async def test_metrics_reported_by_steps_are_totalled(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine() as engine:
        rec.on("a", Reply(metadata={"cost_usd": "0.25", "num_turns": "3", "input_tokens": "100"}))
        rec.on("b", Reply(metadata={"cost_usd": "0.5", "num_turns": "2", "output_tokens": "7"}))
        result = await engine.run(parse("workflow w { call a  call b }"))

        assert result.metrics["cost_usd"] == pytest.approx(0.75)
        assert result.metrics["turns"] == 5
        assert result.metrics["input_tokens"] == 100
        assert result.metrics["output_tokens"] == 7
        [metrics] = [e for e in await events(store, result.run_id) if e.type == "metrics_updated"]
        assert metrics.data["total_cost"] == pytest.approx(0.75)
        assert metrics.data["total_turns"] == 5


async def test_resuming_a_finished_run_is_an_error(make_engine: MakeEngine) -> None:
    async with make_engine() as engine:
        result = await engine.run(parse("workflow w { call a }"))
        with pytest.raises(ExecutionError, match="already completed"):
            await engine.resume(result.run_id)


async def test_the_engine_must_be_running(make_engine: MakeEngine, store: Store) -> None:
    engine = make_engine()
    with pytest.raises(ExecutionError, match="not running"):
        await engine.start(parse("workflow w { call a }"))
    assert await store.list_runs() == []


async def test_by_default_the_engine_opens_and_closes_its_store(
    rec: Recorder, store: Store
) -> None:
    await store.aclose()  # hand the (closed) store to the engine, as a user would
    async with FlowEngine(store, fallback_action=rec) as engine:
        result = await engine.run(parse("workflow w { call a }"))
        assert (await store.get_run(result.run_id)).status == RunStatus.COMPLETED
    with pytest.raises(StoreClosedError):
        await store.get_run(result.run_id)


async def test_foreach_provider_and_child_run_through_the_registries(
    make_engine: MakeEngine, store: Store
) -> None:
    child = parse("workflow child { inputs { repo required } call check }")
    wf = parse(
        """
        workflow w {
          foreach each { over = repos  max_parallel = 2  workflow = child
                         inputs = { repo = "{{item.id}}" } }
        }
        """
    )
    provider = Items("repos", [item("a")])
    async with make_engine(item_providers=[provider], workflows={"child": child}) as engine:
        result = await engine.run(wf)
    assert result.succeeded
    assert len(await store.list_runs()) == 2  # the parent and one child


async def test_a_child_workflow_without_any_workflow_resolver_is_refused_at_start(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """Registry validation (issue 4 item 1): a run that references a child workflow on
    an engine with no workflow resolver can never run that step; start() must say so
    before anything runs, like a missing executor or item provider."""
    wf = parse(
        """
        workflow w {
          call first
          call workflow child
        }
        """
    )
    async with make_engine() as engine:
        with pytest.raises(WorkflowValidationError, match="child"):
            await engine.start(wf)
    assert rec.calls == []
    assert await store.list_runs() == []


async def test_a_subscriber_that_never_reads_does_not_stall_the_engine(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    """ARCHITECTURE §6: a slow subscriber never stalls the engine; the bus drops events
    for it and marks the gap. The marker must reach the subscriber once it catches up,
    even when the run has finished and no further event will be published."""
    wf = parse("workflow w { " + " ".join(f"call step{i}" for i in range(20)) + " }")
    async with (
        make_engine() as engine,
        engine.events.subscribe(max_buffer=3) as lagging,
    ):
        result = await engine.run(wf)  # nobody reads `lagging` meanwhile
        received = []
        while (event := await lagging.receive(timeout=0.2)) is not None:
            received.append(event)
    assert result.succeeded
    assert len(rec.calls) == 20
    assert lagging.dropped > 0
    assert [e.type for e in received][:3] == ["run_started", "step_started", "step_completed"]
    assert any(e.type == "events_dropped" for e in received)  # the gap is signalled
    assert len(await store.read_events(result.run_id)) == 20 * 2 + 3  # all stored
