"""Running a coroutine in virtual time: how the simulator executes ``async def`` runtimes.

:func:`run_in_virtual_time` runs one coroutine to completion on an asyncio
event loop whose clock is virtual. The loop is a stock
:class:`asyncio.SelectorEventLoop` with two changes: ``time()`` reads a
virtual clock, and its selector never waits. Where the loop would block in
``select(timeout)`` until its next timer is due, the selector moves the
virtual clock forward by ``timeout`` instead and reports nothing, so the timer
is due at once. ``asyncio.sleep``, ``asyncio.wait_for``, ``ctx.asleep`` and
everything else built on the loop's timers therefore take no real time, and
since the loop runs one callback at a time in a fixed order, the same
coroutine always takes the same virtual time and gives the same result.

The loop cannot wait for what only the world outside would deliver: a socket
becoming readable, another thread resolving a future. When it would block
with no timer pending (``select(None)``) the coroutine can never go on, and
:class:`VirtualStall` is raised: the simulator treats that attempt as hung
until it is cancelled. No thread is ever started.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

__all__ = ["VirtualStall", "run_in_virtual_time"]

T = TypeVar("T")


class VirtualStall(Exception):
    """Raised when a coroutine in virtual time waits for something no timer will bring."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector that keeps its registrations but never waits: waiting advances ``now``."""

    def __init__(self) -> None:
        self.now = 0.0
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if fileobj in self._keys:
            raise KeyError(f"{fileobj!r} is already registered")
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise VirtualStall("the coroutine waits for something that no timer will bring")
        self.now += max(0.0, timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class _VirtualLoop(asyncio.SelectorEventLoop):
    """A selector event loop on a virtual clock (see the module docstring)."""

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def _ignore(_loop: asyncio.AbstractEventLoop, _context: dict[str, Any]) -> None:
    """The loop's exception handler: what a simulated coroutine leaves behind is dropped."""


def run_in_virtual_time(coroutine: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """Run ``coroutine`` to completion in virtual time: ``(its result, virtual seconds taken)``.

    Raises what the coroutine raises, or VirtualStall (after cancelling it and
    letting it unwind) when it waits for something other than time. Tasks it
    started and left running are cancelled before the loop closes.
    """
    loop = _VirtualLoop()
    loop.set_exception_handler(_ignore)
    try:
        task = loop.create_task(coroutine)
        try:
            loop.run_until_complete(task)
        except VirtualStall:
            task.cancel()
            try:
                loop.run_until_complete(task)
            except (VirtualStall, asyncio.CancelledError):
                pass
            raise
        return task.result(), loop.time()
    finally:
        _cancel_leftovers(loop)
        loop.close()


def _cancel_leftovers(loop: _VirtualLoop) -> None:
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        try:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        except VirtualStall:
            pass
    loop.run_until_complete(loop.shutdown_asyncgens())
