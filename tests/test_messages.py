"""The scheduler's inputs and commands are immutable values compared by type and fields."""

from __future__ import annotations

import pickle

import pytest
from wavecrest.core._events import (
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    StartTask,
    TaskCancelled,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)


def test_messages_with_equal_fields_but_different_types_differ() -> None:
    counts = [PermitsGranted(1), ReleasePermits(1), RequestPermits(1), WithdrawPermits(1)]
    assert len(set(counts)) == 4
    assert all(a != b for i, a in enumerate(counts) for b in counts[i + 1 :])
    assert TaskCancelled(3) != TimerFired(3)
    assert ReleasePermits(1) != (1,)


def test_messages_equal_by_fields_hash_alike_and_survive_pickling() -> None:
    start = StartTask(7, "each[0]/t", 2, None, {"x": 1})  # type: ignore[arg-type]
    again = StartTask(7, "each[0]/t", 2, None, {"x": 1})  # type: ignore[arg-type]
    assert start == again
    assert (start != again) is False
    assert TaskSucceeded(1, None) == TaskSucceeded(1, None, None)
    assert hash(ReleasePermits(2)) == hash(ReleasePermits(2))
    assert pickle.loads(pickle.dumps(start)) == start
    assert (start.path, start.attempt) == ("each[0]/t", 2)


def test_messages_are_immutable() -> None:
    with pytest.raises(AttributeError):
        ReleasePermits(1).count = 2  # type: ignore[misc]
