"""check_trace: every invariant is caught when broken, and real runs keep them all.

Bad traces are made by hand, or by cutting one entry out of a real
simulation's trace; each test shows that its invariant is reported (and,
where the trace can break it alone, that it is the only one). Real actor runs
— their ``on_event`` events and their persisted logs — must pass.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from wavecrest.actors import Runtime, resume_workflow, run_workflow
from wavecrest.core import (
    NodeFailed,
    NodeResult,
    NodeRetrying,
    NodeStarted,
    NodeSucceeded,
    RunEvent,
    RunFinished,
    RunStarted,
    Workflow,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._events import (
    Emit,
    ErrorInfo,
    Finished,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    StartTask,
    TaskSucceeded,
    TimerFired,
)
from wavecrest.core._model import TaskNode
from wavecrest.core.testing import (
    INVARIANTS,
    InvariantViolation,
    check_trace,
    find_violations,
    simulate,
)


def flow(body: str, runtime: str = "") -> Workflow:
    head = f"---\nname: trace\n{runtime}---\n"
    return parse_workflow(f"{head}<workflow>\n{textwrap.dedent(body).strip()}\n</workflow>\n")


def names(trace: Any, workflow: Any = None, cap: int | None = None, **kw: Any) -> set[str]:
    return {v.invariant for v in find_violations(trace, workflow, cap, **kw)}


CHAIN = flow(
    """
    <transform id="a" type="template" template="{{ 1 }}"/>
    <transform id="b" type="template" input="a" template="{{ input + 1 }}"/>
    """
)
ONE = flow('<transform id="a" type="template" template="x"/>')


def _task(workflow: Workflow, node_id: str) -> TaskNode:
    node = workflow.node(node_id)
    assert isinstance(node, TaskNode)
    return node


def _emit(event: type[RunEvent], **fields: Any) -> Emit:
    return Emit(event(run_id="r", at=0.0, **fields))


def succeeded(path: str, **fields: Any) -> NodeSucceeded:
    return NodeSucceeded(
        run_id="r",
        at=0.0,
        path=path,
        node=path,
        attempt=1,
        result=NodeResult(path, "succeeded"),
        **fields,
    )


def started(path: str, attempt: int = 1, **fields: Any) -> NodeStarted:
    return NodeStarted(run_id="r", at=0.0, path=path, node=path, attempt=attempt, **fields)


def retrying(path: str, attempt: int = 1) -> NodeRetrying:
    error = ErrorInfo("TransientError", "flaky", retryable=True)
    return NodeRetrying(
        run_id="r", at=0.0, path=path, node=path, attempt=attempt, delay=0.1, error=error
    )


BEGIN = RunStarted(run_id="r", at=0.0, workflow="trace", seed=0)
END = RunFinished(run_id="r", at=0.0, status="completed")


def one_task_trace(*, release: bool = True, outcome: bool = True) -> list[object]:
    """A hand-made simulation trace of ONE: a permit requested and granted, ``a`` runs."""
    trace: list[object] = [
        RequestPermits(1),
        PermitsGranted(1),
        StartTask(1, "a", 1, _task(ONE, "a"), None),
    ]
    if outcome:
        trace.append(TaskSucceeded(1, "x"))
    if release:
        trace.append(ReleasePermits(1))
    trace += [
        _emit(NodeSucceeded, path="a", node="a", attempt=1, result=NodeResult("a", "succeeded")),
        Finished("completed"),
    ]
    return trace


def test_the_hand_made_trace_keeps_every_invariant() -> None:
    """The baseline the single-invariant traces below are cut from."""
    check_trace(one_task_trace(), ONE, 1)


def test_every_invariant_is_documented() -> None:
    assert set(INVARIANTS) == {
        "dependencies",
        "waves",
        "concurrency",
        "permits",
        "fifo",
        "released",
        "ended",
        "attempts",
        "fallback",
        "fail-fast",
        "resume",
    }


# --- one test per invariant -----------------------------------------------------------


def test_dependencies_a_node_started_before_its_dependency_succeeded() -> None:
    sim = simulate(CHAIN, seed=1)
    check_trace(sim)
    success_of_a = next(
        i
        for i, item in enumerate(sim.trace)
        if isinstance(item, Emit)
        and isinstance(item.event, NodeSucceeded)
        and item.event.path == "a"
    )
    cut = sim.trace[:success_of_a] + sim.trace[success_of_a + 1 :]
    assert names(cut, CHAIN) == {"dependencies"}
    with pytest.raises(InvariantViolation, match=r"'b' started before its dependency 'a'"):
        check_trace(cut, CHAIN)


def test_waves_a_later_wave_started_before_an_earlier_one_settled() -> None:
    workflow = flow(
        """
        <transform id="a" type="template" template="1"/>
        <transform id="b" type="template" template="2"/>
        <transform id="c" type="template" input="a" template="3"/>
        """
    )
    sim = simulate(workflow, mode="waves", durations={"b": 5.0, "*": 0.1})
    check_trace(sim)
    settled_b = next(
        i
        for i, item in enumerate(sim.trace)
        if isinstance(item, Emit)
        and isinstance(item.event, NodeSucceeded)
        and item.event.path == "b"
    )
    cut = sim.trace[:settled_b] + sim.trace[settled_b + 1 :]
    assert names(cut, workflow, mode="waves") == {"waves"}
    assert names(cut, workflow, mode="eager") == set()


def test_concurrency_more_attempts_ran_than_the_cap() -> None:
    events = [BEGIN, started("a", running=1), started("b", running=2), started("c", running=3)]
    workflow = flow(
        """
        <transform id="a" type="template" template="1"/>
        <transform id="b" type="template" template="2"/>
        <transform id="c" type="template" template="3"/>
        """
    )
    assert names(events, workflow, 3) == set()
    assert names(events, workflow, 2) == {"concurrency"}
    sim = simulate(workflow, max_concurrency=3, durations={"*": 1.0})
    assert sim.max_running == 3
    assert "concurrency" in names(sim, None, 2)


def test_permits_the_running_count_disagrees_with_the_attempts_in_flight() -> None:
    workflow = flow(
        """
        <transform id="a" type="template" template="1"/>
        <transform id="b" type="template" template="2"/>
        """
    )
    good = [
        BEGIN,
        started("a", running=1),
        started("b", running=2),
        succeeded("a"),
        succeeded("b"),
        END,
    ]
    assert names(good, workflow, 2) == set()
    # 'a' was still running when 'b' started (it ends later, by its success): 2, not 1.
    bad = [
        BEGIN,
        started("a", running=1),
        started("b", running=1),
        succeeded("a"),
        succeeded("b"),
        END,
    ]
    assert names(bad, workflow, 2) == {"permits"}
    # In a simulation: a permit never given back is held by no running attempt.
    sim = simulate(CHAIN)
    release = next(i for i, item in enumerate(sim.trace) if isinstance(item, ReleasePermits))
    assert "permits" in names(sim.trace[:release] + sim.trace[release + 1 :], CHAIN, 8)


def test_fifo_a_free_permit_was_left_while_a_request_waited() -> None:
    late = [RequestPermits(1), TimerFired(1), *one_task_trace()[1:]]
    assert names(late, ONE, 1) == {"fifo"}
    with pytest.raises(InvariantViolation, match=r"free for a waiting request but not granted"):
        check_trace(late, ONE, 1)


def test_fifo_a_grant_nobody_asked_for() -> None:
    trace = one_task_trace()
    unasked = [trace[0], PermitsGranted(1), *trace[1:]]
    assert "fifo" in names(unasked, ONE, 2)


def test_released_a_permit_still_held_after_the_run_ended() -> None:
    assert names(one_task_trace(release=False), ONE, 1) == {"released"}


def test_ended_an_attempt_that_never_ended() -> None:
    assert names(one_task_trace(outcome=False), ONE, 1) == {"ended"}
    events = [BEGIN, started("a", running=1), END]
    assert names(events, ONE, 1) == {"ended"}


def test_attempts_numbered_out_of_order_or_beyond_the_retries() -> None:
    retried = flow(
        """
        <transform id="a" type="template" template="1">
          <on-error><retry max="1"/></on-error>
        </transform>
        """
    )
    skipped_one = [BEGIN, started("a", 2, running=1), succeeded("a"), END]
    assert names(skipped_one, retried, 1) == {"attempts"}
    three = [BEGIN]
    for attempt in (1, 2, 3):
        three += [started("a", attempt, running=1), retrying("a", attempt)]
    assert names([*three, END], retried, 1) == {"attempts"}
    with pytest.raises(InvariantViolation, match=r"'a' ran attempt 3, more than its 2 allowed"):
        check_trace([*three, END], retried, 1)


def test_fallback_ran_twice_or_before_its_primary() -> None:
    workflow = flow(
        """
        <transform id="a" type="template" template="1">
          <on-error><fallback node="fb"/></on-error>
        </transform>
        <transform id="fb" type="template" template="2"/>
        """
    )
    first = [BEGIN, started("a", 1, fallback="fb", running=1), succeeded("a"), END]
    assert names(first, workflow, 1) == {"fallback"}
    twice = [BEGIN, started("a", running=1), retrying("a")]
    twice += [started("a", 1, fallback="fb", running=1), retrying("a")] * 2
    assert "fallback" in names([*twice, END], workflow, 1)


def test_fail_fast_nothing_starts_after_a_fail_fast_failure() -> None:
    error = ErrorInfo("ValueError", "bad", node="a", attempt=1)
    failed = NodeFailed(
        run_id="r",
        at=0.0,
        path="a",
        node="a",
        attempt=1,
        error=error,
        result=NodeResult("a", "failed", error=error),
        fail_fast=True,
    )
    workflow = flow(
        """
        <transform id="a" type="template" template="1"/>
        <transform id="b" type="template" template="2"/>
        """
    )
    events = [
        BEGIN,
        started("a", running=1),
        failed,
        started("b", running=1),
        succeeded("b"),
        RunFinished(run_id="r", at=0.0, status="failed"),
    ]
    assert names(events, workflow, 2) == {"fail-fast"}


def test_resume_a_path_that_succeeded_before_is_started_again() -> None:
    resumed = RunStarted(run_id="r", at=0.0, workflow="trace", seed=0, resumed=True)
    events = [
        resumed,
        succeeded("a", reused=True),
        started("b", running=1),
        succeeded("b"),
        started("a", running=1),
        succeeded("a"),
        END,
    ]
    assert names(events, CHAIN, 2) == {"resume"}
    crashed = simulate(CHAIN, crash_after=1)
    again = simulate(CHAIN, prior=crashed)
    check_trace(again)
    # The same resumed trace against a prior in which 'b' had succeeded too.
    assert crashed.result is not None
    prior = {**crashed.result.nodes, "b": NodeResult("b", "succeeded", 2)}
    assert names(again.trace, CHAIN, 8, prior=prior) == {"resume"}


def test_every_broken_invariant_is_listed_at_once() -> None:
    trace = one_task_trace(release=False, outcome=False)
    with pytest.raises(InvariantViolation) as caught:
        check_trace(trace, ONE, 1)
    found = {v.invariant for v in caught.value.violations}
    assert {"released", "ended"} <= found
    assert str(caught.value).startswith(f"the trace breaks {len(found)} invariant(s)")


def test_a_list_needs_its_workflow() -> None:
    with pytest.raises(TypeError, match="check_trace needs the workflow"):
        check_trace([BEGIN, END])


# --- real runs keep every invariant ---------------------------------------------------


def _flaky(ctx: Any) -> Any:
    if ctx.attempt == 1 and ctx.config.get("flaky"):
        from wavecrest.core import TransientError

        raise TransientError("first attempt fails")
    return ctx.input


@pytest.fixture
def flaky_runtime() -> Any:
    register_runtime("transform:flaky-trace", _flaky, replace=True)
    yield
    unregister_runtime("transform:flaky-trace")


REAL = """---
name: real
runtime: {max_concurrency: 2}
---
<workflow>
  <transform id="a" type="template" template="{{ [1, 2, 3, 4] }}"/>
  <foreach id="each" collection="a.output">
    <transform id="sq" type="flaky-trace" flaky="true">
      <on-error><retry max="2" base="1ms"/></on-error>
    </transform>
  </foreach>
  <transform id="b" type="template" template="b">
    <on-error><fallback node="fb"/></on-error>
  </transform>
  <transform id="fb" type="template" template="fb"/>
  <parallel id="both">
    <branch name="x">
      <transform id="x1" type="template" input="each" template="{{ input }}"/>
    </branch>
    <branch name="y">
      <transform id="y1" type="template" input="b" template="{{ input }}"/>
    </branch>
  </parallel>
</workflow>
"""
FAULTS = {"rules": [{"node": "b", "raise": "permanent"}]}


@pytest.mark.usefixtures("flaky_runtime")
def test_a_real_runs_events_keep_every_invariant(tmp_path: Path) -> None:
    path = tmp_path / "real.flow.md"
    path.write_text(REAL)
    events: list[RunEvent] = []
    result = run_workflow(path, on_event=events.append, faults=FAULTS, seed=5)
    assert result.status == "completed"
    assert result.nodes["b"].fallback == "fb"
    assert any(isinstance(e, NodeRetrying) for e in events)
    assert all(e.running is not None for e in events if isinstance(e, NodeStarted))
    check_trace(events, path, 2)


@pytest.mark.usefixtures("flaky_runtime")
def test_a_persisted_runs_log_keeps_every_invariant_across_a_resume(tmp_path: Path) -> None:
    path = tmp_path / "real.flow.md"
    path.write_text(REAL.replace('template="b"', 'template="{{ config.missing }}"'))
    failing = {"rules": [{"node": "fb", "raise": "permanent"}, {"node": "b", "raise": "permanent"}]}
    failed = run_workflow(path, state_dir=tmp_path / "state", faults=failing, seed=1)
    assert failed.status == "failed"
    assert failed.snapshot_path is not None
    log = Path(failed.snapshot_path).with_suffix(".jsonl")
    check_trace(log)
    path.write_text(REAL)
    resumed = resume_workflow(failed.run_id, state_dir=tmp_path / "state", force=True)
    assert resumed.status == "completed"
    check_trace(log)
    check_trace(str(log), path)


@pytest.mark.usefixtures("flaky_runtime")
def test_events_of_several_runs_of_one_runtime_are_checked_run_by_run(tmp_path: Path) -> None:
    path = tmp_path / "real.flow.md"
    path.write_text(REAL)
    events: list[RunEvent] = []
    with Runtime(max_concurrency=3) as runtime:
        handles = [runtime.submit(path, on_event=events.append, seed=s) for s in range(3)]
        assert all(h.result(timeout=60).status == "completed" for h in handles)
    assert len({e.run_id for e in events}) == 3
    check_trace(events, path, 2)
