"""Shared fixtures: every test must leave no actor and no thread behind."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pykka import ActorRegistry


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


# Test modules import shared helpers (``strategies``) from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))
