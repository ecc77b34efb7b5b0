"""Many runs in one Runtime: the shared FIFO cap holds across all of them."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from wavecrest.actors import Runtime
from wavecrest.core import RuntimeContext, register_runtime, unregister_runtime
from wavecrest.core._model import TaskNode, Workflow

pytestmark = pytest.mark.usefixtures("no_new_threads")


def layered(n: int, layers: int, seed: int) -> Workflow:
    rng = random.Random(seed)
    per = n // layers
    nodes, previous = [], []
    for layer in range(layers):
        current = []
        for i in range(per):
            node_id = f"n{layer}-{i}"
            inputs = tuple(rng.sample(previous, min(2, len(previous))))
            nodes.append(TaskNode(id=node_id, kind="transform", type="gauge", inputs=inputs))
            current.append(node_id)
        previous = current
    return Workflow(name=f"load{seed}", body=tuple(nodes))


@pytest.mark.slow
def test_a_hundred_concurrent_runs_share_the_cap() -> None:
    """100 runs of a 50-node workflow complete, never more than 8 task nodes running at once."""
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "calls": 0}

    def gauge(ctx: RuntimeContext) -> Any:
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            return len(ctx.input) if isinstance(ctx.input, list) else 1
        finally:
            with lock:
                state["now"] -= 1

    register_runtime("transform:gauge", gauge, replace=True)
    try:
        with Runtime(max_concurrency=8) as runtime:
            handles = [runtime.submit(layered(50, 5, seed)) for seed in range(100)]
            results = [h.result(timeout=120) for h in handles]
            stats = runtime.statistics()
    finally:
        unregister_runtime("transform:gauge")
    assert [r.status for r in results] == ["completed"] * 100
    assert state["calls"] == 100 * 50
    assert 1 <= state["peak"] <= 8
    assert (stats.held, stats.waiting, stats.available) == (0, 0, 8)
