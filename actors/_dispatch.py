"""EventDispatcher: delivers run events to user callbacks, off the runs' threads.

Runs tell their events to this actor and never wait for it, so a slow
callback delays only later callbacks, never a run. Events of one run arrive
and are delivered in order. A callback that raises is logged and kept; it
cannot break the run or the other callbacks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog
from wavecrest.core import RunEvent

from ._pool import PooledActor, ThreadPool

__all__ = ["Deliver", "EventDispatcher", "Subscribers"]

Callback = Callable[[RunEvent], Any]
_log = structlog.get_logger("wavecrest")


class Subscribers:
    """The Runtime-wide subscriber list; safe to change while events flow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: tuple[Callback, ...] = ()

    def add(self, callback: Callback) -> Callable[[], None]:
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks = tuple(c for c in self._callbacks if c is not callback)

        return unsubscribe

    def __call__(self) -> tuple[Callback, ...]:
        return self._callbacks

    def __bool__(self) -> bool:
        return bool(self._callbacks)


class Deliver(NamedTuple):
    """Give each event, in order, to the run's own callback (if any), then to the subscribers."""

    events: tuple[RunEvent, ...]
    callback: Callback | None


class EventDispatcher(PooledActor):
    """Calls event callbacks in order, one event at a time, isolating their failures."""

    def __init__(self, pool: ThreadPool, subscribers: Subscribers) -> None:
        super().__init__(pool)
        self._subscribers = subscribers

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Deliver):
            return super().on_receive(message)
        callbacks = self._subscribers()
        if message.callback is not None:
            callbacks = (message.callback, *callbacks)
        for event in message.events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a callback's bug must not reach the run
                    try:
                        _log.exception(
                            "callback.failed", callback=repr(callback), event_name=event.name
                        )
                    except Exception:  # noqa: BLE001 - a broken log setup must not stop delivery
                        pass
        return None
