"""NodeActor: one actor per task attempt.

The actor runs its attempt in ``on_start`` on a pooled thread, through
:func:`wavecrest.core.execute_task` (render config, apply an injected fault,
call the runtime, classify the outcome), then stops itself. Its exit hook
reports the outcome to the scheduler — or, if the actor died without one (an
injected crash, or a runtime that raised ``SystemExit``), a
:class:`~wavecrest.core.NodeCrashedError` failure, which the supervisor treats
as transient. Either way exactly one report reaches the scheduler, and the
actor is unregistered before it is sent.

Cancellation is cooperative: the scheduler sets the attempt's
:class:`AttemptCancel` (a :class:`~wavecrest.actors._pool.Flag`), which the runtime sees
through ``ctx.cancelled()`` and ``ctx.sleep()``.

An attempt of an ``async def`` runtime is prepared the same way on the pooled
thread, then its coroutine goes to the Runtime's
:class:`~wavecrest.actors._aio.AsyncExecutor` and ``on_start`` returns: the
actor, like any idle pooled actor, holds no thread while the coroutine runs.
The executor's done callback tells the actor the outcome; it stops and
reports like any attempt. Setting the AttemptCancel also cancels the
coroutine's task, so the runtime gets ``asyncio.CancelledError`` where it
awaits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import (
    NodeCrashedError,
    TaskCall,
    error_info,
    execute_task,
    prepare_task,
)
from wavecrest.core._events import StartTask, TaskCancelled, TaskFailed
from wavecrest.core._execute import Outcome
from wavecrest.core._registry import is_async_runtime

from ._aio import AsyncExecutor
from ._pool import Flag, PooledActor, ThreadPool

__all__ = ["AttemptCancel", "NodeActor", "NodeEnv"]


class AttemptCancel(Flag):
    """An attempt's cancel signal: a :class:`~wavecrest.actors._pool.Flag` that also runs a
    hook once set (which cancels an async attempt's task)."""

    __slots__ = ("_hook",)

    def __init__(self) -> None:
        super().__init__()
        self._hook: Callable[[], None] | None = None  # None costs plain attempts nothing

    def set(self) -> None:
        super().set()
        hook = self._hook
        if hook is not None:
            hook()

    def on_set(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the signal is set (at once if it is set already)."""
        self._hook = hook
        if self.is_set():
            hook()


class NodeEnv:
    """What every attempt of one run shares: identity, folder, secrets, logger, encoder."""

    __slots__ = ("aio", "base_dir", "encode", "log", "run_id", "scheduler", "secrets", "workflow")

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        base_dir: Path,
        secrets: dict[str, str],
        log: Any,
        encode: Callable[[Any], bytes] | None,
        aio: AsyncExecutor | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.base_dir = base_dir
        self.secrets = secrets
        self.log = log
        self.encode = encode
        self.aio = aio  # where async runtimes' coroutines run
        self.scheduler: ActorRef[Any] | None = None


class _LazyLog:
    """``ctx.log``: binds node and attempt only if the runtime actually logs."""

    __slots__ = ("_attempt", "_base", "_bound", "_path")

    def __init__(self, base: Any, path: str, attempt: int) -> None:
        self._base = base
        self._path = path
        self._attempt = attempt
        self._bound: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._bound is None:
            self._bound = self._base.bind(node=self._path, attempt=self._attempt)
        return getattr(self._bound, name)


class _AttemptDone(NamedTuple):
    """An async attempt ended: its outcome, or what escaped its coroutine (both None when it
    was cancelled before it started)."""

    outcome: Outcome | None
    crash: BaseException | None


class NodeActor(PooledActor):
    """Runs one attempt of a task node and reports its outcome to the run's scheduler."""

    def __init__(
        self, pool: ThreadPool, env: NodeEnv, start: StartTask, cancel: AttemptCancel
    ) -> None:
        super().__init__(pool)
        self._env = env
        self._task = start
        self._cancel = cancel
        self._outcome: Any = None

    def on_start(self) -> None:
        env, task = self._env, self._task
        if env.aio is not None and is_async_runtime(task.node.runtime_key):
            self._start_async(env.aio)
            return
        self._outcome = execute_task(task, **self._options())
        self._stop()

    def _options(self) -> dict[str, Any]:
        """What every executor call of this attempt takes besides the StartTask."""
        env, task = self._env, self._task
        return {
            "cancel": self._cancel,
            "run_id": env.run_id,
            "workflow": env.workflow,
            "base_dir": env.base_dir,
            "secrets": env.secrets,
            "log": _LazyLog(env.log, task.path, task.attempt),
            "encode": env.encode,
        }

    def _start_async(self, aio: AsyncExecutor) -> None:
        call = prepare_task(self._task, **self._options())
        if not isinstance(call, TaskCall):
            self._outcome = call
            self._stop()
            return
        # The actor stays alive without a thread until the coroutine's end is told to it.
        attempt = aio.start(call.run_async, self._async_done)
        self._cancel.on_set(attempt.cancel)

    def _async_done(self, outcome: Outcome | None, crash: BaseException | None) -> None:
        # On the event loop's thread: the message schedules the actor's next drain.
        self.actor_ref.tell(_AttemptDone(outcome, crash))

    def on_receive(self, message: Any) -> Any:
        if type(message) is not _AttemptDone:
            return super().on_receive(message)
        if message.crash is not None:
            self._crash = message.crash  # no outcome: on_exit reports the crash
        elif message.outcome is None:
            self._outcome = TaskCancelled(self._task.token)
        else:
            self._outcome = message.outcome
        self._stop()
        return None

    def on_exit(self, crash: BaseException | None) -> None:
        task = self._task
        outcome = self._outcome
        if outcome is None:
            died = NodeCrashedError(
                f"the actor running {task.path!r} (attempt {task.attempt}) died without "
                f"reporting: {crash!r}"
            )
            outcome = TaskFailed(task.token, error_info(died, node=task.path, attempt=task.attempt))
        scheduler = self._env.scheduler
        if scheduler is not None:
            try:
                scheduler.tell(outcome)
            except ActorDeadError:
                pass  # the run is over; nobody waits for this attempt any more
