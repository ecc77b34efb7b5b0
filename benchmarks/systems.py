"""The systems the benchmarks compare, each running one generated workflow.

Every system runs the same :mod:`benchmarks.graphs` workflow at the same
concurrency (``CONCURRENCY`` threads or permits), calling the same per-node
function with the node's input value: None for a node without inputs, the one
input's value, or the list of input values in declaration order — the value
``ctx.input`` holds in wavecrest.

==================  ====================================================================
system              one timed call
==================  ====================================================================
``wavecrest-eager``  ``run_workflow(workflow, max_concurrency=8, mode="eager")``
``wavecrest-waves``  the same with ``mode="waves"``
``floor``           a ``graphlib.TopologicalSorter`` fed by a ``ThreadPoolExecutor(8)``
``dask``            ``dask.threaded.get(dsk, keys, num_workers=8)`` for every key
==================  ====================================================================

:func:`prepare` converts the workflow to the system's own form *outside* the
timed call (wavecrest takes the :class:`~wavecrest.core.Workflow` as is and
plans it inside ``run_workflow``) and returns the timed call, which returns an
:class:`Outcome` saying whether every node ran.

Work kinds: ``noop`` nodes return None at once; ``sleep`` nodes
(``sleep_layered``) wait their ``seconds`` — ``ctx.sleep`` in wavecrest,
``time.sleep`` in the peers.
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from wavecrest.core import RunResult, Workflow, register_runtime

from .graphs import NOOP, durations, register_sleep

__all__ = [
    "CONCURRENCY",
    "PEERS",
    "SYSTEMS",
    "WAVECREST",
    "Outcome",
    "noop",
    "prepare",
    "register_runtimes",
    "run_floor",
    "sleep_node",
]

#: Threads (peers) or permits (wavecrest) in every measurement.
CONCURRENCY = 8

WAVECREST = ("wavecrest-eager", "wavecrest-waves")
PEERS = ("floor", "dask")
SYSTEMS = (*WAVECREST, *PEERS)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one timed call produced: ``ok`` when every one of the ``nodes`` ran and succeeded."""

    ok: bool
    nodes: int
    detail: str = ""
    extra: dict[str, Any] | None = None


def noop(value: Any) -> None:
    """The per-node work of ``noop`` graphs in every system: take the input value, do nothing."""
    return None


def sleep_node(seconds: float, value: Any) -> None:
    """The per-node work of sleep graphs in the peers: ``time.sleep(seconds)``."""
    time.sleep(seconds)


def register_runtimes() -> None:
    """Register ``transform:noop`` (:func:`noop` of ``ctx.input``) and ``transform:sleep``."""
    register_runtime(NOOP, lambda ctx: noop(ctx.input), replace=True)
    register_sleep()


def _argument(inputs: tuple[str, ...], values: dict[str, Any]) -> Any:
    if not inputs:
        return None
    if len(inputs) == 1:
        return values[inputs[0]]
    return [values[i] for i in inputs]


def run_floor(
    dependencies: dict[str, tuple[str, ...]],
    calls: dict[str, Callable[[Any], Any]],
    workers: int = CONCURRENCY,
) -> dict[str, Any]:
    """Run every node as soon as its inputs are done, on ``workers`` threads; return the outputs.

    The smallest correct scheduler: ``graphlib`` tracks readiness, the pool runs
    ``calls[node](input value)``, and finished futures come back through one
    queue (waiting on one queue, not on the set of pending futures, keeps each
    completion O(1) for a 100k-wide fan-out). The first exception propagates.
    """
    sorter = TopologicalSorter(dependencies)
    sorter.prepare()
    outputs: dict[str, Any] = {}
    finished: queue.SimpleQueue[tuple[str, Future[Any]]] = queue.SimpleQueue()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while sorter.is_active():
            for node in sorter.get_ready():
                future = pool.submit(calls[node], _argument(dependencies[node], outputs))
                future.add_done_callback(functools.partial(_put, finished, node))
            node, future = finished.get()
            outputs[node] = future.result()
            sorter.done(node)
    return outputs


def _put(
    finished: queue.SimpleQueue[tuple[str, Future[Any]]], node: str, future: Future[Any]
) -> None:
    finished.put((node, future))


def _peer_calls(workflow: Workflow, work: str) -> dict[str, Callable[[Any], Any]]:
    if work == "noop":
        return {node.id: noop for node in workflow.body}
    seconds = durations(workflow)
    return {node.id: functools.partial(sleep_node, seconds[node.id]) for node in workflow.body}


def _check_result(result: RunResult, nodes: int) -> Outcome:
    statuses: dict[str, int] = {}
    for node_result in result.nodes.values():
        statuses[node_result.status] = statuses.get(node_result.status, 0) + 1
    ok = result.status == "completed" and statuses.get("succeeded", 0) == nodes
    ok = ok and len(result.nodes) == nodes
    detail = (
        ""
        if ok
        else (
            f"status {result.status!r}, {len(result.nodes)} node results {statuses}, "
            f"expected {nodes} succeeded; errors: {[e.message for e in result.errors][:3]}"
        )
    )
    return Outcome(ok, len(result.nodes), detail)


def _snapshot_bytes(root: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        total += sum(os.path.getsize(os.path.join(folder, name)) for name in files)
    return total


def prepare(
    system: str, workflow: Workflow, work: str, *, snapshots: bool = False
) -> Callable[[], Outcome]:
    """The timed call of ``system`` on ``workflow``; ``work`` is ``noop`` or ``sleep``.

    With ``snapshots`` (wavecrest only) each call runs with ``state_dir`` set to
    a fresh temporary folder, removed after the call; the bytes written there
    are reported in the outcome's ``extra``.
    """
    nodes = len(workflow.body)
    if system in WAVECREST:
        from wavecrest.actors import run_workflow

        mode = system.removeprefix("wavecrest-")

        def run_wavecrest() -> Outcome:
            # Times run_workflow alone: making and removing the temporary folder
            # is not part of running with snapshots.
            if not snapshots:
                start = time.perf_counter()
                result = run_workflow(workflow, max_concurrency=CONCURRENCY, mode=mode)
                seconds = time.perf_counter() - start
                outcome = _check_result(result, nodes)
                return Outcome(outcome.ok, outcome.nodes, outcome.detail, {"seconds": seconds})
            state_dir = tempfile.mkdtemp(prefix="wavecrest-bench-")
            try:
                start = time.perf_counter()
                result = run_workflow(
                    workflow, max_concurrency=CONCURRENCY, mode=mode, state_dir=state_dir
                )
                seconds = time.perf_counter() - start
                outcome = _check_result(result, nodes)
                written = _snapshot_bytes(state_dir)
                if outcome.ok and not (
                    result.snapshot_path and os.path.exists(result.snapshot_path)
                ):
                    outcome = Outcome(False, outcome.nodes, "no snapshot file after the run")
                return Outcome(
                    outcome.ok,
                    outcome.nodes,
                    outcome.detail,
                    {"bytes": written, "seconds": seconds},
                )
            finally:
                shutil.rmtree(state_dir, ignore_errors=True)

        return run_wavecrest
    if snapshots:
        raise ValueError(f"snapshots apply to wavecrest only, not {system!r}")
    dependencies = {node.id: tuple(node.inputs) for node in workflow.body}
    calls = _peer_calls(workflow, work)
    if system == "floor":

        def run_floor_once() -> Outcome:
            outputs = run_floor(dependencies, calls)
            ok = len(outputs) == nodes
            return Outcome(ok, len(outputs), "" if ok else f"{len(outputs)} of {nodes} ran")

        return run_floor_once
    if system == "dask":
        import dask.threaded

        dsk: dict[str, Any] = {}
        for node, inputs in dependencies.items():
            argument: Any = None if not inputs else inputs[0] if len(inputs) == 1 else list(inputs)
            call = calls[node]
            if isinstance(call, functools.partial):
                dsk[node] = (call.func, *call.args, argument)
            else:
                dsk[node] = (call, argument)
        keys = list(dsk)

        def run_dask() -> Outcome:
            outputs = dask.threaded.get(dsk, keys, num_workers=CONCURRENCY)
            ok = len(outputs) == nodes
            return Outcome(ok, len(outputs), "" if ok else f"{len(outputs)} of {nodes} ran")

        return run_dask
    raise ValueError(f"unknown system {system!r}: expected one of {', '.join(SYSTEMS)}")
