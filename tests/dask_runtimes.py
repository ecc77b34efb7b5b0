"""Runtimes the Dask tests run on a LocalCluster's workers.

They live in a module of their own, importable by name (``tests/`` is on
``sys.path``, and the spawned workers inherit the path), because a runtime
defined in an importable module travels to the workers by reference, as a
user's installed runtimes would: the workers import this module.

Runtimes that need to tell the test something write to files under
``ctx.config["dir"]`` (the workers share this machine's file system), or set a
``distributed.Event``, which the test waits on with a timeout.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from wavecrest.core import (
    NodeCancelledError,
    PermanentError,
    RuntimeContext,
    register_runtime,
    unregister_runtime,
)

__all__ = ["KEYS", "register", "unregister"]


def _mark(ctx: RuntimeContext, name: str, text: str = "") -> None:
    folder = Path(ctx.config["dir"])
    with (folder / name).open("a", encoding="utf-8") as file:
        file.write(f"{text}\n")


def where(ctx: RuntimeContext) -> dict[str, Any]:
    """Where the attempt ran: the process, the Dask worker and the task's key."""
    import distributed

    worker = distributed.get_worker()
    return {"pid": os.getpid(), "worker": worker.address, "key": worker.get_current_task()}


def echo(ctx: RuntimeContext) -> Any:
    """The node's ``value`` config, or its input; counts executions in ``DIR/<node>``."""
    if "dir" in ctx.config:
        _mark(ctx, ctx.node_id, str(ctx.attempt))
    if ctx.config.get("fail"):
        raise PermanentError(f"{ctx.node_id} was told to fail")
    return ctx.config.get("value", ctx.input)


def nap(ctx: RuntimeContext) -> Any:
    """Sleeps ``seconds`` cooperatively (attempts before ``until`` only); records its
    interval, and whether it saw its cancellation, under ``DIR``."""
    started = time.time()
    event = ctx.config.get("started")
    if event:
        import distributed

        distributed.Event(event).set()
    if ctx.attempt < ctx.config.get("until", 1 << 30):
        try:
            ctx.sleep(float(ctx.config["seconds"]))
        except NodeCancelledError:
            if "dir" in ctx.config:
                _mark(ctx, f"{ctx.node_id}.cancelled", str(ctx.attempt))
            raise
    if "dir" in ctx.config:
        _mark(ctx, f"{ctx.node_id}.interval", f"{started} {time.time()}")
    return ctx.attempt


def stubborn(ctx: RuntimeContext) -> str:
    """Ignores cancellation: a plain ``time.sleep(seconds)``."""
    time.sleep(float(ctx.config["seconds"]))
    return "done anyway"


def logs(ctx: RuntimeContext) -> str:
    """Logs through ``ctx.log`` on the worker."""
    ctx.log.info("worker.said", answer=42, where=str(Path.cwd()))
    return "logged"


def kill_worker(ctx: RuntimeContext) -> int:
    """Kills its own worker process with SIGKILL the first time it runs (marked under ``DIR``)."""
    marker = Path(ctx.config["dir"]) / f"{ctx.node_id}.killed"
    runs = Path(ctx.config["dir"]) / f"{ctx.node_id}.runs"
    with runs.open("a", encoding="utf-8") as file:
        file.write(f"{ctx.attempt}\n")
    if not marker.exists():
        marker.write_text(str(os.getpid()), encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    return ctx.attempt


def big(ctx: RuntimeContext) -> str:
    """A string of ``size`` characters."""
    return "x" * int(ctx.config["size"])


def unpicklable(ctx: RuntimeContext) -> Any:
    """An output that cannot be pickled."""
    return threading.Lock()


def exits(ctx: RuntimeContext) -> None:
    """Raises SystemExit, which must not take the worker down."""
    raise SystemExit(3)


KEYS = {
    "transform:where": where,
    "transform:echo": echo,
    "transform:nap": nap,
    "transform:logs": logs,
    "transform:stubborn": stubborn,
    "transform:kill": kill_worker,
    "transform:big": big,
    "transform:unpicklable": unpicklable,
    "transform:exits": exits,
}


def register() -> None:
    for key, func in KEYS.items():
        register_runtime(key, func, replace=True)


def unregister() -> None:
    for key in KEYS:
        unregister_runtime(key)
