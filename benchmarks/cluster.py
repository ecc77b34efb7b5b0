"""wavecrest's Dask executor against Dask distributed's own scheduler, on one cluster.

The cluster is started the way README.rst tells users to: a ``dask scheduler``
process and ``dask worker`` processes (2 workers of 4 threads: the 8 of
``CONCURRENCY``), each its own process, so no system shares the benchmark's
interpreter with the scheduler. Three systems run the same generated workflow
on it:

``wavecrest-dask``
    ``run_workflow(workflow, executor="dask://HOST:PORT", max_concurrency=8)``,
    as ``wavecrest run --executor`` does: connecting is part of the call; the
    control plane here, each attempt one task submitted when the core says
    so; every output comes back here.
``dask-submit``
    Dask's own scheduler with the whole graph: one ``client.submit`` per node
    in declaration order (a topological order), each node's input futures as
    its arguments, then one ``client.gather`` of every node's result. Dask
    resolves the dependencies on the cluster.
``dask-window``
    The least a scheduler that keeps the graph on the client must do: a
    ``graphlib.TopologicalSorter`` here, at most 8 tasks submitted at a time,
    each node's input values sent with it and its result brought back here (by
    a coroutine on the client's loop, as wavecrest's executor does) before its
    successors are submitted. The floor of the local benchmarks, on Dask.

The two others share one client, whose batch window to the scheduler is the
2 ms wavecrest gives the clients it opens (Dask's default is 10 ms), so that
all three talk to the scheduler alike. All call the same per-node work
(:func:`noop`, or :func:`sleep_node` for the sleep graph), by reference from
this module, which the workers import (the worker processes get this checkout
on ``PYTHONPATH``). Every key has one dash-prefixed group: ``wc-...`` for
wavecrest, ``noop-...`` for the others.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from graphlib import TopologicalSorter
from itertools import count
from pathlib import Path
from typing import Any

from wavecrest.actors._dask import CLIENT_BATCH_INTERVAL
from wavecrest.core import RuntimeContext, Workflow, register_runtime

from .graphs import NOOP, SLEEP, durations
from .systems import CONCURRENCY, Outcome

__all__ = [
    "DASK_SYSTEMS",
    "WORKERS",
    "Cluster",
    "noop",
    "prepare_dask",
    "register_dask_runtimes",
    "sleep_node",
]

DASK_SYSTEMS = ("wavecrest-dask", "dask-window", "dask-submit")
#: Worker processes; each has CONCURRENCY // WORKERS threads.
WORKERS = 2
START_TIMEOUT = 120.0
ROOT = Path(__file__).resolve().parent.parent


def noop(*values: Any) -> None:
    """Per-node work of the plain submits: take the inputs, do nothing."""
    return None


def sleep_node(seconds: float, *values: Any) -> None:
    """Per-node work of the plain submits on the sleep graph."""
    time.sleep(seconds)


def noop_runtime(ctx: RuntimeContext) -> None:
    """``transform:noop`` on the cluster (a module function: it travels by reference)."""
    return None


def sleep_runtime(ctx: RuntimeContext) -> None:
    """``transform:sleep`` on the cluster: ``ctx.sleep(seconds)``."""
    ctx.sleep(float(ctx.config["seconds"]))


def register_dask_runtimes() -> None:
    register_runtime(NOOP, noop_runtime, replace=True)
    register_runtime(SLEEP, sleep_runtime, replace=True)


class Cluster:
    """A ``dask scheduler`` and WORKERS ``dask worker`` processes on this machine, and a client.

    ``close()`` shuts them down (killed if they linger).
    """

    def __init__(self, workers: int = WORKERS, threads: int = CONCURRENCY // WORKERS) -> None:
        import distributed

        self._folder = Path(tempfile.mkdtemp(prefix="wavecrest-bench-dask-"))
        scheduler_file = self._folder / "scheduler.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        dask_cli = [sys.executable, "-m", "dask"]
        self._processes = [
            subprocess.Popen(
                [
                    *dask_cli,
                    *("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"),
                    *("--scheduler-file", str(scheduler_file)),
                ],
                env=env,
                cwd=self._folder,
                **quiet,
            )
        ]
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            if time.monotonic() > deadline or self._processes[0].poll() is not None:
                self.close()
                raise RuntimeError("the dask scheduler did not start")
            time.sleep(0.05)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            self._processes.append(
                subprocess.Popen(
                    [
                        *dask_cli,
                        *("worker", self.address, "--nthreads", str(threads)),
                        *("--no-nanny", "--no-dashboard", "--memory-limit", "0"),
                    ],
                    env=env,
                    cwd=self._folder,
                    **quiet,
                )
            )
        self.client = distributed.Client(self.address, set_as_default=False)
        self.client.scheduler_comm.interval = CLIENT_BATCH_INTERVAL
        self.client.wait_for_workers(workers, timeout=START_TIMEOUT)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)


_tags = count()


def prepare_dask(system: str, workflow: Workflow, work: str, client: Any) -> Callable[[], Outcome]:
    """The timed call of ``system`` (one of DASK_SYSTEMS) on ``workflow`` over ``client``."""
    nodes = len(workflow.body)
    if system == "wavecrest-dask":
        from wavecrest.actors import run_workflow

        address = "dask://" + client.scheduler.address.removeprefix("tcp://")

        def run_wavecrest() -> Outcome:
            result = run_workflow(workflow, max_concurrency=CONCURRENCY, executor=address)
            ok = result.status == "completed" and len(result.outputs) == nodes
            detail = "" if ok else f"status {result.status!r}, errors {result.errors[:2]}"
            return Outcome(ok, len(result.outputs), detail)

        return run_wavecrest
    seconds = durations(workflow) if work == "sleep" else {}
    plan = [(node.id, tuple(node.inputs), seconds.get(node.id)) for node in workflow.body]
    if system == "dask-window":
        return lambda: _run_window(client, plan)
    if system != "dask-submit":
        raise ValueError(f"unknown system {system!r}: expected one of {', '.join(DASK_SYSTEMS)}")

    def run_submit() -> Outcome:
        tag = f"{os.getpid()}x{next(_tags)}"
        futures: dict[str, Any] = {}
        for index, (node, inputs, wait) in enumerate(plan):
            args = [futures[i] for i in inputs]
            key = f"noop-{index}-{tag}"
            if wait is None:
                futures[node] = client.submit(noop, *args, key=key, pure=False)
            else:
                futures[node] = client.submit(sleep_node, wait, *args, key=key, pure=False)
        results = client.gather(list(futures.values()))
        ok = len(results) == nodes
        return Outcome(ok, len(results), "" if ok else f"{len(results)} of {nodes} ran")

    return run_submit


def _run_window(client: Any, plan: list[tuple[str, tuple[str, ...], float | None]]) -> Outcome:
    """``dask-window``: see the module docstring."""
    tag = f"{os.getpid()}x{next(_tags)}"
    index = {node: i for i, (node, _, _) in enumerate(plan)}
    spec = {node: (inputs, wait) for node, inputs, wait in plan}
    sorter = TopologicalSorter({node: inputs for node, inputs, _ in plan})
    sorter.prepare()
    finished: queue.SimpleQueue[tuple[str, Any, BaseException | None]] = queue.SimpleQueue()

    async def watch(node: str, future: Any) -> None:
        try:
            finished.put((node, await future, None))
        except BaseException as exc:  # noqa: BLE001 - reported to the loop below
            finished.put((node, None, exc))

    outputs: dict[str, Any] = {}
    ready: deque[str] = deque()
    running = 0
    while sorter.is_active():
        ready.extend(sorter.get_ready())
        while ready and running < CONCURRENCY:
            node = ready.popleft()
            inputs, wait = spec[node]
            values = [outputs[i] for i in inputs]
            key = f"noop-{index[node]}-{tag}"
            if wait is None:
                future = client.submit(noop, *values, key=key, pure=False)
            else:
                future = client.submit(sleep_node, wait, *values, key=key, pure=False)
            client.loop.add_callback(watch, node, future)
            running += 1
            del future
        node, value, error = finished.get()
        if error is not None:
            return Outcome(False, len(outputs), f"{node}: {error!r}")
        outputs[node] = value
        running -= 1
        sorter.done(node)
    ok = len(outputs) == len(plan)
    return Outcome(ok, len(outputs), "" if ok else f"{len(outputs)} of {len(plan)} ran")
