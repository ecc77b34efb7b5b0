"""The Dask executor: each task attempt's work is one task on a Dask cluster.

The control plane stays here, in the local actors: the supervisor, the core
scheduler and its actor, the semaphore (whose permits cap the attempts running
anywhere on the cluster) and the snapshot writer. Only the work of an attempt —
:func:`wavecrest.core.execute_task`: render the config, apply an injected
fault, call the runtime, classify the outcome, encode the output for the
snapshot — runs on a worker.

Client side. Each attempt is a :class:`DaskNodeActor`, a
:class:`~wavecrest.actors._pool.PooledActor`: its ``on_start`` submits
:func:`run_attempt` as one Dask task keyed ``wc-<node>-<token>-<tag>``. Dask
groups keys by their leading dash-separated words (``dask.utils.key_split``):
the attempts of node ``load-users`` form the group ``wc-load-users``, and the
token, a number, ends the group name whatever follows; ``tag`` is random per
run, so runs sharing a cluster never share a key. A coroutine on the client's event
loop awaits the task and tells the actor the result; meanwhile the actor holds
no thread. The actor then reports the outcome to the scheduler exactly as a
local node actor does, and drops the Dask future, which releases the result
on the cluster.

The task carries the runtime's registry entry (its function pickled by
cloudpickle: by reference when it lives in an importable module, by value
when it was defined in ``__main__`` or is a lambda or closure), the attempt
(:class:`~wavecrest.core._events.StartTask`: node, input, template scope,
injected fault) and the run's identity and secrets — each pickled here and
shipped as bytes, unpickled by :func:`run_attempt` inside the task. Dask never
unpickles them itself: a worker that fails to unpickle a task it is sent (a
runtime whose module it cannot import) loses its connection to the scheduler,
whereas an attempt that fails to unpickle inside its task is an ordinary
failure of that attempt. The run's part and each runtime are pickled once per
run; each attempt pickles only its StartTask.

Worker side. :func:`run_attempt` registers a ``threading.Event`` under its key
in this worker process, runs the attempt with it as the cancellation token and
returns the outcome pickled, with whatever the runtime logged. Cancelling an
attempt (timeout, fail-fast, run cancelled) broadcasts its key to the workers
(:func:`cancel_attempts` through ``Client.run``), which set the token, so
``ctx.cancelled()`` and ``ctx.sleep()`` see it at once; a key that arrives
before its task started is remembered, and the task starts cancelled. The Dask
future itself is cancelled when the scheduler gives up on the attempt (it
ignored its cancellation for the grace period) or the Runtime closes.

Failures of the Dask task itself, as opposed to failures of the runtime
(which are outcomes like any other):

* a ``crash`` fault, or a runtime that raises ``SystemExit``, ends the task
  with :class:`AttemptCrashed`: recorded as NodeCrashedError, transient;
* a worker that dies mid-task: Dask runs the task again elsewhere, up to the
  scheduler's ``distributed.scheduler.allowed-failures`` (default 3) times,
  then gives up with ``KilledWorker``: recorded as NodeCrashedError, transient;
* the worker cannot load the task (a runtime whose module is not importable
  there): TransferError, permanent.

A result travels back inline, pickled: past :data:`MAX_RESULT_BYTES` the
attempt fails with TransferError instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import pickle
import secrets as _secrets
import threading
import traceback
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import (
    ExecutorCrash,
    ExecutorError,
    NodeCrashedError,
    RuntimeSpec,
    TransferError,
    error_info,
    execute_task,
    get_runtime,
)
from wavecrest.core._events import StartTask, TaskCancelled, TaskFailed

from ._node import NodeEnv
from ._pool import PooledActor, ThreadPool

__all__ = [
    "MAX_RESULT_BYTES",
    "AttemptCrashed",
    "DaskExecutor",
    "DaskNodeActor",
    "cancel_attempts",
    "probe",
    "run_attempt",
]

#: The largest pickled result (output, snapshot encoding and log lines) an attempt
#: may send back from a worker.
MAX_RESULT_BYTES = 64 * 1024 * 1024

#: Seconds a client wavecrest opens itself batches its messages to the scheduler. Dask's
#: default, 10 ms, is paid by every attempt of a chain: its submit waits for the window
#: opened by the previous one. 2 ms is the window of the scheduler's own stream to its
#: clients. A Client handed to wavecrest keeps its own setting.
CLIENT_BATCH_INTERVAL = 0.002

_INSTALL = "pip install 'wavecrest[dask]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ExecutorError(
            f"the Dask executor needs the distributed package, which cannot be imported "
            f"({exc}): {_INSTALL}"
        ) from None
    return distributed


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# --- worker side -------------------------------------------------------------------


class AttemptCrashed(Exception):
    """Ends a Dask task whose attempt crashed (a ``crash`` fault, SystemExit) without an
    outcome."""


@dataclass(frozen=True, slots=True)
class WorkerEnv:
    """What every attempt of one run takes to its worker."""

    run_id: str
    workflow: str
    base_dir: str
    secrets: Mapping[str, str]
    encode: Callable[[Any], bytes] | None
    max_result: int


_LOCK = threading.Lock()
# key -> the cancellation token of the attempt running under it in this process
_RUNNING: dict[str, threading.Event] = {}
# Keys cancelled before their task started here, oldest first (bounded: a key
# broadcast to every worker stays behind on those that never run it).
_EARLY: OrderedDict[str, None] = OrderedDict()
_EARLY_LIMIT = 10_000


def probe() -> str:
    """Runs on every worker when an executor connects: this module imports there."""
    return "wavecrest"


def cancel_attempts(keys: list[str]) -> int:
    """Runs on every worker (``Client.run``): cancel the attempts of ``keys``; how many ran here."""
    found = 0
    with _LOCK:
        for key in keys:
            token = _RUNNING.get(key)
            if token is not None:
                token.set()
                found += 1
            else:
                _EARLY[key] = None
                if len(_EARLY) > _EARLY_LIMIT:
                    _EARLY.popitem(last=False)
    return found


_LEVELS = frozenset(
    {"debug", "info", "warning", "warn", "error", "critical", "fatal", "exception", "msg"}
)
_PLAIN = (str, int, float, bool, type(None))


class WorkerLog:
    """``ctx.log`` on a worker: records each call, to be logged by the node actor on the
    client, into the run's log, once the attempt is over.

    It takes structlog's calls: ``info("event", key=value)`` and the other levels,
    ``bind``/``unbind``/``new``. Values that are not plain data are recorded as their
    ``repr``; ``exception`` records the traceback being handled.
    """

    __slots__ = ("_bound", "records")

    def __init__(self, records: list[Any] | None = None, bound: dict[str, Any] | None = None):
        self.records: list[Any] = records if records is not None else []
        self._bound: dict[str, Any] = bound or {}

    def bind(self, **values: Any) -> WorkerLog:
        return WorkerLog(self.records, {**self._bound, **values})

    def unbind(self, *keys: str) -> WorkerLog:
        return WorkerLog(self.records, {k: v for k, v in self._bound.items() if k not in keys})

    try_unbind = unbind

    def new(self, **values: Any) -> WorkerLog:
        return WorkerLog(self.records, dict(values))

    def __getattr__(self, name: str) -> Any:
        if name not in _LEVELS:
            raise AttributeError(name)

        def log(event: Any = None, *args: Any, **values: Any) -> None:
            method = name
            if name == "exception":
                method = "error"
                values.setdefault("exception", traceback.format_exc())
            fields = {**self._bound, **values}
            self.records.append(
                (
                    method,
                    event if isinstance(event, _PLAIN) else repr(event),
                    tuple(a if isinstance(a, _PLAIN) else repr(a) for a in args),
                    {k: _plain(v) for k, v in fields.items()},
                )
            )

        return log


def _plain(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, _PLAIN) for v in value):
        return list(value)
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, _PLAIN) for k, v in value.items()
    ):
        return dict(value)
    return repr(value)


def run_attempt(
    work_data: bytes, runtime_data: bytes, start_data: bytes, key: str, token: int, path: str
) -> bytes:
    """The Dask task of one attempt: run it, return ``(outcome, log records)`` pickled.

    The run's :class:`WorkerEnv`, the runtime's registry entry and the attempt's
    StartTask come pickled (see the module docstring). Raises AttemptCrashed
    when the attempt dies without an outcome.
    """
    try:
        work: WorkerEnv = pickle.loads(work_data)
        runtime: RuntimeSpec = pickle.loads(runtime_data)
        start: StartTask = pickle.loads(start_data)
    except Exception as exc:  # noqa: BLE001 - e.g. a module this worker cannot import
        error = TransferError(
            f"the Dask worker cannot load {path!r}: {type(exc).__name__}: {exc} "
            "(a runtime, and the classes of its input, must be importable on the workers)"
        )
        return _dumps((TaskFailed(token, error_info(error, node=path)), []))
    cancel = threading.Event()
    with _LOCK:
        if key in _EARLY:
            del _EARLY[key]
            cancel.set()
        _RUNNING[key] = cancel
    log = WorkerLog()
    try:
        outcome = execute_task(
            start,
            cancel=cancel,
            run_id=work.run_id,
            workflow=work.workflow,
            base_dir=work.base_dir,
            secrets=work.secrets,
            log=log,
            encode=work.encode,
            runtime=runtime,
        )
    except ExecutorCrash as exc:
        raise AttemptCrashed(str(exc)) from None
    except BaseException as exc:  # noqa: BLE001 - SystemExit must not take the worker down
        raise AttemptCrashed(
            f"the runtime of {start.path!r} raised {type(exc).__name__}: {exc}"
        ) from None
    finally:
        with _LOCK:
            _RUNNING.pop(key, None)
    return _pack(outcome, log.records, start, work.max_result)


def _dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=5)
    except Exception:  # noqa: BLE001 - lambdas and local classes: cloudpickle handles them
        return _cloudpickle(value)


def _cloudpickle(value: Any) -> bytes:
    import cloudpickle

    data: bytes = cloudpickle.dumps(value, protocol=5)
    return data


def _pack(outcome: Any, records: list[Any], start: StartTask, limit: int) -> bytes:
    try:
        data = _dumps((outcome, records))
    except Exception as exc:  # noqa: BLE001 - an output that does not pickle fails the attempt
        problem = f"cannot be pickled: {type(exc).__name__}: {exc}"
    else:
        if len(data) <= limit:
            return data
        problem = (
            f"is {_size(len(data))} pickled, over the limit of {_size(limit)} for a result "
            "sent back from a Dask worker; write large data to shared storage and return "
            "where it is"
        )
    error = TransferError(f"the result of {start.path!r} (attempt {start.attempt}) {problem}")
    failed = TaskFailed(start.token, error_info(error, node=start.path, attempt=start.attempt))
    return _dumps((failed, records))


# --- client side -------------------------------------------------------------------


class _Done(NamedTuple):
    """The Dask task of the attempt ended: its pickled result, or why it has none."""

    data: bytes | None
    error: BaseException | None


class _Abandon(NamedTuple):
    """The scheduler gave up on the attempt: cancel its Dask future and stop."""


async def _watch(future: Any, ref: ActorRef[Any]) -> None:
    # Runs on the client's event loop: no thread waits for the task.
    try:
        message = _Done(await future, None)
    except BaseException as exc:  # noqa: BLE001 - every ending is reported to the actor
        # Without its traceback, whose frames hold the future: the future must go as
        # soon as the actor is done with it, which releases the task on the cluster.
        message = _Done(None, exc.with_traceback(None))
    del future
    try:
        ref.tell(message)
    except ActorDeadError:
        pass  # abandoned: nobody waits for it any more


class _CancelRelay:
    """Broadcasts cancelled keys to the workers; the keys of a burst go in one broadcast."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._sending = False  # a broadcast is scheduled or running on the client's loop

    def cancel(self, key: str) -> None:
        with self._lock:
            self._keys.append(key)
            if self._sending:
                return
            self._sending = True
        try:
            self._client.loop.add_callback(self._broadcast)
        except Exception:  # noqa: BLE001 - a closed client has no task left to cancel
            with self._lock:
                self._sending = False

    async def _broadcast(self) -> None:
        while True:
            with self._lock:
                keys, self._keys = self._keys, []
                if not keys:
                    self._sending = False
                    return
            try:
                await self._client.run(cancel_attempts, keys, on_error="ignore")
            except Exception:  # noqa: BLE001 - the cluster is going away: nothing runs there
                pass


class _DaskAttempt:
    """The scheduler's handle on an attempt running on Dask: ``set()`` cancels it."""

    __slots__ = ("_cancelled", "_relay", "key", "ref")

    def __init__(self, relay: _CancelRelay, key: str) -> None:
        self._relay = relay
        self._cancelled = False
        self.key = key
        self.ref: ActorRef[Any] | None = None

    def set(self) -> None:
        if not self._cancelled:
            self._cancelled = True
            self._relay.cancel(self.key)

    def is_set(self) -> bool:
        return self._cancelled


class DaskNodeActor(PooledActor):
    """One attempt whose work is one Dask task; reports its outcome to the run's scheduler."""

    def __init__(
        self, pool: ThreadPool, run: _DaskRun, start: StartTask, handle: _DaskAttempt
    ) -> None:
        super().__init__(pool)
        self._run = run
        self._task = start
        self._handle = handle
        self._future: Any = None
        self._outcome: Any = None

    def on_start(self) -> None:
        run, task = self._run, self._task
        try:
            runtime = run.runtime(task.node.runtime_key)
        except KeyError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a runtime that does not pickle
            self._fail(TransferError(f"cannot send the runtime of {task.path!r} to Dask: {exc}"))
            return
        try:
            start = _dumps(task)
        except Exception as exc:  # noqa: BLE001 - an input that does not pickle
            self._fail(TransferError(f"cannot send the input of {task.path!r} to Dask: {exc}"))
            return
        key = self._handle.key
        self._future = run.client.submit(
            run_attempt, run.work, runtime, start, key, task.token, task.path, key=key, pure=False
        )
        run.client.loop.add_callback(_watch, self._future, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _Done:
            self._outcome = self._read(message)
            self._stop()
        elif kind is _Abandon:
            future, self._future = self._future, None
            if future is not None:
                try:
                    future.cancel()
                except Exception:  # noqa: BLE001 - the client is closing: it cancels anyway
                    pass
            self._outcome = TaskCancelled(self._task.token)
            self._stop()
        return None

    def _fail(self, exc: BaseException) -> None:
        task = self._task
        self._outcome = TaskFailed(
            task.token, error_info(exc, node=task.path, attempt=task.attempt)
        )
        self._stop()

    def _read(self, message: _Done) -> Any:
        task = self._task
        where = f"{task.path!r} (attempt {task.attempt})"
        error = message.error
        if error is None:
            assert message.data is not None
            try:
                outcome, records = pickle.loads(message.data)
            except Exception as exc:  # noqa: BLE001 - e.g. a class not importable here
                return self._failure(
                    TransferError(f"the result of {where} cannot be loaded here: {exc!r}")
                )
            if records:
                self._replay(records)
            return outcome
        if isinstance(error, AttemptCrashed):
            return self._failure(
                NodeCrashedError(f"the Dask task running {where} crashed: {error}")
            )
        if type(error).__name__ == "KilledWorker":
            return self._failure(
                NodeCrashedError(f"the Dask workers running {where} died: {error}")
            )
        if isinstance(error, asyncio.CancelledError | concurrent.futures.CancelledError):
            return self._failure(
                NodeCrashedError(f"Dask cancelled the task running {where}: {error!r}")
            )
        return self._failure(
            TransferError(
                f"the Dask worker could not run {where}: {type(error).__name__}: {error} "
                "(a runtime must be importable on the workers)"
            )
        )

    def _failure(self, exc: BaseException) -> TaskFailed:
        task = self._task
        return TaskFailed(task.token, error_info(exc, node=task.path, attempt=task.attempt))

    def _replay(self, records: list[Any]) -> None:
        task = self._task
        log = self._run.env.log.bind(node=task.path, attempt=task.attempt)
        for method, event, args, values in records:
            try:
                getattr(log, method)(event, *args, **values)
            except Exception:  # noqa: BLE001 - a bad log line never fails the attempt
                pass

    def on_exit(self, crash: BaseException | None) -> None:
        task = self._task
        self._future = None  # releases the task's result on the cluster
        outcome = self._outcome
        if outcome is None:
            outcome = self._failure(
                NodeCrashedError(
                    f"the actor running {task.path!r} (attempt {task.attempt}) died without "
                    f"reporting: {crash!r}"
                )
            )
        scheduler = self._run.env.scheduler
        if scheduler is not None:
            try:
                scheduler.tell(outcome)
            except ActorDeadError:
                pass  # the run is over; nobody waits for this attempt any more


class _DaskRun:
    """The Dask executor of one run: keys, what the run's tasks share, and the actors."""

    def __init__(self, executor: DaskExecutor, env: NodeEnv) -> None:
        self.client = executor.client
        self.env = env
        self._relay = executor.relay
        self._tag = _secrets.token_hex(4)
        self.work = _cloudpickle(
            WorkerEnv(
                run_id=env.run_id,
                workflow=env.workflow,
                base_dir=str(env.base_dir),
                secrets=dict(env.secrets),
                encode=env.encode,
                max_result=MAX_RESULT_BYTES,
            )
        )
        # runtime key -> (registry entry, its pickle), made at the first attempt using it
        self._runtimes: dict[str, tuple[RuntimeSpec, bytes]] = {}
        self._lock = threading.Lock()

    def runtime(self, key: str) -> bytes:
        """The pickled registry entry of ``key`` (KeyError if none; pickling errors raise)."""
        spec = get_runtime(key)
        with self._lock:
            cached = self._runtimes.get(key)
            if cached is not None and cached[0] is spec:
                return cached[1]
        data = _cloudpickle(spec)
        with self._lock:
            self._runtimes[key] = (spec, data)
        return data

    def start(self, pool: ThreadPool, start: StartTask) -> tuple[_DaskAttempt, ActorRef[Any]]:
        handle = _DaskAttempt(self._relay, f"wc-{start.node.id}-{start.token}-{self._tag}")
        ref = DaskNodeActor.start(pool, self, start, handle)
        handle.ref = ref
        return handle, ref

    def abandon(self, handle: Any) -> None:
        if handle.ref is not None:
            try:
                handle.ref.tell(_Abandon())
            except ActorDeadError:
                pass


#: Clients whose workers were seen to import wavecrest (checked once per client).
_CHECKED: weakref.WeakSet[Any] = weakref.WeakSet()


def _check_workers(client: Any) -> None:
    """ExecutorError unless every worker can import this module (a worker that cannot would
    drop its connection at the first task, again and again, instead of failing it)."""
    try:
        answers = client.run(probe, on_error="return")
    except Exception as exc:  # noqa: BLE001 - the scheduler is unreachable: say so, once
        raise ExecutorError(
            f"cannot ask the Dask workers of {client.scheduler.address!r} for wavecrest: {exc}"
        ) from None
    failed = {worker: answer for worker, answer in answers.items() if answer != "wavecrest"}
    if failed:
        worker, answer = sorted(failed.items())[0]
        raise ExecutorError(
            f"the Dask worker {worker!r} cannot run wavecrest's tasks ({answer!r}): install "
            f"wavecrest on every worker ({len(failed)} of {len(answers)} cannot)"
        )


class DaskExecutor:
    """Runs attempts on the Dask cluster behind ``client`` (closed with us when ``owned``)."""

    def __init__(self, client: Any, *, owned: bool) -> None:
        if getattr(client, "asynchronous", False):
            raise ExecutorError(
                f"invalid executor {client!r}: an asynchronous distributed.Client cannot be "
                "used; pass a synchronous one, or the scheduler's address as dask://HOST:PORT"
            )
        self.client = client
        self.owned = owned
        self.relay = _CancelRelay(client)
        self.name = f"dask {client.scheduler.address}"
        if client not in _CHECKED:
            _check_workers(client)
            _CHECKED.add(client)

    @classmethod
    def connect(cls, address: str, *, timeout: float | None = None) -> DaskExecutor:
        """A client of the scheduler at ``address`` (``tcp://HOST:PORT``, or ``dask`` for the
        address in Dask's configuration), connected within ``timeout`` seconds."""
        distributed = _import_distributed()
        import dask.config
        from dask.utils import parse_timedelta

        if address == "dask":
            configured = dask.config.get("scheduler-address", None)
            if not configured:
                raise ExecutorError(
                    "executor 'dask' takes the scheduler's address from Dask's configuration "
                    "(scheduler-address, or $DASK_SCHEDULER_ADDRESS), which has none; "
                    "give dask://HOST:PORT instead"
                )
            address = str(configured)
        if timeout is None:
            timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s: {exc}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - e.g. something else listens there
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ExecutorError(
                f"{address!r} does not answer as a Dask scheduler ({detail})"
            ) from None
        stream = getattr(client, "scheduler_comm", None)
        if stream is not None and hasattr(stream, "interval"):
            stream.interval = CLIENT_BATCH_INTERVAL
        try:
            return cls(client, owned=True)
        except BaseException:
            client.close()
            raise

    def for_run(self, env: NodeEnv) -> _DaskRun:
        return _DaskRun(self, env)

    def close(self) -> None:
        if self.owned:
            self.client.close()

    def __repr__(self) -> str:
        return f"<DaskExecutor {self.name}>"
