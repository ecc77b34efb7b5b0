"""One thread that delivers timer messages to actors.

A timer is a message to be told to an actor after a delay. All timers of a
Runtime share this thread: a heap ordered by due time, and a condition the
thread waits on until the earliest is due or a new one is scheduled. Cancelled
timers are dropped lazily when they reach the top of the heap.
"""

from __future__ import annotations

import heapq
import threading
import time
from itertools import count
from typing import Any

from pykka import ActorDeadError, ActorRef

__all__ = ["TimerHandle", "TimerService"]


class TimerHandle:
    """A scheduled timer; :meth:`cancel` stops it from firing (if it has not yet)."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TimerService:
    """Delivers ``message`` to ``target`` after ``delay`` seconds, on one shared thread."""

    def __init__(self, name: str = "wavecrest-timers") -> None:
        self._heap: list[tuple[float, int, TimerHandle, ActorRef[Any], Any]] = []
        self._seq = count()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, delay: float, target: ActorRef[Any], message: Any) -> TimerHandle:
        handle = TimerHandle()
        due = time.monotonic() + max(0.0, delay)
        with self._condition:
            heapq.heappush(self._heap, (due, next(self._seq), handle, target, message))
            if self._heap[0][2] is handle:
                self._condition.notify()
        return handle

    def _run(self) -> None:
        with self._condition:
            while not self._closed:
                if not self._heap:
                    self._condition.wait()
                    continue
                due, _, handle, target, message = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if handle.cancelled:
                    continue
                try:
                    target.tell(message)
                except ActorDeadError:
                    pass

    def pending(self) -> int:
        """Timers scheduled and not cancelled."""
        with self._condition:
            return sum(1 for entry in self._heap if not entry[2].cancelled)

    def close(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._closed = True
            self._heap.clear()
            self._condition.notify()
        self._thread.join(timeout)
