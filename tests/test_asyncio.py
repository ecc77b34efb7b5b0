"""asyncio hosts: async def runtimes on the Runtime's loop or the host's, awaitable handles,
event streams, submit_async, and callbacks that fail."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wavecrest.actors import Runtime, run_workflow
from wavecrest.core import (
    ConfigError,
    NodeStarted,
    RunEvent,
    RuntimeClosedError,
    RuntimeContext,
    TransientError,
    WorkflowError,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._events import RunFinished

pytestmark = pytest.mark.usefixtures("no_new_threads")


def flow(body: str, front: str = "") -> Any:
    return parse_workflow(f"---\nname: aio\n{front}---\n<workflow>\n{body}\n</workflow>\n")


@pytest.fixture
def runtimes() -> Iterator[Any]:
    """``add(key, func)`` registers a runtime for the test; it is removed afterwards."""
    keys: set[str] = set()

    def add(key: str, func: Any) -> None:
        register_runtime(key, func, replace=True)
        keys.add(key)

    yield add
    for key in keys:
        unregister_runtime(key)


def names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


# --- async def runtimes -----------------------------------------------------------------


def test_an_async_runtime_runs_on_the_runtimes_own_loop_thread(runtimes: Any) -> None:
    """Its coroutine runs on the '<name>-asyncio' thread, which is stopped on close."""

    async def where(ctx: RuntimeContext) -> Any:
        await ctx.asleep(0.001)
        return [ctx.input, threading.current_thread().name]

    runtimes("transform:t-where", where)
    result = run_workflow(
        flow(
            '<transform id="a" type="template" template="{{ 1 }}"/>\n'
            '<transform id="b" type="t-where" input="a"/>'
        )
    )
    assert result.status == "completed"
    assert result.outputs["b"] == [1, "wavecrest-asyncio"]


def test_a_runtime_without_async_runtimes_never_starts_a_loop() -> None:
    seen: list[set[str]] = []
    with Runtime(on_event=lambda e: seen.append(names())) as runtime:
        runtime.submit(flow('<transform id="a" type="template" template="1"/>')).result(30)
    assert seen
    assert all("wavecrest-asyncio" not in current for current in seen)


def test_async_runtimes_run_concurrently_up_to_the_cap(runtimes: Any) -> None:
    """Nine attempts with a cap of three: three run at once (they wait for each other to
    prove it), never more."""
    cap = 3
    state = {"now": 0, "peak": 0}
    full: list[asyncio.Event] = []

    async def gauge(ctx: RuntimeContext) -> Any:
        if not full:
            full.append(asyncio.Event())
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        if state["now"] == cap:
            full[0].set()
        try:
            await asyncio.wait_for(full[0].wait(), timeout=20)
            await ctx.asleep(0.005)
            return ctx.node_id
        finally:
            state["now"] -= 1

    runtimes("transform:t-gauge", gauge)
    body = "\n".join(f'<transform id="n{i}" type="t-gauge"/>' for i in range(9))
    result = run_workflow(flow(body), max_concurrency=cap)
    assert result.status == "completed", result.errors
    assert state["peak"] == cap


def test_a_waiting_async_attempt_holds_no_pooled_thread(runtimes: Any) -> None:
    """Twenty attempts wait for each other at once, yet the pool never needs twenty threads:
    each node actor gives its thread back while its coroutine runs."""
    count = 20
    arrived: list[int] = []
    gate: list[asyncio.Event] = []

    async def meet(ctx: RuntimeContext) -> Any:
        if not gate:
            gate.append(asyncio.Event())
        arrived.append(1)
        if len(arrived) == count:
            gate[0].set()
        await asyncio.wait_for(gate[0].wait(), timeout=20)
        return ctx.node_id

    runtimes("transform:t-meet", meet)
    body = "\n".join(f'<transform id="n{i}" type="t-meet"/>' for i in range(count))
    with Runtime(max_concurrency=count) as runtime:
        result = runtime.submit(flow(body)).result(timeout=30)
        pool_size = runtime._pool.size
    assert result.status == "completed", result.errors
    assert pool_size < count


def test_a_timeout_cancels_the_coroutine_and_is_reported_as_a_timeout(runtimes: Any) -> None:
    seen: list[str] = []

    async def stuck(ctx: RuntimeContext) -> Any:
        try:
            await ctx.asleep(30)
        except asyncio.CancelledError:
            seen.append("CancelledError")
            raise
        return "too late"

    runtimes("transform:t-stuck", stuck)
    started = time.monotonic()
    result = run_workflow(flow('<transform id="s" type="t-stuck" timeout="100ms"/>'))
    assert time.monotonic() - started < 10
    assert result.status == "failed"
    assert result.errors[0].type == "NodeTimeoutError"
    assert result.nodes["s"].status == "failed"
    assert seen == ["CancelledError"]


def test_a_timed_out_coroutine_is_retried_like_a_plain_runtime(runtimes: Any) -> None:
    async def slow_first(ctx: RuntimeContext) -> Any:
        if ctx.attempt == 1:
            await ctx.asleep(30)
        return ctx.attempt

    runtimes("transform:t-slow-first", slow_first)
    result = run_workflow(
        flow(
            '<transform id="s" type="t-slow-first" timeout="100ms">'
            '<on-error><retry max="2" base="1ms"/></on-error></transform>'
        )
    )
    assert result.status == "completed"
    assert result.outputs == {"s": 2}


def test_cancelling_a_run_cancels_its_coroutines(runtimes: Any) -> None:
    entered = threading.Event()
    seen: list[str] = []

    async def wait(ctx: RuntimeContext) -> Any:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(ctx.node_id)
            raise

    runtimes("transform:t-wait", wait)
    with Runtime() as runtime:
        handle = runtime.submit(flow('<transform id="w" type="t-wait"/>'))
        assert entered.wait(10)
        handle.cancel()
        result = handle.result(timeout=30)
    assert result.status == "cancelled"
    assert result.nodes["w"].status == "cancelled"
    assert seen == ["w"]


def test_fail_fast_cancels_in_flight_coroutines(runtimes: Any) -> None:
    cancelled: list[str] = []
    waiting = threading.Event()

    async def wait(ctx: RuntimeContext) -> Any:
        waiting.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(ctx.node_id)
            raise

    async def fail(ctx: RuntimeContext) -> Any:
        await asyncio.get_running_loop().run_in_executor(None, waiting.wait, 10)
        raise ValueError("boom")

    runtimes("transform:t-wait", wait)
    runtimes("transform:t-fail", fail)
    result = run_workflow(
        flow('<transform id="w" type="t-wait"/>\n<transform id="f" type="t-fail"/>')
    )
    assert result.status == "failed"
    assert [e.type for e in result.errors] == ["ValueError"]
    assert result.nodes["w"].status == "cancelled"
    assert cancelled == ["w"]


def test_a_coroutine_that_ignores_cancellation_is_abandoned_and_the_loop_still_stops(
    runtimes: Any,
) -> None:
    async def stubborn(ctx: RuntimeContext) -> Any:
        for _ in range(50):
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                continue
        return "never seen"

    runtimes("transform:t-stubborn", stubborn)
    result = run_workflow(
        flow('<transform id="s" type="t-stubborn" timeout="50ms"/>', "runtime: {grace: 100ms}\n")
    )
    assert result.status == "failed"
    assert result.abandoned == 1
    assert "abandoned" in result.errors[0].message


def test_an_async_runtime_that_raises_system_exit_is_a_crash_and_the_loop_survives(
    runtimes: Any,
) -> None:
    async def exits(ctx: RuntimeContext) -> Any:
        if ctx.attempt == 1:
            raise SystemExit(3)
        return "after the crash"

    runtimes("transform:t-exits", exits)
    result = run_workflow(
        flow(
            '<transform id="x" type="t-exits">'
            '<on-error><retry max="1" base="1ms"/></on-error></transform>'
        )
    )
    assert result.status == "completed"
    assert result.outputs == {"x": "after the crash"}
    assert result.nodes["x"].attempts == 2


def test_faults_apply_to_async_runtimes(runtimes: Any) -> None:
    async def fine(ctx: RuntimeContext) -> Any:
        return ctx.attempt

    runtimes("transform:t-fine", fine)
    faults = {"rules": [{"node": "x", "attempts": [1], "crash": True}]}
    result = run_workflow(
        flow(
            '<transform id="x" type="t-fine"><on-error><retry max="1" base="1ms"/></on-error>'
            "</transform>"
        ),
        faults=faults,
        seed=1,
    )
    assert result.status == "completed"
    assert result.outputs == {"x": 2}


def test_an_async_runtimes_output_is_persisted_and_resumable(runtimes: Any, tmp_path: Path) -> None:
    from wavecrest.actors import resume_workflow

    async def produce(ctx: RuntimeContext) -> Any:
        await ctx.asleep(0)
        if ctx.node_id == "b":
            raise TransientError("not yet")
        return {"rows": [1, 2, 3]}

    runtimes("transform:t-produce", produce)
    wf = flow(
        '<transform id="a" type="t-produce"/>\n<transform id="b" type="t-produce" input="a"/>'
    )
    first = run_workflow(wf, state_dir=tmp_path)
    assert first.status == "failed"
    assert first.outputs == {"a": {"rows": [1, 2, 3]}}

    async def recovered(ctx: RuntimeContext) -> Any:
        return ctx.input["rows"][-1]

    runtimes("transform:t-produce", recovered)
    again = resume_workflow(first.run_id, state_dir=tmp_path)
    assert again.status == "completed"
    assert again.outputs == {"a": {"rows": [1, 2, 3]}, "b": 3}


def test_on_the_hosts_loop_async_runtimes_share_it(runtimes: Any) -> None:
    """Runtime(loop=...) runs coroutines on the host's loop, in its thread: no loop thread of
    wavecrest's is started."""

    async def where(ctx: RuntimeContext) -> Any:
        await ctx.asleep(0.001)
        return [id(asyncio.get_running_loop()), threading.current_thread().name]

    runtimes("transform:t-where", where)

    async def main() -> tuple[Any, int, set[str]]:
        loop = asyncio.get_running_loop()
        async with Runtime(loop=loop) as runtime:
            result = await runtime.run(flow('<transform id="w" type="t-where"/>'))
            return result, id(loop), names()

    result, loop_id, running = asyncio.run(main())
    assert result.status == "completed"
    assert result.outputs["w"] == [loop_id, threading.current_thread().name]
    assert "wavecrest-asyncio" not in running


def test_created_inside_a_loop_a_runtime_still_uses_its_own(runtimes: Any) -> None:
    async def where(ctx: RuntimeContext) -> Any:
        return [id(asyncio.get_running_loop()), threading.current_thread().name]

    runtimes("transform:t-where", where)

    async def main() -> tuple[Any, int]:
        async with Runtime() as runtime:
            return await runtime.run(flow('<transform id="w" type="t-where"/>')), id(
                asyncio.get_running_loop()
            )

    result, host_loop = asyncio.run(main())
    assert result.outputs["w"][0] != host_loop
    assert result.outputs["w"][1] == "wavecrest-asyncio"


# --- awaitable handles --------------------------------------------------------------------


def test_await_a_handle_run_and_async_with() -> None:
    wf = flow('<transform id="a" type="template" template="{{ 6 * 7 }}"/>')

    async def main() -> list[Any]:
        async with Runtime() as runtime:
            handle = runtime.submit(wf)
            awaited = await handle
            ran = await runtime.run(wf, seed=3)
            return [awaited, ran, handle.status]

    awaited, ran, status = asyncio.run(main())
    assert awaited.outputs == ran.outputs == {"a": 42}
    assert ran.seed == 3
    assert status == "completed"


def test_cancelling_the_awaiting_task_leaves_the_run_alone_but_cancels_rt_run(
    runtimes: Any,
) -> None:
    """``await handle`` is a view of the run: cancelling it cancels the waiting only.
    ``await rt.run(...)`` owns its run: cancelling it cancels the run."""

    async def nap(ctx: RuntimeContext) -> Any:
        await ctx.asleep(float(ctx.config["s"]))
        return "rested"

    runtimes("transform:t-nap", nap)

    async def main() -> tuple[Any, Any]:
        async with Runtime() as runtime:
            handle = runtime.submit(flow('<transform id="n" type="t-nap" s="0.2"/>'))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.ensure_future(handle), timeout=0.01)
            kept = await handle
            task = asyncio.ensure_future(
                runtime.run(flow('<transform id="n" type="t-nap" s="30"/>'))
            )
            while not runtime.runs():
                await asyncio.sleep(0.001)
            owned = runtime.runs()[0]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return kept, await owned

    kept, owned = asyncio.run(main())
    assert kept.status == "completed"
    assert owned.status == "cancelled"


def test_submit_async_raises_bad_input_from_the_await(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime() as runtime:
            with pytest.raises(WorkflowError, match="no such file"):
                await runtime.submit_async(tmp_path / "missing.flow.md")
            with pytest.raises(ConfigError, match="invalid mode 'sideways'"):
                await runtime.submit_async(
                    flow('<transform id="a" type="template" template="1"/>'), mode="sideways"
                )

    asyncio.run(main())


def test_submit_async_persists_and_locks_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "w.flow.md"
    path.write_text(
        "---\nname: w\n---\n<workflow>\n"
        '<transform id="a" type="template" template="{{ 1 + 1 }}"/>\n</workflow>\n'
    )

    async def main() -> Any:
        async with Runtime() as runtime:
            return await runtime.run(path, state_dir=tmp_path / "state")

    result = asyncio.run(main())
    assert result.outputs == {"a": 2}
    assert result.snapshot_path is not None
    assert Path(result.snapshot_path).is_file()
    assert not list((tmp_path / "state").rglob("*.lock"))


def test_resume_async_continues_a_run_and_returns_a_completed_one_at_once(
    runtimes: Any, tmp_path: Path
) -> None:
    calls: list[int] = []

    def flaky(ctx: RuntimeContext) -> Any:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise ValueError("first run fails")
        return "ok"

    runtimes("transform:t-flaky", flaky)
    first = run_workflow(flow('<transform id="f" type="t-flaky"/>'), state_dir=tmp_path)
    assert first.status == "failed"

    async def main() -> tuple[Any, Any]:
        async with Runtime() as runtime:
            again = await (await runtime.resume_async(first.run_id, state_dir=tmp_path))
            handle = await runtime.resume_async(first.run_id, state_dir=tmp_path, stream=True)
            assert handle.done()
            assert [e async for e in handle.events()] == []
            return again, await handle

    again, completed = asyncio.run(main())
    assert again.status == completed.status == "completed"
    assert completed.outputs == {"f": "ok"}
    assert calls == [1, 1]


def test_a_closed_runtime_refuses_async_submissions() -> None:
    async def main() -> None:
        runtime = Runtime()
        await runtime.aclose()
        with pytest.raises(RuntimeClosedError):
            await runtime.submit_async(flow('<transform id="a" type="template" template="1"/>'))
        await runtime.aclose()  # closing twice is harmless

    asyncio.run(main())


def test_submitting_200_runs_never_stalls_the_event_loop(tmp_path: Path) -> None:
    """A ticker coroutine measures the loop's lag while 200 persisted runs are submitted
    from workflow files. The bound is generous: 200 runs executing at once keep a few
    hundred threads busy, and their contention for the GIL alone delays the loop by some
    tens of milliseconds on a loaded two-core machine, however the runs were submitted
    (benchmarks/bench_async.py measures it). Reading, parsing, planning, locking and
    starting 200 runs on the loop itself stalls it for 0.3 s and more."""
    files = []
    for i in range(4):
        path = tmp_path / f"w{i}.flow.md"
        path.write_text(
            f"---\nname: w{i}\nconfig:\n  n: {{type: integer, default: {i}}}\n---\n"
            "<workflow>\n"
            + "\n".join(
                f'<transform id="t{j}" type="template" template="{{{{ config.n + {j} }}}}"/>'
                for j in range(5)
            )
            + "\n</workflow>\n"
        )
        files.append(path)
    lags: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - before - 0.001)

    async def main() -> list[Any]:
        stop = asyncio.Event()
        async with Runtime(max_concurrency=8) as runtime:
            tick = asyncio.ensure_future(ticker(stop))
            await asyncio.sleep(0.01)
            handles = await asyncio.gather(
                *(
                    runtime.submit_async(files[i % 4], state_dir=tmp_path / "state")
                    for i in range(200)
                )
            )
            results = [await handle for handle in handles]
            stop.set()
            await tick
        return results

    results = asyncio.run(main())
    assert [r.status for r in results] == ["completed"] * 200
    assert lags
    assert max(lags) < 0.1, f"the event loop stalled for {max(lags) * 1000:.1f} ms"


# --- event streams -------------------------------------------------------------------------


def test_a_streamed_run_yields_its_events_in_order_and_ends_with_the_run() -> None:
    wf = flow(
        '<transform id="a" type="template" template="{{ 1 }}"/>\n'
        '<transform id="b" type="template" input="a" template="{{ input + 1 }}"/>'
    )
    seen: list[RunEvent] = []

    async def main() -> tuple[list[RunEvent], Any]:
        async with Runtime() as runtime:
            handle = await runtime.submit_async(wf, stream=True, on_event=seen.append)
            streamed = [event async for event in handle.events()]
            return streamed, await handle

    streamed, result = asyncio.run(main())
    assert result.status == "completed"
    assert streamed == seen
    assert [e.name for e in streamed] == [
        "run.started",
        "node.started",
        "node.succeeded",
        "node.started",
        "node.succeeded",
        "run.finished",
    ]
    assert [e.path for e in streamed if isinstance(e, NodeStarted)] == ["a", "b"]


def test_a_slow_reader_never_blocks_the_run_and_the_oldest_events_are_dropped(
    runtimes: Any,
) -> None:
    """With a buffer of 5, a reader that starts after the run ended gets the last five events
    (the run's end among them); the rest are counted as dropped."""
    body = "\n".join(f'<transform id="n{i}" type="template" template="{i}"/>' for i in range(20))
    events: list[RunEvent] = []

    async def main() -> tuple[list[RunEvent], Any, int]:
        async with Runtime(event_buffer=5) as runtime:
            handle = runtime.submit(flow(body), stream=True, on_event=events.append)
            result = await handle  # nobody reads meanwhile
            late = [event async for event in handle.events()]
            return late, result, handle.dropped_events

    late, result, dropped = asyncio.run(main())
    assert result.status == "completed"
    assert len(events) == 2 + 2 * 20
    assert late == events[-5:]
    assert isinstance(late[-1], RunFinished)
    assert dropped == len(events) - 5


def test_events_of_a_run_that_does_not_stream_are_refused_and_so_is_a_second_reader() -> None:
    from wavecrest.core import EventsUnavailableError

    wf = flow('<transform id="a" type="template" template="1"/>')

    async def main() -> None:
        async with Runtime() as runtime:
            plain = runtime.submit(wf)
            with pytest.raises(EventsUnavailableError, match="submit it with stream=True"):
                plain.events()
            streamed = runtime.submit(wf, stream=True)
            reader = streamed.events()
            first = await anext(reader)
            with pytest.raises(EventsUnavailableError, match="already being read"):
                streamed.events()
            rest = [event async for event in reader]
            assert first.name == "run.started"
            assert rest[-1].name == "run.finished"
            await plain
            await streamed

    asyncio.run(main())


# --- callbacks that fail ------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def library_records() -> Iterator[Records]:
    """Records of the ``wavecrest`` logger itself (not its children)."""
    handler = Records()
    handler.addFilter(lambda record: record.name == "wavecrest")
    logger = logging.getLogger("wavecrest")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_raising_callback_is_logged_once_and_counted_in_the_result(
    library_records: Records,
) -> None:
    wf = flow(
        '<transform id="a" type="template" template="1"/>\n'
        '<transform id="b" type="template" input="a" template="2"/>'
    )
    calls: list[str] = []

    def broken(event: RunEvent) -> None:
        calls.append(event.name)
        raise RuntimeError("callback bug")

    with Runtime() as runtime:
        result = runtime.submit(wf, on_event=broken).result(timeout=30)
    assert result.status == "completed"
    assert result.outputs == {"a": "1", "b": "2"}
    assert result.callback_errors == len(calls) == 6
    failures = [r for r in library_records.records if r.wavecrest["event"] == "callback.failed"]  # type: ignore[attr-defined]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert failures[0].exc_info is not None
    assert "callback bug" in str(failures[0].exc_info[1])


def test_failures_of_subscribers_count_in_each_run_they_saw(library_records: Records) -> None:
    wf = flow('<transform id="a" type="template" template="1"/>')

    def on_finish(event: RunEvent) -> None:
        if isinstance(event, RunFinished):
            raise ValueError("subscriber bug")

    with Runtime(on_event=on_finish) as runtime:
        first = runtime.submit(wf).result(timeout=30)
        second = runtime.submit(wf).result(timeout=30)
    assert first.callback_errors == second.callback_errors == 1
    assert len([r for r in library_records.records if r.getMessage().startswith("callback")]) == 2


def test_a_slow_callback_delays_the_result_by_its_grace_at_most() -> None:
    """A callback stuck on an event never holds the run up; its result goes out with the
    count so far once the callback grace (1 s) is over."""
    from wavecrest.actors._supervisor import CALLBACK_GRACE

    gate = threading.Event()

    def slow(event: RunEvent) -> None:
        gate.wait(30)

    with Runtime() as runtime:
        started = time.monotonic()
        handle = runtime.submit(
            flow('<transform id="x" type="template" template="1"/>'), on_event=slow
        )
        result = handle.result(timeout=20)
        waited = time.monotonic() - started
        gate.set()
    assert result.status == "completed"
    assert result.duration is not None
    assert result.duration < CALLBACK_GRACE
    assert waited < CALLBACK_GRACE + 15


# --- the parts ------------------------------------------------------------------------------


def test_a_runtimes_options_are_checked() -> None:
    with pytest.raises(TypeError, match="loop must be an asyncio event loop, got 'mine'"):
        Runtime(loop="mine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="event_buffer must be an integer >= 1, got 0"):
        Runtime(event_buffer=0)
