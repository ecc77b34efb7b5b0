"""Pooled threads for actors.

Starting a thread per actor costs 100-250 µs here, which would dominate a
workflow of small nodes. :class:`PooledActor` is a pykka ``Actor`` whose
message loop runs on a thread borrowed from a :class:`ThreadPool` instead of
a thread of its own: each node execution is still its own actor, with its own
inbox and lifecycle, but the thread under it is reused.

The pool grows when every thread is busy and never shrinks until it is
closed; a node runtime that ignores cancellation keeps its thread until it
returns (the threads are daemons, so it cannot keep the process alive).

:class:`PooledActor` also gives pykka's actors what Erlang calls a monitor:
:meth:`PooledActor.on_exit` runs on the actor's thread after its loop ends
for any reason — a normal stop, an exception from a handler, or an exception
that escapes ``on_start`` — with the exception that killed it, if any. The
actor is unregistered by then, whatever happened.

An actor waiting for something that resolves by callback (a coroutine on an
event loop) need not hold a thread meanwhile: its ``on_start`` calls
:meth:`PooledActor._detach`, and when it returns the thread goes back to the
pool while the actor stays alive, its messages waiting in its inbox.
:meth:`PooledActor._reattach`, from any thread, runs the rest of its loop on
a pooled thread again.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from itertools import count
from typing import Any

import pykka
from pykka import ActorRegistry
from wavecrest.core import RuntimeClosedError

__all__ = ["Flag", "PooledActor", "ThreadPool", "register", "unregister"]


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


class PooledActor(pykka.Actor):
    """A pykka actor whose loop runs on a :class:`ThreadPool` thread, with an exit hook.

    Node actors are started by the ten thousand, so the per-actor costs are
    trimmed: the URN is a counter rather than a fresh UUID, ``actor_stopped`` is
    a :class:`Flag`, and starting and stopping skip pykka's debug messages
    (registration still goes into :class:`pykka.ActorRegistry`, through its list
    and lock).
    """

    def __init__(self, pool: ThreadPool) -> None:
        # The fields pykka's Actor.__init__ sets, with a cheap process-unique URN.
        self.actor_urn = f"urn:wavecrest:actor:{next(_urns)}"
        self.actor_inbox = self._create_actor_inbox()
        self.actor_stopped = Flag()  # type: ignore[assignment]
        self._actor_ref = pykka.ActorRef(self)
        self._pool = pool
        self._crash: BaseException | None = None

    # Detaching (class defaults, so actors that never detach pay nothing): _detached is
    # set by on_start, _parked once its thread is given back, _woken when _reattach came
    # before that. Guarded by _park_lock, which _detach creates.
    _detached = _parked = _woken = False
    _park_lock: threading.Lock

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:  # type: ignore[override]
        """Create the actor, register it, and run its loop on its pool."""
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

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        try:
            self._pool.submit(self._run_loop)
        except RuntimeClosedError:
            unregister(self.actor_ref)
            self.actor_stopped.set()
            raise

    def _run_loop(self) -> None:
        try:
            self._actor_loop_setup()
            if self._detached and not self.actor_stopped.is_set() and self._park():
                return  # the thread goes back to the pool; _reattach goes on from here
            self._actor_loop_running()
            self._actor_loop_teardown()
        except BaseException as exc:  # noqa: BLE001 - reported through on_exit, never lost
            self._crash = exc
        self._exit()

    def _resume_loop(self) -> None:
        try:
            self._actor_loop_running()
            self._actor_loop_teardown()
        except BaseException as exc:  # noqa: BLE001 - reported through on_exit, never lost
            self._crash = exc
        self._exit()

    def _exit(self) -> None:
        if not self.actor_stopped.is_set():
            unregister(self.actor_ref)
            self.actor_stopped.set()
            self._actor_loop_teardown()
        self.on_exit(self._crash)

    def _detach(self) -> None:
        """From ``on_start``, before whatever will call :meth:`_reattach` is set going: once
        ``on_start`` returns, give the thread back instead of reading the inbox; the actor
        lives on until :meth:`_reattach` resumes its loop."""
        self._park_lock = threading.Lock()
        self._detached = True

    def _park(self) -> bool:
        with self._park_lock:
            if self._woken:  # reattached already: go on on this thread
                self._detached = self._woken = False
                return False
            self._parked = True
            return True

    def _reattach(self) -> None:
        """Resume a detached actor's loop on a pooled thread (any thread may call this).

        Once the pool is closed the loop runs on the caller's thread instead.
        """
        with self._park_lock:
            if not self._parked:
                self._woken = True
                return
            self._parked = self._detached = False
        try:
            self._pool.submit(self._resume_loop)
        except RuntimeClosedError:
            self._resume_loop()

    def _handle_failure(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        # pykka logs unhandled exceptions at ERROR and stops the actor; an actor
        # of ours reports them through on_exit instead, to whoever monitors it.
        self._crash = exc_value
        unregister(self.actor_ref)
        self.actor_stopped.set()

    def on_exit(self, crash: BaseException | None) -> None:
        """Runs on the actor's thread once it stopped; ``crash`` is what killed it, if anything."""
