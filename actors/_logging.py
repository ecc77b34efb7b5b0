"""Logs: JSON lines beside the snapshot, and the host's own logging.

Each persisted run appends to ``<state-dir>/<workflow>/<run_id>.jsonl``. The
run's events (``run.started``, ``node.started``, ``node.retrying``...) are
logged there by the snapshot writer, and whatever a runtime logs through
``ctx.log`` goes to the same file through the same writer (so lines follow the
run's causal order), bound with ``run_id``, ``node`` and ``attempt``. Lines are
buffered and flushed whenever the snapshot is written, so the log never lags
the snapshot. Secret values are masked in every line.

wavecrest is a library: it never configures logging or structlog, adds no
handler but a ``NullHandler`` to its own ``wavecrest`` logger (so Python's
last-resort handler never prints its records to stderr), and prints nothing.
What it logs reaches the host's configuration through a :class:`HostLogger`,
which decides at each call: when the host has configured structlog
(``structlog.is_configured()``), through ``structlog.get_logger(name)`` and the
host's processors; otherwise as a stdlib record of the logger ``name``, whose
message is ``event key=value ...`` and whose ``wavecrest`` attribute holds the
event and its fields as a dict. Three loggers:

* ``wavecrest.events``: every run's events, at the levels of
  :data:`EVENT_LEVELS`, when the host listens (:func:`host_listens`);
* ``wavecrest.nodes``: what runtimes log through ``ctx.log`` (also into the
  JSON-lines file of a persisted run);
* ``wavecrest``: wavecrest's own diagnostics (a failing event callback, a
  snapshot that could not be written).
"""

from __future__ import annotations

import json
import logging
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
    "EVENTS",
    "EVENT_LEVELS",
    "LIBRARY",
    "NODES",
    "EventLines",
    "ForwardingLogger",
    "HostLogger",
    "JsonLinesFile",
    "LogLine",
    "RunLog",
    "event_fields",
    "host_listens",
    "library_log",
    "log_event",
    "open_run_log",
    "quote",
    "run_logger",
]

LIBRARY = "wavecrest"
EVENTS = "wavecrest.events"
NODES = "wavecrest.nodes"

# The standard library's advice for libraries: records nobody handles go nowhere,
# instead of to the last-resort handler on stderr.
logging.getLogger(LIBRARY).addHandler(logging.NullHandler())

#: The level each run event is logged at on ``wavecrest.events`` (``run.finished`` at
#: INFO when the run completed or paused, WARNING when cancelled, ERROR when failed).
EVENT_LEVELS: dict[str, int] = {
    "run.started": logging.INFO,
    "node.started": logging.DEBUG,
    "node.succeeded": logging.DEBUG,
    "node.retrying": logging.WARNING,
    "node.failed": logging.ERROR,
    "node.cancelled": logging.INFO,
    "node.skipped": logging.DEBUG,
    "checkpoint.waiting": logging.INFO,
    "fault.injected": logging.WARNING,
    "run.finished": logging.INFO,
}
_FINISHED_LEVELS = {"failed": logging.ERROR, "cancelled": logging.WARNING}
_METHODS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


class HostLogger:
    """Logs to the host's structlog configuration if it has one, else to stdlib's ``name``.

    ``bind`` returns a logger with more fields, as structlog's does. A record
    nobody listens for costs one ``isEnabledFor`` check.
    """

    __slots__ = ("_bound", "_name", "_stdlib")

    def __init__(self, name: str, bound: dict[str, Any] | None = None) -> None:
        self._name = name
        self._stdlib = logging.getLogger(name)
        self._bound: dict[str, Any] = bound or {}

    def bind(self, **fields: Any) -> HostLogger:
        return HostLogger(self._name, {**self._bound, **fields})

    def log(self, level: int, event: str, /, **fields: Any) -> None:
        """Log ``event`` with the bound fields and ``fields`` at ``level`` (a stdlib level)."""
        merged = {**self._bound, **fields}
        if structlog.is_configured():
            method = _METHODS.get(level, "info")
            getattr(structlog.get_logger(self._name), method)(event, **merged)
            return
        stdlib = self._stdlib
        if not stdlib.isEnabledFor(level):
            return
        exc_info = merged.pop("exc_info", None)
        # The message stays on one line: multi-line values (tracebacks) are in the dict only.
        text = " ".join(
            [
                event,
                *(
                    f"{key}={_shown(value)}"
                    for key, value in merged.items()
                    if not (isinstance(value, str) and "\n" in value)
                ),
            ]
        )
        stdlib.log(
            level, "%s", text, exc_info=exc_info, extra={"wavecrest": {"event": event, **merged}}
        )

    def debug(self, event: str, /, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)

    def critical(self, event: str, /, **fields: Any) -> None:
        self.log(logging.CRITICAL, event, **fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """An error with the exception being handled (``exc_info``)."""
        fields.setdefault("exc_info", True)
        self.log(logging.ERROR, event, **fields)

    msg = info
    warn = warning


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else None
    if text is not None and text and not any(c.isspace() or c in "='\"" for c in text):
        return text
    return repr(value)


def library_log() -> HostLogger:
    """The logger of wavecrest's own diagnostics, ``wavecrest``."""
    return HostLogger(LIBRARY)


def host_listens(name: str = EVENTS) -> bool:
    """Whether the host would see records of logger ``name``: it configured structlog, or a
    handler other than a NullHandler takes ``name``'s ERROR records (levels, ``propagate``
    and ``logging.disable`` respected). Asked once per run: events nobody hears are never
    built."""
    if structlog.is_configured():
        return True
    logger: logging.Logger | None = logging.getLogger(name)
    assert logger is not None
    if not logger.isEnabledFor(logging.ERROR):
        return False
    while logger is not None:
        for handler in logger.handlers:
            if not isinstance(handler, logging.NullHandler) and handler.level <= logging.ERROR:
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def log_event(log: HostLogger, event: RunEvent) -> None:
    """Log one run event on ``log`` (``wavecrest.events`` bound with the workflow)."""
    name = event.name
    level = EVENT_LEVELS.get(name, logging.INFO)
    if isinstance(event, RunFinished):
        level = _FINISHED_LEVELS.get(event.status, logging.INFO)
    log.log(level, name, run_id=event.run_id, **event_fields(event))


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
        #: attempt, queued and running or duration as JSON, timestamp prefix,
        #: microseconds): see :meth:`started` and :meth:`succeeded`. ``queued`` is a
        #: float rounded to the microsecond, whose repr is its JSON.
        self.started_format = (
            head + '"node": %s, "attempt": %d, "queued": %r, "running": %d, '
            '"event": "node.started", '
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

    def started(self, path: str, attempt: int, at: float, queued: float, running: int) -> str:
        """The ``node.started`` line of a node's (non-fallback) attempt."""
        second = int(at)
        micro = int((at - second) * 1_000_000)
        shown = round(queued, 6)
        return self.started_format % (
            quote(path),
            attempt,
            shown,
            running,
            self.prefix(second),
            micro,
        )

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
            return self.started(event.path, event.attempt, event.at, event.queued, event.running)
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


class RunLog:
    """``ctx.log``: a structlog-style logger that writes to the host's logging
    (``wavecrest.nodes``) and, when the run is persisted, into its JSON-lines file."""

    __slots__ = ("_file", "_host")

    def __init__(self, host: HostLogger, file: Any = None) -> None:
        self._host = host
        self._file = file

    def bind(self, **fields: Any) -> RunLog:
        file = self._file.bind(**fields) if self._file is not None else None
        return RunLog(self._host.bind(**fields), file)

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        if self._file is not None:
            getattr(self._file, method)(event, **fields)
        if method == "exception":
            self._host.exception(event, **fields)
        else:
            self._host.log(_LEVELS[method], event, **fields)

    def debug(self, event: str, /, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self._emit("error", event, fields)

    def critical(self, event: str, /, **fields: Any) -> None:
        self._emit("critical", event, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        self._emit("exception", event, fields)

    def msg(self, event: str, /, **fields: Any) -> None:
        self._emit("msg", event, fields)

    warn = warning


def run_logger(sink: ForwardingLogger | None, **bound: Any) -> RunLog:
    """The logger runtimes get as ``ctx.log``: the host's logging, and the run's file if
    it is persisted (through structlog processors of its own, whatever the host set)."""
    file = None
    if sink is not None:
        file = structlog.wrap_logger(
            sink, processors=_PROCESSORS, wrapper_class=structlog.BoundLogger, context_class=dict
        ).bind(**bound)
    return RunLog(HostLogger(NODES, bound), file)


def event_fields(event: RunEvent) -> dict[str, Any]:
    """The log fields of an event (outputs are left out; errors keep their traceback)."""
    fields: dict[str, Any] = {}
    if isinstance(event, RunStarted):
        fields = {"workflow": event.workflow, "seed": event.seed, "resumed": event.resumed}
    elif isinstance(event, NodeStarted):
        fields = {"node": event.path, "attempt": event.attempt, "queued": round(event.queued, 6)}
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
