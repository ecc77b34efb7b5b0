"""Run reports: one self-contained HTML file with a run's graph, timeline, nodes and errors.

``wavecrest report RUN`` reads the run's snapshot and the JSON-lines log beside
it, plans the workflow the snapshot recorded, and renders:

* the graph, laid out by Graphviz (``dot -Tsvg``) when ``dot`` is on the PATH,
  else by :func:`wavecrest.core._graphview.render_svg` (layered by waves);
  a layout that fails or takes longer than :data:`DOT_TIMEOUT` falls back too;
* the rest — summary, timeline, node table and details — from one Jinja2
  template, a stylesheet and a script shipped beside this module
  (``_report_assets/``), all inlined: the page loads nothing, and its
  Content-Security-Policy forbids loading anything (``default-src 'none'``)
  and running any script but its own (by hash).

Everything from the run (ids, outputs, errors, tracebacks, config) reaches
the page either through the template, which escapes it, or inside the JSON
data block, where ``<``, ``>`` and ``&`` are written as ``\\u003c``... and
which the script only ever puts into the page as text. Secret values never
reach a snapshot or a log, and the report reads nothing else about the run.

``wavecrest plan FILE --format html`` is the same page without a run: the
graph and the plan's critical path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from functools import cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2
from wavecrest.core import (
    Plan,
    WavecrestError,
    WorkflowError,
    format_duration,
    parse_workflow,
    plan,
)
from wavecrest.core._graphview import STATUS_ORDER, GraphView, graph_view, render_dot, render_svg
from wavecrest.core._report import run_model
from wavecrest.core._snapshot import RunRecord, read_snapshot
from wavecrest.core._timeline import Timeline, read_timeline

from ._prepare import find_snapshot

__all__ = [
    "DOT_TIMEOUT",
    "GRAPH_LIMIT",
    "ReportError",
    "render_plan_report",
    "render_run_report",
    "write_report",
]

#: Seconds Graphviz may take to lay a graph out before the built-in layout is used.
DOT_TIMEOUT = 30.0

#: The most boxes the graph draws before it summarises the largest bodies.
GRAPH_LIMIT = 250


class ReportError(WavecrestError):
    """Raised when a report cannot be written where it was asked to go."""


# --- loading a run --------------------------------------------------------------------


def _read_log(path: Path) -> tuple[Timeline | None, str | None]:
    """The timeline of the log at ``path``; None (and why) when there is none to read."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return read_timeline(file), None
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"The run's log {str(path)!r} could not be read ({exc.strerror or exc})."


def _plan_of(record: RunRecord) -> tuple[Plan | None, str | None]:
    """The plan of the workflow the snapshot recorded, or None and why not."""
    try:
        return plan(parse_workflow(record.source, record.workflow_path)), None
    except WorkflowError as exc:
        first = exc.diagnostics[0].message if exc.diagnostics else str(exc)
        more = f" (and {len(exc.diagnostics) - 1} more)" if len(exc.diagnostics) > 1 else ""
        return None, (
            f"The graph is missing: the workflow the run recorded does not plan here: "
            f"{first}{more}. Custom node types must be registered for the graph: "
            "wavecrest report -p MODULE (the module that registers them), or "
            "write_report from Python after registering them."
        )
    except WavecrestError as exc:
        return None, f"The graph is missing: {exc}"


# --- the graph ------------------------------------------------------------------------

_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _dot_svg(view: GraphView, name: str) -> str | None:
    """``view`` laid out by Graphviz, or None when dot is missing, fails or is too slow."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=render_dot(view, name).encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    svg = done.stdout.decode("utf-8", errors="replace")
    svg = _COMMENT.sub("", _PROLOG.sub("", svg, count=1))
    if not svg.startswith("<svg"):
        return None
    return svg.replace("<svg ", '<svg class="layout-dot" ', 1)


def _graph(view: GraphView, name: str, layout: str) -> tuple[str, str]:
    """The SVG of ``view`` and the name of what laid it out."""
    if layout not in ("auto", "dot", "python"):
        raise ValueError(f"invalid layout {layout!r}: expected 'auto', 'dot' or 'python'")
    if layout != "python":
        svg = _dot_svg(view, name)
        if svg is not None:
            return svg, "Graphviz dot"
    return render_svg(view), "the built-in layered layout"


# --- the page -------------------------------------------------------------------------


@cache
def _assets() -> tuple[jinja2.Template, str, str]:
    folder = resources.files("wavecrest.actors").joinpath("_report_assets")
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    env.filters["took"] = _took
    env.filters["count"] = lambda n: f"{n:,}"
    env.filters["plural"] = lambda n, word: f"{n:,} {word}" + ("" if n == 1 else "s")
    template = env.from_string(folder.joinpath("report.html.j2").read_text(encoding="utf-8"))
    style = folder.joinpath("report.css").read_text(encoding="utf-8")
    script = folder.joinpath("report.js").read_text(encoding="utf-8")
    return template, style, script


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1_000_000:.0f}µs"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f}ms"
    return format_duration(seconds)


def _json_script(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=repr)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def _version() -> str:
    try:
        return version("wavecrest")
    except PackageNotFoundError:
        return "unknown"


def _page(**context: Any) -> str:
    template, style, script = _assets()
    return template.render(
        style=style,
        script=script,
        csp=_csp(script),
        wavecrest_version=_version(),
        generated_at=time.time(),
        status_order=STATUS_ORDER,
        **context,
    )


def _faults_text(options: dict[str, Any]) -> str | None:
    faults = options.get("faults")
    if isinstance(faults, str):
        return faults
    if isinstance(faults, dict):
        rules = faults.get("rules")
        count = len(rules) if isinstance(rules, list) else 0
        return f"{count} rule" + ("" if count == 1 else "s")
    return None


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_run_report(
    record: RunRecord,
    timeline: Timeline | None,
    planned: Plan | None,
    *,
    snapshot: str | None = None,
    log: str | None = None,
    notes: tuple[str, ...] = (),
    layout: str = "auto",
    graph_limit: int = GRAPH_LIMIT,
) -> str:
    """The HTML report of a run, from its snapshot record, its log's timeline (None:
    no log) and its plan (None: no graph). ``layout`` is ``auto`` (Graphviz when
    installed), ``dot`` (Graphviz, else the built-in layout) or ``python``."""
    model = run_model(record, timeline, planned)
    svg, engine, view = None, None, None
    if planned is not None:
        view = graph_view(
            planned,
            model.states,
            critical=[p.rpartition("/")[2] for p in model.critical],
            fallbacks=model.fallback_states,
            limit=graph_limit,
        )
        svg, engine = _graph(view, planned.workflow.name, layout)
    return _page(
        kind="run",
        title=f"{record.workflow} · run {record.run_id} · {record.status}",
        model=model,
        s=model.summary,
        faults=_faults_text(dict(model.summary.options)),
        config=[(key, _short(value)) for key, value in sorted(record.config.items())],
        critical=model.critical,
        errors=record.errors,
        svg=svg,
        engine=engine,
        view=view,
        notes=(*model.notes, *notes),
        snapshot=snapshot,
        log=log,
        data=_json_script(model.data()),
    )


def render_plan_report(
    planned: Plan, *, layout: str = "auto", graph_limit: int = GRAPH_LIMIT
) -> str:
    """The HTML page of a plan: its graph, waves and critical path, without a run."""
    critical = planned.critical_path
    view = graph_view(planned, critical=critical, limit=graph_limit)
    svg, engine = _graph(view, planned.workflow.name, layout)
    workflow = planned.workflow
    return _page(
        kind="plan",
        title=f"{workflow.name} · plan",
        workflow=workflow,
        planned=planned,
        nodes=len(planned),
        critical=critical,
        svg=svg,
        engine=engine,
        view=view,
        notes=(),
        data=_json_script(None),
    )


def write_report(
    run: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    layout: str = "auto",
) -> Path:
    """Write the HTML report of ``run`` (a run id or a snapshot path) and return its path.

    ``output`` defaults to ``<run_id>.html`` in the current folder; ``state_dir``
    to the default state dir. Only reads the run's snapshot and log. Raises
    RunNotFoundError or SnapshotError for a run that cannot be read, and
    ReportError when the file cannot be written.
    """
    path = find_snapshot(run, state_dir)
    record = read_snapshot(path)
    log_path = path.with_suffix(".jsonl")
    timeline, log_note = _read_log(log_path)
    planned, plan_note = _plan_of(record)
    notes = tuple(n for n in (log_note, plan_note) if n)
    html = render_run_report(
        record,
        timeline,
        planned,
        snapshot=str(path),
        log=str(log_path) if timeline is not None else None,
        notes=notes,
        layout=layout,
    )
    target = Path(output) if output is not None else Path(f"{record.run_id}.html")
    write_text(target, html)
    return target


def write_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` (replacing it whole); ReportError if that fails."""
    if target.is_dir():
        raise ReportError(f"cannot write the report to {str(target)!r}: it is a directory")
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    except OSError as exc:
        try:
            temp.unlink()
        except OSError:
            pass
        reason = exc.strerror or type(exc).__name__
        raise ReportError(f"cannot write the report to {str(target)!r}: {reason}") from None
