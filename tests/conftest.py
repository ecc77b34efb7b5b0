"""Shared fixtures: every test must leave no actor and no thread behind, and none may hang."""

from __future__ import annotations

import faulthandler
import threading
from collections.abc import Iterator

import profiles  # registers and loads the hypothesis profile before any test module
import pytest
from pykka import ActorRegistry

#: Seconds a single test may take before the whole run is aborted with every
#: thread's stack on stderr: a hang fails CI at once instead of stalling it. The
#: explore profile runs each property many times longer, and gets as much more.
HANG_TIMEOUT = 180 * profiles.SCALE


@pytest.fixture(autouse=True)
def _fail_fast_on_hangs() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_TIMEOUT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def _no_leftover_actors() -> Iterator[None]:
    """Fail a test that leaves an actor running (and stop it, so others are not affected)."""
    yield
    leftover = ActorRegistry.get_all()
    if leftover:
        ActorRegistry.stop_all(block=True, timeout=10)
        pytest.fail(f"actors left running after the test: {leftover}")


@pytest.fixture
def no_new_threads() -> Iterator[None]:
    """Assert the test ends with exactly the threads it started with."""
    before = set(threading.enumerate())
    yield
    extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not extra, f"threads left running: {extra}"
