"""Executing one task attempt: from a :class:`StartTask` command to its outcome.

This is the part every executor shares — the node actor, the simulator and a
Dask worker: render the node's config with the scope the scheduler sent,
build the :class:`RuntimeContext`, apply an injected fault, call the runtime,
and classify what happened as :class:`TaskSucceeded`, :class:`TaskFailed` or
:class:`TaskCancelled`. An exception from the runtime is a failure report,
never an exception out of :func:`execute_task`.

The one exception that does escape is :class:`ExecutorCrash`: a ``crash``
fault asks the executor itself to die without reporting, so that the
supervision of that executor is what gets exercised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._context import CancelSignal, RuntimeContext
from ._errors import NodeCancelledError
from ._events import StartTask, TaskCancelled, TaskFailed, TaskSucceeded
from ._expr import compile_expression, render_value
from ._registry import RuntimeSpec, get_runtime
from ._retry import error_info

__all__ = ["ExecutorCrash", "execute_task"]

Outcome = TaskSucceeded | TaskFailed | TaskCancelled


class ExecutorCrash(BaseException):
    """Raised by a ``crash`` fault: the executor must die without reporting a result."""


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
    runtime: RuntimeSpec | None = None,
) -> Outcome:
    """Run one attempt and report its outcome.

    ``encode`` (when the run persists snapshots) turns the output into its
    snapshot bytes here, on the executor's thread; an output it cannot encode
    fails the attempt with OutputEncodingError. ``runtime`` is the registry
    entry to run, when the executor brought it along (a Dask worker runs the
    client's entry, not whatever its own registry holds); else the key is looked
    up in this process's registry.
    """
    node = start.node
    try:
        fault = start.fault
        if fault is not None:
            _inject(fault, start, cancel)
        spec = runtime if runtime is not None else get_runtime(node.runtime_key)
        scope = start.scope
        config: dict[str, Any] = {}
        expressions: dict[str, Any] = {}
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
        output = spec.func(ctx)
        encoded = encode(output) if encode is not None else None
        return TaskSucceeded(start.token, output, encoded)
    except NodeCancelledError as exc:
        if cancel.is_set():
            return TaskCancelled(start.token)
        return TaskFailed(start.token, error_info(exc, node=start.path, attempt=start.attempt))
    except Exception as exc:  # noqa: BLE001 - a runtime's failure is reported, never raised
        if cancel.is_set() and isinstance(exc, TimeoutError | InterruptedError):
            return TaskCancelled(start.token)
        return TaskFailed(start.token, error_info(exc, node=start.path, attempt=start.attempt))


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
