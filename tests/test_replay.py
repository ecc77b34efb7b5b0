"""replay: a recorded run replays clean; an edited workflow shows its first divergence.

Runs are real actor runs persisted to a temporary state dir; the replay
reads their log and snapshot back and drives a fresh scheduler with the
recorded outcomes.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.actors import Runtime, resume_workflow, run_workflow
from wavecrest.core import (
    PermanentError,
    RunNotFoundError,
    TransientError,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core.testing import (
    ReplayError,
    RunLogError,
    check_trace,
    fault_plan_mappings,
    probe_runtime,
    render_flow,
    replay,
    seeds,
    workflows,
)

FLOW = """---
name: replayed
runtime: {max_concurrency: 2}
---
<workflow>
  <transform id="items" type="template" template="{{ [1, 2, 3] }}"/>
  <foreach id="each" collection="items.output">
    <transform id="sq" type="template" template="{{ item * item }}"/>
  </foreach>
  <transform id="save" type="flaky-replay" input="each">
    <on-error><retry max="3" base="5ms"/><fallback node="spool"/></on-error>
  </transform>
  <transform id="spool" type="template" template="spooled"/>
  <transform id="done" type="template" input="save" template="{{ input }}"/>
</workflow>
"""


def _flaky(ctx: Any) -> Any:
    if ctx.attempt <= 2:
        raise TransientError(f"disk busy (attempt {ctx.attempt})")
    return f"saved {ctx.input}"


@pytest.fixture(autouse=True)
def _runtime() -> Any:
    register_runtime("transform:flaky-replay", _flaky, replace=True)
    with probe_runtime():  # the generated workflows' runtime, gone after the test
        yield
    unregister_runtime("transform:flaky-replay")


def record(tmp_path: Path, text: str = FLOW, **options: Any) -> tuple[Path, Any]:
    path = tmp_path / "replayed.flow.md"
    path.write_text(text)
    result = run_workflow(path, state_dir=tmp_path / "state", seed=11, **options)
    return path, result


def log_lines(result: Any) -> list[dict[str, Any]]:
    log = Path(result.snapshot_path).with_suffix(".jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


def line_of(result: Any, event: str, node: str, attempt: int | None = None) -> int:
    for number, line in enumerate(log_lines(result), start=1):
        same = line.get("event") == event and line.get("node") == node
        if same and (attempt is None or line.get("attempt") == attempt):
            return number
    raise AssertionError(f"no {event} of {node!r} in the log")


def test_a_recorded_run_replays_clean_by_run_id_snapshot_or_log(tmp_path: Path) -> None:
    _, result = record(tmp_path)
    assert result.status == "completed"
    assert result.nodes["save"].attempts == 3
    lines = log_lines(result)
    for run in (
        result.run_id,
        result.snapshot_path,
        Path(result.snapshot_path).with_suffix(".jsonl"),
    ):
        report = replay(run, state_dir=tmp_path / "state")
        assert report.ok, report.divergence
        assert report.events == len(lines)
        assert report.segments == 1
    assert str(report).endswith(f"ok, {len(lines)} events in 1 segment(s) match")


def test_a_changed_retry_count_diverges_at_the_retry_it_no_longer_makes(tmp_path: Path) -> None:
    path, result = record(tmp_path)
    path.write_text(FLOW.replace('max="3"', 'max="1"'))
    report = replay(result.run_id, state_dir=tmp_path / "state")
    assert not report.ok
    divergence = report.divergence
    assert divergence is not None
    assert divergence.line == line_of(result, "node.retrying", "save", attempt=2)
    assert divergence.recorded is not None
    assert divergence.recorded.startswith("node.retrying 'save' attempt 2 (delay ")
    assert (
        divergence.current
        == "node.retrying 'save' attempt 2 (fallback 'spool', delay 0s, TransientError)"
    )
    assert str(divergence).startswith(f"at line {divergence.line}: the log records node.retrying")
    assert report.events == divergence.line - 1


def test_an_added_node_diverges_where_the_code_starts_it(tmp_path: Path) -> None:
    path, result = record(tmp_path)
    path.write_text(
        FLOW.replace(
            '<transform id="done"',
            '<transform id="audit" type="template" input="items" template="x"/>\n'
            '  <transform id="done"',
        )
    )
    report = replay(result.run_id, state_dir=tmp_path / "state")
    assert report.divergence is not None
    assert report.divergence.current == "node.started 'audit' attempt 1"
    recorded = log_lines(result)[report.divergence.line - 1]  # type: ignore[operator]
    assert recorded["event"] == "node.started"


def test_a_node_added_at_the_end_diverges_after_the_recorded_finish(tmp_path: Path) -> None:
    path, result = record(tmp_path)
    path.write_text(
        FLOW.replace(
            "</workflow>",
            '  <transform id="tail" type="template" input="done" template="x"/>\n</workflow>',
        )
    )
    report = replay(result.run_id, state_dir=tmp_path / "state")
    assert report.divergence is not None
    assert report.divergence.line == len(log_lines(result))
    assert report.divergence.recorded == "run.finished (completed)"
    assert report.divergence.current == "node.started 'tail' attempt 1"


def test_replay_against_another_workflow_given_explicitly(tmp_path: Path) -> None:
    _, result = record(tmp_path)
    report = replay(
        result.run_id, state_dir=tmp_path / "state", workflow=FLOW.replace('"5ms"', '"9ms"')
    )
    assert report.divergence is not None
    assert report.divergence.recorded is not None
    assert report.divergence.recorded.startswith("node.retrying 'save' attempt 1")


def test_a_failed_run_and_its_resume_replay_clean_segment_by_segment(tmp_path: Path) -> None:
    faults = {
        "rules": [{"node": "spool", "raise": "permanent"}, {"node": "save", "raise": "permanent"}]
    }
    _, failed = record(tmp_path, faults=faults)
    assert failed.status == "failed"
    assert replay(failed.run_id, state_dir=tmp_path / "state").ok
    resumed = resume_workflow(failed.run_id, state_dir=tmp_path / "state")
    assert resumed.status == "completed"
    report = replay(failed.run_id, state_dir=tmp_path / "state")
    assert report.ok, report.divergence
    assert report.segments == 2


def test_a_paused_run_approved_on_resume_replays_clean(tmp_path: Path) -> None:
    text = FLOW.replace(
        '<transform id="done"',
        '<checkpoint id="ok" input="save" prompt="ship?"/>\n  <transform id="done"',
    ).replace('input="save" template', 'input="ok" template')
    _, paused = record(tmp_path, text)
    assert paused.status == "paused"
    resumed = resume_workflow(paused.run_id, state_dir=tmp_path / "state", approve=True)
    assert resumed.status == "completed"
    report = replay(paused.run_id, state_dir=tmp_path / "state")
    assert report.ok, report.divergence
    assert report.segments == 2


def test_a_log_cut_short_by_a_crash_replays_as_far_as_it_goes(tmp_path: Path) -> None:
    _, result = record(tmp_path)
    log = Path(result.snapshot_path).with_suffix(".jsonl")
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    report = replay(log)
    assert report.ok, report.divergence
    assert report.events == len(lines) // 2


def test_a_run_that_timed_out_replays_clean(tmp_path: Path) -> None:
    text = FLOW.replace(
        'template="{{ item * item }}"', 'template="{{ item * item }}" timeout="10s"'
    )
    _, result = record(
        tmp_path, text, timeout="1ms", faults={"rules": [{"node": "sq", "delay": "5s"}]}
    )
    assert result.status == "cancelled"
    report = replay(result.run_id, state_dir=tmp_path / "state")
    assert report.ok, report.divergence


def test_what_cannot_be_replayed_is_a_clear_error(tmp_path: Path) -> None:
    _, result = record(tmp_path)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        replay("nope", state_dir=tmp_path / "state")
    log = Path(result.snapshot_path).with_suffix(".jsonl")
    lonely = tmp_path / "lonely.jsonl"
    lonely.write_text(log.read_text())
    with pytest.raises(ReplayError, match="no snapshot beside the log"):
        replay(lonely)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    with pytest.raises(RunLogError, match=r"garbage.jsonl:1: not a JSON line"):
        replay(garbage)


DUE = """---
name: due
---
<workflow>
  <transform id="retried" type="due-retried">
    <on-error><retry max="1" backoff="fixed" base="0ms"/></on-error>
  </transform>
  <transform id="failing" type="due-failing"/>
</workflow>
"""

OTHER = """---
name: other
---
<workflow>
  <transform id="one" type="template" template="other"/>
</workflow>
"""


def test_a_retry_that_became_due_before_a_fail_fast_stop_replays_clean(tmp_path: Path) -> None:
    """A node whose retry came due while its run had no permit to give it is ready, not
    waiting, when another node's failure stops the run, and the stop logs no cancellation
    for it: the replay must fire that silent retry timer before the stop, as the run did.

    With one permit, 'retried' fails first and its retry is due at once, while 'failing'
    holds the permit; a second run of the same Runtime is queued for it meanwhile, so the
    permit 'failing' frees goes there and 'retried' is still ready at the fail-fast stop.
    Threading events and the semaphore's queue order the steps. Should the retry's timer
    not have fired by the stop (the other interleaving, which logs a cancellation), the
    scenario runs again; every run replays clean either way."""
    path = tmp_path / "due.flow.md"
    path.write_text(DUE)
    failing_started, fail_now = threading.Event(), threading.Event()

    def retried(ctx: Any) -> Any:
        if ctx.attempt == 1:
            raise TransientError("first attempt")
        return "second attempt"

    def failing(ctx: Any) -> Any:
        failing_started.set()
        fail_now.wait(10)
        raise PermanentError("for good")

    register_runtime("transform:due-retried", retried, replace=True)
    register_runtime("transform:due-failing", failing, replace=True)
    silent = 0
    try:
        for _ in range(5):
            failing_started.clear()
            fail_now.clear()
            with Runtime(max_concurrency=1) as runtime:
                handle = runtime.submit(path, state_dir=tmp_path / "state")
                assert failing_started.wait(10)
                queued = runtime.submit(parse_workflow(OTHER, "other.flow.md"))
                deadline = time.monotonic() + 10
                while runtime.statistics().waiting < 1:  # the other run asked for the permit
                    assert time.monotonic() < deadline, runtime.statistics()
                    threading.Event().wait(0.001)
                fail_now.set()
                result = handle.result(timeout=10)
                assert queued.result(timeout=10).status == "completed"
            assert result.status == "failed"
            lines = log_lines(result)
            report = replay(result.run_id, state_dir=tmp_path / "state")
            assert report.ok, report.divergence
            assert report.events == len(lines)
            if not any(e["event"] == "node.cancelled" for e in lines):
                silent += 1
                break
    finally:
        unregister_runtime("transform:due-retried")
        unregister_runtime("transform:due-failing")
    assert silent == 1


SUPERSEDED = """---
name: superseded
---
<workflow>
  <loop id="n0" max="1">
    <parallel id="t-1" wait="any">
      <branch name="b0">
        <transform id="t-2" type="wc-probe" read="{{ [input] }}">
          <on-error><fallback node="fb-t-2"/></on-error>
        </transform>
        <transform id="fb-t-2" type="wc-probe"/>
      </branch>
      <branch name="b1">
        <transform id="t-3" type="wc-probe"/>
      </branch>
    </parallel>
  </loop>
  <transform id="t-4" type="wc-probe"/>
</workflow>
"""
NOT_NEEDED = "not needed: 'n0[0]/t-1' finished"


@pytest.mark.parametrize(
    "order",
    [
        # t-2's failure reached the scheduler after t-4 gave its permit to t-3; the
        # supervisor's decision on it was still on its way when t-3 finished the parallel.
        # ("t-3:2": t-3 started, 2 attempts holding permits.)
        [
            "t-4:1",
            "t-2:2",
            "fault t-2",
            "ok t-4",
            "t-3:2",
            "ok t-3",
            "cancel t-2",
            "ok t-1",
            "ok n0",
        ],
        # ... or it came first, and its permit is the one t-3 started with.
        [
            "t-4:1",
            "t-2:2",
            "fault t-2",
            "t-3:2",
            "ok t-4",
            "ok t-3",
            "cancel t-2",
            "ok t-1",
            "ok n0",
        ],
    ],
    ids=["after-t-4", "before-t-4"],
)
def test_a_failure_still_awaiting_its_decision_when_cancelled_replays_clean(
    tmp_path: Path, order: list[str]
) -> None:
    """An attempt that failed while the supervisor's decision on it was on its way, and was
    then cancelled because its parallel had finished, logs only its cancellation, at
    once, before the parallel's success: the replay must infer that silent failure
    (found by the explore profile of the property below, under load)."""
    path = tmp_path / "superseded.flow.md"
    path.write_text(SUPERSEDED)
    faults = {"rules": [{"node": "t-2", "attempts": [1], "raise": "transient"}]}
    result = run_workflow(
        path, state_dir=tmp_path / "state", faults=faults, seed=0, max_concurrency=2
    )
    assert result.status == "completed"
    log = Path(result.snapshot_path).with_suffix(".jsonl")
    recorded = log_lines(result)
    head = {"run_id": result.run_id, "workflow": "superseded"}
    began = datetime.fromisoformat(recorded[0]["timestamp"].rstrip("Z"))

    def stamp(k: int) -> str:  # k ms after the run started
        return (began + timedelta(milliseconds=k)).isoformat(timespec="microseconds") + "Z"

    lines = [recorded[0]]
    for k, step in enumerate(order, start=1):
        what, _, node = step.rpartition(" ")
        node, _, running = node.partition(":")
        node = node if node in ("t-4", "n0") else f"n0[0]/{node}"
        if what == "":
            line = {"node": node, "attempt": 1, "queued": 0.0, "running": int(running)}
            line["event"] = "node.started"
        elif what == "fault":
            line = {"node": node, "attempt": 1, "fault": "raise transient", "rule": 0}
            line["event"] = "fault.injected"
        elif what == "ok":
            line = {"node": node, "attempt": 1, "duration": 0.001, "event": "node.succeeded"}
        else:
            line = {"node": node, "attempt": 1, "reason": NOT_NEEDED, "event": "node.cancelled"}
        lines.append({**head, **line, "level": "info", "timestamp": stamp(k)})
    lines.append(recorded[-1])
    assert lines[-1]["event"] == "run.finished"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = replay(log)
    assert report.ok, report.divergence
    assert report.events == len(lines)
    check_trace(log)


@pytest.mark.slow
@settings(max_examples=examples(20), deadline=None)
@given(data=st.data())
def test_any_recorded_run_replays_clean_and_keeps_every_invariant(data: st.DataObject) -> None:
    """Real runs of generated workflows under generated faults, whatever the threads'
    timing made of their order: the log replays clean and passes check_trace. (Delays,
    hangs and checkpoints are left out: they would make real runs wait.)"""
    workflow = data.draw(
        workflows(max_nodes=8, retries=True, fallbacks=True, delays=False, partial_waits=True)
    )
    faults = data.draw(fault_plan_mappings(workflow, kinds=("transient", "permanent", "crash")))
    cap = data.draw(st.integers(1, 4), label="cap")
    keep_going = data.draw(st.booleans(), label="keep_going")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.flow.md"
        path.write_text(render_flow(workflow))
        note(path.read_text())
        result = run_workflow(
            path,
            state_dir=Path(folder) / "state",
            faults=faults,
            seed=data.draw(seeds(), label="seed"),
            max_concurrency=cap,
            keep_going=keep_going,
        )
        assert result.snapshot_path is not None
        log = Path(result.snapshot_path).with_suffix(".jsonl")
        note(log.read_text())
        report = replay(log)
        assert report.ok, report.divergence
        check_trace(log)
