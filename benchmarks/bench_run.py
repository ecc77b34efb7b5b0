"""wavecrest side by side with its peers, on the same generated graphs, in one invocation.

Sections (``--only`` picks some, comma-separated):

``overhead``
    µs per node of no-op chains, wide fan-outs and random layered DAGs at each
    size, for wavecrest (eager, waves), the floor (graphlib +
    ThreadPoolExecutor) and Dask's threaded scheduler; ratios wavecrest/floor
    and wavecrest/dask.
``makespan``
    A random layered DAG of sleeping nodes (5-30 ms each): wall time over the
    lower bound max(critical path, total work / concurrency).
``scale``
    Peak RSS of each system's worker at each size, and its growth per node.
``snapshot``
    wavecrest eager on the 10k layered DAG with ``state_dir`` (snapshots and
    run log on the local disk) over without, both timed in turns in one
    worker.
``throughput``
    100 concurrent runs of a 50-node layered workflow in one ``Runtime``.
``sim``
    Simulated runs per second of a 20-node layered workflow
    (``wavecrest.core.testing.simulate``, what ``wavecrest test`` runs).
``dask``
    wavecrest's Dask executor against Dask distributed's own scheduler on one
    local cluster (a ``dask scheduler`` and two ``dask worker`` processes of
    4 threads): µs per no-op node of the chain, wide and layered graphs at
    each size, and the makespan of the sleep DAG, all timed in turns in one
    worker per graph (needs ``distributed``; only with ``--only``).

Every (system, graph, size) is measured by its own ``python -m
benchmarks.worker`` process (so peak RSS is that system's alone): one warm-up
on a small graph, then ``--repeat`` timed calls, fewer when they add up to
``--budget`` seconds. Tables show the median (and the min); ratios are
computed from medians of this invocation. Concurrency is 8 everywhere.
Tables go to stdout (Markdown, or reStructuredText with ``--rst``); progress
goes to stderr.

    python -m benchmarks [--quick] [--only overhead,makespan] [--repeat N] [--json PATH] [--rst]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import Table, render
from .systems import CONCURRENCY, PEERS, SYSTEMS, WAVECREST

__all__ = ["SECTIONS", "main"]

SECTIONS = ("overhead", "makespan", "scale", "snapshot", "throughput", "sim", "dask")
#: What runs without --only: the dask section starts clusters and takes about 20 minutes.
DEFAULT_SECTIONS = SECTIONS[:-1]
GRAPHS = ("chain", "wide", "layered")
ROOT = Path(__file__).resolve().parent.parent

MAKESPAN_TARGET = 1.05
SNAPSHOT_TARGET = 1.10
#: Per-node overhead: eager at most this many times the floor, on every graph and size.
FLOOR_TARGET = 3.0
#: ... and at most this fraction of Dask's threaded scheduler on the 10k layered DAG.
DASK_THREADED_TARGET = 0.5
#: Memory per added node from the second-largest to the largest size, over the same from
#: the smallest to the second-largest: at most this (flat = linear).
GROWTH_TARGET = 1.2
DASK_OVERHEAD_TARGET = 1.20
DASK_MAKESPAN_TARGET = 1.05
SIM_TARGET = 500.0
SNAPSHOT_PAIRS = 9


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _size_label(size: int) -> str:
    if size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> str:
    if top is None or bottom is None or bottom == 0:
        return "n/a"
    return f"{top / bottom:.2f}"


@dataclass
class Settings:
    """What one invocation measures."""

    sections: tuple[str, ...]
    systems: tuple[str, ...]
    sizes: tuple[int, ...]
    repeat: int
    budget: float
    timeout: float
    seed: int
    makespan_nodes: int
    snapshot_nodes: int
    runs: int
    run_nodes: int
    sim_runs: int
    sim_nodes: int
    fmt: str
    json_path: Path | None


@dataclass
class Harness:
    """Starts workers, keeps their records (one per distinct command) and the problems seen."""

    settings: Settings
    meta: dict[str, Any]
    records: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)

    def measure(self, *args: str, repeat: int | None = None) -> dict[str, Any]:
        """The record of ``python -m benchmarks.worker ARGS`` (run once per invocation);
        ``repeat`` overrides ``--repeat`` for this worker."""
        key = tuple(args)
        if key in self.records:
            return self.records[key]
        s = self.settings
        command = [
            sys.executable,
            "-m",
            "benchmarks.worker",
            *args,
            "--repeat",
            str(repeat if repeat is not None else s.repeat),
            "--budget",
            str(s.budget),
            "--seed",
            str(s.seed),
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        label = " ".join(args)
        print(f"[{len(self.records) + 1}] {label} ...", end="", file=sys.stderr, flush=True)
        start = time.perf_counter()
        stdout, stderr, returncode = "", "", None
        try:
            done = subprocess.run(
                command,
                check=False,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=s.timeout,
            )
            stdout, stderr, returncode = done.stdout, done.stderr, done.returncode
            timed_out = False
        except subprocess.TimeoutExpired as exc:
            stdout = _text(exc.stdout)
            stderr = _text(exc.stderr)
            timed_out = True
        wall = time.perf_counter() - start
        record = _parse_record(stdout)
        if record is None:
            record = {"ok": False, "times": [], "detail": "no result from the worker"}
        if timed_out:
            record["ok"] = False
            record["detail"] = f"timed out after {s.timeout:.0f} s" + (
                " (after printing its result: hung at exit)" if record.get("times") else ""
            )
        record.update(
            args=list(args),
            command=f"cd {shlex.quote(str(ROOT))} && {shlex.join(command)}",
            returncode=returncode,
            worker_seconds=wall,
        )
        times = record.get("times") or []
        if times:
            record["median"] = statistics.median(times)
            record["min"] = min(times)
        self.records[key] = record
        if record.get("ok"):
            timing = (
                f" median {record['median']:.3f} s, min {record['min']:.3f} s"
                f" ({len(times)} run{'s' if len(times) != 1 else ''}),"
                if times
                else ""
            )
            print(
                f"{timing} peak RSS {record.get('rss_peak_kb', 0) / 1024:.0f} MB,"
                f" worker {wall:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        else:
            record["stderr_tail"] = stderr[-3000:]
            self.problems.append(record)
            print(f" FAILED: {record['detail']}", file=sys.stderr, flush=True)
        self.save()
        return record

    def run(self, system: str, graph: str, size: int, *extra: str) -> dict[str, Any]:
        return self.measure(
            "run", "--system", system, "--graph", graph, "--size", str(size), *extra
        )

    def save(self) -> None:
        if self.settings.json_path is None:
            return
        data = {"meta": self.meta, "records": list(self.records.values())}
        self.settings.json_path.write_text(json.dumps(data, indent=2) + "\n")


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _parse_record(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


def _median(record: dict[str, Any]) -> float | None:
    return record.get("median") if record.get("ok") else None


def _per_node_cell(record: dict[str, Any], repeat: int) -> str:
    if not record.get("ok"):
        return "FAILED"
    nodes = record["nodes"]
    cell = f"{record['median'] / nodes * 1e6:,.1f} ({record['min'] / nodes * 1e6:,.1f})"
    runs = len(record["times"])
    return cell + (f" [n={runs}]" if runs < repeat else "")


# -- sections ----------------------------------------------------------------------


def overhead(h: Harness) -> list[Table]:
    s = h.settings
    wave = [x for x in WAVECREST if x in s.systems]
    peers = [x for x in PEERS if x in s.systems]
    table = Table(
        "Per-node overhead: µs per no-op node, median (min), concurrency 8",
        [
            "graph",
            "nodes",
            *s.systems,
            *(f"{w.removeprefix('wavecrest-')}/{p}" for p in peers for w in wave),
        ],
    )
    for size in s.sizes:
        for graph in GRAPHS:
            records = {system: h.run(system, graph, size) for system in s.systems}
            medians = {system: _median(r) for system, r in records.items()}
            table.add(
                graph,
                f"{size:,}",
                *(_per_node_cell(records[system], s.repeat) for system in s.systems),
                *(_ratio(medians[w], medians[p]) for p in peers for w in wave),
            )
    table.notes.append(
        "Wall time of the whole call divided by the node count: wavecrest's "
        "`run_workflow` includes planning and starting/stopping its Runtime; the floor "
        "includes building its TopologicalSorter and pool; dask includes its ordering. "
        "Ratios are of medians (lower is better for wavecrest). "
        "[n=K]: only K timed runs fit in the --budget."
    )
    return [table]


def makespan(h: Harness) -> list[Table]:
    s = h.settings
    n = s.makespan_nodes
    records = {system: h.run(system, "sleep", n) for system in s.systems}
    info = next((r for r in records.values() if "lower_bound" in r), None)
    table = Table(
        f"Makespan: {n}-node random layered DAG of 5-30 ms sleeps, concurrency 8",
        ["system", "median s", "min s", "median / bound", "min / bound", "target"],
    )
    for system, record in records.items():
        target = f"≤ {MAKESPAN_TARGET:.2f}" if system == "wavecrest-eager" else "-"
        if not record.get("ok"):
            table.add(system, "FAILED", "FAILED", "n/a", "n/a", target)
            continue
        bound = record["lower_bound"]
        table.add(
            system,
            f"{record['median']:.3f}",
            f"{record['min']:.3f}",
            f"{record['median'] / bound:.3f}",
            f"{record['min'] / bound:.3f}",
            target,
        )
    if info is not None:
        table.notes.append(
            f"Lower bound = max(critical path {info['critical_path']:.3f} s, total work "
            f"{info['total_work']:.3f} s / {CONCURRENCY} = "
            f"{info['total_work'] / CONCURRENCY:.3f} s) = {info['lower_bound']:.3f} s. "
            "Makespan is the wall time of the whole call. wavecrest sleeps with `ctx.sleep`, "
            "the peers with `time.sleep`."
        )
    if info is not None and "list_schedule" in info:
        ideal, declared = info["list_schedule"], info["list_schedule_declared"]
        bound = info["lower_bound"]
        table.notes.append(
            f"An ideal list scheduler (no overhead at all, durations unknown to it) takes "
            f"{ideal:.3f} s = {ideal / bound:.3f} times the bound starting the longest "
            f"remaining path first, as wavecrest eager does, and {declared:.3f} s = "
            f"{declared / bound:.3f} times the bound in declaration order: that much of each "
            "ratio is the start order's; "
            "the rest is the system's overhead (thread wake-ups, sleep overshoot, start-up)."
        )
    return [table]


def scale(h: Harness) -> list[Table]:
    s = h.settings
    sizes = s.sizes
    systems = [*s.systems, "graph-only"]
    headers = ["system", "graph", *(f"RSS MB {_size_label(n)}" for n in sizes)]
    if len(sizes) > 1:
        low, high = sizes[-2], sizes[-1]
        headers += [
            f"{_size_label(high)}/{_size_label(low)}",
            "KB/node",
            f"{_size_label(high)} ok",
        ]
        if len(sizes) > 2:
            headers += ["growth", "time n^k"]
    table = Table("Peak memory: peak RSS of each system's worker process", headers)
    for system in systems:
        for graph in GRAPHS:
            records = [h.run(system, graph, n) for n in sizes]
            peaks = [r.get("rss_peak_kb") if r.get("ok") else None for r in records]
            cells: list[str] = [system, graph]
            cells += [_fmt(p / 1024 if p else None, 0) for p in peaks]
            if len(sizes) > 1:
                a, b = peaks[-2], peaks[-1]
                cells.append(_ratio(b, a))
                cells.append(_fmt((b - a) / (high - low) if a and b else None, 2))
                last = records[-1]
                if system == "graph-only":
                    cells.append("-")
                else:
                    cells.append(f"yes, {last['median']:.1f} s" if last.get("ok") else "NO")
            if len(sizes) > 2:
                ratio, exponent = growth(h, system, graph)
                cells.append(_fmt(ratio, 2))
                cells.append(_fmt(exponent, 2) if system != "graph-only" else "-")
            table.add(*cells)
    if len(sizes) > 1:
        table.notes.append(
            f"`ru_maxrss` of the worker: interpreter, imports, the generated graph, the "
            f"system's own form of it, the warm-up and the timed runs; about 30 MB of it is "
            f"the interpreter and imports, so the raw ratio stays well under "
            f"{high // low} even when memory is linear in nodes. KB/node: growth of peak RSS "
            f"from {_size_label(low)} to {_size_label(high)} nodes per added node (flat "
            f"across sizes = linear). `graph-only` builds the graph and runs nothing. "
            f"{_size_label(high)} ok: every node of the {_size_label(high)}-node graph ran "
            f"(median wall time)."
        )
    if len(sizes) > 2:
        table.notes.append(
            f"growth: KB per added node from {_size_label(sizes[-2])} to "
            f"{_size_label(sizes[-1])} over the same from {_size_label(sizes[0])} to "
            f"{_size_label(sizes[-2])} (1.00: memory linear in nodes; target ≤ "
            f"{GROWTH_TARGET:.1f}). time n^k: the exponent k of the whole call's time from "
            f"{_size_label(sizes[-2])} to {_size_label(sizes[-1])} nodes (1.00: linear)."
        )
    return [table]


def _paired_snapshot(h: Harness) -> dict[str, Any]:
    # A ratio close to its target needs more than a few pairs to be told apart
    # from the machine's noise: at least SNAPSHOT_PAIRS, whatever --repeat says.
    return h.measure(
        "paired",
        "--graph",
        "layered",
        "--size",
        str(h.settings.snapshot_nodes),
        repeat=max(h.settings.repeat, SNAPSHOT_PAIRS),
    )


def snapshot(h: Harness) -> list[Table]:
    n = h.settings.snapshot_nodes
    record = _paired_snapshot(h)
    table = Table(
        f"Snapshot cost: wavecrest eager, {n:,}-node layered DAG",
        ["state_dir", "median s", "min s", "µs/node", "bytes on disk", "ratio", "target"],
    )
    if record.get("ok"):
        off, on = record["times_off"], record["times_on"]
        ratios = sorted(record["ratios"])
        low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        spread = f"{statistics.median(ratios):.3f} ({low:.2f}-{high:.2f})"
        for label, times, written, shown in (
            ("None (in memory)", off, "0", "-"),
            ("temporary folder", on, f"{record.get('snapshot_bytes', 0):,}", spread),
        ):
            table.add(
                label,
                f"{statistics.median(times):.3f}",
                f"{min(times):.3f}",
                f"{statistics.median(times) / n * 1e6:,.1f}",
                written,
                shown,
                f"≤ {SNAPSHOT_TARGET:.2f}" if times is on else "-",
            )
    else:
        for label in ("None (in memory)", "temporary folder"):
            table.add(label, "FAILED", "FAILED", "n/a", "n/a", "n/a", "-")
    table.notes.append(
        "Both sides run in one worker, in turns (off, on, on, off, ...), so drift in the "
        "machine's speed weighs on both alike; ratio: the median of the pairs' on/off "
        f"ratios (at least {SNAPSHOT_PAIRS} pairs), with their quartiles. With a state_dir "
        "every run writes its msgpack snapshots (coalesced, atomic: temp file, fsync, "
        "rename) and its JSON-lines run log into a fresh temporary folder under the system "
        "temp dir; bytes on disk are what the run left there. Timed: the run_workflow call "
        "alone."
    )
    return [table]


def throughput(h: Harness) -> list[Table]:
    s = h.settings
    record = h.measure("throughput", "--runs", str(s.runs), "--size", str(s.run_nodes))
    table = Table(
        f"Runtime throughput: {s.runs} concurrent runs of a {s.run_nodes}-node layered "
        f"workflow in one Runtime(max_concurrency={CONCURRENCY})",
        ["runs", "nodes/run", "median s", "min s", "runs/s", "nodes/s", "µs/node"],
    )
    if record.get("ok"):
        nodes = s.runs * record["nodes"]
        table.add(
            s.runs,
            record["nodes"],
            f"{record['median']:.3f}",
            f"{record['min']:.3f}",
            f"{s.runs / record['median']:,.1f}",
            f"{nodes / record['median']:,.0f}",
            f"{record['median'] / nodes * 1e6:,.1f}",
        )
    else:
        table.add(s.runs, s.run_nodes, "FAILED", "FAILED", "n/a", "n/a", "n/a")
    table.notes.append(
        "Timed from the first `submit` to the last `result()`; starting and closing the "
        "Runtime are not timed. Rates are from the median."
    )
    return [table]


def _dask_record(h: Harness, graph: str, size: int) -> dict[str, Any]:
    return h.measure("dask", "--graph", graph, "--size", str(size))


def _quartiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"
    low, _, high = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
    return f"{statistics.median(ordered):.2f} ({low:.2f}-{high:.2f})"


def dask_section(h: Harness) -> list[Table]:
    s = h.settings
    systems = ("wavecrest-dask", "dask-window", "dask-submit")
    table = Table(
        "Dask executor: µs per no-op node on a local cluster (2 workers of 4 threads), "
        "median (min), concurrency 8",
        ["graph", "nodes", *systems, "dask/submit", "dask/window", "target"],
    )
    for size in s.sizes:
        for graph in GRAPHS:
            record = _dask_record(h, graph, size)
            if not record.get("ok"):
                table.add(graph, f"{size:,}", *(["FAILED"] * 5), f"≤ {DASK_OVERHEAD_TARGET:.2f}")
                continue
            cells = []
            for system in systems:
                times = record["times_by_system"][system]
                median, least = statistics.median(times), min(times)
                cells.append(f"{median / size * 1e6:,.0f} ({least / size * 1e6:,.0f})")
            table.add(
                graph,
                f"{size:,}",
                *cells,
                _quartiles(record["ratios"]["dask-submit"]),
                _quartiles(record["ratios"]["dask-window"]),
                f"≤ {DASK_OVERHEAD_TARGET:.2f}",
            )
    table.notes.append(
        "One worker per graph and size starts the cluster (`dask scheduler`, two `dask "
        "worker --nthreads 4` processes) and times the three systems in turns on it "
        "(A B C, C B A, ...). wavecrest-dask: `run_workflow(workflow, "
        'executor="dask://HOST:PORT", max_concurrency=8)`, connecting included, every '
        "attempt one task and every output back here. dask-window: a graphlib sorter "
        "here, at most 8 tasks submitted at a time, each result brought back before its "
        "successors are submitted: the least any scheduler that keeps the graph on the "
        "client pays. dask-submit: Dask's own scheduler, one `client.submit` per node with "
        "its input futures, then one `gather` of every result. The two share a client "
        "with the 2 ms batch window wavecrest gives its own. Ratios: the median of each "
        "round's ratio, with quartiles; the target is dask/submit."
    )
    n = s.makespan_nodes
    record = _dask_record(h, "sleep", n)
    spans = Table(
        f"Dask executor makespan: {n}-node random layered DAG of 5-30 ms sleeps, concurrency 8",
        ["system", "median s", "min s", "median / bound", "min / bound", "target"],
    )
    for system in systems:
        target = f"≤ {DASK_MAKESPAN_TARGET:.2f}" if system == "wavecrest-dask" else "-"
        if not record.get("ok"):
            spans.add(system, "FAILED", "FAILED", "n/a", "n/a", target)
            continue
        times = record["times_by_system"][system]
        bound = record["lower_bound"]
        median, least = statistics.median(times), min(times)
        spans.add(
            system,
            f"{median:.3f}",
            f"{least:.3f}",
            f"{median / bound:.3f}",
            f"{least / bound:.3f}",
            target,
        )
    if record.get("ok"):
        spans.notes.append(
            f"Lower bound = max(critical path {record['critical_path']:.3f} s, total work "
            f"{record['total_work']:.3f} s / {CONCURRENCY}) = {record['lower_bound']:.3f} s, "
            "on the same cluster; wavecrest sleeps with `ctx.sleep`, the others with "
            "`time.sleep`."
        )
    return [table, spans]


def sim(h: Harness) -> list[Table]:
    s = h.settings
    record = h.measure("sim", "--runs", str(s.sim_runs), "--size", str(s.sim_nodes))
    table = Table(
        f"Simulation: {s.sim_runs} simulated runs of a {s.sim_nodes}-node layered workflow, "
        f"concurrency {CONCURRENCY}",
        ["runs", "nodes/run", "median s", "min s", "runs/s", "µs/run", "µs/node", "target"],
    )
    target = f"≥ {SIM_TARGET:.0f} runs/s"
    if record.get("ok"):
        nodes = s.sim_runs * record["nodes"]
        table.add(
            s.sim_runs,
            record["nodes"],
            f"{record['median']:.3f}",
            f"{record['min']:.3f}",
            f"{s.sim_runs / record['median']:,.0f}",
            f"{record['median'] / s.sim_runs * 1e6:,.0f}",
            f"{record['median'] / nodes * 1e6:,.1f}",
            target,
        )
    else:
        table.add(s.sim_runs, s.sim_nodes, "FAILED", "FAILED", "n/a", "n/a", "n/a", target)
    table.notes.append(
        "One call runs `simulate(workflow, seed=k)` for each seed in turn, each a fresh "
        "scheduler, supervisor and semaphore in virtual time, every node running its real "
        "(no-op) runtime; the plan is made once. Rates are from the median."
    )
    return [table]


SECTION_FUNCTIONS: dict[str, Callable[[Harness], list[Table]]] = {
    "overhead": overhead,
    "makespan": makespan,
    "scale": scale,
    "snapshot": snapshot,
    "throughput": throughput,
    "dask": dask_section,
    "sim": sim,
}


def targets(h: Harness) -> Table:
    """The targets of DESIGN section 9 and this harness, from the records at hand."""
    s = h.settings
    table = Table("Targets", ["target", "measured", "met"])
    sleep = h.records.get(
        ("run", "--system", "wavecrest-eager", "--graph", "sleep", "--size", str(s.makespan_nodes))
    )
    if sleep is not None:
        if sleep.get("ok"):
            value = sleep["median"] / sleep["lower_bound"]
            table.add(
                f"makespan / bound, eager ≤ {MAKESPAN_TARGET:.2f}",
                f"{value:.3f}",
                "yes" if value <= MAKESPAN_TARGET else "no",
            )
        else:
            table.add(f"makespan / bound, eager ≤ {MAKESPAN_TARGET:.2f}", "FAILED", "no")
    paired = h.records.get(("paired", "--graph", "layered", "--size", str(s.snapshot_nodes)))
    if paired is not None:
        if paired.get("ok"):
            value = statistics.median(paired["ratios"])
            table.add(
                f"snapshots on / off ≤ {SNAPSHOT_TARGET:.2f}",
                f"{value:.3f}",
                "yes" if value <= SNAPSHOT_TARGET else "no",
            )
        else:
            table.add(f"snapshots on / off ≤ {SNAPSHOT_TARGET:.2f}", "FAILED", "no")
    for key, record in h.records.items():
        if key[0] != "dask" or not record.get("ok"):
            continue
        graph, size = key[2], int(key[4])
        if graph == "sleep":
            times = record["times_by_system"]["wavecrest-dask"]
            value = statistics.median(times) / record["lower_bound"]
            target = DASK_MAKESPAN_TARGET
            label = f"dask makespan / bound ≤ {target:.2f}"
        else:
            value = statistics.median(record["ratios"]["dask-submit"])
            target = DASK_OVERHEAD_TARGET
            label = f"dask {graph} {size:,}: wavecrest / client.submit ≤ {target:.2f}"
        table.add(label, f"{value:.3f}", "yes" if value <= target else "no")
    simulated = h.records.get(("sim", "--runs", str(s.sim_runs), "--size", str(s.sim_nodes)))
    if simulated is not None:
        label = f"simulated runs/s of a {s.sim_nodes}-node workflow ≥ {SIM_TARGET:.0f}"
        if simulated.get("ok"):
            rate = s.sim_runs / simulated["median"]
            table.add(label, f"{rate:,.0f}", "yes" if rate >= SIM_TARGET else "no")
        else:
            table.add(label, "FAILED", "no")
    _overhead_targets(h, table)
    _scale_targets(h, table)
    largest = max(s.sizes)
    for system in WAVECREST:
        done = [
            h.records.get(("run", "--system", system, "--graph", g, "--size", str(largest)))
            for g in GRAPHS
        ]
        if any(r is None for r in done):
            continue
        ok = all(r.get("ok") for r in done if r is not None)
        table.add(
            f"{system}: {largest:,}-node chain, wide, layered complete",
            "all completed" if ok else "FAILED",
            "yes" if ok else "no",
        )
    return table


def _run_median(h: Harness, system: str, graph: str, size: int) -> float | None:
    record = h.records.get(("run", "--system", system, "--graph", graph, "--size", str(size)))
    return _median(record) if record is not None else None


def _overhead_targets(h: Harness, table: Table) -> None:
    """Eager against the floor on every cell, against Dask on the 10k layered DAG, and
    against waves mode: the per-node overhead targets."""
    s = h.settings
    for size in s.sizes:
        for graph in GRAPHS:
            eager = _run_median(h, "wavecrest-eager", graph, size)
            floor = _run_median(h, "floor", graph, size)
            if eager is not None and floor is not None:
                value = eager / floor
                table.add(
                    f"{graph} {size:,}: eager / floor ≤ {FLOOR_TARGET:.1f}",
                    f"{value:.2f}",
                    "yes" if value <= FLOOR_TARGET else "no",
                )
            waves = _run_median(h, "wavecrest-waves", graph, size)
            if eager is not None and waves is not None:
                value = eager / waves
                table.add(
                    f"{graph} {size:,}: eager / waves ≤ 1.00",
                    f"{value:.2f}",
                    "yes" if value <= 1.0 else "no",
                )
    eager = _run_median(h, "wavecrest-eager", "layered", 10_000)
    dask = _run_median(h, "dask", "layered", 10_000)
    if eager is not None and dask is not None:
        value = eager / dask
        table.add(
            f"layered 10,000: eager / dask threaded ≤ {DASK_THREADED_TARGET:.1f}",
            f"{value:.2f}",
            "yes" if value <= DASK_THREADED_TARGET else "no",
        )


def growth(h: Harness, system: str, graph: str) -> tuple[float | None, float | None]:
    """``(memory growth ratio, time exponent)`` of ``system`` on ``graph`` over the sizes:
    KB per added node from the second-largest size to the largest over the same from the
    smallest to the second-largest (1.0: linear), and the exponent k of time ~ n^k from the
    second-largest size to the largest (1.0: linear). None where a run is missing."""
    sizes = h.settings.sizes
    if len(sizes) < 3:
        return None, None
    low, mid, high = sizes[0], sizes[-2], sizes[-1]
    records = [
        h.records.get(("run", "--system", system, "--graph", graph, "--size", str(n)))
        for n in (low, mid, high)
    ]
    if any(r is None or not r.get("ok") for r in records):
        return None, None
    rss = [r["rss_peak_kb"] for r in records]  # type: ignore[index]
    early = (rss[1] - rss[0]) / (mid - low)
    late = (rss[2] - rss[1]) / (high - mid)
    ratio = late / early if early > 0 else None
    times = [r.get("median") for r in records[1:]]  # type: ignore[union-attr]
    if None in times:  # graph-only times nothing
        return ratio, None
    exponent = math.log(times[1] / times[0]) / math.log(high / mid)
    return ratio, exponent


def _scale_targets(h: Harness, table: Table) -> None:
    for system in WAVECREST:
        for graph in GRAPHS:
            ratio, exponent = growth(h, system, graph)
            if ratio is None or exponent is None:
                continue
            table.add(
                f"{system} {graph}: memory per node grows ≤ {GROWTH_TARGET:.1f}x",
                f"{ratio:.2f}",
                "yes" if ratio <= GROWTH_TARGET else "no",
            )
            table.add(f"{system} {graph}: time ~ n^k, k (1 is linear)", f"{exponent:.2f}", "-")


# -- entry point -------------------------------------------------------------------


def _meta(settings: Settings, load: tuple[float, float, float]) -> dict[str, Any]:
    sha = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "core", "actors")
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "wavecrest": _version("wavecrest"),
        "git": sha + (" + uncommitted changes in core/ or actors/" if dirty else ""),
        "dask": _version("dask"),
        "distributed": _version("distributed"),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "sections": list(settings.sections),
        "systems": list(settings.systems),
        "sizes": list(settings.sizes),
        "repeat": settings.repeat,
        "budget": settings.budget,
        "seed": settings.seed,
        "concurrency": CONCURRENCY,
    }


def _header(meta: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in meta["loadavg_start"])
    lines = [
        f"- Python {meta['python']} ({meta['implementation']}), {meta['platform']}",
        f"- wavecrest {meta['wavecrest']} (git {meta['git'] or 'unknown'}), "
        f"dask {meta['dask'] or 'not installed'}, "
        f"distributed {meta.get('distributed') or 'not installed'}",
        f"- os.cpu_count() = {meta['cpu_count']}, load average at start {load}",
        f"- {meta['started']}: concurrency {meta['concurrency']}, median of up to "
        f"{meta['repeat']} timed run(s) per cell (budget {meta['budget']:g} s), "
        f"one fresh process per cell, seed {meta['seed']}",
    ]
    return "\n".join(lines)


def _split(
    value: str, valid: Sequence[str], what: str, parser: argparse.ArgumentParser
) -> tuple[str, ...]:
    items = tuple(x.strip() for x in value.split(",") if x.strip())
    bad = [x for x in items if x not in valid]
    if bad or not items:
        parser.error(
            f"invalid {what} {value!r}: expected a comma-separated list of {', '.join(valid)}"
        )
    return tuple(x for x in valid if x in items)


def main(argv: list[str] | None = None) -> int:
    load = os.getloadavg()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="sizes 1k and 10k only, 1 timed run per cell"
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SECTIONS),
        help=f"sections to run, of {', '.join(SECTIONS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="systems to compare (default: %(default)s)"
    )
    parser.add_argument(
        "--sizes",
        help="node counts for overhead and scale (default: 1000,10000,100000; --quick: 1000,10000)",
    )
    parser.add_argument("--repeat", type=int, help="timed runs per cell (default 3; --quick: 1)")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="stop repeating a cell once its timed runs add up to this many "
        "seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200.0,
        help="seconds before a worker is killed and reported (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="graph and duration seed")
    parser.add_argument("--makespan-nodes", type=int, default=200)
    parser.add_argument("--snapshot-nodes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100, help="concurrent runs for throughput")
    parser.add_argument("--run-nodes", type=int, default=50, help="nodes per throughput run")
    parser.add_argument("--sim-runs", type=int, default=1000, help="simulated runs per call")
    parser.add_argument("--sim-nodes", type=int, default=20, help="nodes per simulated run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="save every raw record here")
    parser.add_argument("--rst", action="store_true", help="print reStructuredText tables")
    args = parser.parse_args(argv)

    sections = _split(args.only, SECTIONS, "--only", parser)
    systems = _split(args.systems, SYSTEMS, "--systems", parser)
    if args.sizes:
        try:
            sizes = tuple(sorted({int(x) for x in args.sizes.split(",")}))
        except ValueError:
            parser.error(f"invalid --sizes {args.sizes!r}: expected integers like 1000,10000")
    else:
        sizes = (1000, 10_000) if args.quick else (1000, 10_000, 100_000)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    numbers = (
        repeat,
        args.makespan_nodes,
        args.snapshot_nodes,
        args.runs,
        args.run_nodes,
        args.sim_runs,
        args.sim_nodes,
    )
    if min(sizes) < 1 or min(numbers) < 1 or args.budget <= 0 or args.timeout <= 0:
        parser.error("sizes, counts, --repeat, --budget and --timeout must be positive")
    if "dask" in systems and _version("dask") is None:
        print("dask is not installed (pip install .[bench]); leaving it out", file=sys.stderr)
        systems = tuple(x for x in systems if x != "dask")
    if "dask" in sections and _version("distributed") is None:
        print(
            "distributed is not installed (pip install .[bench]); leaving out the dask section",
            file=sys.stderr,
        )
        sections = tuple(x for x in sections if x != "dask")

    settings = Settings(
        sections=sections,
        systems=systems,
        sizes=sizes,
        repeat=repeat,
        budget=args.budget,
        timeout=args.timeout,
        seed=args.seed,
        makespan_nodes=args.makespan_nodes,
        snapshot_nodes=args.snapshot_nodes,
        runs=args.runs,
        run_nodes=args.run_nodes,
        sim_runs=args.sim_runs,
        sim_nodes=args.sim_nodes,
        fmt="rst" if args.rst else "markdown",
        json_path=args.json,
    )
    meta = _meta(settings, load)
    harness = Harness(settings, meta)
    started = time.perf_counter()
    print(_header(meta) + "\n", flush=True)
    for section in sections:
        for table in SECTION_FUNCTIONS[section](harness):
            print(render(table, settings.fmt) + "\n", flush=True)
    summary = targets(harness)
    if summary.rows:
        print(render(summary, settings.fmt) + "\n")
    meta["seconds"] = time.perf_counter() - started
    meta["loadavg_end"] = os.getloadavg()
    harness.save()
    end_load = ", ".join(f"{x:.2f}" for x in meta["loadavg_end"])
    print(f"Finished in {meta['seconds']:.0f} s; load average at the end {end_load}.")
    if harness.problems:
        print(f"\n{len(harness.problems)} measurement(s) went wrong:\n")
        for record in harness.problems:
            print(f"- {' '.join(record['args'])}: {record['detail']}")
            print(f"  command: {record['command']}")
            tail = (record.get("traceback") or record.get("stderr_tail") or "").strip()
            if tail:
                print("  " + "\n  ".join(tail.splitlines()[-15:]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
