"""The embedding API: :class:`Runtime`, :class:`RunHandle`, run_workflow, resume_workflow.

A Runtime owns what its runs share: the thread pool actors run on, the timer
thread, one FIFO :class:`SemaphoreActor` that caps running task nodes across
all its runs, the :class:`EventDispatcher` that hands events to callbacks,
streams and the host's logging, and the event loop ``async def`` runtimes run
on (:class:`~wavecrest.actors._aio.AsyncExecutor`), and the executors its
runs' attempts run on (the local node actors by default, or a Dask cluster;
see :mod:`wavecrest.actors._executors`). Each submitted run gets
its own supervisor tree and is otherwise isolated: one run failing or being
cancelled never touches another.

For asyncio hosts, handles are awaitable and stream their run's events, and
the Runtime is an async context manager. ``submit_async`` is ``submit`` on
the Runtime's one submitting thread (started with the first), so reading a
workflow file, planning it, taking a persisted run's lock and starting its
actors never hold up the host's event loop; bad input still raises from the
``await``. One thread is enough: submitting is quick, it only must not happen
on the loop, and every extra thread competes with the loop for the GIL.

``run_workflow`` is a Runtime of its own around one run. Closing a Runtime
cancels its runs (or, with ``wait=True``, lets them finish) and then stops
every actor and thread it started.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from pykka import ActorDeadError
from wavecrest.core import (
    EventsUnavailableError,
    RunEvent,
    RunResult,
    RuntimeClosedError,
    SemaphoreStatistics,
    Workflow,
)
from wavecrest.core._snapshot import RunRecord

from ._aio import AsyncExecutor
from ._dispatch import EventDispatcher, Subscribers
from ._executors import Executor, executor_key, open_executor
from ._lock import RunLock
from ._pool import ThreadPool
from ._prepare import (
    DEFAULT_CONCURRENCY,
    PreparedRun,
    default_state_dir,
    lock_record,
    prepare_resume,
    prepare_run,
)
from ._semaphore import Permits, SemaphoreActor
from ._stream import DEFAULT_EVENT_BUFFER, EventStream
from ._supervisor import Cancel, Decide, RunSupervisor, Services
from ._timers import TimerService

__all__ = ["RunHandle", "Runtime", "resume_workflow", "run_workflow"]

Callback = Callable[[RunEvent], Any]


class RunHandle:
    """A submitted run: its id, its future result, and a way to cancel it.

    ``future`` is a :class:`concurrent.futures.Future` of the
    :class:`~wavecrest.core.RunResult`; ``await handle`` gives the result on
    an event loop. Cancelling the task that awaits a handle does not cancel
    the run (:meth:`cancel` does), and cancelling ``future`` does nothing.
    """

    def __init__(self, run_id: str, workflow: str, stream: EventStream | None = None) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.future: Future[RunResult] = Future()
        # Running: only the run can resolve it, nobody can cancel it.
        self.future.set_running_or_notify_cancel()
        self._supervisor: Any = None
        self._stream = stream

    @property
    def status(self) -> str:
        """``running`` until the run ends, then the result's status."""
        if self.future.done():
            return self.future.result().status
        return "running"

    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> RunResult:
        """Wait for the run's result; TimeoutError if it is not done within ``timeout`` seconds."""
        try:
            return self.future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(
                f"run {self.run_id} did not finish within {timeout} seconds"
            ) from None

    def __await__(self) -> Generator[Any, None, RunResult]:
        """``await handle``: the run's result, without blocking the event loop."""
        return asyncio.wrap_future(self.future).__await__()

    def events(self) -> AsyncIterator[RunEvent]:
        """``async for event in handle.events()``: the run's events in order, ending when
        the run ends; for runs submitted with ``stream=True``.

        Events wait in a bounded buffer (``Runtime(event_buffer=...)``) until
        they are read, so a slow reader never holds the run up: when it falls
        that far behind, the oldest unread events are dropped and counted in
        :attr:`dropped_events`. One reader at a time; EventsUnavailableError
        for a run that does not stream.
        """
        if self._stream is None:
            raise EventsUnavailableError(
                f"run {self.run_id} does not stream its events; submit it with stream=True"
            )
        return self._stream.events()

    @property
    def dropped_events(self) -> int:
        """Events of a streamed run dropped because its reader fell behind (0 otherwise)."""
        return self._stream.dropped if self._stream is not None else 0

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the run to stop: in-flight nodes are cancelled cooperatively, nothing new starts.

        Its result then has status ``cancelled`` (or its real outcome if it ended first).
        Cancelling a finished run does nothing.
        """
        self._tell(Cancel(reason))

    def approve(self, path: str | None = None) -> None:
        """Approve the checkpoint at ``path`` (every waiting checkpoint when None)."""
        self._tell(Decide(path, True))

    def reject(self, path: str | None = None) -> None:
        """Reject the checkpoint at ``path`` (every waiting checkpoint when None)."""
        self._tell(Decide(path, False))

    def _tell(self, message: Any) -> None:
        if self._supervisor is None or self.future.done():
            return
        try:
            self._supervisor.tell(message)
        except ActorDeadError:
            pass  # it finished meanwhile

    def __repr__(self) -> str:
        return f"<RunHandle {self.workflow} {self.run_id} {self.status}>"


class Runtime:
    """Runs workflows concurrently under one FIFO cap on running task nodes.

    ``max_concurrency`` caps running task nodes across every run of this
    Runtime; each run can have a lower cap of its own. ``on_event`` subscribes
    to the events of every run (see :meth:`subscribe`). ``async def`` runtimes
    run on an event loop of the Runtime's own thread, started with the first
    of them; pass ``loop`` (a running loop) to run them on that loop instead.
    ``event_buffer`` bounds the unread events of each streamed run.
    ``executor`` is where
    the runs' attempts do their work: ``None`` or ``"local"`` (the local
    pooled actors), ``"dask://HOST:PORT"`` (a Dask scheduler, connected to now
    and disconnected on close), ``"dask"`` (the address in Dask's
    configuration) or a ``distributed.Client`` (used, never closed); an
    ExecutorError says what is wrong with anything else, a missing
    ``distributed`` package, or a scheduler that cannot be reached.
    """

    def __init__(
        self,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        *,
        on_event: Callback | None = None,
        name: str = "wavecrest",
        loop: asyncio.AbstractEventLoop | None = None,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
        executor: Any = None,
    ) -> None:
        if (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        if isinstance(event_buffer, bool) or not isinstance(event_buffer, int) or event_buffer < 1:
            raise ValueError(f"event_buffer must be an integer >= 1, got {event_buffer!r}")
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"loop must be an asyncio event loop, got {loop!r}")
        self.max_concurrency = max_concurrency
        self.name = name
        self.event_buffer = event_buffer
        # Connected before anything starts, so a bad executor leaves nothing running.
        self._executor: Executor | None = open_executor(executor)
        self._executors: dict[Any, Executor | None] = {executor_key(executor): self._executor}
        self._executors_lock = threading.Lock()
        self._pool = ThreadPool(name)
        self._timers = TimerService(f"{name}-timers")
        self._subscribers = Subscribers()
        if on_event is not None:
            self._subscribers.add(on_event)
        self._aio = AsyncExecutor(name, loop)
        self._permits = Permits(max_concurrency)
        self._semaphore = SemaphoreActor.start(self._pool, self._permits)
        self._dispatcher = EventDispatcher.start(self._pool, self._subscribers)
        self._services = Services(
            self._pool,
            self._timers,
            self._semaphore,
            self._permits,
            self._dispatcher,
            self._subscribers,
            self._aio,
        )
        self._lock = threading.Lock()
        self._runs: dict[str, RunHandle] = {}
        self._closed = False
        self._preparers: ThreadPoolExecutor | None = None
        self.leftover_threads: list[threading.Thread] = []

    # -- runs --------------------------------------------------------------------

    def submit(
        self,
        workflow: Workflow | str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
        mode: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        timeout: float | str | None = None,
        keep_going: bool = False,
        faults: Any = None,
        seed: int | None = None,
        on_event: Callback | None = None,
        run_id: str | None = None,
        stream: bool = False,
        executor: Any = None,
    ) -> RunHandle:
        """Start a run without waiting for it; takes run_workflow's options.

        Bad input (workflow, config, secrets, options, fault plan, executor)
        raises here, before anything starts. This reads a workflow given as a
        path and takes a persisted run's lock on the calling thread; on an event
        loop, ``await`` :meth:`submit_async` instead. ``stream=True`` keeps the
        run's events for :meth:`RunHandle.events`. ``executor`` runs this run's
        attempts somewhere else than the Runtime's executor (``"local"``,
        ``"dask://HOST:PORT"``, a Client; None: the Runtime's).
        """
        self._check_open()
        prepared = prepare_run(
            workflow,
            config=config,
            secrets=secrets,
            max_concurrency=max_concurrency,
            mode=mode,
            state_dir=state_dir,
            timeout=timeout,
            keep_going=keep_going,
            faults=faults,
            seed=seed,
            on_event=on_event,
            run_id=run_id,
            default_concurrency=self.max_concurrency,
        )
        return self._start(prepared, stream=stream, executor=self._executor_for(executor))

    async def submit_async(
        self,
        workflow: Workflow | str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
        mode: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        timeout: float | str | None = None,
        keep_going: bool = False,
        faults: Any = None,
        seed: int | None = None,
        on_event: Callback | None = None,
        run_id: str | None = None,
        stream: bool = False,
        executor: Any = None,
    ) -> RunHandle:
        """:meth:`submit` for an event loop: it runs on a worker thread of the Runtime, so
        reading and checking the input, taking the run's lock and starting its actors never
        hold the loop up.

        Bad input raises from the ``await``. A run the submission started after the
        awaiting task was cancelled is cancelled at once.
        """
        return await self._off_loop(
            partial(
                self.submit,
                workflow,
                config=config,
                secrets=secrets,
                max_concurrency=max_concurrency,
                mode=mode,
                state_dir=state_dir,
                timeout=timeout,
                keep_going=keep_going,
                faults=faults,
                seed=seed,
                on_event=on_event,
                run_id=run_id,
                stream=stream,
                executor=executor,
            )
        )

    async def run(
        self,
        workflow: Workflow | str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
        mode: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        timeout: float | str | None = None,
        keep_going: bool = False,
        faults: Any = None,
        seed: int | None = None,
        on_event: Callback | None = None,
        run_id: str | None = None,
        executor: Any = None,
    ) -> RunResult:
        """``await rt.run(workflow, ...)``: submit a run and await its result.

        Cancelling the awaiting task cancels the run (cooperatively, as
        :meth:`RunHandle.cancel`) and re-raises the cancellation at once.
        """
        handle = await self.submit_async(
            workflow,
            config=config,
            secrets=secrets,
            max_concurrency=max_concurrency,
            mode=mode,
            state_dir=state_dir,
            timeout=timeout,
            keep_going=keep_going,
            faults=faults,
            seed=seed,
            on_event=on_event,
            run_id=run_id,
            executor=executor,
        )
        try:
            return await handle
        except asyncio.CancelledError:
            handle.cancel()
            raise

    async def _off_loop(self, submit: Callable[[], RunHandle]) -> RunHandle:
        """Run ``submit`` on a preparing thread; a run nobody waits for any more is cancelled."""
        self._check_open()
        future = self._preparing_threads().submit(submit)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_cancel_unclaimed)
            raise

    def _preparing_threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeClosedError(
                    "this Runtime is closed; create a new one to run workflows"
                )
            if self._preparers is None:
                self._preparers = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-submit")
            return self._preparers

    def resume(
        self,
        run: str | os.PathLike[str],
        *,
        state_dir: str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        approve: bool | None = None,
        force: bool = False,
        on_event: Callback | None = None,
        stream: bool = False,
        executor: Any = None,
    ) -> RunHandle:
        """Continue a run from its snapshot (see :func:`resume_workflow`), its attempts on
        ``executor`` (None: the Runtime's), wherever the run ran before."""
        self._check_open()
        chosen = self._executor_for(executor)
        path, record, lock = lock_record(run, state_dir)
        return self._resume(
            path,
            record,
            lock,
            config=config,
            secrets=secrets,
            approve=approve,
            force=force,
            on_event=on_event,
            stream=stream,
            executor=chosen,
        )

    async def resume_async(
        self,
        run: str | os.PathLike[str],
        *,
        state_dir: str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        approve: bool | None = None,
        force: bool = False,
        on_event: Callback | None = None,
        stream: bool = False,
        executor: Any = None,
    ) -> RunHandle:
        """:meth:`resume` for an event loop, on a worker thread (see :meth:`submit_async`)."""
        return await self._off_loop(
            partial(
                self.resume,
                run,
                state_dir=state_dir,
                config=config,
                secrets=secrets,
                approve=approve,
                force=force,
                on_event=on_event,
                stream=stream,
                executor=executor,
            )
        )

    def _resume(
        self,
        path: Path,
        record: RunRecord,
        lock: RunLock,
        *,
        config: Mapping[str, Any] | None,
        secrets: Mapping[str, str] | None,
        approve: bool | None,
        force: bool,
        on_event: Callback | None,
        stream: bool = False,
        executor: Executor | None = None,
    ) -> RunHandle:
        """Resume a run whose snapshot is already read under its ``lock`` (read once per
        resume); the run keeps the lock until it ends, or it is released here."""
        try:
            self._check_open()
            if record.status == "completed":
                # Nothing is left to do: the handle resolves at once with the stored result.
                lock.release()
                return self._finished_handle(record.to_result(str(path)), stream=stream)
            prepared = prepare_resume(
                path,
                record,
                config=config,
                secrets=secrets,
                approve=approve,
                force=force,
                on_event=on_event,
            )
            return self._start(prepared, lock, stream=stream, executor=executor)
        except BaseException:
            lock.release()
            raise

    def _new_stream(self) -> EventStream:
        return EventStream(self.event_buffer)

    def _finished_handle(self, result: RunResult, *, stream: bool) -> RunHandle:
        events = self._new_stream() if stream else None
        if events is not None:
            events.end()
        handle = RunHandle(result.run_id, result.workflow, events)
        handle.future.set_result(result)
        return handle

    def _executor_for(self, spec: Any) -> Executor | None:
        """The executor ``spec`` names, opened once per Runtime (None: the Runtime's)."""
        if spec is None:
            return self._executor
        key = executor_key(spec)
        with self._executors_lock:
            if key not in self._executors:
                self._check_open()
                self._executors[key] = open_executor(spec)
            return self._executors[key]

    def _start(
        self,
        prepared: PreparedRun,
        lock: RunLock | None = None,
        *,
        stream: bool = False,
        executor: Executor | None = None,
    ) -> RunHandle:
        snapshot = prepared.snapshot_path
        if lock is None and snapshot is not None:
            lock = RunLock.acquire(snapshot, prepared.run_id)
        events = self._new_stream() if stream else None
        handle = RunHandle(prepared.run_id, prepared.workflow.name, events)
        try:
            with self._lock:
                if self._closed:
                    raise RuntimeClosedError(
                        "this Runtime is closed; create a new one to run workflows"
                    )
                if prepared.run_id in self._runs:
                    raise ValueError(f"run {prepared.run_id} is already running in this Runtime")
                self._runs[prepared.run_id] = handle
        except BaseException:
            if lock is not None:
                lock.release()
            raise

        def resolve(result: RunResult) -> None:
            with self._lock:
                self._runs.pop(prepared.run_id, None)
            handle.future.set_result(result)

        try:
            handle._supervisor = RunSupervisor.start(
                self._pool,
                prepared,
                self._services,
                resolve,
                lock=lock,
                stream=events,
                executor=executor,
            )
        except BaseException:
            with self._lock:
                self._runs.pop(prepared.run_id, None)
            if lock is not None:
                lock.release()
            raise
        return handle

    def runs(self) -> list[RunHandle]:
        """The runs still in progress."""
        with self._lock:
            return list(self._runs.values())

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Receive the events of every run of this Runtime; returns a function that unsubscribes.

        Callbacks run on the Runtime's dispatcher thread, in order within each
        run; one that is slow or raises never blocks or breaks a run.
        """
        return self._subscribers.add(callback)

    def statistics(self) -> SemaphoreStatistics:
        """The shared semaphore's state: capacity, free permits, held, queued."""
        return self._permits.statistics()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("this Runtime is closed; create a new one to run workflows")

    # -- closing -----------------------------------------------------------------

    def close(self, wait: bool = False, timeout: float | None = 60.0) -> None:
        """Stop the Runtime: cancel its runs (or let them finish with ``wait=True``), then
        stop every actor and thread it started. Closing twice is harmless.

        Threads still running a runtime that ignored cancellation are left
        (they are daemons) and listed in ``leftover_threads``. Blocks until the
        runs are over: on an event loop, ``await`` :meth:`aclose` instead.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handles = list(self._runs.values())
            preparers = self._preparers
        if preparers is not None:
            # Submissions still being checked finish (and are refused by _start).
            preparers.shutdown(wait=True)
        if not wait:
            for handle in handles:
                handle.cancel("cancelled")
        for handle in handles:
            try:
                handle.result(timeout)
            except TimeoutError:
                handle.cancel("cancelled")
                handle.result(timeout)
        try:
            # Every event told before now is delivered before the dispatcher stops.
            self._dispatcher.stop(block=True, timeout=timeout)
        except ActorDeadError:
            pass
        try:
            self._semaphore.stop(block=True, timeout=timeout)
        except ActorDeadError:
            pass
        self._timers.close()
        with self._executors_lock:
            executors = [e for e in self._executors.values() if e is not None]
            self._executors.clear()
        for executor in executors:
            executor.close()
        # Every run is over, so what is left on the event loop or on a pool thread was
        # abandoned for ignoring cancellation: do not wait long for it. The loop goes
        # first: cancelled coroutines report through pooled threads.
        leftover = [self._aio.close(timeout=2.0)]
        leftover += self._pool.close(timeout=2.0)
        self.leftover_threads = [thread for thread in leftover if thread is not None]

    async def aclose(self, wait: bool = False, timeout: float | None = 60.0) -> None:
        """:meth:`close` for an event loop: it runs on a thread of its own, which is joined,
        while the loop goes on (async runtimes on a host's loop can finish meanwhile)."""
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if closed.done():
                return
            if error is None:
                closed.set_result(None)
            else:
                closed.set_exception(error)

        def close() -> None:
            error: BaseException | None = None
            try:
                self.close(wait, timeout)
            except BaseException as exc:  # noqa: BLE001 - raised from the await instead
                error = exc
            try:
                loop.call_soon_threadsafe(settle, error)
            except RuntimeError:
                pass  # the loop was closed meanwhile: nobody waits

        thread = threading.Thread(target=close, name=f"{self.name}-close", daemon=True)
        thread.start()
        await closed
        thread.join()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(wait=exc_info[0] is None)

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose(wait=exc_type is None)


def _cancel_unclaimed(future: Future[RunHandle]) -> None:
    """The submission's awaiting task was cancelled: cancel the run it started, if any."""
    if not future.cancelled() and future.exception() is None:
        future.result().cancel()


def run_workflow(
    workflow: Workflow | str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    max_concurrency: int | None = None,
    mode: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    timeout: float | str | None = None,
    keep_going: bool = False,
    faults: Any = None,
    seed: int | None = None,
    on_event: Callback | None = None,
    executor: Any = None,
) -> RunResult:
    """Run a workflow (a ``.flow.md`` path or a parsed Workflow) and return its result.

    ``state_dir=None`` runs in memory without snapshots; a path persists
    snapshots and logs there. ``faults`` is a fault-file path or the same
    structure as a dict; ``seed`` makes retry jitter and injected faults
    reproducible. ``executor`` is where the attempts run (see :class:`Runtime`;
    None: the local pooled actors). Bad input raises a WavecrestError before
    anything runs.
    """
    from wavecrest.core import load_workflow

    wf = workflow if isinstance(workflow, Workflow) else load_workflow(workflow)
    cap = max_concurrency or wf.runtime.max_concurrency or DEFAULT_CONCURRENCY
    with Runtime(max_concurrency=cap, executor=executor) as runtime:
        handle = runtime.submit(
            wf,
            config=config,
            secrets=secrets,
            max_concurrency=cap,
            mode=mode,
            state_dir=state_dir,
            timeout=timeout,
            keep_going=keep_going,
            faults=faults,
            seed=seed,
            on_event=on_event,
        )
        return handle.result()


def resume_workflow(
    run: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    approve: bool | None = None,
    force: bool = False,
    on_event: Callback | None = None,
    executor: Any = None,
) -> RunResult:
    """Continue a run from its snapshot (a run id, or a snapshot path).

    Nodes that succeeded are never run again; everything else is. ``approve``
    decides a checkpoint the run is paused at (True approves, False rejects).
    A run whose workflow file changed is refused unless ``force``; resuming a
    completed run returns its result without running anything.
    ``state_dir=None`` means the default state dir. ``executor`` is where the
    resumed attempts run, whichever executor the run had before (None: the
    local pooled actors).
    """
    root = state_dir if state_dir is not None else default_state_dir()
    executor_key(executor)  # a bad executor is refused before the run is locked
    path, record, lock = lock_record(run, root)
    cap = record.options.get("max_concurrency") or DEFAULT_CONCURRENCY
    try:
        runtime = Runtime(max_concurrency=cap, executor=executor)
    except BaseException:
        lock.release()
        raise
    with runtime:
        handle = runtime._resume(
            path,
            record,
            lock,
            config=config,
            secrets=secrets,
            approve=approve,
            force=force,
            on_event=on_event,
        )
        return handle.result()
