"""Generated workflows shared by the benchmarks: chains, wide fan-outs, random layered DAGs.

Each generator builds a :class:`~wavecrest.core.Workflow` directly from model
objects (no parsing). Every node is a ``<transform type="noop">`` task (runtime
key ``transform:noop``; call :func:`register_noop` before parsing or running
one) whose only dependencies are its explicit ``input`` ids. Ids are ``n0``,
``n1``, ... in declaration order, and declaration order is a topological order.

===============================  =====  ===================================
generator                        waves  edges
===============================  =====  ===================================
``chain(n)``                     n      n - 1: ``n{i}`` reads ``n{i-1}``
``wide(n)``                      2      n - 1: every ``n{i}`` reads ``n0``
``layered(n, layers, fan_in)``   layers about ``fan_in`` per node past layer 0
===============================  =====  ===================================

:func:`sleep_layered` gives ``layered``'s graph with ``<transform type="sleep">``
nodes instead (runtime key ``transform:sleep``, :func:`register_sleep`), each
with a seeded ``seconds`` to wait; :func:`durations` and
:func:`critical_path_seconds` read those back for the makespan lower bound, and
:func:`list_schedule_seconds` gives the makespan of an ideal scheduler that
starts ready nodes in a given order at no cost.

:func:`to_flow_md` writes such a workflow as ``.flow.md`` text that
:func:`wavecrest.core.parse_workflow` reads back into the same graph.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import random
from xml.sax.saxutils import quoteattr

from wavecrest.core import Workflow, register_runtime
from wavecrest.core._model import FrozenDict, TaskNode

__all__ = [
    "NOOP",
    "SLEEP",
    "chain",
    "critical_path_seconds",
    "durations",
    "layered",
    "list_schedule_seconds",
    "register_noop",
    "register_sleep",
    "sleep_layered",
    "to_flow_md",
    "wide",
]

#: The runtime key of every node of ``chain``, ``wide`` and ``layered``.
NOOP = "transform:noop"

#: The runtime key of every node of ``sleep_layered``.
SLEEP = "transform:sleep"


def register_noop() -> None:
    """Register ``transform:noop`` (returns None), replacing any earlier registration."""
    register_runtime(NOOP, lambda ctx: None, replace=True)


def _task(index: int, inputs: tuple[int, ...] = ()) -> TaskNode:
    return TaskNode(
        id=f"n{index}", kind="transform", type="noop", inputs=tuple(f"n{i}" for i in inputs)
    )


def _check_size(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"invalid size {n!r}: expected an integer of at least 1")


def chain(n: int) -> Workflow:
    """``n`` nodes in one line: ``n0 -> n1 -> ... -> n{n-1}`` (n waves, critical path n)."""
    _check_size(n)
    body = tuple(_task(i, (i - 1,) if i else ()) for i in range(n))
    return Workflow(name=f"chain-{n}", body=body)


def wide(n: int) -> Workflow:
    """A fan-out: ``n0`` and ``n - 1`` nodes that each read only ``n0`` (2 waves when n > 1)."""
    _check_size(n)
    body = tuple(_task(i, (0,) if i else ()) for i in range(n))
    return Workflow(name=f"wide-{n}", body=body)


def layered(n: int, layers: int | None = None, fan_in: int = 3, seed: int = 0) -> Workflow:
    """A random layered DAG of ``n`` nodes in ``layers`` layers (default ``round(sqrt(n))``).

    Layer sizes differ by at most one. Each node past the first layer reads
    ``min(fan_in, nodes in earlier layers)`` distinct earlier nodes, one of them
    in the layer just before, so the workflow has exactly ``layers`` waves.
    Inputs are listed in declaration order. The same arguments give the same
    workflow (the choices come from ``random.Random(seed)``).
    """
    _check_size(n)
    if layers is None:
        layers = max(1, round(math.sqrt(n)))
    if not isinstance(layers, int) or not 1 <= layers <= n:
        raise ValueError(f"invalid layers {layers!r}: expected an integer from 1 to n ({n})")
    if not isinstance(fan_in, int) or fan_in < 1:
        raise ValueError(f"invalid fan_in {fan_in!r}: expected an integer of at least 1")
    rng = random.Random(seed)
    # Layer k holds the indices [bounds[k], bounds[k + 1]).
    bounds = [k * n // layers for k in range(layers + 1)]
    body: list[TaskNode] = [_task(i) for i in range(bounds[1])]
    for k in range(1, layers):
        previous = bounds[k - 1]
        for i in range(bounds[k], bounds[k + 1]):
            picked = {rng.randrange(previous, bounds[k])}
            want = min(fan_in, bounds[k])
            while len(picked) < want:
                picked.add(rng.randrange(bounds[k]))
            body.append(_task(i, tuple(sorted(picked))))
    return Workflow(name=f"layered-{n}-s{seed}", body=tuple(body))


def register_sleep() -> None:
    """Register ``transform:sleep``: ``ctx.sleep(seconds)`` (cancellable), then return None."""
    register_runtime(SLEEP, lambda ctx: ctx.sleep(float(ctx.config["seconds"])), replace=True)


def sleep_layered(
    n: int,
    low: float = 0.005,
    high: float = 0.030,
    seed: int = 0,
    layers: int | None = None,
    fan_in: int = 3,
) -> Workflow:
    """``layered(n, layers, fan_in, seed)`` with every node a ``transform:sleep``.

    Node ``n{i}`` waits ``seconds`` drawn uniformly from ``[low, high]`` and
    rounded to 0.1 ms (config ``seconds``, a string such as ``"0.0123"``, so
    :func:`to_flow_md` can write it). The same arguments give the same
    durations (drawn from their own ``random.Random``, independent of the edges).
    """
    if not 0 <= low <= high:
        raise ValueError(f"invalid durations [{low!r}, {high!r}]: expected 0 <= low <= high")
    graph = layered(n, layers, fan_in, seed)
    rng = random.Random(f"sleep-durations-{seed}")
    body = tuple(
        dataclasses.replace(
            node, type="sleep", config=FrozenDict(seconds=f"{rng.uniform(low, high):.4f}")
        )
        for node in graph.body
    )
    return Workflow(name=f"sleep-layered-{n}-s{seed}", body=body)


def durations(workflow: Workflow) -> dict[str, float]:
    """Each node's ``seconds`` (as ``sleep_layered`` sets it) by id; 0.0 where there is none."""
    return {
        node.id: float(node.config.get("seconds", 0.0))
        for node in workflow.body
        if isinstance(node, TaskNode)
    }


def critical_path_seconds(workflow: Workflow, seconds: dict[str, float]) -> float:
    """The largest sum of ``seconds`` along any dependency chain of ``workflow``."""
    finish: dict[str, float] = {}
    for node in workflow.body:
        start = max((finish[i] for i in node.inputs), default=0.0)
        finish[node.id] = start + seconds.get(node.id, 0.0)
    return max(finish.values(), default=0.0)


def list_schedule_seconds(
    workflow: Workflow,
    seconds: dict[str, float],
    slots: int,
    priority: dict[str, int] | None = None,
) -> float:
    """The makespan of a list schedule of ``workflow`` on ``slots`` workers that costs nothing.

    Whenever a worker is free it starts the ready node of highest ``priority``
    (then declaration order; no ``priority``: declaration order alone), which
    takes exactly ``seconds`` of it; a node is ready when its inputs finished.
    This is what an order of starts costs by itself, with no overhead: no
    scheduler that knows nothing of the durations beforehand does better in
    that order, so the gap between it and the lower bound is the order's, and
    the gap between it and a real makespan is the runtime's.
    """
    order = {node.id: i for i, node in enumerate(workflow.body)}
    dependents: dict[str, list[str]] = {node.id: [] for node in workflow.body}
    waiting = {node.id: len(node.inputs) for node in workflow.body}
    for node in workflow.body:
        for source in node.inputs:
            dependents[source].append(node.id)

    rank = priority or {}

    def key(node: str) -> tuple[int, int]:
        return (-rank.get(node, 0), order[node])

    ready = [key(n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ids = [node.id for node in workflow.body]
    running: list[tuple[float, int]] = []  # (finish time, declaration index)
    now, free = 0.0, slots
    while ready or running:
        while free and ready:
            index = heapq.heappop(ready)[1]
            heapq.heappush(running, (now + seconds.get(ids[index], 0.0), index))
            free -= 1
        now, index = heapq.heappop(running)
        free += 1
        for dependent in dependents[ids[index]]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, key(dependent))
    return now


def to_flow_md(workflow: Workflow) -> str:
    """The ``.flow.md`` text of a workflow of task nodes (explicit inputs, string config).

    Raises ValueError for control nodes or non-string config values, which
    this writer does not handle.
    """
    lines = ["---", f"name: {json.dumps(workflow.name)}"]
    if workflow.version is not None:
        lines.append(f"version: {json.dumps(workflow.version)}")
    lines += ["---", "<workflow>"]
    for node in workflow.body:
        if not isinstance(node, TaskNode):
            raise ValueError(f"to_flow_md writes task nodes only, not <{node.element}> {node.id!r}")
        attrs = [f"id={quoteattr(node.id)}", f"type={quoteattr(node.type)}"]
        if node.inputs:
            attrs.append(f"input={quoteattr(','.join(node.inputs))}")
        for key, value in node.config.items():
            if not isinstance(value, str):
                raise ValueError(
                    f"to_flow_md writes string config only; {node.id!r} has {key}={value!r}"
                )
            attrs.append(f"{key}={quoteattr(value)}")
        lines.append(f"  <{node.kind} {' '.join(attrs)}/>")
    lines.append("</workflow>")
    return "\n".join(lines) + "\n"
