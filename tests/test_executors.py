"""Executors without a cluster: naming one, the reactive actor attempts on a cluster use, and
execute_task running the registry entry an executor brought along."""

from __future__ import annotations

from typing import Any

import pytest
from wavecrest.actors._executors import executor_key, open_executor
from wavecrest.core import (
    ExecutorError,
    NeverCancelled,
    PermanentError,
    RuntimeSpec,
    TransferError,
    WavecrestError,
    execute_task,
    parse_workflow,
    register_runtime,
    runtime_keys,
    unregister_runtime,
)
from wavecrest.core._events import StartTask, TaskCancelled, TaskFailed, TaskSucceeded

pytestmark = pytest.mark.usefixtures("no_new_threads")


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        (None, None),
        ("local", None),
        ("dask", "dask"),
        ("dask://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("dask://scheduler.internal:1", "tcp://scheduler.internal:1"),
        ("dask://[::1]:8786", "tcp://[::1]:8786"),
    ],
)
def test_an_executor_is_named_by_local_dask_or_an_address(spec: Any, key: Any) -> None:
    assert executor_key(spec) == key


def test_the_local_executor_is_no_executor_at_all() -> None:
    """The default path has no executor object: the scheduler starts NodeActors itself."""
    assert open_executor(None) is None
    assert open_executor("local") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Local", "invalid executor 'Local': expected 'local', 'dask://HOST:PORT', 'dask' or a"),
        ("tcp://h:1", "invalid executor 'tcp://h:1': expected"),
        ("dask://", "invalid executor 'dask://': expected dask://HOST:PORT"),
        ("dask://h:port", "invalid executor 'dask://h:port': expected dask://HOST:PORT"),
        ("dask://h:0", "the port must be between 1 and 65535, got 0"),
        (object, "invalid executor <class 'object'>"),
    ],
)
def test_anything_else_is_refused_with_what_is_valid(spec: Any, message: str) -> None:
    with pytest.raises(ExecutorError, match=message.replace("(", r"\(")):
        executor_key(spec)


def test_the_new_errors_have_their_place_in_the_hierarchy() -> None:
    """ExecutorError is bad input (CLI exit 2); TransferError is a permanent node failure."""
    assert issubclass(ExecutorError, WavecrestError)
    assert issubclass(TransferError, PermanentError)
    assert not TransferError("x").retryable


def test_execute_task_runs_the_entry_it_is_given_not_the_registry() -> None:
    """A worker runs the entry the client registered, even under a key its registry lacks."""
    wf = parse_workflow(
        "---\nname: t\n---\n<workflow>\n"
        '<transform id="n" type="template" template="{{ 1 }}"/>\n</workflow>\n'
    )
    node = wf.body[0]
    assert "transform:shipped" not in runtime_keys()
    entry = RuntimeSpec("transform:shipped", lambda ctx: ("shipped", ctx.input))
    start = StartTask(1, "n", 1, node, 41)
    outcome = execute_task(start, cancel=NeverCancelled(), runtime=entry)
    assert outcome == TaskSucceeded(1, ("shipped", 41))


# --- the worker side of the Dask executor, in this process ----------------------------------


def _attempt(body: str, key: str) -> tuple[Any, list[Any]]:
    """Run one attempt through run_attempt as a worker would, in this process."""
    import pickle

    from wavecrest.actors import _dask
    from wavecrest.core import get_runtime

    wf = parse_workflow(f"---\nname: t\n---\n<workflow>\n{body}\n</workflow>\n")
    node = wf.body[0]
    work = _dask.WorkerEnv("run", "t", ".", {}, None, 1 << 20)
    start = StartTask(7, node.id, 1, node, None)
    data = _dask.run_attempt(
        pickle.dumps(work),
        _dask._cloudpickle(get_runtime(node.runtime_key)),
        pickle.dumps(start),
        key,
        7,
        node.id,
    )
    return pickle.loads(data)


def test_a_cancellation_that_arrives_before_its_task_starts_is_seen_at_once() -> None:
    """cancel_attempts on a key no attempt runs under yet: the attempt starts cancelled."""
    from wavecrest.actors import _dask

    _dask.cancel_attempts(["wc-d-7-early"])
    register_runtime("transform:wait", lambda ctx: ctx.sleep(60) or "slept")
    try:
        outcome, records = _attempt('<transform id="d" type="wait"/>', "wc-d-7-early")
        assert outcome == TaskCancelled(7)
        assert records == []
        register_runtime("transform:wait", lambda ctx: "not cancelled", replace=True)
        outcome, _ = _attempt('<transform id="d" type="wait"/>', "wc-d-7-other")
        assert outcome == TaskSucceeded(7, "not cancelled")
    finally:
        unregister_runtime("transform:wait")


def test_what_a_worker_cannot_load_fails_the_attempt_not_the_task() -> None:
    from wavecrest.actors import _dask

    data = _dask.run_attempt(b"not a pickle", b"", b"", "wc-x-1-y", 1, "x")
    import pickle

    outcome, _ = pickle.loads(data)
    assert isinstance(outcome, TaskFailed)
    assert outcome.error.type == "TransferError"
    assert "the Dask worker cannot load 'x'" in outcome.error.message


def test_the_worker_log_records_structlog_calls_for_the_client() -> None:
    from wavecrest.actors._dask import WorkerLog

    log = WorkerLog()
    log.bind(step=1).info("read", rows=3, where=object)
    log.warning("odd %s", "thing")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    (info, warning, error) = log.records
    assert info[:3] == ("info", "read", ())
    assert info[3]["step"] == 1
    assert info[3]["rows"] == 3
    assert info[3]["where"] == repr(object)
    assert warning[:3] == ("warning", "odd %s", ("thing",))
    assert error[0] == "error"
    assert "ValueError: bad" in error[3]["exception"]
    with pytest.raises(AttributeError):
        log.nonsense  # noqa: B018 - only the logging methods exist
