"""Durability: snapshots, resume after every kind of stop, logs, and secrets kept off disk."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from wavecrest.actors import Runtime, resume_workflow, run_workflow
from wavecrest.actors._cli import main
from wavecrest.actors._lock import RunInUseError, RunLock
from wavecrest.actors._logging import EventLines, event_fields
from wavecrest.core import (
    NodeResult,
    NodeStarted,
    NodeSucceeded,
    ResumeError,
    RunEvent,
    RunNotFoundError,
    RuntimeContext,
    SnapshotError,
    TransientError,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._snapshot import read_snapshot

pytestmark = pytest.mark.usefixtures("no_new_threads")


def write_flow(folder: Path, body: str, front: str = "", name: str = "dur") -> Path:
    path = folder / f"{name}.flow.md"
    path.write_text(f"---\nname: {name}\n{front}---\n<workflow>\n{body}\n</workflow>\n")
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """``transform:gated`` fails (permanently) until the returned flag file exists."""
    flag = tmp_path / "flag"

    def gated(ctx: RuntimeContext) -> Any:
        if not flag.exists():
            raise RuntimeError("the flag is not set")
        return f"passed {ctx.input}"

    register_runtime("transform:gated", gated, replace=True)
    yield flag
    unregister_runtime("transform:gated")


@pytest.fixture
def counted() -> Iterator[list[str]]:
    """``transform:count`` records each call's path and returns its input."""
    calls: list[str] = []
    lock = threading.Lock()

    def count(ctx: RuntimeContext) -> Any:
        with lock:
            calls.append(ctx.path)
        return ctx.input

    register_runtime("transform:count", count, replace=True)
    yield calls
    unregister_runtime("transform:count")


def started_paths(events: list[RunEvent]) -> list[str]:
    return [e.path for e in events if isinstance(e, NodeStarted)]


# --- snapshots ------------------------------------------------------------------------


def test_the_snapshot_holds_the_run(tmp_path: Path, state: Path) -> None:
    """Format and version, workflow source and digest, run id, seed, status, timestamps, config
    (secrets excluded) and every node result, iterations keyed by path."""
    flow = write_flow(
        tmp_path,
        '<transform id="a" type="template" template="{{ [1, 2] }}"/>\n'
        '<foreach id="each" collection="a.output">\n'
        '  <transform id="sq" type="template" template="{{ item * item }}"/>\n'
        "</foreach>",
        "config:\n  label: {type: string, default: x}\nsecrets: [TOKEN]\n",
    )
    result = run_workflow(
        flow, state_dir=state, seed=42, config={"label": "y"}, secrets={"TOKEN": "s3cr3t-value"}
    )
    path = Path(result.snapshot_path or "")
    assert path == state / "dur" / f"{result.run_id}.msgpack"
    record = read_snapshot(path)
    assert (record.run_id, record.workflow, record.status, record.seed) == (
        result.run_id,
        "dur",
        "completed",
        42,
    )
    assert record.source == flow.read_text()
    assert record.digest.startswith("sha256:")
    assert record.config == {"label": "y"}
    assert record.secret_names == ("TOKEN",)
    assert record.started_at
    assert record.finished_at
    assert record.finished_at >= record.started_at
    assert record.results["each[1]/sq"].output == 4
    assert record.results["each"].output == [1, 4]
    assert record.results["a"].attempts == 1
    assert record.results["a"].duration is not None
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_the_state_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "from-env"))
    flow = write_flow(tmp_path, '<transform id="a" type="template" template="x"/>')
    assert main(["run", str(flow), "--json"]) == 0
    snapshot = Path(json.loads(capsys.readouterr().out)["snapshot"])
    assert snapshot.parent.parent == tmp_path / "from-env"


def test_outputs_msgpack_cannot_hold_natively_come_back_exactly(
    tmp_path: Path, state: Path
) -> None:
    """Tuples, sets, datetimes, Decimals and bytes survive the snapshot and a resume."""
    value = {
        "t": (1, 2),
        "s": {3, 4},
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "d": Decimal("1.50"),
        "b": b"\x00\xff",
    }
    register_runtime("transform:rich", lambda ctx: value, replace=True)
    try:
        flow = write_flow(tmp_path, '<transform id="r" type="rich"/>')
        result = run_workflow(flow, state_dir=state)
        assert read_snapshot(result.snapshot_path).results["r"].output == value
    finally:
        unregister_runtime("transform:rich")


def test_an_output_that_cannot_be_saved_fails_its_node(tmp_path: Path, state: Path) -> None:
    class Opaque:
        pass

    register_runtime("transform:opaque", lambda ctx: {"rows": [Opaque()]}, replace=True)
    try:
        flow = write_flow(tmp_path, '<transform id="o" type="opaque"/>')
        result = run_workflow(flow, state_dir=state)
    finally:
        unregister_runtime("transform:opaque")
    assert result.status == "failed"
    [error] = result.errors
    assert error.type == "OutputEncodingError"
    assert "output['rows'][0] is a Opaque" in error.message or "Opaque" in error.message
    assert read_snapshot(result.snapshot_path).status == "failed"


def test_events_are_logged_as_json_lines_beside_the_snapshot(tmp_path: Path, state: Path) -> None:
    def logs(ctx: RuntimeContext) -> int:
        ctx.log.info("rows.loaded", rows=3)
        return 3

    register_runtime("transform:logs", logs, replace=True)
    try:
        flow = write_flow(tmp_path, '<transform id="a" type="logs"/>')
        result = run_workflow(flow, state_dir=state)
    finally:
        unregister_runtime("transform:logs")
    log = Path(result.snapshot_path or "").with_suffix(".jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    events = [line["event"] for line in lines]
    assert events[0] == "run.started"
    assert events[-1] == "run.finished"
    assert "node.started" in events
    assert "node.succeeded" in events
    mine = next(line for line in lines if line["event"] == "rows.loaded")
    assert (mine["run_id"], mine["node"], mine["attempt"], mine["rows"]) == (
        result.run_id,
        "a",
        1,
        3,
    )
    assert all(line["run_id"] == result.run_id for line in lines)


def test_the_run_log_tells_what_the_events_tell(tmp_path: Path, state: Path, gate: Path) -> None:
    # The log is written from the run's journal, on_event gets the scheduler's
    # events: a line per event, in order, with the event's fields, whatever
    # happened (retries, a fallback, a failure, a skip, results reused on resume).
    def flaky(ctx: RuntimeContext) -> str:
        if ctx.attempt == 1:
            raise TransientError("not yet")
        raise ValueError("gave up")

    register_runtime("transform:flaky", flaky, replace=True)
    try:
        flow = write_flow(
            tmp_path,
            '<transform id="seed" type="template" template="s"/>\n'
            '<transform id="flaky" type="flaky" input="seed">'
            '<on-error><retry max="1" base="1ms"/><fallback node="spare"/></on-error>'
            "</transform>\n"
            '<transform id="spare" type="template" template="spare"/>\n'
            '<transform id="check" type="gated" input="seed"/>\n'
            '<transform id="after" type="template" template="x" input="check"/>',
        )
        events: list[RunEvent] = []
        failed = run_workflow(flow, state_dir=state, keep_going=True, on_event=events.append)
        gate.touch()
        resumed = resume_workflow(failed.run_id, state_dir=state, on_event=events.append)
    finally:
        unregister_runtime("transform:flaky")
    assert (failed.status, resumed.status) == ("failed", "completed")
    names = [e.name for e in events]
    for name in ("node.retrying", "node.failed", "node.skipped"):
        assert name in names
    assert any(isinstance(e, NodeStarted) and e.fallback == "spare" for e in events)
    assert any(getattr(e, "reused", False) for e in events)
    log = Path(resumed.snapshot_path or "").with_suffix(".jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        stamp = dt.datetime.fromisoformat(line.pop("timestamp").replace("Z", "+00:00"))
        assert abs(stamp.timestamp() - event.at) < 1e-5
        assert line == {
            "run_id": failed.run_id,
            "workflow": "dur",
            **json.loads(json.dumps(event_fields(event))),
            "event": event.name,
            "level": "info",
        }


@pytest.mark.parametrize(("duration", "queued"), [(0.25, 0.0), (None, 2.0000004), (1e-07, 3e-05)])
@pytest.mark.parametrize("path", ["load", 'odd "é" \\ path', "loop[3]/step"])
def test_the_templated_lines_are_what_json_dumps_gives(
    path: str, duration: float | None, queued: float
) -> None:
    # node.started and node.succeeded lines are built from %-templates for speed;
    # they must be byte for byte the generic rendering.
    lines = EventLines(run_id="20261122T000000Z-%d", workflow='w "1"')
    result = NodeResult(path, "succeeded", duration=duration)
    at = 1_795_000_000.5
    for event in (
        NodeStarted(run_id="r", at=at, path=path, node=path, attempt=2, queued=queued, running=3),
        NodeSucceeded(run_id="r", at=at, path=path, node=path, attempt=2, result=result),
    ):
        fields = {"run_id": "20261122T000000Z-%d", "workflow": 'w "1"', **event_fields(event)}
        fields.update(event=event.name, level="info", timestamp="2026-11-18T11:06:40.500000Z")
        assert lines.render(event) == json.dumps(fields)


# --- resume ---------------------------------------------------------------------------


def test_resume_after_a_failure_reruns_only_what_did_not_succeed(
    tmp_path: Path, state: Path, gate: Path, counted: list[str]
) -> None:
    flow = write_flow(
        tmp_path,
        '<transform id="first" type="count" input="seed"/>\n'
        '<transform id="seed" type="template" template="s"/>\n'
        '<transform id="check" type="gated" input="first"/>\n'
        '<transform id="after" type="count" input="check"/>',
    )
    failed = run_workflow(flow, state_dir=state)
    assert failed.status == "failed"
    assert sorted(counted) == ["first"]
    gate.touch()
    events: list[RunEvent] = []
    resumed = resume_workflow(failed.run_id, state_dir=state, on_event=events.append)
    assert resumed.status == "completed"
    assert resumed.run_id == failed.run_id
    assert sorted(started_paths(events)) == ["after", "check"]
    assert sorted(counted) == ["after", "first"]
    assert resumed.outputs["after"] == "passed s"
    assert read_snapshot(resumed.snapshot_path).resumes == 1


def test_resume_after_cancellation_and_after_a_run_timeout(tmp_path: Path, state: Path) -> None:
    started = threading.Event()
    release = threading.Event()

    def waits(ctx: RuntimeContext) -> str:
        started.set()
        if not release.is_set():
            ctx.sleep(30)
        return "woke"

    register_runtime("transform:waits", waits, replace=True)
    try:
        flow = write_flow(
            tmp_path,
            '<transform id="fast" type="template" template="f"/>\n'
            '<transform id="slow" type="waits" input="fast"/>',
        )
        with Runtime() as runtime:
            handle = runtime.submit(flow, state_dir=state)
            assert started.wait(10)
            handle.cancel()
            cancelled = handle.result(timeout=30)
        assert cancelled.status == "cancelled"
        assert read_snapshot(cancelled.snapshot_path).status == "cancelled"

        timed_out = run_workflow(flow, state_dir=state, timeout="50ms")
        assert timed_out.status == "cancelled"
        assert read_snapshot(timed_out.snapshot_path).reason == "run exceeded its timeout of 50ms"

        release.set()
        for stopped in (cancelled, timed_out):
            events: list[RunEvent] = []
            again = resume_workflow(stopped.run_id, state_dir=state, on_event=events.append)
            assert again.status == "completed"
            assert started_paths(events) == ["slow"]
            assert again.outputs == {"fast": "f", "slow": "woke"}
    finally:
        unregister_runtime("transform:waits")


def test_resume_takes_new_config_and_secrets(tmp_path: Path, state: Path, gate: Path) -> None:
    flow = write_flow(
        tmp_path,
        '<transform id="a" type="template" template="{{ config.n }} {{ secrets.KEY | length }}"/>\n'
        '<transform id="b" type="gated" input="a"/>',
        "config:\n  n: {type: integer, default: 1}\nsecrets: [KEY]\n",
    )
    failed = run_workflow(flow, state_dir=state, secrets={"KEY": "abc"})
    assert failed.status == "failed"
    gate.touch()
    again = resume_workflow(failed.run_id, state_dir=state, config={"n": 5}, secrets={"KEY": "z"})
    assert again.status == "completed"
    assert again.outputs["a"] == "1 3"  # succeeded before; never recomputed
    assert read_snapshot(again.snapshot_path).config == {"n": 5}


def test_resume_refuses_a_changed_workflow_unless_forced(
    tmp_path: Path, state: Path, gate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write_flow(
        tmp_path,
        '<transform id="b" type="gated" input="a"/>\n'
        '<transform id="a" type="template" template="1"/>',
    )
    failed = run_workflow(flow, state_dir=state)
    flow.write_text(flow.read_text().replace('template="1"', 'template="2"'))
    gate.touch()
    with pytest.raises(ResumeError, match=r"changed since run .* resume with --force"):
        resume_workflow(failed.run_id, state_dir=state)
    assert main(["resume", failed.run_id, "--state-dir", str(state)]) == 2
    assert "resume with --force" in capsys.readouterr().err
    forced = resume_workflow(failed.run_id, state_dir=state, force=True)
    assert forced.status == "completed"


def test_resuming_a_completed_run_is_a_no_op(
    tmp_path: Path, state: Path, counted: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write_flow(tmp_path, '<transform id="a" type="count"/>')
    done = run_workflow(flow, state_dir=state)
    before = Path(done.snapshot_path or "").read_bytes()
    again = resume_workflow(done.run_id, state_dir=state)
    assert again.status == "completed"
    assert counted == ["a"]
    assert main(["resume", done.run_id, "--state-dir", str(state)]) == 0
    assert "already completed; nothing to do" in capsys.readouterr().out
    assert Path(done.snapshot_path or "").read_bytes() == before


def test_control_flow_resumes_where_it_stopped(
    tmp_path: Path, state: Path, gate: Path, counted: list[str]
) -> None:
    """Finished foreach items and loop iterations are not run again."""
    flow = write_flow(
        tmp_path,
        '<foreach id="each" collection="[1, 2, 3]" concurrency="1">\n'
        '  <transform id="c" type="count"/>\n'
        '  <transform id="g" type="gated" input="c" />\n'
        "</foreach>\n"
        '<loop id="lp" max="3">\n'
        '  <transform id="step" type="count" input="lp_seed"/>\n'
        "</loop>\n"
        '<transform id="lp_seed" type="template" template="{{ 0 }}"/>',
    )
    failed = run_workflow(flow, state_dir=state, keep_going=True)
    assert failed.status == "failed"
    first = sorted(counted)
    assert {"each[0]/c", "each[1]/c", "each[2]/c", "lp[0]/step", "lp[1]/step", "lp[2]/step"} <= set(
        first
    )
    gate.touch()
    counted.clear()
    events: list[RunEvent] = []
    again = resume_workflow(failed.run_id, state_dir=state, on_event=events.append)
    assert again.status == "completed"
    assert counted == []  # every counted node succeeded before
    assert sorted(started_paths(events)) == ["each[0]/g", "each[1]/g", "each[2]/g"]
    assert again.outputs["each"] == ["passed 1", "passed 2", "passed 3"]


def test_an_unknown_run_is_a_clear_error(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RunNotFoundError, match="no run 'nope' in state dir"):
        resume_workflow("nope", state_dir=state)
    assert main(["inspect", "nope", "--state-dir", str(state)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "corrupt or truncated snapshot"),
        (lambda data: b"", "empty"),
        (lambda data: b"\x81\xa3foo\xa3bar", "not a wavecrest snapshot"),
        (lambda data: data[:-40] + bytes(b ^ 0xFF for b in data[-40:-20]) + data[-20:], "corrupt"),
    ],
)
def test_a_damaged_snapshot_is_refused_and_left_untouched(
    tmp_path: Path, state: Path, damage: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = write_flow(tmp_path, '<transform id="a" type="template" template="x"/>')
    run = run_workflow(flow, state_dir=state)
    path = Path(run.snapshot_path or "")
    path.write_bytes(damage(path.read_bytes()))
    before = path.read_bytes()
    with pytest.raises(SnapshotError, match=message):
        resume_workflow(str(path))
    for argv in (
        ["resume", str(path)],
        ["inspect", str(path)],
        ["runs", "--state-dir", str(state)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(path) in err
        assert "Traceback" not in err
    assert path.read_bytes() == before


def test_a_newer_snapshot_version_is_refused(tmp_path: Path, state: Path) -> None:
    import msgpack

    flow = write_flow(tmp_path, '<transform id="a" type="template" template="x"/>')
    path = Path(run_workflow(flow, state_dir=state).snapshot_path or "")
    envelope = msgpack.unpackb(path.read_bytes())
    envelope["version"] = 99
    path.write_bytes(msgpack.packb(envelope))
    with pytest.raises(SnapshotError, match="format version 99 is newer"):
        resume_workflow(str(path))


# --- secrets --------------------------------------------------------------------------


def test_secrets_never_reach_the_disk(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not in snapshots, logs, or the Execution Log: every written file is searched."""
    secret = "hunter2-SECRET-TOKEN"

    def leaky(ctx: RuntimeContext) -> Any:
        ctx.log.info("using", token=ctx.secrets["TOKEN"])
        raise TransientError(f"server rejected {ctx.secrets['TOKEN']}")

    register_runtime("transform:leaky", leaky, replace=True)
    try:
        flow = write_flow(
            tmp_path,
            '<transform id="echo" type="template" template="token={{ secrets.TOKEN }}"/>\n'
            '<transform id="leak" type="leaky" input="echo"/>',
            "secrets: [TOKEN]\n",
        )
        code = main(
            [
                "run",
                str(flow),
                "--state-dir",
                str(state),
                "--secret",
                f"TOKEN={secret}",
                "--append-log",
            ]
        )
    finally:
        unregister_runtime("transform:leaky")
    assert code == 1
    capsys.readouterr()
    written = [p for p in [*state.rglob("*"), flow] if p.is_file()]
    assert len(written) >= 3
    for path in written:
        assert secret.encode() not in path.read_bytes(), path


# --- inspect, runs, execution log -------------------------------------------------------


def test_inspect_and_runs(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str], gate: Path
) -> None:
    ok = write_flow(tmp_path, '<transform id="a" type="template" template="x"/>', name="alpha")
    bad = write_flow(tmp_path, '<transform id="g" type="gated"/>', name="beta")
    first = run_workflow(ok, state_dir=state)
    second = run_workflow(ok, state_dir=state)
    failed = run_workflow(bad, state_dir=state)
    capsys.readouterr()

    assert main(["inspect", failed.run_id, "--state-dir", str(state), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "failed"
    assert data["nodes"]["g"]["status"] == "failed"
    assert data["errors"][0]["message"] == "the flag is not set"

    assert main(["inspect", failed.run_id, "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out
    assert "RuntimeError: the flag is not set" in out

    assert main(["runs", "--state-dir", str(state), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["workflow"], r["run_id"]) for r in runs] == [
        ("alpha", second.run_id),
        ("alpha", first.run_id),
        ("beta", failed.run_id),
    ]
    assert main(["runs", "--state-dir", str(state)]) == 0
    text = capsys.readouterr().out
    assert (
        text.index("alpha:")
        < text.index(second.run_id)
        < text.index(first.run_id)
        < text.index("beta:")
    )


def test_the_execution_log_keeps_the_last_ten_runs(tmp_path: Path, state: Path) -> None:
    flow = write_flow(tmp_path, '<transform id="a" type="template" template="x"/>')
    original = flow.read_text()
    ids = []
    for _ in range(12):
        assert main(["run", str(flow), "--state-dir", str(state), "--append-log", "--quiet"]) == 0
        ids.append(
            read_snapshot(
                sorted((state / "dur").glob("*.msgpack"), key=os.path.getmtime)[-1]
            ).run_id
        )
    text = flow.read_text()
    assert text.startswith(original)  # the workflow itself is untouched
    rows = [line for line in text.splitlines() if line.startswith(f"| {ids[0][:8]}")]
    assert len(rows) == 10
    assert text.index(ids[-1]) < text.index(ids[-2])  # newest first
    assert ids[0] not in text
    assert ids[1] not in text


# --- real processes: signals and kill -9 -------------------------------------------------

SLOW = """---
name: slow
---
<workflow>
  <transform id="a" type="template" template="{{ 1 }}"/>
  <delay id="d1" duration="300ms" input="a"/>
  <transform id="b" type="template" input="d1" template="{{ input + 1 }}"/>
  <delay id="d2" duration="300ms" input="b"/>
  <transform id="c" type="template" input="d2" template="{{ input + 1 }}"/>
</workflow>
"""


def _start_cli(tmp_path: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    flow = tmp_path / "slow.flow.md"
    flow.write_text(SLOW)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wavecrest.actors",
            "run",
            str(flow),
            "--state-dir",
            str(state),
            "-v",
            *extra,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], needle: str) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if needle in line:
            return
    pytest.fail(f"the process ended before printing {needle!r}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_cli_run_saves_its_snapshot_and_exits_130(
    tmp_path: Path, state: Path, signum: int
) -> None:
    proc = _start_cli(tmp_path, state)
    try:
        _wait_for_line(proc, "done     a")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [snapshot] = (state / "slow").glob("*.msgpack")
    record = read_snapshot(snapshot)
    assert record.status == "cancelled"
    assert record.results["a"].status == "succeeded"
    again = resume_workflow(str(snapshot))
    assert again.status == "completed"
    assert again.outputs["c"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("after", ["a", "d1", "b"])
def test_resume_after_kill_9(tmp_path: Path, state: Path, after: str) -> None:
    """A process killed outright leaves a snapshot saying 'running'; resume finishes the run."""
    proc = _start_cli(tmp_path, state)
    try:
        _wait_for_line(proc, f"done     {after}")
        proc.kill()
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    [snapshot] = (state / "slow").glob("*.msgpack")
    record = read_snapshot(snapshot)
    assert record.status == "running"
    done_before = {p for p, r in record.results.items() if r.status == "succeeded"}
    if after == "b":
        # a finished over 300 ms before b (d1 waits between them): long enough to
        # have reached the snapshot.
        assert "a" in done_before
    # The killed process could not remove its lock file, but the OS dropped the lock.
    assert snapshot.with_suffix(".lock").exists()
    events: list[RunEvent] = []
    again = resume_workflow(str(snapshot), on_event=events.append)
    assert again.status == "completed"
    assert again.outputs["c"] == 3
    assert not done_before & set(started_paths(events))
    assert not snapshot.with_suffix(".lock").exists()


def test_a_run_in_progress_is_not_resumed_a_second_time(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release, waiting = threading.Event(), threading.Event()

    def wait(ctx: RuntimeContext) -> str:
        waiting.set()
        assert release.wait(timeout=60)
        return "done"

    register_runtime("transform:wait", wait, replace=True)
    try:
        flow = write_flow(tmp_path, '<transform id="w" type="wait"/>')
        with Runtime() as runtime:
            handle = runtime.submit(flow, state_dir=state)
            assert waiting.wait(timeout=60)
            lock = state / "dur" / f"{handle.run_id}.lock"
            assert lock.exists()
            with pytest.raises(RunInUseError, match=f"run {handle.run_id} is in use"):
                resume_workflow(handle.run_id, state_dir=state)
            with pytest.raises(ResumeError, match="in use"):
                runtime.resume(handle.run_id, state_dir=state)
            assert main(["resume", handle.run_id, "--state-dir", str(state)]) == 2
            err = capsys.readouterr().err
            assert f"run {handle.run_id} is in use" in err
            assert len(err.strip().splitlines()) == 1
            release.set()
            result = handle.result(timeout=60)
    finally:
        release.set()
        unregister_runtime("transform:wait")
    assert result.status == "completed"
    assert not lock.exists()
    # Refused attempts did not touch the run; once it ended it can be resumed (a no-op).
    assert read_snapshot(result.snapshot_path).resumes == 0
    assert resume_workflow(result.run_id, state_dir=state).status == "completed"


def test_a_run_lock_is_exclusive_and_leaves_no_file(tmp_path: Path) -> None:
    snapshot = tmp_path / "wf" / "r1.msgpack"
    first = RunLock.acquire(snapshot, "r1")
    with pytest.raises(RunInUseError):
        RunLock.acquire(snapshot, "r1")
    first.release()
    first.release()  # twice is harmless
    assert not snapshot.with_suffix(".lock").exists()
    second = RunLock.acquire(snapshot, "r1")
    assert second.held
    second.release()
    assert os.listdir(tmp_path / "wf") == []


def test_copies_of_a_state_dir_resume_independently(
    tmp_path: Path, state: Path, gate: Path
) -> None:
    """A snapshot path (not only a run id) names the run to resume."""
    flow = write_flow(tmp_path, '<transform id="g" type="gated"/>')
    failed = run_workflow(flow, state_dir=state)
    copy = tmp_path / "copy"
    shutil.copytree(state, copy)
    gate.touch()
    snapshot = copy / "dur" / f"{failed.run_id}.msgpack"
    assert resume_workflow(str(snapshot)).status == "completed"
    assert read_snapshot(Path(failed.snapshot_path or "")).status == "failed"
