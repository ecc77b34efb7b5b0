"""A run's timeline read back from its log, and the critical path a run took.

Log lines here are rendered by the writer's own renderer (``EventLines``), so
the reader is tested against the format the runtime really writes.
"""

from __future__ import annotations

import json
import math
import textwrap
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.actors._logging import EventLines
from wavecrest.actors._report import render_run_report
from wavecrest.core import (
    CheckpointWaiting,
    ErrorInfo,
    FaultInjected,
    NodeCancelled,
    NodeFailed,
    NodeResult,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    Plan,
    RunEvent,
    RunFinished,
    RunStarted,
    parse_workflow,
    plan,
)
from wavecrest.core._report import run_model
from wavecrest.core._snapshot import RunRecord
from wavecrest.core._timeline import critical_path, parse_timestamp, read_timeline

T0 = 1_795_000_000.0
RUN = "20261122T000000Z-abcdef"


def lines(*events: RunEvent) -> list[str]:
    render = EventLines(run_id=RUN, workflow="w")
    return [render.render(e) for e in events]


def started(
    path: str, at: float, attempt: int = 1, queued: float = 0.0, fallback: str | None = None
) -> NodeStarted:
    return NodeStarted(
        run_id=RUN,
        at=T0 + at,
        path=path,
        node=path,
        attempt=attempt,
        queued=queued,
        fallback=fallback,
    )


def succeeded(path: str, at: float, attempt: int = 1, reused: bool = False) -> NodeSucceeded:
    result = NodeResult(path, "succeeded", attempts=attempt, duration=0.5)
    return NodeSucceeded(
        run_id=RUN, at=T0 + at, path=path, node=path, attempt=attempt, result=result, reused=reused
    )


def retrying(
    path: str, at: float, attempt: int, delay: float, fallback: str | None = None
) -> NodeRetrying:
    return NodeRetrying(
        run_id=RUN,
        at=T0 + at,
        path=path,
        node=path,
        attempt=attempt,
        delay=delay,
        error=ErrorInfo("TransientError", f"{path} attempt {attempt} failed"),
        fallback=fallback,
    )


def failed(path: str, at: float, attempt: int, kind: str = "ValueError") -> NodeFailed:
    error = ErrorInfo(kind, f"{path} failed", "Traceback (most recent call last):\n")
    result = NodeResult(path, "failed", error=error, attempts=attempt)
    return NodeFailed(
        run_id=RUN, at=T0 + at, path=path, node=path, attempt=attempt, error=error, result=result
    )


def run_started(at: float, resumed: bool = False) -> RunStarted:
    return RunStarted(run_id=RUN, at=T0 + at, workflow="w", seed=7, resumed=resumed)


def run_finished(at: float, status: str = "completed") -> RunFinished:
    return RunFinished(run_id=RUN, at=T0 + at, status=status)  # type: ignore[arg-type]


# --- timestamps -------------------------------------------------------------------------


@settings(max_examples=examples(200))
@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
@example(T0 + 0.999_999_9)
@example(0.0)
def test_a_logged_timestamp_reads_back_to_the_microsecond(at: float) -> None:
    stamp = json.loads(lines(run_started(at - T0))[0])["timestamp"]
    assert parse_timestamp(stamp) == pytest.approx(at, abs=1.5e-6)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-11-22 06:20:28Z", "2026-13-22T06:20:28Z"])
def test_a_timestamp_that_is_not_iso_utc_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_timestamp(text)


# --- attempts ---------------------------------------------------------------------------


def test_each_attempt_runs_from_its_start_to_what_closed_it_and_queued_before() -> None:
    timeline = read_timeline(
        lines(
            run_started(0),
            started("a", 1.0, queued=0.25),
            succeeded("a", 2.0),
            started("b", 2.0, queued=0.5),
            FaultInjected(
                run_id=RUN, at=T0 + 2.0, path="b", node="b", attempt=1, fault="raise", rule=0
            ),
            retrying("b", 2.5, 1, delay=0.25),
            started("b", 2.75, attempt=2),
            failed("b", 3.0, 2, kind="NodeTimeoutError"),
            started("c", 3.0),
            retrying("c", 3.25, 1, delay=0.0, fallback="spare"),
            started("c", 3.25, fallback="spare"),
            succeeded("c", 3.5),
            run_finished(3.75, "failed"),
        )
    )
    got = [
        (
            a.path,
            a.attempt,
            round(a.ready_at - T0, 6),
            round(a.started_at - T0, 6),
            None if a.finished_at is None else round(a.finished_at - T0, 6),
            a.outcome,
            a.fallback,
            a.timed_out,
            a.faults,
            a.retry_delay,
        )
        for a in timeline.attempts
    ]
    assert got == [
        ("a", 1, 0.75, 1.0, 2.0, "succeeded", None, False, (), None),
        ("b", 1, 1.5, 2.0, 2.5, "retried", None, False, ("raise",), 0.25),
        ("b", 2, 2.75, 2.75, 3.0, "failed", None, True, (), None),
        ("c", 1, 3.0, 3.0, 3.25, "fell back", None, False, (), None),
        ("c", 1, 3.25, 3.25, 3.5, "succeeded", "spare", False, (), None),
    ]
    assert timeline.attempts[2].error == "NodeTimeoutError"
    assert timeline.attempts[1].message == "b attempt 1 failed"
    assert [(m.path, m.kind, m.text) for m in timeline.marks] == [("b", "fault", "raise")]
    (segment,) = timeline.segments
    assert (segment.started_at, segment.finished_at, segment.status) == (T0, T0 + 3.75, "failed")


def test_a_killed_run_leaves_an_open_segment_and_its_attempts_interrupted() -> None:
    """The first segment has no run.finished: it ends at its last event and the attempt
    it was running is interrupted. The resume's reused nodes are counted, never timed."""
    timeline = read_timeline(
        lines(
            run_started(0),
            started("x", 0.5),
            succeeded("y", 0.4),
            started("z", 0.9),
            run_started(100, resumed=True),
            succeeded("y", 0.4, reused=True),
            started("x", 100.5),
            succeeded("x", 101),
            run_finished(101.5),
        )
    )
    first, second = timeline.segments
    assert (first.started_at, first.finished_at, first.last_at) == (T0, None, T0 + 0.9)
    assert first.status is None
    assert first.end == T0 + 0.9
    assert (second.started_at, second.finished_at, second.resumed, second.reused) == (
        T0 + 100,
        T0 + 101.5,
        True,
        1,
    )
    by_path = timeline.attempts_by_path()
    assert [(a.outcome, a.finished_at, a.segment) for a in by_path["x"]] == [
        ("interrupted", None, 0),
        ("succeeded", T0 + 101, 1),
    ]
    assert [(a.outcome, a.segment) for a in by_path["z"]] == [("interrupted", 0)]
    assert "y" not in by_path  # its start was never logged: no attempt is made up


def test_torn_and_foreign_lines_are_counted_and_runtime_lines_kept_by_node() -> None:
    own = lines(
        run_started(0), started("load", 0.0625), succeeded("load", 0.125), run_finished(0.25)
    )
    runtime = json.dumps(
        {
            "run_id": RUN,
            "workflow": "w",
            "node": "load",
            "attempt": 1,
            "rows": 12,
            "event": "fetched",
            "level": "warning",
            "timestamp": "2026-11-18T11:06:40.150000Z",
        }
    )
    timeline = read_timeline([*own[:2], runtime, "[1, 2]", "", *own[2:], '{"run_id": "2026'])
    assert timeline.unreadable == 2
    assert [a.outcome for a in timeline.attempts] == ["succeeded"]
    (line,) = timeline.logs["load"]
    assert line == '11:06:40.150 warning fetched {"attempt": 1, "rows": 12}'
    assert timeline.last_at == T0 + 0.25


def test_skips_checkpoints_and_ends_without_an_attempt_are_marks() -> None:
    skipped = NodeResult("s", "skipped", reason="not taken")
    timeline = read_timeline(
        lines(
            run_started(0),
            CheckpointWaiting(run_id=RUN, at=T0 + 1, path="ok", node="ok", prompt="Ship <it>?"),
            NodeSkipped(run_id=RUN, at=T0 + 1, path="s", node="s", result=skipped),
            failed("ctl", 2, 1),
            NodeCancelled(
                run_id=RUN,
                at=T0 + 3,
                path="w",
                node="w",
                attempt=1,
                result=NodeResult("w", "cancelled", reason="stopping"),
            ),
            run_finished(3, "paused"),
        )
    )
    assert [(m.path, m.kind, m.text) for m in timeline.marks] == [
        ("ok", "checkpoint", "Ship <it>?"),
        ("s", "skipped", "not taken"),
        ("ctl", "failed", "ValueError: ctl failed"),
        ("w", "cancelled", "stopping"),
    ]
    assert timeline.attempts == ()


def test_a_started_attempt_the_run_cancels_ends_cancelled_with_the_reason() -> None:
    result = NodeResult("slow", "cancelled", reason="timeout")
    cancel = NodeCancelled(
        run_id=RUN, at=T0 + 2, path="slow", node="slow", attempt=1, result=result
    )
    timeline = read_timeline(lines(run_started(0), started("slow", 1), cancel, run_finished(2)))
    (attempt,) = timeline.attempts
    assert (attempt.outcome, attempt.message, attempt.finished_at) == (
        "cancelled",
        "timeout",
        T0 + 2,
    )


# --- the critical path ------------------------------------------------------------------


def planned(body: str) -> Plan:
    text = "---\nname: cp\n---\n<workflow>\n" + textwrap.dedent(body) + "\n</workflow>\n"
    return plan(parse_workflow(text))


def node(id_: str, inputs: str = "") -> str:
    given_inputs = f' input="{inputs}"' if inputs else ""
    return f'<transform id="{id_}" type="template"{given_inputs} template="x"/>'


def test_the_critical_path_follows_the_dependency_that_finished_last() -> None:
    flow = planned("\n".join([node("a"), node("b", "a"), node("c", "a"), node("d", "b,c")]))
    spans = {"a": (0.0, 1.0), "b": (1.0, 2.0), "c": (1.0, 5.0), "d": (5.0, 6.0)}
    assert critical_path(flow, spans) == ["a", "c", "d"]
    spans["b"] = (1.0, 5.5)
    assert critical_path(flow, spans) == ["a", "b", "d"]


def test_the_critical_path_goes_through_a_control_node_by_its_body() -> None:
    flow = planned(
        f"""
        {node("src")}
        <parallel id="p" input="src">
          <branch name="one">{node("x")}{node("y", "x")}</branch>
          <branch name="two">{node("q")}</branch>
        </parallel>
        {node("z", "p")}
        """
    )
    spans = {
        "src": (0.0, 1.0),
        "p": (1.0, 4.0),
        "x": (1.0, 2.0),
        "y": (2.0, 4.0),
        "q": (1.0, 3.0),
        "z": (4.0, 5.0),
    }
    assert critical_path(flow, spans) == ["src", "x", "y", "p", "z"]


def test_the_critical_path_steps_back_through_the_iterations_it_waited_for() -> None:
    flow = planned(
        f"""
        {node("src")}
        <foreach id="each" input="src" collection="[1, 2, 3]" concurrency="2">
          {node("work")}
        </foreach>
        {node("after", "each")}
        """
    )
    # Items 0 and 1 start together; item 2 starts when item 0 ends.
    spans = {
        "src": (0.0, 1.0),
        "each[0]/work": (1.0, 2.0),
        "each[1]/work": (1.0, 3.0),
        "each[2]/work": (2.0, 4.0),
        "each": (1.0, 4.0),
        "after": (4.0, 4.5),
    }
    assert critical_path(flow, spans) == ["src", "each[0]/work", "each[2]/work", "each", "after"]
    spans["each[1]/work"] = (1.0, 4.2)
    spans["each"] = (1.0, 4.2)
    spans["after"] = (4.2, 5.0)
    assert critical_path(flow, spans) == ["src", "each[1]/work", "each", "after"]


def test_the_critical_path_of_a_loop_runs_through_every_iteration() -> None:
    flow = planned(
        f"""
        <loop id="l" max="3">{node("step")}{node("check", "step")}</loop>
        {node("done", "l")}
        """
    )
    spans = {"l": (0.0, 6.0), "done": (6.0, 7.0)}
    for i in range(3):
        spans[f"l[{i}]/step"] = (2.0 * i, 2.0 * i + 1)
        spans[f"l[{i}]/check"] = (2.0 * i + 1, 2.0 * i + 2)
    assert critical_path(flow, spans) == [
        "l[0]/step",
        "l[0]/check",
        "l[1]/step",
        "l[1]/check",
        "l[2]/step",
        "l[2]/check",
        "l",
        "done",
    ]


def test_nothing_ran_means_no_critical_path() -> None:
    assert critical_path(planned(node("a")), {}) == []
    assert critical_path(planned(node("a")), {"elsewhere": (0.0, 1.0)}) == []


# --- any log, however damaged ---------------------------------------------------------

EVENTS = [
    "run.started",
    "run.finished",
    "node.started",
    "node.succeeded",
    "node.retrying",
    "node.failed",
    "node.cancelled",
    "node.skipped",
    "fault.injected",
    "checkpoint.waiting",
    "something.else",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(["a", "b", "e[0]/c", "</script>"]),
)
FIELDS = ("node", "attempt", "queued", "delay", "fallback", "reused", "resumed", "seed")
FIELDS += ("status", "reason", "error", "message", "fault", "prompt")


def stamp(at: float) -> str:
    second = int(at)
    head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{head}.{int((at - second) * 1_000_000):06d}Z"


ENTRIES = st.fixed_dictionaries(
    {
        "event": st.sampled_from(EVENTS),
        "timestamp": st.one_of(
            st.floats(min_value=T0, max_value=T0 + 100).map(stamp), st.text(max_size=3)
        ),
    },
    optional=dict.fromkeys(FIELDS, VALUES),
)
LOGS = st.lists(st.one_of(ENTRIES.map(json.dumps), st.text(max_size=12)), max_size=30)


@settings(max_examples=examples(150))
@given(LOGS)
@example(['{"event": "node.started", "node": "a", "attempt": 1, "queued": NaN, "timestamp": "x"}'])
@example(
    [
        json.dumps({"event": "node.started", "node": "a", "attempt": 1, "timestamp": stamp(T0)}),
        '{"event": "node.retrying", "node": "a", "delay": Infinity, '
        f'"timestamp": "{stamp(T0 + 1)}"}}',
    ]
)
@example(
    [
        json.dumps({"event": "run.started", "timestamp": stamp(T0 + 1)}),
        json.dumps({"event": "run.finished", "timestamp": stamp(T0)}),
    ]
)
def test_any_log_however_damaged_gives_a_timeline_the_report_can_draw(log: list[str]) -> None:
    timeline = read_timeline(log)
    assert timeline.unreadable <= len(log)
    for attempt in timeline.attempts:
        assert math.isfinite(attempt.ready_at)
        assert attempt.ready_at <= attempt.started_at
        assert attempt.finished_at is None or math.isfinite(attempt.finished_at)
        assert attempt.retry_delay is None or math.isfinite(attempt.retry_delay)
    for segment in timeline.segments:
        assert segment.started_at <= segment.end
    record = RunRecord(
        run_id=RUN,
        workflow="w",
        version=None,
        digest="",
        source="",
        workflow_path=None,
        status="running",
        reason=None,
        seed=0,
        created_at=T0,
        updated_at=T0,
        started_at=None,
        finished_at=None,
        config={},
        secret_names=(),
        options={},
        decisions={},
        results={},
        errors=(),
    )
    json.dumps(run_model(record, timeline, None).data(), allow_nan=False)
    assert render_run_report(record, timeline, None).count("</script>") == 2  # the page's own
