"""SemaphoreActor: the FIFO permit authority of a Runtime.

Every run of a Runtime asks this one actor for permits before starting a
task node, so a Runtime's ``max_concurrency`` caps running task nodes across
all its runs. Requests are granted strictly in arrival order
(:class:`~wavecrest.core.FifoSemaphore`). A grant is told to the requester as
``PermitsGranted(n)``; a requester that has died by then gets nothing, and
its permits go straight to the next in line, so no permit is ever lost.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import FifoSemaphore, SemaphoreStatistics
from wavecrest.core._events import PermitsGranted

from ._pool import PooledActor, ThreadPool

__all__ = ["PermitOps", "ReleaseAll", "SemaphoreActor"]


class PermitOps(NamedTuple):
    """Release ``release`` permits, queue ``request`` more, drop ``withdraw`` queued requests."""

    requester: ActorRef[Any]
    release: int = 0
    request: int = 0
    withdraw: int = 0


class ReleaseAll(NamedTuple):
    """Forget ``requester``: release everything it holds and drop its queued requests."""

    requester: ActorRef[Any]


class SemaphoreActor(PooledActor):
    """Grants permits strictly FIFO to the actors that ask for them."""

    def __init__(self, pool: ThreadPool, capacity: int) -> None:
        super().__init__(pool)
        self.semaphore = FifoSemaphore(capacity)

    def on_receive(self, message: Any) -> Any:
        semaphore = self.semaphore
        if isinstance(message, PermitOps):
            requester = message.requester
            grants: dict[Any, int] = {}
            if message.withdraw:
                semaphore.withdraw(requester, message.withdraw)
            if message.release:
                _merge(grants, semaphore.release(requester, message.release))
            if message.request:
                _merge(grants, semaphore.acquire(requester, message.request))
            self._deliver(grants)
        elif isinstance(message, ReleaseAll):
            self._deliver(semaphore.release_all(message.requester))
        else:
            return super().on_receive(message)
        return None

    def statistics(self) -> SemaphoreStatistics:
        """Capacity, free permits, permits held and requests queued (ask it through a proxy)."""
        return self.semaphore.statistics()

    def _deliver(self, grants: dict[Any, int]) -> None:
        while grants:
            more: dict[Any, int] = {}
            for requester, count in grants.items():
                try:
                    requester.tell(PermitsGranted(count))
                except ActorDeadError:
                    # A requester that died cannot use or return its permits.
                    _merge(more, self.semaphore.release_all(requester))
            grants = more


def _merge(into: dict[Any, int], grants: dict[Any, int]) -> None:
    for requester, count in grants.items():
        into[requester] = into.get(requester, 0) + count
