"""What a runtime sees: :class:`RuntimeContext`.

The context is built fresh for each attempt by whatever executes the node (a
node actor, the simulator, a Dask worker). Cancellation is cooperative: the
executor hands in a :class:`CancelSignal`; ``ctx.sleep`` waits on it and
raises :class:`~wavecrest.core.NodeCancelledError` once it is set, and
long-running runtimes call ``ctx.check_cancelled()`` between steps.

An ``async def`` runtime awaits ``ctx.asleep`` instead: its executor cancels
the attempt's task, so cancellation arrives as :class:`asyncio.CancelledError`
at whatever the coroutine awaits, ``ctx.asleep`` included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ._errors import NodeCancelledError

__all__ = ["CancelSignal", "NeverCancelled", "RuntimeContext"]


class CancelSignal(Protocol):
    """A cancellation token as the executor provides it (``threading.Event`` fits)."""

    def is_set(self) -> bool:
        """True once cancellation was requested."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` passes; return whether it is set."""
        ...


class NeverCancelled:
    """A :class:`CancelSignal` that is never set; ``wait`` returns at once without sleeping.

    For calling runtimes directly (tests, scripts) where nothing cancels them.
    """

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        return False


class _NullLog:
    def __getattr__(self, _name: str) -> Any:
        return lambda *_a, **_k: None


class RuntimeContext:
    """The argument every runtime receives.

    ``input`` is the node's input value; ``config`` its configuration with
    templates already rendered (except the keys the runtime evaluates itself,
    see :meth:`evaluate`). ``attempt`` counts from 1. ``log`` is a structlog
    logger bound with the run, node and attempt.
    """

    __slots__ = (
        "_cancel",
        "_expressions",
        "_scope",
        "attempt",
        "base_dir",
        "config",
        "input",
        "log",
        "node_id",
        "path",
        "run_id",
        "secrets",
        "workflow",
    )

    def __init__(
        self,
        *,
        input: Any = None,
        config: Mapping[str, Any] | None = None,
        node_id: str = "",
        path: str | None = None,
        attempt: int = 1,
        run_id: str = "",
        workflow: str = "",
        base_dir: Path | str = ".",
        secrets: Mapping[str, str] | None = None,
        log: Any = None,
        cancel: CancelSignal | None = None,
        scope: Mapping[str, Any] | None = None,
        expressions: Mapping[str, Any] | None = None,
    ) -> None:
        self.input = input
        self.config: Mapping[str, Any] = config if config is not None else {}
        self.node_id = node_id
        self.path = path if path is not None else node_id
        self.attempt = attempt
        self.run_id = run_id
        self.workflow = workflow
        self.base_dir = base_dir if isinstance(base_dir, Path) else Path(base_dir)
        self.secrets: Mapping[str, str] = secrets if secrets is not None else {}
        self.log = log if log is not None else _NullLog()
        self._cancel: CancelSignal = cancel if cancel is not None else NeverCancelled()
        self._scope: Mapping[str, Any] = scope if scope is not None else {}
        self._expressions: Mapping[str, Any] = expressions if expressions is not None else {}

    def cancelled(self) -> bool:
        """True once the attempt was cancelled (timeout, fail-fast, run cancelled)."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise NodeCancelledError if the attempt was cancelled."""
        if self._cancel.is_set():
            raise NodeCancelledError(f"node {self.node_id!r} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, returning early with NodeCancelledError if cancelled meanwhile.

        This blocks its thread: an ``async def`` runtime awaits :meth:`asleep`.
        """
        if self._cancel.wait(max(0.0, seconds)):
            raise NodeCancelledError(f"node {self.node_id!r} was cancelled")

    async def asleep(self, seconds: float) -> None:
        """``await ctx.asleep(s)``: wait ``seconds`` without blocking the event loop.

        For ``async def`` runtimes. Cancelling the attempt cancels its task, so
        :class:`asyncio.CancelledError` is raised here at once; an attempt
        cancelled before or just as the wait ends gets NodeCancelledError, as
        from :meth:`sleep`. In a simulation the wait is virtual time.
        """
        self.check_cancelled()
        await asyncio.sleep(max(0.0, seconds))
        self.check_cancelled()

    def resolve_path(self, path: str | Path) -> Path:
        """``path`` made absolute against the workflow file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def evaluate(self, key: str, /, **names: Any) -> Any:
        """Evaluate the expression in config key ``key`` with the node's scope plus ``names``.

        Used by runtimes that evaluate an expression per item, such as
        ``transform:map`` with ``item`` and ``index``. KeyError if the node
        has no such expression.
        """
        expression = self._expressions[key]
        scope = {**self._scope, **names} if names else self._scope
        return expression.evaluate(scope)

    def has_expression(self, key: str) -> bool:
        """True if config key ``key`` holds an expression this runtime may evaluate."""
        return key in self._expressions

    def __repr__(self) -> str:
        return f"<RuntimeContext node={self.path!r} attempt={self.attempt}>"
