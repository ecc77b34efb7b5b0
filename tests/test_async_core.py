"""``async def`` runtimes in the pure core: the registry, execute_task, and the simulator."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.core import (
    NeverCancelled,
    NodeCancelledError,
    RuntimeContext,
    Simulation,
    TaskCall,
    TransientError,
    execute_task,
    get_runtime,
    parse_workflow,
    prepare_task,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._events import StartTask, TaskCancelled, TaskFailed, TaskSucceeded
from wavecrest.core._faults import Fault
from wavecrest.core._model import FrozenDict, TaskNode
from wavecrest.core._vtime import VirtualStall, run_in_virtual_time


class Flag:
    """A cancel signal set by hand; ``wait`` never blocks (these tests never need it to)."""

    def __init__(self) -> None:
        self.set_ = False

    def set(self) -> None:
        self.set_ = True

    def is_set(self) -> bool:
        return self.set_

    def wait(self, timeout: float | None = None) -> bool:
        return self.set_


@pytest.fixture
def keys() -> Iterator[list[str]]:
    """Runtime keys registered by a test; unregistered afterwards."""
    added: list[str] = []
    yield added
    for key in added:
        unregister_runtime(key)


def register(keys: list[str], key: str, func: Any) -> None:
    register_runtime(key, func, replace=True)
    keys.append(key)


def start_of(key: str, *, fault: Any = None, config: dict[str, Any] | None = None) -> StartTask:
    kind, type_ = key.split(":")
    node = TaskNode(id="n", kind=kind, type=type_, config=FrozenDict(config or {}))  # type: ignore[arg-type]
    return StartTask(7, "n", 1, node, "in", None, fault)


def test_the_registry_records_which_runtimes_are_coroutine_functions(keys: list[str]) -> None:
    """async def functions, partials of them and objects with an async __call__ are async;
    plain functions and the built-ins are not."""

    async def coro(ctx: RuntimeContext, extra: int = 0) -> int:
        return extra

    class Callable:
        async def __call__(self, ctx: RuntimeContext) -> int:
            return 1

    register(keys, "transform:t-coro", coro)
    register(keys, "transform:t-partial", functools.partial(coro, extra=2))
    register(keys, "transform:t-object", Callable())
    register(keys, "transform:t-plain", lambda ctx: 1)
    assert get_runtime("transform:t-coro").is_async
    assert get_runtime("transform:t-partial").is_async
    assert get_runtime("transform:t-object").is_async
    assert not get_runtime("transform:t-plain").is_async
    assert not get_runtime("transform:template").is_async


def test_execute_task_awaits_an_async_runtime_on_a_loop_of_its_own(keys: list[str]) -> None:
    """Without an event loop of the executor's, execute_task runs the coroutine to completion."""

    async def double(ctx: RuntimeContext) -> Any:
        await ctx.asleep(0.001)
        return [ctx.input, ctx.input]

    register(keys, "transform:t-double", double)
    outcome = execute_task(start_of("transform:t-double"), cancel=NeverCancelled())
    assert outcome == TaskSucceeded(7, ["in", "in"], None)


def test_an_async_runtimes_exception_is_classified_like_a_plain_ones(keys: list[str]) -> None:
    async def flaky(ctx: RuntimeContext) -> Any:
        await asyncio.sleep(0)
        raise TransientError("try again")

    register(keys, "transform:t-flaky", flaky)
    outcome = execute_task(start_of("transform:t-flaky"), cancel=NeverCancelled())
    assert isinstance(outcome, TaskFailed)
    assert outcome.error.type == "TransientError"
    assert outcome.error.retryable
    assert "raise TransientError" in outcome.error.traceback


def test_cancelling_the_attempt_raises_cancelled_error_inside_the_coroutine(
    keys: list[str],
) -> None:
    """Once the cancel signal is set the private loop cancels the coroutine; the runtime sees
    asyncio.CancelledError where it awaits, and the attempt is reported cancelled."""
    seen: list[str] = []
    cancel = Flag()

    async def patient(ctx: RuntimeContext) -> Any:
        cancel.set()  # as if the attempt timed out while this runtime waits
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "never"

    register(keys, "transform:t-patient", patient)
    outcome = execute_task(start_of("transform:t-patient"), cancel=cancel)
    assert outcome == TaskCancelled(7)
    assert seen == ["cancelled"]


def test_a_cancelled_error_nobody_asked_for_is_a_failure(keys: list[str]) -> None:
    async def confused(ctx: RuntimeContext) -> Any:
        raise asyncio.CancelledError

    register(keys, "transform:t-confused", confused)
    outcome = execute_task(start_of("transform:t-confused"), cancel=NeverCancelled())
    assert isinstance(outcome, TaskFailed)
    assert outcome.error.type == "CancelledError"


def test_a_plain_runtime_returning_a_coroutine_fails_and_the_coroutine_is_closed(
    keys: list[str],
) -> None:
    """No 'coroutine was never awaited' warning (warnings are errors here): the attempt fails
    with a message saying how to register it."""

    async def body() -> int:
        return 1

    register(keys, "transform:t-returns-coro", lambda ctx: body())
    outcome = execute_task(start_of("transform:t-returns-coro"), cancel=NeverCancelled())
    assert isinstance(outcome, TaskFailed)
    assert outcome.error.type == "TypeError"
    assert "'async def'" in outcome.error.message


def test_prepare_task_gives_the_call_or_the_outcome_a_fault_decided(keys: list[str]) -> None:
    async def fine(ctx: RuntimeContext) -> Any:
        return ctx.config["greeting"]

    register(keys, "transform:t-fine", fine)
    call = prepare_task(
        start_of("transform:t-fine", config={"greeting": "hi"}), cancel=NeverCancelled()
    )
    assert isinstance(call, TaskCall)
    assert call.is_async
    assert asyncio.run(call.run_async()) == TaskSucceeded(7, "hi", None)
    raised = prepare_task(
        start_of("transform:t-fine", fault=Fault("raise", rule=0)),
        cancel=NeverCancelled(),
    )
    assert isinstance(raised, TaskFailed)
    assert raised.error.type == "InjectedFault"


def test_asleep_on_a_cancelled_attempt_raises_node_cancelled() -> None:
    cancel = Flag()
    cancel.set()
    ctx = RuntimeContext(node_id="n", cancel=cancel)
    with pytest.raises(NodeCancelledError, match="'n' was cancelled"):
        asyncio.run(ctx.asleep(10))


# --- virtual time ---------------------------------------------------------------------


def test_a_coroutine_in_virtual_time_takes_no_real_time_and_reports_its_virtual_time() -> None:
    async def work() -> list[int]:
        await asyncio.sleep(3600)
        first = asyncio.create_task(asyncio.sleep(2, result=1))
        second = await asyncio.wait_for(asyncio.sleep(1, result=2), timeout=5)
        return [await first, second]

    result, took = run_in_virtual_time(work())
    assert result == [1, 2]
    assert took == pytest.approx(3602)


def test_waiting_for_anything_but_time_stalls_the_virtual_loop() -> None:
    unwound: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            unwound.append("finally")

    with pytest.raises(VirtualStall):
        run_in_virtual_time(forever())
    assert unwound == ["finally"]


FLOW = """---
name: async-sim
---
<workflow>
  <transform id="a" type="t-fetch" pause="1.5"/>
  <parallel id="p">
    <branch><transform id="b" type="t-fetch" input="a" pause="0.25"/></branch>
    <branch><transform id="c" type="t-fetch" input="a" pause="0.5"/></branch>
  </parallel>
  <transform id="d" type="t-fetch" input="p" pause="2">
    <on-error><retry max="3" base="100ms" when="always"/></on-error>
  </transform>
</workflow>
"""


async def fetch(ctx: RuntimeContext) -> Any:
    """Awaits ctx.asleep and a gather of sleeps; fails its first attempt at node d."""
    await ctx.asleep(float(ctx.config["pause"]))
    parts = await asyncio.gather(*(asyncio.sleep(0.01 * i, result=i) for i in range(3)))
    if ctx.node_id == "d" and ctx.attempt == 1:
        raise TransientError("first try fails")
    return {"node": ctx.node_id, "input": ctx.input, "parts": parts}


@pytest.fixture
def fetch_runtime(keys: list[str]) -> None:
    register(keys, "transform:t-fetch", fetch)


@pytest.mark.usefixtures("fetch_runtime")
def test_a_simulated_async_runtime_awaits_in_virtual_time() -> None:
    """Each attempt's virtual duration includes what its coroutine awaited."""
    sim = Simulation(parse_workflow(FLOW), seed=5, duration=lambda _start: 0.0)
    result = sim.run()
    assert result.status == "completed", result.errors
    assert result.outputs["d"]["parts"] == [0, 1, 2]
    assert result.nodes["d"].attempts == 2
    # a (1.5 + 0.02) then c, the longer branch (0.5 + 0.02), then two attempts of d.
    assert sim.clock.monotonic() >= 1.52 + 0.52 + 2 * 2.02
    assert result.nodes["a"].duration == pytest.approx(1.52)


@pytest.mark.usefixtures("fetch_runtime")
@settings(max_examples=examples(10))
@given(seed=st.integers(0, 2**32 - 1))
def test_a_simulated_run_of_async_runtimes_is_deterministic(seed: int) -> None:
    """The same seed gives the same trace, events and result; the virtual loop adds no
    nondeterminism of its own."""
    runs = [Simulation(parse_workflow(FLOW), seed=seed) for _ in range(2)]
    results = [sim.run() for sim in runs]
    assert runs[0].trace == runs[1].trace
    assert runs[0].events == runs[1].events
    assert results[0] == results[1]
    assert results[0].status == "completed"


def test_a_simulated_async_runtime_waiting_on_io_hangs_until_its_timeout(
    keys: list[str],
) -> None:
    """Waiting on what no timer brings is a hang in a simulation: the node's timeout cancels
    it, and the retry that follows succeeds."""

    async def stuck_once(ctx: RuntimeContext) -> Any:
        if ctx.attempt == 1:
            await asyncio.get_running_loop().create_future()
        return "second time lucky"

    register(keys, "transform:t-stuck", stuck_once)
    wf = parse_workflow(
        "---\nname: stuck\n---\n<workflow>\n"
        '<transform id="s" type="t-stuck" timeout="2s">'
        '<on-error><retry max="1" base="10ms"/></on-error></transform>\n'
        "</workflow>\n"
    )
    result = Simulation(wf, seed=1).run()
    assert result.status == "completed"
    assert result.outputs == {"s": "second time lucky"}
    assert result.nodes["s"].attempts == 2


RACE = """
import threading
from wavecrest.core import WorkflowError, parse_workflow

TEXT = "---\\nname: r\\n---\\n<workflow><transform id='a' type='template' template='1'/></workflow>"
barrier = threading.Barrier(8)
failures = []

def parse():
    barrier.wait()
    try:
        parse_workflow(TEXT)
    except WorkflowError as exc:
        failures.append(str(exc))

threads = [threading.Thread(target=parse) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(failures), failures[:1])
"""


@pytest.mark.slow
def test_threads_that_look_up_runtimes_first_all_find_the_built_ins() -> None:
    """In a fresh interpreter, eight threads parse at once: each sees the built-in runtimes
    (they are registered before the registry says they are loaded)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "0 []\n"
