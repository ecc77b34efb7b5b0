"""asyncio hosts: many concurrent small runs submitted from one event loop.

Each variant submits ``--runs`` runs (default 200) of a 5-node workflow at once
(``benchmarks.graphs.layered(5)``: no-op nodes in layers) to one
``Runtime(max_concurrency=8)`` and waits for every result, while a ticker
coroutine sleeps 1 ms again and again on the same loop. It reports:

- **runs/s**: the runs divided by the wall time from the first submission to
  the last result;
- **latency**: per run, from the start of its submission to its result
  arriving on the loop (p50, p99);
- **loop lag**: how much later than asked the ticker woke (p50, p99, max) —
  how long the loop could not run anything else.

The variants, run in turns in one process (one warm-up round, then the median
of ``--repeat`` rounds per cell):

==========================  ==================================================================
``submit_async``            ``await rt.submit_async(wf)`` then ``await handle``, plain nodes
``submit_async, async def``  the same with ``async def`` nodes (``await ctx.asleep(0)``)
``from a thread``           the runs submitted with ``rt.submit`` by a worker thread: the loop
                            only ticks, so its lag is what 200 runs executing in the process
                            cost it (the GIL), however they were submitted
``submit on the loop``      ``rt.submit`` called for every run from the loop itself: what
                            submitting synchronously would cost the loop
==========================  ==================================================================

``--persist`` gives every run a state dir (snapshots, locks and logs in a
temporary folder); ``--from-file`` submits the workflow as a ``.flow.md`` path,
so each submission also reads and parses it. ``--switch-interval S`` sets
``sys.setswitchinterval(S)`` first, as a host that wants a shorter loop lag
may: how long a busy thread may keep the GIL before a waiting one (the loop's)
gets it; Python's default is 5 ms.

    python -m benchmarks.bench_async [--runs 200] [--repeat 3] [--persist] [--from-file]
                                     [--switch-interval S] [--rst]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wavecrest.actors import Runtime
from wavecrest.core import RuntimeContext, Workflow, register_runtime

from .graphs import layered, register_noop, to_flow_md
from .report import Table, render

VARIANTS = ("submit_async", "submit_async, async def", "from a thread", "submit on the loop")
ASYNC_NOOP = "transform:async-noop"
TICK = 0.001


async def _async_noop(ctx: RuntimeContext) -> None:
    await ctx.asleep(0)


def _workflows(directory: Path, from_file: bool) -> dict[str, Workflow | Path]:
    """The plain and the async-def workflow, or their .flow.md paths."""
    plain = layered(5)
    nodes = tuple(dataclasses.replace(node, type="async-noop") for node in plain.body)
    workflows = {"plain": plain, "async": dataclasses.replace(plain, body=nodes)}
    if not from_file:
        return dict(workflows)
    paths: dict[str, Workflow | Path] = {}
    for name, workflow in workflows.items():
        path = directory / f"{name}.flow.md"
        path.write_text(to_flow_md(workflow))
        paths[name] = path
    return paths


class Ticker:
    """Sleeps :data:`TICK` seconds again and again and records how late it woke."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.perf_counter() - before - TICK))

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


async def _measure(
    variant: str, workflow: Workflow | Path, runs: int, state_dir: Path | None
) -> dict[str, Any]:
    async with Runtime(max_concurrency=8) as runtime:
        ticker = Ticker()
        ticker.start()
        await asyncio.sleep(0.02)  # the ticker's own start-up is not measured
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        if variant.startswith("submit_async"):

            async def one() -> float:
                begin = time.perf_counter()
                handle = await runtime.submit_async(workflow, state_dir=state_dir)
                result = await handle
                assert result.status == "completed", result.errors
                return time.perf_counter() - begin

            latencies = await asyncio.gather(*(one() for _ in range(runs)))
        else:
            done: list[float] = []
            begins: list[float] = []
            finished = loop.create_future()

            def arrived(_: Any) -> None:
                done.append(time.perf_counter())
                if len(done) == runs:
                    finished.set_result(None)

            def submit_all() -> None:
                for _ in range(runs):
                    begins.append(time.perf_counter())
                    handle = runtime.submit(workflow, state_dir=state_dir)
                    handle.future.add_done_callback(
                        lambda future: loop.call_soon_threadsafe(arrived, future)
                    )

            if variant == "from a thread":
                thread = threading.Thread(target=submit_all)
                thread.start()
                await finished
                thread.join()
            else:
                submit_all()
                await finished
            # Results arrive in completion order; match them to submissions in order too.
            latencies = [
                end - begin for begin, end in zip(sorted(begins), sorted(done), strict=True)
            ]
        elapsed = time.perf_counter() - started
        await ticker.stop()
    lags = sorted(ticker.lags)
    return {
        "runs/s": runs / elapsed,
        "p50": statistics.median(latencies),
        "p99": _quantile(sorted(latencies), 0.99),
        "lag p50": statistics.median(lags),
        "lag p99": _quantile(lags, 0.99),
        "lag max": lags[-1],
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_async",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=200, help="concurrent runs per cell")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (median kept)")
    parser.add_argument("--persist", action="store_true", help="give every run a state dir")
    parser.add_argument("--from-file", action="store_true", help="submit a .flow.md path")
    parser.add_argument("--rst", action="store_true", help="print a reStructuredText table")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="sys.setswitchinterval(S) first, as a host may (default: Python's 0.005)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        parser.error("--runs and --repeat must be at least 1")
    if args.switch_interval is not None:
        if not args.switch_interval > 0:
            parser.error("--switch-interval must be above 0")
        sys.setswitchinterval(args.switch_interval)
    register_noop()
    register_runtime(ASYNC_NOOP, _async_noop, replace=True)
    cells: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        workflows = _workflows(directory, args.from_file)

        def cell(variant: str, round_: int) -> Callable[[], Awaitable[dict[str, Any]]]:
            workflow = workflows["async" if "async def" in variant else "plain"]
            state_dir = directory / f"state-{round_}" if args.persist else None
            return lambda: _measure(variant, workflow, args.runs, state_dir)

        for round_ in range(args.repeat + 1):  # round 0 warms up
            for variant in VARIANTS:
                gc.collect()
                measured = asyncio.run(cell(variant, round_)())
                if round_:
                    cells[variant].append(measured)
                print(f"round {round_} {variant}: {measured['runs/s']:.0f} runs/s", file=sys.stderr)

    median = {
        variant: {
            key: statistics.median(m[key] for m in cells[variant]) for key in cells[variant][0]
        }
        for variant in VARIANTS
    }
    what = "persisted" if args.persist else "in memory"
    source = "a .flow.md path" if args.from_file else "a Workflow"
    table = Table(
        f"asyncio host: {args.runs} concurrent 5-node runs ({what}, submitted as {source}), "
        f"Runtime(max_concurrency=8), switch interval {sys.getswitchinterval() * 1000:g} ms",
        [
            "variant",
            "runs/s",
            "latency p50 ms",
            "latency p99 ms",
            "loop lag p50 ms",
            "loop lag p99 ms",
            "loop lag max ms",
        ],
    )
    for variant in VARIANTS:
        m = median[variant]
        table.add(
            variant,
            f"{m['runs/s']:.0f}",
            f"{m['p50'] * 1000:.1f}",
            f"{m['p99'] * 1000:.1f}",
            f"{m['lag p50'] * 1000:.2f}",
            f"{m['lag p99'] * 1000:.1f}",
            f"{m['lag max'] * 1000:.1f}",
        )
    plain, coro = median["submit_async"], median["submit_async, async def"]
    floor, blocking = median["from a thread"], median["submit on the loop"]
    table.notes.append(
        f"Median of {args.repeat} rounds, variants in turns, one process. async def nodes run "
        f"at {coro['runs/s'] / plain['runs/s']:.2f}x the runs/s of plain nodes. Loop lag (max) "
        f"with submit_async is {plain['lag max'] / floor['lag max']:.2f}x the lag of runs "
        f"submitted from another thread, where the loop does nothing but tick (GIL contention "
        f"of the runs themselves); submitting on the loop is "
        f"{blocking['lag max'] / plain['lag max']:.1f}x submit_async's."
    )
    table.notes.append(
        f"Python {sys.version.split()[0]}, os.cpu_count() = {os.cpu_count()}, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end."
    )
    print(render(table, "rst" if args.rst else "markdown"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
