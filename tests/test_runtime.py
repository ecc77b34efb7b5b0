"""The actor runtime end to end: run_workflow, Runtime, supervision through real actors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pykka import ActorRegistry
from wavecrest.actors import Runtime, run_workflow
from wavecrest.core import (
    NodeStarted,
    RunEvent,
    RunFinished,
    RuntimeClosedError,
    RuntimeContext,
    TransientError,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)

pytestmark = pytest.mark.usefixtures("no_new_threads")


def flow(body: str, front: str = "") -> Any:
    return parse_workflow(f"---\nname: test\n{front}---\n<workflow>\n{body}\n</workflow>\n")


@pytest.fixture
def runtimes() -> Iterator[dict[str, Any]]:
    """Register test runtimes by key; they are removed afterwards."""
    registered: dict[str, Any] = {}

    def add(key: str, func: Any) -> None:
        register_runtime(key, func, replace=True)
        registered[key] = func

    yield {"add": add}
    for key in registered:
        unregister_runtime(key)


class Gauge:
    """Counts how many runtimes run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __call__(self, ctx: RuntimeContext) -> Any:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            ctx.sleep(0.002)  # simulated work, so that attempts overlap
            return ctx.input
        finally:
            with self.lock:
                self.now -= 1


def test_a_workflow_runs_and_returns_its_outputs() -> None:
    """run_workflow returns completed status and every node's output; nothing is left running."""
    wf = flow(
        '<transform id="a" type="template" template="{{ [1, 2, 3] }}"/>\n'
        '<transform id="b" type="map" input="a" expression="item * 2"/>\n'
        '<transform id="c" type="reduce" input="b" expression="acc + item" initial="0"/>'
    )
    result = run_workflow(wf)
    assert result.status == "completed"
    assert result.outputs == {"a": [1, 2, 3], "b": [2, 4, 6], "c": 12}
    assert result.errors == ()
    assert result.run_id
    assert ActorRegistry.get_all() == []


def test_an_exception_in_a_runtime_is_a_node_failure(runtimes: dict[str, Any]) -> None:
    """A runtime raising fails its node with type, message and traceback; the run reports it."""

    def boom(ctx: RuntimeContext) -> None:
        raise ValueError("bad row 7")

    runtimes["add"]("transform:boom", boom)
    wf = flow(
        '<transform id="x" type="boom"/>\n'
        '<transform id="y" type="template" input="x" template="{{ input }}"/>'
    )
    result = run_workflow(wf)
    assert result.status == "failed"
    [error] = result.errors
    assert (error.node, error.type, error.message) == ("x", "ValueError", "bad row 7")
    assert "raise ValueError" in error.traceback
    assert "y" not in result.outputs


def test_running_task_nodes_never_exceed_max_concurrency(runtimes: dict[str, Any]) -> None:
    """With 30 independent nodes and a cap of 3, at most 3 run at once."""
    gauge = Gauge()
    runtimes["add"]("transform:gauge", gauge)
    wf = flow("\n".join(f'<transform id="n{i}" type="gauge"/>' for i in range(30)))
    result = run_workflow(wf, max_concurrency=3)
    assert result.status == "completed"
    assert 1 <= gauge.peak <= 3


def test_nested_control_flow_never_deadlocks_at_concurrency_one(runtimes: dict[str, Any]) -> None:
    """Control nodes hold no permit, so foreach in parallel in foreach completes with one permit."""
    runtimes["add"]("transform:gauge", Gauge())
    wf = flow(
        """
<foreach id="outer" collection="[1, 2]">
  <parallel id="par">
    <branch name="a">
      <foreach id="inner" collection="[item, item * 10]">
        <transform id="leaf" type="gauge"/>
      </foreach>
    </branch>
    <branch name="b"><transform id="other" type="template" template="{{ item }}"/></branch>
  </parallel>
</foreach>"""
    )
    result = run_workflow(wf, max_concurrency=1)
    assert result.status == "completed"
    assert result.outputs["outer"] == [[[1, 10], 1], [[2, 20], 2]]


def test_a_crashed_node_actor_is_retried_and_its_permit_released(runtimes: dict[str, Any]) -> None:
    """A crash fault kills the node actor without a reply; the attempt counts as transient."""
    wf = flow(
        '<transform id="x" type="template" template="ok">'
        '<on-error><retry max="2" base="1ms"/></on-error></transform>'
    )
    faults = {"rules": [{"node": "x", "attempts": [1], "crash": True}]}
    with Runtime(max_concurrency=1) as runtime:
        result = runtime.submit(wf, faults=faults, seed=1).result(timeout=30)
        assert runtime.statistics().held == 0
    assert result.status == "completed"
    assert result.nodes["x"].attempts == 2


def test_a_crash_without_retry_fails_the_run_with_node_crashed(runtimes: dict[str, Any]) -> None:
    wf = flow('<transform id="x" type="template" template="ok"/>')
    result = run_workflow(wf, faults={"rules": [{"crash": True}]}, seed=3)
    assert result.status == "failed"
    assert [e.type for e in result.errors] == ["NodeCrashedError"]


def test_an_attempt_that_ignores_cancellation_is_abandoned(runtimes: dict[str, Any]) -> None:
    """A timed-out runtime that never looks at cancellation is abandoned after the grace period."""
    release = threading.Event()

    def stubborn(ctx: RuntimeContext) -> str:
        release.wait(30)  # ignores ctx.cancelled() on purpose
        return "late"

    runtimes["add"]("transform:stubborn", stubborn)
    wf = flow('<transform id="x" type="stubborn" timeout="50ms"/>', "runtime: {grace: 50ms}\n")
    runtime = Runtime()
    try:
        result = runtime.submit(wf).result(timeout=30)
        runtime.close()
        # The abandoned thread is the one left over; once released it ends.
        assert len(runtime.leftover_threads) == 1
    finally:
        release.set()
        runtime.close()
        for thread in runtime.leftover_threads:
            thread.join(10)
    assert result.status == "failed"
    assert result.abandoned == 1
    [error] = result.errors
    assert error.type == "NodeTimeoutError"
    assert "abandoned" in error.message


def test_a_hanging_node_is_cancelled_by_its_timeout_then_retried() -> None:
    """hang: true waits until cancelled; the attempt timeout cancels it and a retry succeeds."""
    wf = flow(
        '<transform id="x" type="template" template="ok" timeout="50ms">'
        '<on-error><retry max="1" base="1ms"/></on-error></transform>'
    )
    faults = {"rules": [{"node": "x", "attempts": [1], "hang": True}]}
    result = run_workflow(wf, faults=faults, seed=5)
    assert result.status == "completed"
    assert result.nodes["x"].attempts == 2


def test_fail_fast_cancels_in_flight_nodes(runtimes: dict[str, Any]) -> None:
    """The first final failure cancels running nodes, reported as cancelled, not failed."""
    started = threading.Event()

    def waits(ctx: RuntimeContext) -> None:
        started.set()
        ctx.sleep(30)

    def fails(ctx: RuntimeContext) -> None:
        assert started.wait(10)
        raise RuntimeError("no")

    runtimes["add"]("transform:waits", waits)
    runtimes["add"]("transform:fails", fails)
    wf = flow('<transform id="slow" type="waits"/>\n<transform id="bad" type="fails"/>')
    result = run_workflow(wf, max_concurrency=2)
    assert result.status == "failed"
    assert [e.node for e in result.errors] == ["bad"]
    assert result.nodes["slow"].status == "cancelled"


def test_keep_going_runs_what_does_not_depend_on_the_failure(runtimes: dict[str, Any]) -> None:
    runtimes["add"]("transform:boom", lambda ctx: 1 / 0)
    wf = flow(
        '<transform id="bad" type="boom"/>\n'
        '<transform id="after" type="template" input="bad" template="x"/>\n'
        '<transform id="other" type="template" template="fine"/>'
    )
    result = run_workflow(wf, keep_going=True)
    assert result.status == "failed"
    assert result.outputs == {"other": "fine"}
    assert result.nodes["after"].status == "skipped"


def test_a_whole_run_timeout_cancels_cleanly(runtimes: dict[str, Any]) -> None:
    runtimes["add"]("transform:waits", lambda ctx: ctx.sleep(30))
    result = run_workflow(flow('<transform id="x" type="waits"/>'), timeout="50ms")
    assert result.status == "cancelled"
    assert result.reason == "run exceeded its timeout of 50ms"
    assert result.nodes["x"].status == "cancelled"


# --- Runtime --------------------------------------------------------------------------


def test_submit_does_not_block_and_cancel_cancels(runtimes: dict[str, Any]) -> None:
    """submit returns at once; cancel() stops the run and its status becomes cancelled."""
    started = threading.Event()

    def waits(ctx: RuntimeContext) -> None:
        started.set()
        ctx.sleep(30)

    runtimes["add"]("transform:waits", waits)
    with Runtime() as runtime:
        handle = runtime.submit(flow('<transform id="x" type="waits"/>'))
        assert started.wait(10)
        assert handle.status == "running"
        handle.cancel()
        result = handle.result(timeout=30)
    assert result.status == "cancelled"
    assert handle.status == "cancelled"


def test_the_future_works_with_asyncio() -> None:
    wf = flow('<transform id="x" type="template" template="hi"/>')

    async def main(runtime: Runtime) -> Any:
        return await asyncio.wrap_future(runtime.submit(wf).future)

    with Runtime() as runtime:
        result = asyncio.run(main(runtime))
    assert result.outputs == {"x": "hi"}


def test_one_failing_run_does_not_affect_another(runtimes: dict[str, Any]) -> None:
    runtimes["add"]("transform:boom", lambda ctx: 1 / 0)
    with Runtime(max_concurrency=2) as runtime:
        bad = runtime.submit(flow('<transform id="x" type="boom"/>'))
        good = runtime.submit(flow('<transform id="x" type="template" template="ok"/>'))
        assert bad.result(timeout=30).status == "failed"
        assert good.result(timeout=30).outputs == {"x": "ok"}


def test_a_closed_runtime_refuses_work_and_closing_twice_is_harmless() -> None:
    runtime = Runtime()
    runtime.close()
    runtime.close()
    with pytest.raises(RuntimeClosedError, match="this Runtime is closed"):
        runtime.submit(flow('<transform id="x" type="template" template="hi"/>'))


def test_closing_cancels_runs_and_close_wait_drains_them(runtimes: dict[str, Any]) -> None:
    started = threading.Event()

    def waits(ctx: RuntimeContext) -> None:
        started.set()
        ctx.sleep(30)

    runtimes["add"]("transform:waits", waits)
    runtime = Runtime()
    handle = runtime.submit(flow('<transform id="x" type="waits"/>'))
    assert started.wait(10)
    runtime.close()
    assert handle.result(timeout=0).status == "cancelled"

    runtime = Runtime()
    quick = runtime.submit(flow('<transform id="x" type="template" template="done"/>'))
    runtime.close(wait=True)
    assert quick.result(timeout=0).status == "completed"


def test_events_arrive_in_order_and_a_failing_callback_breaks_nothing() -> None:
    """Per-run callbacks get frozen events in order; one that raises does not stop the run."""
    seen: list[RunEvent] = []

    def callback(event: RunEvent) -> None:
        seen.append(event)
        raise RuntimeError("callback bug")

    wf = flow(
        '<transform id="a" type="template" template="1"/>\n'
        '<transform id="b" type="template" input="a" template="2"/>'
    )
    with Runtime() as runtime:
        result = runtime.submit(wf, on_event=callback).result(timeout=30)
    assert result.status == "completed"
    names = [e.name for e in seen]
    assert names[0] == "run.started"
    assert names[-1] == "run.finished"
    assert names.index("node.started") < names.index("node.succeeded")
    started = [e.path for e in seen if isinstance(e, NodeStarted)]
    assert started == ["a", "b"]
    assert isinstance(seen[-1], RunFinished)
    assert seen[-1].status == "completed"
    with pytest.raises(AttributeError):
        seen[0].run_id = "changed"  # type: ignore[misc]


def test_a_slow_callback_never_blocks_the_run() -> None:
    """The run finishes while its event callback is still blocked."""
    gate = threading.Event()

    def slow(event: RunEvent) -> None:
        gate.wait(30)

    with Runtime() as runtime:
        handle = runtime.submit(
            flow('<transform id="x" type="template" template="1"/>'), on_event=slow
        )
        result = handle.result(timeout=30)
        assert result.status == "completed"
        gate.set()


def test_runtime_wide_subscription_sees_every_run() -> None:
    seen: list[tuple[str, str]] = []
    with Runtime() as runtime:
        unsubscribe = runtime.subscribe(lambda e: seen.append((e.run_id, e.name)))
        first = runtime.submit(flow('<transform id="x" type="template" template="1"/>'))
        second = runtime.submit(flow('<transform id="x" type="template" template="2"/>'))
        first.result(timeout=30)
        second.result(timeout=30)
    unsubscribe()
    for handle in (first, second):
        assert (handle.run_id, "run.finished") in seen


def test_transient_errors_are_retried_through_the_supervisor(runtimes: dict[str, Any]) -> None:
    calls = []

    def flaky(ctx: RuntimeContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise TransientError("try again")
        return "third time"

    runtimes["add"]("transform:flaky", flaky)
    wf = flow(
        '<transform id="x" type="flaky">'
        '<on-error><retry max="3" base="1ms"/></on-error></transform>'
    )
    result = run_workflow(wf)
    assert result.outputs == {"x": "third time"}
    assert calls == [1, 2, 3]


def test_a_backoff_blocks_nothing_and_cancelling_ends_it(runtimes: dict[str, Any]) -> None:
    """A node waiting 30 s to retry holds no permit: the others finish; cancel ends the wait."""
    failed_once = threading.Event()

    def fails(ctx: RuntimeContext) -> None:
        failed_once.set()
        raise TransientError("later")

    runtimes["add"]("transform:fails", fails)
    done: list[str] = []
    wf = flow(
        '<transform id="retrying" type="fails">'
        '<on-error><retry max="5" base="30s" backoff="fixed"/></on-error></transform>\n'
        + "\n".join(f'<transform id="n{i}" type="template" template="{i}"/>' for i in range(5))
    )
    all_done = threading.Event()

    def on_event(event: RunEvent) -> None:
        if event.name == "node.succeeded":
            done.append(event.path)  # type: ignore[attr-defined]
            if len(done) == 5:
                all_done.set()

    with Runtime(max_concurrency=1) as runtime:
        handle = runtime.submit(wf, on_event=on_event)
        assert failed_once.wait(10)
        assert all_done.wait(10), done
        handle.cancel()
        result = handle.result(timeout=10)
    assert result.status == "cancelled"
    assert result.nodes["retrying"].status == "cancelled"
    assert sorted(done) == [f"n{i}" for i in range(5)]


@pytest.mark.parametrize(("approve", "status"), [(True, "completed"), (False, "failed")])
def test_a_waiting_checkpoint_is_decided_from_python(approve: bool, status: str) -> None:
    """A checkpoint with a timeout waits for handle.approve() / reject() instead of pausing."""
    waiting = threading.Event()
    wf = flow(
        '<transform id="draft" type="template" template="v1"/>\n'
        '<checkpoint id="ok" input="draft" prompt="publish {{ input }}?" timeout="30s"/>\n'
        '<transform id="publish" type="template" input="ok" template="published {{ input }}"/>'
    )

    def on_event(event: RunEvent) -> None:
        if event.name == "checkpoint.waiting":
            assert event.prompt == "publish v1?"  # type: ignore[attr-defined]
            waiting.set()

    with Runtime() as runtime:
        handle = runtime.submit(wf, on_event=on_event)
        assert waiting.wait(10)
        if approve:
            handle.approve()
        else:
            handle.reject("ok")
        result = handle.result(timeout=10)
    assert result.status == status
    if approve:
        assert result.outputs["publish"] == "published v1"
    else:
        assert [e.type for e in result.errors] == ["CheckpointRejectedError"]
