"""Injected time.

The core never reads the time itself: it is handed a :class:`Clock`. The
actors use :class:`SystemClock`; tests and the simulator use
:class:`FakeClock`, which only moves when told to.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Where the core gets time: ``monotonic()`` for intervals, ``time()`` for timestamps."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch, for records people read."""
        ...


class SystemClock:
    """The real clocks: :func:`time.monotonic` and :func:`time.time`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class FakeClock:
    """A clock that stands still until :meth:`advance` (or :meth:`set`) moves it.

    Both readings move together; ``time()`` starts at ``epoch``.
    """

    def __init__(self, start: float = 0.0, *, epoch: float = 1_700_000_000.0) -> None:
        self._now = start
        self._offset = epoch - start

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._offset

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` (which must not be negative)."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards by {seconds!r} seconds")
        self._now += seconds

    def set(self, monotonic: float) -> None:
        """Jump to ``monotonic`` (not before the current reading)."""
        self.advance(monotonic - self._now)
