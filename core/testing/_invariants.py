"""Trace checkers: the scheduler's invariants, checked over what a run recorded.

:func:`check_trace` reads one of four kinds of record and checks every
invariant that record carries enough to check, reporting *every* broken one
at once:

* a :class:`~wavecrest.core.Simulation` (or its ``trace``): every input the
  scheduler got and every command it gave, permits included;
* the events an actor run handed ``on_event`` (several runs may be mixed;
  they are told apart by run id, and a resume by its ``run.started``);
* the path of a persisted run's JSON-lines log (its snapshot beside it gives
  the workflow, the concurrency limit and the mode).

The invariants, by name:

``dependencies``
    An attempt starts only after every dependency of its node, and of each
    enclosing control node, succeeded in the same iteration.
``waves``
    In waves mode no node starts before every node of the earlier waves of
    its frame (and of each enclosing control node's frame) settled.
``concurrency``
    No more attempts run at once than ``max_concurrency``.
``permits``
    Every running attempt holds exactly one permit: in a simulation, the
    permits held equal the attempts running whenever an input arrives and
    held plus requested never exceed the cap; from events, the ``running``
    count each ``node.started`` reports fits the attempts the events show in
    flight.
``fifo``
    Permits are granted as a FIFO semaphore of ``max_concurrency`` permits
    grants them: only to requests, in request order, and never leaving a
    permit free while a request waits (simulations: the record of requests
    and grants is theirs alone).
``released``
    Once the run is over no permit is held or requested.
``ended``
    Every attempt that started ends exactly once, before the run is over.
``attempts``
    A path's primary attempts are numbered 1, 2, 3... and are at most its
    ``retry max`` + 1.
``fallback``
    A fallback runs at most once per path, after its primary's attempts, and
    no primary attempt follows it.
``fail-fast``
    No attempt starts after a failure stopped the run.
``resume``
    No path that succeeded before a resume starts again.

Internally each record is first read into *steps*, small tuples in order;
each invariant is a function over the steps of one run.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import WavecrestError
from .._events import (
    AbandonTask,
    CancelRun,
    CheckpointDecided,
    Emit,
    FailNode,
    Finished,
    NodeCancelled,
    NodeFailed,
    NodeResult,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    RetryNode,
    RunEvent,
    RunFallback,
    RunFinished,
    RunStarted,
    StartTask,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)
from .._graph import Plan, PlannedNode
from .._model import TaskNode
from .._sim import Simulation
from ._load import WorkflowLike, load
from ._runlog import read_run_log

__all__ = ["INVARIANTS", "InvariantViolation", "Violation", "check_trace", "find_violations"]

#: Every invariant :func:`check_trace` knows, by name, with what it requires.
INVARIANTS: dict[str, str] = {
    "dependencies": "an attempt starts only after every dependency of its node succeeded",
    "waves": "in waves mode, no node starts before the earlier waves of its frame settled",
    "concurrency": "no more attempts run at once than max_concurrency",
    "permits": "every running attempt holds exactly one permit, within the cap",
    "fifo": "permits are granted in request order and never left free while a request waits",
    "released": "no permit is held or requested once the run is over",
    "ended": "every attempt that started ends exactly once, before the run is over",
    "attempts": "a path's attempts are numbered 1, 2, 3... up to its retry max + 1",
    "fallback": "a fallback runs at most once per path, after its primary's attempts",
    "fail-fast": "no attempt starts after a failure stopped the run",
    "resume": "no path that succeeded before a resume starts again",
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: its name, the first offence and where it is, how many there are."""

    invariant: str
    message: str
    where: str = ""
    count: int = 1

    def __str__(self) -> str:
        text = f"{self.invariant}: {self.message}"
        if self.where:
            text += f" ({self.where})"
        if self.count > 1:
            text += f"; {self.count - 1} more like it"
        return text


class InvariantViolation(WavecrestError):
    """Raised when a run's trace breaks one or more of the scheduler's invariants."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        names = ", ".join(v.invariant for v in self.violations)
        lines = [f"the trace breaks {len(self.violations)} invariant(s): {names}"]
        lines += [f"  {v}" for v in self.violations]
        super().__init__("\n".join(lines))


# --- steps ----------------------------------------------------------------------------
#
# ("start", pos, key, path, attempt, fallback, node, running, most)
#     fallback: the fallback node's id when the attempt is one; node: the primary's id;
#     running: attempts in flight once it started (events) or None; most: retry max + 1
#     or None when unknown
# ("end", pos, key)            the attempt ended (simulations: exactly when)
# ("abandon", pos, key)        the scheduler stopped waiting for the attempt
# ("done", pos, path, status, reused)
# ("retrying", pos, path)
# ("failfast", pos, path)
# ("request" | "grant" | "release" | "withdraw", pos, count)
# ("input", pos, kind)         an input reached the scheduler: outcome, timer, grant, decision
# ("finished", pos, status)

Step = tuple[Any, ...]
_OUTCOMES = (TaskSucceeded, TaskFailed, TaskCancelled)
_DECISIONS = (RetryNode, RunFallback, CheckpointDecided, CancelRun)
_SETTLED = (NodeSucceeded, NodeFailed, NodeCancelled, NodeSkipped)
_DONE: dict[type, str] = {
    NodeSucceeded: "succeeded",
    NodeFailed: "failed",
    NodeCancelled: "cancelled",
    NodeSkipped: "skipped",
}


@dataclass(slots=True)
class _Run:
    """One run's steps and what is known about it."""

    steps: list[Step]
    where: Callable[[int], str]
    exact: bool  # a simulation: permits and attempt ends are recorded as they happened
    prior: set[str] = field(default_factory=set)  # paths that succeeded before a resume
    sim: Simulation | None = None


def _most(node: TaskNode | None) -> int | None:
    if node is None:
        return None
    retry = node.on_error.retry if node.on_error is not None else None
    return (retry.max if retry is not None else 0) + 1


def _simulation_steps(trace: Sequence[object]) -> list[Step]:
    steps: list[Step] = []
    add = steps.append
    for pos, item in enumerate(trace):
        if isinstance(item, StartTask):
            fallback = item.node.id if item.fallback_for is not None else None
            node = item.fallback_for or item.node.id
            most = None if item.fallback_for is not None else _most(item.node)
            add(("start", pos, item.token, item.path, item.attempt, fallback, node, None, most))
        elif isinstance(item, _OUTCOMES):
            add(("input", pos, "outcome"))
            add(("end", pos, item.token))
        elif isinstance(item, Emit):
            event = item.event
            if isinstance(event, _SETTLED):
                status = _DONE[type(event)]
                add(("done", pos, event.path, status, getattr(event, "reused", False)))
            elif isinstance(event, NodeRetrying):
                add(("retrying", pos, event.path))
        elif isinstance(item, AbandonTask):
            add(("abandon", pos, item.token))
        elif isinstance(item, PermitsGranted):
            add(("input", pos, "grant"))
            add(("grant", pos, item.count))
        elif isinstance(item, RequestPermits):
            add(("request", pos, item.count))
        elif isinstance(item, ReleasePermits):
            add(("release", pos, item.count))
        elif isinstance(item, WithdrawPermits):
            add(("withdraw", pos, item.count))
        elif isinstance(item, TimerFired):
            add(("input", pos, "timer"))
        elif isinstance(item, FailNode):
            add(("input", pos, "decision"))
            if item.fail_fast:
                add(("failfast", pos, item.path))
        elif isinstance(item, _DECISIONS):
            add(("input", pos, "decision"))
        elif isinstance(item, Finished):
            add(("finished", pos, item.status))
    return steps


def _event_steps(
    events: Iterable[tuple[int, RunEvent]], lookup: Callable[[str], TaskNode | None]
) -> list[Step]:
    steps: list[Step] = []
    add = steps.append
    inflight: dict[str, int] = {}  # path -> key of its attempt in flight
    keys = 0
    for pos, event in events:
        if isinstance(event, NodeStarted):
            keys += 1
            inflight[event.path] = keys
            node = lookup(event.node)
            most = None if event.fallback is not None else _most(node)
            add(
                (
                    "start",
                    pos,
                    keys,
                    event.path,
                    event.attempt,
                    event.fallback,
                    event.node,
                    event.running,
                    most,
                )
            )
            continue
        if isinstance(event, (*_SETTLED, NodeRetrying)):
            path = event.path
            key = inflight.pop(path, None)
            if key is not None:
                add(("end", pos, key))
            if isinstance(event, NodeRetrying):
                add(("retrying", pos, path))
                continue
            add(("done", pos, path, _DONE[type(event)], getattr(event, "reused", False)))
            if isinstance(event, NodeFailed) and event.fail_fast:
                add(("failfast", pos, path))
        elif isinstance(event, RunFinished):
            add(("finished", pos, event.status))
    return steps


# --- the invariants -------------------------------------------------------------------


class _Found:
    """The violations of one invariant: the first offence is kept, the rest counted."""

    def __init__(self, invariant: str, run: _Run, out: list[Violation]) -> None:
        self.invariant = invariant
        self.run = run
        self.out = out
        self.first: tuple[str, int] | None = None
        self.count = 0

    def __call__(self, message: str, pos: int) -> None:
        if self.first is None:
            self.first = (message, pos)
        self.count += 1

    def close(self) -> None:
        if self.first is not None:
            message, pos = self.first
            self.out.append(
                Violation(
                    self.invariant, message, self.run.where(pos) if pos >= 0 else "", self.count
                )
            )


def _chain(plan: Plan, node_id: str) -> list[PlannedNode]:
    """The planned node and every enclosing control node, innermost first."""
    chain = []
    pn = plan.nodes.get(node_id)
    while pn is not None:
        chain.append(pn)
        if pn.scope is None or pn.scope.owner is None:
            break
        pn = plan.nodes.get(pn.scope.owner)
    return chain


def _prefix(path: str, depth: int) -> str:
    """The first ``depth`` ``id[i]/`` segments of ``path``."""
    parts = path.split("/")[:-1]
    return "".join(part + "/" for part in parts[:depth])


def _dependencies(run: _Run, plan: Plan, found: _Found) -> None:
    succeeded: set[str] = set()
    for step in run.steps:
        if step[0] == "done" and step[3] == "succeeded":
            succeeded.add(step[2])
        elif step[0] == "start":
            path = step[3]
            for pn in _chain(plan, step[6]):
                if pn.scope is None:
                    continue
                prefix = _prefix(path, pn.depth)
                for d in pn.deps:
                    dep = prefix + pn.scope.nodes[d].id
                    if dep not in succeeded:
                        found(f"{path!r} started before its dependency {dep!r} succeeded", step[1])


def _waves(run: _Run, plan: Plan, found: _Found) -> None:
    settled: set[str] = set()
    for step in run.steps:
        if step[0] == "done":
            settled.add(step[2])
        elif step[0] == "start":
            path = step[3]
            for pn in _chain(plan, step[6]):
                if pn.scope is None:
                    continue
                prefix = _prefix(path, pn.depth)
                for wave in pn.scope.waves[: pn.wave]:
                    for index in wave:
                        earlier = prefix + pn.scope.nodes[index].id
                        if earlier not in settled:
                            found(
                                f"{path!r} (wave {pn.wave}) started before {earlier!r} of an "
                                "earlier wave settled",
                                step[1],
                            )


def _concurrency(run: _Run, cap: int, found: _Found) -> None:
    if run.exact:
        running: set[Any] = set()
        for step in run.steps:
            if step[0] == "start":
                running.add(step[2])
                if len(running) > cap:
                    found(f"{len(running)} attempts ran at once, more than the cap {cap}", step[1])
            elif step[0] in ("end", "abandon"):
                running.discard(step[2])
        sim = run.sim
        if sim is not None and sim.max_running > cap:
            found(f"the simulator saw {sim.max_running} attempts at once, cap {cap}", -1)
        return
    for pos, low, reported, _ in _bounds(run):
        shown = reported if reported is not None else low
        if shown > cap or low > cap:
            found(f"{max(shown, low)} attempts ran at once, more than the cap {cap}", pos)


def _bounds(run: _Run) -> list[tuple[int, int, int | None, int]]:
    """From events, per start: (pos, fewest attempts surely running, reported, most possible).

    An attempt surely still runs at a start when it ends later with its node's success
    (the scheduler settles a success in the step that ends the attempt); it may still run
    when its end shows only later, by a retry or a failure decided after it ended.
    """
    steps = run.steps
    by_success: set[Any] = set()  # keys of the attempts ended by their node's success
    for index, step in enumerate(steps[:-1]):
        following = steps[index + 1]
        if step[0] == "end" and following[0] == "done" and following[3] == "succeeded":
            by_success.add(step[2])
    out = []
    open_keys: set[Any] = set()
    surely = 0  # how many of open_keys end by a success
    for step in steps:
        if step[0] == "start":
            out.append((step[1], 1 + surely, step[7], 1 + len(open_keys)))
            open_keys.add(step[2])
            surely += step[2] in by_success
        elif step[0] == "end" and step[2] in open_keys:
            open_keys.discard(step[2])
            surely -= step[2] in by_success
    return out


def _permits(run: _Run, cap: int, found: _Found) -> None:
    if not run.exact:
        for pos, low, reported, high in _bounds(run):
            if reported is None:
                continue
            if not low <= reported <= high:
                found(
                    f"node.started reports {reported} attempt(s) holding permits where the "
                    f"events show between {low} and {high}",
                    pos,
                )
        return
    held = requested = 0
    running: set[Any] = set()
    for step in run.steps:
        kind = step[0]
        if kind == "input" and held != len(running):
            found(f"{held} permit(s) held for {len(running)} running attempt(s)", step[1])
        elif kind == "request":
            requested += step[2]
        elif kind == "grant":
            # A grant can cross a withdrawal (the run ended meanwhile); it is then released.
            requested = max(0, requested - step[2])
            held += step[2]
        elif kind == "release":
            held -= step[2]
            if held < 0:
                found(f"{-held} more permit(s) released than held", step[1])
                held = 0
        elif kind == "withdraw":
            requested = max(0, requested - step[2])
        elif kind == "start":
            running.add(step[2])
        elif kind in ("end", "abandon"):
            running.discard(step[2])
        if held + requested > cap:
            found(
                f"{held} permit(s) held and {requested} requested, more than the cap {cap}", step[1]
            )


def _fifo(run: _Run, cap: int, found: _Found) -> None:
    """Model a FIFO semaphore of ``cap`` permits fed the run's requests, releases and
    withdrawals: its grants are owed to the run, which must receive exactly those, before
    anything else happens (an outcome or a timer) while a grant is due."""
    free, queued, owed = cap, 0, 0
    for step in run.steps:
        kind = step[0]
        if kind in ("request", "release"):
            if kind == "request":
                queued += step[2]
            else:
                free += step[2]
            granted = min(free, queued)
            free -= granted
            queued -= granted
            owed += granted
        elif kind == "withdraw":
            queued = max(0, queued - step[2])
        elif kind == "grant":
            if step[2] > owed:
                found(
                    f"a grant of {step[2]} permit(s) where a FIFO semaphore of {cap} owed "
                    f"{owed}: permits are granted only to requests, in request order",
                    step[1],
                )
            owed = max(0, owed - step[2])
        elif kind == "input" and step[2] in ("outcome", "timer") and owed:
            found(
                f"{owed} permit(s) were free for a waiting request but not granted before "
                "the run moved on",
                step[1],
            )
            owed = 0
    if owed and any(step[0] == "finished" for step in run.steps):
        # (A run cut short by a crash may have had a grant on its way.)
        found(f"{owed} permit(s) free for a waiting request were never granted", -1)


def _released(run: _Run, found: _Found) -> None:
    held = requested = 0
    end = -1
    for step in run.steps:
        kind = step[0]
        if kind == "request":
            requested += step[2]
        elif kind == "grant":
            requested = max(0, requested - step[2])
            held += step[2]
        elif kind == "release":
            held -= step[2]
        elif kind == "withdraw":
            requested = max(0, requested - step[2])
        elif kind == "finished":
            end = step[1]
    if held > 0:
        found(f"{held} permit(s) still held after the run ended", end)
    if requested > 0:
        found(f"{requested} permit(s) still requested after the run ended", end)
    sim = run.sim
    if sim is not None:
        stats = sim.semaphore.statistics()
        if stats.held or stats.waiting:
            found(
                f"the semaphore still counts {stats.held} permit(s) held and "
                f"{stats.waiting} request(s) queued",
                end,
            )
        if sim.scheduler.held:
            found(f"the scheduler still counts {sim.scheduler.held} permit(s) held", end)


def _ended(run: _Run, found: _Found) -> None:
    starts: dict[Any, tuple[int, str]] = {}
    ended: Counter[Any] = Counter()
    finished = None
    for step in run.steps:
        kind = step[0]
        if kind == "start":
            if step[2] in starts:
                found(f"attempt {step[2]!r} of {step[3]!r} started twice", step[1])
            starts[step[2]] = (step[1], step[3])
        elif kind in ("end", "abandon"):
            ended[step[2]] += 1
            if ended[step[2]] > 1:
                found(f"an attempt of {starts.get(step[2], (0, '?'))[1]!r} ended twice", step[1])
            if finished is not None:
                path = starts.get(step[2], (0, "?"))[1]
                found(f"an attempt of {path!r} ended after the run was over", step[1])
        elif kind == "finished":
            finished = step[1]
    for key, (pos, path) in starts.items():
        if not ended[key]:
            found(f"the attempt of {path!r} started here never ended", pos)


def _attempts(run: _Run, found: _Found) -> None:
    numbers: dict[str, list[int]] = {}
    for step in run.steps:
        if step[0] != "start" or step[5] is not None:
            continue
        path, attempt, most = step[3], step[4], step[8]
        seen = numbers.setdefault(path, [])
        if attempt != len(seen) + 1:
            found(f"{path!r} ran attempt {attempt} after attempts {seen}", step[1])
        seen.append(attempt)
        if most is not None and attempt > most:
            found(f"{path!r} ran attempt {attempt}, more than its {most} allowed", step[1])


def _fallback(run: _Run, found: _Found) -> None:
    primaries: set[str] = set()
    fallbacks: Counter[str] = Counter()
    for step in run.steps:
        if step[0] != "start":
            continue
        path = step[3]
        if step[5] is not None:
            fallbacks[path] += 1
            if fallbacks[path] > 1:
                found(f"the fallback of {path!r} ran {fallbacks[path]} times", step[1])
            if path not in primaries:
                found(f"the fallback of {path!r} ran before any attempt of its primary", step[1])
        elif fallbacks[path]:
            found(f"{path!r} ran attempt {step[4]} after its fallback", step[1])
        else:
            primaries.add(path)


def _fail_fast(run: _Run, found: _Found) -> None:
    stopped: str | None = None
    for step in run.steps:
        if step[0] == "failfast" and stopped is None:
            stopped = step[2]
        elif step[0] == "start" and stopped is not None:
            found(f"{step[3]!r} started after {stopped!r} failed the run fast", step[1])


def _resume(run: _Run, found: _Found) -> None:
    done = set(run.prior)
    for step in run.steps:
        if step[0] == "done" and step[4]:
            done.add(step[2])
    for step in run.steps:
        if step[0] == "start" and step[3] in done:
            found(f"{step[3]!r} started again although it had succeeded before the resume", step[1])


def _violations(run: _Run, plan: Plan | None, cap: int, mode: str) -> list[Violation]:
    out: list[Violation] = []
    finished = any(step[0] == "finished" for step in run.steps)

    def check(name: str, func: Callable[[_Found], None]) -> None:
        found = _Found(name, run, out)
        func(found)
        found.close()

    if plan is not None:
        check("dependencies", lambda f: _dependencies(run, plan, f))
        if mode == "waves":
            check("waves", lambda f: _waves(run, plan, f))
    check("concurrency", lambda f: _concurrency(run, cap, f))
    check("permits", lambda f: _permits(run, cap, f))
    if run.exact:
        check("fifo", lambda f: _fifo(run, cap, f))
    if finished:
        if run.exact:
            check("released", lambda f: _released(run, f))
        check("ended", lambda f: _ended(run, f))
    check("attempts", lambda f: _attempts(run, f))
    check("fallback", lambda f: _fallback(run, f))
    check("fail-fast", lambda f: _fail_fast(run, f))
    check("resume", lambda f: _resume(run, f))
    return out


# --- entry points ---------------------------------------------------------------------


def _lookup(plan: Plan | None) -> Callable[[str], TaskNode | None]:
    def lookup(node_id: str) -> TaskNode | None:
        pn = plan.nodes.get(node_id) if plan is not None else None
        return pn.node if pn is not None and isinstance(pn.node, TaskNode) else None

    return lookup


def _segments(events: Sequence[tuple[int, RunEvent]]) -> list[list[tuple[int, RunEvent]]]:
    """Runs told apart: by run id, and each start of a run (a resume) on its own."""
    by_run: dict[str, list[list[tuple[int, RunEvent]]]] = defaultdict(list)
    for pos, event in events:
        runs = by_run[event.run_id]
        if isinstance(event, RunStarted) or not runs:
            runs.append([])
        runs[-1].append((pos, event))
    return [segment for runs in by_run.values() for segment in runs]


def _event_runs(
    events: Sequence[tuple[int, RunEvent]],
    plan: Plan | None,
    where: Callable[[int], str],
) -> list[_Run]:
    """One _Run per segment; a segment after one that finished knows what succeeded there."""
    runs: list[_Run] = []
    succeeded: dict[str, set[str]] = defaultdict(set)  # run id -> succeeded in finished segments
    for segment in _segments(events):
        run_id = segment[0][1].run_id
        first = segment[0][1]
        resumed = isinstance(first, RunStarted) and first.resumed
        steps = _event_steps(segment, _lookup(plan))
        runs.append(
            _Run(steps, where, exact=False, prior=set(succeeded[run_id]) if resumed else set())
        )
        if any(step[0] == "finished" for step in steps):
            succeeded[run_id] |= {s[2] for s in steps if s[0] == "done" and s[3] == "succeeded"}
    return runs


def _is_simulation_trace(trace: Sequence[object]) -> bool:
    return any(not isinstance(item, RunEvent) for item in trace)


def find_violations(
    trace: Simulation | Sequence[object] | str | os.PathLike[str],
    workflow: WorkflowLike | None = None,
    max_concurrency: int | None = None,
    *,
    mode: str | None = None,
    prior: Mapping[str, NodeResult] | None = None,
) -> list[Violation]:
    """What :func:`check_trace` would raise about, as a list (empty when every invariant
    holds)."""
    plan = load(workflow) if workflow is not None else None
    if isinstance(trace, Simulation):
        sim = trace
        plan = plan or sim.plan
        cap = max_concurrency or sim.settings.max_concurrency
        chosen_mode = mode or sim.settings.mode
        succeeded = {p for p, r in (prior or sim.prior or {}).items() if r.status == "succeeded"}
        run = _Run(
            _simulation_steps(sim.trace),
            lambda pos: f"trace entry {pos}",
            exact=True,
            prior=succeeded,
            sim=sim,
        )
        return _violations(run, plan, cap, chosen_mode)
    if isinstance(trace, str | os.PathLike):
        return _log_violations(Path(trace), plan, max_concurrency, mode)
    items = list(trace)
    if plan is None:
        raise TypeError(
            "check_trace needs the workflow to check a list of trace entries or events: "
            "pass it as check_trace(trace, workflow, max_concurrency)"
        )
    rt = plan.workflow.runtime
    cap = max_concurrency or rt.max_concurrency or 8
    chosen_mode = mode or rt.mode or "eager"
    if _is_simulation_trace(items):
        succeeded = {p for p, r in (prior or {}).items() if r.status == "succeeded"}
        run = _Run(
            _simulation_steps(items), lambda pos: f"trace entry {pos}", exact=True, prior=succeeded
        )
        return _violations(run, plan, cap, chosen_mode)
    numbered = [(pos, item) for pos, item in enumerate(items) if isinstance(item, RunEvent)]
    found: list[Violation] = []
    for run in _event_runs(numbered, plan, lambda pos: f"event {pos}"):
        found += _violations(run, plan, cap, chosen_mode)
    return found


def _log_violations(
    path: Path, plan: Plan | None, max_concurrency: int | None, mode: str | None
) -> list[Violation]:
    from .._snapshot import read_snapshot

    options: Mapping[str, Any] = {}
    snapshot = path.with_suffix(".msgpack")
    if snapshot.is_file():
        record = read_snapshot(snapshot)
        options = record.options
        if plan is None:
            from .._parse import parse_workflow

            plan = load(parse_workflow(record.source, record.workflow_path))
    if plan is None:
        raise TypeError(
            f"{path}: no snapshot beside the log to read the workflow from; pass it as "
            "check_trace(log, workflow, max_concurrency)"
        )
    rt = plan.workflow.runtime
    cap = max_concurrency or options.get("max_concurrency") or rt.max_concurrency or 8
    chosen_mode = mode or options.get("mode") or rt.mode or "eager"
    events = [
        (logged.line, logged.event) for segment in read_run_log(path) for logged in segment.events
    ]
    found: list[Violation] = []
    for run in _event_runs(events, plan, lambda pos: f"{path.name} line {pos}"):
        found += _violations(run, plan, cap, chosen_mode)
    return found


def check_trace(
    trace: Simulation | Sequence[object] | str | os.PathLike[str],
    workflow: WorkflowLike | None = None,
    max_concurrency: int | None = None,
    *,
    mode: str | None = None,
    prior: Mapping[str, NodeResult] | None = None,
) -> None:
    """Check a run's record against every invariant it can be checked for.

    ``trace`` is a :class:`~wavecrest.core.Simulation`, a simulation's
    ``trace`` list, a list of events from ``on_event``, or the path of a
    persisted run's JSON-lines log. ``workflow`` (a Workflow, Plan, path or
    text) is needed for lists; a Simulation knows its own, and a log reads it
    from the snapshot beside it. ``max_concurrency`` and ``mode`` default to
    the simulation's, the snapshot's options, or the workflow's ``runtime:``
    settings (8 and eager without them). ``prior``: the results a simulation
    trace list resumed from.

    Raises :class:`InvariantViolation` listing every broken invariant, each
    with its first offence, where it is and how many more there are.
    """
    violations = find_violations(trace, workflow, max_concurrency, mode=mode, prior=prior)
    if violations:
        raise InvariantViolation(violations)
