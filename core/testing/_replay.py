"""Replay: re-drive the core from a recorded run's log and find where it now decides otherwise.

A persisted run's log records, in the order the scheduler handled them, the
decisions the core made (which attempt starts, what a failure leads to, what
is skipped, which fault is injected, how the run ends) and the outcomes the
world reported (an attempt succeeded, failed, timed out, was cancelled). Its
snapshot holds the outputs, the seed, the config and the options.
:func:`replay` builds a fresh :class:`~wavecrest.core.Scheduler` for the
workflow as it is *now* — the file at the recorded path, or another one
given — and plays the recorded outcomes to it in the recorded order, like
Temporal's replayer plays a workflow's history to new code. Every event the
scheduler emits must be the next recorded one; the first that is not is the
*divergence*, reported with its log line, what the log records and what the
code decides instead.

How the recorded outcomes are played:

* a recorded start is made possible by firing the node's retry timer if it
  waits for one, then by granting one permit — permits are granted only when
  the log shows a start, so the scheduler picks among the same ready nodes
  as it did when its grant came; when every permit is held, the attempt in
  flight whose failure the log shows next is failed first (its failure had
  released its permit before its retry or failure was decided and logged),
  or else the first whose end in the log is a cancellation (see the last
  point);
* a recorded success of an attempt in flight is its ``TaskSucceeded``, with
  the output the snapshot holds; of a delay or a checkpoint, its timer or the
  decision;
* a recorded failure or retry is the attempt's failure with the logged
  error (a timeout fires the attempt's timeout timer, then its cancellation
  or, when it was abandoned, its grace timer), followed by the supervisor's
  decision, made by the core's :class:`~wavecrest.core.Supervisor` from the
  run's policy and seed;
* a recorded cancellation of a run that was not failing is the run's
  cancellation or its run timeout, as the log's ``run.finished`` says;
* an attempt whose failure reached the scheduler while the supervisor's
  decision on it was still on its way, and which was then cancelled (its
  parallel had finished, say), leaves no failure in the log: only its
  cancellation, logged at once, before what the outcome that made it
  unneeded led to. When the replay diverges on such a cancellation, the
  segment is replayed again with that attempt failing (with its injected
  fault's error, when it had one) just before that outcome; when a start
  needs a permit that no logged failure gave back, such an attempt is the
  one that gave it.

Each resume in the log (a segment starting with a resumed ``run.started``)
is replayed by a scheduler of its own, resuming from the paths that segment
reused and with the checkpoint decisions given to it. A segment cut short (a
crash) is replayed as far as it goes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from typing import Any

from .._clock import FakeClock
from .._errors import NodeCrashedError, WavecrestError
from .._events import (
    CancelRun,
    CancelTask,
    CheckpointDecided,
    CheckpointWaiting,
    Emit,
    ErrorInfo,
    Escalate,
    FaultInjected,
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
    RunEvent,
    RunFinished,
    RunStarted,
    StartTask,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)
from .._faults import FaultPlan, load_faults
from .._graph import Plan
from .._model import CheckpointNode, DelayNode
from .._parse import load_workflow, parse_workflow
from .._retry import error_info
from .._scheduler import RunSettings, Scheduler
from .._snapshot import RunRecord
from .._supervisor import Supervisor, SupervisorPolicy
from ._load import WorkflowLike, load
from ._runlog import LoggedEvent, RecordedRun, Segment, recorded_run

__all__ = ["Divergence", "ReplayError", "ReplayReport", "replay"]

#: Inputs played for one recorded event before the replay gives up on it.
_MAX_STEPS = 10_000


class ReplayError(WavecrestError):
    """Raised when a recorded run cannot be replayed: no snapshot, or a fault file gone."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the code first decides otherwise than the recorded run.

    ``line`` is the log line of the recorded event (None at the end of a
    segment the code goes on past); ``segment`` counts the run's starts
    from 0 (1 is the first resume). ``recorded`` and ``current`` describe the
    recorded event and what the code does instead (None: nothing).
    """

    line: int | None
    segment: int
    recorded: str | None
    current: str | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The outcome of :func:`replay`: ``ok`` when the code decides what was recorded.

    ``events`` counts the recorded events replayed and matched; ``segments``
    the run's starts in the log (the first run and its resumes).
    """

    run_id: str
    workflow: str
    log: str
    snapshot: str | None
    events: int
    segments: int
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        """True when every recorded decision is the one the code makes now."""
        return self.divergence is None

    def __str__(self) -> str:
        head = f"replay of run {self.run_id} ({self.workflow}) from {self.log}"
        if self.divergence is None:
            return f"{head}: ok, {self.events} events in {self.segments} segment(s) match"
        return f"{head}: diverges after {self.events} matching events\n{self.divergence}"


# --- describing and comparing events ---------------------------------------------------


def _describe(event: RunEvent) -> str:
    """``node.retrying 'save' attempt 1 (delay 0.12s, InjectedFault)`` and the like."""
    name = event.name
    if isinstance(event, RunStarted):
        return f"{name} (resumed)" if event.resumed else name
    if isinstance(event, RunFinished):
        return f"{name} ({event.status})"
    path = getattr(event, "path", "?")
    text = f"{name} {path!r}"
    attempt = getattr(event, "attempt", None)
    if attempt is not None and not isinstance(event, NodeSkipped):
        text += f" attempt {attempt}"
    details: list[str] = []
    if isinstance(event, NodeStarted | NodeRetrying) and event.fallback:
        details.append(f"fallback {event.fallback!r}")
    if isinstance(event, NodeRetrying):
        details.append(f"delay {event.delay:.6g}s")
    if isinstance(event, NodeRetrying | NodeFailed):
        details.append(event.error.type)
    if isinstance(event, NodeSucceeded) and event.reused:
        details.append("reused")
    if isinstance(event, NodeSkipped | NodeCancelled) and event.result.reason:
        details.append(event.result.reason)
    if isinstance(event, FaultInjected):
        details.append(event.fault)
    return f"{text} ({', '.join(details)})" if details else text


def _key(event: RunEvent) -> tuple[Any, ...]:
    """What must be equal for a current event to be the recorded one."""
    name = event.name
    if isinstance(event, RunStarted):
        return (name, event.resumed)
    if isinstance(event, RunFinished):
        return (name, event.status)
    path = getattr(event, "path", None)
    if isinstance(event, NodeStarted):
        return (name, path, event.attempt, event.fallback)
    if isinstance(event, NodeRetrying):
        return (name, path, event.attempt, event.fallback, round(event.delay, 6), event.error.type)
    if isinstance(event, NodeFailed):
        return (name, path, event.attempt, event.error.type)
    if isinstance(event, NodeSucceeded):
        return (name, path, event.attempt, event.reused)
    if isinstance(event, NodeCancelled):
        return (name, path, event.attempt, event.result.reason)
    if isinstance(event, NodeSkipped):
        return (name, path, event.result.reason)
    if isinstance(event, FaultInjected):
        return (name, path, event.attempt, event.fault, event.rule)
    if isinstance(event, CheckpointWaiting):
        return (name, path)
    return (name, path)


class _Diverged(Exception):
    def __init__(self, divergence: Divergence, hint: tuple[int, str] | None = None) -> None:
        super().__init__(divergence.message)
        self.divergence = divergence
        #: (event index, path): the divergence is explained if ``path``'s attempt failed
        #: silently just before the outcome played for that event (see the module doc).
        self.hint = hint


# --- one segment ----------------------------------------------------------------------


class _Segment:
    """Replays one segment: a scheduler, the permits, timers and decisions it asks for."""

    def __init__(
        self,
        plan: Plan,
        record: RunRecord,
        segment: Segment,
        number: int,
        *,
        prior: Mapping[str, NodeResult] | None,
        decisions: Mapping[str, bool],
        faults: FaultPlan | None,
        secrets: Mapping[str, str],
        silent: Mapping[int, tuple[str, ...]] | None = None,
    ) -> None:
        options = record.options
        rt = plan.workflow.runtime
        self.cap = int(options.get("max_concurrency") or rt.max_concurrency or 8)
        settings = RunSettings(
            mode=options.get("mode") or rt.mode or "eager",
            max_concurrency=self.cap,
            grace=float(options.get("grace") or rt.grace or 5.0),
            timeout=options.get("timeout"),
        )
        defaults = SupervisorPolicy()
        policy = SupervisorPolicy(
            keep_going=bool(options.get("keep_going")),
            max_restarts=options.get("max_restarts", defaults.max_restarts),
            restart_period=float(options.get("restart_period") or defaults.restart_period),
        )
        self.events = segment.events
        self.start_at = self.events[0].event.at if self.events else 0.0
        self.clock = FakeClock(epoch=self.start_at)
        self.number = number
        self.record = record
        self.plan = plan
        self.scheduler = Scheduler(
            plan,
            run_id=record.run_id,
            clock=self.clock,
            settings=settings,
            seed=record.seed,
            config=record.config,
            secrets=secrets,
            prior=prior,
            decisions=decisions,
            faults=faults,
            resumed=segment.resumed,
        )
        self.supervisor = Supervisor(policy, seed=record.seed, clock=self.clock)
        self.produced: deque[RunEvent] = deque()
        self.running: dict[str, StartTask] = {}  # path -> its attempt in flight
        self.cancelling: set[int] = set()  # tokens asked to stop
        self.escalated: dict[str, Escalate] = {}  # path -> failure awaiting its decision
        self.requested = 0
        self.held = 0
        self.finished: Finished | None = None
        self.matched = 0
        #: Event index -> paths whose attempt in flight failed silently just before the
        #: outcome that index's event was played with (see the module doc).
        self.silent: Mapping[int, tuple[str, ...]] = silent or {}
        #: The index of the event whose cause was played last, and the paths that had an
        #: attempt in flight, not asked to stop, just before it.
        self.caused_at = -1
        self.flying: frozenset[str] = frozenset()
        self.index = -1

    # -- driving the scheduler

    def feed(self, message: object) -> None:
        if isinstance(message, PermitsGranted):
            self.requested = max(0, self.requested - message.count)
            self.held += message.count
        self.apply(self.scheduler.handle(message))

    def apply(self, commands: list[Any]) -> None:
        for command in commands:
            if isinstance(command, Emit):
                self.produced.append(command.event)
            elif isinstance(command, StartTask):
                self.running[command.path] = command
            elif isinstance(command, RequestPermits):
                self.requested += command.count
            elif isinstance(command, ReleasePermits):
                self.held -= command.count
            elif isinstance(command, WithdrawPermits):
                self.requested = max(0, self.requested - command.count)
            elif isinstance(command, CancelTask):
                self.cancelling.add(command.token)
            elif isinstance(command, Escalate):
                self.escalated[command.path] = command
            elif isinstance(command, Finished):
                self.finished = command
        # Attempts the scheduler no longer waits for (ended or abandoned) leave ``running``
        # when their outcome is fed; an abandoned one is dropped here.
        live = self.scheduler._running  # the core's own record of the attempts in flight
        for path, start in list(self.running.items()):
            if start.token not in live:
                del self.running[path]

    def timers(self) -> dict[int, tuple[str, Any]]:
        """The scheduler's pending timers: id -> (kind, payload)."""
        return self.scheduler._timers

    def timer_for(self, kind: str, *, token: int | None = None, path: str | None = None) -> int:
        for timer, (what, payload) in self.timers().items():
            if what != kind:
                continue
            if token is not None and payload == token:
                return timer
            if path is not None and self.scheduler._timer_of.get(path) == timer:
                return timer
            if token is None and path is None:
                return timer
        return 0

    def decide(self, path: str) -> None:
        self.feed(self.supervisor.decide(self.escalated.pop(path)))

    # -- playing one recorded event

    def play(self, logged: LoggedEvent, later: Callable[[], Iterable[LoggedEvent]]) -> None:
        """Make the scheduler emit ``logged``'s event next, or raise _Diverged."""
        recorded = logged.event
        self.clock.set(max(self.clock.monotonic(), recorded.at - self.start_at))
        for _ in range(_MAX_STEPS):
            if self.produced:
                current = self.produced.popleft()
                if _key(current) != _key(recorded):
                    raise self.diverged(logged, current)
                self.matched += 1
                return
            self.flying = frozenset(
                path for path, start in self.running.items() if start.token not in self.cancelling
            )
            self.caused_at = self.index
            if not self.cause(logged, later):
                raise self.diverged(logged, self.next_decision())
        raise self.diverged(logged, None)  # pragma: no cover - a scheduler that loops

    def cause(self, logged: LoggedEvent, later: Callable[[], Iterable[LoggedEvent]]) -> bool:
        """Feed the input that leads to the recorded event; False if there is none."""
        event = logged.event
        path = getattr(event, "path", None)
        if isinstance(event, NodeStarted) and path is not None:
            return self.start(path, later)
        if isinstance(event, NodeSucceeded) and path is not None:
            return self.succeed(path)
        if isinstance(event, NodeRetrying | NodeFailed) and path is not None:
            stops = isinstance(event, NodeFailed) and event.fail_fast
            return self.fail(path, event.error, later if stops else None)
        if isinstance(event, NodeCancelled) and path is not None:
            return self.cancel(path, event.result.abandoned, lambda: chain([logged], later()))
        if isinstance(event, RunFinished):
            return self.end(event)
        return self.unstick()

    def start(self, path: str, later: Callable[[], Iterable[LoggedEvent]]) -> bool:
        retry = self.timer_for("retry", path=path)
        if retry:
            self.feed(TimerFired(retry))
            return True
        if self.requested and self.held < self.cap:
            self.feed(PermitsGranted(1))
            return True
        # Every permit is held: the scheduler asks for none until an attempt ends.
        if self.scheduler.statistics()["ready"] and self.free_a_permit(later()):
            return True
        return self.unstick()

    def free_a_permit(self, later: Iterable[LoggedEvent]) -> bool:
        """End the attempt in flight whose failure the log shows next (see the module doc);
        failing that, the first one whose end in the log is a cancellation: it failed
        silently, its decision still on its way when it was cancelled."""
        passed: set[str] = set()
        cancelled: str | None = None
        for logged in later:
            event = logged.event
            path = getattr(event, "path", None)
            if path not in self.running or path in passed:
                continue
            if isinstance(event, NodeRetrying | NodeFailed):
                self.end_attempt(path, event.error)
                return True
            # Any other end (a success, a cancellation) came while it held its permit,
            # unless nothing else can have given the permit back.
            if cancelled is None and isinstance(event, NodeCancelled):
                cancelled = path
            passed.add(path)
        if cancelled is not None and self.running[cancelled].token not in self.cancelling:
            self.fail_silently(cancelled)
            return True
        return False

    def end_attempt(self, path: str, error: ErrorInfo) -> None:
        start = self.running[path]
        if error.type == "NodeTimeoutError":
            timer = self.timer_for("timeout", token=start.token)
            if not timer:
                raise _Stuck(f"{path!r} timed out in the recorded run, but has no timeout now")
            self.feed(TimerFired(timer))
            if "abandoned" in error.message:
                grace = self.timer_for("grace", token=start.token)
                if grace:
                    self.feed(TimerFired(grace))
                    return
            if path in self.running:
                self.feed(TaskCancelled(start.token))
            return
        self.feed(TaskFailed(start.token, error))

    def succeed(self, path: str) -> bool:
        start = self.running.get(path)
        if start is not None:
            result = self.record.results.get(path)
            output = result.output if result is not None and result.status == "succeeded" else None
            self.feed(TaskSucceeded(start.token, output))
            return True
        return self.resolve_wait(path, approve=True) or self.unstick()

    def fail(
        self,
        path: str,
        error: ErrorInfo,
        stopping: Callable[[], Iterable[LoggedEvent]] | None = None,
    ) -> bool:
        """The failure of ``path``; ``stopping`` (the events after it) when it fails fast."""
        if path in self.running:
            self.end_attempt(path, error)
            return True
        if path in self.escalated:
            if stopping is not None:
                # What the stop cancels is logged before this node.failed: nothing waits.
                self.before_stop(stopping())
            self.decide(path)
            return True
        return self.resolve_wait(path, approve=False) or self.unstick()

    def before_stop(self, later: Iterable[LoggedEvent]) -> None:
        """Play what the recorded run did silently before it stopped.

        An attempt in flight whose failure the log shows after the stop failed before it
        (a failure reported after it would have been a cancellation; only its decision came
        after). A node waiting to retry that the stop does not cancel in the log had its
        retry timer fire before the stop (a node ready for a permit is not cancelled).
        """
        events = list(later)
        pending = set(self.running)
        for logged in events:
            if not pending:
                break
            event = logged.event
            path = getattr(event, "path", None)
            if path not in pending:
                continue
            pending.discard(path)
            if isinstance(event, NodeFailed) and path in self.running:
                self.end_attempt(path, event.error)
        cancelled = {x.event.path for x in events if isinstance(x.event, NodeCancelled)}
        retries = self.scheduler._timer_of
        for timer, (kind, _) in list(self.timers().items()):
            if kind != "retry":
                continue
            path = next((p for p, t in retries.items() if t == timer), None)
            if path is not None and path not in cancelled:
                self.feed(TimerFired(timer))

    def resolve_wait(self, path: str, *, approve: bool) -> bool:
        """A delay's timer, or a checkpoint's timer or decision."""
        pn = self.plan.nodes.get(path.rpartition("/")[2])
        timer = self.scheduler._timer_of.get(path)
        if pn is None:
            return False
        if isinstance(pn.node, DelayNode) and timer in self.timers():
            self.feed(TimerFired(timer))
            return True
        if isinstance(pn.node, CheckpointNode) and path in self.scheduler.waiting():
            default = (pn.node.default or "reject") == "approve"
            if timer in self.timers() and default == approve:
                self.feed(TimerFired(timer))
            else:
                self.feed(CheckpointDecided(path, approve))
            return True
        return False

    def cancel(self, path: str, abandoned: bool, here: Callable[[], Iterable[LoggedEvent]]) -> bool:
        """The cancellation of ``path``; ``here``: the events from this one on."""
        start = self.running.get(path)
        if start is not None and start.token in self.cancelling:
            if abandoned:
                grace = self.timer_for("grace", token=start.token) or self.timer_for("stop-grace")
                if grace:
                    self.feed(TimerFired(grace))
                    return True
            self.feed(TaskCancelled(start.token))
            return True
        if path in self.escalated:
            self.decide(path)
            return True
        return self.stop_run(here()) or self.fail_fast(here()) or self.unstick()

    def fail_fast(self, here: Iterable[LoggedEvent]) -> bool:
        """Play the failure that stops the run: a fail-fast failure settles what waits (delays,
        retries) as cancelled before its own node.failed, so those come first in the log."""
        if self.scheduler._stopping:
            return False
        events = list(here)
        for logged in events:
            event = logged.event
            if isinstance(event, NodeFailed) and event.fail_fast:
                if event.path in self.running:
                    self.end_attempt(event.path, event.error)
                    return True
                if event.path in self.escalated:
                    self.before_stop(events)
                    self.decide(event.path)
                    return True
                return False
        return False

    def stop_run(self, here: Iterable[LoggedEvent]) -> bool:
        """Cancel the run (or fire its run timeout) as the segment's run.finished says;
        ``here``: the events from the first one the stop leads to."""
        if self.scheduler._stopping:
            return False
        events = list(here)
        finished = next((x.event for x in events if isinstance(x.event, RunFinished)), None)
        if not isinstance(finished, RunFinished) or finished.status != "cancelled":
            return False
        reason = finished.reason or ""
        self.before_stop(events)
        if reason.startswith("run exceeded its timeout"):
            timer = self.timer_for("run-timeout")
            if timer:
                self.feed(TimerFired(timer))
                return True
        # A run cancelled for ``why`` records the reason "run <why>".
        if reason.startswith("run ") and " " not in reason[4:]:
            self.feed(CancelRun(reason[4:]))
        else:
            self.feed(CancelRun("cancelled", reason or None))
        return True

    def end(self, event: RunFinished) -> bool:
        if event.status == "cancelled" and self.stop_run([LoggedEvent(0, event, {})]):
            return True
        grace = self.timer_for("stop-grace")
        if grace and self.scheduler._stopping:
            self.feed(TimerFired(grace))
            return True
        return self.unstick()

    def unstick(self) -> bool:
        """Answer a failure whose decision is logged nowhere (its frame was retired)."""
        if self.escalated:
            self.decide(next(iter(self.escalated)))
            return True
        return False

    # -- reporting

    def next_decision(self) -> RunEvent | None:
        """What the code would do next on its own: grant a permit if it asks for one."""
        if self.produced:
            return self.produced[0]
        if self.requested and self.held < self.cap:
            self.feed(PermitsGranted(1))
        return self.produced[0] if self.produced else None

    def diverged(self, logged: LoggedEvent | None, current: RunEvent | None) -> _Diverged:
        recorded = _describe(logged.event) if logged is not None else None
        now = _describe(current) if current is not None else None
        where = f"line {logged.line}" if logged is not None else "the end of the log"
        segment = f" (resume {self.number})" if self.number else ""
        if recorded is None:
            message = f"at {where}{segment}: the recorded run ends here; the code goes on: {now}"
        elif now is None:
            message = (
                f"at {where}{segment}: the log records {recorded}; the code does not: "
                f"it is {self.scheduler.status} with {self.scheduler.statistics()}"
            )
        else:
            message = f"at {where}{segment}: the log records {recorded}; the code decides {now}"
        hint = None
        if (
            logged is not None
            and isinstance(logged.event, NodeCancelled)
            and logged.event.path in self.flying
            and self.caused_at >= 0
        ):
            hint = (self.caused_at, logged.event.path)
        return _Diverged(
            Divergence(
                logged.line if logged is not None else None, self.number, recorded, now, message
            ),
            hint,
        )

    def fail_silently(self, path: str) -> None:
        """Fail ``path``'s attempt in flight as the recorded run's did, unlogged."""
        start = self.running.get(path)
        if start is None or start.token in self.cancelling:
            return
        fault = start.fault
        if fault is not None and fault.kind == "raise":
            exc: BaseException = fault.exception(start.node.id, start.attempt)
        else:
            exc = NodeCrashedError(f"{path!r} failed before the run logged its failure")
        self.feed(TaskFailed(start.token, error_info(exc, node=path, attempt=start.attempt)))

    def run(self, stop_at: int | None = None) -> None:
        """Replay the segment; ``stop_at``: stop the run (as its run.finished says) just
        before that event, instead of when an event first needs it."""
        self.apply(self.scheduler.start())
        events = self.events
        for index, logged in enumerate(events):
            self.index = index
            if index == stop_at:
                self.stop_run(events[index:])
            for path in self.silent.get(index, ()):
                self.fail_silently(path)
            try:
                self.play(logged, partial(islice, events, index + 1, None))
            except _Stuck as exc:
                raise self.diverged(logged, None) from exc
        if events and isinstance(events[-1].event, RunFinished):
            extra = self.next_decision()
            if extra is not None:
                raise self.diverged(None, extra)


class _Stuck(Exception):
    """The recorded outcome cannot be played to the current code."""


# --- the entry point ------------------------------------------------------------------


def _workflow(recorded: RecordedRun, workflow: WorkflowLike | None) -> Plan:
    if workflow is not None:
        return load(workflow)
    record = recorded.record
    assert record is not None
    path = record.workflow_path
    if path and os.path.isfile(path):
        return load(load_workflow(path))
    return load(parse_workflow(record.source, path))


#: Events a run may still log once it is stopping: outcomes of attempts in flight (their
#: successes, failures decided for good), cancellations, and its end.
_AFTER_A_STOP = (NodeSucceeded, NodeFailed, NodeCancelled, RunFinished)


#: How many silent failures one segment's replay may infer before reporting its divergence.
_MAX_SILENT = 100

Silent = Mapping[int, tuple[str, ...]]


def _play(make: Callable[[Silent], _Segment], segment: Segment) -> tuple[int, Divergence | None]:
    """Replay one segment: the events matched, and the divergence if there is one.

    A divergence on the cancellation of an attempt that was in flight is first tried
    as a silent failure of that attempt (see the module doc): the segment is replayed
    again with it, as long as each replay explains one more.

    A run stopped by a cancellation or its run timeout records no event at the moment it
    stops when nothing waited to be cancelled: an attempt's success logged just before its
    end may have come before the stop (its dependents then started or were cancelled) or
    after it. When the replay still diverges, each earlier point of the run's final stretch
    of events that can follow a stop is tried as the stop; the first that replays clean wins.
    """
    silent: dict[int, tuple[str, ...]] = {}
    best: tuple[int, Divergence] | None = None
    for _ in range(_MAX_SILENT + 1):
        replayer = make(silent)
        try:
            replayer.run()
            return replayer.matched, None
        except _Diverged as exc:
            if best is None or replayer.matched > best[0]:
                best = (replayer.matched, exc.divergence)
            hint = exc.hint
        if hint is None or hint[1] in silent.get(hint[0], ()):
            break
        index, path = hint
        silent = {**silent, index: (*silent.get(index, ()), path)}
    assert best is not None
    matched, first = best
    finished = segment.finished
    if finished is None or not isinstance(finished.event, RunFinished):
        return matched, first
    if finished.event.status != "cancelled":
        return matched, first
    events = segment.events
    start = len(events) - 1
    while start > 0 and isinstance(events[start - 1].event, _AFTER_A_STOP):
        start -= 1
    for stop_at in range(start, len(events)):
        again = make(silent)
        try:
            again.run(stop_at)
        except _Diverged:
            continue
        return again.matched, None
    return matched, first


def _waiting_at_end(segment: Segment) -> set[str]:
    waiting: set[str] = set()
    for logged in segment.events:
        event = logged.event
        if isinstance(event, CheckpointWaiting):
            waiting.add(event.path)
        elif isinstance(event, NodeSucceeded | NodeFailed | NodeCancelled):
            waiting.discard(event.path)
    return waiting


def replay(
    run: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    workflow: WorkflowLike | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ReplayReport:
    """Replay a recorded actor run against the code and workflow as they are now.

    ``run`` is a run id (looked up in ``state_dir``, default
    ``$WAVECREST_STATE_DIR`` or ``.wavecrest-state``), a snapshot path or a
    log path; the snapshot must be beside the log. ``workflow`` replaces the
    workflow file the run recorded (by default the file at its recorded path
    if it is still there, else the source the snapshot saved). Secrets come
    from ``secrets`` or the environment (a placeholder otherwise: only
    conditions read them during a replay).

    Returns a :class:`ReplayReport`; its ``divergence`` names the first
    recorded event the code no longer produces. Raises ReplayError when the
    run cannot be replayed, RunNotFoundError, RunLogError or SnapshotError for
    a run that cannot be found or read.
    """
    recorded = recorded_run(run, state_dir)
    record = recorded.record
    if record is None:
        raise ReplayError(
            f"{recorded.log}: no snapshot beside the log; a replay needs the run's snapshot "
            f"({recorded.log.with_suffix('.msgpack').name}) for its outputs and seed"
        )
    plan = _workflow(recorded, workflow)
    wf = plan.workflow
    given = dict(secrets or {})
    secret_values = {name: given.get(name, os.environ.get(name, "***")) for name in wf.secrets}
    spec = record.options.get("faults")
    try:
        faults = load_faults(spec) if spec is not None else None
    except WavecrestError as exc:
        raise ReplayError(f"cannot replay run {record.run_id}: its fault plan: {exc}") from None
    matched = 0
    waited: set[str] = set()
    divergence: Divergence | None = None
    for number, segment in enumerate(recorded.segments):
        reused = {
            logged.event.path
            for logged in segment.events
            if isinstance(logged.event, NodeSucceeded) and logged.event.reused
        }
        prior = {
            path: record.results.get(path) or NodeResult(path.rpartition("/")[2], "succeeded")
            for path in reused
        }
        decisions = {p: record.decisions[p] for p in waited if p in record.decisions}

        def replayer(
            silent: Silent,
            segment: Segment = segment,
            number: int = number,
            prior: dict[str, NodeResult] = prior,
            decisions: dict[str, bool] = decisions,
        ) -> _Segment:
            return _Segment(
                plan,
                record,
                segment,
                number,
                prior=prior if segment.resumed else None,
                decisions=decisions,
                faults=faults if number == 0 else None,
                secrets=secret_values,
                silent=silent,
            )

        played, divergence = _play(replayer, segment)
        matched += played
        if divergence is not None:
            break
        waited |= _waiting_at_end(segment)
    return ReplayReport(
        run_id=record.run_id,
        workflow=record.workflow,
        log=str(recorded.log),
        snapshot=str(recorded.snapshot) if recorded.snapshot is not None else None,
        events=matched,
        segments=len(recorded.segments),
        divergence=divergence,
    )
