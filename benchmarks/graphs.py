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

:func:`to_flow_md` writes such a workflow as ``.flow.md`` text that
:func:`wavecrest.core.parse_workflow` reads back into the same graph.
"""

from __future__ import annotations

import json
import math
import random
from xml.sax.saxutils import quoteattr

from wavecrest.core import Workflow, register_runtime
from wavecrest.core._model import TaskNode

__all__ = ["NOOP", "chain", "layered", "register_noop", "to_flow_md", "wide"]

#: The runtime key of every generated node.
NOOP = "transform:noop"


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
