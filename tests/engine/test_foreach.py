"""``foreach``: items from a provider (scope, filter), a child run per item, bounded by
``max_parallel``, in dependency order with ``ordered``, and ``on_child_fail``."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from runkon.errors import WorkflowValidationError
from runkon.persistence import FanOutItemStatus, RunStatus, StepRole, StepStatus, Store

from ._support import (
    FOREVER,
    Items,
    MakeEngine,
    Recorder,
    Reply,
    events,
    item,
    parse,
    workflows,
)

CHILD = workflows(repo_check="workflow repo-check { inputs { repo required } call check }")


def foreach(options: str = "", *, max_parallel: int = 2, name: str = "per-repo") -> str:
    return f"""
    workflow w {{
      inputs {{ org default = "acme" }}
      foreach {name} {{
        over         = repos
        max_parallel = {max_parallel}
        workflow     = repo-check
        inputs       = {{ repo = "{{{{org}}}}/{{{{item.id}}}}" }}
        {options}
      }}
      call after
    }}
    """


def repo_of(call: object) -> str:
    return call.inputs["repo"].split("/", 1)[1]  # type: ignore[attr-defined]


async def fan_out_rows(store: Store, run_id: str) -> dict[str, FanOutItemStatus]:
    [step] = [s for s in await store.get_steps(run_id) if s.role == StepRole.FOREACH]
    return {row.item_id: row.status for row in await store.get_fan_out_items(step.id)}


async def test_each_item_runs_as_a_child_run_with_item_inputs(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items("repos", [item("a", lang="py"), item("b", lang="go"), item("c", lang="py")])
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        result = await engine.run(parse(foreach()))

    assert result.succeeded, result.error
    checks = rec.of("check")
    assert sorted(c.inputs["repo"] for c in checks) == ["acme/a", "acme/b", "acme/c"]
    a = next(c for c in checks if c.inputs["repo"] == "acme/a")
    assert a.inputs["item.id"] == "a"
    assert a.inputs["item.ref"] == "ref-a"
    assert a.inputs["item.lang"] == "py"
    assert a.depth == 1
    assert rec.names()[-1] == "after"

    [step, after] = await store.get_steps(result.run_id)
    assert (step.step_name, step.role, step.status) == (
        "foreach:per-repo",
        StepRole.FOREACH,
        StepStatus.COMPLETED,
    )
    assert after.step_name == "after"
    items = await store.get_fan_out_items(step.id)
    assert [(i.item_id, i.status) for i in items] == [
        ("a", FanOutItemStatus.COMPLETED),
        ("b", FanOutItemStatus.COMPLETED),
        ("c", FanOutItemStatus.COMPLETED),
    ]
    for row in items:
        assert row.child_run_id is not None
        child = await store.get_run(row.child_run_id)
        assert child.parent_run_id == result.run_id
        assert child.status == RunStatus.COMPLETED
    summary = json.loads(step.structured_output or "")
    assert [i["item_id"] for i in summary["items"]] == ["a", "b", "c"]

    stored = await events(store, result.run_id)
    [collected] = [e for e in stored if e.type == "fan_out_items_collected"]
    assert collected.data["count"] == 3
    assert sorted(e.data["item_id"] for e in stored if e.type == "fan_out_item_started") == [
        "a",
        "b",
        "c",
    ]
    done = [e for e in stored if e.type == "fan_out_item_completed"]
    assert sorted((e.data["item_id"], e.data["succeeded"]) for e in done) == [
        ("a", True),
        ("b", True),
        ("c", True),
    ]
    [(ctx, _, _)] = provider.calls
    assert ctx.run_id == result.run_id
    assert ctx.step_id == step.id
    assert ctx.inputs["org"] == "acme"


async def test_scope_and_filter_choose_the_items(make_engine: MakeEngine, rec: Recorder) -> None:
    provider = Items(
        "repos",
        [
            item("api", label="backend", lang="py"),
            item("web", label="frontend", lang="ts"),
            item("jobs", label="backend", lang="go"),
            item("etl", label="backend", lang="py"),
        ],
    )
    wf = parse(foreach('scope = { label = "backend" }  filter = { lang = "py" }'))
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        assert (await engine.run(wf)).succeeded
    assert sorted(repo_of(c) for c in rec.of("check")) == ["api", "etl"]
    [(_, scope, filters)] = provider.calls
    assert scope == ("label", "backend")
    assert filters == {"lang": "py"}


async def test_provider_scope_and_filter_are_validated_at_start(
    make_engine: MakeEngine, store: Store
) -> None:
    bad_scope = parse(foreach('scope = { colour = "red" }'))
    needs_filter = Items("repos", [item("a")], requires_filter=True)
    async with make_engine(item_providers=[Items("repos", [])], workflows=CHILD) as engine:
        with pytest.raises(WorkflowValidationError, match="colour"):
            await engine.start(bad_scope)
    async with make_engine(item_providers=[needs_filter], workflows=CHILD) as engine:
        with pytest.raises(WorkflowValidationError, match="filter"):
            await engine.start(parse(foreach()))
    assert await store.list_runs() == []


async def test_max_parallel_bounds_the_children_in_flight(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    provider = Items("repos", [item(f"r{i}") for i in range(6)])
    rec.on("check", Reply(delay=0.1))
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        assert (await engine.run(parse(foreach(max_parallel=2)))).succeeded
    assert len(rec.of("check")) == 6
    assert rec.peak["check"] == 2


async def test_ordered_items_wait_for_their_dependencies(
    make_engine: MakeEngine, rec: Recorder
) -> None:
    # a -> b -> c, d independent; every child takes a moment
    provider = Items(
        "repos",
        [item("c"), item("b"), item("a"), item("d")],
        edges=[("a", "b"), ("b", "c")],
    )
    rec.on("check", Reply(delay=0.05))
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        assert (await engine.run(parse(foreach("ordered = true", max_parallel=4)))).succeeded

    order = [(kind, repo_of(call)) for kind, call in rec.timeline if call.name == "check"]
    for blocker, dependent in [("a", "b"), ("b", "c")]:
        assert order.index(("end", blocker)) < order.index(("start", dependent)), order
    # the independent item did not wait for the chain
    assert order.index(("start", "d")) < order.index(("end", "a")), order


async def test_on_child_fail_continue_runs_the_rest_and_fails_the_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items("repos", [item("a"), item("b"), item("c")])

    async def fail_b(ctx: object, params: object) -> None:
        if params.inputs["repo"].endswith("/b"):  # type: ignore[attr-defined]
            raise RuntimeError("b is broken")

    rec.on("check", Reply(hook=fail_b))
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        result = await engine.run(parse(foreach("on_child_fail = continue")))

    assert result.status == RunStatus.FAILED
    assert "1 of 3" in (result.error or "")
    assert sorted(repo_of(c) for c in rec.of("check")) == ["a", "b", "c"]
    assert await fan_out_rows(store, result.run_id) == {
        "a": FanOutItemStatus.COMPLETED,
        "b": FanOutItemStatus.FAILED,
        "c": FanOutItemStatus.COMPLETED,
    }
    assert "after" not in rec.names()


async def test_on_child_fail_halt_cancels_children_in_flight_and_starts_no_more(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items("repos", [item("fails"), item("slow"), item("later1"), item("later2")])

    async def behave(ctx: object, params: object) -> None:
        repo = params.inputs["repo"]  # type: ignore[attr-defined]
        if repo.endswith("/fails"):
            await anyio.sleep(0.1)
            raise RuntimeError("fails")
        if repo.endswith("/slow"):
            await anyio.sleep(30)

    rec.on("check", Reply(hook=behave))
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        began = time.monotonic()
        result = await engine.run(parse(foreach("on_child_fail = halt", max_parallel=2)))
        elapsed = time.monotonic() - began

    assert elapsed < 5  # the 30 s child was cancelled, not waited for
    assert result.status == RunStatus.FAILED
    assert sorted(repo_of(c) for c in rec.of("check")) == ["fails", "slow"]
    [slow] = [c for c in rec.of("check") if repo_of(c) == "slow"]
    assert slow in rec.interrupted
    assert slow.step_id in rec.cancel_requests
    assert (await store.get_run(slow.run_id)).status.is_terminal
    statuses = await fan_out_rows(store, result.run_id)
    assert statuses["fails"] == FanOutItemStatus.FAILED
    assert statuses["slow"] != FanOutItemStatus.COMPLETED
    assert statuses["slow"].value in ("failed", "skipped")
    assert statuses["later1"] == statuses["later2"] == FanOutItemStatus.SKIPPED


async def test_on_child_fail_skip_dependents(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items(
        "repos",
        [item("a"), item("b"), item("c"), item("d")],
        edges=[("a", "b"), ("b", "c")],
    )

    async def fail_a(ctx: object, params: object) -> None:
        if params.inputs["repo"].endswith("/a"):  # type: ignore[attr-defined]
            raise RuntimeError("a is broken")

    rec.on("check", Reply(hook=fail_a))
    wf = parse(foreach("ordered = true  on_child_fail = skip_dependents", max_parallel=1))
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        result = await engine.run(wf)

    assert sorted(repo_of(c) for c in rec.of("check")) == ["a", "d"]
    assert await fan_out_rows(store, result.run_id) == {
        "a": FanOutItemStatus.FAILED,
        "b": FanOutItemStatus.SKIPPED,
        "c": FanOutItemStatus.SKIPPED,
        "d": FanOutItemStatus.COMPLETED,
    }
    assert result.status == RunStatus.FAILED


async def test_no_items_completes_the_step(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    async with make_engine(item_providers=[Items("repos", [])], workflows=CHILD) as engine:
        result = await engine.run(parse(foreach()))
    assert result.succeeded
    assert rec.names() == ["after"]
    [step, _] = await store.get_steps(result.run_id)
    assert step.status == StepStatus.COMPLETED
    assert "no items" in (step.result_text or "")


async def test_items_in_a_dependency_cycle_never_run_and_on_cycle_decides(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items("repos", [item("x"), item("y"), item("z")], edges=[("x", "y"), ("y", "x")])
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        strict = await engine.run(parse(foreach("ordered = true  on_cycle = fail")))
        lenient = await engine.run(parse(foreach("ordered = true  on_cycle = warn")))

    assert strict.status == RunStatus.FAILED
    assert "cycle" in (strict.error or "")
    assert lenient.succeeded
    assert sorted(repo_of(c) for c in rec.of("check")) == ["z", "z"]
    assert await fan_out_rows(store, lenient.run_id) == {
        "x": FanOutItemStatus.SKIPPED,
        "y": FanOutItemStatus.SKIPPED,
        "z": FanOutItemStatus.COMPLETED,
    }


async def test_cancelling_the_run_cancels_every_child_in_flight(
    make_engine: MakeEngine, rec: Recorder, store: Store
) -> None:
    provider = Items("repos", [item("a"), item("b"), item("c")])
    rec.on("check", FOREVER)
    async with make_engine(item_providers=[provider], workflows=CHILD) as engine:
        handle = await engine.start(parse(foreach(max_parallel=2)))
        await rec.started("check", 2)
        await engine.cancel_run(handle.run_id)
        result = await handle.result(timeout=10)

    assert result.status == RunStatus.CANCELLED
    assert len(rec.of("check")) == 2
    assert set(rec.interrupted) == set(rec.of("check"))
    for call in rec.of("check"):
        assert (await store.get_run(call.run_id)).status == RunStatus.CANCELLED
    [step] = await store.get_steps(result.run_id)
    assert step.status != StepStatus.COMPLETED  # not "completed" after a cancel (§7 item 21)
    assert step.status.is_terminal
