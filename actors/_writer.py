"""SnapshotWriter: keeps a run's snapshot and its JSON-lines log on disk.

The writer reads its run's journal (node starts and results, and the run's
other events; see :mod:`wavecrest.core._events`) and keeps a mirror of the
snapshot: a header and, per node path, that node's result *already encoded*.
Each result is encoded once, when it arrives (a succeeded task's output
arrives encoded by its node actor, off this thread);
writing a snapshot only concatenates the cached entries, checksums them and
writes the file atomically. Writing therefore costs O(bytes), not O(encoding),
and never blocks a node.

Writes are coalesced: after a write, the next one waits until the interval
has passed (at least ``min_interval``, 0.1 s, and ten times the last
encoding's duration, so encoding never takes more than a tenth of the time),
and events already queued are folded into it. A crash loses at most the
completions of that last interval: those nodes run again on resume. The
final state is written synchronously by :class:`Finalize`, before the run's
result is handed out.
"""

from __future__ import annotations

import dataclasses
import queue
import time
from pathlib import Path
from typing import Any, NamedTuple

from wavecrest.core import OutputEncodingError, RunResult
from wavecrest.core._events import (
    JOURNAL_STARTED,
    JOURNAL_SUCCEEDED,
    CheckpointWaiting,
    NodeCancelled,
    NodeFailed,
    NodeResult,
    NodeSkipped,
    NodeSucceeded,
    RunEvent,
    RunFinished,
    RunStarted,
    journal_events,
)
from wavecrest.core._snapshot import (
    Redactor,
    ResultEntries,
    RunRecord,
    encode_plain_result,
    snapshot_parts,
    strict_packer,
    write_atomic,
)

from ._logging import EventLines, JsonLinesFile, LogLine, library_log, quote
from ._pool import PooledActor, ThreadPool
from ._timers import TimerHandle, TimerService

__all__ = ["EventFeed", "Finalize", "Flush", "SnapshotWriter"]

_RESULT_EVENTS = (NodeSucceeded, NodeFailed, NodeCancelled, NodeSkipped)
_log = library_log()


class _FlushDue(NamedTuple):
    pass


class EventFeed:
    """What a run has to log and record, on its way to the writer: one ordered queue.

    The scheduler pushes its journal and runtimes push their log lines, so
    the order of the queue is the order things happened in: the scheduler
    pushes ``node.started`` before it starts the node, and a node's result
    after the node reported. The writer takes everything at once. When the
    queue goes from empty to non-empty a doorbell is scheduled ``delay``
    seconds later, so a busy run wakes the writer fifty times a second at most
    instead of once per step (each wake-up costs the scheduler the GIL).
    Flush and Finalize drain the queue before they write.

    Pushing takes no lock of its own (``SimpleQueue.put`` is atomic), so the
    scheduler never waits for the writer. The writer clears the doorbell
    before it takes, and a pusher looks at it after it put, so an item never
    waits without a doorbell on its way (at worst one rings for nothing).
    """

    def __init__(self, timers: TimerService, delay: float = 0.02) -> None:
        self._queue: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self._rung = False
        self._writer: Any = None
        self._timers = timers
        self._delay = delay

    def attach(self, writer: Any) -> None:
        """Ring ``writer`` (an actor ref) when items arrive."""
        self._writer = writer

    def push(self, items: list[Any]) -> None:
        self._queue.put(items)
        if not self._rung:
            self._rung = True
            if self._writer is not None:
                self._timers.schedule(self._delay, self._writer, _Doorbell())

    def take(self) -> list[Any]:
        self._rung = False
        items: list[Any] = []
        get = self._queue.get_nowait
        while True:
            try:
                items += get()
            except queue.Empty:
                return items


class _Doorbell(NamedTuple):
    pass


class Flush(NamedTuple):
    """Reply once every event told before it is in a snapshot on disk."""


class Finalize(NamedTuple):
    """Write the final snapshot for ``result`` now, close the log, and reply when done."""

    result: RunResult


class SnapshotWriter(PooledActor):
    """Writes one run's snapshot (coalesced, atomic) and its JSON-lines log."""

    def __init__(
        self,
        pool: ThreadPool,
        *,
        path: Path,
        header: RunRecord,
        entries: ResultEntries,
        feed: EventFeed,
        redactor: Redactor,
        sink: JsonLinesFile,
        timers: TimerService,
        min_interval: float = 0.1,
    ) -> None:
        super().__init__(pool)
        self.feed = feed
        feed.attach(self.actor_ref)
        self.path = path
        self._header = header
        self._entries = entries
        self._redactor = redactor
        self._sink = sink
        self._lines = EventLines(run_id=header.run_id, workflow=header.workflow)
        self._timers = timers
        self._min_interval = min_interval
        self._interval = min_interval
        self._last_write = 0.0
        self._dirty = False
        self._flush_timer: TimerHandle | None = None
        self._errors = list(header.errors)
        self._pack = strict_packer()  # this actor's own: a Packer is not thread-safe
        self.writes = 0

    def on_start(self) -> None:
        self._write()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Doorbell):
            self._drain()
        elif isinstance(message, _FlushDue):
            self._flush_timer = None
            if self._dirty:
                self._write()
        elif isinstance(message, Finalize):
            return self._finalize(message.result)
        elif isinstance(message, Flush):
            self._drain()
            if self._dirty:
                self._write()
        else:
            return super().on_receive(message)
        return None

    def _record(self, event: RunEvent) -> None:
        kind = type(event)
        if isinstance(event, _RESULT_EVENTS):
            self._put(event.path, event.result, None)
            if kind is NodeFailed:
                self._errors.extend(event.result.errors)
        elif kind is CheckpointWaiting:
            waiting = NodeResult(event.node, "waiting", reason=event.prompt or None)
            self._put(event.path, waiting, None)
        elif kind is RunStarted:
            self._header = dataclasses.replace(self._header, status="running", started_at=event.at)
        elif kind is RunFinished:
            self._header = dataclasses.replace(
                self._header,
                status=event.status,
                reason=event.reason,
                finished_at=event.at,
                abandoned=event.abandoned,
            )

    def _drain(self) -> None:
        """Record and log everything the feed holds: the journal, with log lines between.

        Every node puts two entries in the journal, so those two are handled
        inline: a start's line, and a success's encoded result and line.
        """
        items = self.feed.take()
        if not items:
            return
        lines: list[str] = []
        add = lines.append
        render = self._lines
        started, succeeded = render.started_format, render.succeeded_format
        entries, pack = self._entries, self._pack
        second, prefix = -1, ""
        i, n = 0, len(items)
        while i < n:
            item = items[i]
            if item is JOURNAL_STARTED:
                if items[i + 4] is None:
                    at = items[i + 3]
                    if int(at) != second:
                        second = int(at)
                        prefix = render.prefix(second)
                    micro = int((at - second) * 1_000_000)
                    queued = round(items[i + 5], 6)
                    add(
                        started
                        % (quote(items[i + 1]), items[i + 2], queued, items[i + 6], prefix, micro)
                    )
                else:
                    add(render.render(self._event(items[i : i + 7])))
                i += 7
            elif item is JOURNAL_SUCCEEDED:
                path, result, encoded = items[i + 1], items[i + 4], items[i + 5]
                entry = None if encoded is None else encode_plain_result(result, encoded, pack)
                if entry is not None:
                    entries.put(path, entry, pack)
                else:
                    self._put(path, result, encoded)
                if items[i + 6]:
                    add(render.render(self._event(items[i : i + 7])))
                else:
                    at, duration = items[i + 3], result.duration
                    if int(at) != second:
                        second = int(at)
                        prefix = render.prefix(second)
                    micro = int((at - second) * 1_000_000)
                    shown = "null" if duration is None else repr(duration)
                    add(succeeded % (quote(path), items[i + 2], shown, prefix, micro))
                i += 7
            elif type(item) is LogLine:
                i += 1
                add(item.text)
            else:
                i += 1
                self._record(item)
                add(render.render(item))
        self._sink.write_lines(lines)
        self._changed()

    def _event(self, entry: list[Any]) -> RunEvent:
        """The event of one journal entry (for the lines not built from templates)."""
        return next(journal_events(entry, self._header.run_id))

    def _changed(self) -> None:
        self._dirty = True
        if self._flush_timer is None:
            delay = self._last_write + self._interval - time.monotonic()
            if delay <= 0 and self.actor_inbox.empty():
                self._write()
            else:
                self._flush_timer = self._timers.schedule(
                    max(0.0, delay), self.actor_ref, _FlushDue()
                )

    def _put(self, path: str, result: NodeResult, payload: bytes | None) -> None:
        try:
            self._entries.put_result(
                path, result, encoded_output=payload, redactor=self._redactor, pack=self._pack
            )
        except OutputEncodingError as exc:
            # Control-node outputs are built from encodable outputs, so this is rare;
            # keep the record rather than lose the result.
            _log.warning("snapshot.output_dropped", node=path, error=str(exc))
            kept = dataclasses.replace(result, output=None, reason=f"output not saved: {exc}")
            self._entries.put_result(path, kept, redactor=self._redactor, pack=self._pack)

    def _write(self) -> None:
        started = time.monotonic()
        header = dataclasses.replace(
            self._header, updated_at=time.time(), errors=tuple(self._errors)
        )
        data = snapshot_parts(header, self._entries, redactor=self._redactor)
        encoded = time.monotonic()
        write_atomic(self.path, data)
        self._sink.flush()
        self._dirty = False
        self._last_write = time.monotonic()
        # Only encoding holds the GIL (writing and fsync do not), so only it is
        # budgeted: at most a tenth of the time goes to it, however large the run.
        self._interval = max(self._min_interval, 10 * (encoded - started))
        self.writes += 1

    def _finalize(self, result: RunResult) -> str:
        self._drain()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._header = dataclasses.replace(
            self._header,
            status=result.status,
            reason=result.reason,
            finished_at=result.finished_at,
            abandoned=result.abandoned,
        )
        self._errors = list(result.errors)
        for path, node in result.nodes.items():
            # Every event carried its result here already; this only guards the
            # final snapshot against a result that reached the run but no event.
            if path not in self._entries:
                self._put(path, node, None)
        self._write()
        self._sink.close()
        return str(self.path)

    def on_exit(self, crash: BaseException | None) -> None:
        self._sink.close()
