"""The FIFO semaphore: the pure value, and the SemaphoreActor checked against a deque model."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import pykka
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from profiles import examples
from wavecrest.actors import ThreadPool
from wavecrest.actors._semaphore import PermitOps, ReleaseAll, SemaphoreActor
from wavecrest.core import FifoSemaphore
from wavecrest.core._events import PermitsGranted


def test_grants_in_request_order() -> None:
    """Requests queue in arrival order and are granted one permit at a time in that order."""
    sem = FifoSemaphore(2)
    assert sem.acquire("a", 3) == {"a": 2}
    assert sem.acquire("b", 1) == {}
    assert sem.release("a", 1) == {"a": 1}  # a's third request was ahead of b
    assert sem.release("a", 1) == {"b": 1}
    assert sem.statistics().held == 2


def test_release_more_than_held_is_refused() -> None:
    """Releasing a permit one does not hold raises instead of creating a permit."""
    sem = FifoSemaphore(1)
    with pytest.raises(ValueError, match=r"'a' releases 1 permit\(s\) but holds 0"):
        sem.release("a", 1)


def test_withdraw_and_release_all() -> None:
    """Withdrawing drops queued requests; release_all returns held permits to the next waiter."""
    sem = FifoSemaphore(1)
    sem.acquire("a", 1)
    sem.acquire("b", 2)
    sem.acquire("c", 1)
    assert sem.withdraw("b", 1) == 1
    assert list(sem.waiters) == ["b", "c"]
    assert sem.release_all("a") == {"b": 1}
    assert sem.release_all("b") == {"c": 1}
    assert sem.statistics().waiting == 0


@settings(max_examples=examples(200))
@given(
    capacity=st.integers(1, 4),
    steps=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.integers(0, 3)), max_size=30
    ),
)
def test_an_exchange_grants_exactly_what_a_release_then_an_acquire_grants(
    capacity: int, steps: list[tuple[str, int, int]]
) -> None:
    """The hot path's one-step exchange keeps the semaphore exactly as the two calls do,
    waiters or not, grants in the same order."""
    fast, slow = FifoSemaphore(capacity), FifoSemaphore(capacity)
    for requester, wanted, request in steps:
        release = min(wanted, slow.held[requester])
        grants = slow.release(requester, release) if release else {}
        for who, count in slow.acquire(requester, request).items():
            grants[who] = grants.get(who, 0) + count
        assert list(fast.exchange(requester, release, request).items()) == list(grants.items())
        assert (fast.available, fast.held, list(fast.waiters)) == (
            slow.available,
            slow.held,
            list(slow.waiters),
        )


def test_an_exchange_cannot_release_what_is_not_held() -> None:
    sem = FifoSemaphore(2)
    with pytest.raises(ValueError, match=r"'a' releases 1 permit\(s\) but holds 0"):
        sem.exchange("a", 1, 1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1 permit"):
        FifoSemaphore(0)


class Probe(pykka.ThreadingActor):
    """Records the permits granted to it."""

    def __init__(self) -> None:
        super().__init__()
        self.granted = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, PermitsGranted):
            self.granted += message.count
        return None

    def total(self) -> int:
        return self.granted


class SemaphoreActorMachine(RuleBasedStateMachine):
    """SemaphoreActor against a model: a deque of waiters and a count of free permits."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = 3
        self.pool = ThreadPool("sem-test")
        self.actor = SemaphoreActor.start(self.pool, self.capacity)
        self.probes = [Probe.start() for _ in range(3)]
        self.available = self.capacity
        self.waiters: deque[int] = deque()
        self.held: Counter[int] = Counter()
        self.granted: Counter[int] = Counter()

    def _grant(self) -> None:
        while self.available and self.waiters:
            who = self.waiters.popleft()
            self.available -= 1
            self.held[who] += 1
            self.granted[who] += 1

    @rule(who=st.integers(0, 2), count=st.integers(1, 4))
    def request(self, who: int, count: int) -> None:
        self.actor.tell(PermitOps(self.probes[who], request=count))
        self.waiters.extend([who] * count)
        self._grant()

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(sorted(w for w, n in self.held.items() if n)))
        count = data.draw(st.integers(1, self.held[who]))
        self.actor.tell(PermitOps(self.probes[who], release=count))
        self.held[who] -= count
        self.available += count
        self._grant()

    @rule(who=st.integers(0, 2), count=st.integers(1, 3))
    def withdraw(self, who: int, count: int) -> None:
        self.actor.tell(PermitOps(self.probes[who], withdraw=count))
        kept: deque[int] = deque()
        dropped = 0
        for waiter in self.waiters:
            if waiter == who and dropped < count:
                dropped += 1
            else:
                kept.append(waiter)
        self.waiters = kept

    @rule(who=st.integers(0, 2))
    def release_all(self, who: int) -> None:
        self.actor.tell(ReleaseAll(self.probes[who]))
        self.waiters = deque(w for w in self.waiters if w != who)
        self.available += self.held[who]
        self.held[who] = 0
        self._grant()

    @invariant()
    def agrees_with_the_model(self) -> None:
        stats = self.actor.proxy().statistics().get(timeout=10)
        assert stats.available == self.available
        assert stats.held == sum(self.held.values())
        assert stats.waiting == len(self.waiters)
        # Grants were told before the statistics reply; asking each probe after
        # that tell sees them (each inbox is FIFO).
        for who, probe in enumerate(self.probes):
            assert probe.proxy().total().get(timeout=10) == self.granted[who]

    def teardown(self) -> None:
        for probe in self.probes:
            probe.stop()
        self.actor.stop()
        assert self.pool.close() == []


TestSemaphoreActor = SemaphoreActorMachine.TestCase
TestSemaphoreActor.settings = settings(
    max_examples=examples(40), stateful_step_count=25, deadline=None
)


def test_grants_to_a_dead_requester_go_to_the_next_in_line() -> None:
    """A requester that died before its grant never keeps the permit: the next waiter gets it."""
    pool = ThreadPool("sem-test")
    actor = SemaphoreActor.start(pool, 1)
    holder, dead, alive = Probe.start(), Probe.start(), Probe.start()
    try:
        actor.tell(PermitOps(holder, request=1))
        actor.tell(PermitOps(dead, request=1))
        actor.tell(PermitOps(alive, request=1))
        dead.stop()
        actor.tell(PermitOps(holder, release=1))
        stats = actor.proxy().statistics().get(timeout=10)
        assert (stats.held, stats.waiting) == (1, 0)
        assert alive.proxy().total().get(timeout=10) == 1
    finally:
        for probe in (holder, alive):
            probe.stop()
        actor.stop()
        assert pool.close() == []
