"""A strictly FIFO counting semaphore, as a value.

Requests queue in arrival order and are granted in that order, one permit at
a time: a request for ``n`` permits is ``n`` queue entries, so a large
request never blocks a later small one from the permits it would get anyway,
and nobody overtakes anybody. Grants are reported as ``{requester: count}``
in the order they were made.

State: ``available`` free permits, ``held`` per requester, and the FIFO
``waiters`` queue of requester ids.

Invariant: ``bool(waiters)`` implies ``available == 0``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["FifoSemaphore", "SemaphoreStatistics"]


@dataclass(frozen=True, slots=True)
class SemaphoreStatistics:
    """A snapshot of a semaphore: capacity, free permits, holders and queue length."""

    capacity: int
    available: int
    held: int
    waiting: int


class FifoSemaphore:
    """Counting semaphore granting strictly in request order. Mutates itself only."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a semaphore needs at least 1 permit, got {capacity!r}")
        self.capacity = capacity
        self.available = capacity
        self.held: Counter[Hashable] = Counter()
        self.waiters: deque[Hashable] = deque()

    def acquire(self, requester: Hashable, count: int = 1) -> dict[Hashable, int]:
        """Queue ``count`` requests for ``requester``; return the grants this makes possible."""
        self.waiters.extend([requester] * count)
        return self._grant()

    def release(self, requester: Hashable, count: int = 1) -> dict[Hashable, int]:
        """Give back ``count`` permits held by ``requester``; return the grants that follow.

        Releasing more than is held raises ValueError (it would be a leak elsewhere).
        """
        if count > self.held[requester]:
            raise ValueError(
                f"{requester!r} releases {count} permit(s) but holds {self.held[requester]}"
            )
        self._forget(requester, count)
        self.available += count
        return self._grant()

    def exchange(self, requester: Hashable, release: int, request: int) -> dict[Hashable, int]:
        """``release`` then ``acquire`` in one step, with the same grants as the two calls.

        This is a run's step on the hot path (an attempt ended, another is ready):
        when nobody is queued it touches only the counters.
        """
        if self.waiters:
            grants = self.release(requester, release) if release else {}
            for waiter, count in self.acquire(requester, request).items():
                grants[waiter] = grants.get(waiter, 0) + count
            return grants
        held = self.held
        if release:
            if release > held[requester]:
                raise ValueError(
                    f"{requester!r} releases {release} permit(s) but holds {held[requester]}"
                )
            self._forget(requester, release)
            self.available += release
        granted = min(request, self.available)
        if granted:
            self.available -= granted
            held[requester] += granted
        if granted < request:
            self.waiters.extend([requester] * (request - granted))
        return {requester: granted} if granted else {}

    def withdraw(self, requester: Hashable, count: int | None = None) -> int:
        """Drop up to ``count`` (all if None) of ``requester``'s queued requests; say how many."""
        kept: deque[Hashable] = deque()
        dropped = 0
        for waiter in self.waiters:
            if waiter == requester and (count is None or dropped < count):
                dropped += 1
            else:
                kept.append(waiter)
        self.waiters = kept
        return dropped

    def release_all(self, requester: Hashable) -> dict[Hashable, int]:
        """Forget ``requester`` entirely: its queued requests and every permit it holds."""
        self.withdraw(requester)
        held = self.held[requester]
        return self.release(requester, held) if held else {}

    def statistics(self) -> SemaphoreStatistics:
        return SemaphoreStatistics(
            self.capacity, self.available, sum(self.held.values()), len(self.waiters)
        )

    def _forget(self, requester: Hashable, count: int) -> None:
        self.held[requester] -= count
        if not self.held[requester]:
            del self.held[requester]

    def _grant(self) -> dict[Hashable, int]:
        grants: dict[Hashable, int] = {}
        while self.available and self.waiters:
            requester = self.waiters.popleft()
            self.available -= 1
            self.held[requester] += 1
            grants[requester] = grants.get(requester, 0) + 1
        return grants
