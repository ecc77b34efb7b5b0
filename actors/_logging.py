"""Structured logs: structlog events as JSON lines beside the snapshot.

Each persisted run appends to ``<state-dir>/<workflow>/<run_id>.jsonl``. The
run's events (``run.started``, ``node.started``, ``node.retrying``...) are
logged there by the snapshot writer, and whatever a runtime logs through
``ctx.log`` goes to the same file through the same writer (so lines follow the
run's causal order), bound with ``run_id``, ``node`` and ``attempt``. Lines are
buffered and flushed whenever the snapshot is written, so the log never lags
the snapshot. Secret values are masked in every line.

A run that is not persisted logs through ``structlog.get_logger("wavecrest")``,
so an embedding application's own structlog configuration applies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from wavecrest.core import RunEvent
from wavecrest.core._events import (
    CheckpointWaiting,
    ErrorInfo,
    FaultInjected,
    NodeCancelled,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunFinished,
    RunStarted,
)

__all__ = [
    "EventLines",
    "ForwardingLogger",
    "JsonLinesFile",
    "LogLine",
    "event_fields",
    "open_run_log",
    "quote",
    "run_logger",
]


class JsonLinesFile:
    """A run's JSON-lines file: buffered, appended under a lock, secret values masked."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self.path = path

    def write_lines(self, lines: list[str]) -> None:
        """Append several rendered lines at once (secrets masked)."""
        text = "\n".join(lines) + "\n"
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        with self._lock:
            if not self._file.closed:
                self._file.write(text)

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


class LogLine(NamedTuple):
    """A rendered log line for the run's snapshot writer to append."""

    text: str


class ForwardingLogger:
    """A structlog logger for runtimes: it queues each rendered line for the snapshot writer.

    Lines share one queue with the run's events (the writer's feed), so they
    reach the file after the ``node.started`` of their attempt and before its
    result: the log reads causally.
    """

    def __init__(self, feed: Any) -> None:
        self._feed = feed

    def msg(self, message: str) -> None:
        self._feed.push([LogLine(message)])

    log = debug = info = warn = warning = error = critical = exception = msg


class EventLines:
    """Renders the run's own events as JSON lines, the shape structlog's JSONRenderer gives.

    The engine logs two events per node; going through structlog's processor
    chain for each would cost more than the rest of persisting the run, so
    these lines are built directly. Runtimes' own lines still go through
    structlog (``ctx.log``).
    """

    def __init__(self, **bound: Any) -> None:
        self._bound = bound
        self._second = -1
        self._prefix = ""
        # '{"run_id": "...", "workflow": "...", ' for the lines built from templates.
        head = (json.dumps(bound, default=repr)[:-1] + ", " if bound else "{").replace("%", "%%")
        #: The two lines every node writes, as %-formats of (JSON-quoted path,
        #: attempt, running or duration as JSON, timestamp prefix, microseconds):
        #: see :meth:`started` and :meth:`succeeded`.
        self.started_format = (
            head + '"node": %s, "attempt": %d, "running": %d, "event": "node.started", '
            '"level": "info", "timestamp": "%s.%06dZ"}'
        )
        self.succeeded_format = (
            head + '"node": %s, "attempt": %d, "duration": %s, "event": "node.succeeded", '
            '"level": "info", "timestamp": "%s.%06dZ"}'
        )

    def prefix(self, second: int) -> str:
        """The timestamp of the whole ``second`` (seconds since the epoch), without the Z."""
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix

    def _timestamp(self, at: float) -> str:
        second = int(at)
        return f"{self.prefix(second)}.{int((at - second) * 1_000_000):06d}Z"

    def started(self, path: str, attempt: int, at: float, running: int) -> str:
        """The ``node.started`` line of a node's (non-fallback) attempt."""
        second = int(at)
        micro = int((at - second) * 1_000_000)
        return self.started_format % (quote(path), attempt, running, self.prefix(second), micro)

    def succeeded(self, path: str, attempt: int, at: float, duration: float | None) -> str:
        """The ``node.succeeded`` line of a node that ran (not one reused on resume)."""
        second = int(at)
        micro = int((at - second) * 1_000_000)
        shown = "null" if duration is None else repr(duration)
        return self.succeeded_format % (quote(path), attempt, shown, self.prefix(second), micro)

    def render(self, event: RunEvent) -> str:
        """The line of any event."""
        # The two lines every node writes, from templates; the rest via json.dumps.
        kind = type(event)
        if kind is NodeStarted and event.fallback is None and event.running is not None:
            return self.started(event.path, event.attempt, event.at, event.running)
        if kind is NodeSucceeded and not event.reused:
            return self.succeeded(
                event.path,
                event.attempt,
                event.at,
                event.result.duration,
            )
        line = dict(self._bound)
        line.update(event_fields(event))
        line["event"] = event.name
        line["level"] = "info"
        line["timestamp"] = self._timestamp(event.at)
        return json.dumps(line, default=repr)


#: A str as a JSON string (ASCII, escaped), as json.dumps gives it.
quote = json.encoder.encode_basestring_ascii

_PROCESSORS: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    structlog.processors.JSONRenderer(default=repr),
]


def open_run_log(path: Path, secrets: Iterable[str] = ()) -> JsonLinesFile:
    """The JSON-lines sink of one persisted run."""
    return JsonLinesFile(path, secrets)


def run_logger(sink: ForwardingLogger | None, **bound: Any) -> Any:
    """The structlog logger runtimes use: into the run's log if persisted, else structlog's."""
    if sink is None:
        return structlog.get_logger("wavecrest").bind(**bound)
    return structlog.wrap_logger(sink, processors=_PROCESSORS).bind(**bound)


def event_fields(event: RunEvent) -> dict[str, Any]:
    """The log fields of an event (outputs are left out; errors keep their traceback)."""
    fields: dict[str, Any] = {}
    if isinstance(event, RunStarted):
        fields = {"workflow": event.workflow, "seed": event.seed, "resumed": event.resumed}
    elif isinstance(event, NodeStarted):
        fields = {"node": event.path, "attempt": event.attempt}
        if event.running is not None:
            fields["running"] = event.running
        if event.fallback:
            fields["fallback"] = event.fallback
    elif isinstance(event, NodeRetrying):
        fields = {
            "node": event.path,
            "attempt": event.attempt,
            "delay": round(event.delay, 6),
            "error": event.error.type,
            "message": event.error.message,
            **_classification(event.error),
        }
        if event.fallback:
            fields["fallback"] = event.fallback
    elif isinstance(event, NodeSucceeded):
        fields = {"node": event.path, "attempt": event.attempt, "duration": event.result.duration}
        if event.reused:
            fields["reused"] = True
    elif isinstance(event, NodeFailed):
        fields = {
            "node": event.path,
            "attempt": event.attempt,
            "error": event.error.type,
            "message": event.error.message,
            "traceback": event.error.traceback,
            **_classification(event.error),
        }
        if event.fail_fast:
            fields["fail_fast"] = True
    elif isinstance(event, NodeCancelled):
        fields = {"node": event.path, "attempt": event.attempt, "reason": event.result.reason}
        if event.result.abandoned:
            fields["abandoned"] = True
    elif isinstance(event, NodeSkipped):
        fields = {"node": event.path, "reason": event.result.reason}
    elif isinstance(event, CheckpointWaiting):
        fields = {"node": event.path, "prompt": event.prompt, "deadline": event.deadline}
    elif isinstance(event, FaultInjected):
        fields = {
            "node": event.path,
            "attempt": event.attempt,
            "fault": event.fault,
            "rule": event.rule,
        }
    elif isinstance(event, RunFinished):
        fields = {
            "status": event.status,
            "reason": event.reason,
            "errors": len(event.errors),
            "abandoned": event.abandoned,
        }
    return fields


def _classification(error: ErrorInfo) -> dict[str, Any]:
    """How a logged error was classified where it was caught, for replaying the run: only
    what is set (``retryable``, ``permanent``, ``retry_after``)."""
    fields: dict[str, Any] = {}
    if error.retryable:
        fields["retryable"] = True
    if error.permanent:
        fields["permanent"] = True
    if error.retry_after is not None:
        fields["retry_after"] = error.retry_after
    return fields
