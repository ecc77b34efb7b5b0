"""EventStream: one run's events for ``async for event in handle.events()``.

The Runtime's dispatcher pushes each run's events into its stream, in order,
and ends the stream after the run's last event; an asyncio consumer takes
them on its event loop. The two sides share a bounded buffer under a lock
and nothing else, so a slow consumer never blocks the dispatcher, and through
it the run:

* **Drop policy: the oldest go first.** The buffer holds at most ``capacity``
  events the consumer has not taken yet. When a push would overflow it, the
  oldest untaken events are dropped and counted in :attr:`EventStream.dropped`;
  the newest — the run's end among them — are kept.
* **Waking the consumer.** A consumer with nothing to read waits on a future
  of its loop. The dispatcher resolves it through ``loop.call_soon_threadsafe``,
  at most one wake-up in flight per stream, so a loop that is busy or blocked
  never accumulates callbacks from a stream.

One consumer at a time: the events are taken, not copied.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable

from wavecrest.core import EventsUnavailableError, RunEvent

__all__ = ["DEFAULT_EVENT_BUFFER", "EventStream"]

DEFAULT_EVENT_BUFFER = 10_000


class EventStream:
    """The bounded buffer between a run's dispatcher and one asyncio consumer."""

    def __init__(self, capacity: int = DEFAULT_EVENT_BUFFER) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"event buffer must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._lock = threading.Lock()
        # len(self._buffer) <= capacity; the consumer takes from the left.
        self._buffer: deque[RunEvent] = deque()
        self._dropped = 0
        self._ended = False
        self._consumed = False
        # The consumer's loop, and its future while it waits (both set by the consumer).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._waking = False  # a wake-up is on its way to the loop

    @property
    def dropped(self) -> int:
        """Events dropped so far because the consumer fell behind by more than the buffer."""
        return self._dropped

    @property
    def ended(self) -> bool:
        return self._ended

    # -- the dispatcher's side ---------------------------------------------------

    def push(self, events: Iterable[RunEvent]) -> None:
        """Add events (any thread; never blocks on the consumer)."""
        with self._lock:
            if self._ended:
                return
            buffer = self._buffer
            buffer.extend(events)
            overflow = len(buffer) - self.capacity
            if overflow > 0:
                for _ in range(overflow):
                    buffer.popleft()
                self._dropped += overflow
            wake = self._wake_needed()
        if wake:
            self._send_wake()

    def end(self) -> None:
        """No more events: the consumer's iteration ends once it has taken the rest."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            wake = self._wake_needed()
        if wake:
            self._send_wake()

    def _wake_needed(self) -> bool:
        # Under the lock: a consumer waits and no wake-up is on its way yet.
        if self._waiter is None or self._waking:
            return False
        self._waking = True
        return True

    def _send_wake(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass  # the consumer's loop is closed: nobody is left to read

    def _wake(self) -> None:
        # On the consumer's loop.
        with self._lock:
            self._waking = False
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the consumer's side -----------------------------------------------------

    def events(self) -> AsyncIterator[RunEvent]:
        """The events in order, ending after the run's last one; one consumer at a time."""
        with self._lock:
            if self._consumed:
                raise EventsUnavailableError(
                    "this run's events are already being read: handle.events() streams them "
                    "to one consumer (use on_event or Runtime.subscribe for more)"
                )
            self._consumed = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RunEvent]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                with self._lock:
                    if self._loop is None:
                        self._loop = loop
                    elif self._loop is not loop:
                        raise EventsUnavailableError(
                            "a run's events are read on one event loop; this is another"
                        )
                    batch = list(self._buffer)
                    self._buffer.clear()
                    waiter = None
                    if not batch:
                        if self._ended:
                            return
                        waiter = self._waiter = loop.create_future()
                for event in batch:
                    yield event
                if waiter is not None:
                    await waiter
        finally:
            with self._lock:
                self._waiter = None
                self._consumed = False
