"""RunSupervisor: the root of one run's actor tree.

It starts the run's children — the SchedulerActor and, when the run is
persisted, the SnapshotWriter — answers every escalated failure with the
core :class:`~wavecrest.core.Supervisor`'s decision (retry after backoff,
fallback, fail, fail fast), relays cancellation and checkpoint decisions, and
when the scheduler reports the end of the run it has the final snapshot
written, stops its children and resolves the run's future.

A run whose events someone consumes (an ``on_event`` callback, the
Runtime's subscribers, an event stream, the host's logging) is *settled*
before its result is handed out: the supervisor tells the dispatcher
:class:`Settle` after the run's last events and resolves the future when the
dispatcher answers, so ``result.callback_errors`` counts every callback that
raised. A callback that lags does not hold the result back for long: after
:data:`CALLBACK_GRACE` seconds the result goes out with the count so far.

If the scheduler actor dies, the supervisor releases every permit it held at
the semaphore and ends the run as failed with the crash as its error. If the
supervisor itself dies, its exit hook still resolves the future, so a caller
waiting on a run can never hang on a dead actor tree.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import (
    ErrorInfo,
    RunResult,
    Scheduler,
    Supervisor,
    SystemClock,
)
from wavecrest.core._events import CancelRun, Emit, Escalate
from wavecrest.core._snapshot import (
    Redactor,
    ResultEntries,
    RunRecord,
    encode_result,
    encode_value,
)

from ._aio import AsyncExecutor
from ._dispatch import Deliver, Delivery, Settle, Settled, Subscribers
from ._executors import Executor
from ._lock import RunLock
from ._logging import (
    EVENTS,
    ForwardingLogger,
    HostLogger,
    host_listens,
    library_log,
    open_run_log,
    run_logger,
)
from ._node import NodeEnv
from ._pool import PooledActor, ThreadPool
from ._prepare import PreparedRun
from ._scheduler import DecideCheckpoint, RunEnded, SchedulerActor, SchedulerCrashed
from ._semaphore import Permits, ReleaseAll
from ._stream import EventStream
from ._timers import TimerHandle, TimerService
from ._writer import EventFeed, Finalize, Flush, SnapshotWriter

__all__ = ["Cancel", "Decide", "RunSupervisor", "Services"]

_log = library_log()

#: Seconds a finished run's result waits for event callbacks that lag behind.
CALLBACK_GRACE = 1.0


class Services(NamedTuple):
    """What every run of a Runtime shares."""

    pool: ThreadPool
    timers: TimerService
    semaphore: ActorRef[Any]
    permits: Permits
    dispatcher: ActorRef[Any]
    subscribers: Subscribers
    aio: AsyncExecutor


@dataclass(frozen=True, slots=True)
class _SettleDue:
    """The callback grace is over: hand the result out without waiting any longer."""


class Cancel(NamedTuple):
    """Cancel the run cooperatively; ``reason`` is ``cancelled``, ``interrupted``..."""

    reason: str = "cancelled"
    message: str | None = None


Decide = DecideCheckpoint  # what RunHandle.approve() and reject() tell the supervisor


class RunSupervisor(PooledActor):
    """Owns one run: its failure policy, its children and its outcome."""

    def __init__(
        self,
        pool: ThreadPool,
        prepared: PreparedRun,
        services: Services,
        resolve: Callable[[RunResult], None],
        *,
        lock: RunLock | None = None,
        stream: EventStream | None = None,
        executor: Executor | None = None,
    ) -> None:
        super().__init__(pool)
        self.prepared = prepared
        self._executor = executor  # where the attempts run; None: the local node actors
        self._services = services
        self._resolve = resolve
        self._run_lock = lock  # held from before the start until the final snapshot
        self._resolved = False
        self._stream = stream
        self._delivery: Delivery | None = None
        # While settling: the result waiting for Settled (or the grace timer).
        self._pending: RunResult | None = None
        self._settle_timer: TimerHandle | None = None
        self._settle_told = False
        self._clock = SystemClock()
        self._decider = Supervisor(prepared.policy, seed=prepared.seed, clock=self._clock)
        self._scheduler: ActorRef[Any] | None = None
        self._writer: ActorRef[Any] | None = None
        self._feed: EventFeed | None = None
        self._core: Scheduler | None = None

    # -- starting ----------------------------------------------------------------

    def on_start(self) -> None:
        p = self.prepared
        services = self._services
        listens = host_listens(EVENTS)
        if p.on_event is not None or self._stream is not None or services.subscribers or listens:
            events_log = HostLogger(EVENTS, {"workflow": p.workflow.name}) if listens else None
            self._delivery = Delivery(p.on_event, self._stream, events_log)
        redactor = Redactor(p.secrets.values())
        sink = None
        if p.snapshot_path is not None:
            assert p.log_path is not None
            sink = open_run_log(p.log_path, p.secrets.values())
            self._feed = EventFeed(services.timers)
            self._writer = SnapshotWriter.start(
                services.pool,
                path=p.snapshot_path,
                header=self._header(),
                entries=_prior_entries(p.prior or {}, redactor),
                feed=self._feed,
                redactor=redactor,
                sink=sink,
                timers=services.timers,
            )
            # The first snapshot is on disk before anything runs, so even a crash at
            # the first instant leaves a run that can be resumed.
            self._writer.ask(Flush(), timeout=60)
        forward = ForwardingLogger(self._feed) if self._feed is not None else None
        log = run_logger(forward, run_id=p.run_id, workflow=p.workflow.name)
        env = NodeEnv(
            run_id=p.run_id,
            workflow=p.workflow.name,
            base_dir=p.base_dir,
            secrets=p.secrets,
            log=log,
            encode=partial(encode_value, redactor=redactor) if self._writer else None,
            aio=services.aio,
        )
        self._core = Scheduler(
            p.plan,
            run_id=p.run_id,
            clock=self._clock,
            settings=p.settings,
            seed=p.seed,
            config=p.config,
            secrets=p.secrets,
            prior=p.prior,
            decisions=p.decisions,
            faults=p.faults,
            resumed=p.resumed,
            # Events nobody consumes are not even built. Subscribers added to the
            # Runtime later (and a host configuring logging later) see the runs
            # submitted after that.
            observed=self._delivery is not None,
            # The snapshot writer and the run log read the journal instead.
            journal=self._feed is not None,
        )
        self._scheduler = SchedulerActor.start(
            services.pool,
            self._core,
            env=env,
            semaphore=services.semaphore,
            timers=services.timers,
            supervisor=self.actor_ref,
            publish=self._publisher(),
            feed=self._feed,
            permits=services.permits,
            executor=self._executor.for_run(env) if self._executor is not None else None,
        )

    def _header(self) -> RunRecord:
        p = self.prepared
        now = time.time()
        if p.record is not None:
            return dataclasses.replace(
                p.record,
                status="running",
                reason=None,
                finished_at=None,
                updated_at=now,
                config=p.config,
                decisions=p.decisions,
                digest=p.workflow.digest,
                source=p.workflow.source,
                results={},
                resumes=p.record.resumes + 1,
            )
        wf = p.workflow
        return RunRecord(
            run_id=p.run_id,
            workflow=wf.name,
            version=wf.version,
            digest=wf.digest,
            source=wf.source,
            workflow_path=str(Path(wf.path).resolve()) if wf.path else None,
            status="running",
            reason=None,
            seed=p.seed,
            created_at=p.created_at,
            updated_at=now,
            started_at=None,
            finished_at=None,
            config=p.config,
            secret_names=tuple(wf.secrets),
            options=p.options(),
            decisions=p.decisions,
            results={},
            errors=(),
        )

    def _publisher(self) -> Callable[[list[Emit]], None] | None:
        """How the scheduler hands events to the subscribers and ``on_event`` (None: nobody
        listens)."""
        dispatcher = self._services.dispatcher
        delivery = self._delivery
        if delivery is None:
            return None

        def publish(emits: list[Emit]) -> None:
            try:
                dispatcher.tell(Deliver(tuple(e.event for e in emits), delivery))
            except ActorDeadError:
                pass  # the Runtime stopped delivering events while closing

        return publish

    # -- messages ----------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Escalate):
            self._tell_scheduler(self._decider.decide(message))
        elif isinstance(message, RunEnded):
            self._finish(message.result)
        elif isinstance(message, Cancel):
            self._tell_scheduler(CancelRun(message.reason, message.message))
        elif isinstance(message, Decide):
            # The scheduler resolves "every waiting checkpoint" itself: only its
            # thread may read the run's state.
            self._tell_scheduler(message)
        elif isinstance(message, SchedulerCrashed):
            self._scheduler_crashed(message)
        elif isinstance(message, Settled | _SettleDue):
            self._settled()
        else:
            return super().on_receive(message)
        return None

    def _tell_scheduler(self, message: Any) -> None:
        if self._scheduler is not None:
            try:
                self._scheduler.tell(message)
            except ActorDeadError:
                pass

    def _scheduler_crashed(self, message: SchedulerCrashed) -> None:
        self._services.semaphore.tell(ReleaseAll(message.scheduler))
        error = message.error
        text = "".join(traceback.format_exception(error)) if error is not None else ""
        info = ErrorInfo("InternalError", f"the scheduler crashed: {error!r}", text)
        core = self._core
        assert core is not None
        base = core.result()
        _log.error("run.scheduler_crashed", run_id=self.prepared.run_id, error=repr(error))
        self._scheduler = None
        self._finish(
            dataclasses.replace(
                base,
                status="failed",
                reason=f"internal error: {error!r}",
                errors=(*base.errors, info),
                finished_at=time.time(),
            )
        )

    # -- finishing ---------------------------------------------------------------

    def _finish(self, result: RunResult) -> None:
        if self._writer is not None:
            try:
                path = self._writer.ask(Finalize(result), timeout=60)
                result = dataclasses.replace(result, snapshot_path=path)
            except Exception as exc:  # noqa: BLE001 - the run's outcome must still be delivered
                _log.error("snapshot.final_write_failed", run_id=result.run_id, error=repr(exc))
                reason = f"{result.reason}; " if result.reason else ""
                result = dataclasses.replace(
                    result, reason=f"{reason}the final snapshot could not be written: {exc}"
                )
            self._writer.stop()
            self._writer = None
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        # The final snapshot is written: whoever has the result may resume the run at once.
        self._release_lock()
        if self._delivery is not None and self._settle(result):
            return  # the result goes out on Settled, or when the grace is over
        self._deliver(result)
        self.stop()

    def _settle(self, result: RunResult) -> bool:
        """Ask the dispatcher to settle the run; False if it cannot (it has stopped)."""
        self._settle_told = True
        try:
            self._services.dispatcher.tell(Settle(self._stream, self.actor_ref))
        except ActorDeadError:
            if self._stream is not None:
                self._stream.end()
            return False
        self._pending = result
        self._settle_timer = self._services.timers.schedule(
            CALLBACK_GRACE, self.actor_ref, _SettleDue()
        )
        return True

    def _settled(self) -> None:
        result = self._pending
        if result is None:
            return  # the other of Settled and the grace timer came first
        self._pending = None
        if self._settle_timer is not None:
            self._settle_timer.cancel()
        self._deliver(result)
        self.stop()

    def _release_lock(self) -> None:
        if self._run_lock is not None:
            self._run_lock.release()

    def _deliver(self, result: RunResult) -> None:
        if self._resolved:
            return
        self._resolved = True
        delivery = self._delivery
        if delivery is not None and delivery.errors:
            result = dataclasses.replace(result, callback_errors=delivery.errors)
        self._resolve(result)

    def on_exit(self, crash: BaseException | None) -> None:
        for child in (self._scheduler, self._writer):
            if child is not None:
                try:
                    child.stop()
                except ActorDeadError:
                    pass
        self._release_lock()
        if self._delivery is not None and not self._settle_told:
            # The stream still ends after the events told before, not in their middle.
            self._settle_told = True
            try:
                self._services.dispatcher.tell(Settle(self._stream, None))
            except ActorDeadError:
                if self._stream is not None:
                    self._stream.end()
        elif self._delivery is None and self._stream is not None:
            self._stream.end()
        if self._pending is not None:
            result, self._pending = self._pending, None
            self._deliver(result)
        if not self._resolved:
            p = self.prepared
            text = "".join(traceback.format_exception(crash)) if crash is not None else ""
            self._deliver(
                RunResult(
                    run_id=p.run_id,
                    workflow=p.workflow.name,
                    status="failed",
                    errors=(
                        ErrorInfo("InternalError", f"the run supervisor died: {crash!r}", text),
                    ),
                    seed=p.seed,
                    reason=f"internal error: {crash!r}",
                    finished_at=time.time(),
                )
            )


def _prior_entries(prior: dict[str, Any], redactor: Redactor) -> ResultEntries:
    """The results of the run being resumed, encoded once for the snapshot writer."""
    entries = ResultEntries()
    for path, result in prior.items():
        entries.put(path, encode_result(result, redactor=redactor))
    return entries
