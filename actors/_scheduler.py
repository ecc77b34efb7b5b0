"""SchedulerActor: the actor shell around the core :class:`~wavecrest.core.Scheduler`.

Every message it receives is a core input (task outcomes from node actors,
permit grants from the semaphore, timer firings, supervisor decisions,
cancellation); it hands it to the core and carries out the commands that
come back. Permit operations produced by one input are coalesced into a
single message to the semaphore.

If the actor dies (a bug in the core), its exit hook cancels every attempt it
started and tells the supervisor, which releases its permits and fails the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import RunResult, Scheduler
from wavecrest.core._events import (
    AbandonTask,
    CancelTask,
    CancelTimer,
    CheckpointDecided,
    Emit,
    Escalate,
    FailNode,
    Finished,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    RetryNode,
    RunFallback,
    StartTask,
    StartTimer,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)

from ._executors import RunExecutor
from ._node import AttemptCancel, NodeActor, NodeEnv
from ._pool import PooledActor, ThreadPool, unregister
from ._semaphore import PermitOps, Permits
from ._timers import TimerHandle, TimerService
from ._writer import EventFeed

__all__ = ["DecideCheckpoint", "RunEnded", "SchedulerActor", "SchedulerCrashed"]

_OUTCOMES = (TaskSucceeded, TaskFailed, TaskCancelled)
_INPUTS = frozenset(
    {
        TaskSucceeded,
        TaskFailed,
        TaskCancelled,
        PermitsGranted,
        TimerFired,
        RetryNode,
        RunFallback,
        FailNode,
    }
)


class DecideCheckpoint(NamedTuple):
    """Approve or reject the checkpoint at ``path`` (every waiting one when None)."""

    path: str | None
    approve: bool


class RunEnded(NamedTuple):
    """Told to the supervisor when the core reports the run finished."""

    result: RunResult


class SchedulerCrashed(NamedTuple):
    """Told to the supervisor when the scheduler actor died."""

    scheduler: ActorRef[Any]
    error: BaseException | None


class SchedulerActor(PooledActor):
    """Owns one run's core scheduler; spawns a NodeActor per task attempt."""

    def __init__(
        self,
        pool: ThreadPool,
        core: Scheduler,
        *,
        env: NodeEnv,
        semaphore: ActorRef[Any],
        timers: TimerService,
        supervisor: ActorRef[Any],
        publish: Callable[[list[Emit]], None] | None,
        feed: EventFeed | None = None,
        permits: Permits | None = None,
        executor: RunExecutor | None = None,
    ) -> None:
        super().__init__(pool)
        self._shared = permits
        self.core = core
        self._env = env
        # None: attempts run on local NodeActors; otherwise the executor starts them.
        self._executor = executor
        self._semaphore = semaphore
        self._timers = timers
        self._supervisor = supervisor
        self._publish = publish
        self._feed = feed
        # token -> (cancellation handle, node actor ref) for attempts in flight
        self._nodes: dict[int, tuple[Any, ActorRef[Any]]] = {}
        self._timer_handles: dict[int, TimerHandle] = {}
        self.abandoned: list[ActorRef[Any]] = []
        # Permit operations not yet told to the semaphore: release, request, withdraw.
        self._permits = [0, 0, 0]

    def on_start(self) -> None:
        self._env.scheduler = self.actor_ref
        self._apply(self.core.start())
        self._flush_permits()

    def _handle_receive(self, message: Any) -> Any:
        # The core's inputs skip pykka's checks for its own messages (stop, proxy calls).
        if type(message) in _INPUTS:
            return self.on_receive(message)
        return super()._handle_receive(message)

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind in _OUTCOMES:
            self._nodes.pop(message.token, None)
        elif kind is TimerFired:
            self._timer_handles.pop(message.timer, None)
        elif kind is DecideCheckpoint:
            paths = [message.path] if message.path is not None else self.core.waiting()
            for path in paths:
                self._apply(self.core.handle(CheckpointDecided(path, message.approve)))
            message = None
        if message is not None:
            self._apply(self.core.handle(message))
        # Whatever the message, permit operations held back while more messages
        # waited go out once the inbox is empty.
        if self.actor_inbox.empty():
            self._flush_permits()
        return None

    def _apply(self, commands: list[Any]) -> None:
        """Carry out the core's commands: events and the journal go out once per step,
        before the step's node actors start."""
        permits = self._permits
        emits: list[Emit] = []
        starts: list[StartTask] = []
        finished = False
        for command in commands:
            kind = type(command)
            if kind is StartTask:
                starts.append(command)
            elif kind is Emit:
                emits.append(command)
            elif kind is ReleasePermits:
                permits[0] += command.count
            elif kind is RequestPermits:
                permits[1] += command.count
            elif kind is StartTimer:
                self._timer_handles[command.timer] = self._timers.schedule(
                    command.delay, self.actor_ref, TimerFired(command.timer)
                )
            elif kind is CancelTimer:
                handle = self._timer_handles.pop(command.timer, None)
                if handle is not None:
                    handle.cancel()
            elif kind is CancelTask:
                entry = self._nodes.get(command.token)
                if entry is not None:
                    entry[0].set()
            elif kind is AbandonTask:
                entry = self._nodes.pop(command.token, None)
                if entry is not None:
                    entry[0].set()
                    # It ignored cancellation: stop counting it as a live actor. Its
                    # thread stays busy until the runtime returns; its report is dropped.
                    unregister(entry[1])
                    self.abandoned.append(entry[1])
                    if self._executor is not None:
                        self._executor.abandon(entry[0])
            elif kind is Escalate:
                self._supervisor.tell(command)
            elif kind is WithdrawPermits:
                permits[2] += command.count
            elif kind is Finished:
                finished = True
        if emits and self._publish is not None:
            self._publish(emits)
        if self._feed is not None:
            journal = self.core.take_journal()
            if journal:
                self._feed.push(journal)
        executor = self._executor
        for start in starts:
            # Started after the step's events are published, so node.started is
            # in the log before anything the attempt logs.
            if executor is None:
                cancel = AttemptCancel()
                ref = NodeActor.start(self._pool, self._env, start, cancel)
                self._nodes[start.token] = (cancel, ref)
            else:
                self._nodes[start.token] = executor.start(self._pool, start)
        if finished:
            # Reported after the last events were published, so they reach the
            # writer and the dispatcher first.
            self._flush_permits()
            self._supervisor.tell(RunEnded(self.core.result()))

    def _flush_permits(self) -> None:
        """Hand the step's permit operations to the semaphore.

        With the Runtime's shared :class:`Permits` this is a direct exchange under
        its lock: a grant to this run is handled at once (which may free or ask
        for more), a grant to another run is told to it. Without, the operations
        go to the SemaphoreActor as one message.
        """
        permits = self._permits
        shared = self._shared
        me = self.actor_ref
        while permits[0] or permits[1] or permits[2]:
            release, request, withdraw = permits
            permits[0] = permits[1] = permits[2] = 0
            if shared is None:
                try:
                    self._semaphore.tell(PermitOps(me, release, request, withdraw))
                except ActorDeadError:
                    pass  # the Runtime is closing; nothing waits for permits any more
                return
            mine = shared.deliver(shared.exchange(me, release, request, withdraw), mine=me)
            if not mine:
                continue
            if self.actor_stopped.is_set():
                permits[0] += mine  # granted while stopping (from on_exit): give them back
            else:
                self._apply(self.core.handle(PermitsGranted(mine)))

    def on_exit(self, crash: BaseException | None) -> None:
        self._flush_permits()
        for cancel, _ in self._nodes.values():
            cancel.set()
        for handle in self._timer_handles.values():
            handle.cancel()
        if crash is not None:
            try:
                self._supervisor.tell(SchedulerCrashed(self.actor_ref, crash))
            except ActorDeadError:
                pass
