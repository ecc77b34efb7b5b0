"""What a run report shows, computed from a snapshot, its log's timeline and the plan.

:func:`run_model` joins the three sources into one :class:`RunModel`:

* a :class:`Row` per node path: every path of the snapshot, every path the
  log saw that the snapshot missed (the process died first), and every node
  of the plan that never started (``pending``), ordered by when they first
  did something, then by declaration;
* the :class:`Summary` of the run (status, seed, options, segments and
  durations, counts);
* the critical path (see :func:`~._timeline.critical_path`), and the state of
  each plan node for the graph (see :mod:`._graphview`).

Without a log (deleted, or never written) the timeline is rebuilt from the
snapshot alone: one bar per node, from its last attempt's start to its end.
:meth:`RunModel.data` is the compact JSON the report's script draws from:
times are seconds from the run's first start, rows and attempts are arrays.

Everything that came from the run is passed on as data, never as markup:
the report escapes it where it shows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._events import ErrorInfo, NodeResult
from ._graph import Plan, PlannedNode
from ._graphview import NodeState
from ._model import TaskNode
from ._snapshot import RunRecord
from ._timeline import Attempt, Segment, Timeline, critical_path

__all__ = ["OUTCOME_CODES", "Row", "RunModel", "Summary", "plan_states", "run_model"]

#: Attempt outcomes as the report's data numbers them.
OUTCOME_CODES = {
    "succeeded": 0,
    "retried": 1,
    "fell back": 2,
    "failed": 3,
    "cancelled": 4,
    "interrupted": 5,
}


@dataclass(frozen=True, slots=True)
class Row:
    """One node path as the report lists it."""

    path: str
    node: str
    kind: str
    status: str
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    duration: float | None = None
    queued: float = 0.0
    critical: bool = False
    fallback: str | None = None
    reason: str | None = None
    abandoned: bool = False
    errors: tuple[ErrorInfo, ...] = ()
    output: str | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """The run at a glance."""

    run_id: str
    workflow: str
    version: str | None
    status: str
    reason: str | None
    seed: int
    workflow_path: str | None
    options: Mapping[str, Any]
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    #: From the first segment's start to the last one's end (pauses between resumes included).
    elapsed: float | None
    #: The segments' durations added up: the time the run was running.
    busy: float | None
    resumes: int
    segments: tuple[Segment, ...]
    counts: Mapping[str, int]
    paths: int
    attempts: int
    retries: int
    fallbacks: int
    faults: int
    timeouts: int
    abandoned: int
    #: Seconds attempts waited for permits, added up, and the longest single wait.
    queued: float
    queued_max: float
    errors: int
    critical_seconds: float | None


@dataclass(frozen=True, slots=True)
class RunModel:
    """Everything a run report shows (see the module docstring)."""

    summary: Summary
    rows: tuple[Row, ...]
    timeline: Timeline
    critical: tuple[str, ...]
    states: Mapping[str, NodeState]
    fallback_states: Mapping[str, NodeState]
    #: Why the timeline is incomplete, if it is (no log, torn lines).
    notes: tuple[str, ...] = field(default=())

    @property
    def origin(self) -> float:
        """The time everything in :meth:`data` counts from: the run's first start."""
        times = [s.started_at for s in self.summary.segments]
        times += [r.started_at for r in self.rows if r.started_at is not None]
        return min(times) if times else self.summary.created_at

    def data(self) -> dict[str, Any]:
        """The JSON the report's script reads (see the module docstring)."""
        t0 = self.origin

        def rel(at: float | None) -> float | None:
            return None if at is None else round(at - t0, 6)

        index = {row.path: i for i, row in enumerate(self.rows)}
        rows = []
        details: dict[str, Any] = {}
        for i, row in enumerate(self.rows):
            rows.append(
                [
                    row.path,
                    row.kind,
                    row.status,
                    rel(row.started_at),
                    rel(row.finished_at),
                    row.attempts,
                    None if row.duration is None else round(row.duration, 6),
                    round(row.queued, 6),
                    1 if row.critical else 0,
                ]
            )
            detail: dict[str, Any] = {}
            if row.errors:
                detail["errors"] = [[e.type, e.message, e.traceback] for e in row.errors]
            if row.output is not None:
                detail["output"] = row.output
            if row.reason:
                detail["reason"] = row.reason
            if row.fallback:
                detail["fallback"] = row.fallback
            if row.abandoned:
                detail["abandoned"] = True
            logs = self.timeline.logs.get(row.path)
            if logs:
                detail["logs"] = list(logs[:200])
                if len(logs) > 200:
                    detail["logs"].append(f"... {len(logs) - 200:,} more lines in the log")
            if detail:
                details[str(i)] = detail
        attempts = [
            [
                index[a.path],
                a.attempt,
                rel(a.ready_at),
                rel(a.started_at),
                rel(a.finished_at),
                OUTCOME_CODES[a.outcome],
                a.fallback,
                "; ".join(a.faults) or None,
                a.error,
                a.message,
                1 if a.timed_out else 0,
                None if a.retry_delay is None else round(a.retry_delay, 6),
                a.segment,
            ]
            for a in self.timeline.attempts
            if a.path in index
        ]
        marks = [
            [index[m.path], rel(m.at), m.kind, m.text]
            for m in self.timeline.marks
            if m.path in index
        ]
        segments = [
            [rel(s.started_at), rel(s.end), s.status, s.resumed, s.finished_at is not None]
            for s in self.summary.segments
        ]
        return {
            "origin": t0,
            "segments": segments,
            "rows": rows,
            "attempts": attempts,
            "marks": marks,
            "details": details,
            "critical": [index[p] for p in self.critical if p in index],
        }


def _kind(pn: PlannedNode | None) -> str:
    if pn is None:
        return ""
    node = pn.node
    return node.runtime_key if isinstance(node, TaskNode) else node.element


def _preview(value: Any, limit: int) -> str:
    try:
        text = json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _declaration_order(plan: Plan | None) -> dict[str, int]:
    if plan is None:
        return {}
    order: dict[str, int] = {}
    for i, node_id in enumerate(plan.nodes):
        order[node_id] = i
    return order


def plan_states(rows: tuple[Row, ...]) -> dict[str, NodeState]:
    """The state of each node id over its paths (iterations count one each)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        per = counts.setdefault(row.node, {})
        per[row.status] = per.get(row.status, 0) + 1
    return {node: NodeState(c) for node, c in counts.items()}


def _fallback_states(results: Mapping[str, NodeResult]) -> dict[str, NodeState]:
    counts: dict[str, dict[str, int]] = {}
    for result in results.values():
        if result.fallback:
            per = counts.setdefault(result.fallback, {})
            per[result.status] = per.get(result.status, 0) + 1
    return {node: NodeState(c) for node, c in counts.items()}


def _snapshot_timeline(record: RunRecord) -> Timeline:
    """A timeline from the snapshot alone: one bar per task node that ran, one segment."""
    attempts = []
    for path, result in record.results.items():
        if result.started_at is None or result.finished_at is None or result.attempts < 1:
            continue
        outcome = {"succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}.get(
            result.status
        )
        if outcome is None:
            continue
        attempts.append(
            Attempt(
                path,
                result.attempts,
                0,
                result.started_at,
                result.started_at,
                result.finished_at,
                outcome,
                fallback=result.fallback,
                error=result.error.type if result.error and outcome == "failed" else None,
                message=result.error.message if result.error and outcome == "failed" else None,
                timed_out=bool(result.error and result.error.type == "NodeTimeoutError"),
            )
        )
    attempts.sort(key=lambda a: (a.started_at, a.path))
    start = record.started_at if record.started_at is not None else record.created_at
    end = record.finished_at
    segment = Segment(
        0,
        start,
        end,
        end if end is not None else record.updated_at,
        record.status if end is not None else None,
        record.reason,
        record.resumes > 0,
        record.seed,
    )
    return Timeline((segment,), tuple(attempts), ())


def run_model(
    record: RunRecord,
    timeline: Timeline | None,
    plan: Plan | None,
    *,
    preview: int | None = None,
) -> RunModel:
    """Join a snapshot, its log's timeline (None: no log) and the plan (None: the
    workflow no longer plans) into what the report shows. ``preview`` caps each output
    shown, in characters (default: 400, or 120 for runs of more than 2,000 paths)."""
    notes: list[str] = []
    if timeline is None:
        timeline = _snapshot_timeline(record)
        notes.append(
            "The run's log was not found: the timeline shows one bar per node, from the "
            "snapshot, without queueing, retries or faults."
        )
    elif timeline.unreadable:
        notes.append(
            f"{timeline.unreadable:,} line(s) of the log could not be read (a crash can tear "
            "the last one) and were skipped."
        )
    if not timeline.segments:
        timeline = Timeline(
            _snapshot_timeline(record).segments,
            timeline.attempts,
            timeline.marks,
            timeline.logs,
            timeline.unreadable,
            timeline.last_at,
        )
    results = record.results
    by_path = timeline.attempts_by_path()
    paths = list(results)
    seen = set(paths)
    for path in by_path:
        if path not in seen:
            paths.append(path)
            seen.add(path)
    for mark in timeline.marks:
        if mark.path not in seen:
            paths.append(mark.path)
            seen.add(mark.path)
    if plan is not None:
        for path in plan.static_paths():
            if path not in seen:
                paths.append(path)
                seen.add(path)
    limit = preview if preview is not None else (120 if len(paths) > 2000 else 400)

    first: dict[str, float] = {}
    for path, attempts in by_path.items():
        first[path] = min(a.ready_at for a in attempts)
    spans: dict[str, tuple[float, float]] = {}
    for path, done in results.items():
        if done.finished_at is None:
            continue
        began = done.started_at if done.started_at is not None else done.finished_at
        spans[path] = (min(began, first.get(path, began)), done.finished_at)
    critical: tuple[str, ...] = ()
    if plan is not None:
        critical = tuple(critical_path(plan, spans))
    on_path = set(critical)

    checkpoints = {m.path for m in timeline.marks if m.kind == "checkpoint"}
    rows = []
    for path in paths:
        node_id = path.rpartition("/")[2]
        pn = plan.nodes.get(node_id) if plan is not None else None
        result = results.get(path)
        attempts = by_path.get(path, [])
        queued = sum(a.started_at - a.ready_at for a in attempts)
        if result is not None:
            start: float | None = spans[path][0] if path in spans else result.started_at
            if attempts:
                start = min(start, first[path]) if start is not None else first[path]
            rows.append(
                Row(
                    path,
                    node_id,
                    _kind(pn),
                    result.status,
                    start,
                    result.finished_at,
                    max(result.attempts, sum(1 for a in attempts if a.fallback is None)),
                    result.duration,
                    queued,
                    path in on_path,
                    result.fallback,
                    result.reason,
                    result.abandoned,
                    result.errors,
                    _preview(result.output, limit)
                    if result.status == "succeeded" and result.output is not None
                    else None,
                )
            )
        elif attempts:
            last = attempts[-1]
            ended = last.finished_at if last.outcome != "interrupted" else None
            rows.append(
                Row(
                    path,
                    node_id,
                    _kind(pn),
                    "running" if last.outcome == "interrupted" else "pending",
                    first[path],
                    ended,
                    len(attempts),
                    None,
                    queued,
                    reason="the log saw it start; the snapshot has no result for it",
                )
            )
        else:
            status = "waiting" if path in checkpoints else "pending"
            rows.append(Row(path, node_id, _kind(pn), status))
    order = _declaration_order(plan)
    rows.sort(
        key=lambda r: (
            r.started_at if r.started_at is not None else math.inf,
            order.get(r.node, len(order)),
            r.path,
        )
    )
    frozen_rows = tuple(rows)

    counts: dict[str, int] = {}
    for row in frozen_rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    segments = timeline.segments
    started = segments[0].started_at if segments else record.started_at
    ended = segments[-1].finished_at if segments else record.finished_at
    last_end = segments[-1].end if segments else None
    elapsed = None if started is None or last_end is None else max(0.0, last_end - started)
    busy = sum(s.end - s.started_at for s in segments) if segments else None
    critical_seconds = None
    if critical and critical[0] in spans and critical[-1] in spans:
        critical_seconds = spans[critical[-1]][1] - spans[critical[0]][0]
    task_attempts = len(timeline.attempts) or sum(
        r.attempts for r in results.values() if r.started_at is not None
    )
    summary = Summary(
        run_id=record.run_id,
        workflow=record.workflow,
        version=record.version,
        status=record.status,
        reason=record.reason,
        seed=record.seed,
        workflow_path=record.workflow_path,
        options=dict(record.options),
        created_at=record.created_at,
        updated_at=record.updated_at,
        started_at=started,
        finished_at=ended,
        elapsed=elapsed,
        busy=busy,
        resumes=record.resumes,
        segments=segments,
        counts=counts,
        paths=len(frozen_rows),
        attempts=task_attempts,
        retries=sum(1 for a in timeline.attempts if a.outcome == "retried"),
        fallbacks=sum(1 for r in results.values() if r.fallback),
        faults=sum(1 for m in timeline.marks if m.kind == "fault"),
        timeouts=sum(1 for a in timeline.attempts if a.timed_out),
        abandoned=record.abandoned,
        queued=sum(r.queued for r in frozen_rows),
        queued_max=max((a.started_at - a.ready_at for a in timeline.attempts), default=0.0),
        errors=len(record.errors),
        critical_seconds=critical_seconds,
    )
    return RunModel(
        summary,
        frozen_rows,
        timeline,
        critical,
        plan_states(frozen_rows),
        _fallback_states(results),
        tuple(notes),
    )
