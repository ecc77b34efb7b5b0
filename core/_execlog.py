"""The Markdown "Execution Log" a ``.flow.md`` file can keep of its recent runs.

``wavecrest run --append-log`` records each run as a row of a table under a
``## Execution Log`` heading after the workflow, newest first, keeping the
last :data:`KEEP` runs. Only that section is rewritten: the front matter, the
prose and the ``<workflow>`` body are left byte for byte as they were, and
the workflow's digest ignores the section, so logging a run never makes its
snapshot look like it belongs to a changed workflow.

Rows hold the run id, time, status, duration, node counts and the failing
nodes' error types — never outputs or messages, which could carry secrets.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ._duration import format_duration
from ._result import RunResult

__all__ = ["HEADING", "KEEP", "append_execution_log", "strip_execution_log"]

KEEP = 10
HEADING = "## Execution Log"
_HEADER = [
    "| run | started (UTC) | status | duration | nodes | errors |",
    "|---|---|---|---|---|---|",
]
_SECTION = re.compile(r"^## Execution Log[ \t]*$", re.MULTILINE)


def _section_start(text: str) -> int | None:
    end_of_workflow = text.find("</workflow>")
    match = _SECTION.search(text, end_of_workflow if end_of_workflow >= 0 else 0)
    return match.start() if match else None


def strip_execution_log(text: str) -> str:
    """``text`` without its Execution Log section (and the blank lines before it)."""
    start = _section_start(text)
    if start is None:
        return text
    return text[:start].rstrip("\n") + "\n"


def _row(result: RunResult) -> str:
    counts: dict[str, int] = {}
    for node in result.nodes.values():
        counts[node.status] = counts.get(node.status, 0) + 1
    nodes = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "-"
    failing = sorted({f"{e.node}: {e.type}" for e in result.errors if e.node})
    errors = "; ".join(failing[:3]) + (" ..." if len(failing) > 3 else "") if failing else "-"
    started = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(result.started_at))
        if result.started_at
        else "-"
    )
    took = format_duration(result.duration) if result.duration is not None else "-"
    cells = [result.run_id, started, result.status, took, nodes, errors]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def append_execution_log(path: str | os.PathLike[str], result: RunResult) -> None:
    """Add ``result`` as the newest row of ``path``'s Execution Log, keeping the last KEEP rows."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    start = _section_start(text)
    rows: list[str] = []
    if start is not None:
        section = text[start:].splitlines()[1:]
        rows = [
            line
            for line in section
            if line.startswith("| ") and line not in _HEADER and not line.startswith("| run |")
        ]
        body = text[:start].rstrip("\n")
    else:
        body = text.rstrip("\n")
    rows = [_row(result), *[r for r in rows if not r.startswith(f"| {result.run_id} |")]][:KEEP]
    new = body + "\n\n" + "\n".join([HEADING, "", *_HEADER, *rows]) + "\n"
    temp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    temp.write_text(new, encoding="utf-8")
    os.replace(temp, file)
