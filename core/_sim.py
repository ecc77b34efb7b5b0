"""Deterministic simulation: the real core under a virtual clock.

:class:`Simulation` drives a :class:`Scheduler` exactly as the actors do —
a FIFO semaphore for permits, a :class:`Supervisor` answering escalations,
timers, and an executor running each attempt's runtime — but in one thread
and in virtual time. Every attempt runs to completion synchronously when it
starts (``ctx.sleep`` only adds to its virtual duration; an ``async def``
runtime runs on an event loop in virtual time, see :mod:`._vtime`, and the
virtual time it awaited adds to it too) and its outcome is
delivered when its virtual duration has passed; simultaneous deliveries are
ordered by the simulation's seeded RNG. The same seed therefore gives the
same trace, so any run can be replayed exactly, and a property test can try
thousands of completion orders quickly.

``trace`` records every input handed to the scheduler and every command it
returned, in order; ``events`` the observable events alone, and ``journal``
(with ``journal=True``) the journal a persisted run's writer would read.
:meth:`Simulation.digest` hashes the trace's canonical bytes
(:mod:`._canonical`): two runs with the same inputs and seed have the same
digest, in any process.

A runtime that raises past ``Exception`` (an injected ``crash``, or
``SystemExit``) is reported as :class:`NodeCrashedError`, as a node actor that
died would be; only ``KeyboardInterrupt`` goes through.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import deque
from collections.abc import Callable, Mapping
from itertools import count
from pathlib import Path
from typing import Any

from ._canonical import trace_bytes
from ._clock import FakeClock
from ._errors import NodeCrashedError, WavecrestError
from ._events import (
    AbandonTask,
    CancelTask,
    CancelTimer,
    Emit,
    Escalate,
    Finished,
    NodeResult,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    RunEvent,
    StartTask,
    StartTimer,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)
from ._execute import ExecutorCrash, execute_task
from ._faults import FaultPlan
from ._graph import Plan, plan
from ._model import Workflow
from ._result import RunResult
from ._retry import error_info
from ._scheduler import RunSettings, Scheduler
from ._semaphore import FifoSemaphore
from ._supervisor import Supervisor, SupervisorPolicy
from ._vtime import VirtualStall, run_in_virtual_time

__all__ = ["Simulation", "SimulationStalled"]

_RUN = "run"


class SimulationStalled(WavecrestError):
    """Raised when a simulated run has nothing left to do but has not finished.

    That is a hang fault on a node with no timeout (nothing would ever cancel
    it), or a scheduler bug.
    """


class _Hang(BaseException):
    """Unwinds a hung attempt out of ``execute_task``; a BaseException so that the
    executor's ``except Exception`` does not report it as the runtime's failure."""


class _VirtualCancel:
    """The cancel signal seen by runtimes in a simulation: waiting costs virtual time only."""

    def __init__(self) -> None:
        self.slept = 0.0

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            raise _Hang
        self.slept += timeout
        return False

    def run(self, coroutine: Any) -> Any:
        """Run an async runtime's coroutine in virtual time; waiting on anything but time hangs."""
        try:
            outcome, took = run_in_virtual_time(coroutine)
        except VirtualStall:
            raise _Hang from None
        self.slept += took
        return outcome


class _Flight:
    __slots__ = ("cooperative", "hung", "outcome", "start")

    def __init__(self, start: StartTask, outcome: Any, *, hung: bool, cooperative: bool) -> None:
        self.start = start
        self.outcome = outcome
        self.hung = hung
        self.cooperative = cooperative


class Simulation:
    """Run one workflow in virtual time with the real scheduler and supervisor.

    ``duration(start)`` gives each attempt's virtual running time (default: a
    seeded draw between 1 and 10 ms); ``cooperative(start)`` says whether it
    stops when cancelled (default: yes). ``crash_after`` stops the simulation
    after that many attempt outcomes, as if the process died there: the
    returned result then has status ``running`` and holds what a snapshot
    would. ``prior`` holds the node results of the run being resumed.

    :meth:`run` runs it once; ``result`` then holds what it returned.
    """

    def __init__(
        self,
        workflow: Workflow | Plan,
        *,
        seed: int = 0,
        run_id: str = "sim",
        settings: RunSettings | None = None,
        policy: SupervisorPolicy | None = None,
        faults: FaultPlan | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        prior: Mapping[str, NodeResult] | None = None,
        decisions: Mapping[str, bool] | None = None,
        duration: Callable[[StartTask], float] | None = None,
        cooperative: Callable[[StartTask], bool] | None = None,
        crash_after: int | None = None,
        base_dir: Path | str | None = None,
        journal: bool = False,
    ) -> None:
        self.plan = workflow if isinstance(workflow, Plan) else plan(workflow)
        wf = self.plan.workflow
        self.seed = seed
        self.prior: Mapping[str, NodeResult] | None = prior
        self.faults = faults
        self.clock = FakeClock()
        self.settings = settings or RunSettings()
        self.rng = random.Random(seed)
        self.scheduler = Scheduler(
            self.plan,
            run_id=run_id,
            clock=self.clock,
            settings=self.settings,
            seed=seed,
            config=config,
            secrets=secrets,
            prior=prior,
            decisions=decisions,
            faults=faults,
            resumed=prior is not None,
            journal=journal,
        )
        self.supervisor = Supervisor(policy or SupervisorPolicy(), seed=seed, clock=self.clock)
        self.semaphore = FifoSemaphore(self.settings.max_concurrency)
        self.secrets = dict(secrets or {})
        self.duration = duration or (lambda _start: self.rng.uniform(0.001, 0.01))
        self.cooperative = cooperative or (lambda _start: True)
        self.crash_after = crash_after
        self.base_dir = (
            Path(base_dir)
            if base_dir is not None
            else (Path(wf.path).parent if wf.path else Path("."))
        )
        self.trace: list[object] = []
        self.events: list[RunEvent] = []
        self.journal: list[Any] = []
        self.max_running = 0
        #: The run's result once :meth:`run` returned (None before).
        self.result: RunResult | None = None
        self._inputs: deque[object] = deque()
        self._agenda: list[tuple[float, float, int, str, Any]] = []
        self._seq = count()
        self._flights: dict[int, _Flight] = {}
        self._cancelled_timers: set[int] = set()
        self._outcomes = 0
        self._done = False

    # -- running -----------------------------------------------------------------

    def run(self) -> RunResult:
        """Run to the end (or to ``crash_after``) and return the result (also ``result``)."""
        if self.result is not None:
            raise RuntimeError("a Simulation runs once; make a new one to run again")
        self._apply(self.scheduler.start())
        while not self._done:
            if self._inputs:
                message = self._inputs.popleft()
                if isinstance(message, TaskSucceeded | TaskFailed | TaskCancelled):
                    self._outcomes += 1
                    if self.crash_after is not None and self._outcomes > self.crash_after:
                        break
                self.trace.append(message)
                self._apply(self.scheduler.handle(message))
                continue
            if not self._agenda:
                raise SimulationStalled(
                    f"nothing left to do but the run is {self.scheduler.status}: "
                    f"{self.scheduler.statistics()}"
                )
            when, _, _, kind, payload = heapq.heappop(self._agenda)
            self.clock.set(max(when, self.clock.monotonic()))
            if kind == "timer":
                if payload not in self._cancelled_timers:
                    self._inputs.append(TimerFired(payload))
            elif kind == "outcome":
                flight = self._flights.pop(payload, None)
                if flight is not None:
                    self._inputs.append(flight.outcome)
        if self._done:
            # Grants the semaphore made while the run was finishing still reach the
            # scheduler, which hands them back: a finished run holds no permit.
            while self._inputs:
                message = self._inputs.popleft()
                if isinstance(message, PermitsGranted):
                    self.trace.append(message)
                    self._apply(self.scheduler.handle(message))
        self.result = self.scheduler.result()
        return self.result

    def trace_bytes(self) -> bytes:
        """The trace's canonical bytes: one JSON line per entry (see ``_canonical``)."""
        return trace_bytes(self.trace)

    def digest(self) -> str:
        """The SHA-256 hex digest of :meth:`trace_bytes`: equal for equal runs."""
        return hashlib.sha256(self.trace_bytes()).hexdigest()

    def _at(self, delay: float, kind: str, payload: Any) -> None:
        heapq.heappush(
            self._agenda,
            (self.clock.monotonic() + delay, self.rng.random(), next(self._seq), kind, payload),
        )

    def _apply(self, commands: list[Any]) -> None:
        self.journal += self.scheduler.take_journal()
        for command in commands:
            self.trace.append(command)
            if isinstance(command, Emit):
                self.events.append(command.event)
            elif isinstance(command, StartTask):
                self._start(command)
            elif isinstance(command, RequestPermits):
                self._grant(self.semaphore.acquire(_RUN, command.count))
            elif isinstance(command, ReleasePermits):
                self._grant(self.semaphore.release(_RUN, command.count))
            elif isinstance(command, WithdrawPermits):
                self.semaphore.withdraw(_RUN, command.count)
            elif isinstance(command, StartTimer):
                self._at(command.delay, "timer", command.timer)
            elif isinstance(command, CancelTimer):
                self._cancelled_timers.add(command.timer)
            elif isinstance(command, CancelTask):
                self._cancel(command.token)
            elif isinstance(command, AbandonTask):
                self._flights.pop(command.token, None)
            elif isinstance(command, Escalate):
                self._inputs.append(self.supervisor.decide(command))
            elif isinstance(command, Finished):
                self._done = True

    def _grant(self, grants: Mapping[Any, int]) -> None:
        granted = grants.get(_RUN, 0)
        if granted:
            self._inputs.append(PermitsGranted(granted))

    def _start(self, start: StartTask) -> None:
        self.max_running = max(self.max_running, len(self._flights) + 1)
        cancel = _VirtualCancel()
        hung = False
        try:
            outcome: Any = execute_task(
                start,
                cancel=cancel,
                run_id=self.scheduler.run_id,
                workflow=self.plan.workflow.name,
                base_dir=self.base_dir,
                secrets=self.secrets,
                run_coroutine=cancel.run,
            )
        except _Hang:
            hung = True
            outcome = TaskCancelled(start.token)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a crashed executor, as in the actors
            text = str(exc) if isinstance(exc, ExecutorCrash) else repr(exc)
            crash = NodeCrashedError(f"the executor of {start.path!r} died: {text}")
            outcome = TaskFailed(
                start.token, error_info(crash, node=start.path, attempt=start.attempt)
            )
        flight = _Flight(start, outcome, hung=hung, cooperative=self.cooperative(start))
        self._flights[start.token] = flight
        if not hung:
            self._at(self.duration(start) + cancel.slept, "outcome", start.token)

    def _cancel(self, token: int) -> None:
        flight = self._flights.get(token)
        if flight is None or not (flight.cooperative or flight.hung):
            return
        # A cooperative runtime notices at once and reports the cancellation.
        flight.outcome = TaskCancelled(token)
        self._at(0.0, "outcome", token)
