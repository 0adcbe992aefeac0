"""The inbox's run page: one run's steps as a timeline (status, duration, markers, an
excerpt of each step's output, gate decisions with who, when, selections and feedback),
kept up to date while the run runs.

It follows the inbox's rules (see :mod:`runkon.integrations._inbox`): every value shown
comes from the store and is HTML-escaped (step output is written by scripts and agents
and is hostile input like any other), the page's only script is nonce-tagged, and it
reads nothing but the run the caller may read (permission ``read``).

Live updates: the page opens an event stream of the run (:func:`run_changes`), which
says ``changed`` (with the run's latest event sequence number as ``id``) whenever the
run wrote events, and ``end`` once it finished; the page then fetches its fragment
again. Bursts of events are told as one ``changed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from runkon.events import EngineEvent
from runkon.integrations._auth import Identity, Permission
from runkon.integrations._inbox import _document, _e, _when, render_header, run_link
from runkon.integrations._service import KEEPALIVE, RunkonApi
from runkon.persistence import (
    CapturedOutput,
    GateRecord,
    RunRecord,
    StepRecord,
    StepRole,
    StepStatus,
)

EXCERPT_LINES = 12  # lines shown of each output field of a step
EXCERPT_CHARS = 1500  # characters shown of each output field of a step
INPUT_CHARS = 300  # characters shown of each input value of a step
_SEP = " \u00b7 "


@dataclass(frozen=True, slots=True)
class RunView:
    """What the run page shows: the run, its steps in order, the gate of each gate step
    and the captured stdout/stderr of the steps that have some (by step id)."""

    run: RunRecord
    steps: Sequence[StepRecord]
    gates: Mapping[str, GateRecord]
    logs: Mapping[str, CapturedOutput]


async def load_run(api: RunkonApi, headers: Mapping[str, str], run_id: str) -> RunView:
    """The run, its steps, gates and captured output, read as the caller.

    Raises:
        ApiError: 401 no valid credentials, 404 unknown run, 403 the caller may not read
            it.
    """
    run = (await api.check_run(headers, Permission.READ, run_id)).run
    store = api.engine.store
    steps = await store.get_steps(run.id)
    gates: dict[str, GateRecord] = {}
    logs: dict[str, CapturedOutput] = {}
    for step in steps:
        if step.role == StepRole.GATE:
            gates[step.id] = await store.get_gate(step.id)
        elif step.role == StepRole.AGENT and step.started_at is not None:
            output = await store.get_step_output(step.id)
            if output is not None and not output.is_empty:
                logs[step.id] = output
    return RunView(run, steps, gates, logs)


# --------------------------------------------------------------------------- live feed


def _changed(seq: int) -> str:
    return f"id: {seq}\nevent: changed\ndata: {{}}\n\n"


async def run_changes(
    events: AsyncIterator[EngineEvent], *, keepalive: float = 15.0
) -> AsyncIterator[str]:
    """SSE frames for the run page from the run's ``events`` (as
    :meth:`RunkonApi.open_events` gives them): ``event: changed`` with the latest
    sequence number as ``id`` (what a reconnecting page sends back as
    ``Last-Event-ID``), one per burst however many events it had; ``event: end`` once
    the run finished; a comment line after ``keepalive`` idle seconds."""
    latest = 0
    ended = False
    wake = anyio.Event()

    async def pump() -> None:
        nonlocal latest, ended
        try:
            async for event in events:
                latest = event.seq
                wake.set()
            ended = True
            wake.set()
        finally:
            # cut off (page gone, server stopping): end the run's subscription here
            close = getattr(events, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()

    yield "retry: 2000\n\n"
    told = 0
    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            while True:
                with anyio.move_on_after(keepalive) as idle:
                    await wake.wait()
                if idle.cancelled_caught:
                    yield KEEPALIVE
                    continue
                wake = anyio.Event()
                if latest > told:
                    told = latest
                    yield _changed(told)
                if ended:
                    yield "event: end\ndata: {}\n\n"
                    break
        except GeneratorExit:
            pass  # closed between frames: stop following (never leave the group with it)
        finally:
            group.cancel_scope.cancel()


# --------------------------------------------------------------------------- rendering

RUN_CSS = """
.run-link{color:inherit}
.timeline{list-style:none;padding:0;margin:.5rem 0}
.step{background:#fff;border:1px solid #d8dce3;border-left:6px solid #9aa3b2;
border-radius:8px;padding:.6rem .9rem;margin:.5rem 0}
.step h3{margin:0;font-size:1rem;display:flex;gap:.6rem;align-items:baseline;flex-wrap:wrap}
.step .kind,.step .meta{color:#667;font-weight:400;font-size:.9rem}
.badge{font-size:.8rem;padding:.05rem .45rem;border-radius:9px;background:#e3e6eb}
.s-completed{border-left-color:#1f7a3a}.s-failed,.s-timed_out{border-left-color:#a52020}
.s-running{border-left-color:#2b6cb0}.s-waiting{border-left-color:#c27c0e}
.s-skipped,.s-cancelled{border-left-color:#c8ccd4}
.markers{display:flex;gap:.3rem;flex-wrap:wrap;list-style:none;padding:0;margin:.3rem 0}
.markers li{background:#eef1f6;border-radius:4px;padding:0 .4rem;font-family:monospace}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f5f6f8;border-radius:4px;
padding:.4rem .6rem;margin:.2rem 0;font-size:.85rem}
.error{color:#7c1010;white-space:pre-wrap}.more{color:#667;font-size:.85rem}
.summary{white-space:pre-wrap}details{margin:.3rem 0}summary{cursor:pointer;color:#445}
"""

_RUN_SCRIPT = """
(() => {
  const base = document.body.dataset.base;
  const holder = document.getElementById("run-live");
  const badge = document.getElementById("live");
  const url = base + "/runs/" + encodeURIComponent(holder.dataset.run);
  const show = (on, text) => { badge.textContent = text; badge.classList.toggle("on", on); };
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const answer = await fetch(
        url + "/fragment", {credentials: "same-origin", cache: "no-store"});
      if (answer.ok) {
        const fresh = document.createElement("template");
        fresh.innerHTML = await answer.text();
        // what the user unfolded stays unfolded
        const opened = new Set([...holder.querySelectorAll("details[open]")]
          .map((d) => d.dataset.key));
        for (const d of fresh.content.querySelectorAll("details[data-key]")) {
          d.open = opened.has(d.dataset.key);
        }
        holder.replaceChildren(fresh.content);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  if (holder.dataset.live !== "true") { show(false, "run finished"); return; }
  const stream = new EventSource(url + "/stream");
  stream.addEventListener("open", () => show(true, "\\u25cf live"));
  stream.addEventListener("error", () => show(false, "\\u25cb reconnecting"));
  stream.addEventListener("changed", refresh);
  stream.addEventListener("end", () => {
    stream.close();
    show(false, "run finished");
    refresh();
  });
})();
"""


def _duration(started_at: datetime | None, ended_at: datetime | None, now: datetime) -> str:
    """``850 ms``, ``4.2 s``, ``3m 05s`` or ``2h 10m``; ``-`` when not started."""
    if started_at is None:
        return "-"
    seconds = max(((ended_at or now) - started_at).total_seconds(), 0.0)
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    iso = moment.astimezone(UTC).isoformat()
    return f'<time datetime="{_e(iso)}">{_e(_when(moment))}</time>'


def excerpt(text: str) -> tuple[str, int]:
    """The start of ``text`` shown on the page (at most ``EXCERPT_LINES`` lines and
    ``EXCERPT_CHARS`` characters) and how many characters were left out."""
    lines = text.rstrip("\n").split("\n")
    shown = "\n".join(lines[:EXCERPT_LINES])[:EXCERPT_CHARS]
    return shown, len(text.rstrip("\n")) - len(shown)


def tail(text: str) -> tuple[str, int]:
    """The end of ``text`` shown on the page (at most ``EXCERPT_LINES`` lines and
    ``EXCERPT_CHARS`` characters) and how many characters before it were left out."""
    text = text.rstrip("\n")
    shown = "\n".join(text.split("\n")[-EXCERPT_LINES:])[-EXCERPT_CHARS:]
    return shown, len(text) - len(shown)


def _output(name: str, text: str) -> str:
    shown, left_out = excerpt(text)
    more = f'<div class="more">\u2026 {left_out} more characters</div>' if left_out else ""
    return (
        f'<div class="output" data-field="{_e(name)}">{_e(name)}:<pre>{_e(shown)}</pre>{more}</div>'
    )


def _inputs(step: StepRecord) -> str:
    """The variables the step ran with, folded (values cut at ``INPUT_CHARS``)."""
    if not step.inputs:
        return ""
    rows = []
    for name, value in sorted(step.inputs.items()):
        cut = len(value) - INPUT_CHARS
        more = f' <span class="more">\u2026 {cut} more characters</span>' if cut > 0 else ""
        rows.append(f"<dt>{_e(name)}</dt><dd><code>{_e(value[:INPUT_CHARS])}</code>{more}</dd>")
    return (
        f'<details data-key="{_e(step.id)}:inputs"><summary>inputs ({len(step.inputs)})'
        f"</summary><dl>{''.join(rows)}</dl></details>"
    )


def render_logs(step_id: str, output: CapturedOutput | None) -> str:
    """The end of a step's captured stdout and stderr, folded."""
    if output is None:
        return ""
    parts = []
    for name, text, dropped in (
        ("stdout", output.stdout, output.stdout_dropped_bytes),
        ("stderr", output.stderr, output.stderr_dropped_bytes),
    ):
        if not text:
            continue
        shown, left_out = tail(text)
        notes = []
        if left_out:
            notes.append(f"{left_out} earlier characters not shown")
        if dropped:
            notes.append(f"{dropped} earlier bytes not kept")
        more = f'<div class="more">\u2026 {"; ".join(notes)}</div>' if notes else ""
        parts.append(
            f'<div class="output" data-field="{name}">{name}:{more}<pre>{_e(shown)}</pre></div>'
        )
    if not parts:
        return ""
    return (
        f'<details data-key="{_e(step_id)}:logs"><summary>captured output</summary>'
        f"{''.join(parts)}</details>"
    )


def _gate(gate: GateRecord, *, base: str, now: datetime) -> str:
    parts = [f'<p class="prompt">{_e(gate.prompt)}</p>' if gate.prompt else ""]
    if gate.options:
        labels = ", ".join(_e(o.label) for o in gate.options)
        parts.append(f'<div class="meta">options: {labels}</div>')
    if gate.status == StepStatus.WAITING:
        deadline = (
            f", deadline {_time(gate.deadline_at)}"
            if gate.deadline_at is not None and gate.deadline_at > now
            else ", deadline passed"
            if gate.deadline_at is not None
            else ""
        )
        parts.append(
            f'<p class="waiting">Waiting for a decision: {len(gate.approvals)}/'
            f"{gate.min_approvals} approvals{deadline}. "
            f'<a href="{_e(base)}">Decide it in the inbox</a>.</p>'
        )
    fields: list[tuple[str, str]] = []
    if gate.decision is not None:
        fields.append(("Decision", f'<span class="decision">{_e(gate.decision)}</span>'))
        fields.append(("By", _e(gate.decided_by) if gate.decided_by else "-"))
        fields.append(("At", _time(gate.decided_at)))
    if gate.selections:
        fields.append(("Selections", _e(", ".join(gate.selections))))
    if gate.feedback:
        fields.append(("Feedback", f'<span class="feedback">{_e(gate.feedback)}</span>'))
    if fields:
        rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in fields)
        parts.append(f'<dl class="gate-decision">{rows}</dl>')
    if gate.min_approvals > 1 and gate.approvals:
        items = "".join(
            f"<li><strong>{_e(a.approver)}</strong> at {_time(a.approved_at)}"
            + (f" [{_e(', '.join(a.selections))}]" if a.selections else "")
            + (f": {_e(a.feedback)}" if a.feedback else "")
            + "</li>"
            for a in gate.approvals
        )
        parts.append(f'<ul class="approvals">{items}</ul>')
    return f'<div class="gate-info">{"".join(parts)}</div>'


def render_step(
    step: StepRecord,
    gate: GateRecord | None,
    *,
    base: str,
    now: datetime,
    output: CapturedOutput | None = None,
) -> str:
    """One step of the timeline (``output``: what its program wrote, if anything)."""
    kind = f"gate: {gate.gate_type}" if gate is not None else step.kind or str(step.role)
    meta = [f"started {_time(step.started_at)}"] if step.started_at else []
    if step.started_at is not None:
        running = "" if step.ended_at is not None else " so far"
        meta.append(f"took {_e(_duration(step.started_at, step.ended_at, now))}{running}")
    if step.iteration:
        meta.append(f"iteration {step.iteration}")
    if step.retry_count:
        meta.append(f"retries {step.retry_count}")
    markers = (
        '<ul class="markers">' + "".join(f"<li>{_e(m)}</li>" for m in step.markers_out) + "</ul>"
        if step.markers_out
        else ""
    )
    error = f'<p class="error">{_e(step.step_error)}</p>' if step.step_error else ""
    child = (
        f'<div class="meta">child run {run_link(step.child_run_id, base=base)}</div>'
        if step.child_run_id
        else ""
    )
    outputs = "".join(
        _output(name, value)
        for name, value in (
            ("result", step.result_text),
            ("context", step.context_out),
            ("output", step.structured_output),
        )
        if value and not (name == "result" and value == step.step_error)
    )
    status = str(step.status)
    return (
        f'<li class="step s-{_e(status)}" data-step="{_e(step.id)}" '
        f'data-name="{_e(step.step_name)}" data-status="{_e(status)}">'
        f'<h3><span class="name">{_e(step.step_name)}</span>'
        f'<span class="kind">{_e(kind)}</span><span class="badge">{_e(status)}</span></h3>'
        f'<div class="meta">{_SEP.join(meta)}</div>'
        f"{markers}{error}{gate_html(gate, base=base, now=now)}{child}{outputs}"
        f"{_inputs(step)}{render_logs(step.id, output)}</li>"
    )


def gate_html(gate: GateRecord | None, *, base: str, now: datetime) -> str:
    """A gate step's prompt, state and decision (empty for other steps)."""
    return "" if gate is None else _gate(gate, base=base, now=now)


def render_run(view: RunView, *, base: str, now: datetime | None = None) -> str:
    """The live part of the run page: the run's summary, then its steps as a timeline."""
    now = now or datetime.now(UTC)
    run = view.run
    shown_status = run.display_status(now)
    fields = [
        (
            "Workflow",
            _e(run.workflow_name + (f" ({run.workflow_title})" if run.workflow_title else "")),
        ),
        ("Status", f'<span class="badge s-{_e(shown_status)}">{_e(shown_status)}</span>'),
        ("Started", _time(run.started_at)),
        ("Ended", _time(run.ended_at)),
        ("Duration", _e(_duration(run.started_at, run.ended_at, now))),
    ]
    if run.inputs:
        inputs = ", ".join(
            f"<code>{_e(name)}</code> = <code>{_e(value)}</code>"
            for name, value in sorted(run.inputs.items())
        )
        fields.append(("Inputs", inputs))
    if run.dry_run:
        fields.append(("Dry run", "yes"))
    if run.parent_run_id:
        fields.append(("Parent run", run_link(run.parent_run_id, base=base)))
    if run.cancel_requested_by or run.cancel_reason:
        by = f" by {_e(run.cancel_requested_by)}" if run.cancel_requested_by else ""
        reason = f": {_e(run.cancel_reason)}" if run.cancel_reason else ""
        fields.append(("Cancel", f"requested{by}{reason}"))
    if run.error:
        fields.append(("Error", f'<span class="error">{_e(run.error)}</span>'))
    if run.result_summary:
        fields.append(("Result", f'<span class="summary">{_e(run.result_summary)}</span>'))
    summary = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in fields)
    steps = (
        '<ol class="timeline">'
        + "".join(
            render_step(
                step, view.gates.get(step.id), base=base, now=now, output=view.logs.get(step.id)
            )
            for step in view.steps
        )
        + "</ol>"
        if view.steps
        else '<p class="empty">No step has started yet.</p>'
    )
    return (
        f'<section id="run" data-run="{_e(run.id)}" data-status="{_e(run.status)}">'
        f"<h2>Run <code>{_e(run.id)}</code></h2><dl>{summary}</dl>"
        f"<h2>Steps ({len(view.steps)})</h2>{steps}</section>"
    )


def render_run_page(view: RunView, *, base: str, identity: Identity, csrf: str, nonce: str) -> str:
    """The whole run page, with the script that keeps it up to date while the run runs."""
    run = view.run
    live = "false" if run.is_terminal else "true"
    return _document(
        f"Run {run.id} — runkon inbox",
        f"{render_header(base=base, identity=identity, csrf=csrf)}<main>"
        f'<p><a href="{_e(base)}">\u2190 Back to the inbox</a></p>'
        f'<div id="run-live" data-run="{_e(run.id)}" data-live="{live}">'
        f"{render_run(view, base=base)}</div></main>"
        f'<script nonce="{_e(nonce)}">{_RUN_SCRIPT}</script>',
        base=base,
        css=RUN_CSS,
    )
