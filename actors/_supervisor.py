"""RunSupervisor: the root of one run's actor tree.

It starts the run's children — the SchedulerActor and, when the run is
persisted, the SnapshotWriter — answers every escalated failure with the
core :class:`~wavecrest.core.Supervisor`'s decision (retry after backoff,
fallback, fail, fail fast), relays cancellation and checkpoint decisions, and
when the scheduler reports the end of the run it has the final snapshot
written, stops its children and resolves the run's future.

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
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import structlog
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

from ._dispatch import Deliver, Subscribers
from ._executors import Executor
from ._lock import RunLock
from ._logging import ForwardingLogger, open_run_log, run_logger
from ._node import NodeEnv
from ._pool import PooledActor, ThreadPool
from ._prepare import PreparedRun
from ._scheduler import DecideCheckpoint, RunEnded, SchedulerActor, SchedulerCrashed
from ._semaphore import ReleaseAll
from ._timers import TimerService
from ._writer import EventFeed, Finalize, Flush, SnapshotWriter

__all__ = ["Cancel", "Decide", "RunSupervisor", "Services"]

_log = structlog.get_logger("wavecrest")


class Services(NamedTuple):
    """What every run of a Runtime shares."""

    pool: ThreadPool
    timers: TimerService
    semaphore: ActorRef[Any]
    dispatcher: ActorRef[Any]
    subscribers: Subscribers


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
        executor: Executor | None = None,
    ) -> None:
        super().__init__(pool)
        self.prepared = prepared
        self._executor = executor  # where the attempts run; None: the local node actors
        self._services = services
        self._resolve = resolve
        self._run_lock = lock  # held from before the start until the final snapshot
        self._resolved = False
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
            # Runtime later see the runs submitted after they subscribed.
            observed=p.on_event is not None or bool(services.subscribers),
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
        subscribers = self._services.subscribers
        callback = self.prepared.on_event
        if callback is None and not subscribers:
            return None

        def publish(emits: list[Emit]) -> None:
            try:
                dispatcher.tell(Deliver(tuple(e.event for e in emits), callback))
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
        self._deliver(result)
        self.stop()

    def _deliver(self, result: RunResult) -> None:
        # The final snapshot is written (or the run died): whoever has the result may
        # resume the run at once.
        if self._run_lock is not None:
            self._run_lock.release()
        if not self._resolved:
            self._resolved = True
            self._resolve(result)

    def on_exit(self, crash: BaseException | None) -> None:
        for child in (self._scheduler, self._writer):
            if child is not None:
                try:
                    child.stop()
                except ActorDeadError:
                    pass
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
