"""Where each µs of wavecrest's per-node cost goes: an additive account of one run.

    python -m benchmarks.account                      # 10k layered, eager, concurrency 8
    python -m benchmarks.account --graph chain --size 100000 --mode waves
    python -m benchmarks.account --snapshots          # with a state dir

The same no-op graph is run in parts, each timed alone in this process
(the fastest of ``--repeat`` rounds: this is CPU work that other processes on
the machine only slow down; CPU time of the calling thread with the
garbage collector off unless said otherwise), and each part's µs per node is
printed:

``plan``
    :func:`wavecrest.core.plan`: validation, the wave plan, the indexes.
``core``
    The same plan driven through the pure :class:`Scheduler` in one thread
    with a :class:`FifoSemaphore` for its permits, every attempt succeeding
    at once with no output: every scheduling decision, result, event and
    permit the run makes, with nothing between them.
``attempts``
    :func:`wavecrest.core.execute_task` alone, once per start the core made:
    preparing the context and calling the (no-op) runtime.
``run`` (wall and CPU)
    ``run_workflow`` itself, the whole call: process CPU time over all threads.
``garbage collection``
    Time inside the collector during ``run`` (``gc.callbacks``).
``actors and threads``
    ``run`` CPU minus plan, core, attempts and GC: the actors, their mailboxes
    and pooled threads, permits hand-offs, the registry, events and results,
    and the Runtime's start and close.

It also prints the context switches per node during ``run``
(``ru_nvcsw + ru_nivcsw``): each one is the GIL or a lock handed between
threads. Numbers for the account in benchmarks/README.md come from here.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from wavecrest.actors import run_workflow
from wavecrest.core import NeverCancelled, execute_task, plan
from wavecrest.core._clock import FakeClock
from wavecrest.core._events import (
    Finished,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    StartTask,
    TaskSucceeded,
    WithdrawPermits,
)
from wavecrest.core._graph import Plan
from wavecrest.core._scheduler import RunSettings, Scheduler
from wavecrest.core._semaphore import FifoSemaphore

from .systems import register_runtimes
from .worker import build


def _cpu(call: Callable[[], Any]) -> float:
    """CPU time of ``call`` on this thread, the collector off: the run's collections are
    counted once, in ``garbage collection``."""
    gc.collect()
    gc.disable()
    try:
        started = time.thread_time()
        call()
        return time.thread_time() - started
    finally:
        gc.enable()


def drive_core(planned: Plan, settings: RunSettings, starts: list[StartTask]) -> None:
    """Run ``planned`` through the pure core alone; every attempt succeeds at once.

    Appends every start the core made to ``starts``. A no-op graph needs no
    timers, supervisor or events beyond these, so any other command is ignored.
    """
    scheduler = Scheduler(planned, run_id="account", clock=FakeClock(), settings=settings)
    semaphore = FifoSemaphore(settings.max_concurrency)
    inputs: deque[Any] = deque()
    commands = scheduler.start()
    while True:
        for command in commands:
            kind = type(command)
            if kind is StartTask:
                starts.append(command)
                inputs.append(TaskSucceeded(command.token, None))
            elif kind is RequestPermits:
                granted = semaphore.acquire("run", command.count).get("run", 0)
                if granted:
                    inputs.append(PermitsGranted(granted))
            elif kind is ReleasePermits:
                granted = semaphore.release("run", command.count).get("run", 0)
                if granted:
                    inputs.append(PermitsGranted(granted))
            elif kind is WithdrawPermits:
                semaphore.withdraw("run", command.count)
            elif kind is Finished:
                return
        if not inputs:
            raise SystemExit(f"account: the core stalled: {scheduler.statistics()}")
        commands = scheduler.handle(inputs.popleft())


def account(
    graph: str, size: int, mode: str, concurrency: int, repeat: int, snapshots: bool
) -> dict[str, float]:
    register_runtimes()
    workflow = build(graph, size)
    warm = build(graph, 200)
    run_workflow(warm, max_concurrency=concurrency, mode=mode)
    settings = RunSettings(max_concurrency=concurrency, mode=mode)

    plans = [_cpu(lambda: plan(workflow)) for _ in range(repeat)]
    planned = plan(workflow)

    starts: list[StartTask] = []

    def core() -> None:
        starts.clear()
        drive_core(planned, settings, starts)

    cores = [_cpu(core) for _ in range(repeat)]
    cancel = NeverCancelled()

    def attempts() -> None:
        for start in starts:
            execute_task(start, cancel=cancel)

    calls = [_cpu(attempts) for _ in range(repeat)]

    walls, cpus, gcs, switches = [], [], [], []
    collecting = [0.0, 0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]

    for _ in range(repeat):
        state = tempfile.TemporaryDirectory() if snapshots else None
        gc.collect()
        collecting[1] = 0.0
        gc.callbacks.append(on_gc)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time(), time.perf_counter()
        result = run_workflow(
            workflow,
            max_concurrency=concurrency,
            mode=mode,
            state_dir=None if state is None else state.name,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        gc.callbacks.remove(on_gc)
        if state is not None:
            state.cleanup()
        if result.status != "completed":
            raise SystemExit(f"account: the run ended {result.status}")
        walls.append(wall)
        cpus.append(cpu)
        gcs.append(collecting[1])
        switches.append((after.ru_nvcsw + after.ru_nivcsw) - (usage.ru_nvcsw + usage.ru_nivcsw))

    per_node = 1e6 / size
    parts = {
        "plan": min(plans) * per_node,
        "core": min(cores) * per_node,
        "attempts": min(calls) * per_node,
    }
    fastest = cpus.index(min(cpus))  # the run's parts from one and the same run
    parts["run wall"] = walls[fastest] * per_node
    parts["run CPU"] = cpus[fastest] * per_node
    parts["garbage collection"] = gcs[fastest] * per_node
    parts["actors and threads"] = (
        parts["run CPU"]
        - parts["plan"]
        - parts["core"]
        - parts["attempts"]
        - parts["garbage collection"]
    )
    parts["context switches per node"] = statistics.median(switches) / size
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.account", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--graph", choices=("chain", "wide", "layered"), default="layered")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--mode", choices=("eager", "waves"), default="eager")
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--snapshots", action="store_true", help="give every run a state dir")
    args = parser.parse_args(argv)
    if args.size < 1 or args.repeat < 1 or args.max_concurrency < 1:
        parser.error("--size, --repeat and --max-concurrency must be at least 1")
    parts = account(
        args.graph, args.size, args.mode, args.max_concurrency, args.repeat, args.snapshots
    )
    print(
        f"{args.graph} {args.size:,} nodes, {args.mode}, concurrency {args.max_concurrency}"
        f"{', snapshots' if args.snapshots else ''}: µs per node, fastest of {args.repeat}"
    )
    for name in ("plan", "core", "attempts", "garbage collection", "actors and threads"):
        print(f"  {name:<22} {parts[name]:7.1f}")
    print(f"  {'= run CPU':<22} {parts['run CPU']:7.1f}   (wall {parts['run wall']:.1f})")
    print(f"  context switches per node {parts['context switches per node']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
