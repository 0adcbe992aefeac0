"""The web inbox without a framework: HTML rendering, CSRF protection, form handling and
the live-update feed. The framework adapters (``runkon.integrations.fastapi``) only map
routes onto these functions.

Everything user-provided (prompts, option labels, names, feedback, error messages) is
HTML-escaped when rendered; pages carry a Content-Security-Policy that allows only the
page's own nonce-tagged inline script.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

import anyio

from runkon.events import EventType
from runkon.integrations._auth import Identity, TokenAuthorizer, cookie_value
from runkon.integrations._schemas import (
    DecisionRequest,
    FeedbackRequest,
    GateOut,
    ReceiptOut,
    RunOut,
)
from runkon.integrations._service import ApiError, RunkonApi

COOKIE_NAME = TokenAuthorizer.cookie_name
PAGE_LIMIT = 200  # gates shown on one page
RECENT_RUNS = 10  # finished or running runs shown under the gates
SNAPSHOT_LIMIT = 500  # gates compared by the live feed's periodic check
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 1000
GATE_EVENTS = frozenset(
    {
        EventType.GATE_WAITING,
        EventType.GATE_APPROVAL_RECORDED,
        EventType.GATE_RESOLVED,
        EventType.GATE_TIMED_OUT,
        EventType.RUN_STARTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
    }
)

# --------------------------------------------------------------------------- security


class InboxCsrf:
    """CSRF tokens for the inbox's forms, bound to the browser's session.

    The token is an HMAC of the session (the ``runkon_token`` cookie, else the
    ``Authorization`` header, else the identity's name) under a server secret: a page
    from another site can neither read nor compute it. Give every process serving the
    same inbox the same ``secret``; by default each process draws its own, so forms
    rendered before a restart are refused (the user reloads the page).
    """

    def __init__(self, secret: bytes | str | None = None) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        self._secret = secret.encode() if isinstance(secret, str) else secret

    def token(self, headers: Mapping[str, str], identity: Identity) -> str:
        """The CSRF token to embed in forms for this session."""
        session = (
            cookie_value(headers.get("cookie", ""), COOKIE_NAME)
            or headers.get("authorization")
            or f"identity:{identity.name}"
        )
        digest = hmac.new(self._secret, b"runkon-csrf\0" + session.encode(), hashlib.sha256)
        return digest.hexdigest()

    def valid(self, headers: Mapping[str, str], identity: Identity, token: str | None) -> bool:
        """Whether ``token`` (from a submitted form) belongs to this session."""
        if not token:
            return False
        return hmac.compare_digest(self.token(headers, identity).encode(), token.encode())


def same_origin(headers: Mapping[str, str], origin: str, trusted: Sequence[str] = ()) -> bool:
    """Whether a state-changing request comes from a page of this site.

    ``origin`` is the site's own ``scheme://host[:port]``. The ``Origin`` header is
    checked when present, else the ``Referer``; a request with neither (an old
    browser, a script) passes this check and relies on the CSRF token alone.
    """
    allowed = {origin.rstrip("/"), *(o.rstrip("/") for o in trusted)}
    claimed = headers.get("origin")
    if claimed is not None:
        return claimed.rstrip("/") in allowed
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" in allowed
    return True


def parse_form(body: bytes) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body as name -> values.

    Raises:
        ApiError: 413 when the body is larger than the inbox accepts or has more than
            ``MAX_FORM_FIELDS`` fields, 400 when it is not valid UTF-8.
    """
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "form_too_large", "the form is too large; shorten the feedback")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_form", "the form is not UTF-8; resubmit it") from exc
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:  # more fields than max_num_fields
        raise ApiError(
            413, "form_too_large", f"the form has more than {MAX_FORM_FIELDS} fields; resubmit it"
        ) from exc


def security_headers(nonce: str | None = None) -> dict[str, str]:
    """Headers for every inbox HTML answer: a strict CSP, no framing, no caching."""
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; "
            f"script-src {script}; connect-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


_COOKIE_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]+")


def cookie_safe(token: str) -> bool:
    """Whether ``token`` can be stored in a cookie as it is."""
    return _COOKIE_SAFE.fullmatch(token) is not None


def session_cookie(token: str, *, secure: bool, max_age: int = 7 * 24 * 3600) -> str:
    """The ``Set-Cookie`` value that signs a browser in (HttpOnly, SameSite=Strict).

    Raises:
        ValueError: the token has characters a cookie cannot carry (see
            :func:`cookie_safe`).
    """
    if not cookie_safe(token):
        raise ValueError("this token cannot be kept in a cookie; use letters, digits, ._~+/=-")
    flags = f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict"
    return f"{COOKIE_NAME}={token}{flags}{'; Secure' if secure else ''}"


def clear_session_cookie() -> str:
    """The ``Set-Cookie`` value that signs a browser out."""
    return f"{COOKIE_NAME}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Notice:
    """What the inbox tells the user after a form was submitted."""

    kind: Literal["ok", "error"]
    text: str


ACTIONS = ("approve", "reject", "feedback")


async def decide(
    api: RunkonApi, headers: Mapping[str, str], form: Mapping[str, Sequence[str]]
) -> tuple[int, Notice]:
    """Carry out an inbox form's decision as the authenticated caller.

    Returns:
        The HTTP status and the notice to show: the receipt (accepted, approval
        recorded x/N) or the error (already decided by whom, invalid selection, not
        allowed, unknown gate). The approver is whoever the authorization hook says.
    """

    def field(name: str) -> str:
        values = form.get(name) or [""]
        return values[0].strip()

    action = field("action")
    run_id, gate = field("run_id"), field("gate")
    shown = field("gate_name") or gate  # for messages only; the decision names the step
    feedback = field("feedback") or None
    selections = [s for s in form.get("selections", []) if s] or None
    if action not in ACTIONS or not run_id or not gate:
        return 400, Notice("error", "The form is incomplete; reload the page and try again.")
    try:
        if action == "approve":
            receipt = await api.approve(
                headers, run_id, gate, DecisionRequest(feedback=feedback, selections=selections)
            )
        elif action == "reject":  # boxes ticked before choosing Reject do not matter
            receipt = await api.reject(headers, run_id, gate, DecisionRequest(feedback=feedback))
        else:
            if feedback is None:
                return 422, Notice("error", "Write some feedback before sending it.")
            receipt = await api.feedback(
                headers, run_id, gate, FeedbackRequest(feedback=feedback, selections=selections)
            )
    except ApiError as exc:
        return exc.status, Notice("error", _error_text(exc, shown))
    return 200, Notice("ok", _receipt_text(receipt, action, shown))


def _receipt_text(receipt: ReceiptOut, action: str, gate: str) -> str:
    if receipt.outcome == "already_approved":
        return (
            f"Your approval of gate {gate} of run {receipt.run_id} was already recorded; "
            f"nothing changed: {receipt.approvals}/{receipt.approvals_needed} approvals so far."
        )
    if receipt.outcome == "approval_recorded":
        return (
            f"Approval recorded for gate {gate} of run {receipt.run_id}: "
            f"{receipt.approvals}/{receipt.approvals_needed} approvals so far."
        )
    verb = {"approve": "Approved", "reject": "Rejected", "feedback": "Feedback sent to"}[action]
    return f"{verb} gate {gate} of run {receipt.run_id}: accepted."


def _error_text(exc: ApiError, gate: str) -> str:
    detail = exc.detail or {}
    if exc.error == "already_resolved":
        who = f" by {detail['decided_by']}" if detail.get("decided_by") else ""
        decision = detail.get("decision") or "decided"
        return f"Gate {gate} was already {decision}{who}; nothing changed."
    if exc.error == "deadline_passed":
        when = f" at {detail['deadline_at']}" if detail.get("deadline_at") else ""
        return f"Gate {gate} timed out: its deadline passed{when}; nothing changed."
    if exc.error in ("selection_required", "invalid_selection") and detail.get("allowed"):
        return _selection_text(exc.error, detail, gate)
    return f"{exc.message[:1].upper()}{exc.message[1:]}."


def _selection_text(error: str, detail: Mapping[str, Any], gate: str) -> str:
    """Why the ticked options were refused, and what to tick instead."""
    allowed = list(detail["allowed"])
    one = detail.get("select") == "one"
    choose = f"{'one' if one else 'one or more'} of: {', '.join(allowed)}"
    if error == "selection_required":
        return f"Gate {gate} needs a choice: tick {choose} before approving; nothing changed."
    if detail.get("earlier"):
        agreed = detail["earlier"][0]
        return (
            f"Invalid selection: gate {gate} takes exactly one option and earlier approvals "
            f"chose {agreed}; tick {agreed} too, or reject it; nothing changed."
        )
    unknown = [value for value in detail.get("invalid") or () if value not in allowed]
    if unknown:
        return (
            f"Invalid selection: {', '.join(unknown)} is not an option of gate {gate}; "
            f"choose {choose}; nothing changed."
        )
    return f"Invalid selection: gate {gate} takes exactly one option ({choose}); nothing changed."


# --------------------------------------------------------------------------- live feed


@dataclass(frozen=True, slots=True)
class _Snapshot:
    fetched_at: float
    version: str


class InboxFeed:
    """Tells open inbox pages when the waiting gates (or recent runs) changed.

    Two sources: this process's event bus (gates opened, decided or timed out, runs
    started or finished — for the runs this process drives), and, for runs other
    processes drive on the same database, a comparison of the waiting-gate set every
    ``interval`` seconds. The comparison is shared: however many pages are open, the
    store is read at most about once per interval.
    """

    def __init__(self, api: RunkonApi, *, interval: float = 1.0) -> None:
        self.api = api
        self.interval = interval
        self._lock = anyio.Lock()
        self._latest = _Snapshot(-1.0, "")

    async def version(self, *, newer_than: float | None = None) -> str:
        """A digest of the waiting gates and recent runs, read after ``newer_than`` (a
        ``time.monotonic()`` value; default: now)."""
        wanted = time.monotonic() if newer_than is None else newer_than
        async with self._lock:
            if self._latest.fetched_at >= wanted:
                return self._latest.version
            started = time.monotonic()
            engine = self.api.engine
            gates = await engine.waiting_gates(limit=SNAPSHOT_LIMIT)
            runs = await engine.store.list_runs(limit=RECENT_RUNS)
            state = repr(
                (
                    [(g.step_id, g.approvals) for g in gates],
                    [(r.id, r.display_status()) for r in runs],
                )
            )
            digest = hashlib.sha256(state.encode()).hexdigest()[:16]
            self._latest = _Snapshot(started, digest)
            return digest

    async def stream(
        self, since: str | None, *, keepalive: float = 15.0
    ) -> AsyncGenerator[str, None]:
        """SSE frames: ``event: changed`` (with the new version as ``id``) whenever the
        inbox differs from version ``since`` (what the page was rendered from); a comment
        line after ``keepalive`` idle seconds. Runs until the client goes away."""
        yield "retry: 2000\n\n"
        async with self.api.engine.events.subscribe(types=GATE_EVENTS, max_buffer=64) as events:
            last = since or await self.version()
            quiet_since = time.monotonic()
            fresh_after: float | None = None  # set when our own bus saw a change
            while True:
                if fresh_after is None:  # a reading at most one interval old will do
                    fresh_after = time.monotonic() - self.interval
                current = await self.version(newer_than=fresh_after)
                if current != last:
                    last, quiet_since = current, time.monotonic()
                    yield f"id: {current}\nevent: changed\ndata: {{}}\n\n"
                elif time.monotonic() - quiet_since >= keepalive:
                    quiet_since = time.monotonic()
                    yield ": keepalive\n\n"
                fresh_after = None
                if await events.receive(timeout=self.interval) is not None:
                    # let the rest of a burst land (a decision, then the run moving on)
                    await anyio.sleep(0.05)
                    while await events.receive(timeout=0) is not None:
                        pass
                    fresh_after = time.monotonic()


# --------------------------------------------------------------------------- rendering

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{display:flex;gap:1rem;align-items:center;padding:.7rem 1.2rem;background:#1d2330;color:#fff}
header h1{font-size:1.1rem;margin:0;flex:1}header form{margin:0}
main{max-width:60rem;margin:1rem auto;padding:0 1rem}
.notice{padding:.7rem 1rem;border-radius:6px;margin-bottom:1rem;font-weight:600}
.notice.ok{background:#dff3e4;color:#0f5323}.notice.error{background:#fbe1e1;color:#7c1010}
.gate{background:#fff;border:1px solid #d8dce3;border-radius:8px;padding:1rem;margin:.8rem 0}
.gate h2{margin:0 0 .3rem;font-size:1.05rem}.gate .type{color:#667;font-weight:400}
.prompt{white-space:pre-wrap;margin:.3rem 0 .6rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.4rem 0}
dt{color:#667}dd{margin:0}fieldset{border:1px solid #d8dce3;border-radius:6px;margin:.5rem 0}
textarea{width:100%;box-sizing:border-box;min-height:3.2rem;margin:.4rem 0}
button{padding:.35rem .9rem;border-radius:5px;border:1px solid #8891a0;background:#fff}
button.approve{background:#1f7a3a;color:#fff;border-color:#1f7a3a}
button.reject{background:#a52020;color:#fff;border-color:#a52020}
.empty{color:#667;font-style:italic}table{border-collapse:collapse;width:100%;background:#fff}
td,th{border-bottom:1px solid #e3e6eb;padding:.3rem .5rem;text-align:left}
.live{font-size:.85rem;color:#9aa3b2}.live.on{color:#7be08f}.overdue{color:#a52020}
"""

_SCRIPT = """
(() => {
  const base = document.body.dataset.base;
  const list = document.getElementById("live-list");
  const badge = document.getElementById("live");
  const left = (ms) => {
    if (ms <= 0) return "deadline passed";
    const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    const m = Math.floor(s % 3600 / 60);
    return "in " + (d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + s % 60 + "s");
  };
  const tick = () => {
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const ms = Date.parse(el.dataset.deadline) - Date.now();
      el.textContent = left(ms);
      el.classList.toggle("overdue", ms <= 0);
    }
  };
  const busy = (card) => card.contains(document.activeElement) ||
    [...card.querySelectorAll("textarea")].some((t) => t.value) ||
    [...card.querySelectorAll("input[type=checkbox]")].some((c) => c.checked);
  const refresh = async () => {
    const answer = await fetch(base + "/fragment", {credentials: "same-origin", cache: "no-store"});
    if (!answer.ok) return;
    const fresh = document.createElement("template");
    fresh.innerHTML = await answer.text();
    const focused = document.activeElement;
    for (const card of list.querySelectorAll("article.gate")) {
      if (!busy(card)) continue;  // keep what the user is typing or ticking
      const twin = fresh.content.querySelector(
        'article.gate[data-step="' + CSS.escape(card.dataset.step) + '"]');
      if (twin) twin.replaceWith(card);
    }
    list.replaceChildren(fresh.content);
    if (focused && list.contains(focused)) focused.focus();
    tick();
  };
  // after a decision the address is .../decide: reloading must not post it again
  if (location.pathname !== base) history.replaceState(null, "", base);
  tick();
  setInterval(tick, 1000);
  const since = encodeURIComponent(list.dataset.version);
  const stream = new EventSource(base + "/stream?since=" + since);
  const live = (on, text) => { badge.textContent = text; badge.classList.toggle("on", on); };
  stream.addEventListener("open", () => live(true, "\\u25cf live"));
  stream.addEventListener("error", () => live(false, "\\u25cb reconnecting"));
  stream.addEventListener("changed", refresh);
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def time_left(deadline_at: datetime, now: datetime) -> str:
    """``in 4m 12s``-style text (``deadline passed`` once it has)."""
    seconds = int((deadline_at - now).total_seconds())
    if seconds <= 0:
        return "deadline passed"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"in {days}d {hours}h"
    if hours:
        return f"in {hours}h {minutes}m"
    return f"in {minutes}m {secs}s"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_gate(gate: GateOut, *, base: str, csrf: str, now: datetime) -> str:
    """One inbox entry: what is asked, of which run, by when, and the decision form."""
    prompt = f'<p class="prompt">{_e(gate.prompt)}</p>' if gate.prompt else ""
    if gate.deadline_at is not None:
        iso = gate.deadline_at.astimezone(UTC).isoformat()
        deadline = (
            f'<time datetime="{_e(iso)}">{_e(_when(gate.deadline_at))}</time> '
            f'(<span data-deadline="{_e(iso)}">{_e(time_left(gate.deadline_at, now))}</span>)'
        )
    else:
        deadline = "none"
    kind = (
        f' <span class="type">{_e(gate.gate_type)}</span>'
        if gate.gate_type != gate.gate_name
        else ""
    )
    options = ""
    if gate.options:
        # one radio group per form: a select = one gate never has two options ticked
        kind = "radio" if gate.select == "one" else "checkbox"
        boxes = "".join(
            f'<label><input type="{kind}" name="selections" value="{_e(o.value)}"> '
            f"{_e(o.label)}</label> "
            for o in gate.options
        )
        legend = "Choose one" if gate.select == "one" else "Choose one or more"
        if gate.allow_none:
            legend += " (optional)"
        options = f"<fieldset><legend>{legend}</legend>{boxes}</fieldset>"
    # Feedback as the answer belongs to gates that ask for one (human_review); elsewhere
    # it only accompanies an approval or a rejection.
    answer = (
        '<button name="action" value="feedback">Send feedback</button> '
        if gate.gate_type == "human_review"
        else ""
    )
    placeholder = (
        "Feedback (optional; required for Send feedback)"
        if answer
        else "Feedback (optional; kept with the decision)"
    )
    return (
        f'<article class="gate" data-step="{_e(gate.step_id)}" data-run="{_e(gate.run_id)}">'
        f"<h2>{_e(gate.gate_name)}{kind}</h2>"
        f"{prompt}<dl>"
        f"<dt>Workflow</dt><dd>{_e(gate.workflow_name)}</dd>"
        f"<dt>Run</dt><dd>{run_link(gate.run_id, base=base)}</dd>"
        f'<dt>Approvals</dt><dd class="approvals">{gate.approvals}/{gate.min_approvals}</dd>'
        f"<dt>Deadline</dt><dd>{deadline}</dd></dl>"
        f'<form method="post" action="{_e(base)}/decide">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f'<input type="hidden" name="run_id" value="{_e(gate.run_id)}">'
        f'<input type="hidden" name="gate" value="{_e(gate.step_id)}">'
        f'<input type="hidden" name="gate_name" value="{_e(gate.gate_name)}">'
        f"{options}"
        f'<textarea name="feedback" aria-label="feedback" placeholder="{placeholder}">'
        f"</textarea>"
        f'<button class="approve" name="action" value="approve">Approve</button> '
        f"{answer}"
        f'<button class="reject" name="action" value="reject">Reject</button>'
        f"</form></article>"
    )


def render_list(
    gates: Sequence[GateOut],
    runs: Sequence[RunOut],
    *,
    base: str,
    csrf: str,
    now: datetime | None = None,
) -> str:
    """The live part of the page: the waiting gates, then the most recent runs."""
    now = now or datetime.now(UTC)
    if gates:
        cards = "".join(render_gate(g, base=base, csrf=csrf, now=now) for g in gates)
        more = (
            f'<p class="empty">Showing the first {PAGE_LIMIT} gates.</p>'
            if len(gates) >= PAGE_LIMIT
            else ""
        )
        section = f"<h2>Waiting gates ({len(gates)})</h2>{cards}{more}"
    else:
        section = '<h2>Waiting gates (0)</h2><p class="empty">No gate is waiting.</p>'
    rows = "".join(
        f'<tr data-run="{_e(r.id)}" data-status="{_e(r.status)}"><td>{run_link(r.id, base=base)}'
        f'</td><td>{_e(r.workflow_name)}</td><td class="status">'
        f"{_e('stalled' if r.stalled else r.status)}</td>"
        f"<td>{_e(_when(r.started_at))}</td></tr>"
        for r in runs
    )
    table = (
        "<h2>Recent runs</h2><table><thead><tr><th>Run</th><th>Workflow</th><th>Status</th>"
        f"<th>Started</th></tr></thead><tbody>{rows}</tbody></table>"
        if runs
        else ""
    )
    return f'<section id="gates">{section}</section><section id="runs">{table}</section>'


def render_page(
    gates: Sequence[GateOut],
    runs: Sequence[RunOut],
    *,
    base: str,
    identity: Identity,
    csrf: str,
    version: str,
    nonce: str,
    notice: Notice | None = None,
) -> str:
    """The whole inbox page, with the script that keeps it up to date."""
    banner = (
        f'<div class="notice {notice.kind}" id="notice" role="status">{_e(notice.text)}</div>'
        if notice
        else ""
    )
    return _document(
        "runkon inbox",
        f"{render_header(base=base, identity=identity, csrf=csrf)}<main>{banner}"
        f'<div id="live-list" data-version="{_e(version)}">'
        f"{render_list(gates, runs, base=base, csrf=csrf)}</div></main>"
        f'<script nonce="{_e(nonce)}">{_SCRIPT}</script>',
        base=base,
    )


def render_header(*, base: str, identity: Identity, csrf: str, title: str = "runkon inbox") -> str:
    """The bar on top of a signed-in page: the title, the live badge (``#live``), who
    is signed in and the sign-out button."""
    return (
        f'<header><h1>{_e(title)}</h1><span id="live" class="live">\u25cb connecting</span>'
        f"<span>signed in as <strong>{_e(identity.name)}</strong></span>"
        f'<form method="post" action="{_e(base)}/sign-out">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        f"<button>Sign out</button></form></header>"
    )


def run_link(run_id: str, *, base: str) -> str:
    """The run's id as a link to its run page (``{base}/runs/{run_id}``)."""
    href = f"{base}/runs/{quote(run_id, safe='')}"
    return f'<a class="run-link" href="{_e(href)}"><code>{_e(run_id)}</code></a>'


def return_path(base: str, wanted: str | None) -> str:
    """Where a sign-in leads: ``wanted`` when it is a run page of this inbox
    (``{base}/runs/{id}``), else the inbox itself, so a sign-in form never sends anyone
    to another site (no open redirect)."""
    if wanted and re.fullmatch(re.escape(base) + r"/runs/[A-Za-z0-9][A-Za-z0-9._~-]*", wanted):
        return wanted
    return base


def render_sign_in(
    *, base: str, error: str | None = None, token: str | None = None, then: str | None = None
) -> str:
    """The sign-in form: paste the server's token once; a cookie keeps you signed in.

    With ``token`` (the ``?token=`` of the link ``runkon serve`` prints) the form holds
    it and asks for one click: the cookie is set only by that same-site POST, never by a
    GET, so another site cannot sign a visitor in under its own token (login CSRF).
    ``then`` is the page to go back to once signed in (see :func:`return_path`).
    """
    problem = f'<div class="notice error" role="alert">{_e(error)}</div>' if error else ""
    back = return_path(base, then)
    then_field = f'<input type="hidden" name="then" value="{_e(back)}">' if back != base else ""
    if token is not None:
        return _document(
            "Sign in — runkon inbox",
            "<header><h1>runkon inbox</h1></header><main>"
            f"{problem}<h2>Sign in</h2>"
            f'<form method="post" action="{_e(base)}/sign-in">'
            f'<input type="hidden" name="token" value="{_e(token)}">{then_field}'
            '<button class="approve" id="sign-in" autofocus>Sign in to this inbox</button>'
            '</form><p class="empty">Only continue if you opened the link '
            "<code>runkon serve</code> printed.</p></main>",
            base=base,
        )
    return _document(
        "Sign in — runkon inbox",
        "<header><h1>runkon inbox</h1></header><main>"
        f"{problem}<h2>Sign in</h2>"
        f'<form method="post" action="{_e(base)}/sign-in">{then_field}'
        '<label>Token <input type="password" name="token" autocomplete="current-password" '
        'required autofocus></label> <button class="approve">Sign in</button></form>'
        '<p class="empty">The token is the one <code>runkon serve</code> printed '
        "(or <code>$RUNKON_TOKEN</code>).</p></main>",
        base=base,
    )


def render_problem(*, base: str, title: str, text: str) -> str:
    """A page for a refused request (e.g. a failed CSRF check)."""
    return _document(
        f"{title} — runkon inbox",
        f"<header><h1>runkon inbox</h1></header><main>"
        f'<div class="notice error" role="alert">{_e(text)}</div>'
        f'<p><a href="{_e(base)}">Back to the inbox</a></p></main>',
        base=base,
    )


def _document(title: str, body: str, *, base: str, css: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}{css}</style></head>"
        f'<body data-base="{_e(base)}">{body}</body></html>'
    )


def new_nonce() -> str:
    """A fresh nonce for a page's inline script."""
    return secrets.token_urlsafe(16)
