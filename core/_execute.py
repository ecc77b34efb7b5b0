"""Executing one task attempt: from a :class:`StartTask` command to its outcome.

This is the part every executor shares — the node actor, the simulator and a
Dask worker. It has two steps:

1. :func:`prepare_task` applies an injected fault, renders the node's config
   with the scope the scheduler sent and builds the :class:`RuntimeContext`:
   a :class:`TaskCall`, or the outcome itself when that already decided it
   (an injected ``raise``, a template that does not render);
2. :meth:`TaskCall.run` calls a plain runtime, and :meth:`TaskCall.run_async`
   awaits an ``async def`` one on the running event loop; both classify what
   happened as :class:`TaskSucceeded`, :class:`TaskFailed` or
   :class:`TaskCancelled`.

:func:`execute_task` is both steps for an executor without an event loop of
its own: an async runtime's coroutine is run to completion on a private loop
(``asyncio.run``) that cancels it once the cancel signal is set, or by the
``run_coroutine`` the executor passes (the simulator's virtual-time loop).
An exception from the runtime is a failure report, never an exception out of
these functions.

The one exception that does escape is :class:`ExecutorCrash`: a ``crash``
fault asks the executor itself to die without reporting, so that the
supervision of that executor is what gets exercised.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from ._context import CancelSignal, RuntimeContext
from ._errors import NodeCancelledError
from ._events import StartTask, TaskCancelled, TaskFailed, TaskSucceeded
from ._expr import compile_expression, render_value
from ._registry import RuntimeSpec, get_runtime
from ._retry import error_info

__all__ = ["ExecutorCrash", "Outcome", "TaskCall", "execute_task", "prepare_task"]

Outcome = TaskSucceeded | TaskFailed | TaskCancelled
#: Runs an async attempt's coroutine to completion and returns its outcome.
RunCoroutine = Callable[[Coroutine[Any, Any, Outcome]], Outcome]

#: How often the private loop of :func:`execute_task` looks at the cancel signal.
CANCEL_POLL = 0.01

_RETURNED_COROUTINE = (
    "the runtime for {!r} returned a coroutine but is not an 'async def' function; "
    "register the coroutine function itself"
)


class ExecutorCrash(BaseException):
    """Raised by a ``crash`` fault: the executor must die without reporting a result."""


class TaskCall:
    """One attempt, ready for its runtime: the runtime, the context it is called with,
    and what its outcome is reported against."""

    __slots__ = ("cancel", "ctx", "encode", "spec", "start")

    def __init__(
        self,
        start: StartTask,
        spec: RuntimeSpec,
        ctx: RuntimeContext,
        cancel: CancelSignal,
        encode: Callable[[Any], bytes] | None,
    ) -> None:
        self.start = start
        self.spec = spec
        self.ctx = ctx
        self.cancel = cancel
        self.encode = encode

    @property
    def is_async(self) -> bool:
        """True when the runtime is an ``async def`` coroutine function."""
        return self.spec.is_async

    def run(self, run_coroutine: RunCoroutine | None = None) -> Outcome:
        """Call the runtime on this thread and report its outcome.

        An async runtime's coroutine is run to completion by ``run_coroutine``;
        by default on a fresh event loop of this call, which cancels it once the
        cancel signal is set (it looks every :data:`CANCEL_POLL` seconds).
        """
        if self.spec.is_async:
            coroutine = self.run_async()
            try:
                return (run_coroutine or _run_on_own_loop(self.cancel))(coroutine)
            except RuntimeError as exc:  # asyncio.run() inside a running loop, for one
                coroutine.close()
                return _failed(self.start, exc)
        try:
            return self._succeeded(self._call())
        except Exception as exc:  # noqa: BLE001 - a runtime's failure is reported, never raised
            return _outcome_of(exc, self.start, self.cancel)

    async def run_async(self) -> Outcome:
        """Await the runtime on the running loop and report its outcome.

        Cancelling the task running this coroutine cancels the runtime
        (:class:`asyncio.CancelledError` inside it); once the cancel signal is
        set that is reported as :class:`TaskCancelled`, as for a plain runtime
        stopped by ``ctx.sleep``. A CancelledError nobody asked for is a
        failure of the runtime. A plain runtime is called in place.
        """
        try:
            output = await self.spec.func(self.ctx) if self.spec.is_async else self._call()
            return self._succeeded(output)
        except asyncio.CancelledError as exc:
            if self.cancel.is_set():
                return TaskCancelled(self.start.token)
            return _failed(self.start, exc)
        except Exception as exc:  # noqa: BLE001 - a runtime's failure is reported, never raised
            return _outcome_of(exc, self.start, self.cancel)

    def _call(self) -> Any:
        output = self.spec.func(self.ctx)
        if isinstance(output, types.CoroutineType):
            output.close()
            raise TypeError(_RETURNED_COROUTINE.format(self.spec.key))
        return output

    def _succeeded(self, output: Any) -> TaskSucceeded:
        # An output that cannot be encoded raises here: the attempt failed.
        encoded = self.encode(output) if self.encode is not None else None
        return TaskSucceeded(self.start.token, output, encoded)

    def __repr__(self) -> str:
        return f"<TaskCall {self.spec.key} {self.start.path!r} attempt {self.start.attempt}>"


def prepare_task(
    start: StartTask,
    *,
    cancel: CancelSignal,
    run_id: str = "",
    workflow: str = "",
    base_dir: Path | str = ".",
    secrets: Mapping[str, str] | None = None,
    log: Any = None,
    encode: Callable[[Any], bytes] | None = None,
) -> TaskCall | Outcome:
    """Everything before the runtime is called: the attempt's :class:`TaskCall`, or its
    outcome when an injected fault or the config already decided it.

    ``encode`` (when the run persists snapshots) turns the output into its
    snapshot bytes on the executor's thread; an output it cannot encode fails
    the attempt with OutputEncodingError. A ``delay`` or ``hang`` fault waits
    on ``cancel`` here, on the caller's thread.
    """
    prepared = _prepare(start, cancel, run_id, workflow, base_dir, secrets, log)
    if isinstance(prepared, _Ready):
        return TaskCall(start, prepared.spec, prepared.ctx, cancel, encode)
    return prepared


def execute_task(
    start: StartTask,
    *,
    cancel: CancelSignal,
    run_id: str = "",
    workflow: str = "",
    base_dir: Path | str = ".",
    secrets: Mapping[str, str] | None = None,
    log: Any = None,
    encode: Callable[[Any], bytes] | None = None,
    run_coroutine: RunCoroutine | None = None,
    runtime: RuntimeSpec | None = None,
) -> Outcome:
    """Run one attempt on this thread and report its outcome (see :func:`prepare_task` and
    :meth:`TaskCall.run`, which ``run_coroutine`` is passed to).

    ``runtime`` is the registry entry to run, when the executor brought it along
    (a Dask worker runs the client's entry, not whatever its own registry
    holds); else the key is looked up in this process's registry.
    """
    prepared = _prepare(start, cancel, run_id, workflow, base_dir, secrets, log, runtime)
    if not isinstance(prepared, _Ready):
        return prepared
    spec, ctx = prepared.spec, prepared.ctx
    if spec.is_async:
        return TaskCall(start, spec, ctx, cancel, encode).run(run_coroutine)
    # A plain runtime, inline: the path every small node takes.
    try:
        output = spec.func(ctx)
        if isinstance(output, types.CoroutineType):
            output.close()
            raise TypeError(_RETURNED_COROUTINE.format(spec.key))
        encoded = encode(output) if encode is not None else None
        return TaskSucceeded(start.token, output, encoded)
    except Exception as exc:  # noqa: BLE001 - a runtime's failure is reported, never raised
        return _outcome_of(exc, start, cancel)


class _Ready:
    """A prepared attempt: its runtime and context (an outcome instead when it failed early)."""

    __slots__ = ("ctx", "spec")

    def __init__(self, spec: RuntimeSpec, ctx: RuntimeContext) -> None:
        self.spec = spec
        self.ctx = ctx


def _prepare(
    start: StartTask,
    cancel: CancelSignal,
    run_id: str,
    workflow: str,
    base_dir: Path | str,
    secrets: Mapping[str, str] | None,
    log: Any,
    runtime: RuntimeSpec | None = None,
) -> _Ready | Outcome:
    node = start.node
    try:
        fault = start.fault
        if fault is not None:
            _inject(fault, start, cancel)
        spec = runtime if runtime is not None else get_runtime(node.runtime_key)
        scope = start.scope
        config: dict[str, Any] = {}
        expressions: dict[str, Any] = {}
        if node.config:
            for key, value in node.config.items():
                if key in spec.expressions and isinstance(value, str):
                    expressions[key] = compile_expression(value)
                elif scope is not None:
                    config[key] = render_value(value, scope)
                else:
                    config[key] = value
        ctx = RuntimeContext(
            input=start.input,
            config=config,
            node_id=node.id,
            path=start.path,
            attempt=start.attempt,
            run_id=run_id,
            workflow=workflow,
            base_dir=base_dir,
            secrets=secrets,
            log=log,
            cancel=cancel,
            scope=scope,
            expressions=expressions,
        )
    except Exception as exc:  # noqa: BLE001 - reported as the attempt's outcome, never raised
        return _outcome_of(exc, start, cancel)
    return _Ready(spec, ctx)


def _outcome_of(exc: Exception, start: StartTask, cancel: CancelSignal) -> Outcome:
    if cancel.is_set() and isinstance(exc, NodeCancelledError | TimeoutError | InterruptedError):
        return TaskCancelled(start.token)
    return _failed(start, exc)


def _failed(start: StartTask, exc: BaseException) -> TaskFailed:
    return TaskFailed(start.token, error_info(exc, node=start.path, attempt=start.attempt))


def _run_on_own_loop(cancel: CancelSignal) -> RunCoroutine:
    def run(coroutine: Coroutine[Any, Any, Outcome]) -> Outcome:
        async def watched() -> Outcome:
            task = asyncio.ensure_future(coroutine)
            cancelling = False
            while True:
                done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL)
                if done:
                    return task.result()
                if not cancelling and cancel.is_set():
                    cancelling = True
                    task.cancel()

        return asyncio.run(watched())

    return run


def _inject(fault: Any, start: StartTask, cancel: CancelSignal) -> None:
    if fault.kind == "raise":
        raise fault.exception(start.node.id, start.attempt)
    if fault.kind == "delay":
        if cancel.wait(fault.delay):
            raise NodeCancelledError(f"node {start.path!r} was cancelled")
    elif fault.kind == "hang":
        cancel.wait(None)
        raise NodeCancelledError(f"node {start.path!r} was cancelled")
    elif fault.kind == "crash":
        raise ExecutorCrash(f"injected crash of the executor of {start.path!r}")
