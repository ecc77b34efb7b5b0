"""EventDispatcher: delivers run events to their consumers, off the runs' threads.

Runs tell their events to this actor and never wait for it, so a slow
consumer delays only later deliveries, never a run. Events of one run arrive
and are delivered in order. Each observed run has a :class:`Delivery`: where
its events go — the run's event stream (for ``handle.events()``), the host's
logging, the run's own callback, then the Runtime's subscribers — and what
became of them: a callback that raises is counted (``result.callback_errors``)
and logged once per run and callback, never again for the same run; it cannot
break the run, the other consumers or later events.

When the run is over its supervisor tells :class:`Settle`; everything the run
told before has been delivered by then, so the dispatcher ends the run's
stream and tells the supervisor, whose result then has the final count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pykka import ActorDeadError, ActorRef
from wavecrest.core import RunEvent

from ._logging import HostLogger, library_log, log_event
from ._pool import PooledActor, ThreadPool
from ._stream import EventStream

__all__ = ["Deliver", "Delivery", "EventDispatcher", "Settle", "Settled", "Subscribers"]

Callback = Callable[[RunEvent], Any]
_log = library_log()


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


class Delivery:
    """Where one run's events go, and how many callback calls raised.

    ``errors`` is only written by the dispatcher; the supervisor reads it once
    the run is settled.
    """

    __slots__ = ("_logged", "callback", "errors", "log", "stream")

    def __init__(
        self,
        callback: Callback | None = None,
        stream: EventStream | None = None,
        log: HostLogger | None = None,
    ) -> None:
        self.callback = callback
        self.stream = stream
        self.log = log
        self.errors = 0
        self._logged: set[int] = set()  # id() of each callback whose failure was logged

    def failed(self, callback: Callback, event: RunEvent) -> None:
        """Count a raising callback; log the first failure of each callback in this run."""
        self.errors += 1
        if id(callback) in self._logged:
            return
        self._logged.add(id(callback))
        try:
            _log.exception(
                "callback.failed",
                run_id=event.run_id,
                callback=repr(callback),
                event_name=event.name,
                note="later failures of this callback in this run are counted, not logged",
            )
        except Exception:  # noqa: BLE001 - a broken log setup must not stop delivery
            pass


class Deliver(NamedTuple):
    """Hand each event, in order, to the consumers of ``delivery``, then to the subscribers."""

    events: tuple[RunEvent, ...]
    delivery: Delivery


class Settle(NamedTuple):
    """The run is over: end its stream, then tell ``reply_to`` (if any) :class:`Settled`."""

    stream: EventStream | None
    reply_to: ActorRef[Any] | None


@dataclass(frozen=True, slots=True)
class Settled:
    """Every event of the run has been delivered."""


class EventDispatcher(PooledActor):
    """Delivers events in order, one at a time, isolating its consumers' failures."""

    def __init__(self, pool: ThreadPool, subscribers: Subscribers) -> None:
        super().__init__(pool)
        self._subscribers = subscribers

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Deliver):
            self._deliver(message.events, message.delivery)
        elif isinstance(message, Settle):
            if message.stream is not None:
                message.stream.end()
            if message.reply_to is not None:
                try:
                    message.reply_to.tell(Settled())
                except ActorDeadError:
                    pass  # the supervisor gave up waiting and is gone
        else:
            return super().on_receive(message)
        return None

    def _deliver(self, events: tuple[RunEvent, ...], delivery: Delivery) -> None:
        if delivery.stream is not None:
            delivery.stream.push(events)
        log = delivery.log
        if log is not None:
            try:
                for event in events:
                    log_event(log, event)
            except Exception:  # noqa: BLE001 - a broken log setup must not stop delivery
                pass
        callbacks = self._subscribers()
        if delivery.callback is not None:
            callbacks = (delivery.callback, *callbacks)
        if not callbacks:
            return
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a callback's bug must not reach the run
                    delivery.failed(callback, event)
