"""Pooled actors' building blocks: the lazily-evented Flag and registry bookkeeping."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pykka import ActorDeadError, ActorRegistry
from wavecrest.actors import ThreadPool
from wavecrest.actors._pool import Flag, PooledActor

pytestmark = pytest.mark.usefixtures("no_new_threads")


def test_a_flag_is_set_and_tested_without_an_event() -> None:
    flag = Flag()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    assert flag.wait(0) is True
    assert flag._event is None  # nobody had to wait: no Event was ever made


def test_waiting_on_a_flag_times_out_while_it_is_not_set() -> None:
    assert Flag().wait(0.001) is False


def test_setting_a_flag_wakes_every_thread_waiting_on_it() -> None:
    flag = Flag()
    waiting = threading.Barrier(5)
    woke: list[bool] = []

    def waiter() -> None:
        waiting.wait(timeout=10)
        woke.append(flag.wait(timeout=10))

    threads = [threading.Thread(target=waiter) for _ in range(4)]
    for thread in threads:
        thread.start()
    waiting.wait(timeout=10)
    flag.set()
    for thread in threads:
        thread.join(timeout=10)
    assert woke == [True] * 4


class _Echo(PooledActor):
    def on_receive(self, message: object) -> object:
        return message


def test_a_pooled_actor_is_registered_while_it_lives_and_only_then() -> None:
    pool = ThreadPool("test-pool")
    try:
        ref = _Echo.start(pool)
        assert ref in ActorRegistry.get_all()
        assert ref.ask("ping", timeout=10) == "ping"
        ref.stop(timeout=10)
        assert ref not in ActorRegistry.get_all()
        assert not ref.is_alive()
    finally:
        assert pool.close(timeout=10) == []


# --- mailbox scheduling -----------------------------------------------------------------


class Collector(PooledActor):
    """Keeps what it is told; ``"boom"`` makes it fail; reports its exit."""

    def __init__(self, pool: ThreadPool, exits: list[Any]) -> None:
        super().__init__(pool)
        self.seen: list[Any] = []
        self.started = threading.Event()
        self._exits = exits

    def on_start(self) -> None:
        self.started.set()

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        if message == "seen":
            return list(self.seen)
        self.seen.append(message)
        return None

    def on_exit(self, crash: BaseException | None) -> None:
        self._exits.append(crash)


def test_a_pooled_actor_handles_its_messages_one_by_one_in_order() -> None:
    pool = ThreadPool("test")
    exits: list[Any] = []
    ref = Collector.start(pool, exits)
    senders = [
        threading.Thread(target=lambda k=k: [ref.tell((k, i)) for i in range(200)])
        for k in range(4)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    seen = ref.ask("seen", timeout=10)
    assert len(seen) == 800
    for k in range(4):
        assert [i for j, i in seen if j == k] == list(range(200))
    ref.stop(timeout=10)
    assert exits == [None]
    assert pool.close() == []


def test_a_pooled_actor_holds_no_thread_while_it_waits_for_messages() -> None:
    """Started and idle, it leaves every pool thread free (close finds none busy)."""
    pool = ThreadPool("test")
    exits: list[Any] = []
    refs = [Collector.start(pool, exits) for _ in range(5)]
    for ref in refs:
        assert ref.ask("seen", timeout=10) == []
    try:
        assert pool.close(timeout=10) == []
    finally:
        for ref in refs:
            ActorRegistry.unregister(ref)
    assert exits == []


def test_a_failing_tell_stops_it_with_on_exit_once_and_an_ask_gets_the_error() -> None:
    pool = ThreadPool("test")
    exits: list[Any] = []
    ref = Collector.start(pool, exits)
    with pytest.raises(RuntimeError, match="boom"):
        ref.ask("boom", timeout=10)
    assert ref.is_alive()  # as in pykka: the asker got the error, the actor lives on
    ref.tell("boom")
    ref.actor_stopped.wait(10)
    with pytest.raises(ActorDeadError):
        ref.tell("late")
    pool.close()
    assert len(exits) == 1
    assert isinstance(exits[0], RuntimeError)
    assert ActorRegistry.get_all() == []
