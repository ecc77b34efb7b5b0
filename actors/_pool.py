"""Pooled threads for actors, and actors that hold a thread only while they work.

Starting a thread per actor costs 100-250 µs here, which would dominate a
workflow of small nodes. :class:`PooledActor` is a pykka ``Actor`` whose
messages are handled on threads borrowed from a :class:`ThreadPool` instead of
a thread of its own: each node execution is still its own actor, with its own
inbox and lifecycle, but the threads under them are reused.

Mailbox scheduling
------------------
A pooled actor holds no thread while it waits. Its inbox is a
:class:`Mailbox`: a message that reaches an idle actor schedules a *drain* of
the actor on the pool, which handles every queued message in order and then
gives the thread back. At most one drain is scheduled or running at a time
(``Mailbox._scheduled``), so messages are handled one by one, as in any actor;
``on_start`` runs in the first drain. So a Runtime of a thousand idle runs
holds no thread for them, and an actor waiting on something that resolves by
callback (a coroutine on an event loop, a task on a cluster) simply returns
from its handler and is woken by the message the callback tells it.

It also saves thread hand-offs on the hot path. A node actor reporting its
outcome schedules the (idle) scheduler's drain; its thread, returning to the
pool at once, usually finds that drain first in the queue and runs it, and
then the next node actor the scheduler started: a node ending and the next
one starting mostly cost no context switch (about 35 µs each on a quiet
two-core machine), where an actor blocked on its own inbox would have to be
woken.

The pool grows when every thread is busy and never shrinks until it is
closed; a node runtime that ignores cancellation keeps its thread until it
returns (the threads are daemons, so it cannot keep the process alive).

:class:`PooledActor` also gives pykka's actors what Erlang calls a monitor:
:meth:`PooledActor.on_exit` runs once after the actor stopped for any reason
— a normal stop, an exception from a handler, or an exception that escapes
``on_start`` — with the exception that killed it, if any. The actor is
unregistered by then, whatever happened.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any

import pykka
from pykka import ActorRegistry
from wavecrest.core import RuntimeClosedError

__all__ = ["Flag", "Mailbox", "PooledActor", "ThreadPool", "register", "unregister"]


class ThreadPool:
    """Threads that run actor loops: grows on demand, reuses idle threads, joins on close."""

    def __init__(self, name: str = "wavecrest") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Threads waiting for a job; a submit that finds none starts a thread.
        self._idle = 0
        self._closed = False
        self._numbers = count(1)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a pooled thread. RuntimeClosedError once the pool is closed."""
        thread = None
        with self._lock:
            if self._closed:
                raise RuntimeClosedError("the thread pool is closed")
            if self._idle:
                self._idle -= 1
            else:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{next(self._numbers)}", daemon=True
                )
                self._threads.append(thread)
        self._jobs.put(job)
        if thread is not None:
            thread.start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            job()
            with self._lock:
                self._idle += 1

    @property
    def size(self) -> int:
        """Threads started so far (busy or idle)."""
        return len(self._threads)

    def close(self, timeout: float | None = 10.0) -> list[threading.Thread]:
        """Stop taking jobs, let every thread finish; return those still busy after ``timeout``."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive()]


_urns = count(1)

#: Guards the lazy creation of a Flag's event (rare: only when someone waits).
_flag_lock = threading.Lock()


class Flag:
    """A ``threading.Event`` that costs a bool until somebody waits on it.

    Setting and testing it are attribute operations; the Event (a Condition and
    a Lock) is made only by the first ``wait``. Used for what is set and tested
    per node but rarely waited on: an actor's ``actor_stopped`` and an attempt's
    cancellation token.
    """

    __slots__ = ("_event", "_flag")

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        # A waiter publishes its event before it reads the flag, and this reads the
        # event after writing the flag, so one of the two always sees the other.
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        event = self._event
        if event is None:
            with _flag_lock:
                event = self._event
                if event is None:
                    event = self._event = threading.Event()
            if self._flag:
                event.set()
        return event.wait(timeout)


def register(ref: pykka.ActorRef[Any]) -> None:
    """``ActorRegistry.register`` without its debug message, which formats the actor's
    name even when debug logging is off (twice per node actor)."""
    with ActorRegistry._actor_refs_lock:
        ActorRegistry._actor_refs.append(ref)


def unregister(ref: pykka.ActorRef[Any]) -> None:
    with ActorRegistry._actor_refs_lock:
        try:
            ActorRegistry._actor_refs.remove(ref)
        except ValueError:
            pass  # already unregistered (abandoned, or stopped twice)


if not (
    hasattr(ActorRegistry, "_actor_refs") and hasattr(ActorRegistry, "_actor_refs_lock")
):  # pragma: no cover - another pykka: use its public, slower registration
    register = ActorRegistry.register
    unregister = ActorRegistry.unregister


class Mailbox:
    """A pooled actor's inbox: a queue that schedules a drain of the actor when a message
    reaches it while it is idle (see the module docstring)."""

    __slots__ = ("_actor", "_items", "_lock", "_scheduled")

    def __init__(self, actor: PooledActor) -> None:
        self._actor = actor
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        # True while a drain is scheduled or running; the first one starts the actor.
        # not _scheduled implies the actor holds no thread and _items was empty when its
        # last drain ended.
        self._scheduled = True

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        """Queue ``envelope`` (pykka's ``tell`` and ``ask`` come through here)."""
        with self._lock:
            self._items.append(envelope)
            if self._scheduled:
                return
            self._scheduled = True
        self._actor._schedule()

    def take(self) -> Any:
        """The next envelope; None, with the actor marked idle, when there is none."""
        with self._lock:
            if self._items:
                return self._items.popleft()
            self._scheduled = False
            return None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The next envelope (pykka's teardown reads what is left after ``empty()``)."""
        with self._lock:
            return self._items.popleft()

    def empty(self) -> bool:
        return not self._items


class PooledActor(pykka.Actor):
    """A pykka actor handled on :class:`ThreadPool` threads while it has messages, with an
    exit hook (see the module docstring).

    Node actors are started by the ten thousand, so the per-actor costs are
    trimmed: the URN is a counter rather than a fresh UUID, ``actor_stopped`` is
    a :class:`Flag`, and starting and stopping skip pykka's debug messages
    (registration still goes into :class:`pykka.ActorRegistry`, through its list
    and lock).
    """

    def __init__(self, pool: ThreadPool) -> None:
        # The fields pykka's Actor.__init__ sets, with a cheap process-unique URN.
        self.actor_urn = f"urn:wavecrest:actor:{next(_urns)}"
        self.actor_inbox: Mailbox = self._create_actor_inbox()
        self.actor_stopped = Flag()  # type: ignore[assignment]
        self._actor_ref = pykka.ActorRef(self)
        self._pool = pool
        self._crash: BaseException | None = None
        self._mailbox_begun = False
        self._mailbox_exited = False

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:  # type: ignore[override]
        """Create the actor, register it, and schedule its first drain (``on_start``)."""
        actor = cls(*args, **kwargs)
        register(actor.actor_ref)
        actor._start_actor_loop()
        return actor.actor_ref

    def _stop(self) -> None:
        unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_stop()
        except Exception:  # noqa: BLE001 - same contract as pykka: a failing on_stop is a failure
            self._handle_failure(*sys.exc_info())

    def _create_actor_inbox(self) -> Mailbox:  # type: ignore[override]
        return Mailbox(self)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        try:
            self._pool.submit(self._run_mailbox)
        except RuntimeClosedError:
            unregister(self.actor_ref)
            self.actor_stopped.set()
            raise

    def _schedule(self) -> None:
        try:
            self._pool.submit(self._run_mailbox)
        except RuntimeClosedError:
            # Every run is over once the pool closes; a message still reaching an actor
            # (a late callback) is handled on the caller's thread, so the actor still ends.
            self._run_mailbox()

    def _run_mailbox(self) -> None:
        # One drain: on_start the first time, then every queued message (see the module
        # docstring). A private name no subclass is likely to take.
        inbox = self.actor_inbox
        stopped = self.actor_stopped
        try:
            if not self._mailbox_begun:
                self._mailbox_begun = True
                self._actor_loop_setup()
            while not stopped.is_set():
                envelope = inbox.take()
                if envelope is None:
                    return  # idle: the thread goes back to the pool
                self._handle_envelope(envelope)
        except BaseException as exc:  # noqa: BLE001 - reported through on_exit, never lost
            self._crash = exc
            if not stopped.is_set():
                unregister(self.actor_ref)
                stopped.set()
        self._actor_loop_teardown()
        if not self._mailbox_exited:
            self._mailbox_exited = True
            self.on_exit(self._crash)

    def _handle_envelope(self, envelope: Any) -> None:
        # pykka's loop body for one envelope: a reply, or a failure.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:  # noqa: BLE001 - as in pykka: the asker gets it, or the actor dies
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001 - as in pykka
                    self._handle_failure(*sys.exc_info())

    def _handle_failure(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        # pykka logs unhandled exceptions at ERROR and stops the actor; an actor
        # of ours reports them through on_exit instead, to whoever monitors it.
        self._crash = exc_value
        unregister(self.actor_ref)
        self.actor_stopped.set()

    def on_exit(self, crash: BaseException | None) -> None:
        """Runs on the actor's thread once it stopped; ``crash`` is what killed it, if anything."""
