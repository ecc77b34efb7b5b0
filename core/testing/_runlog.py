"""Reading a persisted run back: its JSON-lines log as events, and its snapshot.

A persisted run writes ``<state-dir>/<workflow>/<run_id>.jsonl`` beside its
snapshot ``<run_id>.msgpack``; a resumed run appends to the same log, so one
log holds one *segment* per start (each begins with ``run.started``). The
run's own lines become :class:`~wavecrest.core.RunEvent` values again, with
the fields the log keeps (outputs are in the snapshot, not in the log);
lines a runtime logged through ``ctx.log`` are skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import RunNotFoundError, WavecrestError
from .._events import (
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
    RunEvent,
    RunFinished,
    RunStarted,
)
from .._snapshot import RunRecord, read_snapshot

__all__ = [
    "DEFAULT_STATE_DIR",
    "LoggedEvent",
    "RecordedRun",
    "RunLogError",
    "Segment",
    "find_run",
    "read_run_log",
    "recorded_run",
]

DEFAULT_STATE_DIR = ".wavecrest-state"


class RunLogError(WavecrestError):
    """Raised when a run's log cannot be read: missing, not JSON lines, or not a run's log."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One of the run's own events as its log line holds it: ``line`` counts from 1."""

    line: int
    event: RunEvent
    fields: dict[str, Any]


@dataclass(slots=True)
class Segment:
    """The events of one start of the run (the first run, or one resume), in log order."""

    resumed: bool
    events: list[LoggedEvent] = field(default_factory=list)

    @property
    def finished(self) -> LoggedEvent | None:
        """The segment's ``run.finished``, None if it was cut short (a crash)."""
        last = self.events[-1] if self.events else None
        return last if last is not None and isinstance(last.event, RunFinished) else None


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """A persisted run: its snapshot's record and paths, and its log's segments."""

    record: RunRecord | None
    snapshot: Path | None
    log: Path
    segments: tuple[Segment, ...]


def _timestamp(text: Any) -> float:
    if not isinstance(text, str):
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _node_of(path: str) -> str:
    return path.rpartition("/")[2]


def _error(fields: dict[str, Any], path: str, attempt: int) -> ErrorInfo:
    return ErrorInfo(
        str(fields.get("error", "")),
        str(fields.get("message", "")),
        str(fields.get("traceback", "")),
        retryable=bool(fields.get("retryable", False)),
        permanent=bool(fields.get("permanent", False)),
        retry_after=fields.get("retry_after"),
        node=path,
        attempt=attempt,
    )


def _event(fields: dict[str, Any]) -> RunEvent | None:
    """The run event a log line holds, or None for a line a runtime logged."""
    name = fields.get("event")
    run_id = str(fields.get("run_id", ""))
    at = _timestamp(fields.get("timestamp"))
    if name == "run.started":
        return RunStarted(
            run_id=run_id,
            at=at,
            workflow=str(fields.get("workflow", "")),
            seed=int(fields.get("seed", 0)),
            resumed=bool(fields.get("resumed", False)),
        )
    if name == "run.finished":
        return RunFinished(
            run_id=run_id,
            at=at,
            status=fields.get("status", "failed"),
            reason=fields.get("reason"),
            abandoned=int(fields.get("abandoned", 0)),
        )
    path = fields.get("node")
    if not isinstance(path, str):
        return None
    node = _node_of(path)
    attempt = int(fields.get("attempt", 1) or 1)
    if name == "node.started":
        running = fields.get("running")
        return NodeStarted(
            run_id=run_id,
            at=at,
            path=path,
            node=node,
            attempt=attempt,
            fallback=fields.get("fallback"),
            running=running if isinstance(running, int) else None,
        )
    if name == "node.succeeded":
        result = NodeResult(node, "succeeded", attempts=attempt, duration=fields.get("duration"))
        return NodeSucceeded(
            run_id=run_id,
            at=at,
            path=path,
            node=node,
            attempt=attempt,
            result=result,
            reused=bool(fields.get("reused", False)),
        )
    if name == "node.failed":
        error = _error(fields, path, attempt)
        return NodeFailed(
            run_id=run_id,
            at=at,
            path=path,
            node=node,
            attempt=attempt,
            error=error,
            result=NodeResult(node, "failed", error=error, attempts=attempt),
            fail_fast=bool(fields.get("fail_fast", False)),
        )
    if name == "node.retrying":
        return NodeRetrying(
            run_id=run_id,
            at=at,
            path=path,
            node=node,
            attempt=attempt,
            delay=float(fields.get("delay", 0.0)),
            error=_error(fields, path, attempt),
            fallback=fields.get("fallback"),
        )
    if name == "node.cancelled":
        result = NodeResult(
            node,
            "cancelled",
            attempts=attempt,
            reason=fields.get("reason"),
            abandoned=bool(fields.get("abandoned", False)),
        )
        return NodeCancelled(
            run_id=run_id, at=at, path=path, node=node, attempt=attempt, result=result
        )
    if name == "node.skipped":
        result = NodeResult(node, "skipped", reason=fields.get("reason"))
        return NodeSkipped(run_id=run_id, at=at, path=path, node=node, result=result)
    if name == "checkpoint.waiting":
        return CheckpointWaiting(
            run_id=run_id,
            at=at,
            path=path,
            node=node,
            prompt=str(fields.get("prompt", "")),
            deadline=fields.get("deadline"),
        )
    if name == "fault.injected":
        return FaultInjected(
            run_id=run_id,
            at=at,
            path=path,
            node=node,
            attempt=attempt,
            fault=str(fields.get("fault", "")),
            rule=int(fields.get("rule", 0)),
        )
    return None


def read_run_log(path: str | os.PathLike[str]) -> tuple[Segment, ...]:
    """The segments of the run log at ``path``; RunLogError if it is not one."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunLogError(f"{source}: no such run log") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunLogError(f"{source}: cannot read the run log: {exc}") from exc
    segments: list[Segment] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            raise RunLogError(
                f"{source}:{number}: not a JSON line: {line[:60]!r}; a run log holds one JSON "
                "object per line"
            ) from None
        if not isinstance(fields, dict):
            raise RunLogError(f"{source}:{number}: expected a JSON object, got {fields!r}")
        event = _event(fields)
        if event is None:
            continue
        if isinstance(event, RunStarted):
            segments.append(Segment(resumed=event.resumed))
        elif not segments:
            raise RunLogError(
                f"{source}:{number}: {fields.get('event')!r} before any 'run.started'; "
                "a run log begins with its run.started line"
            )
        segments[-1].events.append(LoggedEvent(number, event, fields))
    if not segments:
        raise RunLogError(f"{source}: no 'run.started' line; not a wavecrest run log")
    return tuple(segments)


def find_run(
    run: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None
) -> tuple[Path | None, Path]:
    """The snapshot (None if there is none) and log of ``run``: a run id, a snapshot path or
    a log path; a run id is looked up in ``state_dir`` (default: ``$WAVECREST_STATE_DIR`` or
    ``.wavecrest-state``)."""
    candidate = Path(run)
    if candidate.suffix in (".msgpack", ".jsonl") or os.sep in str(run) or candidate.is_file():
        if candidate.suffix == ".jsonl":
            snapshot = candidate.with_suffix(".msgpack")
            return (snapshot if snapshot.is_file() else None), candidate
        if not candidate.is_file():
            raise RunNotFoundError(f"{candidate}: no such snapshot")
        return candidate, candidate.with_suffix(".jsonl")
    root = Path(
        state_dir
        if state_dir is not None
        else os.environ.get("WAVECREST_STATE_DIR") or DEFAULT_STATE_DIR
    )
    matches = sorted(root.glob(f"*/{run}.msgpack")) if root.is_dir() else []
    if not matches:
        raise RunNotFoundError(f"no run {str(run)!r} in state dir {str(root)!r}")
    if len(matches) > 1:
        shown = ", ".join(str(m) for m in matches)
        raise RunNotFoundError(f"run id {str(run)!r} is ambiguous: {shown}; give the snapshot path")
    return matches[0], matches[0].with_suffix(".jsonl")


def recorded_run(
    run: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None
) -> RecordedRun:
    """The snapshot record (if any) and log segments of ``run`` (see :func:`find_run`)."""
    snapshot, log = find_run(run, state_dir)
    record = read_snapshot(snapshot) if snapshot is not None else None
    return RecordedRun(record, snapshot, log, read_run_log(log))
