"""What the CLI shows people: progress while a run goes, a summary when it ends.

Each function writes to the console it is given. The CLI gives progress the
console on stderr (it is a diagnostic) and summaries, tables and views the
console on stdout (they are the command's result). When stderr is a terminal
(and ``--quiet`` is not given) a rich live display shows nodes done, running
and failed with the elapsed time; otherwise progress is plain lines, one per
notable event. A console colours its output only when its own stream is a
terminal, and never under ``NO_COLOR``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text
from wavecrest.core import ErrorInfo, NodeResult, Plan, RunEvent, RunResult, format_duration
from wavecrest.core._events import (
    CheckpointWaiting,
    FaultInjected,
    NodeCancelled,
    NodeFailed,
    NodeRetrying,
    NodeStarted,
    NodeSucceeded,
    RunStarted,
)

__all__ = [
    "PlainProgress",
    "RichProgress",
    "make_console",
    "make_progress",
    "print_summary",
    "status_text",
]

_STATUS_STYLE = {
    "completed": "bold green",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "paused": "bold cyan",
    "waiting": "cyan",
    "skipped": "dim",
    "pending": "dim",
    "running": "blue",
}


def make_console(stream: IO[str] | None = None) -> Console:
    """A rich console on ``stream`` (default stderr): colours only if it is a terminal.

    ``NO_COLOR`` turns colours off. Text is printed as it is: no console
    markup or emoji codes, so ``[x]`` in a node path or an output stays as written.
    """
    stream = stream if stream is not None else sys.stderr
    return Console(
        file=stream,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
    )


def status_text(status: str, width: int = 0) -> Text:
    """``status`` padded to ``width``, in its colour (``failed`` is red, ...)."""
    return Text(f"{status:<{width}}", style=_STATUS_STYLE.get(status, ""))


def short(value: Any, width: int = 60) -> str:
    """A value on one line, cut to ``width`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class PlainProgress:
    """One line per notable event: failures, retries, faults, checkpoints, the end."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose

    def __call__(self, event: RunEvent) -> None:
        line = self.line(event)
        if line is not None:
            self.console.print(line)

    def line(self, event: RunEvent) -> Text | None:
        if isinstance(event, RunStarted):
            verb = "resuming" if event.resumed else "running"
            return Text(f"{verb} {event.workflow} (run {event.run_id}, seed {event.seed})")
        if isinstance(event, NodeStarted) and self.verbose:
            extra = f" (fallback {event.fallback})" if event.fallback else ""
            return Text(f"  start    {event.path} attempt {event.attempt}{extra}")
        if isinstance(event, NodeSucceeded) and self.verbose and not event.reused:
            took = format_duration(event.result.duration or 0.0)
            return Text(f"  done     {event.path} in {took}")
        if isinstance(event, NodeRetrying):
            what = (
                f"fallback {event.fallback}"
                if event.fallback
                else (f"retry in {format_duration(event.delay)}")
            )
            return Text.assemble(
                ("  retry    ", "yellow"),
                f"{event.path}: attempt {event.attempt} failed ({event.error.type}: "
                f"{_one_line(event.error.message)}); {what}",
            )
        if isinstance(event, NodeFailed):
            return Text.assemble(
                ("  FAILED   ", "bold red"),
                f"{event.path}: {event.error.type}: {_one_line(event.error.message)}",
            )
        if isinstance(event, NodeCancelled) and self.verbose:
            return Text(f"  cancel   {event.path}")
        if isinstance(event, FaultInjected):
            return Text.assemble(
                ("  fault    ", "magenta"), f"{event.path} attempt {event.attempt}: {event.fault}"
            )
        if isinstance(event, CheckpointWaiting):
            until = ""
            if event.deadline is not None:
                at = time.strftime("%H:%M:%S", time.localtime(event.deadline))
                until = f" (decides by default at {at})"
            return Text.assemble(
                ("  waiting  ", "cyan"), f"{event.path}: {event.prompt or 'approval needed'}{until}"
            )
        return None

    def close(self) -> None:
        pass


class RichProgress:
    """A live line: nodes done, running and failed, and the elapsed time."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.done = self.failed = self.retries = 0
        self._running: set[str] = set()
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._plain = PlainProgress(console)
        self._live = Live(self._render(), console=console, refresh_per_second=8, transient=True)
        self._live.start()

    def __call__(self, event: RunEvent) -> None:
        with self._lock:
            if isinstance(event, NodeStarted):
                self._running.add(event.path)
            elif isinstance(event, NodeSucceeded | NodeFailed | NodeCancelled | NodeRetrying):
                self._running.discard(event.path)
                if isinstance(event, NodeSucceeded):
                    self.done += 1
                elif isinstance(event, NodeFailed):
                    self.failed += 1
                elif isinstance(event, NodeRetrying):
                    self.retries += 1
            line = self._plain.line(event) if not isinstance(event, RunStarted) else None
            if line is not None:
                self._live.console.print(line)
            self._live.update(self._render())

    def _render(self) -> Text:
        elapsed = format_duration(time.monotonic() - self.started)
        return Text.assemble(
            ("● ", "blue"),
            f"{self.done} done",
            ("  ", ""),
            (f"{len(self._running)} running", "blue"),
            ("  ", ""),
            (f"{self.failed} failed", "red" if self.failed else "dim"),
            (f"  {self.retries} retries" if self.retries else "", "yellow"),
            f"  {elapsed}",
        )

    def close(self) -> None:
        self._live.stop()


def make_progress(console: Console, *, quiet: bool, total: int, verbose: bool = False) -> Any:
    """The progress reporter for a run: rich on a terminal, plain lines otherwise, none if quiet."""
    if quiet:
        return None
    if console.is_terminal and not verbose:
        return RichProgress(console, total)
    return PlainProgress(console, verbose=verbose)


def with_pending(
    nodes: dict[str, NodeResult], planned: Plan | None
) -> list[tuple[str, NodeResult]]:
    """The recorded results, then every node of the plan that never started, as ``pending``."""
    rows = list(nodes.items())
    if planned is not None:
        rows += [
            (path, NodeResult(path.rsplit("/", 1)[-1], "pending"))
            for path in planned.static_paths()
            if path not in nodes
        ]
    return rows


def print_summary(
    console: Console, result: RunResult, *, planned: Plan | None = None, width: int = 60
) -> None:
    """Status, a row per node (status, attempts, duration, output) and every error."""
    took = format_duration(result.duration) if result.duration is not None else "-"
    console.print(
        Text.assemble(
            f"run {result.run_id} of {result.workflow}: ",
            (result.status, _STATUS_STYLE.get(result.status, "")),
            f" in {took}",
        )
    )
    if result.reason and result.status != "completed":
        console.print(f"  {result.reason}")
    print_nodes(console, with_pending(result.nodes, planned), width=width)
    print_errors(console, result.errors)
    if result.snapshot_path:
        console.print(f"snapshot: {result.snapshot_path}")


def print_nodes(
    console: Console, nodes: Iterable[tuple[str, NodeResult]], *, width: int = 60
) -> None:
    """A row per node: path, status, attempts, duration and the start of its output."""
    nodes = list(nodes)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    longest = max((len(path) for path, _ in nodes), default=4)
    table.add_column("node", no_wrap=True, min_width=min(max(longest, 4), 40))
    table.add_column("status", no_wrap=True, min_width=9)
    table.add_column("attempts", no_wrap=True, min_width=8)
    table.add_column("duration", no_wrap=True, min_width=8)
    table.add_column("output", no_wrap=True, overflow="ellipsis")
    for path, node in nodes:
        output = (
            short(node.output, width)
            if node.status == "succeeded"
            else (node.reason or (node.error.message if node.error else ""))
        )
        table.add_row(
            path,
            Text(node.status, style=_STATUS_STYLE.get(node.status, "")),
            str(node.attempts) if node.attempts else "-",
            format_duration(node.duration) if node.duration is not None else "-",
            _one_line(output)[:width],
        )
    console.print(table)


def print_errors(console: Console, errors: Iterable[ErrorInfo]) -> None:
    errors = list(errors)
    if not errors:
        return
    console.print(Text(f"errors ({len(errors)}):", style="bold red"))
    for error in errors:
        where = f"{error.node}" + (f" (attempt {error.attempt})" if error.attempt else "")
        console.print(f"  {where}: {error.type}: {_one_line(error.message)}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
