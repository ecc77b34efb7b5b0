"""AsyncExecutor: the event loop ``async def`` runtimes run on.

A Runtime hands every attempt of an async runtime to its one AsyncExecutor.
By default that is an event loop of the Runtime's own, run by one thread
(``<name>-asyncio``) that starts with the first async attempt and is stopped
and joined when the Runtime closes; a Runtime that never runs an async
runtime never starts it. A host may pass its own running loop instead
(``Runtime(loop=...)``): attempts then run there, next to the host's own
coroutines and the resources bound to that loop, and wavecrest starts no
thread for them — but a host that blocks its loop stalls them.

Attempts arrive from node actors' threads and cancellations from the
scheduler's, so both cross to the loop with ``call_soon_threadsafe``. Each
attempt is one asyncio task, referenced here until it is done (the loop only
keeps weak references). Its coroutine is created on the loop, inside the
task, so an attempt cancelled before it started leaves no coroutine that was
never awaited. When the task ends its ``done`` callback runs on the loop
thread with the outcome, or with what escaped (an injected crash,
``SystemExit``): the callback must not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from wavecrest.core import RuntimeClosedError
from wavecrest.core._execute import Outcome

from ._logging import library_log

__all__ = ["AsyncAttempt", "AsyncExecutor"]

#: ``done(outcome, crash)``: outcome and crash both None when the attempt was
#: cancelled before its coroutine started.
Done = Callable[[Outcome | None, BaseException | None], None]

#: Seconds the Runtime's own loop gives cancelled leftovers to unwind when it stops.
SHUTDOWN_GRACE = 1.0


class AsyncAttempt:
    """One attempt handed to an :class:`AsyncExecutor`; :meth:`cancel` works from any thread."""

    __slots__ = ("_executor", "_task", "cancel_requested")

    def __init__(self, executor: AsyncExecutor) -> None:
        self._executor = executor
        self._task: asyncio.Task[Any] | None = None
        self.cancel_requested = False

    def cancel(self) -> None:
        """Cancel the attempt's task (asyncio.CancelledError inside its coroutine)."""
        self._executor._call(self._cancel)

    def _cancel(self) -> None:
        self.cancel_requested = True
        task = self._task
        if task is not None and not task.done():
            # After the task's first step: a coroutine cancelled before it started
            # would never see the CancelledError (nor run its cleanup).
            task.get_loop().call_soon(task.cancel)


class AsyncExecutor:
    """Runs attempts' coroutines on the Runtime's own loop thread, or on a host's loop."""

    def __init__(self, name: str = "wavecrest", loop: asyncio.AbstractEventLoop | None = None):
        self.name = name
        self._lock = threading.Lock()
        self._loop = loop
        self._owned = loop is None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop attempts run on (None until the first one, for the Runtime's own)."""
        return self._loop

    @property
    def thread(self) -> threading.Thread | None:
        """The Runtime's own loop thread, once started."""
        return self._thread

    def start(self, make: Callable[[], Awaitable[Outcome]], done: Done) -> AsyncAttempt:
        """Run ``make()`` as a task on the loop; ``done`` gets its outcome on the loop thread.

        RuntimeClosedError once the executor is closed (or its host's loop is).
        """
        attempt = AsyncAttempt(self)

        async def guarded() -> tuple[Outcome | None, BaseException | None]:
            try:
                return await make(), None
            except asyncio.CancelledError:
                raise  # the task ends cancelled: done(None, None)
            except BaseException as exc:  # noqa: BLE001 - a crash is reported, never lost
                return None, exc

        def create() -> None:
            task = asyncio.ensure_future(guarded())
            attempt._task = task
            self._tasks.add(task)
            task.add_done_callback(finished)
            if attempt.cancel_requested:
                attempt._cancel()

        def finished(task: asyncio.Task[tuple[Outcome | None, BaseException | None]]) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                done(None, None)
            else:
                done(*task.result())

        self._call(create, starting=True)
        return attempt

    def _call(self, callback: Callable[[], None], *, starting: bool = False) -> None:
        with self._lock:
            if self._closed and starting:
                raise RuntimeClosedError("this Runtime is closed; it runs no more attempts")
            loop = self._loop
            if loop is None:
                if not starting:
                    return
                loop = self._loop = self._start_own_loop()
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            if starting:
                raise RuntimeClosedError(
                    "the event loop this Runtime runs async runtimes on is closed"
                ) from None

    def _start_own_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_log_loop_error)
        self._thread = threading.Thread(
            target=self._run, args=(loop,), name=f"{self.name}-asyncio", daemon=True
        )
        self._thread.start()
        return loop

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in leftovers:
                    task.cancel()
                if leftovers:
                    loop.run_until_complete(asyncio.wait(leftovers, timeout=SHUTDOWN_GRACE))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def close(self, timeout: float = 5.0) -> threading.Thread | None:
        """Stop starting attempts and cancel those still running (abandoned ones: every run is
        over by now). The Runtime's own loop is then stopped and its thread joined; the thread
        is returned if it is still busy after ``timeout`` (a coroutine that blocks its loop).
        A host's loop is left running."""
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            loop = self._loop
        if loop is None:
            return None

        def shutdown() -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._owned:
                loop.stop()

        with contextlib.suppress(RuntimeError):  # a host's loop that is closed already
            loop.call_soon_threadsafe(shutdown)
        thread = self._thread
        if thread is None:
            return None
        thread.join(timeout)
        return thread if thread.is_alive() else None


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The own loop's exception handler: through wavecrest's logger, never stderr."""
    exception = context.get("exception")
    library_log().warning(
        "asyncio.error",
        message=context.get("message", ""),
        error=repr(exception) if exception is not None else None,
    )
