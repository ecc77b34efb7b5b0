"""The scheduler: a run as a pure state machine.

``Scheduler.start()`` and ``Scheduler.handle(input)`` return the commands the
outside world must carry out (start an attempt, ask for permits, start a
timer, escalate a failure, publish an event...). Nothing here blocks, sleeps,
reads the time except through the injected clock, or draws randomness except
from RNGs derived from the run's seed, so any driver — the pykka actors, a
hypothesis state machine, the deterministic simulator — gets the same
decisions from the same inputs.

State
-----
A run is a tree of *frames*. A frame is one execution of a scope (see
:mod:`._graph`): the workflow body is the root frame; each parallel branch,
each foreach item, each loop iteration and each taken ``if``/``branch`` body
gets a frame of its own. Per node a frame keeps a status code and the number
of dependencies not yet succeeded (``remaining``). Node results and outputs
are kept by *path*, so iterations never overwrite each other.

Flow of a node
--------------
``pending`` → (all dependencies succeeded, and in waves mode its wave is the
frame's current wave) → *activated*: a task node becomes ``ready`` and waits
for a permit in a heap ordered by longest remaining path, then frame
creation order, then declaration order; other nodes start at once without a
permit (control nodes open frames, delays and checkpoints wait on timers or
decisions). A started attempt is identified by a token. Its failure is
escalated to the supervisor, whose decision (retry, fallback, fail) comes back
as an input; until then the node is ``waiting``.

Invariants
----------
* ``held + requested <= max_concurrency`` and ``held`` equals the number of
  running task attempts: a permit is released exactly when an attempt ends,
  for any reason, or is abandoned.
* ``_nready`` equals the number of frame entries in state READY.
* Once ``_stopping`` is set (fail-fast, cancellation, run timeout) nothing new
  starts: no activation, no retry, no fallback; granted permits go straight
  back.
* Work is processed iteratively from ``_work``, never by recursion along a
  chain, so a resumed 100k-node chain completes without deep stacks.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping
from itertools import count
from typing import Any

from ._clock import Clock
from ._duration import format_duration
from ._errors import CheckpointRejectedError, ExpressionError, NodeCancelledError, NodeTimeoutError
from ._events import (
    JOURNAL_STARTED,
    JOURNAL_SUCCEEDED,
    AbandonTask,
    CancelRun,
    CancelTask,
    CancelTimer,
    CheckpointDecided,
    CheckpointWaiting,
    Command,
    Emit,
    ErrorInfo,
    Escalate,
    FailNode,
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
    RetryNode,
    RunFallback,
    RunFinished,
    RunStarted,
    RunStatus,
    StartTask,
    StartTimer,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)
from ._expr import compile_expression, compile_template, is_template
from ._faults import FaultPlan
from ._graph import Plan, PlannedNode, Ref, Scope
from ._model import (
    BranchNode,
    BreakNode,
    CheckpointNode,
    DelayNode,
    ForeachNode,
    IfNode,
    LoopNode,
    ParallelNode,
    TaskNode,
    WhileNode,
)
from ._registry import get_runtime
from ._result import RunResult
from ._retry import error_info

__all__ = ["RunSettings", "Scheduler"]

PENDING, READY, RUNNING, WAITING, SUCCEEDED, FAILED, CANCELLED, SKIPPED = range(8)
_STATUS = (
    "pending",
    "pending",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
    "skipped",
)
_MISSING: Any = object()


class RunSettings:
    """How a run is scheduled: mode, concurrency cap and the grace and timeout periods."""

    __slots__ = ("grace", "max_concurrency", "mode", "timeout")

    def __init__(
        self,
        *,
        mode: str = "eager",
        max_concurrency: int = 8,
        grace: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        if mode not in ("eager", "waves"):
            raise ValueError(f"invalid mode {mode!r}: expected 'eager' or 'waves'")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        self.mode = mode
        self.max_concurrency = max_concurrency
        self.grace = grace
        self.timeout = timeout


class _Frame:
    """One execution of a scope. Mutated by the scheduler only."""

    __slots__ = (
        "attempts",
        "base",
        "bindings",
        "broke",
        "children",
        "control",
        "defunct",
        "failed",
        "input",
        "iteration",
        "nodes",
        "open",
        "parent",
        "prefix",
        "prefixes",
        "remaining",
        "scope",
        "seq",
        "state",
        "wave",
        "wave_open",
    )

    def __init__(
        self,
        scope: Scope,
        *,
        parent: _Frame | None,
        control: _Control | None,
        prefixes: tuple[str, ...],
        bindings: dict[str, Any],
        input: Any,
        base: int,
        seq: int,
        iteration: int = 0,
    ) -> None:
        nodes = scope.nodes
        self.scope = scope
        self.nodes = nodes
        self.parent = parent
        self.control = control
        self.prefixes = prefixes
        self.prefix = prefixes[-1]
        self.bindings = bindings
        self.input = input
        self.base = base
        self.seq = seq
        self.iteration = iteration
        self.state = [PENDING] * len(nodes)
        self.remaining = [len(pn.deps) for pn in nodes]
        self.attempts = [0] * len(nodes)
        # open == number of nodes not yet settled; the frame is done at 0.
        self.open = len(nodes)
        self.failed = False
        self.defunct = False
        self.broke = False
        self.children: list[_Frame] = []
        self.wave = 0
        self.wave_open = [len(w) for w in scope.waves]

    def path(self, index: int) -> str:
        return self.prefix + self.nodes[index].node.id


class _Attempt:
    """A task attempt in flight."""

    __slots__ = (
        "attempt",
        "cancel",
        "fallback",
        "frame",
        "index",
        "path",
        "started",
        "started_at",
        "timers",
        "token",
    )

    def __init__(
        self,
        token: int,
        frame: _Frame,
        index: int,
        path: str,
        attempt: int,
        fallback: bool,
        started: float,
        started_at: float,
    ) -> None:
        self.token = token
        self.frame = frame
        self.index = index
        self.path = path
        self.attempt = attempt
        self.fallback = fallback
        self.started = started
        self.started_at = started_at
        self.cancel: str | None = None  # why cancellation was asked: timeout, stopping, superseded
        self.timers: list[int] = []


class _Pending:
    """A node whose failure is with the supervisor, or which waits on a timer or decision."""

    __slots__ = ("attempt", "error", "fallback", "frame", "index", "started", "started_at")

    def __init__(
        self,
        frame: _Frame,
        index: int,
        attempt: int,
        error: ErrorInfo | None,
        fallback: bool,
        started: float,
        started_at: float,
    ) -> None:
        self.frame = frame
        self.index = index
        self.attempt = attempt
        self.error = error
        self.fallback = fallback
        self.started = started
        self.started_at = started_at


class _ReadyQueue:
    """The task nodes ready for a permit, in start order: highest priority (longest
    remaining path) first, then frame creation order, then declaration order.

    One heap per priority of ``(frame seq, index, push number, ready since)``, and a
    heap of the priorities that have one. A run's lowest-priority nodes (those with
    no dependents, which eager mode starts last) can pile up by the thousand; in a
    bucket of their own they leave the heaps every start pops from small. Entries
    hold numbers only, the frames being looked up by seq, so the garbage collector
    stops tracking the entries that wait (a waiting tuple that holds a frame is
    scanned by every collection of its generation). Entries are never removed
    early: :meth:`pop` may return one that is no longer ready, which the caller skips.
    """

    __slots__ = ("_buckets", "_frames", "_priorities", "_pushes")

    def __init__(self) -> None:
        self._buckets: dict[int, list[tuple[int, int, int, float]]] = {}
        self._priorities: list[int] = []  # negated, so heapq pops the highest first
        self._frames: dict[int, _Frame] = {}  # seq -> frame, for every frame pushed from
        self._pushes = count()

    def push(self, priority: int, frame: _Frame, index: int, since: float) -> None:
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = []
            heapq.heappush(self._priorities, -priority)
        self._frames[frame.seq] = frame
        heapq.heappush(bucket, (frame.seq, index, next(self._pushes), since))

    def pop(self) -> tuple[_Frame, int, float] | None:
        """The first entry in start order as ``(frame, index, ready since)``, or None."""
        priorities, buckets = self._priorities, self._buckets
        while priorities:
            bucket = buckets[-priorities[0]]
            if bucket:
                seq, index, _, since = heapq.heappop(bucket)
                return self._frames[seq], index, since
            del buckets[-heapq.heappop(priorities)]
        return None


class Scheduler:
    """One run of a planned workflow, driven by inputs and answering with commands.

    ``prior`` holds the node results of the run being resumed: a node whose
    path succeeded there is taken as is and never started again. ``decisions``
    approves (True) or rejects (False) checkpoints by path.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        run_id: str,
        clock: Clock,
        settings: RunSettings | None = None,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        prior: Mapping[str, NodeResult] | None = None,
        decisions: Mapping[str, bool] | None = None,
        faults: FaultPlan | None = None,
        resumed: bool = False,
        observed: bool = True,
        journal: bool = False,
    ) -> None:
        self.plan = plan
        #: False when nobody consumes events: they are then not even built.
        self.observed = observed
        #: With ``journal``, what the run's snapshot and log need, in order (see
        #: :mod:`wavecrest.core._events`); :meth:`take_journal` hands it over.
        self.journal: list[Any] | None = [] if journal else None
        self.run_id = run_id
        self.clock = clock
        self.settings = settings or RunSettings()
        self.seed = seed
        self.config = dict(config or {})
        self.secrets = dict(secrets or {})
        self.faults = faults
        self.resumed = resumed
        self._prior = {p: r for p, r in (prior or {}).items() if r.status == "succeeded"}
        #: Prefixes of the loop iterations and foreach items a ``<break>`` stopped before
        #: the resume: each is stopped again when its frame opens (see _broken_frames).
        self._broken = _broken_frames(plan, self._prior)
        self._decisions = dict(decisions or {})
        self._waves = self.settings.mode == "waves"
        self._cap = self.settings.max_concurrency

        self._out: list[Command] = []
        self._work: deque[tuple[_Frame, int]] = deque()
        # Ready task nodes: (priority, frame seq, index, push seq, frame, monotonic time
        # made ready). The push seq is unique, so the frame and time are never compared.
        self._ready = _ReadyQueue()
        self._frame_seq = count()
        self._tokens = count(1)
        self._timer_ids = count(1)
        self._nready = 0
        self.held = 0
        self.requested = 0

        self._running: dict[int, _Attempt] = {}
        self._token_of: dict[str, int] = {}
        self._escalated: dict[str, _Pending] = {}
        self._timers: dict[int, tuple[str, Any]] = {}
        self._timer_of: dict[str, int] = {}
        self._progress = 0  # timers that will move the run on: retry waits, delays, checkpoints
        self._waiting: dict[str, _Pending] = {}  # checkpoints waiting for a person
        self._controls: dict[str, _Control] = {}
        self._fallback_for: dict[str, ErrorInfo] = {}  # path -> primary error, fallback queued
        self._primary: dict[str, tuple[ErrorInfo, int]] = {}  # path -> (primary error, attempts)
        self._needs_scope: dict[int, bool] = {}
        self._waiting_since: dict[str, tuple[float, float]] = {}

        self.results: dict[str, NodeResult] = dict(prior or {})
        self.outputs: dict[str, Any] = {p: r.output for p, r in self._prior.items()}
        self.errors: list[ErrorInfo] = []
        self.status: RunStatus = "running"
        self.reason: str | None = None
        self.abandoned = 0
        self.started_at = 0.0
        self.finished_at: float | None = None
        self._started = 0.0
        self._stopping = False
        self._stop_status: RunStatus = "failed"
        self._root: _Frame | None = None
        self._run_timer: int | None = None
        self._grace_timer: int | None = None

    # -- driving -------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def start(self) -> list[Command]:
        """Begin the run: publish RunStarted and activate the workflow's first nodes."""
        self._started = self.clock.monotonic()
        self.started_at = self.clock.time()
        self._emit(
            RunStarted(
                run_id=self.run_id,
                at=self.started_at,
                workflow=self.plan.workflow.name,
                seed=self.seed,
                resumed=self.resumed,
            )
        )
        if self.settings.timeout is not None:
            self._run_timer = self._timer(self.settings.timeout, "run-timeout", None)
        self._root = self._open_frame(
            self.plan.root, parent=None, control=None, segment=None, bindings={}, input=None
        )
        return self._flush()

    def handle(self, message: object) -> list[Command]:
        """Apply one input and return the commands it leads to."""
        if self.status != "running":
            if isinstance(message, PermitsGranted) and message.count:
                self._out.append(ReleasePermits(message.count))
            return self._take()
        if isinstance(message, TaskSucceeded):
            self._task_succeeded(message)
        elif isinstance(message, PermitsGranted):
            self._granted(message.count)
        elif isinstance(message, TaskFailed):
            self._task_failed(message.token, message.error)
        elif isinstance(message, TaskCancelled):
            self._task_cancelled(message.token)
        elif isinstance(message, TimerFired):
            self._timer_fired(message.timer)
        elif isinstance(message, RetryNode | RunFallback | FailNode):
            self._decided(message)
        elif isinstance(message, CancelRun):
            self._cancel_run(message)
        elif isinstance(message, CheckpointDecided):
            self._checkpoint_decided(message)
        else:
            raise TypeError(f"the scheduler cannot handle {message!r}")
        return self._flush()

    def _flush(self) -> list[Command]:
        self._drain()
        if not self._stopping:
            want = min(self._cap - self.held, self._nready) - self.requested
            if want > 0:
                self.requested += want
                self._out.append(RequestPermits(want))
        self._maybe_finish()
        return self._take()

    def _take(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def take_journal(self) -> list[Any]:
        """The journal written since the last call (empty without ``journal``)."""
        journal = self.journal
        if not journal:
            return []
        self.journal = []
        return journal

    def _emit(self, event: Any) -> None:
        if self.observed:
            self._out.append(Emit(event))
        if self.journal is not None:
            self.journal.append(event)

    def _timer(self, delay: float, kind: str, payload: Any) -> int:
        timer = next(self._timer_ids)
        self._timers[timer] = (kind, payload)
        self._out.append(StartTimer(timer, delay))
        return timer

    def _cancel_timer(self, timer: int | None) -> None:
        if timer is not None and self._timers.pop(timer, None) is not None:
            self._out.append(CancelTimer(timer))

    # -- frames and activation ---------------------------------------------------

    def _open_frame(
        self,
        scope: Scope,
        *,
        parent: _Frame | None,
        control: _Control | None,
        segment: str | None,
        bindings: dict[str, Any],
        input: Any,
        iteration: int = 0,
    ) -> _Frame:
        if parent is None:
            prefixes: tuple[str, ...] = ("",)
            base = 0
        else:
            prefixes = (
                parent.prefixes if segment is None else (*parent.prefixes, parent.prefix + segment)
            )
            assert control is not None
            base = parent.base + control.pn.rank - 1
        merged = (
            {**parent.bindings, **bindings}
            if parent is not None and bindings
            else (parent.bindings if parent is not None else bindings)
        )
        frame = _Frame(
            scope,
            parent=parent,
            control=control,
            prefixes=prefixes,
            bindings=merged,
            input=input,
            base=base,
            seq=next(self._frame_seq),
            iteration=iteration,
        )
        if parent is not None:
            parent.children.append(frame)
        if not frame.nodes:
            self._work.append((frame, -1))
        else:
            first = frame.scope.waves[0] if self._waves else range(len(frame.nodes))
            for index in first:
                if frame.remaining[index] == 0:
                    self._work.append((frame, index))
        return frame

    def _drain(self) -> None:
        work = self._work
        while work:
            frame, index = work.popleft()
            if index < 0:
                self._frame_done(frame)
            else:
                self._activate(frame, index)

    def _activate(self, frame: _Frame, index: int) -> None:
        if self._stopping or frame.defunct or frame.state[index] != PENDING:
            return
        pn = frame.nodes[index]
        if self._waves and pn.wave > frame.wave:
            return
        path = frame.prefix + pn.node.id
        prior = self._prior.get(path)
        if prior is not None:
            self._settle(frame, index, SUCCEEDED, prior, prior.output, reused=True)
            return
        node = pn.node
        if isinstance(node, TaskNode):
            frame.state[index] = READY
            self._nready += 1
            self._ready.push(pn.rank + frame.base, frame, index, self.clock.monotonic())
        elif isinstance(node, DelayNode):
            self._begin_wait(frame, index)
            self._timer_of[path] = self._timer(node.duration, "delay", (frame, index))
            self._progress += 1
        elif isinstance(node, CheckpointNode):
            self._start_checkpoint(frame, index, path, pn)
        elif isinstance(node, BreakNode):
            self._run_break(frame, index, path, pn)
        else:
            control = _CONTROLS[type(node)](self, frame, index, path, pn)
            frame.state[index] = RUNNING
            self._controls[path] = control
            try:
                control.start()
            except ExpressionError as exc:
                self._control_failed(control, error_info(exc, node=path, attempt=1))

    def _begin_wait(self, frame: _Frame, index: int) -> None:
        frame.state[index] = WAITING
        path = frame.path(index)
        self._waiting_since[path] = (self.clock.monotonic(), self.clock.time())

    # -- permits and attempts ----------------------------------------------------

    def _granted(self, granted: int) -> None:
        self.requested = max(0, self.requested - granted)
        self.held += granted
        surplus = 0
        for _ in range(granted):
            entry = self._pop_ready() if not self._stopping else None
            if entry is None:
                surplus += 1
            else:
                self._start_attempt(*entry)
        if surplus:
            self.held -= surplus
            self._out.append(ReleasePermits(surplus))

    def _pop_ready(self) -> tuple[_Frame, int, float] | None:
        pop = self._ready.pop
        while (entry := pop()) is not None:
            frame, index, _ = entry
            if frame.state[index] == READY and not frame.defunct:
                self._nready -= 1
                return entry
        return None

    def _start_attempt(self, frame: _Frame, index: int, ready_since: float) -> None:
        """Start the next attempt of a ready node; ``ready_since`` is when it became ready
        (monotonic), so the attempt knows how long it queued for its permit."""
        pn = frame.nodes[index]
        path = frame.prefix + pn.node.id
        primary_error = self._fallback_for.pop(path, None) if self._fallback_for else None
        if primary_error is not None:
            assert pn.fallback is not None
            run = pn.fallback
            attempt = 1
            extra = {"error": primary_error.to_dict(), "primary_input": self._input(frame, pn)}
            value = self._input(frame, run) if run.inputs else extra["primary_input"]
        else:
            run = pn
            frame.attempts[index] += 1
            attempt = frame.attempts[index]
            extra = None
            value = self._input(frame, pn)
        node = run.node
        assert isinstance(node, TaskNode)
        token = next(self._tokens)
        now, wall = self.clock.monotonic(), self.clock.time()
        att = _Attempt(token, frame, index, path, attempt, primary_error is not None, now, wall)
        self._running[token] = att
        self._token_of[path] = token
        frame.state[index] = RUNNING
        scope = (
            self._scope(frame, run, value, path, attempt, extra) if self._templated(run) else None
        )
        fault = None
        if self.faults is not None:
            fault = self.faults.draw(self.seed, path, node.id, node.runtime_key, attempt)
        # NodeStarted first: whoever carries out StartTask may publish what
        # precedes it, and the event then precedes anything the attempt logs.
        fallback = node.id if primary_error is not None else None
        running = len(self._running)
        if self.observed:
            self._out.append(
                Emit(
                    NodeStarted(
                        run_id=self.run_id,
                        at=wall,
                        path=path,
                        node=pn.node.id,
                        attempt=attempt,
                        fallback=fallback,
                        queued=now - ready_since,
                        running=running,
                    )
                )
            )
        if self.journal is not None:
            self.journal += (
                JOURNAL_STARTED,
                path,
                attempt,
                wall,
                fallback,
                now - ready_since,
                running,
            )
        self._out.append(
            StartTask(
                token,
                path,
                attempt,
                node,
                value,
                scope,
                fault,
                pn.node.id if primary_error is not None else None,
            )
        )
        if fault is not None:
            self._emit(
                FaultInjected(
                    run_id=self.run_id,
                    at=wall,
                    path=path,
                    node=node.id,
                    attempt=attempt,
                    fault=fault.describe(),
                    rule=fault.rule,
                )
            )
        timeout = _attempt_timeout(node)
        if timeout is not None:
            att.timers.append(self._timer(timeout, "timeout", token))

    def _end_attempt(self, token: int) -> _Attempt | None:
        """Forget attempt ``token`` and give its permit back; None if it already ended."""
        att = self._running.pop(token, None)
        if att is None:
            return None
        if self._token_of.get(att.path) == token:
            del self._token_of[att.path]
        for timer in att.timers:
            self._cancel_timer(timer)
        self.held -= 1
        self._out.append(ReleasePermits(1))
        return att

    def _task_succeeded(self, message: TaskSucceeded) -> None:
        att = self._end_attempt(message.token)
        if att is None:
            return
        frame, index = att.frame, att.index
        pn = frame.nodes[index]
        now = self.clock.monotonic()
        if att.fallback:
            primary_error, attempts = self._primary.pop(att.path)
            result = NodeResult(
                pn.node.id,
                "succeeded",
                message.output,
                error=primary_error,
                attempts=attempts,
                started_at=att.started_at,
                finished_at=self.clock.time(),
                duration=now - att.started,
                fallback=pn.fallback.node.id if pn.fallback else None,
            )
        else:
            result = NodeResult(
                pn.node.id,
                "succeeded",
                message.output,
                attempts=att.attempt,
                started_at=att.started_at,
                finished_at=self.clock.time(),
                duration=now - att.started,
            )
        self._settle(
            frame,
            index,
            SUCCEEDED,
            result,
            message.output,
            attempt=att.attempt,
            payload=message.encoded,
        )

    def _task_failed(self, token: int, error: ErrorInfo) -> None:
        att = self._end_attempt(token)
        if att is None:
            return
        if att.cancel == "timeout":
            error = self._timeout_error(att)
        elif att.cancel is not None:
            self._attempt_cancelled(att)
            return
        self._escalate(att.frame, att.index, att.attempt, error, att.fallback, att)

    def _task_cancelled(self, token: int) -> None:
        att = self._end_attempt(token)
        if att is None:
            return
        if att.cancel == "timeout":
            self._escalate(
                att.frame, att.index, att.attempt, self._timeout_error(att), att.fallback, att
            )
        elif att.cancel is not None:
            self._attempt_cancelled(att)
        else:
            # The runtime gave up on its own; that is a failure, not a cancellation.
            error = error_info(NodeCancelledError(f"node {att.path!r} cancelled itself"))
            self._escalate(att.frame, att.index, att.attempt, error, att.fallback, att)

    def _timeout_error(self, att: _Attempt, *, abandoned: bool = False) -> ErrorInfo:
        node = att.frame.nodes[att.index]
        run = node.fallback if att.fallback and node.fallback else node
        assert isinstance(run.node, TaskNode)
        limit = _attempt_timeout(run.node) or 0.0
        text = f"node {att.path!r} timed out after {format_duration(limit)}"
        if abandoned:
            text += (
                f" and ignored cancellation for {format_duration(self.settings.grace)}; "
                "it was abandoned"
            )
        return error_info(NodeTimeoutError(text), node=att.path, attempt=att.attempt)

    def _attempt_cancelled(self, att: _Attempt, *, abandoned: bool = False) -> None:
        frame, index = att.frame, att.index
        error, attempts, fallback = None, att.attempt, None
        if att.fallback:
            # A cancelled fallback still records why its primary had failed.
            error, attempts = self._primary.pop(att.path, (None, att.attempt))
            pn = frame.nodes[index]
            fallback = pn.fallback.node.id if pn.fallback else None
        result = NodeResult(
            frame.nodes[index].node.id,
            "cancelled",
            error=error,
            attempts=attempts,
            started_at=att.started_at,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - att.started,
            fallback=fallback,
            abandoned=abandoned,
            reason=att.cancel,
        )
        self._settle(frame, index, CANCELLED, result, attempt=att.attempt)

    # -- failures and decisions ------------------------------------------------------

    def _escalate(
        self,
        frame: _Frame,
        index: int,
        attempt: int,
        error: ErrorInfo,
        fallback: bool,
        att: _Attempt | None = None,
    ) -> None:
        pn = frame.nodes[index]
        path = frame.prefix + pn.node.id
        error = _located(error, path, attempt)
        frame.state[index] = WAITING
        now, wall = self.clock.monotonic(), self.clock.time()
        self._escalated[path] = _Pending(
            frame,
            index,
            attempt,
            error,
            fallback,
            att.started if att else now,
            att.started_at if att else wall,
        )
        on_error = getattr(pn.node, "on_error", None)
        self._out.append(
            Escalate(
                path,
                pn.node.id,
                attempt,
                error,
                is_fallback=fallback,
                retry=on_error.retry if on_error is not None else None,
                has_fallback=pn.fallback is not None and not fallback,
            )
        )

    def _decided(self, decision: RetryNode | RunFallback | FailNode) -> None:
        pending = self._escalated.pop(decision.path, None)
        if pending is None or pending.frame.defunct:
            return  # a retired frame already settled the node as cancelled
        frame, index = pending.frame, pending.index
        pn = frame.nodes[index]
        path = decision.path
        assert pending.error is not None
        if isinstance(decision, FailNode):
            self._fail_node(pending, decision)
            return
        if self._stopping:
            # It would have been retried or replaced by its fallback: it did not fail
            # for good, the stop cut it short. Like a node waiting to retry when the
            # run stops, it ends cancelled, its error kept on the node alone.
            self._settle_cancelled(frame, index, "stopping", pending)
            return
        if isinstance(decision, RetryNode):
            self._emit(
                NodeRetrying(
                    run_id=self.run_id,
                    at=self.clock.time(),
                    path=path,
                    node=pn.node.id,
                    attempt=pending.attempt,
                    delay=decision.delay,
                    error=pending.error,
                )
            )
            self._timer_of[path] = self._timer(decision.delay, "retry", pending)
            self._progress += 1
            return
        # RunFallback
        assert pn.fallback is not None
        self._primary[path] = (pending.error, pending.attempt)
        self._fallback_for[path] = pending.error
        self._emit(
            NodeRetrying(
                run_id=self.run_id,
                at=self.clock.time(),
                path=path,
                node=pn.node.id,
                attempt=pending.attempt,
                delay=0.0,
                error=pending.error,
                fallback=pn.fallback.node.id,
            )
        )
        self._make_ready(frame, index)

    def _make_ready(self, frame: _Frame, index: int) -> None:
        frame.state[index] = READY
        self._nready += 1
        pn = frame.nodes[index]
        self._ready.push(pn.rank + frame.base, frame, index, self.clock.monotonic())

    def _fail_node(self, pending: _Pending, decision: FailNode | None) -> None:
        frame, index = pending.frame, pending.index
        pn = frame.nodes[index]
        path = frame.path(index)
        assert pending.error is not None
        primary_error: ErrorInfo | None = None
        attempts = pending.attempt
        fallback_id = None
        if pending.fallback:
            primary_error, attempts = self._primary.pop(path)
            fallback_id = pn.fallback.node.id if pn.fallback else None
            self.errors.append(primary_error)
        self.errors.append(pending.error)
        if decision is not None and decision.fail_fast:
            self._stop("failed", decision.reason or f"node {path!r} failed")
        result = NodeResult(
            pn.node.id,
            "failed",
            error=pending.error,
            attempts=attempts,
            started_at=pending.started_at,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - pending.started,
            fallback=fallback_id,
            primary_error=primary_error,
            reason=decision.reason if decision is not None else None,
        )
        self._settle(
            frame,
            index,
            FAILED,
            result,
            attempt=pending.attempt,
            fail_fast=decision is not None and decision.fail_fast,
        )

    # -- timers ------------------------------------------------------------------

    def _timer_fired(self, timer: int) -> None:
        entry = self._timers.pop(timer, None)
        if entry is None:
            return
        kind, payload = entry
        if kind == "retry":
            pending: _Pending = payload
            self._progress -= 1
            path = pending.frame.path(pending.index)
            self._timer_of.pop(path, None)
            if not pending.frame.defunct:
                self._make_ready(pending.frame, pending.index)
        elif kind == "delay":
            frame, index = payload
            self._progress -= 1
            path = frame.path(index)
            self._timer_of.pop(path, None)
            value = self._input(frame, frame.nodes[index])
            self._settle(
                frame, index, SUCCEEDED, self._result(frame, index, "succeeded", value), value
            )
        elif kind == "checkpoint":
            frame, index = payload
            self._progress -= 1
            path = frame.path(index)
            self._timer_of.pop(path, None)
            node = frame.nodes[index].node
            assert isinstance(node, CheckpointNode)
            self._resolve_checkpoint(frame, index, (node.default or "reject") == "approve", True)
        elif kind == "timeout":
            att = self._running.get(payload)
            if att is not None and att.cancel is None:
                att.cancel = "timeout"
                self._out.append(CancelTask(att.token, "timeout"))
                att.timers.append(self._timer(self.settings.grace, "grace", att.token))
        elif kind == "grace":
            att = self._running.get(payload)
            if att is not None:
                self._abandon(att)
        elif kind == "run-timeout":
            limit = format_duration(self.settings.timeout or 0.0)
            self._cancel_run(CancelRun("timeout", f"run exceeded its timeout of {limit}"))
        elif kind == "stop-grace":
            for att in list(self._running.values()):
                self._abandon(att)

    def _abandon(self, att: _Attempt) -> None:
        """Give up on an attempt that ignored its cancellation for the whole grace period."""
        self._end_attempt(att.token)
        self.abandoned += 1
        self._out.append(AbandonTask(att.token))
        if att.cancel == "timeout":
            self._escalate(
                att.frame,
                att.index,
                att.attempt,
                self._timeout_error(att, abandoned=True),
                att.fallback,
                att,
            )
        else:
            self._attempt_cancelled(att, abandoned=True)

    # -- stopping ----------------------------------------------------------------

    def _cancel_run(self, message: CancelRun) -> None:
        if not self._stopping:
            self._stop("cancelled", message.message or f"run {message.reason}")

    def _stop(self, status: RunStatus, reason: str) -> None:
        """Fail fast or cancel: cancel what runs, start nothing new, then wait out the grace."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_status = status
        self.reason = reason
        for att in self._running.values():
            if att.cancel is None:
                att.cancel = "stopping"
                self._out.append(CancelTask(att.token, "stopping"))
        while (entry := self._ready.pop()) is not None:
            frame, index, _ = entry
            if frame.state[index] == READY:
                frame.state[index] = PENDING
        self._nready = 0
        for timer, (kind, payload) in list(self._timers.items()):
            if kind == "retry":
                self._cancel_timer(timer)
                self._progress -= 1
                self._settle_cancelled(payload.frame, payload.index, "stopping", payload)
            elif kind in ("delay", "checkpoint"):
                self._cancel_timer(timer)
                self._progress -= 1
                frame, index = payload
                self._settle_cancelled(frame, index, "stopping")
        for path, pending in list(self._waiting.items()):
            del self._waiting[path]
            self._settle_cancelled(pending.frame, pending.index, "stopping")
        if self._running:
            self._grace_timer = self._timer(self.settings.grace, "stop-grace", None)

    def _settle_cancelled(
        self, frame: _Frame, index: int, reason: str, pending: _Pending | None = None
    ) -> None:
        pn = frame.nodes[index]
        path = frame.path(index)
        self._timer_of.pop(path, None)
        self._fallback_for.pop(path, None)
        self._primary.pop(path, None)
        # A delay or checkpoint cut short keeps when it began waiting; a node waiting
        # to retry, when its last attempt began.
        since = self._waiting_since.pop(path, None)
        if pending is not None:
            since = (pending.started, pending.started_at)
        result = NodeResult(
            pn.node.id,
            "cancelled",
            error=pending.error if pending is not None else None,
            attempts=pending.attempt if pending is not None else frame.attempts[index],
            started_at=since[1] if since is not None else None,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - since[0] if since is not None else None,
            reason=reason,
        )
        # The event names the attempt that was cut short, as an attempt cancelled in flight does.
        self._settle(frame, index, CANCELLED, result, attempt=max(1, result.attempts))

    def _maybe_finish(self) -> None:
        if (
            self._running
            or self._nready
            or self._progress
            or self._escalated
            or self._work
            or self.status != "running"
        ):
            return
        root = self._root
        assert root is not None
        if self._stopping:
            status = self._stop_status
        elif root.open > 0:
            if self._waiting:
                status = "paused"
                waiting = ", ".join(repr(p) for p in self._waiting)
                self.reason = f"waiting at checkpoint {waiting}"
            else:  # pragma: no cover - would be a scheduler bug; fail loudly, never hang
                status = "failed"
                self.reason = "internal error: the run stalled with nodes pending"
        elif self.errors or root.failed:
            status = "failed"
        else:
            status = "completed"
        if self._stopping:
            # Control nodes still open end as cancelled; a paused run leaves them open.
            for control in list(self._controls.values()):
                if control.frame.state[control.index] == RUNNING:
                    self._settle_cancelled(control.frame, control.index, self.reason or "stopped")
            self._controls.clear()
        self._cancel_timer(self._run_timer)
        self._cancel_timer(self._grace_timer)
        if self.requested:
            self._out.append(WithdrawPermits(self.requested))
            self.requested = 0
        assert self.held == 0, f"permits still held at the end of the run: {self.held}"
        self.status = status
        self.finished_at = self.clock.time()
        errors = tuple(self.errors)
        self._emit(
            RunFinished(
                run_id=self.run_id,
                at=self.finished_at,
                status=status,
                reason=self.reason,
                errors=errors,
                abandoned=self.abandoned,
            )
        )
        self._out.append(Finished(status, self.reason, errors))

    # -- settling ----------------------------------------------------------------

    def _result(
        self, frame: _Frame, index: int, status: str, output: Any = None, **extra: Any
    ) -> NodeResult:
        path = frame.path(index)
        since = self._waiting_since.pop(path, None)
        started, started_at = (
            since if since is not None else (self.clock.monotonic(), self.clock.time())
        )
        return NodeResult(
            frame.nodes[index].node.id,
            status,  # type: ignore[arg-type]
            output,
            attempts=1,
            started_at=started_at,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - started,
            **extra,
        )

    def _settle(
        self,
        frame: _Frame,
        index: int,
        status: int,
        result: NodeResult,
        output: Any = _MISSING,
        *,
        attempt: int = 1,
        reused: bool = False,
        payload: bytes | None = None,
        fail_fast: bool = False,
    ) -> None:
        """Record the node's final state and let its frame move on."""
        pn = frame.nodes[index]
        node_id = pn.node.id
        path = frame.prefix + node_id
        previous = frame.state[index]
        frame.state[index] = status
        if previous == READY:
            self._nready -= 1
        self.results[path] = result
        wall = result.finished_at if result.finished_at is not None else self.clock.time()
        if status == SUCCEEDED:
            self.outputs[path] = output
            if self.observed:
                self._out.append(
                    Emit(
                        NodeSucceeded(
                            run_id=self.run_id,
                            at=wall,
                            path=path,
                            node=node_id,
                            attempt=attempt,
                            result=result,
                            reused=reused,
                        )
                    )
                )
            if self.journal is not None:
                self.journal += (JOURNAL_SUCCEEDED, path, attempt, wall, result, payload, reused)
        elif status == FAILED:
            assert result.error is not None
            self._emit(
                NodeFailed(
                    run_id=self.run_id,
                    at=wall,
                    path=path,
                    node=node_id,
                    attempt=attempt,
                    error=result.error,
                    result=result,
                    fail_fast=fail_fast,
                )
            )
        elif status == CANCELLED:
            self._emit(
                NodeCancelled(
                    run_id=self.run_id,
                    at=wall,
                    path=path,
                    node=node_id,
                    attempt=attempt,
                    result=result,
                )
            )
        else:
            self._emit(
                NodeSkipped(run_id=self.run_id, at=wall, path=path, node=node_id, result=result)
            )
        frame.open -= 1
        if self._waves:
            frame.wave_open[pn.wave] -= 1
        control = self._controls.pop(path, None)
        if control is not None:
            control.closed = True
        if frame.defunct or self._stopping:
            return
        if status == SUCCEEDED:
            remaining = frame.remaining
            work = self._work
            for d in pn.dependents:
                remaining[d] -= 1
                if remaining[d] == 0:
                    work.append((frame, d))
        else:
            frame.failed = True
            self._skip_downstream(frame, index, f"upstream {path!r} did not succeed")
        if self._waves:
            self._advance_wave(frame)
        if frame.open == 0:
            self._work.append((frame, -1))

    def _skip_downstream(self, frame: _Frame, index: int, reason: str) -> None:
        stack = list(frame.nodes[index].dependents)
        while stack:
            d = stack.pop()
            if frame.state[d] != PENDING:
                continue
            frame.state[d] = SKIPPED
            pn = frame.nodes[d]
            path = frame.prefix + pn.node.id
            result = NodeResult(pn.node.id, "skipped", finished_at=self.clock.time(), reason=reason)
            self.results[path] = result
            self._emit(
                NodeSkipped(
                    run_id=self.run_id,
                    at=self.clock.time(),
                    path=path,
                    node=pn.node.id,
                    result=result,
                )
            )
            frame.open -= 1
            if self._waves:
                frame.wave_open[pn.wave] -= 1
            stack.extend(pn.dependents)

    def _advance_wave(self, frame: _Frame) -> None:
        waves = frame.scope.waves
        while frame.wave < len(waves) and frame.wave_open[frame.wave] == 0:
            frame.wave += 1
            if frame.wave < len(waves):
                for index in waves[frame.wave]:
                    if frame.remaining[index] == 0 and frame.state[index] == PENDING:
                        self._work.append((frame, index))

    def _frame_done(self, frame: _Frame) -> None:
        if frame.defunct or self._stopping or frame.control is None:
            return
        frame.control.frame_done(frame)

    def _body_output(self, frame: _Frame) -> Any:
        output = frame.scope.output
        if output is None or frame.state[output] != SUCCEEDED:
            return None
        return self.outputs.get(frame.path(output))

    def _retire(self, frame: _Frame, reason: str) -> None:
        """A frame whose control no longer needs it: cancel what runs, skip what has not begun."""
        if frame.defunct:
            return
        frame.defunct = True
        for index, state in enumerate(frame.state):
            path = frame.path(index)
            if state in (PENDING, READY):
                if state == READY:
                    self._nready -= 1
                frame.state[index] = SKIPPED
                pn = frame.nodes[index]
                result = NodeResult(
                    pn.node.id, "skipped", finished_at=self.clock.time(), reason=reason
                )
                self.results[path] = result
                self._emit(
                    NodeSkipped(
                        run_id=self.run_id,
                        at=self.clock.time(),
                        path=path,
                        node=pn.node.id,
                        result=result,
                    )
                )
                frame.open -= 1
            elif state == RUNNING:
                token = self._token_of.get(path)
                att = self._running.get(token) if token is not None else None
                if att is not None:
                    if att.cancel is None:
                        att.cancel = "superseded"
                        self._out.append(CancelTask(att.token, "superseded"))
                        # Never waited on forever: abandoned if it ignores the cancellation.
                        att.timers.append(self._timer(self.settings.grace, "grace", att.token))
                else:
                    control = self._controls.get(path)
                    if control is not None:
                        for child in control.frames():
                            self._retire(child, reason)
                    self._settle_cancelled(frame, index, reason)
            elif state == WAITING:
                timer = self._timer_of.pop(path, None)
                if timer is not None and timer in self._timers:
                    self._cancel_timer(timer)
                    self._progress -= 1
                pending = self._waiting.pop(path, None)
                self._settle_cancelled(frame, index, reason, pending)
                # An escalation in flight is answered later and then ignored.

    # -- control nodes -----------------------------------------------------------

    def _control_failed(self, control: _Control, error: ErrorInfo) -> None:
        control.closed = True
        self._escalate(control.frame, control.index, 1, error, False)

    def _control_done(self, control: _Control, output: Any) -> None:
        control.closed = True
        result = NodeResult(
            control.pn.node.id,
            "succeeded",
            output,
            attempts=1,
            started_at=control.started_at,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - control.started,
        )
        self._settle(control.frame, control.index, SUCCEEDED, result, output)

    def _skip_scope(self, scope: Scope, prefix: str) -> None:
        """Record the nodes of an untaken body as skipped, nested static bodies included."""
        wall = self.clock.time()
        for pn in scope.nodes:
            path = prefix + pn.node.id
            result = NodeResult(pn.node.id, "skipped", finished_at=wall, reason="not taken")
            self.results[path] = result
            self._emit(
                NodeSkipped(run_id=self.run_id, at=wall, path=path, node=pn.node.id, result=result)
            )
            if not isinstance(pn.node, ForeachNode | LoopNode | WhileNode):
                for body in pn.bodies:
                    self._skip_scope(body, prefix)

    def _control_body_failed(self, control: _Control, failed: list[str]) -> None:
        control.closed = True
        shown = ", ".join(repr(p) for p in failed[:5]) + (" ..." if len(failed) > 5 else "")
        error = ErrorInfo(
            "BodyFailed",
            f"{len(failed)} node(s) in the body of {control.path!r} did not succeed: {shown}",
            node=control.path,
        )
        result = NodeResult(
            control.pn.node.id,
            "failed",
            error=error,
            attempts=1,
            started_at=control.started_at,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - control.started,
        )
        self._settle(control.frame, control.index, FAILED, result)

    def _failed_paths(self, frame: _Frame) -> list[str]:
        return [frame.path(i) for i, s in enumerate(frame.state) if s in (FAILED, CANCELLED)] or [
            frame.path(i) for i, s in enumerate(frame.state) if s == SKIPPED
        ]

    # -- leaves without permits --------------------------------------------------

    def _start_checkpoint(self, frame: _Frame, index: int, path: str, pn: PlannedNode) -> None:
        node = pn.node
        assert isinstance(node, CheckpointNode)
        self._begin_wait(frame, index)
        decision = self._decisions.get(path)
        if decision is not None:
            self._resolve_checkpoint(frame, index, decision, False)
            return
        try:
            prompt = self._render(node.prompt, frame, pn, path)
        except ExpressionError as exc:
            prompt = f"{node.prompt} ({exc})"
        deadline = None
        if node.timeout is not None:
            self._timer_of[path] = self._timer(node.timeout, "checkpoint", (frame, index))
            self._progress += 1
            deadline = self.clock.time() + node.timeout
        else:
            self._waiting[path] = _Pending(
                frame, index, 1, None, False, self.clock.monotonic(), self.clock.time()
            )
        # Recorded so that a paused run's snapshot shows what it waits for.
        self.results[path] = NodeResult(node.id, "waiting", reason=str(prompt) or None)
        self._emit(
            CheckpointWaiting(
                run_id=self.run_id,
                at=self.clock.time(),
                path=path,
                node=node.id,
                prompt=str(prompt),
                deadline=deadline,
            )
        )

    def _checkpoint_decided(self, message: CheckpointDecided) -> None:
        path = message.path
        pending = self._waiting.pop(path, None)
        if pending is not None:
            self._resolve_checkpoint(pending.frame, pending.index, message.approve, False)
            return
        timer = self._timer_of.get(path)
        if timer is not None and self._timers.get(timer, ("",))[0] == "checkpoint":
            frame, index = self._timers[timer][1]
            self._cancel_timer(timer)
            self._timer_of.pop(path, None)
            self._progress -= 1
            self._resolve_checkpoint(frame, index, message.approve, False)
            return
        self._decisions[path] = message.approve

    def _resolve_checkpoint(
        self, frame: _Frame, index: int, approve: bool, by_default: bool
    ) -> None:
        pn = frame.nodes[index]
        path = frame.path(index)
        if approve:
            value = self._input(frame, pn)
            self._settle(
                frame, index, SUCCEEDED, self._result(frame, index, "succeeded", value), value
            )
            return
        how = "by its default after its timeout" if by_default else "by decision"
        exc = CheckpointRejectedError(f"checkpoint {path!r} was rejected {how}")
        self._escalate(frame, index, 1, error_info(exc, node=path, attempt=1), False)

    def _run_break(self, frame: _Frame, index: int, path: str, pn: PlannedNode) -> None:
        node = pn.node
        assert isinstance(node, BreakNode)
        self._begin_wait(frame, index)
        try:
            fired = bool(self._evaluate(node.when, frame, pn, path))
        except ExpressionError as exc:
            self._escalate(frame, index, 1, error_info(exc, node=path, attempt=1), False)
            return
        if fired:
            self._break(frame, pn)
        self._settle(frame, index, SUCCEEDED, self._result(frame, index, "succeeded", fired), fired)

    def _break(self, frame: _Frame, pn: PlannedNode) -> None:
        """A ``<break>`` fired in ``frame``: its loop, while or foreach stops repeating."""
        target: _Frame | None = frame
        while target is not None:
            control = target.control
            if control is not None and control.pn.node.id == pn.break_target:
                target.broke = True
                control.broken(target)
                return
            target = target.parent

    # -- values and scopes -------------------------------------------------------

    def _input(self, frame: _Frame, pn: PlannedNode) -> Any:
        refs = pn.inputs
        if not refs:
            return frame.input
        outputs = self.outputs
        prefixes = frame.prefixes
        if len(refs) == 1:
            ref = refs[0]
            return outputs.get(prefixes[ref.depth] + ref.id)
        return [outputs.get(prefixes[r.depth] + r.id) for r in refs]

    def _templated(self, pn: PlannedNode) -> bool:
        key = id(pn)
        cached = self._needs_scope.get(key)
        if cached is None:
            node = pn.node
            assert isinstance(node, TaskNode)
            if not node.config:
                self._needs_scope[key] = False
                return False
            try:
                expressions = get_runtime(node.runtime_key).expressions
            except KeyError:
                expressions = frozenset()
            cached = bool(expressions & node.config.keys()) or any(
                _has_template(v) for v in node.config.values()
            )
            self._needs_scope[key] = cached
        return cached

    def _scope(
        self,
        frame: _Frame,
        pn: PlannedNode,
        value: Any,
        path: str,
        attempt: int,
        extra: Mapping[str, Any] | None = None,
        refs: tuple[Ref, ...] = (),
        lookup: _Frame | None = None,
    ) -> dict[str, Any]:
        views: dict[str, Any] = {}
        source = lookup or frame
        for ref in (*pn.inputs, *pn.refs, *refs):
            ref_path = source.prefixes[min(ref.depth, len(source.prefixes) - 1)] + ref.id
            result = self.results.get(ref_path)
            views[ref.id] = {
                "output": self.outputs.get(ref_path),
                "status": result.status if result is not None else "pending",
            }
        scope: dict[str, Any] = {
            "input": value,
            "config": self.config,
            "secrets": self.secrets,
            "context": {
                "run_id": self.run_id,
                "workflow": self.plan.workflow.name,
                "version": self.plan.workflow.version,
                "node": pn.node.id,
                "path": path,
                "attempt": attempt,
                "seed": self.seed,
            },
            "nodes": views,
        }
        scope.update(views)
        scope.update(frame.bindings)
        if extra:
            scope.update(extra)
        return scope

    def _evaluate(
        self,
        text: str,
        frame: _Frame,
        pn: PlannedNode,
        path: str,
        *,
        extra: Mapping[str, Any] | None = None,
        refs: tuple[Ref, ...] = (),
        lookup: _Frame | None = None,
    ) -> Any:
        scope = self._scope(
            frame, pn, self._input(frame, pn), path, 1, extra, refs=refs, lookup=lookup
        )
        return compile_expression(text).evaluate(scope)

    def _render(self, text: str, frame: _Frame, pn: PlannedNode, path: str) -> Any:
        template = compile_template(text)
        if template.is_static:
            return text
        return template.render(self._scope(frame, pn, self._input(frame, pn), path, 1))

    # -- the run's outcome -------------------------------------------------------

    def result(self, *, snapshot_path: str | None = None) -> RunResult:
        """The run's outcome so far (final once ``finished``)."""
        return RunResult.from_nodes(
            self.results,
            run_id=self.run_id,
            workflow=self.plan.workflow.name,
            status=self.status,
            errors=tuple(self.errors),
            seed=self.seed,
            reason=self.reason,
            started_at=self.started_at,
            finished_at=self.finished_at,
            snapshot_path=snapshot_path,
            abandoned=self.abandoned,
            version=self.plan.workflow.version,
        )

    def waiting(self) -> list[str]:
        """The paths of the checkpoints waiting for a decision, with or without a timeout."""
        return [path for path, result in self.results.items() if result.status == "waiting"]

    def statistics(self) -> dict[str, int]:
        """Counts for progress displays: running attempts, queued nodes, permits held and asked."""
        return {
            "running": len(self._running),
            "ready": self._nready,
            "held": self.held,
            "requested": self.requested,
            "waiting": len(self._waiting),
        }


def _attempt_timeout(node: TaskNode) -> float | None:
    retry = node.on_error.retry if node.on_error is not None else None
    if retry is not None and retry.timeout is not None:
        return retry.timeout
    return node.timeout


def _located(error: ErrorInfo, path: str, attempt: int) -> ErrorInfo:
    if error.node == path and error.attempt == attempt:
        return error
    return ErrorInfo(
        error.type,
        error.message,
        error.traceback,
        error.retryable,
        error.permanent,
        error.retry_after,
        path,
        attempt,
    )


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, Mapping):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


# --- control nodes ----------------------------------------------------------------------


class _Control:
    """A running control node: it opens frames and settles itself when they are done."""

    def __init__(
        self, sched: Scheduler, frame: _Frame, index: int, path: str, pn: PlannedNode
    ) -> None:
        self.sched = sched
        self.frame = frame
        self.index = index
        self.path = path
        self.pn = pn
        self.input = sched._input(frame, pn)
        self.started = sched.clock.monotonic()
        self.started_at = sched.clock.time()
        self.closed = False
        self.active: list[_Frame] = []

    def start(self) -> None:
        raise NotImplementedError

    def frame_done(self, frame: _Frame) -> None:
        raise NotImplementedError

    def broken(self, frame: _Frame) -> None:
        """A ``<break>`` fired in ``frame``; repeating controls stop opening iterations."""

    def frames(self) -> list[_Frame]:
        return list(self.active)

    def evaluate(self, text: str, **kwargs: Any) -> Any:
        return self.sched._evaluate(text, self.frame, self.pn, self.path, **kwargs)

    def open(
        self,
        scope: Scope,
        *,
        segment: str | None = None,
        bindings: dict[str, Any] | None = None,
        input: Any = _MISSING,
        iteration: int = 0,
    ) -> _Frame:
        frame = self.sched._open_frame(
            scope,
            parent=self.frame,
            control=self,
            segment=segment,
            bindings=bindings or {},
            input=self.input if input is _MISSING else input,
            iteration=iteration,
        )
        self.active.append(frame)
        if frame.prefix in self.sched._broken:
            # A <break> fired in this iteration before the resume. The break itself may
            # never run again (it succeeded, or an if/branch around it did), so the
            # iteration is stopped here, as it was then.
            frame.broke = True
            self.broken(frame)
        return frame

    def close_frame(self, frame: _Frame) -> None:
        if frame in self.active:
            self.active.remove(frame)

    def done(self, output: Any) -> None:
        for frame in self.active:
            self.sched._retire(frame, f"not needed: {self.path!r} finished")
        self.active.clear()
        self.sched._control_done(self, output)

    def body_failed(self, failed: list[str]) -> None:
        for frame in self.active:
            self.sched._retire(frame, f"not needed: {self.path!r} failed")
        self.active.clear()
        self.sched._control_body_failed(self, failed)

    def fail(self, exc: Exception) -> None:
        for frame in self.active:
            self.sched._retire(frame, f"not needed: {self.path!r} failed")
        self.active.clear()
        self.sched._control_failed(self, error_info(exc, node=self.path, attempt=1))

    def skip_bodies(self, taken: int | None) -> None:
        """Record every node of the untaken bodies as skipped ("not taken")."""
        for position, scope in enumerate(self.pn.bodies):
            if position != taken:
                self.sched._skip_scope(scope, self.frame.prefix)


class _Parallel(_Control):
    def start(self) -> None:
        node = self.pn.node
        assert isinstance(node, ParallelNode)
        self.node = node
        self.branches = self.pn.bodies
        self.needed = node.wait or len(self.branches)
        self.limit = node.max_concurrency or len(self.branches)
        self.next = 0
        self.outputs: dict[int, Any] = {}
        self.failed: list[str] = []
        self.position: dict[int, int] = {}  # frame seq -> branch position
        if not self.branches:
            self.done(_merge(node, [], []))
            return
        self._launch()

    def _launch(self) -> None:
        while len(self.active) < self.limit and self.next < len(self.branches):
            position = self.next
            self.next += 1
            branch = self.node.branches[position]
            frame = self.open(self.branches[position], bindings={"branch": branch.name})
            self.position[frame.seq] = position

    def frame_done(self, frame: _Frame) -> None:
        if self.closed:
            return
        self.close_frame(frame)
        position = self.position[frame.seq]
        if frame.failed:
            self.failed.extend(self.sched._failed_paths(frame))
        else:
            self.outputs[position] = self.sched._body_output(frame)
        if len(self.outputs) >= self.needed:
            chosen = sorted(self.outputs)[: self.needed]
            names = [self.node.branches[p].name for p in chosen]
            self.done(_merge(self.node, names, [self.outputs[p] for p in chosen]))
            return
        # Branches are independent of each other's failures (keep-going): they all
        # run, and the parallel fails once none is left that could still succeed.
        self._launch()
        if not self.active:
            self.body_failed(self.failed)


class _Foreach(_Control):
    def start(self) -> None:
        node = self.pn.node
        assert isinstance(node, ForeachNode)
        self.node = node
        try:
            items = self.evaluate(node.collection)
        except ExpressionError as exc:
            self.fail(exc)
            return
        if isinstance(items, Mapping | str | bytes) or not hasattr(items, "__iter__"):
            self.fail(
                TypeError(
                    f"foreach {self.path!r} needs a list to iterate over; its collection "
                    f"{node.collection!r} gave {type(items).__name__}"
                )
            )
            return
        self.items = list(items)
        self.outputs: list[Any] = [None] * len(self.items)
        self.limit = node.concurrency or max(1, len(self.items))
        self.next = 0
        self.cutoff: int | None = None
        self.failed: list[str] = []
        self._launch()

    def _end(self) -> int:
        return len(self.items) if self.cutoff is None else min(len(self.items), self.cutoff + 1)

    def _launch(self) -> None:
        # The end is read again after each opening: an item that broke before a resume
        # sets the cutoff as it opens.
        while len(self.active) < self.limit and self.next < self._end():
            k = self.next
            self.next += 1
            self.open(
                self.pn.bodies[0],
                segment=f"{self.node.id}[{k}]/",
                bindings={self.node.item: self.items[k], self.node.index: k},
                input=self.items[k],
                iteration=k,
            )
        end = self._end()
        if not self.active and self.next >= end:
            if self.failed:
                self.body_failed(self.failed)
            else:
                self.done(self.outputs[:end])

    def broken(self, frame: _Frame) -> None:
        if self.cutoff is None or frame.iteration < self.cutoff:
            self.cutoff = frame.iteration
        for other in list(self.active):
            if other.iteration > self.cutoff:
                self.active.remove(other)
                self.sched._retire(other, f"not needed: {self.path!r} broke at item {self.cutoff}")

    def frame_done(self, frame: _Frame) -> None:
        if self.closed:
            return
        self.close_frame(frame)
        if frame.failed:
            self.failed.extend(self.sched._failed_paths(frame))
        else:
            self.outputs[frame.iteration] = self.sched._body_output(frame)
        self._launch()


class _If(_Control):
    def start(self) -> None:
        node = self.pn.node
        assert isinstance(node, IfNode)
        try:
            taken = 0 if self.evaluate(node.condition) else 1
        except ExpressionError as exc:
            self.fail(exc)
            return
        _open_taken(self, taken)

    def frame_done(self, frame: _Frame) -> None:
        _taken_done(self, frame)


class _Branch(_Control):
    def start(self) -> None:
        node = self.pn.node
        assert isinstance(node, BranchNode)
        taken = len(node.cases)  # the default body
        try:
            for position, case in enumerate(node.cases):
                if self.evaluate(case.when):
                    taken = position
                    break
        except ExpressionError as exc:
            self.fail(exc)
            return
        _open_taken(self, taken)

    def frame_done(self, frame: _Frame) -> None:
        _taken_done(self, frame)


def _open_taken(control: _Control, taken: int) -> None:
    control.skip_bodies(taken)
    scope = control.pn.bodies[taken]
    if not scope.nodes:
        control.done(None)
    else:
        control.open(scope)


def _taken_done(control: _Control, frame: _Frame) -> None:
    if control.closed:
        return
    control.close_frame(frame)
    if frame.failed:
        control.body_failed(control.sched._failed_paths(frame))
    else:
        control.done(control.sched._body_output(frame))


class _Loop(_Control):
    def start(self) -> None:
        node = self.pn.node
        assert isinstance(node, LoopNode | WhileNode)
        self.node = node
        self.iteration = 0
        self.last: Any = None
        self.previous: _Frame | None = None
        self._next()

    def _condition_holds(self) -> bool:
        node = self.node
        if not isinstance(node, WhileNode):
            return True
        return bool(
            self.evaluate(
                node.condition,
                extra={"iteration": self.iteration},
                refs=self.pn.body_refs,
                lookup=self.previous,
            )
        )

    def _next(self) -> None:
        if self.iteration >= self.node.max:
            self.done(self.last)
            return
        try:
            holds = self._condition_holds()
        except ExpressionError as exc:
            self.fail(exc)
            return
        if not holds:
            self.done(self.last)
            return
        self.open(
            self.pn.bodies[0],
            segment=f"{self.node.id}[{self.iteration}]/",
            bindings={"iteration": self.iteration},
            input=self.input if self.iteration == 0 else self.last,
            iteration=self.iteration,
        )

    def frame_done(self, frame: _Frame) -> None:
        if self.closed:
            return
        self.close_frame(frame)
        if frame.failed:
            self.body_failed(self.sched._failed_paths(frame))
            return
        self.last = self.sched._body_output(frame)
        self.previous = frame
        stop = frame.broke
        node = self.node
        if not stop and isinstance(node, LoopNode) and node.break_when is not None:
            try:
                stop = bool(
                    self.evaluate(
                        node.break_when,
                        extra={"iteration": self.iteration},
                        refs=self.pn.body_refs,
                        lookup=frame,
                    )
                )
            except ExpressionError as exc:
                self.fail(exc)
                return
        self.iteration += 1
        if stop:
            self.done(self.last)
        else:
            self._next()


def _broken_frames(plan: Plan, prior: Mapping[str, NodeResult]) -> frozenset[str]:
    """The frame prefixes (``outer[0]/loop[2]/``) that a ``<break>`` recorded in ``prior``
    stopped: the snapshot records a break as its node's result, output True when it fired,
    at a path that runs through the iteration it stopped."""
    broken: set[str] = set()
    for path, result in prior.items():
        if result.output is not True:
            continue
        segments = path.split("/")
        pn = plan.nodes.get(segments[-1])
        if pn is None or pn.break_target is None:
            continue
        mark = pn.break_target + "["
        for depth in range(len(segments) - 2, -1, -1):
            segment = segments[depth]
            if segment.startswith(mark) and segment.endswith("]"):
                broken.add("/".join(segments[: depth + 1]) + "/")
                break
    return frozenset(broken)


def _merge(node: ParallelNode, names: list[str], outputs: list[Any]) -> Any:
    if node.merge == "object":
        return dict(zip(names, outputs, strict=True))
    if node.merge == "concat":
        merged: list[Any] = []
        for output in outputs:
            if isinstance(output, list | tuple):
                merged.extend(output)
            elif output is not None:
                merged.append(output)
        return merged
    return outputs


_CONTROLS: dict[type, Callable[..., _Control]] = {
    ParallelNode: _Parallel,
    ForeachNode: _Foreach,
    IfNode: _If,
    BranchNode: _Branch,
    LoopNode: _Loop,
    WhileNode: _Loop,
}
