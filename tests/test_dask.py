"""The Dask executor against a real LocalCluster: each attempt's work runs on a worker process,
and everything the local actors guarantee still holds.

One cluster (two worker processes, two threads each, no dashboard) serves the
whole module and is shut down at its end. The runtimes the workers run live
in ``dask_runtimes``, a module they import by name.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import dask_runtimes
import distributed
import pytest
from dask.utils import key_split
from wavecrest.actors import Runtime, resume_workflow, run_workflow
from wavecrest.actors import _dask as dask_executor
from wavecrest.actors._cli import main
from wavecrest.core import (
    ExecutorError,
    NodeRetrying,
    RunEvent,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._snapshot import read_snapshot

pytestmark = pytest.mark.slow

#: Seconds any one wait on the cluster may take before the test fails.
WAIT = 60


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    before = set(multiprocessing.active_children())
    dask_runtimes.register()
    with dask.config.set({"distributed.worker.daemon": False}):
        local = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        )
    try:
        yield local
    finally:
        local.close(timeout=WAIT)
        dask_runtimes.unregister()
    left = [p for p in multiprocessing.active_children() if p not in before]
    assert not left, f"worker processes left running: {left}"


@pytest.fixture
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    """A client of the module's cluster, with both workers up (a test may have killed one)."""
    with distributed.Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=WAIT)
        yield c
        # Every attempt's future was dropped, which releases its task on the cluster. A
        # future is released by a callback on the client's loop: run the loop past it.
        c.sync(asyncio.sleep, 0)
        assert not [key for key in c.futures if str(key).startswith("wc-")]


def flow(body: str, front: str = "") -> Any:
    return parse_workflow(f"---\nname: dasktest\n{front}---\n<workflow>\n{body}\n</workflow>\n")


class Recorder:
    """``on_event``: keeps a run's events."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: RunEvent) -> None:
        with self.lock:
            self.events.append(event)

    def retries(self) -> list[tuple[str, int, str, float]]:
        return [
            (e.path, e.attempt, e.error.type, e.delay)
            for e in self.events
            if isinstance(e, NodeRetrying)
        ]


# --- where the work runs -------------------------------------------------------------


def test_each_attempt_is_one_task_on_a_worker_keyed_by_its_node(
    client: distributed.Client,
) -> None:
    """Attempts run in the worker processes, under keys whose Dask group is wc-<node>."""
    wf = flow(
        '<transform id="first" type="where"/>\n<transform id="second" type="where" input="first"/>'
    )
    result = run_workflow(wf, executor=client)
    assert result.status == "completed", result.errors
    pids = {p.pid for p in distributed_workers(client)}
    for node in ("first", "second"):
        out = result.outputs[node]
        assert out["pid"] in pids
        assert out["pid"] != os.getpid()
        assert key_split(out["key"]) == f"wc-{node}"


def distributed_workers(client: distributed.Client) -> list[Any]:
    return [type("W", (), {"pid": pid}) for pid in client.run(os.getpid).values()]


def test_a_runtime_defined_here_travels_by_value(client: distributed.Client) -> None:
    """A lambda registered in this process runs on the workers (cloudpickle ships it by value)."""
    register_runtime("transform:triple", lambda ctx: (ctx.input * 3, os.getpid()), replace=True)
    try:
        wf = flow(
            '<transform id="n" type="echo" value="{{ 7 }}"/>'
            '<transform id="t" type="triple" input="n"/>'
        )
        result = run_workflow(wf, executor=client)
    finally:
        unregister_runtime("transform:triple")
    assert result.status == "completed", result.errors
    value, pid = result.outputs["t"]
    assert value == 21
    assert pid != os.getpid()


def test_a_runtime_the_workers_cannot_import_fails_permanently(
    client: distributed.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime from a module only this process has is a TransferError that says why."""
    module = type(sys)("wavecrest_client_only")
    exec("def local_only(ctx):\n    return 1\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "wavecrest_client_only", module)
    register_runtime("transform:local-only", module.local_only, replace=True)
    try:
        wf = flow(
            '<transform id="n" type="local-only">'
            '<on-error><retry max="2" base="1ms"/></on-error></transform>'
        )
        result = run_workflow(wf, executor=client)
    finally:
        unregister_runtime("transform:local-only")
    assert result.status == "failed"
    (error,) = result.errors
    assert error.type == "TransferError"
    assert "wavecrest_client_only" in error.message
    assert "importable on the workers" in error.message
    assert result.nodes["n"].attempts == 1  # permanent: never retried


# --- failures, retries, timeouts, cancellation ----------------------------------------

RETRY_FLOW = """
<transform id="a" type="echo" value="1">
  <on-error><retry max="4" base="40ms" cap="1s" when="retryable"/></on-error>
</transform>
<transform id="b" type="echo" input="a">
  <on-error><retry max="4" base="40ms" cap="1s" when="always"/></on-error>
</transform>
"""
RETRY_FAULTS = {
    "rules": [
        {"node": "a", "attempts": [1, 2], "raise": "transient"},
        {"node": "b", "attempts": [1], "crash": True},
        {"node": "b", "attempts": [2], "raise": "transient"},
    ]
}


def test_retries_make_the_same_seeded_decisions_as_local(client: distributed.Client) -> None:
    """Same seed, same faults: the same retries with the same jittered delays as locally;
    a crash fault is a transient NodeCrashedError on Dask too."""
    seen: dict[str, list[tuple[str, int, str, float]]] = {}
    for executor in ("local", client):
        recorder = Recorder()
        result = run_workflow(
            flow(RETRY_FLOW), faults=RETRY_FAULTS, seed=11, executor=executor, on_event=recorder
        )
        assert result.status == "completed", result.errors
        assert result.nodes["a"].attempts == 3
        assert result.nodes["b"].attempts == 3
        seen["dask" if executor is client else "local"] = recorder.retries()
    assert seen["dask"] == seen["local"]
    kinds = [(path, attempt, kind) for path, attempt, kind, _ in seen["dask"]]
    assert kinds == [
        ("a", 1, "InjectedFault"),
        ("a", 2, "InjectedFault"),
        ("b", 1, "NodeCrashedError"),
        ("b", 2, "InjectedFault"),
    ]


def test_an_attempt_past_its_timeout_is_cancelled_on_its_worker(
    client: distributed.Client, tmp_path: Path
) -> None:
    """The timeout reaches the worker: ctx.sleep returns early, the attempt is retried, and
    nothing is abandoned (the grace period is far longer than the test)."""
    wf = flow(
        f'<transform id="slow" type="nap" seconds="120" until="{{{{ 2 }}}}" dir="{tmp_path}"'
        ' timeout="300ms"><on-error><retry max="1" base="1ms"/></on-error></transform>',
        front="runtime: {grace: 120s}\n",
    )
    recorder = Recorder()
    result = run_workflow(wf, executor=client, on_event=recorder)
    assert result.status == "completed", result.errors
    assert result.outputs["slow"] == 2
    assert result.abandoned == 0
    assert [(p, a, kind) for p, a, kind, _ in recorder.retries()] == [
        ("slow", 1, "NodeTimeoutError")
    ]
    assert (tmp_path / "slow.cancelled").read_text() == "1\n"


def test_cancelling_a_run_stops_its_attempts_on_the_workers(
    client: distributed.Client, tmp_path: Path
) -> None:
    """handle.cancel(): attempts sleeping on workers see it and end; none is abandoned."""
    started = f"started-{tmp_path.name}"
    wf = flow(
        "".join(
            f'<transform id="s{i}" type="nap" seconds="120" dir="{tmp_path}" started="{started}"/>'
            for i in range(2)
        ),
        front="runtime: {grace: 120s}\n",
    )
    with Runtime(executor=client) as runtime:
        handle = runtime.submit(wf)
        assert distributed.Event(started, client=client).wait(timeout=WAIT)
        handle.cancel()
        result = handle.result(timeout=WAIT)
    assert result.status == "cancelled"
    assert {r.status for r in result.nodes.values()} == {"cancelled"}
    assert result.abandoned == 0
    assert sorted(p.name for p in tmp_path.glob("*.cancelled")) == ["s0.cancelled", "s1.cancelled"]


def test_an_attempt_that_ignores_its_cancellation_is_abandoned_and_its_future_cancelled(
    client: distributed.Client,
) -> None:
    """Past timeout and grace the attempt is given up, as locally: its permit is released, the
    run goes on, and its Dask future is cancelled (the worker thread runs on until it returns)."""
    wf = flow(
        '<transform id="deaf" type="stubborn" seconds="3" timeout="200ms"/>'
        '<transform id="after" type="echo" value="{{ 1 }}"/>',
        front="runtime: {grace: 200ms, keep_going: true}\n",
    )
    result = run_workflow(wf, executor=client, max_concurrency=1)
    assert result.abandoned == 1
    deaf = result.nodes["deaf"]
    assert deaf.status == "failed"
    assert deaf.error is not None
    assert "it was abandoned" in deaf.error.message
    assert result.outputs == {"after": 1}


def test_fail_fast_cancels_the_attempts_in_flight_on_the_cluster(
    client: distributed.Client, tmp_path: Path
) -> None:
    """A node failing for good cancels the ones running on workers; the run fails with its
    error and the others cancelled, not abandoned."""
    started = f"started-{tmp_path.name}"
    wf = flow(
        f'<transform id="long" type="nap" seconds="120" dir="{tmp_path}" started="{started}"/>'
        f'<transform id="gate" type="nap" seconds="0" started="{started}"/>'
        '<transform id="bad" type="echo" input="gate" fail="{{ true }}"/>',
        front="runtime: {grace: 120s}\n",
    )
    result = run_workflow(wf, executor=client)
    assert result.status == "failed"
    assert [e.node for e in result.errors] == ["bad"]
    assert result.nodes["long"].status == "cancelled"
    assert result.abandoned == 0


def test_a_fallback_runs_on_the_cluster(client: distributed.Client) -> None:
    """A primary that fails for good hands over to its fallback, which runs on a worker."""
    wf = flow(
        '<transform id="main" type="echo" fail="{{ true }}">'
        '<on-error><fallback node="spare"/></on-error></transform>'
        '<transform id="spare" type="where"/>'
    )
    result = run_workflow(wf, executor=client)
    assert result.status == "completed", result.errors
    node = result.nodes["main"]
    assert node.fallback == "spare"
    assert node.error is not None
    assert node.error.type == "PermanentError"
    assert result.outputs["main"]["pid"] != os.getpid()


def test_injected_delay_and_hang_faults_act_on_the_worker(client: distributed.Client) -> None:
    """delay holds the attempt on its worker; hang waits there until its timeout cancels it."""
    wf = flow(
        '<transform id="late" type="echo" value="{{ 1 }}"/>'
        '<transform id="stuck" type="echo" value="{{ 2 }}" timeout="300ms">'
        '<on-error><retry max="1" base="1ms"/></on-error></transform>'
    )
    faults = {
        "rules": [
            {"node": "late", "delay": "200ms"},
            {"node": "stuck", "attempts": [1], "hang": True},
        ]
    }
    recorder = Recorder()
    result = run_workflow(wf, executor=client, faults=faults, seed=3, on_event=recorder)
    assert result.status == "completed", result.errors
    assert result.outputs == {"late": 1, "stuck": 2}
    assert result.nodes["late"].duration is not None
    assert result.nodes["late"].duration >= 0.2
    assert [(p, a, kind) for p, a, kind, _ in recorder.retries()] == [
        ("stuck", 1, "NodeTimeoutError")
    ]
    assert result.abandoned == 0


def test_a_runtime_raising_system_exit_crashes_the_task_not_the_worker(
    client: distributed.Client,
) -> None:
    """SystemExit in a runtime ends that task as a transient NodeCrashedError; both workers
    keep running."""
    workers = set(client.scheduler_info()["workers"])
    wf = flow(
        '<transform id="bye" type="exits"><on-error><retry max="1" base="1ms"/></on-error>'
        "</transform>"
    )
    result = run_workflow(wf, executor=client)
    assert result.status == "failed"
    assert result.nodes["bye"].attempts == 2
    (error,) = result.errors
    assert error.type == "NodeCrashedError"
    assert "SystemExit" in error.message
    assert set(client.scheduler_info()["workers"]) == workers


# --- permits -------------------------------------------------------------------------


def test_the_concurrency_cap_caps_attempts_running_across_the_cluster(
    client: distributed.Client, tmp_path: Path
) -> None:
    """With four worker threads and a cap of 2, never more than 2 attempts overlap."""
    wf = flow(
        "".join(
            f'<transform id="w{i}" type="nap" seconds="0.15" dir="{tmp_path}"/>' for i in range(8)
        )
    )
    result = run_workflow(wf, executor=client, max_concurrency=2)
    assert result.status == "completed", result.errors
    intervals = []
    for i in range(8):
        start, end = (tmp_path / f"w{i}.interval").read_text().split()
        intervals.append((float(start), float(end)))
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in points:
        running += step
        peak = max(peak, running)
    assert peak <= 2


# --- snapshots, logs and resume --------------------------------------------------------


def test_a_persisted_run_on_dask_snapshots_outputs_and_the_workers_logs(
    client: distributed.Client, tmp_path: Path
) -> None:
    """Outputs are encoded on the workers (secrets masked) into the snapshot; ctx.log lines
    from the workers are in the run's log, bound to their node."""
    wf = flow(
        '<transform id="say" type="logs"/>'
        '<transform id="token" type="echo" value="key={{ secrets.TOKEN }}"/>',
        front="secrets: [TOKEN]\n",
    )
    result = run_workflow(
        wf, executor=client, state_dir=tmp_path / "state", secrets={"TOKEN": "s3cr3t-v4lue"}
    )
    assert result.status == "completed", result.errors
    assert result.outputs["token"] == "key=s3cr3t-v4lue"
    record = read_snapshot(result.snapshot_path)
    assert record.results["say"].output == "logged"
    assert record.results["token"].output == "key=***"
    snapshot = Path(result.snapshot_path)
    assert b"s3cr3t-v4lue" not in snapshot.read_bytes()
    lines = snapshot.with_suffix(".jsonl").read_text().splitlines()
    said = [line for line in lines if '"worker.said"' in line]
    assert len(said) == 1
    assert '"node": "say"' in said[0]
    assert '"answer": 42' in said[0]


RESUME_FLOW = """---
name: resumable
config:
  fail: {type: boolean, default: true}
  dir: {type: string}
---
<workflow>
  <transform id="a" type="echo" value="{{ 5 }}" dir="{{ config.dir }}"/>
  <transform id="b" type="echo" input="a" fail="{{ config.fail }}" dir="{{ config.dir }}"/>
</workflow>
"""


@pytest.mark.parametrize(("first", "second"), [("local", "dask"), ("dask", "local")])
def test_a_run_resumes_on_the_other_executor(
    client: distributed.Client, tmp_path: Path, first: str, second: str
) -> None:
    """A run started locally resumes on Dask and the reverse: what succeeded never runs again."""
    path = tmp_path / "resumable.flow.md"
    path.write_text(RESUME_FLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    state = tmp_path / "state"
    executors = {"local": "local", "dask": client}
    failed = run_workflow(
        path, config={"dir": str(marks)}, state_dir=state, executor=executors[first]
    )
    assert failed.status == "failed"
    again = resume_workflow(
        failed.run_id, state_dir=state, config={"fail": False}, executor=executors[second]
    )
    assert again.status == "completed", again.errors
    assert again.outputs == {"a": 5, "b": 5}
    assert (marks / "a").read_text() == "1\n"  # ran once, in the first run
    assert (marks / "b").read_text() == "1\n1\n"  # failed, then ran again


# --- workers that die -------------------------------------------------------------------


def test_a_worker_killed_mid_task_is_a_transient_failure_of_that_attempt(
    client: distributed.Client, cluster: distributed.LocalCluster, tmp_path: Path
) -> None:
    """With Dask set to give up on a task at its first lost worker, a worker killed with
    SIGKILL mid-attempt is a NodeCrashedError: the node is retried per its policy."""
    wf = flow(
        f'<transform id="k" type="kill" dir="{tmp_path}">'
        '<on-error><retry max="2" base="1ms"/></on-error></transform>'
    )
    scheduler = cluster.scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0
    recorder = Recorder()
    try:
        result = run_workflow(wf, executor=client, on_event=recorder)
    finally:
        scheduler.allowed_failures = allowed
    assert result.status == "completed", result.errors
    assert result.outputs["k"] == 2
    ((path, attempt, kind, _),) = recorder.retries()
    assert (path, attempt, kind) == ("k", 1, "NodeCrashedError")
    assert (tmp_path / "k.runs").read_text() == "1\n2\n"


def test_a_worker_killed_mid_task_is_rerun_by_dask_within_its_allowed_failures(
    client: distributed.Client, tmp_path: Path
) -> None:
    """With Dask's default allowed failures, Dask reruns the task on another worker: the
    attempt completes, nothing is lost."""
    wf = flow(f'<transform id="k" type="kill" dir="{tmp_path}"/>')
    result = run_workflow(wf, executor=client)
    assert result.status == "completed", result.errors
    assert result.outputs["k"] == 1
    assert (tmp_path / "k.runs").read_text() == "1\n1\n"  # attempt 1, run twice by Dask


# --- results that cannot travel ------------------------------------------------------------


def test_a_result_over_the_size_limit_fails_with_a_clear_error(
    client: distributed.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit the attempt fails permanently, saying how big it was and the limit."""
    monkeypatch.setattr(dask_executor, "MAX_RESULT_BYTES", 10_000)
    wf = flow(
        '<transform id="small" type="big" size="100"/>'
        '<transform id="huge" type="big" size="50000">'
        '<on-error><retry max="2" base="1ms"/></on-error></transform>',
    )
    result = run_workflow(wf, executor=client, keep_going=True)
    assert result.outputs["small"] == "x" * 100
    (error,) = result.errors
    assert error.type == "TransferError"
    assert "over the limit of 9.8 KiB" in error.message
    assert "'huge'" in error.message
    assert result.nodes["huge"].attempts == 1


def test_an_output_that_does_not_pickle_fails_with_a_clear_error(
    client: distributed.Client,
) -> None:
    wf = flow('<transform id="lock" type="unpicklable"/>')
    result = run_workflow(wf, executor=client)
    (error,) = result.errors
    assert error.type == "TransferError"
    assert "cannot be pickled" in error.message


# --- choosing the executor ---------------------------------------------------------------


def test_a_runtime_runs_each_submit_on_the_executor_it_names(
    client: distributed.Client,
) -> None:
    """Runtime(executor=client) runs on Dask; submit(executor="local") runs one run locally;
    closing the Runtime leaves a client it was given open."""
    wf = flow('<transform id="p" type="where"/>')
    local = flow('<transform id="p" type="echo" value="{{ 1 }}"/>')
    with Runtime(executor=client) as runtime:
        remote = runtime.submit(wf).result(timeout=WAIT)
        here = runtime.submit(local, executor="local").result(timeout=WAIT)
    assert remote.outputs["p"]["pid"] != os.getpid()
    assert here.outputs == {"p": 1}
    assert client.status == "running"


def test_an_address_connects_its_own_client(
    client: distributed.Client, cluster: distributed.LocalCluster, no_new_threads: None
) -> None:
    """dask://HOST:PORT, and "dask" with the address in Dask's configuration; each closed
    with its Runtime."""
    address = cluster.scheduler_address.removeprefix("tcp://")
    wf = flow('<transform id="p" type="where"/>')
    result = run_workflow(wf, executor=f"dask://{address}")
    assert result.outputs["p"]["pid"] != os.getpid()
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        result = run_workflow(wf, executor="dask")
    assert result.outputs["p"]["pid"] != os.getpid()
    with Runtime() as runtime:  # local by default; one run sent to the cluster
        remote = runtime.submit(wf, executor=f"dask://{address}").result(timeout=WAIT)
        here = runtime.submit(flow('<transform id="p" type="echo" value="{{ 1 }}"/>'))
        assert here.result(timeout=WAIT).outputs == {"p": 1}
    assert remote.outputs["p"]["pid"] != os.getpid()


def test_the_cli_runs_and_resumes_on_a_cluster(
    cluster: distributed.LocalCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run --executor dask://HOST:PORT, then resume --executor dask://HOST:PORT."""
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "resumable.flow.md"
    path.write_text(RESUME_FLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    executor = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
    code = main(["run", str(path), "--set", f"dir={marks}", "--executor", executor, "--json"])
    out, _ = capsys.readouterr()
    assert code == 1
    run_id = json.loads(out)["run_id"]
    code = main(["resume", run_id, "--set", "fail=false", "--executor", executor, "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert json.loads(out)["outputs"] == {"a": 5, "b": 5}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ("spark://h:1", "invalid executor 'spark://h:1': expected 'local', 'dask://HOST:PORT'"),
        ("dask://nohost", "invalid executor 'dask://nohost': expected dask://HOST:PORT"),
        ("dask://h:99999", "the port must be between 1 and 65535, got 99999"),
        (42, "invalid executor 42: expected"),
    ],
)
def test_an_executor_that_is_not_one_is_refused(executor: Any, message: str) -> None:
    with pytest.raises(ExecutorError, match=message):
        Runtime(executor=executor)


def test_the_cli_refuses_a_bad_executor_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "resumable.flow.md"
    path.write_text(RESUME_FLOW)
    code = main(["run", str(path), "--executor", "spark://x:1"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == (
        "wavecrest: error: invalid executor 'spark://x:1': expected 'local', "
        "'dask://HOST:PORT', 'dask' or a distributed.Client\n"
    )
    assert not (tmp_path / "state").exists()


def test_an_unreachable_scheduler_is_a_one_line_error_within_the_connect_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "resumable.flow.md"
    path.write_text(RESUME_FLOW)
    port = _free_port()
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}):
        code = main(["run", str(path), "--executor", f"dask://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(
        f"wavecrest: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}' "
        "within 0.5 s: "
    )
    assert err.count("\n") == 1


def test_without_distributed_asking_for_dask_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the package not importable, the Python API and the CLI both say what to install."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ExecutorError, match=r"pip install 'wavecrest\[dask\]'"):
        Runtime(executor="dask://127.0.0.1:8786")
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "resumable.flow.md"
    path.write_text(RESUME_FLOW)
    code = main(["run", str(path), "--executor", "dask://127.0.0.1:8786"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("wavecrest: error: the Dask executor needs the distributed package")
    assert err.count("\n") == 1


def test_workers_that_cannot_import_wavecrest_are_refused_when_connecting(
    cluster: distributed.LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection check asks every worker to import wavecrest's task module; here it
    asks for a module only this process has, as a worker without wavecrest would see it."""
    module = type(sys)("wavecrest_nowhere")
    exec("def probe():\n    return 'wavecrest'\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "wavecrest_nowhere", module)
    monkeypatch.setattr(dask_executor, "probe", module.probe)
    with distributed.Client(cluster, set_as_default=False) as fresh:
        with pytest.raises(
            ExecutorError, match=r"cannot run wavecrest's tasks .*wavecrest_nowhere"
        ):
            Runtime(executor=fresh)
        assert fresh.status == "running"


def test_executor_dask_without_a_configured_address_says_what_to_give() -> None:
    with (
        dask.config.set({"scheduler-address": None}),
        pytest.raises(ExecutorError, match=r"executor 'dask' takes the scheduler's address"),
    ):
        Runtime(executor="dask")


def test_a_client_wavecrest_opens_batches_every_2ms_and_a_given_one_is_left_alone(
    client: distributed.Client, cluster: distributed.LocalCluster
) -> None:
    """Dask's 10 ms client batch window would delay every step of a chain of attempts."""
    own = dask_executor.DaskExecutor.connect(cluster.scheduler_address)
    try:
        assert own.client.scheduler_comm.interval == dask_executor.CLIENT_BATCH_INTERVAL == 0.002
    finally:
        own.close()
    assert own.client.status == "closed"
    before = client.scheduler_comm.interval
    given = dask_executor.DaskExecutor(client, owned=False)
    given.close()
    assert client.scheduler_comm.interval == before
    assert client.status == "running"
