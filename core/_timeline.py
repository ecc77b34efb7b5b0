"""A run's timeline, read back from its JSON-lines log, and the critical path it took.

A persisted run logs one JSON line per event (see ``wavecrest.actors._logging``).
:func:`read_timeline` replays those lines in file order and keeps:

* *segments*: each ``run.started`` opens one (the first run, then each resume)
  and the next ``run.finished`` closes it. A segment that never closes is a
  run that was killed (or is still running); it ends at its last event.
* *attempts*: a ``node.started`` opens an attempt of its path; the path's next
  ``node.retrying`` (then the attempt was retried, or its fallback runs),
  ``node.succeeded``, ``node.failed`` or ``node.cancelled`` closes it. The
  attempt became ready ``queued`` seconds before it started: that is the
  time it waited for a concurrency permit. An attempt still open when its
  segment ends was interrupted.
* *marks*: instants on a path: injected faults, checkpoints that waited,
  skips, and failures of nodes that had no attempt (control nodes).
* the lines each runtime logged through ``ctx.log``, by path.

State while replaying: the open attempt of each path and the segment being
read. A line that is not a JSON object (a torn last line after ``kill -9``)
is counted in ``Timeline.unreadable`` and skipped; one that lacks a field an
event needs is kept as a log line. Nothing here reads a file or a clock.

:func:`critical_path` walks a finished run backwards: from the node that
finished last, to the dependency of each node that finished last, into a
control node's body (its last node to finish) and from a body's first nodes
out to what started the body (the iteration before, for loops and a limited
foreach, else the control node's own dependencies).
"""

from __future__ import annotations

import calendar
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._graph import Plan, PlannedNode

__all__ = [
    "Attempt",
    "Mark",
    "Segment",
    "Timeline",
    "critical_path",
    "parse_timestamp",
    "read_timeline",
]

#: What closed an attempt.
OUTCOMES = ("succeeded", "retried", "fell back", "failed", "cancelled", "interrupted")

_TIMEOUT_ERRORS = frozenset({"NodeTimeoutError"})


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a run: the first run or a resume.

    ``finished_at`` is None when the log ends without ``run.finished`` (the
    process died, or the run is still going); ``last_at`` is the segment's
    latest event either way. ``reused`` counts the nodes a resume took from
    the snapshot instead of running them again.
    """

    index: int
    started_at: float
    finished_at: float | None
    last_at: float
    status: str | None
    reason: str | None
    resumed: bool
    seed: int | None
    reused: int = 0

    @property
    def end(self) -> float:
        return self.finished_at if self.finished_at is not None else self.last_at


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a task node (or of its fallback, named by ``fallback``).

    It waited for its permit from ``ready_at`` to ``started_at`` and ran until
    ``finished_at`` (None: still running when the log ended). ``outcome`` is
    one of :data:`OUTCOMES`; ``retry_delay`` is the wait before the next
    attempt when it was retried; ``faults`` the faults injected into it.
    """

    path: str
    attempt: int
    segment: int
    ready_at: float
    started_at: float
    finished_at: float | None
    outcome: str
    fallback: str | None = None
    error: str | None = None
    message: str | None = None
    timed_out: bool = False
    faults: tuple[str, ...] = ()
    retry_delay: float | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened to ``path`` at an instant: ``kind`` is ``fault``,
    ``checkpoint``, ``skipped``, ``failed`` or ``cancelled``."""

    path: str
    at: float
    kind: str
    text: str
    segment: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything :func:`read_timeline` found in a run's log (see the module docstring)."""

    segments: tuple[Segment, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    marks: tuple[Mark, ...] = ()
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Lines that were not JSON objects (a line torn by a crash), skipped.
    unreadable: int = 0
    #: The latest timestamp of any event (None for an empty log).
    last_at: float | None = None

    def attempts_by_path(self) -> dict[str, list[Attempt]]:
        """Each path's attempts, in the order they started."""
        found: dict[str, list[Attempt]] = {}
        for attempt in self.attempts:
            found.setdefault(attempt.path, []).append(attempt)
        return found


_SECONDS: dict[str, float] = {}


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of a log timestamp, ``2026-11-22T06:20:28.123456Z`` (UTC).

    Raises ValueError for anything else.
    """
    if len(text) < 20 or text[-1] != "Z" or text[10] != "T":
        raise ValueError(f"invalid timestamp {text!r}: expected e.g. 2026-11-22T06:20:28.123456Z")
    head = text[:19]
    second = _SECONDS.get(head)
    if second is None:
        try:
            second = float(calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")))
        except ValueError:
            raise ValueError(
                f"invalid timestamp {text!r}: expected e.g. 2026-11-22T06:20:28.123456Z"
            ) from None
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        _SECONDS[head] = second
    fraction = text[19:-1]
    if not fraction:
        return second
    if fraction[0] != "." or not fraction[1:].isdigit():
        raise ValueError(f"invalid timestamp {text!r}: expected e.g. 2026-11-22T06:20:28.123456Z")
    return second + float(fraction)


class _Open:
    """An attempt being read: started, not yet closed."""

    __slots__ = ("attempt", "fallback", "faults", "path", "ready_at", "segment", "started_at")

    def __init__(
        self, path: str, attempt: int, segment: int, started_at: float, queued: float
    ) -> None:
        self.path = path
        self.attempt = attempt
        self.segment = segment
        self.started_at = started_at
        self.ready_at = started_at - max(0.0, queued)
        self.fallback: str | None = None
        self.faults: list[str] = []

    def close(self, at: float | None, outcome: str, **extra: Any) -> Attempt:
        return Attempt(
            self.path,
            self.attempt,
            self.segment,
            self.ready_at,
            self.started_at,
            at,
            outcome,
            fallback=self.fallback,
            faults=tuple(self.faults),
            **extra,
        )


class _Reader:
    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.attempts: list[Attempt] = []
        self.marks: list[Mark] = []
        self.logs: dict[str, list[str]] = {}
        self.open: dict[str, _Open] = {}
        self.unreadable = 0
        self.last_at: float | None = None
        # The segment being read: [started_at, last_at, resumed, seed, reused].
        self.current: list[Any] | None = None

    # -- segments --------------------------------------------------------------------

    @property
    def segment(self) -> int:
        return len(self.segments)

    def begin(self, at: float, resumed: bool, seed: int | None) -> None:
        if self.current is not None:
            self.end(None, None, None)
        self.current = [at, at, resumed, seed, 0]

    def end(self, at: float | None, status: str | None, reason: str | None) -> None:
        current = self.current
        if current is None:
            # Events before any run.started (a log that lost its head): one segment of them.
            if at is None:
                return
            current = [at, at, False, None, 0]
        if at is not None and at < current[0]:
            at = current[0]  # a damaged log's finish before its start: the segment is empty
        last = current[1] if at is None else max(current[1], at)
        for attempt in list(self.open.values()):
            self.attempts.append(attempt.close(None if at is None else at, "interrupted"))
        self.open.clear()
        self.segments.append(
            Segment(
                len(self.segments),
                current[0],
                at,
                last,
                status,
                reason,
                current[2],
                current[3],
                current[4],
            )
        )
        self.current = None

    def saw(self, at: float) -> None:
        if self.current is None:
            self.current = [at, at, False, None, 0]
        elif at > self.current[1]:
            self.current[1] = at
        if self.last_at is None or at > self.last_at:
            self.last_at = at

    # -- lines -----------------------------------------------------------------------

    def line(self, text: str) -> None:
        try:
            entry = json.loads(text)
        except ValueError:
            self.unreadable += 1
            return
        if not isinstance(entry, dict):
            self.unreadable += 1
            return
        try:
            at = parse_timestamp(entry["timestamp"])
        except (KeyError, TypeError, ValueError):
            self.unreadable += 1
            return
        try:
            if self.event(entry, entry.get("event"), at):
                return
        except (KeyError, TypeError, ValueError):
            pass
        self.runtime_line(entry, at)

    def runtime_line(self, entry: dict[str, Any], at: float) -> None:
        path = entry.get("node")
        if not isinstance(path, str):
            return
        self.saw(at)
        extra = {
            k: v
            for k, v in entry.items()
            if k not in ("run_id", "workflow", "node", "timestamp", "event", "level")
        }
        text = str(entry.get("event", ""))
        if extra:
            text += " " + json.dumps(extra, default=repr, ensure_ascii=False)
        stamp = str(entry.get("timestamp", ""))[11:23]
        level = entry.get("level", "info")
        self.logs.setdefault(path, []).append(f"{stamp} {level} {text}")

    def event(self, entry: dict[str, Any], name: Any, at: float) -> bool:
        """Apply an engine event; False when the line is not one (a runtime's own line)."""
        opened: _Open | None
        if name == "node.started":
            path, attempt = _str(entry["node"]), _int(entry["attempt"])
            queued = _num(entry.get("queued", 0.0))
            self.saw(at)
            previous = self.open.pop(path, None)
            if previous is not None:
                self.attempts.append(previous.close(at, "interrupted"))
            opened = _Open(path, attempt, self.segment, at, queued)
            fallback = entry.get("fallback")
            opened.fallback = fallback if isinstance(fallback, str) else None
            self.open[path] = opened
        elif name == "node.succeeded":
            path = _str(entry["node"])
            if entry.get("reused"):
                if self.current is not None:
                    self.current[4] += 1
                return True  # timestamped when it first ran, in an earlier segment
            self.saw(at)
            opened = self.open.pop(path, None)
            if opened is not None:
                self.attempts.append(opened.close(at, "succeeded"))
        elif name == "node.retrying":
            path = _str(entry["node"])
            fallback = entry.get("fallback")
            delay = None if fallback else _num(entry.get("delay", 0.0))
            self.saw(at)
            error, message = _opt_str(entry.get("error")), _opt_str(entry.get("message"))
            opened = self.open.pop(path, None)
            if opened is not None:
                self.attempts.append(
                    opened.close(
                        at,
                        "fell back" if fallback else "retried",
                        error=error,
                        message=message,
                        timed_out=error in _TIMEOUT_ERRORS,
                        retry_delay=delay,
                    )
                )
        elif name == "node.failed":
            path = _str(entry["node"])
            self.saw(at)
            error, message = _opt_str(entry.get("error")), _opt_str(entry.get("message"))
            opened = self.open.pop(path, None)
            if opened is not None:
                self.attempts.append(
                    opened.close(
                        at,
                        "failed",
                        error=error,
                        message=message,
                        timed_out=error in _TIMEOUT_ERRORS,
                    )
                )
            else:
                self.mark(path, at, "failed", f"{error}: {message}")
        elif name == "node.cancelled":
            path = _str(entry["node"])
            self.saw(at)
            reason = _opt_str(entry.get("reason")) or "cancelled"
            opened = self.open.pop(path, None)
            if opened is not None:
                self.attempts.append(opened.close(at, "cancelled", message=reason))
            else:
                self.mark(path, at, "cancelled", reason)
        elif name == "node.skipped":
            path = _str(entry["node"])
            self.saw(at)
            self.mark(path, at, "skipped", _opt_str(entry.get("reason")) or "skipped")
        elif name == "fault.injected":
            path = _str(entry["node"])
            self.saw(at)
            fault = _str(entry["fault"])
            opened = self.open.get(path)
            if opened is not None:
                opened.faults.append(fault)
            self.mark(path, at, "fault", fault)
        elif name == "checkpoint.waiting":
            path = _str(entry["node"])
            self.saw(at)
            self.mark(path, at, "checkpoint", _opt_str(entry.get("prompt")) or "")
        elif name == "run.started":
            seed = entry.get("seed")
            self.begin(at, bool(entry.get("resumed")), seed if isinstance(seed, int) else None)
            self.saw(at)
        elif name == "run.finished":
            self.saw(at)
            self.end(at, _opt_str(entry.get("status")), _opt_str(entry.get("reason")))
        else:
            return False
        return True

    def mark(self, path: str, at: float, kind: str, text: str) -> None:
        self.marks.append(Mark(path, at, kind, text, self.segment))

    def finish(self) -> Timeline:
        if self.current is not None:
            self.end(None, None, None)
        return Timeline(
            tuple(self.segments),
            tuple(sorted(self.attempts, key=lambda a: (a.started_at, a.path))),
            tuple(self.marks),
            {path: tuple(lines) for path, lines in self.logs.items()},
            self.unreadable,
            self.last_at,
        )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _num(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a finite number >= 0, got {value!r}")
    return number


def read_timeline(lines: Iterable[str]) -> Timeline:
    """Replay a run's log lines (in file order) into its :class:`Timeline`."""
    reader = _Reader()
    for text in lines:
        if text.strip():
            reader.line(text)
    return reader.finish()


# --- the critical path -----------------------------------------------------------------


def critical_path(plan: Plan, spans: Mapping[str, tuple[float, float]]) -> list[str]:
    """The chain of paths the end of the run waited on, first to last.

    ``spans`` maps each path that ran to its (start, end) wall-clock times
    (start: when its first attempt began). Paths the plan does not know are
    ignored. See the module docstring for the walk; ties go to the earlier
    declared node.
    """
    known: dict[str, PlannedNode] = {}
    for path in spans:
        pn = plan.nodes.get(path.rpartition("/")[2])
        if pn is not None and pn.scope is not None:
            known[path] = pn
    children: dict[str, list[str]] = {}
    for path, pn in known.items():
        parent = _control_path(path, pn)
        if parent is not None:
            children.setdefault(parent, []).append(path)
    roots = [p for p, pn in known.items() if pn.scope is not None and pn.scope.owner is None]
    if not roots:
        return []

    def last(paths: Iterable[str]) -> str:
        return max(paths, key=lambda p: (spans[p][1], -known[p].index))

    chain: list[str] = []
    seen: set[str] = set()
    current: str | None = last(roots)
    while current is not None and current not in seen:
        seen.add(current)
        chain.append(current)
        body = children.get(current)
        if body:
            current = last(body)
            continue
        current = _predecessor(current, known, spans, children, last)
    chain.reverse()
    return chain


def _predecessor(
    path: str,
    known: Mapping[str, PlannedNode],
    spans: Mapping[str, tuple[float, float]],
    children: Mapping[str, list[str]],
    last: Any,
) -> str | None:
    """What ``path`` waited for: its latest dependency, or what started its body."""
    start = spans[path][0]
    while True:
        pn = known[path]
        scope = pn.scope
        assert scope is not None
        prefix = path[: len(path) - len(pn.id)]
        deps = [prefix + scope.nodes[d].id for d in pn.deps]
        deps = [d for d in deps if d in known]
        if deps:
            return str(last(deps))
        parent = _control_path(path, pn)
        if parent is None or parent not in known:
            return None
        iteration = _iteration(prefix) if scope.repeating else None
        if iteration:
            earlier = [
                p
                for p in children.get(parent, ())
                if (i := _iteration(p[: len(p) - len(known[p].id)])) is not None
                and i < iteration
                and spans[p][1] <= start
            ]
            if earlier:
                return str(last(earlier))
        path = parent


def _control_path(path: str, pn: PlannedNode) -> str | None:
    """The path of the control node whose body ``path`` is in (None at the top level)."""
    scope = pn.scope
    if scope is None or scope.owner is None:
        return None
    prefix = path[: len(path) - len(pn.id)]
    if scope.repeating:
        # "outer[1]/owner[3]/" -> "outer[1]/" + owner
        head = prefix[:-1].rpartition("/")[0]
        prefix = head + "/" if head else ""
    return prefix + scope.owner


def _iteration(prefix: str) -> int | None:
    """The iteration number of the innermost repeating frame of ``prefix`` (``a[3]/`` -> 3)."""
    if not prefix.endswith("]/"):
        return None
    number = prefix[prefix.rfind("[") + 1 : -2]
    return int(number) if number.isdigit() else None
