"""An asyncio host program using wavecrest's public API, typed throughout.

``mypy --strict examples/host.py`` passes (tests/test_host.py runs it), and
``python examples/host.py`` runs it: a price quote workflow built in code,
with an ``async def`` runtime that fails once and is retried, run every way
wavecrest offers — ``run_workflow``, ``resume_workflow`` after a failure, an
asyncio ``Runtime`` with an event stream, awaited runs and subscribers, and
the deterministic simulator. It prints what happened on stdout; wavecrest
itself prints nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path

from wavecrest.actors import RunHandle, Runtime, resume_workflow, run_workflow
from wavecrest.core import (
    NodeFailed,
    NodeRetrying,
    Retry,
    RunEvent,
    RunFinished,
    RunResult,
    RuntimeContext,
    Simulation,
    TransientError,
    Workflow,
    WorkflowError,
    load_workflow,
    parse_workflow,
    plan,
    register_runtime,
)

PRICES = Path(__file__).resolve().parent / "data" / "prices.csv"


@register_runtime("transform:quote")
async def quote(ctx: RuntimeContext) -> dict[str, float]:
    """Ask a (pretend) remote price service; it is busy the first time when ``flaky``."""
    await ctx.asleep(0.01)  # a network round trip that does not block the event loop
    if ctx.config["flaky"] and ctx.attempt == 1:
        raise TransientError("the price service is busy")
    rate = float(ctx.config["rate"])
    return {row["sku"]: round(float(row["price"]) * rate, 2) for row in ctx.input}


@register_runtime("transform:cheapest")
def cheapest(ctx: RuntimeContext) -> str:
    prices: dict[str, float] = ctx.input
    return min(prices, key=prices.__getitem__)


def pricing() -> Workflow:
    """The workflow, built in code: read the price list, quote it, pick the cheapest."""
    wb = Workflow.build(
        "pricing",
        version="1.0.0",
        config={
            "rate": {"type": "number", "default": 1.1},
            "flaky": {"type": "boolean", "default": False},
            "divisor": {"type": "integer", "default": 1},
        },
    )
    rows = wb.source("rows", "file", path=str(PRICES), format="csv")
    quoted = wb.transform(
        "quoted",
        "quote",
        input=rows,
        rate="{{ config.rate / config.divisor }}",
        flaky="{{ config.flaky }}",
        retry=Retry(max=2, base="10ms"),
    )
    wb.transform("cheapest", "cheapest", input=quoted)
    return wb.workflow()


def run_and_resume(workflow: Workflow, state_dir: Path) -> list[str]:
    """``run_workflow`` in memory, with an injected fault; then a persisted run that fails,
    resumed with a fix."""
    faults = {"rules": [{"node": "quoted", "attempts": [1], "raise": "transient"}]}
    first = run_workflow(workflow, config={"rate": 1.0}, faults=faults, seed=3)
    broken = run_workflow(workflow, config={"divisor": 0}, state_dir=state_dir)
    failure = broken.errors[0]
    fixed = resume_workflow(broken.run_id, state_dir=state_dir, config={"divisor": 1})
    attempts = first.nodes["quoted"].attempts
    return [
        f"run: {first.status}, cheapest {first.outputs['cheapest']}, {attempts} attempts",
        f"persisted: {broken.status} at {failure.node} ({failure.type})",
        f"resumed: {fixed.status}, cheapest {fixed.outputs['cheapest']}",
    ]


async def serve(workflow: Workflow) -> list[str]:
    """An asyncio host: stream one run's events, await three more, count every run's ends."""
    ended: Counter[str] = Counter()

    def count(event: RunEvent) -> None:
        if isinstance(event, RunFinished):
            ended[event.status] += 1

    lines: list[str] = []
    async with Runtime(max_concurrency=4) as runtime:
        unsubscribe = runtime.subscribe(count)
        handle: RunHandle = await runtime.submit_async(
            workflow, config={"flaky": True}, seed=7, stream=True
        )
        async for event in handle.events():
            if isinstance(event, NodeRetrying):
                lines.append(f"stream: {event.path} retried after {event.error.type}")
            elif isinstance(event, NodeFailed):
                lines.append(f"stream: {event.path} failed: {event.error.message}")
        streamed: RunResult = await handle
        lines.append(
            f"streamed: {streamed.status}, {streamed.nodes['quoted'].attempts} attempts, "
            f"{handle.dropped_events} events dropped"
        )
        rates = (0.9, 1.0, 1.2)
        results = await asyncio.gather(
            *(runtime.run(workflow, config={"rate": rate}) for rate in rates)
        )
        totals = [round(sum(r.outputs["quoted"].values()), 2) for r in results]
        lines.append(f"awaited: {[r.status for r in results]}, totals {totals}")
        statistics = runtime.statistics()
        lines.append(f"permits: {statistics.capacity} capacity, {statistics.held} held")
        unsubscribe()
    lines.append(f"subscriber saw: {dict(ended)}")
    return lines


def simulate(workflow: Workflow) -> str:
    """The same workflow in virtual time: the async runtime's waits cost no real time.
    (A simulation takes the whole config, defaults included.)"""
    config = {"rate": 1.1, "flaky": True, "divisor": 1}
    first = Simulation(workflow, seed=1, config=config).run()
    again = Simulation(workflow, seed=1, config=config).run()
    attempts = first.nodes["quoted"].attempts
    return f"simulated: {first.status} after {attempts} attempts, the same again: {first == again}"


def checks() -> list[str]:
    """Bad workflows are reported, located; a workflow can still be parsed from text."""
    lines: list[str] = []
    wb = Workflow.build("broken")
    wb.transform("a", "template", template="{{ b.output }}")
    wb.transform("b", "template", template="{{ a.output }}")
    try:
        wb.workflow()
    except WorkflowError as exc:
        for diagnostic in exc.diagnostics:
            lines.append(f"rejected: line {diagnostic.line}: {diagnostic.message}")
    text = "---\nname: tiny\n---\n<workflow><transform id='t' type='cheapest'/></workflow>\n"
    planned = plan(parse_workflow(text))
    lines.append(f"parsed: {planned.workflow.name}, critical path {list(planned.critical_path)}")
    etl = load_workflow(Path(__file__).resolve().parent / "etl.flow.md")
    lines.append(f"loaded: {etl.name} {etl.version}, {len(plan(etl).waves)} waves")
    return lines


def main() -> None:
    workflow = pricing()
    with tempfile.TemporaryDirectory() as state_dir:
        lines = run_and_resume(workflow, Path(state_dir))
    lines += asyncio.run(serve(workflow))
    lines.append(simulate(workflow))
    lines += checks()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
