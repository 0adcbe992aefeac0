"""The SIGKILL chaos campaign (issue 14), shared by ``python -m benchmarks.chaos`` (the long
campaign) and ``tests/chaos`` (a bounded version in every test run).

A trial runs the workflow ``chaos`` (below: every node kind) on a fresh SQLite file in a
worker process (``_chaos_worker.py``), SIGKILLs the worker 1-3 times at random points and
resumes the run each time in a NEW worker process, until the run ends. Meanwhile the
campaign approves the run's gate from yet another process (``python -m runkon.cli
approve``); a second gate is decided by its timeout.

Every ``call`` runs an executable and every ``script`` a shell command; each execution
appends a line to the trial's log before doing anything else. After the last worker
exits the campaign checks, reading the database itself (plain ``sqlite3``):

- **duplicates**: no completed step ran again. Steps are identified across runs by
  their *logical* place: the step's resume key within its run, and for a child run the
  logical place of the step that started it plus the child's inputs and iteration (so
  a child run started twice for one ``call workflow`` is caught). For each logical step,
  no row may come after its first completed row, and the executions in the log may not
  outnumber the rows up to it (each execution needs a row of its own; an interrupted
  one is closed and run again in a new row);
- **stuck**: every run, children included, reached a final state (and the top-level
  run completed: the workflow cannot fail on its own);
- **gaps**: each run's event sequence numbers are exactly 1..n;
- **integrity**: ``PRAGMA integrity_check`` answers ``ok``.

A trial's randomness comes from its seed alone (``random_plan(seed, index)``): a failing
trial is reproduced with ``python -m benchmarks.chaos --seed SEED --first INDEX
--trials 1``. Directed trials (``DIRECTED``) kill at chosen places.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from runkon.persistence import ReceiptOutcome, SqliteStore

WORKER = Path(__file__).with_name("_chaos_worker.py")
PHASE_TIMEOUT = 90.0  # seconds a worker may take before the trial counts as stuck
EXTRA_RESUMES = 3  # resumes allowed beyond the planned kills (e.g. after a lost lease)
POLL = 0.01

# ----------------------------------------------------------------------------- workflows

FLOWS = {
    "chaos": """
workflow chaos {
  call plan
  script prepare { run = "echo script {{workflow_run_id}} prepare >> \\"$CHAOS_LOG\\"; sleep 0.05" }
  parallel {
    fail_fast = false
    call build
    call flaky { retries = 2 }
    call lint
  }
  call workflow stage { inputs { tag = "stage" } }
  foreach parts {
    over         = chaos_items
    max_parallel = 2
    workflow     = part
    inputs       = { item = "{{item.id}}" }
  }
  do {
    max_iterations = 4
    call review
    if review.needs_changes { call fix }
    unless review.needs_changes { call polish }
  } while review.needs_changes
  call poll
  while poll.again {
    max_iterations = 4
    call poll
  }
  gate approval { type = human_approval  prompt = "ship it?"  timeout = "10m" }
  gate cooldown { type = human_approval  timeout = "300ms"  on_timeout = continue }
  call ship
  always {
    call cleanup
    script stamp { run = "echo script {{workflow_run_id}} stamp >> \\"$CHAOS_LOG\\"; sleep 0.05" }
  }
}
""",
    "stage": """
workflow stage {
  inputs { tag required }
  call stage-a
  call workflow deep { inputs { tag = "{{tag}}-deep" } }
  script stage-note { run = "echo script {{workflow_run_id}} stage-note >> \\"$CHAOS_LOG\\"" }
  call stage-b
}
""",
    "deep": """
workflow deep {
  inputs { tag required }
  call deep-a
  call deep-b
}
""",
    "part": """
workflow part {
  inputs { item required }
  call check
}
""",
}

CALLS = (
    *("plan", "build", "flaky", "lint", "stage-a", "deep-a", "deep-b", "stage-b", "check"),
    *("review", "fix", "polish", "poll", "ship", "cleanup"),
)
SCRIPTS = ("prepare", "stamp", "stage-note")
APPROVAL_GATE = "approval"

# One program for every call: it logs its execution first, works a little (longer for
# the steps named in $CHAOS_SLOW), then answers: `flaky` fails its first attempt,
# `review` needs changes in iteration 0, `poll` asks for more in iteration 0.
STEP_PROGRAM = r"""#!/bin/sh
echo "call $RUNKON_RUN_ID $RUNKON_STEP_ID $RUNKON_STEP $RUNKON_ITERATION $RUNKON_ATTEMPT" \
  >> "$CHAOS_LOG"
case " $CHAOS_SLOW " in
  *" $RUNKON_STEP "*) sleep "$CHAOS_SLOW_SECONDS" ;;
  *) sleep 0.02 ;;
esac
markers='[]'
case "$RUNKON_STEP" in
  flaky) if [ "$RUNKON_ATTEMPT" = 0 ]; then echo "flaky fails its first attempt" >&2; exit 1; fi ;;
  review) if [ "$RUNKON_ITERATION" -lt 1 ]; then markers='["needs_changes"]'; fi ;;
  poll) if [ "$RUNKON_ITERATION" -lt 1 ]; then markers='["again"]'; fi ;;
esac
printf '<<<FLOW_OUTPUT>>>\n{"markers": %s, "context": "%s done"}\n<<<END_FLOW_OUTPUT>>>\n' \
  "$markers" "$RUNKON_STEP"
"""


def prepare(root: Path) -> tuple[Path, Path]:
    """Write the workflows and the step programs under ``root``; return their dirs."""
    flows, actions = root / "flows", root / "actions"
    flows.mkdir(parents=True, exist_ok=True)
    actions.mkdir(parents=True, exist_ok=True)
    for name, text in FLOWS.items():
        (flows / f"{name}.wf").write_text(text.lstrip())
    for name in CALLS:
        program = actions / name
        program.write_text(STEP_PROGRAM)
        program.chmod(0o755)
    return flows, actions


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Kill:
    """Where a worker is killed.

    ``how``:
    - ``lines``: once the log has ``amount`` more lines than when the worker started;
    - ``events``: once the database has ``amount`` more events than then;
    - ``time``: ``delay`` seconds after the worker got its order (from 0: while it
      opens the store, migrates a new file, creates or claims the run);
    - ``step``: once step ``step`` has started ``amount`` more times (in the log);
    - ``gate``: once the approval gate waits.

    then (except ``time``) after a further ``delay`` seconds.
    """

    how: str
    amount: int = 0
    delay: float = 0.0
    step: str = ""

    def describe(self) -> str:
        if self.how == "time":
            return f"time {self.delay:.2f}s"
        if self.how == "gate":
            return f"gate waiting +{self.delay:.2f}s"
        if self.how == "step":
            return f"step {self.step} x{self.amount} +{self.delay:.2f}s"
        return f"{self.how} +{self.amount} +{self.delay:.2f}s"


@dataclass(frozen=True)
class TrialPlan:
    """What a trial does: its kills, its slow steps, and how the gate is approved."""

    name: str
    kills: tuple[Kill, ...]
    slow: tuple[str, ...] = ()
    slow_seconds: float = 0.5
    approve_delay: float = 0.0
    approve_while_down: bool = False  # approve after each kill, before resuming
    approve_with_cli: bool = False  # `runkon approve` (else the store API, in this process)

    def describe(self) -> str:
        kills = ", ".join(kill.describe() for kill in self.kills)
        slow = f" slow={','.join(self.slow)}" if self.slow else ""
        how = "runkon approve" if self.approve_with_cli else "store"
        when = "while down" if self.approve_while_down else f"+{self.approve_delay:.2f}s"
        return f"{self.name}: kills [{kills}]{slow}, approved by {how} {when}"


def random_plan(seed: int, index: int) -> TrialPlan:
    """Trial ``index`` of the campaign seeded ``seed`` (the same plan every time)."""
    rng = random.Random(f"{seed}:{index}")
    kills = []
    for _ in range(rng.randint(1, 3)):
        how = rng.choices(["lines", "events", "time", "step"], weights=[4, 3, 2, 2])[0]
        if how == "lines":
            kills.append(Kill("lines", rng.randint(1, 14), rng.uniform(0, 0.15)))
        elif how == "events":
            kills.append(Kill("events", rng.randint(1, 60)))
        elif how == "time":
            kills.append(Kill("time", delay=rng.uniform(0.0, 5.0)))
        else:
            step = rng.choice(CALLS)
            kills.append(Kill("step", 1, rng.uniform(0, 0.1), step=step))
    slow = tuple(rng.sample(CALLS, rng.randint(0, 3)))
    return TrialPlan(
        name=f"random seed={seed} index={index}",
        kills=tuple(kills),
        slow=slow,
        slow_seconds=rng.uniform(0.2, 0.8),
        approve_delay=rng.uniform(0, 1.5),
        approve_while_down=rng.random() < 0.2,
        approve_with_cli=rng.random() < 0.1,
    )


DIRECTED = {
    # issue 14.1: killed in the grandchild, resumed, killed again in it, resumed
    "nested-child-killed-twice": TrialPlan(
        name="directed nested-child-killed-twice",
        kills=(Kill("step", 1, 0.05, step="deep-a"), Kill("step", 1, 0.05, step="deep-b")),
        slow=("deep-a", "deep-b"),
        slow_seconds=1.0,
    ),
    # killed while the gate waits; approved by another process while no engine runs
    "gate-waiting": TrialPlan(
        name="directed gate-waiting",
        kills=(Kill("gate", delay=0.05),),
        approve_while_down=True,
        approve_with_cli=True,
    ),
    # killed during the retry of a failed parallel call
    "parallel-retry": TrialPlan(
        name="directed parallel-retry",
        kills=(Kill("step", 2, 0.05, step="flaky"),),
        slow=("flaky",),
        slow_seconds=1.0,
    ),
}


# ----------------------------------------------------------------------------- results


@dataclass
class TrialResult:
    """What a trial did and what its checks found (empty lists: all held)."""

    plan: TrialPlan
    directory: Path
    kills: int = 0
    workers: int = 0
    lease_losses: int = 0
    duration: float = 0.0
    duplicates: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    runs: int = 0
    executions: int = 0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.stuck or self.gaps or self.integrity or self.errors)

    def report(self) -> str:
        lines = [
            f"{self.plan.describe()}",
            f"  {self.kills} kills, {self.workers} workers, {self.runs} runs, "
            f"{self.executions} executions, {self.duration:.1f}s, in {self.directory}",
        ]
        for label, found in (
            ("duplicate", self.duplicates),
            ("stuck", self.stuck),
            ("gap", self.gaps),
            ("integrity", self.integrity),
            ("error", self.errors),
        ):
            lines.extend(f"  {label}: {item}" for item in found)
        return "\n".join(lines)


@dataclass
class Figures:
    """The campaign's totals."""

    trials: int = 0
    kills: int = 0
    duplicates: int = 0
    stuck: int = 0
    gaps: int = 0
    integrity_failures: int = 0
    errors: int = 0
    failed_trials: int = 0
    executions: int = 0
    lease_losses: int = 0
    duration: float = 0.0

    def add(self, result: TrialResult) -> None:
        self.trials += 1
        self.kills += result.kills
        self.duplicates += len(result.duplicates)
        self.stuck += len(result.stuck)
        self.gaps += len(result.gaps)
        self.integrity_failures += len(result.integrity)
        self.errors += len(result.errors)
        self.failed_trials += not result.ok
        self.executions += result.executions
        self.lease_losses += result.lease_losses
        self.duration += result.duration

    def summary(self) -> str:
        return (
            f"trials {self.trials}, kills {self.kills}, duplicates {self.duplicates}, "
            f"stuck {self.stuck}, event gaps {self.gaps}, integrity failures "
            f"{self.integrity_failures}, errors {self.errors}, failed trials "
            f"{self.failed_trials}, step executions {self.executions}, lease losses "
            f"{self.lease_losses}, "
            f"duration {self.duration:.0f}s"
        )


# ----------------------------------------------------------------------------- reading


def _connect(db: Path) -> sqlite3.Connection | None:
    """A read-only connection, or None while the database does not exist yet."""
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        conn.execute("PRAGMA query_only = 1")
        return conn
    except sqlite3.Error:
        return None


def _query(db: Path, sql: str, params: Iterable[object] = ()) -> list[tuple[object, ...]]:
    """Rows of ``sql``, or none while the database or its tables do not exist yet."""
    conn = _connect(db)
    if conn is None:
        return []
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _log_lines(log: Path) -> list[str]:
    try:
        return log.read_text().splitlines()
    except FileNotFoundError:
        return []


def _top_run(db: Path) -> tuple[str, str] | None:
    rows = _query(db, "SELECT id, status FROM workflow_runs WHERE parent_run_id IS NULL")
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


# ----------------------------------------------------------------------------- a trial


class Workers:
    """Worker processes started ahead: each imports runkon while it waits for its order,
    so a resume right after a kill (or the next trial) does not wait for Python to
    start. Plain ``subprocess`` (no event loop owns them): one pool serves every trial.
    ``close()`` ends the one left waiting."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._spare: subprocess.Popen[bytes] | None = None

    def take(self) -> subprocess.Popen[bytes]:
        """A started worker waiting for its order (and another started behind it)."""
        worker = self._spare or self._spawn()
        self._spare = self._spawn()
        return worker

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [self.python, str(WORKER), "standby"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self._spare is not None:
            _reap(self._spare, kill=True)
            self._spare = None


def _reap(worker: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if kill and worker.poll() is None:
        worker.kill()
    worker.wait()
    if worker.stdin is not None:
        worker.stdin.close()


class Trial:
    """One trial in ``directory`` (created; its database, log and workers' stderr)."""

    def __init__(
        self, plan: TrialPlan, directory: Path, flows: Path, actions: Path, workers: Workers
    ) -> None:
        self.plan = plan
        self.dir = directory
        self.db = directory / "chaos.db"
        self.log = directory / "steps.log"
        self.flows = flows
        self.actions = actions
        self.workers = workers
        self.python = workers.python
        self.result = TrialResult(plan, directory)
        self.approved = False
        self.kills_left = list(plan.kills)
        self.steps_env = {
            "CHAOS_LOG": str(self.log),
            "CHAOS_SLOW": " ".join(plan.slow),
            "CHAOS_SLOW_SECONDS": f"{plan.slow_seconds:.3f}",
        }

    async def run(self) -> TrialResult:
        began = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._approver)
                await self._phases()
                tg.cancel_scope.cancel()
        finally:
            self.result.duration = time.monotonic() - began
        if not self.result.errors:
            check(self.db, self.log, self.result)
        return self.result

    async def _phases(self) -> None:
        kills = self.kills_left
        extra = 0
        while True:
            top = _top_run(self.db)
            if top is not None and top[1] in ("completed", "failed", "cancelled"):
                return
            kill = kills.pop(0) if kills else None
            outcome = await self._worker(top[0] if top else None, kill)
            if outcome == "killed":
                self.result.kills += 1
                if self.plan.approve_while_down:
                    await self._approve_once()
                continue
            if outcome.startswith("hung"):
                self.result.stuck.append(
                    f"a worker did not finish within {PHASE_TIMEOUT:.0f}s and was killed: "
                    + outcome
                )
                return
            if outcome == "lease lost":
                self.result.lease_losses += 1
            elif outcome != "ended":
                self.result.errors.append(outcome)
                return
            extra += kill is None
            if extra > EXTRA_RESUMES:
                self.result.errors.append(f"the run did not end after {extra} resumes")
                return

    async def _worker(self, run_id: str | None, kill: Kill | None) -> str:
        """Run one worker (start or resume) until it exits or ``kill`` strikes:
        "killed", "ended", "lease lost", "hung" or an error description."""
        self.result.workers += 1
        number = self.result.workers
        mode = "resume" if run_id else "start"
        err_path = self.dir / f"worker-{number}.err"
        order = {
            "mode": mode,
            "run_id": run_id,
            "db": str(self.db),
            "flows": str(self.flows),
            "actions": str(self.actions),
            "stderr": str(err_path),
            "env": self.steps_env,
        }
        lines_before = len(_log_lines(self.log))
        events_before = _event_count(self.db)
        killed = False
        worker = self.workers.take()
        try:
            assert worker.stdin is not None
            try:
                worker.stdin.write(json.dumps(order).encode() + b"\n")
                worker.stdin.close()
            except BrokenPipeError:
                pass  # it died already: its exit status tells
            with anyio.move_on_after(PHASE_TIMEOUT) as timer:
                async with anyio.create_task_group() as tg:
                    if kill is not None:

                        async def strike() -> None:
                            nonlocal killed
                            assert kill is not None
                            await self._wait_for(kill, lines_before, events_before)
                            if worker.poll() is None:
                                worker.send_signal(signal.SIGKILL)
                                killed = True

                        tg.start_soon(strike)
                    while worker.poll() is None:  # noqa: ASYNC110 - a plain subprocess
                        await anyio.sleep(POLL)
                    tg.cancel_scope.cancel()
            if timer.cancelled_caught and worker.poll() is None:
                worker.send_signal(signal.SIGUSR1)  # its threads' stacks into its stderr
                await anyio.sleep(2)
        finally:
            _reap(worker, kill=True)
        if timer.cancelled_caught:
            return f"hung (its stacks and log are in {err_path})"
        if killed and worker.returncode == -signal.SIGKILL:
            return "killed"
        if worker.returncode == 0:
            return "ended"
        if worker.returncode == 3:
            return "lease lost"
        stderr = err_path.read_text(errors="replace") if err_path.exists() else ""
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return f"worker {number} ({mode}) exited with {worker.returncode}: {tail}"

    async def _wait_for(self, kill: Kill, lines_before: int, events_before: int) -> None:
        if kill.how == "time":
            await anyio.sleep(kill.delay)
            return
        ready: Callable[[], bool]
        if kill.how == "lines":
            ready = lambda: len(_log_lines(self.log)) >= lines_before + kill.amount  # noqa: E731
        elif kill.how == "events":
            ready = lambda: _event_count(self.db) >= events_before + kill.amount  # noqa: E731
        elif kill.how == "step":
            ready = lambda: _starts(self.log, kill.step, lines_before) >= kill.amount  # noqa: E731
        elif kill.how == "gate":
            ready = lambda: bool(_waiting_approval(self.db))  # noqa: E731
        else:
            raise ValueError(f"unknown kill {kill.how!r}")
        interval = POLL if kill.how in ("lines", "step") else 5 * POLL
        # another process's log and database: nothing to await but time
        while not ready():  # noqa: ASYNC110
            await anyio.sleep(interval)
        if kill.delay:
            await anyio.sleep(kill.delay)

    # ------------------------------------------------------------------ the approver

    async def _approver(self) -> None:
        """Approve the run's gate from another process once it has waited a while (with
        ``approve_while_down``: only once no kill is left, else it is approved after
        each kill)."""
        seen: float | None = None
        while not self.approved:
            await anyio.sleep(0.05)
            if not _waiting_approval(self.db):
                seen = None
                continue
            seen = seen if seen is not None else time.monotonic()
            waited = time.monotonic() - seen
            # A kill planned on a step that already completed never strikes: do not wait
            # for it forever (that hung trials with a gate nobody approved).
            if self.plan.approve_while_down and self.kills_left and waited < KILL_GRACE:
                continue
            if waited >= self.plan.approve_delay:
                await self._approve_once()
                seen = None

    async def _approve_once(self) -> None:
        """Approve the gate if it waits (``runkon approve``, or the store API in this
        process: either way not the worker's); remember it once accepted."""
        top = _top_run(self.db)
        waiting = _waiting_approval(self.db)
        if self.approved or top is None or not waiting:
            return
        if self.plan.approve_with_cli:
            argv = [self.python, "-m", "runkon.cli", "approve", top[0], APPROVAL_GATE]
            argv += ["--db", str(self.db), "--by", "chaos-approver", "--feedback", "go"]
            done = await anyio.run_process(argv, check=False, cwd=self.dir)
            if done.returncode == 0:
                self.approved = True
            elif done.returncode != 1:  # 1: already decided or no longer waiting
                self.result.errors.append(
                    f"runkon approve exited with {done.returncode}: {done.stderr.decode().strip()}"
                )
                self.approved = True  # do not try again
            return
        async with SqliteStore(self.db) as store:
            receipt = await store.approve_gate(waiting[0], by="chaos-approver", feedback="go")
        if receipt.outcome == ReceiptOutcome.ACCEPTED:
            self.approved = True


KILL_GRACE = 5.0
"""Seconds an ``approve_while_down`` trial's gate waits for a planned kill before the
approver decides it with the worker up."""


def _event_count(db: Path) -> int:
    rows = _query(db, "SELECT COUNT(*) FROM runkon_events")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def _waiting_approval(db: Path) -> list[str]:
    """Step ids of the approval gate's rows that wait."""
    rows = _query(
        db,
        "SELECT id FROM workflow_run_steps WHERE step_name = ? AND status = 'waiting'",
        [APPROVAL_GATE],
    )
    return [str(row[0]) for row in rows]


def _starts(log: Path, step: str, after: int) -> int:
    return sum(
        1
        for line in _log_lines(log)[after:]
        if line.startswith("call ") and line.split(" ")[3:4] == [step]
    )


# ----------------------------------------------------------------------------- checks


def check(db: Path, log: Path, result: TrialResult) -> None:
    """Check the invariants of a finished trial into ``result`` (see the module doc)."""
    conn = _connect(db)
    if conn is None:
        result.errors.append(f"no database at {db}")
        return
    try:
        _check(conn, _log_lines(log), result)
    except sqlite3.DatabaseError as exc:  # e.g. "database disk image is malformed"
        result.integrity.append(f"the database cannot be read: {exc}")
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, log: list[str], result: TrialResult) -> None:
    integrity = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        result.integrity.extend(integrity)

    runs = {
        str(row[0]): row[1:]
        for row in conn.execute(
            "SELECT id, status, parent_run_id, parent_step_id, iteration, inputs, "
            "workflow_name FROM workflow_runs"
        )
    }
    result.runs = len(runs)
    steps = {
        str(row[1]): row
        for row in conn.execute(
            "SELECT rowid, id, workflow_run_id, step_name, resume_key, status "
            "FROM workflow_run_steps ORDER BY rowid"
        )
    }

    # every run ended; the top-level run completed
    for run_id, (status, parent, *_rest, workflow) in runs.items():
        if status not in ("completed", "failed", "cancelled"):
            result.stuck.append(f"run {run_id} ({workflow}) is {status}")
        elif parent is None and status != "completed":
            result.stuck.append(f"top-level run {run_id} ended {status}, not completed")

    # events without gaps
    seqs: dict[str, list[int]] = defaultdict(list)
    for run_id, seq in conn.execute("SELECT run_id, seq FROM runkon_events ORDER BY run_id, seq"):
        seqs[str(run_id)].append(int(seq))
    for run_id in runs:
        got = seqs.get(run_id, [])
        if got != list(range(1, len(got) + 1)):
            missing = sorted(set(range(1, max(got, default=0) + 1)) - set(got))
            result.gaps.append(f"run {run_id}: events {got[:3]}..{got[-3:]} miss {missing[:10]}")

    # no completed step executed twice
    places: dict[str, str] = {}

    def place(run_id: str) -> str:
        """The run's logical place: the same for every run started for one child call."""
        if run_id not in places:
            _status, parent, parent_step, iteration, inputs, _workflow = runs[run_id]
            if parent is None:
                places[run_id] = "top"
            else:
                step = steps.get(str(parent_step))
                key = step[4] if step is not None else f"?{parent_step}"
                places[run_id] = f"{place(str(parent))}/{key}#{iteration}{inputs}"
        return places[run_id]

    rows: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
    for rowid, step_id, run_id, _name, key, status in steps.values():
        rows[(place(str(run_id)), str(key))].append((int(rowid), str(step_id), str(status)))
    by_name = {(str(run_id), str(name)): str(key) for _, _, run_id, name, key, _ in steps.values()}
    executions: Counter[tuple[str, str]] = Counter()
    for line in log:
        parts = line.split(" ")
        if parts[0] == "call" and len(parts) >= 6 and parts[2] in steps:
            step = steps[parts[2]]
            executions[(place(str(step[2])), str(step[4]))] += 1
        elif parts[0] == "script" and len(parts) >= 3 and (parts[1], parts[2]) in by_name:
            executions[(place(parts[1]), by_name[(parts[1], parts[2])])] += 1
        else:
            result.errors.append(f"log line matches no step row: {line!r}")
    result.executions = sum(executions.values())
    for where, attempts in rows.items():
        statuses = [status for _, _, status in attempts]
        done = statuses.index("completed") + 1 if "completed" in statuses else len(statuses)
        for _, step_id, status in attempts[done:]:
            result.duplicates.append(
                f"{where[0]} {where[1]}: row {step_id} ({status}) after the step completed"
            )
        if executions[where] > done:
            result.duplicates.append(
                f"{where[0]} {where[1]}: executed {executions[where]} times for {done} "
                f"row(s) up to its completion"
            )


# ----------------------------------------------------------------------------- running


async def run_trial(
    plan: TrialPlan, directory: Path, flows: Path, actions: Path, workers: Workers
) -> TrialResult:
    """Run one trial in ``directory`` (a new directory) and check it."""
    return await Trial(plan, directory, flows, actions, workers).run()


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
