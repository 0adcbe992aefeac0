"""Conformance checks: runs, cancellation, leases, steps, fan-out items, fencing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, timedelta

import anyio

from runkon.errors import (
    InvalidTransitionError,
    LeaseLostError,
    UnknownFanOutItemError,
    UnknownRunError,
    UnknownStepError,
)
from runkon.events import EventType
from runkon.persistence import (
    CapturedOutput,
    FanOutItemStatus,
    FanOutItemUpdate,
    NewEvent,
    NewFanOutItem,
    NewRun,
    NewStep,
    RunStatus,
    StepRole,
    StepStatus,
    StepUpdate,
)
from runkon.testing._harness import StoreHarness
from runkon.testing._suite_support import (
    OTHER_OWNER,
    OWNER,
    leased_run,
    new_gate,
    raises,
    running_step,
    steal_lease,
    utc_in,
)

# --------------------------------------------------------------------------- runs


async def create_run_starts_pending(h: StoreHarness) -> None:
    """A new run is pending at generation 0 with no lease, and reads back as created."""
    store = h.store
    run = await store.create_run(
        NewRun(
            "deploy",
            dry_run=True,
            trigger="manual",
            definition_snapshot='{"name": "deploy"}',
            inputs={"ticket": "T-1"},
            workflow_title="Deploy",
            iteration=2,
            depth=1,
            parent_run_id=None,
        )
    )
    assert run.status is RunStatus.PENDING
    assert (run.generation, run.owner_token, run.lease_until) == (0, None, None)
    assert run.started_at.tzinfo is not None
    assert run.started_at.microsecond % 1000 == 0
    assert len(run.id) == 26
    stored = await store.get_run(run.id)
    assert stored == run
    assert dict(stored.inputs) == {"ticket": "T-1"}
    assert (stored.dry_run, stored.trigger, stored.depth, stored.iteration) == (
        True,
        "manual",
        1,
        2,
    )


async def run_options_round_trip(h: StoreHarness) -> None:
    """A run's options (fail_fast, working_dir, the memo) read back as created, always."""
    store = h.store
    options = {
        "fail_fast": "false",
        "working_dir": "/srv/jobs/répertoire with spaces",
        "memo.actions": "tools/actions.py",
        "memo.workflows": "/srv/jobs/flows",
    }
    run = await store.create_run(NewRun("wf", options=options))
    plain = await store.create_run(NewRun("wf"))
    assert dict(run.options) == options
    assert run.working_dir == "/srv/jobs/répertoire with spaces"
    assert run.memo == {"actions": "tools/actions.py", "workflows": "/srv/jobs/flows"}
    assert (plain.working_dir, plain.memo, dict(plain.options)) == (None, {}, {})
    gen = await store.acquire_lease(run.id, OWNER, 60)
    assert gen is not None
    await store.set_run_status(run.id, RunStatus.RUNNING, generation=gen)
    for stored in (
        await store.get_run(run.id),
        *[r for r in await store.list_runs() if r.id == run.id],
        *[r for r in await store.list_recoverable_runs(now=utc_in(120)) if r.id == run.id],
    ):
        assert dict(stored.options) == options
        assert stored.working_dir == run.working_dir
        assert stored.memo == run.memo
    assert dict((await store.get_run(plain.id)).options) == {}


async def string_maps_hold_only_strings(h: StoreHarness) -> None:
    """Run inputs and fan-out contexts that are not all strings are refused, nothing written."""
    store = h.store
    await raises(TypeError, store.create_run(NewRun("wf", inputs={"n": 1})))  # type: ignore[dict-item]
    assert await store.list_runs() == []
    run, gen = await leased_run(store)
    step = await store.insert_step(NewStep(run.id, "each", StepRole.FOREACH, 0), generation=gen)
    await raises(
        TypeError,
        store.insert_fan_out_items(
            step.id,
            [NewFanOutItem("t", "1"), NewFanOutItem("t", "2", context={"k": None})],  # type: ignore[dict-item]
            run_id=run.id,
            generation=gen,
        ),
    )
    assert await store.get_fan_out_items(step.id) == []


async def records_are_immutable(h: StoreHarness) -> None:
    """Records handed out by the store cannot be modified in place."""
    run = await h.store.create_run(NewRun("wf"))
    try:
        run.status = RunStatus.FAILED  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("RunRecord accepted an attribute assignment")
    assert (await h.store.get_run(run.id)).status is RunStatus.PENDING


async def list_runs_filters_newest_first(h: StoreHarness) -> None:
    """list_runs applies every filter, orders newest first; statuses=None means any status."""
    store = h.store
    parent, generation = await leased_run(store, "parent")
    older = await store.create_run(NewRun("child", parent_run_id=parent.id))
    newer = await store.create_run(NewRun("child", parent_run_id=parent.id))
    await store.set_run_status(parent.id, RunStatus.RUNNING, generation=generation)

    assert [run.id for run in await store.list_runs()] == [newer.id, older.id, parent.id]
    assert [run.id for run in await store.list_runs(workflow_name="child")] == [newer.id, older.id]
    assert [run.id for run in await store.list_runs(parent_run_id=parent.id)] == [
        newer.id,
        older.id,
    ]
    assert [run.id for run in await store.list_runs(statuses=[RunStatus.RUNNING])] == [parent.id]
    assert await store.list_runs(statuses=[]) == []
    assert [run.id for run in await store.list_runs(limit=1)] == [newer.id]
    assert (await store.list_runs(parent_run_id=parent.id))[0].parent_run_id == parent.id


async def terminal_run_is_final(h: StoreHarness) -> None:
    """A terminal status sets ended_at and duration; afterwards every status change is refused."""
    store = h.store
    run, generation = await leased_run(store)
    await store.set_run_status(run.id, RunStatus.RUNNING, generation=generation)
    done = await store.set_run_status(
        run.id, RunStatus.COMPLETED, generation=generation, result_summary="3 steps"
    )
    assert done.status is RunStatus.COMPLETED
    assert done.result_summary == "3 steps"
    assert done.ended_at is not None
    assert done.ended_at >= done.started_at
    assert done.total_duration_ms is not None
    assert done.total_duration_ms >= 0
    for status in (RunStatus.RUNNING, RunStatus.FAILED, RunStatus.COMPLETED):
        error = await raises(
            InvalidTransitionError,
            store.set_run_status(run.id, status, generation=generation, error="late"),
        )
        assert (error.entity, error.entity_id, error.current) == ("run", run.id, "completed")
    assert await store.get_run(run.id) == done


async def waiting_status_carries_blocked_on(h: StoreHarness) -> None:
    """A waiting run stores blocked_on; leaving waiting clears it."""
    store = h.store
    run, generation = await leased_run(store)
    blocked = {"type": "custom", "gate_name": "review", "approvals": [1, 2]}
    waiting = await store.set_run_status(
        run.id, RunStatus.WAITING, generation=generation, blocked_on=blocked
    )
    assert waiting.status is RunStatus.WAITING
    assert waiting.blocked_on == blocked
    assert (await store.get_run(run.id)).blocked_on == blocked
    running = await store.set_run_status(run.id, RunStatus.RUNNING, generation=generation)
    assert running.blocked_on is None
    assert running.ended_at is None


async def cancel_request_is_compare_and_set(h: StoreHarness) -> None:
    """request_cancel marks an active run cancelling once; it never touches a finished run."""
    store = h.store
    run, generation = await leased_run(store)
    assert not await store.is_cancel_requested(run.id)
    assert await store.request_cancel(run.id, reason="user asked", by="alice")
    assert await store.request_cancel(run.id, reason="again", by="bob")  # already asked
    cancelling = await store.get_run(run.id)
    assert cancelling.status is RunStatus.CANCELLING
    assert (cancelling.cancel_reason, cancelling.cancel_requested_by) == ("user asked", "alice")
    assert await store.is_cancel_requested(run.id)
    events = list(await store.read_events(run.id))
    assert [(e.type, dict(e.data)) for e in events] == [
        (EventType.CANCELLATION_REQUESTED, {"reason": "user asked", "by": "alice"})
    ]
    # The engine cannot put a cancelling run back to work, only finish it.
    await raises(
        InvalidTransitionError,
        store.set_run_status(run.id, RunStatus.RUNNING, generation=generation),
    )
    await store.set_run_status(run.id, RunStatus.CANCELLED, generation=generation)

    finished, generation = await leased_run(store)
    await store.set_run_status(finished.id, RunStatus.COMPLETED, generation=generation)
    assert not await store.request_cancel(finished.id, reason="too late")
    after = await store.get_run(finished.id)
    assert after.status is RunStatus.COMPLETED
    assert after.cancel_reason is None
    assert await store.read_events(finished.id) == []


# --------------------------------------------------------------------------- leases


async def lease_generation_rules(h: StoreHarness) -> None:
    """Leases: claimed when free or expired or own; the generation moves only with the owner."""
    store = h.store
    run = await store.create_run(NewRun("wf"))
    assert await store.acquire_lease(run.id, OWNER, 0.2) == 1
    assert await store.acquire_lease(run.id, OWNER, 0.2) == 1  # renewal keeps it
    assert await store.acquire_lease(run.id, OTHER_OWNER, 60) is None  # live lease
    held = await store.get_run(run.id)
    assert held.owner_token == OWNER
    assert held.lease_until is not None
    assert held.lease_until > held.started_at
    await anyio.sleep(0.3)
    assert await store.acquire_lease(run.id, OTHER_OWNER, 60) == 2  # expired: stolen
    stolen = await store.get_run(run.id)
    assert (stolen.owner_token, stolen.generation) == (OTHER_OWNER, 2)
    await raises(UnknownRunError, store.acquire_lease("01NOSUCHRUN0000000000000000", OWNER, 1))


async def refresh_leases_reports_lost(h: StoreHarness) -> None:
    """refresh_leases renews held leases in one call and returns the runs whose lease is lost."""
    store = h.store
    kept, kept_gen = await leased_run(store)
    lost, lost_gen = await leased_run(store)
    await steal_lease(store, lost.id)
    unknown = "01NOSUCHRUN0000000000000000"
    before = (await store.get_run(kept.id)).lease_until
    assert before is not None
    await anyio.sleep(0.01)
    result = await store.refresh_leases(
        [(kept.id, OWNER, kept_gen), (lost.id, OWNER, lost_gen), (unknown, OWNER, 1)], 120
    )
    assert result == {lost.id, unknown}
    renewed = await store.get_run(kept.id)
    assert renewed.lease_until is not None
    assert renewed.lease_until > before
    assert renewed.generation == kept_gen
    assert (await store.get_run(lost.id)).owner_token == OTHER_OWNER


async def refreshed_leases_outlive_their_first_ttl(h: StoreHarness) -> None:
    """A refreshed lease holds past its first ttl, until the refresh's own ttl runs out."""
    store = h.store
    run = await store.create_run(NewRun("wf"))
    bystander = await store.create_run(NewRun("wf"))
    assert await store.acquire_lease(run.id, OWNER, 0.2) == 1
    assert await store.acquire_lease(bystander.id, OTHER_OWNER, 0.2) == 1
    assert await store.refresh_leases([(run.id, OWNER, 1)], 0.6) == set()
    await anyio.sleep(0.3)  # past the first ttl: the refresh keeps the run held ...
    assert await store.acquire_lease(run.id, OTHER_OWNER, 60) is None
    assert run.id not in {r.id for r in await store.list_recoverable_runs()}
    assert await store.acquire_lease(bystander.id, OWNER, 60) == 2  # ... and no other run
    await anyio.sleep(0.4)  # past the refresh's ttl: expired
    assert run.id in {r.id for r in await store.list_recoverable_runs()}
    assert await store.acquire_lease(run.id, OTHER_OWNER, 60) == 2


async def a_released_lease_is_free_despite_refreshes(h: StoreHarness) -> None:
    """After release_lease, earlier refreshes by the old owner do not keep the run held."""
    store = h.store
    run, generation = await leased_run(store)
    other, other_gen = await leased_run(store)
    assert await store.refresh_leases([(run.id, OWNER, generation)], 60) == set()
    assert await store.release_lease(run.id, OWNER, generation)
    assert (await store.get_run(run.id)).lease_until is None
    assert await store.acquire_lease(run.id, OTHER_OWNER, 60) == generation + 1
    assert await store.refresh_leases([(other.id, OWNER, other_gen)], 60) == set()
    assert (await store.get_run(run.id)).owner_token == OTHER_OWNER


async def release_lease_needs_owner_and_generation(h: StoreHarness) -> None:
    """release_lease frees the lease only for its owner at its generation."""
    store = h.store
    run, generation = await leased_run(store)
    assert not await store.release_lease(run.id, OTHER_OWNER, generation)
    assert not await store.release_lease(run.id, OWNER, generation + 1)
    assert await store.release_lease(run.id, OWNER, generation)
    released = await store.get_run(run.id)
    assert (released.owner_token, released.lease_until) == (None, None)
    assert await store.acquire_lease(run.id, OTHER_OWNER, 60) == generation + 1


async def recoverable_runs_are_active_and_unleased(h: StoreHarness) -> None:
    """list_recoverable_runs: active runs whose lease expired or was never taken."""
    store = h.store
    never = await store.create_run(NewRun("never-leased"))
    live, _ = await leased_run(store, "live")
    expiring = await store.create_run(NewRun("expiring"))
    assert await store.acquire_lease(expiring.id, OWNER, 0.05) == 1
    done, done_gen = await leased_run(store, "done")
    await store.set_run_status(done.id, RunStatus.COMPLETED, generation=done_gen)
    await store.release_lease(done.id, OWNER, done_gen)
    await anyio.sleep(0.1)

    assert [run.id for run in await store.list_recoverable_runs()] == [never.id, expiring.id]
    later = [run.id for run in await store.list_recoverable_runs(utc_in(3600))]
    assert later == [never.id, live.id, expiring.id]


# --------------------------------------------------------------------------- steps


async def steps_insert_and_update(h: StoreHarness) -> None:
    """Steps: running sets started_at, terminal sets ended_at, None fields keep their value."""
    store = h.store
    run, gen = await leased_run(store)
    step = await store.insert_step(
        NewStep(
            run.id,
            "plan",
            StepRole.AGENT,
            position=3,
            iteration=1,
            retry_count=2,
            resume_key="plan@0",
            parallel_group_id="g1",
            kind="call",
        ),
        generation=gen,
    )
    assert step.status is StepStatus.RUNNING
    assert step.started_at is not None
    assert (step.resume_key, step.kind, step.parallel_group_id) == ("plan@0", "call", "g1")
    assert (step.position, step.iteration, step.retry_count) == (3, 1, 2)
    assert step.ended_at is None
    assert step.markers_out == ()
    partial = await store.update_step(
        step.id, StepUpdate(StepStatus.RUNNING, child_run_id="child-1"), generation=gen
    )
    assert partial.child_run_id == "child-1"
    assert partial.started_at == step.started_at
    done = await store.update_step(
        step.id,
        StepUpdate(
            StepStatus.COMPLETED,
            result_text="planned",
            context_out="ctx",
            markers_out=["ok", "ready"],
            structured_output='{"n": 1}',
            retry_count=3,
        ),
        generation=gen,
    )
    assert done.status is StepStatus.COMPLETED
    assert done.ended_at is not None
    assert done.markers_out == ("ok", "ready")
    assert done.child_run_id == "child-1"
    assert (done.result_text, done.context_out, done.structured_output, done.retry_count) == (
        "planned",
        "ctx",
        '{"n": 1}',
        3,
    )
    assert await store.get_step(step.id) == done

    pending = await store.insert_step(
        NewStep(run.id, "later", StepRole.AGENT, 1, status=StepStatus.PENDING), generation=gen
    )
    assert pending.started_at is None
    await raises(
        ValueError,
        store.insert_step(
            NewStep(run.id, "x", StepRole.AGENT, 2, status=StepStatus.COMPLETED), generation=gen
        ),
    )
    same_position = await store.insert_step(NewStep(run.id, "b", StepRole.AGENT, 1), generation=gen)
    assert [s.id for s in await store.get_steps(run.id)] == [pending.id, same_position.id, step.id]


async def step_inputs_and_output_round_trip(h: StoreHarness) -> None:
    """A step's inputs and its captured stdout/stderr tails read back as written, also elsewhere."""
    store = h.store
    run, gen = await leased_run(store)
    inputs = {"ticket": "T-1", "prior_context": "line 1\nline 2 \u00e9\u2603", "empty": ""}
    step = await store.insert_step(
        NewStep(run.id, "build", StepRole.AGENT, 0, kind="script", inputs=inputs),
        generation=gen,
    )
    assert dict(step.inputs) == inputs
    bare = await running_step(store, run.id, gen)
    assert dict(bare.inputs) == {}
    assert await store.get_step_output(step.id) is None
    tail = CapturedOutput(
        stdout="out \u2603\nlast line\n",
        stderr="warning: x\n",
        stdout_dropped_bytes=70_000,
        stderr_dropped_bytes=0,
    )
    running = await store.update_step(
        step.id,
        StepUpdate(StepStatus.RUNNING, output=CapturedOutput(stdout="early")),
        generation=gen,
    )
    assert dict(running.inputs) == inputs
    done = await store.update_step(
        step.id,
        StepUpdate(StepStatus.FAILED, step_error="exit 1", output=tail),
        generation=gen,
    )
    assert dict(done.inputs) == inputs
    stored = await store.get_step_output(step.id)
    assert stored == tail
    assert stored is not None
    assert stored.truncated
    assert not stored.is_empty
    assert await store.get_step_output(bare.id) is None
    missing = "01NOSUCHID00000000000000000"
    assert (await raises(UnknownStepError, store.get_step_output(missing))).step_id == missing
    # The output of a step whose update was refused is not replaced.
    await raises(
        InvalidTransitionError,
        store.update_step(
            step.id, StepUpdate(StepStatus.COMPLETED, output=CapturedOutput()), generation=gen
        ),
    )
    async with h.open_second() as second:
        assert await second.get_step_output(step.id) == tail
        (again,) = [s for s in await second.get_steps(run.id) if s.id == step.id]
        assert dict(again.inputs) == inputs
        assert again == done


async def terminal_step_is_final(h: StoreHarness) -> None:
    """A terminal step is never overwritten: the update is refused and nothing changes."""
    store = h.store
    run, gen = await leased_run(store)
    step = await running_step(store, run.id, gen)
    failed = await store.update_step(
        step.id, StepUpdate(StepStatus.FAILED, step_error="boom"), generation=gen
    )
    for status in (StepStatus.COMPLETED, StepStatus.RUNNING, StepStatus.FAILED):
        error = await raises(
            InvalidTransitionError,
            store.update_step(
                step.id,
                StepUpdate(status, result_text="late"),
                generation=gen,
                events=[NewEvent("step_completed")],
            ),
        )
        assert (error.entity, error.current, error.requested) == ("step", "failed", status)
    assert await store.get_step(step.id) == failed
    assert await store.read_events(run.id) == []


async def unknown_ids_raise_store_errors(h: StoreHarness) -> None:
    """Unknown run, step and fan-out ids raise runkon's errors naming the id."""
    store = h.store
    missing = "01NOSUCHID00000000000000000"
    assert (await raises(UnknownRunError, store.get_run(missing))).run_id == missing
    await raises(UnknownRunError, store.get_steps(missing))
    await raises(UnknownRunError, store.read_events(missing))
    await raises(UnknownRunError, store.is_cancel_requested(missing))
    await raises(UnknownRunError, store.request_cancel(missing))
    await raises(UnknownRunError, store.set_run_status(missing, RunStatus.RUNNING, generation=1))
    await raises(UnknownRunError, store.append_events(missing, [NewEvent("x")], generation=1))
    await raises(
        UnknownRunError,
        store.insert_step(NewStep(missing, "plan", StepRole.AGENT, 0), generation=1),
    )
    await raises(UnknownRunError, store.open_gate(new_gate(missing), generation=1))
    assert (await raises(UnknownStepError, store.get_step(missing))).step_id == missing
    await raises(UnknownStepError, store.get_gate(missing))
    await raises(UnknownStepError, store.get_fan_out_items(missing))
    await raises(
        UnknownStepError, store.update_step(missing, StepUpdate(StepStatus.FAILED), generation=1)
    )
    run, gen = await leased_run(store)
    step = await running_step(store, run.id, gen)
    await raises(UnknownStepError, store.get_gate(step.id))  # a step, but not a gate
    await raises(
        UnknownStepError,
        store.insert_fan_out_items(
            missing, [NewFanOutItem("t", "1")], run_id=run.id, generation=gen
        ),
    )
    error = await raises(
        UnknownFanOutItemError,
        store.update_fan_out_items(
            [(missing, FanOutItemUpdate(FanOutItemStatus.RUNNING))], run_id=run.id, generation=gen
        ),
    )
    assert error.item_row_id == missing


# --------------------------------------------------------------------------- fan-out


async def fan_out_insert_is_idempotent(h: StoreHarness) -> None:
    """A duplicate fan-out item returns the EXISTING row; items keep insertion order."""
    store = h.store
    run, gen = await leased_run(store)
    step = await store.insert_step(
        NewStep(run.id, "foreach:t", StepRole.FOREACH, 0), generation=gen
    )
    first = await store.insert_fan_out_items(
        step.id,
        [NewFanOutItem("ticket", "T-2", "ref2", {"k": "v"}), NewFanOutItem("ticket", "T-1")],
        run_id=run.id,
        generation=gen,
    )
    assert [item.item_id for item in first] == ["T-2", "T-1"]
    assert first[0].status is FanOutItemStatus.PENDING
    assert dict(first[0].context) == {"k": "v"}
    await store.update_fan_out_items(
        [(first[0].id, FanOutItemUpdate(FanOutItemStatus.RUNNING, child_run_id="c1"))],
        run_id=run.id,
        generation=gen,
    )
    again = await store.insert_fan_out_items(
        step.id,
        [NewFanOutItem("ticket", "T-3"), NewFanOutItem("ticket", "T-2", "other-ref")],
        run_id=run.id,
        generation=gen,
    )
    assert again[1].id == first[0].id
    assert (again[1].item_ref, again[1].status, again[1].child_run_id) == (
        "ref2",
        FanOutItemStatus.RUNNING,
        "c1",
    )
    listed = await store.get_fan_out_items(step.id)
    assert [item.item_id for item in listed] == ["T-2", "T-1", "T-3"]
    pending = await store.get_fan_out_items(step.id, FanOutItemStatus.PENDING)
    assert [item.item_id for item in pending] == ["T-1", "T-3"]


async def fan_out_update_is_all_or_nothing(h: StoreHarness) -> None:
    """A fan-out batch with one missing row changes nothing; a good batch sets its timestamps."""
    store = h.store
    run, gen = await leased_run(store)
    step = await store.insert_step(
        NewStep(run.id, "foreach:t", StepRole.FOREACH, 0), generation=gen
    )
    a, b = await store.insert_fan_out_items(
        step.id, [NewFanOutItem("t", "a"), NewFanOutItem("t", "b")], run_id=run.id, generation=gen
    )
    await raises(
        UnknownFanOutItemError,
        store.update_fan_out_items(
            [
                (a.id, FanOutItemUpdate(FanOutItemStatus.COMPLETED)),
                ("01NOSUCHITEM000000000000000", FanOutItemUpdate(FanOutItemStatus.FAILED)),
            ],
            run_id=run.id,
            generation=gen,
        ),
    )
    assert await store.get_fan_out_items(step.id) == [a, b]
    running, done = await store.update_fan_out_items(
        [
            (a.id, FanOutItemUpdate(FanOutItemStatus.RUNNING, child_run_id="child-a")),
            (b.id, FanOutItemUpdate(FanOutItemStatus.SKIPPED)),
        ],
        run_id=run.id,
        generation=gen,
    )
    assert running.dispatched_at is not None
    assert running.completed_at is None
    assert running.child_run_id == "child-a"
    assert done.completed_at is not None
    assert done.dispatched_at is None
    finished = (
        await store.update_fan_out_items(
            [(a.id, FanOutItemUpdate(FanOutItemStatus.COMPLETED))], run_id=run.id, generation=gen
        )
    )[0]
    assert finished.child_run_id == "child-a"
    assert finished.dispatched_at == running.dispatched_at
    assert await store.get_fan_out_items(step.id) == [finished, done]
    other, other_gen = await leased_run(store)
    await raises(
        UnknownFanOutItemError,
        store.update_fan_out_items(
            [(a.id, FanOutItemUpdate(FanOutItemStatus.FAILED))],
            run_id=other.id,
            generation=other_gen,
        ),
    )


# --------------------------------------------------------------------------- fencing


async def stale_generation_writes_are_refused(h: StoreHarness) -> None:
    """Every run-scoped write with a stale generation raises LeaseLostError and writes nothing."""
    store = h.store
    run, old = await leased_run(store)
    step = await running_step(store, run.id, old)
    foreach = await store.insert_step(
        NewStep(run.id, "foreach:x", StepRole.FOREACH, 1), generation=old
    )
    (item,) = await store.insert_fan_out_items(
        foreach.id, [NewFanOutItem("t", "1")], run_id=run.id, generation=old
    )
    gate = await store.open_gate(new_gate(run.id, position=2), generation=old)
    new = await steal_lease(store, run.id)
    assert new == old + 1
    before_run = await store.get_run(run.id)
    before_steps = await store.get_steps(run.id)
    stale = [NewEvent("stale_write")]
    attempts = {
        "insert_step": store.insert_step(
            NewStep(run.id, "late", StepRole.AGENT, 9), generation=old, events=stale
        ),
        "update_step": store.update_step(
            step.id, StepUpdate(StepStatus.COMPLETED), generation=old, events=stale
        ),
        "set_run_status": store.set_run_status(
            run.id, RunStatus.FAILED, generation=old, events=stale
        ),
        "insert_fan_out_items": store.insert_fan_out_items(
            foreach.id, [NewFanOutItem("t", "2")], run_id=run.id, generation=old, events=stale
        ),
        "update_fan_out_items": store.update_fan_out_items(
            [(item.id, FanOutItemUpdate(FanOutItemStatus.FAILED))],
            run_id=run.id,
            generation=old,
            events=stale,
        ),
        "open_gate": store.open_gate(new_gate(run.id, "late", 9), generation=old, events=stale),
        "time_out_gate": store.time_out_gate(gate.step_id, generation=old),
        "append_events": store.append_events(run.id, stale, generation=old),
    }
    for kind, attempt in attempts.items():
        error = await raises(LeaseLostError, attempt)
        assert (error.run_id, error.expected, error.actual) == (run.id, old, new), kind
    assert await store.get_run(run.id) == before_run
    assert await store.get_steps(run.id) == before_steps
    assert [i.id for i in await store.get_fan_out_items(foreach.id)] == [item.id]
    assert (await store.get_fan_out_items(foreach.id))[0].status is FanOutItemStatus.PENDING
    assert (await store.get_gate(gate.step_id)).decision is None
    assert await store.read_events(run.id) == []
    # The new owner writes freely.
    await store.update_step(step.id, StepUpdate(StepStatus.COMPLETED), generation=new)


async def lease_times_are_utc_datetimes(h: StoreHarness) -> None:
    """lease_until reads back as an aware UTC datetime about ttl seconds ahead."""
    store = h.store
    run = await store.create_run(NewRun("wf"))
    await store.acquire_lease(run.id, OWNER, 90)
    leased = await store.get_run(run.id)
    assert leased.lease_until is not None
    assert leased.lease_until.utcoffset() == timedelta(0)
    ahead = leased.lease_until - utc_in(0)
    assert timedelta(seconds=85) < ahead <= timedelta(seconds=90)
    assert leased.lease_until.tzinfo is not None
    assert leased.started_at.astimezone(UTC) == leased.started_at


CHECKS = [
    create_run_starts_pending,
    run_options_round_trip,
    string_maps_hold_only_strings,
    records_are_immutable,
    list_runs_filters_newest_first,
    terminal_run_is_final,
    waiting_status_carries_blocked_on,
    cancel_request_is_compare_and_set,
    lease_generation_rules,
    refresh_leases_reports_lost,
    refreshed_leases_outlive_their_first_ttl,
    a_released_lease_is_free_despite_refreshes,
    release_lease_needs_owner_and_generation,
    recoverable_runs_are_active_and_unleased,
    lease_times_are_utc_datetimes,
    steps_insert_and_update,
    step_inputs_and_output_round_trip,
    terminal_step_is_final,
    unknown_ids_raise_store_errors,
    fan_out_insert_is_idempotent,
    fan_out_update_is_all_or_nothing,
    stale_generation_writes_are_refused,
]
