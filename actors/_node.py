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
cancellation :class:`Flag`, which the runtime sees through ``ctx.cancelled()`` and
``ctx.sleep()``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pykka import ActorDeadError, ActorRef
from wavecrest.core import NodeCrashedError, error_info, execute_task
from wavecrest.core._events import StartTask, TaskFailed

from ._pool import Flag, PooledActor, ThreadPool

__all__ = ["NodeActor", "NodeEnv"]


class NodeEnv:
    """What every attempt of one run shares: identity, folder, secrets, logger, encoder."""

    __slots__ = ("base_dir", "encode", "log", "run_id", "scheduler", "secrets", "workflow")

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        base_dir: Path,
        secrets: dict[str, str],
        log: Any,
        encode: Callable[[Any], bytes] | None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.base_dir = base_dir
        self.secrets = secrets
        self.log = log
        self.encode = encode
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


class NodeActor(PooledActor):
    """Runs one attempt of a task node and reports its outcome to the run's scheduler."""

    def __init__(self, pool: ThreadPool, env: NodeEnv, start: StartTask, cancel: Flag) -> None:
        super().__init__(pool)
        self._env = env
        self._task = start
        self._cancel = cancel
        self._outcome: Any = None

    def on_start(self) -> None:
        env, task = self._env, self._task
        self._outcome = execute_task(
            task,
            cancel=self._cancel,
            run_id=env.run_id,
            workflow=env.workflow,
            base_dir=env.base_dir,
            secrets=env.secrets,
            log=_LazyLog(env.log, task.path, task.attempt),
            encode=env.encode,
        )
        self._stop()

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
