"""Executors: where a run's task attempts do their work.

The control plane — supervisor, scheduler, semaphore, snapshot writer — always
runs in this process's actors. An *executor* only decides where each attempt's
work (:func:`wavecrest.core.execute_task`) runs:

* the local pooled actors (``executor=None`` or ``"local"``, the default): the
  scheduler actor starts a :class:`~wavecrest.actors._node.NodeActor` that runs
  the attempt on its pooled thread. There is no executor object at all on this
  path, so it costs nothing;
* a Dask cluster (``"dask://HOST:PORT"``, ``"dask"`` for the address in Dask's
  own configuration, or a ``distributed.Client``): see
  :mod:`wavecrest.actors._dask`.

An :class:`Executor` belongs to a Runtime; :meth:`Executor.for_run` gives the
:class:`RunExecutor` one run's scheduler actor uses. Either way each attempt is
its own actor that reports exactly one outcome to the scheduler, and the
scheduler holds a cancellation handle per attempt (``set()`` asks the attempt
to stop; ``threading.Event`` is the local one).

:class:`ReactiveActor` is the actor for attempts whose work runs elsewhere:
a pooled actor that holds a thread only while it has messages to handle, so an
attempt waiting on a cluster ties up no thread here.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import deque
from typing import Any, Protocol

from pykka import ActorRef, ActorRegistry
from wavecrest.core import ExecutorError, RuntimeClosedError
from wavecrest.core._events import StartTask

from ._node import NodeEnv
from ._pool import PooledActor, ThreadPool

__all__ = [
    "CancelHandle",
    "Executor",
    "ReactiveActor",
    "RunExecutor",
    "executor_key",
    "open_executor",
]

#: ``dask://HOST:PORT``: a host name, IPv4 address or bracketed IPv6 address, and a port.
_DASK_ADDRESS = re.compile(r"dask://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})")

_VALID = "expected 'local', 'dask://HOST:PORT', 'dask' or a distributed.Client"


class CancelHandle(Protocol):
    """The scheduler's handle on one attempt: ``set()`` asks it to stop (``threading.Event``
    fits)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class RunExecutor(Protocol):
    """Starts the attempts of one run."""

    def start(self, pool: ThreadPool, start: StartTask) -> tuple[CancelHandle, ActorRef[Any]]:
        """Start the actor of attempt ``start``; its cancellation handle and its ref."""
        ...

    def abandon(self, handle: CancelHandle) -> None:
        """The scheduler stopped waiting for this attempt (it ignored its cancellation)."""
        ...


class Executor(Protocol):
    """Where a Runtime's attempts run; closed with the Runtime."""

    #: What logs and errors call it: ``dask tcp://10.0.0.5:8786``.
    name: str

    def for_run(self, env: NodeEnv) -> RunExecutor:
        """The executor of one run, which shares ``env``."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a client it opened; never one it was given)."""
        ...


def executor_key(spec: Any) -> Any:
    """What identifies ``spec`` among a Runtime's executors (None for the local one).

    Raises ExecutorError for anything that is not an executor.
    """
    if spec is None or spec == "local":
        return None
    if isinstance(spec, str):
        if spec == "dask":
            return spec
        match = _DASK_ADDRESS.fullmatch(spec)
        if match is None:
            if spec.startswith("dask://"):
                raise ExecutorError(f"invalid executor {spec!r}: expected dask://HOST:PORT")
            raise ExecutorError(f"invalid executor {spec!r}: {_VALID}")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ExecutorError(
                f"invalid executor {spec!r}: the port must be between 1 and 65535, got {port}"
            )
        return f"tcp://{match['host']}:{port}"
    if _is_dask_client(spec):
        return ("client", id(spec))
    raise ExecutorError(f"invalid executor {spec!r}: {_VALID}")


def open_executor(spec: Any, *, timeout: float | None = None) -> Executor | None:
    """The executor ``spec`` names, connected; None for the local pooled actors.

    ``timeout`` bounds connecting to a Dask scheduler (default: Dask's
    ``distributed.comm.timeouts.connect``). Raises ExecutorError for an
    unknown executor, a missing ``distributed`` package, or a scheduler that
    cannot be reached.
    """
    key = executor_key(spec)
    if key is None:
        return None
    from ._dask import DaskExecutor

    if isinstance(key, tuple):
        return DaskExecutor(spec, owned=False)
    return DaskExecutor.connect(key, timeout=timeout)


def _is_dask_client(value: Any) -> bool:
    # A Client exists only once distributed is imported: no import needed to tell.
    distributed = sys.modules.get("distributed")
    client = getattr(distributed, "Client", None) if distributed is not None else None
    return client is not None and isinstance(value, client)


class _Inbox:
    """A :class:`ReactiveActor`'s inbox: a queue that schedules a drain when a message
    reaches an idle actor."""

    __slots__ = ("_actor", "_items", "_lock", "_scheduled")

    def __init__(self, actor: ReactiveActor) -> None:
        self._actor = actor
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        # True while a drain is scheduled or running; the first one is the start.
        self._scheduled = True

    def put(self, envelope: Any) -> None:
        with self._lock:
            self._items.append(envelope)
            if self._scheduled:
                return
            self._scheduled = True
        self._actor._schedule()

    def take(self) -> Any:
        """The next envelope, or None after marking the actor idle."""
        with self._lock:
            if self._items:
                return self._items.popleft()
            self._scheduled = False
            return None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        # Only pykka's teardown calls this, after checking empty().
        with self._lock:
            return self._items.popleft()

    def empty(self) -> bool:
        return not self._items


class ReactiveActor(PooledActor):
    """A pooled actor that holds a pool thread only while it has messages to handle.

    A message told to an idle actor schedules a *drain* on the pool, which
    handles every queued message in order and gives the thread back. At most
    one drain is scheduled or running at a time, so messages are handled one
    by one, as in any actor. ``on_start`` runs in the first drain; ``on_exit``
    runs once, on the drain that sees the actor stopped, with the exception
    that killed it, if any (as for :class:`PooledActor`).
    """

    def __init__(self, pool: ThreadPool) -> None:
        super().__init__(pool)
        self._begun = False
        self._exited = False

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]
        return _Inbox(self)

    def _start_actor_loop(self) -> None:
        try:
            self._pool.submit(self._drain)
        except RuntimeClosedError:
            ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            raise

    def _schedule(self) -> None:
        try:
            self._pool.submit(self._drain)
        except RuntimeClosedError:
            pass  # the Runtime closed; an actor still alive now was abandoned

    def _drain(self) -> None:
        inbox: Any = self.actor_inbox
        stopped = self.actor_stopped
        try:
            if not self._begun:
                self._begun = True
                self._actor_loop_setup()
            while not stopped.is_set():
                envelope = inbox.take()
                if envelope is None:
                    return  # idle: the thread goes back to the pool
                self._handle_envelope(envelope)
        except BaseException as exc:  # noqa: BLE001 - reported through on_exit, never lost
            self._crash = exc
            if not stopped.is_set():
                ActorRegistry.unregister(self.actor_ref)
                stopped.set()
        self._actor_loop_teardown()
        if not self._exited:
            self._exited = True
            self.on_exit(self._crash)

    def _handle_envelope(self, envelope: Any) -> None:
        # pykka's loop body for one envelope: a reply or a failure.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:  # noqa: BLE001 - as in pykka: the asker gets it, or the actor dies
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
