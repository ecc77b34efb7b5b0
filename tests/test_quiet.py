"""A quiet library: wavecrest configures no logging, prints nothing, and reaches the host's
own structlog or stdlib logging configuration when there is one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wavecrest.actors import run_workflow
from wavecrest.actors._logging import host_listens
from wavecrest.core import RunEvent, RuntimeContext, parse_workflow, register_runtime
from wavecrest.core import unregister_runtime as unregister

ROOT = Path(__file__).resolve().parent.parent

#: A host program: retries, a final failure, runtimes that log (plain and async), a failing
#: event callback, an injected fault, a persisted run, an asyncio host. It configures no
#: logging and prints one line of its own.
HOST = textwrap.dedent(
    """
    import asyncio, sys
    from wavecrest.actors import Runtime, run_workflow
    from wavecrest.core import TransientError, parse_workflow, register_runtime

    @register_runtime("transform:flaky")
    def flaky(ctx):
        ctx.log.warning("flaky.attempt", attempt=ctx.attempt)
        if ctx.attempt < 3:
            raise TransientError("not yet")
        return ctx.attempt

    @register_runtime("transform:broken")
    async def broken(ctx):
        ctx.log.error("broken.about_to_fail")
        await ctx.asleep(0.001)
        raise ValueError("broken for good")

    def bad_callback(event):
        raise RuntimeError("a bug in the host's callback")

    wf = parse_workflow('''---
    name: noisy
    ---
    <workflow>
      <transform id="f" type="flaky"><on-error><retry max="3" base="1ms"/></on-error></transform>
      <transform id="g" type="template" template="{{ 1 }}">
        <on-error><retry max="1" base="1ms"/></on-error>
      </transform>
      <transform id="b" type="broken" input="f"/>
    </workflow>
    ''')
    faults = {"rules": [{"node": "g", "attempts": [1], "raise": "transient"}]}
    first = run_workflow(wf, on_event=bad_callback, faults=faults, seed=1,
                         state_dir=sys.argv[1])

    async def main():
        async with Runtime(on_event=bad_callback) as rt:
            return await rt.run(wf, seed=2)

    second = asyncio.run(main())
    print(first.status, second.status, first.callback_errors > 0, second.callback_errors > 0)
    """
)


@pytest.mark.slow
def test_an_embedded_run_with_retries_and_failures_prints_nothing(tmp_path: Path) -> None:
    """Nothing on stderr, nothing on stdout but the host's own line."""
    script = tmp_path / "host.py"
    script.write_text(HOST)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.stderr == ""
    assert done.stdout == "failed failed True True\n"
    assert done.returncode == 0
    # The persisted run still logged everything into its own file.
    (log,) = (tmp_path / "state").rglob("*.jsonl")
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "flaky.attempt" in events
    assert "broken.about_to_fail" in events
    assert "node.retrying" in events


STRUCTLOG_HOST = textwrap.dedent(
    """
    import json, sys, structlog
    from wavecrest.actors import run_workflow
    from wavecrest.core import TransientError, parse_workflow, register_runtime

    captured = []

    def capture(logger, method, event_dict):
        captured.append({"logger": logger_name(logger), "method": method, **event_dict})
        raise structlog.DropEvent

    def logger_name(logger):
        return getattr(logger, "name", None)

    structlog.configure(
        processors=[capture],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )

    @register_runtime("transform:flaky")
    def flaky(ctx):
        ctx.log.info("flaky.attempt")
        if ctx.attempt == 1:
            raise TransientError("not yet")
        return ctx.attempt

    wf = parse_workflow('''---
    name: structured
    ---
    <workflow>
      <transform id="f" type="flaky"><on-error><retry max="1" base="1ms"/></on-error></transform>
    </workflow>
    ''')
    result = run_workflow(wf, on_event=lambda event: 1 / 0)
    print(json.dumps({"status": result.status, "captured": captured}, default=repr))
    """
)


@pytest.mark.slow
def test_a_host_that_configured_structlog_gets_the_events_through_it(tmp_path: Path) -> None:
    script = tmp_path / "host.py"
    script.write_text(STRUCTLOG_HOST)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=True,
    )
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert report["status"] == "completed"
    captured = report["captured"]
    by_event = {(entry["logger"], entry["event"]): entry for entry in captured}
    retrying = by_event[("wavecrest.events", "node.retrying")]
    assert retrying["method"] == "warning"
    assert retrying["node"] == "f"
    assert retrying["attempt"] == 1
    assert retrying["workflow"] == "structured"
    assert retrying["error"] == "TransientError"
    assert by_event[("wavecrest.events", "run.finished")]["status"] == "completed"
    attempts = [e for e in captured if e["event"] == "flaky.attempt"]
    assert [(e["logger"], e["node"], e["attempt"]) for e in attempts] == [
        ("wavecrest.nodes", "f", 1),
        ("wavecrest.nodes", "f", 2),
    ]
    failures = [e for e in captured if e["event"] == "callback.failed"]
    assert len(failures) == 1
    assert failures[0]["logger"] == "wavecrest"
    assert failures[0]["method"] == "error"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, event: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.wavecrest["event"] == event]  # type: ignore[attr-defined]


@pytest.fixture
def host_logging() -> Iterator[Records]:
    """A host whose logging takes wavecrest's records at DEBUG."""
    handler = Records()
    logger = logging.getLogger("wavecrest")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def chatty() -> Iterator[None]:
    def chatty(ctx: RuntimeContext) -> Any:
        ctx.log.warning("chatty.said", words=ctx.attempt)
        if ctx.attempt == 1:
            raise ValueError("once")
        return "ok"

    register_runtime("transform:t-chatty", chatty, replace=True)
    yield
    unregister("transform:t-chatty")


@pytest.mark.usefixtures("chatty", "no_new_threads")
def test_a_host_with_stdlib_logging_gets_events_and_runtime_lines(
    host_logging: Records, tmp_path: Path
) -> None:
    """Events on wavecrest.events at their levels, runtimes' lines on wavecrest.nodes, each
    with its fields in the record's ``wavecrest`` dict and a one-line message."""
    wf = parse_workflow(
        "---\nname: logged\n---\n<workflow>\n"
        '<transform id="c" type="t-chatty"><on-error><retry max="1" base="1ms" when="always"/>'
        "</on-error></transform>\n</workflow>\n"
    )
    result = run_workflow(wf, state_dir=tmp_path)
    assert result.status == "completed"
    started = host_logging.named("run.started")[0]
    assert (started.name, started.levelno) == ("wavecrest.events", logging.INFO)
    assert started.wavecrest["workflow"] == "logged"  # type: ignore[attr-defined]
    retrying = host_logging.named("node.retrying")[0]
    assert retrying.levelno == logging.WARNING
    assert retrying.wavecrest["node"] == "c"  # type: ignore[attr-defined]
    assert retrying.getMessage().startswith("node.retrying workflow=logged run_id=")
    assert "\n" not in retrying.getMessage()
    assert [r.levelno for r in host_logging.named("node.started")] == [logging.DEBUG] * 2
    finished = host_logging.named("run.finished")[0]
    assert (finished.levelno, finished.wavecrest["status"]) == (logging.INFO, "completed")  # type: ignore[attr-defined]
    said = host_logging.named("chatty.said")
    assert [(r.name, r.levelno, r.wavecrest["attempt"]) for r in said] == [  # type: ignore[attr-defined]
        ("wavecrest.nodes", logging.WARNING, 1),
        ("wavecrest.nodes", logging.WARNING, 2),
    ]
    assert said[0].wavecrest["run_id"] == result.run_id  # type: ignore[attr-defined]
    # A persisted run's file has the runtime's lines too.
    (log,) = tmp_path.rglob("*.jsonl")
    assert log.read_text().count('"chatty.said"') == 2


def test_a_failed_run_is_logged_as_an_error(host_logging: Records) -> None:
    events: list[RunEvent] = []
    result = run_workflow(
        parse_workflow(
            "---\nname: bad\n---\n<workflow>\n"
            '<transform id="x" type="template" template="{{ 1 // 0 }}"/>\n</workflow>\n'
        ),
        on_event=events.append,
    )
    assert result.status == "failed"
    failed = host_logging.named("node.failed")[0]
    assert failed.levelno == logging.ERROR
    assert "Traceback" in failed.wavecrest["traceback"]  # type: ignore[attr-defined]
    assert "Traceback" not in failed.getMessage()
    assert host_logging.named("run.finished")[0].levelno == logging.ERROR


@pytest.fixture
def probe() -> Iterator[logging.Logger]:
    """A logger of wavecrest's, cut off from the root."""
    logger = logging.getLogger("wavecrest.probe")
    logger.propagate = False
    yield logger
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def test_wavecrest_listens_for_a_real_handler_that_would_take_errors(
    probe: logging.Logger,
) -> None:
    # pytest adds its capturing handlers to loggers that do not propagate: not ours.
    pytest_handlers = list(probe.handlers)
    probe.handlers.clear()
    assert not host_listens("wavecrest.probe")
    probe.addHandler(logging.NullHandler())
    assert not host_listens("wavecrest.probe")
    quiet = logging.StreamHandler()
    quiet.setLevel(logging.CRITICAL)
    probe.addHandler(quiet)
    assert not host_listens("wavecrest.probe")
    quiet.setLevel(logging.DEBUG)
    assert host_listens("wavecrest.probe")
    probe.setLevel(logging.CRITICAL)
    assert not host_listens("wavecrest.probe")
    probe.handlers[:] = pytest_handlers


def test_no_module_configures_logging_or_structlog() -> None:
    """The library's source never calls structlog.configure or logging.basicConfig, nor
    adds a handler to any logger but a NullHandler to its own (the CLI's stderr handler is
    attached to wavecrest's logger only while the CLI runs)."""
    offenders = []
    for path in [*(ROOT / "core").rglob("*.py"), *(ROOT / "actors").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for needle in ("structlog.configure", "basicConfig", "dictConfig", "fileConfig"):
            if needle in text:
                offenders.append(f"{path.name}: {needle}")
        for line in text.splitlines():
            if ".addHandler(" in line and "NullHandler" not in line and path.name != "_cli.py":
                offenders.append(f"{path.name}: {line.strip()}")
    assert offenders == []
