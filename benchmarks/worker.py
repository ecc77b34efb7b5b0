"""One measurement in a fresh process; prints its raw result as one JSON line on stdout.

``python -m benchmarks`` starts one worker per (system, graph, size), so the
peak RSS a worker reports (``ru_maxrss``) belongs to that system alone. A
worker builds the graph, converts it to the system's form (untimed), warms the
system up once on a small graph of the same shape, then times up to
``--repeat`` calls, stopping early once the timed calls add up to
``--budget`` seconds (at least one call always runs), or at the first call
whose outcome is wrong.

    python -m benchmarks.worker run --system wavecrest-eager --graph layered --size 10000
    python -m benchmarks.worker run --system wavecrest-eager --graph layered --size 1000 --snapshots
    python -m benchmarks.worker run --system floor --graph sleep --size 200
    python -m benchmarks.worker run --system graph-only --graph chain --size 100000
    python -m benchmarks.worker throughput --runs 100 --size 50
    python -m benchmarks.worker sim --runs 1000 --size 20
    python -m benchmarks.worker paired --graph layered --size 10000
    python -m benchmarks.worker dask --graph wide --size 1000

``--graph sleep`` is ``sleep_layered`` (5-30 ms per node); its result carries
the makespan lower bound. ``graph-only`` builds the graph and runs nothing:
the RSS every other worker of that graph starts from. ``throughput`` submits
``--runs`` runs of ``layered(--size)`` at once to one ``Runtime`` and times
the first submit to the last result (the Runtime's start and close untimed).
``sim`` times ``--runs`` simulated runs (``wavecrest.core.testing.simulate``,
one seed each) of ``layered(--size)`` in one call. ``paired`` times wavecrest
eager without and with snapshots in turns within
one process (off, on, on, off, off, on...), ``--repeat`` calls of each, so
that a machine slowing down or speeding up weighs on both sides alike; its
record has ``times_off`` and ``times_on``, and ``ratios`` of each pair.
``dask`` starts a ``dask scheduler`` and two ``dask worker`` processes
(:mod:`benchmarks.cluster`) and times, in turns, wavecrest's Dask executor,
the minimal client-side window and plain ``client.submit`` of the same graph
on that cluster; its record has ``times_by_system`` and, per other system,
the ``ratios`` wavecrest / system of each round.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from wavecrest.core import Workflow, plan

from .graphs import (
    chain,
    critical_path_seconds,
    durations,
    layered,
    list_schedule_seconds,
    sleep_layered,
    wide,
)
from .systems import CONCURRENCY, SYSTEMS, WAVECREST, Outcome, prepare, register_runtimes

__all__ = ["build", "main", "measure", "measure_pairs", "measure_rounds", "time_call"]

GRAPHS = ("chain", "wide", "layered", "sleep")
WARM_UP_SIZE = 100


def build(graph: str, size: int, seed: int = 0) -> Workflow:
    """The workflow named ``graph`` with ``size`` nodes (``sleep``: 5-30 ms sleeps)."""
    if graph == "chain":
        return chain(size)
    if graph == "wide":
        return wide(size)
    if graph == "layered":
        return layered(size, seed=seed)
    if graph == "sleep":
        return sleep_layered(size, seed=seed)
    raise ValueError(f"unknown graph {graph!r}: expected one of {', '.join(GRAPHS)}")


def _warm_up_graph(graph: str, size: int, seed: int) -> Workflow:
    small = min(size, WARM_UP_SIZE)
    if graph == "sleep":
        return sleep_layered(min(size, 20), low=0.001, high=0.002, seed=seed + 1)
    return build(graph, small, seed + 1)


def rss_kb() -> int:
    """Peak resident set size of this process so far, in KiB (Linux ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(call: Callable[[], Outcome], repeat: int, budget: float) -> tuple[list[float], Outcome]:
    """Time up to ``repeat`` calls (see the module docstring); the times and the last outcome.

    A call whose outcome has ``extra["seconds"]`` timed itself; that time is used.
    """
    times: list[float] = []
    outcome = Outcome(False, 0, "not run")
    for _ in range(repeat):
        elapsed, outcome = time_call(call)
        times.append(elapsed)
        if not outcome.ok or sum(times) >= budget:
            break
    return times, outcome


def time_call(call: Callable[[], Outcome]) -> tuple[float, Outcome]:
    """One timed call after a ``gc.collect()``: its seconds (its own ``extra["seconds"]``
    when it timed itself) and its outcome."""
    gc.collect()
    start = time.perf_counter()
    outcome = call()
    elapsed = time.perf_counter() - start
    if outcome.extra and "seconds" in outcome.extra:
        elapsed = outcome.extra["seconds"]
    return elapsed, outcome


def _throughput_call(workflow: Workflow, runs: int) -> Callable[[], Outcome]:
    from wavecrest.actors import Runtime

    nodes = len(workflow.body)

    def call() -> Outcome:
        with Runtime(max_concurrency=CONCURRENCY) as runtime:
            start = time.perf_counter()
            handles = [runtime.submit(workflow) for _ in range(runs)]
            results = [handle.result() for handle in handles]
            seconds = time.perf_counter() - start
        bad = [
            r
            for r in results
            if r.status != "completed"
            or len(r.nodes) != nodes
            or any(n.status != "succeeded" for n in r.nodes.values())
        ]
        detail = ""
        if bad:
            detail = f"{len(bad)} of {runs} runs wrong, e.g. status {bad[0].status!r}, " + (
                f"{len(bad[0].nodes)} node results, errors {[e.message for e in bad[0].errors][:3]}"
            )
        return Outcome(not bad, runs * nodes, detail, {"seconds": seconds})

    return call


def measure_pairs(
    off: Callable[[], Outcome], on: Callable[[], Outcome], repeat: int, budget: float
) -> tuple[list[float], list[float], Outcome]:
    """Time ``off`` and ``on`` in turns (ABBA order), ``repeat`` pairs or until ``budget``.

    Stops at the first wrong outcome; the times of each side and the last outcome.
    """
    sides: dict[bool, list[float]] = {False: [], True: []}
    outcome = Outcome(False, 0, "not run")
    for index in range(repeat):
        order = (False, True) if index % 2 == 0 else (True, False)
        for snapshots in order:
            elapsed, outcome = time_call(on if snapshots else off)
            sides[snapshots].append(elapsed)
            if not outcome.ok:
                return sides[False], sides[True], outcome
        if sum(sides[False]) + sum(sides[True]) >= budget:
            break
    return sides[False], sides[True], outcome


def measure_rounds(
    calls: dict[str, Callable[[], Outcome]], repeat: int, budget: float
) -> tuple[dict[str, list[float]], Outcome]:
    """Time every call once per round, in an order that turns each round (A B C, C B A,
    ...), ``repeat`` rounds or until ``budget``; stops at the first wrong outcome."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    outcome = Outcome(False, 0, "not run")
    for index in range(repeat):
        for name in names if index % 2 == 0 else reversed(names):
            elapsed, outcome = time_call(calls[name])
            times[name].append(elapsed)
            if not outcome.ok:
                return times, Outcome(False, outcome.nodes, f"{name}: {outcome.detail}")
        if sum(sum(t) for t in times.values()) >= budget:
            break
    return times, outcome


def _sim_call(workflow: Workflow, runs: int, first_seed: int) -> Callable[[], Outcome]:
    """``runs`` simulated runs of ``workflow`` with seeds from ``first_seed``, one call."""
    from wavecrest.core.testing import simulate

    nodes = len(workflow.body)

    def call() -> Outcome:
        bad = []
        for seed in range(first_seed, first_seed + runs):
            result = simulate(workflow, seed=seed, max_concurrency=CONCURRENCY).result
            if result is None or result.status != "completed" or len(result.nodes) != nodes:
                bad.append(result)
        detail = f"{len(bad)} of {runs} simulated runs wrong" if bad else ""
        return Outcome(not bad, runs * nodes, detail)

    return call


def _paired(args: argparse.Namespace, record: dict[str, Any], workflow: Workflow) -> None:
    system = record["system"]
    small = _warm_up_graph(record["graph"], args.size, args.seed)
    for snapshots in (False, True):
        first = prepare(system, small, "noop", snapshots=snapshots)()
        if not first.ok:
            record.update(times=[], ok=False, detail=f"warm-up: {first.detail}")
            return
    off = prepare(system, workflow, "noop")
    on = prepare(system, workflow, "noop", snapshots=True)
    gc.collect()
    record["rss_ready_kb"] = rss_kb()
    times_off, times_on, outcome = measure_pairs(off, on, args.repeat, args.budget)
    record["rss_peak_kb"] = rss_kb()
    record.update(
        times=times_on,
        times_off=times_off,
        times_on=times_on,
        ratios=[b / a for a, b in zip(times_off, times_on, strict=False)],
        ok=outcome.ok,
        detail=outcome.detail,
    )
    if outcome.extra and "bytes" in outcome.extra:
        record["snapshot_bytes"] = outcome.extra["bytes"]


def _dask_pairs(args: argparse.Namespace, record: dict[str, Any], workflow: Workflow) -> None:
    from .cluster import DASK_SYSTEMS, Cluster, prepare_dask, register_dask_runtimes

    register_dask_runtimes()
    work = "sleep" if record["graph"] == "sleep" else "noop"
    cluster = Cluster()
    try:
        client = cluster.client
        small = _warm_up_graph(record["graph"], args.size, args.seed)
        calls = {system: prepare_dask(system, small, work, client) for system in DASK_SYSTEMS}
        for system, call in calls.items():
            first = call()
            if not first.ok:
                record.update(times=[], ok=False, detail=f"warm-up of {system}: {first.detail}")
                return
        calls = {system: prepare_dask(system, workflow, work, client) for system in DASK_SYSTEMS}
        gc.collect()
        record["rss_ready_kb"] = rss_kb()
        times, outcome = measure_rounds(calls, args.repeat, args.budget)
        record["rss_peak_kb"] = rss_kb()
    finally:
        cluster.close()
    ours = times["wavecrest-dask"]
    record.update(
        times=ours,
        times_by_system=times,
        ratios={
            system: [a / b for a, b in zip(ours, times[system], strict=False)]
            for system in DASK_SYSTEMS
            if system != "wavecrest-dask"
        },
        ok=outcome.ok,
        detail=outcome.detail,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Carry out one measurement; the JSON-ready record."""
    rss_start = rss_kb()
    register_runtimes()
    record: dict[str, Any] = {
        "kind": args.kind,
        "system": getattr(args, "system", "wavecrest-runtime"),
        "graph": getattr(args, "graph", "layered"),
        "size": args.size,
        "snapshots": bool(getattr(args, "snapshots", False)),
        "seed": args.seed,
        "repeat": args.repeat,
    }
    workflow = build(record["graph"], args.size, args.seed)
    record["nodes"] = len(workflow.body)
    record["edges"] = sum(len(node.inputs) for node in workflow.body)
    if record["graph"] == "sleep":
        seconds = durations(workflow)
        critical = critical_path_seconds(workflow, seconds)
        total = sum(seconds.values())
        record["critical_path"] = critical
        record["total_work"] = total
        record["lower_bound"] = max(critical, total / CONCURRENCY)
        # wavecrest eager starts the ready node with the longest remaining path first.
        ranks = {node_id: planned.rank for node_id, planned in plan(workflow).nodes.items()}
        record["list_schedule"] = list_schedule_seconds(workflow, seconds, CONCURRENCY, ranks)
        record["list_schedule_declared"] = list_schedule_seconds(workflow, seconds, CONCURRENCY)
    if args.kind == "paired":
        record["snapshots"] = "paired"
        record["rss_start_kb"] = rss_start
        _paired(args, record, workflow)
        return record
    if args.kind == "dask":
        record["system"] = "wavecrest-dask"
        record["rss_start_kb"] = rss_start
        _dask_pairs(args, record, workflow)
        return record
    if args.kind == "throughput":
        record["runs"] = args.runs
        warm_up = _throughput_call(layered(min(args.size, 20), seed=args.seed + 1), 2)
        call = _throughput_call(workflow, args.runs)
    elif args.kind == "sim":
        record["runs"] = args.runs
        record["system"] = "simulation"
        warm_up = _sim_call(workflow, 20, 10**6)
        call = _sim_call(workflow, args.runs, args.seed)
    elif record["system"] == "graph-only":
        record.update(times=[], ok=True, detail="", rss_start_kb=rss_start)
        record["rss_ready_kb"] = record["rss_peak_kb"] = rss_kb()
        return record
    else:
        work = "sleep" if record["graph"] == "sleep" else "noop"
        small = _warm_up_graph(record["graph"], args.size, args.seed)
        warm_up = prepare(record["system"], small, work, snapshots=record["snapshots"])
        call = prepare(record["system"], workflow, work, snapshots=record["snapshots"])
    first = warm_up()
    if not first.ok:
        record.update(times=[], ok=False, detail=f"warm-up: {first.detail}")
        return record
    gc.collect()
    record["rss_start_kb"] = rss_start
    record["rss_ready_kb"] = rss_kb()
    times, outcome = measure(call, args.repeat, args.budget)
    record["rss_peak_kb"] = rss_kb()
    record.update(times=times, ok=outcome.ok, detail=outcome.detail)
    if outcome.extra and "bytes" in outcome.extra:
        record["snapshot_bytes"] = outcome.extra["bytes"]
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    one = kinds.add_parser("run", help="one system on one graph")
    one.add_argument("--system", required=True, choices=(*SYSTEMS, "graph-only"))
    one.add_argument("--graph", required=True, choices=GRAPHS)
    one.add_argument(
        "--snapshots", action="store_true", help="wavecrest with a temporary state_dir"
    )
    many = kinds.add_parser("throughput", help="many concurrent runs in one Runtime")
    many.add_argument("--runs", type=int, default=100)
    simulated = kinds.add_parser("sim", help="simulated runs (wavecrest.core.testing.simulate)")
    simulated.add_argument("--runs", type=int, default=1000)
    pair = kinds.add_parser("paired", help="wavecrest without and with snapshots, in turns")
    pair.add_argument("--system", default="wavecrest-eager", choices=WAVECREST)
    pair.add_argument("--graph", default="layered", choices=("chain", "wide", "layered"))
    on_dask = kinds.add_parser(
        "dask", help="wavecrest's Dask executor and plain client.submit, in turns, on a cluster"
    )
    on_dask.add_argument("--graph", required=True, choices=GRAPHS)
    for sub in (one, many, simulated, pair, on_dask):
        sub.add_argument("--size", type=int, required=True)
        sub.add_argument("--repeat", type=int, default=3)
        sub.add_argument("--budget", type=float, default=60.0, help="seconds of timed calls")
        sub.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size < 1 or args.repeat < 1 or (args.kind in ("throughput", "sim") and args.runs < 1):
        parser.error("--size, --repeat and --runs must be at least 1")
    try:
        record = run(args)
    except Exception:  # noqa: BLE001 - the parent reports any crash with its traceback
        text = traceback.format_exc()
        record = {"ok": False, "times": [], "detail": "crashed", "traceback": text}
        print(record["traceback"], file=sys.stderr)
    record["pid"] = os.getpid()
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 0 if record.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
