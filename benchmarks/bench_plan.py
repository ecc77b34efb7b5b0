"""How planning time grows with workflow size.

Plans a chain, a wide fan-out and a random layered DAG (``benchmarks.graphs``)
at each size, then parses the ``.flow.md`` text of a layered graph (parsing
includes the planner's checks). Each timing is the best of ``--repeat`` runs,
with the garbage collector off while timing. The last lines give, per graph,
µs/node at the largest size divided by µs/node at the smallest: near 1 means
near-linear growth.

    python -m benchmarks.bench_plan [--sizes 1000,10000,100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from wavecrest.core import Workflow, parse_workflow, plan

from .graphs import chain, layered, register_noop, to_flow_md, wide

T = TypeVar("T")

GRAPHS: dict[str, Callable[[int], Workflow]] = {
    "chain": chain,
    "wide": wide,
    "layered": layered,
}


def best_of(repeat: int, func: Callable[[], T]) -> tuple[float, T]:
    """The shortest wall time of ``repeat`` calls of ``func``, and the last result."""
    best = float("inf")
    result: T
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = func()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best, result


def edge_count(workflow: Workflow) -> int:
    return sum(len(node.inputs) for node in workflow.body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_plan", description=__doc__)
    parser.add_argument(
        "--sizes",
        default="1000,10000,100000",
        help="comma-separated node counts (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (best kept)")
    parser.add_argument(
        "--parse-size",
        type=int,
        default=10_000,
        help="nodes of the layered graph whose .flow.md text is parsed (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(size) for size in args.sizes.split(",")})
    except ValueError:
        parser.error(f"invalid --sizes {args.sizes!r}: expected integers like 1000,10000")
    if not sizes or sizes[0] < 1 or args.repeat < 1 or args.parse_size < 1:
        parser.error("sizes, --repeat and --parse-size must be at least 1")
    register_noop()
    plan(layered(100))  # warm up: built-in runtimes load on first use

    print(f"python {sys.version.split()[0]}, best of {args.repeat}")
    header = f"{'graph':<8} {'nodes':>8} {'edges':>8} {'waves':>6} {'seconds':>9} {'us/node':>8}"
    print(header)
    print("-" * len(header))
    per_node: dict[str, dict[int, float]] = {name: {} for name in GRAPHS}
    for name, make in GRAPHS.items():
        for size in sizes:
            workflow = make(size)
            seconds, planned = best_of(args.repeat, lambda wf=workflow: plan(wf))
            per_node[name][size] = seconds / size * 1e6
            print(
                f"{name:<8} {size:>8} {edge_count(workflow):>8} {len(planned.waves):>6} "
                f"{seconds:>9.4f} {per_node[name][size]:>8.2f}"
            )

    text = to_flow_md(layered(args.parse_size))
    seconds, parsed = best_of(args.repeat, lambda: parse_workflow(text))
    print(
        f"{'parse':<8} {len(parsed.body):>8} {edge_count(parsed):>8} {'':>6} "
        f"{seconds:>9.4f} {seconds / len(parsed.body) * 1e6:>8.2f}"
        f"   (layered .flow.md, {len(text) / 1e6:.2f} MB)"
    )

    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        print()
        print(f"us/node at {high} / us/node at {low} (1.0 = linear):")
        for name, timings in per_node.items():
            print(f"  {name:<8} {timings[high] / timings[low]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
