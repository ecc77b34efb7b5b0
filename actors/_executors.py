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

An attempt whose work runs elsewhere is still a pooled actor: it holds a
thread here only while it handles a message (see :mod:`wavecrest.actors._pool`),
so an attempt waiting on a cluster ties up no thread.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Protocol

from pykka import ActorRef
from wavecrest.core import ExecutorError
from wavecrest.core._events import StartTask

from ._node import NodeEnv
from ._pool import ThreadPool

__all__ = [
    "CancelHandle",
    "Executor",
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
