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

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from pykka import ActorDeadError
from wavecrest.core import RunEvent
from wavecrest.core._events import (
    CheckpointWaiting,
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
    "ForwardingLogger",
    "JsonLinesLogger",
    "LogLine",
    "event_fields",
    "open_run_log",
    "run_logger",
]


class JsonLinesLogger:
    """A structlog logger writing rendered lines to a buffered file, thread-safely."""

    def __init__(self, path: Path, secrets: Iterable[str] = ()) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1 << 16)
        self._lock = threading.Lock()
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        self.path = path

    def msg(self, message: str) -> None:
        for secret in self._secrets:
            if secret in message:
                message = message.replace(secret, "***")
        with self._lock:
            if not self._file.closed:
                self._file.write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = msg

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
    """A structlog logger for runtimes: it hands each rendered line to the snapshot writer.

    Lines then reach the file in the order the writer receives them, after the
    ``node.started`` event that preceded the attempt, so the log reads causally.
    """

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        try:
            self._writer.tell(LogLine(message))
        except ActorDeadError:
            pass  # the run is over; a late line from an abandoned attempt is dropped

    log = debug = info = warn = warning = error = critical = exception = msg


_PROCESSORS: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    structlog.processors.JSONRenderer(default=repr),
]


def open_run_log(path: Path, secrets: Iterable[str] = ()) -> JsonLinesLogger:
    """The JSON-lines sink of one persisted run."""
    return JsonLinesLogger(path, secrets)


def run_logger(sink: JsonLinesLogger | ForwardingLogger | None, **bound: Any) -> Any:
    """A structlog logger for one run: to ``sink`` if persisted, else to structlog's default."""
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
        if event.fallback:
            fields["fallback"] = event.fallback
    elif isinstance(event, NodeRetrying):
        fields = {
            "node": event.path,
            "attempt": event.attempt,
            "delay": round(event.delay, 6),
            "error": event.error.type,
            "message": event.error.message,
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
        }
    elif isinstance(event, NodeCancelled):
        fields = {"node": event.path, "attempt": event.attempt, "reason": event.result.reason}
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
