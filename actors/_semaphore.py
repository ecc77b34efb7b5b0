"""SemaphoreActor and Permits: the FIFO permit authority of a Runtime.

Every run of a Runtime takes its permits from one
:class:`~wavecrest.core.FifoSemaphore`, so a Runtime's ``max_concurrency``
caps running task nodes across all its runs, granted strictly in arrival
order. The semaphore lives in :class:`Permits`, under a lock, and is reached
two ways:

* on the hot path, a run's scheduler exchanges directly: one attempt ended,
  the next is ready — one permit back, one asked for — is one lock hold of a
  microsecond instead of a message to this actor and a grant back (two thread
  hand-offs per node);
* the :class:`SemaphoreActor` takes the rest as messages: operations from a
  scheduler without direct access, and :class:`ReleaseAll` for a run whose
  scheduler died.

Whoever makes a grant tells it to the requester as ``PermitsGranted(n)`` (or,
a scheduler granted in its own exchange, handles it at once); a requester
that has died by then gets nothing, and its permits go straight to the next in
line, so no permit is ever lost.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import FifoSemaphore, SemaphoreStatistics
from wavecrest.core._events import PermitsGranted

from ._pool import PooledActor, ThreadPool

__all__ = ["PermitOps", "Permits", "ReleaseAll", "SemaphoreActor"]


class PermitOps(NamedTuple):
    """Release ``release`` permits, queue ``request`` more, drop ``withdraw`` queued requests."""

    requester: ActorRef[Any]
    release: int = 0
    request: int = 0
    withdraw: int = 0


class ReleaseAll(NamedTuple):
    """Forget ``requester``: release everything it holds and drop its queued requests."""

    requester: ActorRef[Any]


class Permits:
    """A Runtime's FIFO semaphore under a lock, for the schedulers and the SemaphoreActor."""

    def __init__(self, capacity: int) -> None:
        self.semaphore = FifoSemaphore(capacity)
        self._lock = threading.Lock()

    def exchange(
        self, requester: Any, release: int = 0, request: int = 0, withdraw: int = 0
    ) -> dict[Any, int]:
        """Drop ``withdraw`` queued requests, release, then request; return the grants made."""
        semaphore = self.semaphore
        with self._lock:
            if withdraw:
                semaphore.withdraw(requester, withdraw)
            return semaphore.exchange(requester, release, request)

    def release_all(self, requester: Any) -> dict[Any, int]:
        """Forget ``requester``: its queued requests and every permit it holds."""
        with self._lock:
            return self.semaphore.release_all(requester)

    def statistics(self) -> SemaphoreStatistics:
        with self._lock:
            return self.semaphore.statistics()

    def deliver(self, grants: dict[Any, int], mine: Any = None) -> int:
        """Tell each requester its grant, except ``mine`` (the caller): return that one's.

        A requester that died cannot use or return its permits: they go to the
        next in line, and so on until every grant reached a live requester.
        """
        kept = 0
        while grants:
            more: dict[Any, int] = {}
            for requester, count in grants.items():
                if requester == mine:
                    kept += count
                    continue
                try:
                    requester.tell(PermitsGranted(count))
                except ActorDeadError:
                    _merge(more, self.release_all(requester))
            grants = more
        return kept


class SemaphoreActor(PooledActor):
    """Grants permits strictly FIFO to the actors that ask for them."""

    def __init__(self, pool: ThreadPool, permits: Permits | int) -> None:
        super().__init__(pool)
        self.permits = permits if isinstance(permits, Permits) else Permits(permits)
        self.semaphore = self.permits.semaphore

    def on_receive(self, message: Any) -> Any:
        permits = self.permits
        if isinstance(message, PermitOps):
            permits.deliver(
                permits.exchange(
                    message.requester, message.release, message.request, message.withdraw
                )
            )
        elif isinstance(message, ReleaseAll):
            permits.deliver(permits.release_all(message.requester))
        else:
            return super().on_receive(message)
        return None

    def statistics(self) -> SemaphoreStatistics:
        """Capacity, free permits, permits held and requests queued (ask it through a proxy)."""
        return self.permits.statistics()


def _merge(into: dict[Any, int], grants: dict[Any, int]) -> None:
    for requester, count in grants.items():
        into[requester] = into.get(requester, 0) + count
