"""Pooled actors' building blocks: the lazily-evented Flag and registry bookkeeping."""

from __future__ import annotations

import threading

import pytest
from pykka import ActorRegistry
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
