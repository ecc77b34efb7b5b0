"""Run reports as files: what they hold for each kind of run, what they never hold, the CLI.

The page's behaviour in a browser is tested in test_report_browser.py; here
the HTML and the data block the page draws from are read directly.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from reportruns import CUSTOM_PLUGIN, CUSTOM_TYPE, SCRIPT, SECRET, custom_type_run, runs
from wavecrest.actors import ReportError, resume_workflow
from wavecrest.actors._cli import main
from wavecrest.actors._report import render_plan_report, write_report
from wavecrest.core import (
    load_workflow,
    parse_workflow,
    plan,
    unregister_runtime,
)
from wavecrest.core._report import OUTCOME_CODES
from wavecrest.core._snapshot import encode_record, read_snapshot, write_atomic

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.DOTALL)
SCRIPT_TAG = re.compile(r"<script>(.*?)</script>", re.DOTALL)
HAS_DOT = shutil.which("dot") is not None


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return runs(tmp_path_factory)


def report(snapshot: Path, folder: Path, **options: Any) -> str:
    return write_report(snapshot, folder / "report.html", **options).read_text(encoding="utf-8")


def data_of(html: str) -> Any:
    match = DATA.search(html)
    assert match is not None
    return json.loads(match.group(1))


def rows_by_path(data: Any) -> dict[str, list[Any]]:
    return {row[0]: row for row in data["rows"]}


def attempts_of(data: Any, path: str) -> list[list[Any]]:
    index = [row[0] for row in data["rows"]].index(path)
    return [a for a in data["attempts"] if a[0] == index]


# --- each kind of run -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["completed", "failed", "cancelled", "paused", "resumed"])
def test_a_report_lists_every_node_of_the_run_with_its_status(
    made: dict[str, Path], tmp_path: Path, name: str
) -> None:
    record = read_snapshot(made[name])
    html = report(made[name], tmp_path)
    data = data_of(html)
    statuses = {path: row[2] for path, row in rows_by_path(data).items()}
    flow = plan(parse_workflow(record.source))
    never_started = {p: "pending" for p in flow.static_paths() if p not in record.results}
    assert statuses == {**{p: r.status for p, r in record.results.items()}, **never_started}
    assert f'<span class="badge st-{record.status}" id="run-status">{record.status}</span>' in html
    assert f"<title>{record.workflow} · run {record.run_id} · {record.status}</title>" in html
    assert len(data["segments"]) == (2 if name == "resumed" else 1)


def test_a_report_shows_the_retries_the_fallback_and_the_faults(
    made: dict[str, Path], tmp_path: Path
) -> None:
    html = report(made["completed"], tmp_path)
    data = data_of(html)
    save = attempts_of(data, "save")
    assert [(a[1], a[5], a[6]) for a in save] == [
        (1, OUTCOME_CODES["retried"], None),
        (2, OUTCOME_CODES["retried"], None),
        (3, OUTCOME_CODES["retried"], None),
        (4, OUTCOME_CODES["fell back"], None),
        (1, OUTCOME_CODES["succeeded"], "save-local"),
    ]
    assert all(a[7] == "raise transient: disk full" for a in save[:4])
    assert all(a[11] is not None and a[11] >= 0 for a in save[:3])  # the retry delays
    faults = [m for m in data["marks"] if m[2] == "fault"]
    assert len(faults) == 5
    assert rows_by_path(data)["save"][5] == 4  # attempts of the primary
    for fact, value in [("retries", 3), ("fallbacks", 1), ("faults", 5), ("timeouts", 0)]:
        assert f'<dd id="fact-{fact}">{value}</dd>' in html
    # Every attempt queued before it ran, and the delayed attempt ran at least its delay.
    for attempt in data["attempts"]:
        assert attempt[2] <= attempt[3] <= attempt[4]
    (names,) = attempts_of(data, "names")
    assert names[4] - names[3] >= 0.05  # the 60ms delay, give or take the clock


def test_a_report_shows_every_error_with_its_traceback_and_the_timeouts(
    made: dict[str, Path], tmp_path: Path
) -> None:
    record = read_snapshot(made["failed"])
    html = report(made["failed"], tmp_path)
    data = data_of(html)
    assert html.count('<details class="error"') == len(record.errors) == 3
    for error in record.errors:
        assert error.type in html
    assert "ZeroDivisionError: integer division or modulo by zero" in html
    stuck = attempts_of(data, "stuck")
    assert [(a[5], a[10]) for a in stuck] == [
        (OUTCOME_CODES["retried"], 1),
        (OUTCOME_CODES["failed"], 1),
    ]
    assert '<dd id="fact-timeouts">2</dd>' in html
    detail = data["details"][str([r[0] for r in data["rows"]].index("each[1]/square"))]
    ((kind, message, traceback),) = detail["errors"]
    assert kind == "ExpressionError"
    assert "division or modulo by zero" in message
    assert traceback.startswith("Traceback (most recent call last):")


def test_markup_from_the_run_reaches_the_page_as_text_only(
    made: dict[str, Path], tmp_path: Path
) -> None:
    html = report(made["failed"], tmp_path)
    assert SCRIPT not in html
    assert "<script>window" not in html
    assert "<img" not in html
    assert html.count("<script") == 2  # the data block and the report's own script
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x" in html  # the error
    data = data_of(html)
    assert any(SCRIPT in e[1] for d in data["details"].values() for e in d.get("errors", ()))
    assert "\\u003cscript\\u003ewindow.pwned = 3" in html  # the output, in the data block
    assert "&#34;&lt;script&gt;window.pwned = 3&lt;/script&gt;&#34;" in html  # the config


def test_secrets_never_reach_the_report(made: dict[str, Path], tmp_path: Path) -> None:
    html = report(made["failed"], tmp_path)
    assert SECRET not in html
    data = data_of(html)
    markup = data["details"][str([r[0] for r in data["rows"]].index("markup"))]
    assert markup["output"].startswith('"*** ')


@pytest.mark.parametrize("name", ["completed", "failed"])
def test_the_page_loads_nothing_and_runs_only_its_own_script(
    made: dict[str, Path], tmp_path: Path, name: str
) -> None:
    html = report(made[name], tmp_path)
    tags = Tags()
    tags.feed(html)
    assert tags.loading == []
    assert tags.names["script"] == 2  # the data block and the report's own script
    assert "link" not in tags.names
    assert "iframe" not in tags.names
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert "@import" not in style
    assert "url(" not in style
    (script,) = SCRIPT_TAG.findall(html)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    policy = csp.group(1).replace("&#39;", "'")
    assert "default-src 'none'" in policy
    assert f"script-src 'sha256-{digest}'" in policy


class Tags(HTMLParser):
    """Counts the page's elements and lists every attribute that would load something."""

    def __init__(self) -> None:
        super().__init__()
        self.names: collections.Counter[str] = collections.Counter()
        self.loading: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names[tag] += 1
        for name, value in attrs:
            loads = name in ("src", "href", "xlink:href", "srcset", "action", "formaction", "data")
            if loads or (name == "style" and "url(" in (value or "")):
                self.loading.append((tag, name, value))


def test_a_run_whose_log_is_gone_is_reported_from_its_snapshot(
    made: dict[str, Path], tmp_path: Path
) -> None:
    alone = tmp_path / "alone.msgpack"
    shutil.copy(made["completed"], alone)
    html = report(alone, tmp_path)
    data = data_of(html)
    assert "The run&#39;s log was not found" in html
    assert [(a[1], a[5], a[6]) for a in attempts_of(data, "save")] == [
        (4, OUTCOME_CODES["succeeded"], "save-local")
    ]
    assert data["marks"] == []


def test_a_killed_run_shows_its_open_segment_and_what_was_running(
    made: dict[str, Path], tmp_path: Path
) -> None:
    """A snapshot and log as a kill -9 leaves them: the log stops while ``save`` runs its
    second attempt and ends in a torn line; the snapshot has neither save nor summary."""
    record = read_snapshot(made["completed"])
    lines = made["completed"].with_suffix(".jsonl").read_text().splitlines()
    cut = next(
        i for i, line in enumerate(lines) if '"node": "save", "attempt": 2, "queued"' in line
    )
    killed = tmp_path / "state" / "etl" / f"{record.run_id}.msgpack"
    killed.parent.mkdir(parents=True)
    killed.with_suffix(".jsonl").write_text("\n".join(lines[: cut + 1]) + '\n{"run_id": "2')
    crashed = dataclasses.replace(
        record,
        status="running",
        finished_at=None,
        results={p: r for p, r in record.results.items() if p not in ("save", "summary")},
    )
    write_atomic(killed, encode_record(crashed))
    html = report(killed, tmp_path)
    data = data_of(html)
    assert data["segments"][0][4] is False  # no run.finished
    assert '<tr class="segment-row">' not in html  # one segment: no segment table
    statuses = {path: row[2] for path, row in rows_by_path(data).items()}
    assert (statuses["save"], statuses["summary"]) == ("running", "pending")
    assert attempts_of(data, "save")[-1][5] == OUTCOME_CODES["interrupted"]
    assert "1 line(s) of the log could not be read" in html


def test_a_run_resumed_after_a_kill_shows_both_segments(
    made: dict[str, Path], tmp_path: Path
) -> None:
    record = read_snapshot(made["completed"])
    lines = made["completed"].with_suffix(".jsonl").read_text().splitlines()
    cut = next(
        i for i, line in enumerate(lines) if '"node": "save", "attempt": 2, "queued"' in line
    )
    killed = tmp_path / "state" / "etl" / f"{record.run_id}.msgpack"
    killed.parent.mkdir(parents=True)
    killed.with_suffix(".jsonl").write_text("\n".join(lines[: cut + 1]) + "\n")
    kept = {p: r for p, r in record.results.items() if p not in ("save", "summary")}
    crashed = dataclasses.replace(record, status="running", finished_at=None, results=kept)
    write_atomic(killed, encode_record(crashed))
    assert resume_workflow(killed).status == "completed"
    html = report(killed, tmp_path)
    data = data_of(html)
    (first, second) = data["segments"]
    assert (first[2], first[4]) == (None, False)
    assert (second[2], second[3], second[4]) == ("completed", True, True)
    assert html.count('<tr class="segment-row">') == 2
    assert '<span class="badge st-cancelled">no end in the log: killed, or still running' in html
    save = attempts_of(data, "save")
    assert [(a[5], a[12]) for a in save] == [
        (OUTCOME_CODES["retried"], 0),
        (OUTCOME_CODES["interrupted"], 0),
        (OUTCOME_CODES["succeeded"], 1),
    ]


# --- the graph ------------------------------------------------------------------------


def test_the_built_in_layout_is_used_where_graphviz_is_not_installed(
    made: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    html = report(made["completed"], tmp_path)
    assert 'class="layout-python"' in html
    assert "Laid out by the built-in layered layout." in html
    for node_id in ("users", "active", "names", "save", "save-local", "summary"):
        assert f'<g id="n-{node_id}" class="node st-' in html


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz (dot) is not installed")
def test_graphviz_lays_the_graph_out_where_it_is_installed(
    made: dict[str, Path], tmp_path: Path
) -> None:
    html = report(made["completed"], tmp_path)
    assert 'class="layout-dot"' in html
    assert "Laid out by Graphviz dot." in html
    assert "<?xml" not in html
    assert "<!--" not in html
    for node_id in ("users", "active", "names", "save", "save-local", "summary"):
        assert f'<g id="n&#45;{node_id.replace("-", "&#45;")}" class="node st&#45;' in html


def test_a_plan_page_draws_every_node_and_the_critical_path() -> None:
    flow = plan(load_workflow(EXAMPLES / "reports.flow.md"))
    html = render_plan_report(flow, layout="python")
    assert data_of(html) is None
    for node_id in flow.nodes:
        assert f'<g id="n-{node_id}" class="node st-planned' in html
    path = re.search(r'<span id="critical-path">(.*?)</span>', html, re.DOTALL)
    assert path is not None
    assert re.findall(r"<code>(.*?)</code>", path.group(1)) == flow.critical_path


# --- the command line -----------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_writes_the_file_and_prints_only_its_path(
    made: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = read_snapshot(made["failed"])
    state = made["failed"].parent.parent
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "report", record.run_id, "--state-dir", str(state))
    assert (code, out, err) == (0, f"{record.run_id}.html\n", "")
    assert (tmp_path / f"{record.run_id}.html").read_text().startswith("<!DOCTYPE html>")
    target = tmp_path / "sub" / "r.html"
    target.parent.mkdir()
    code, out, _ = run_cli(capsys, "report", str(made["failed"]), "-o", str(target))
    assert (code, out) == (0, f"{target}\n")
    assert target.stat().st_size > 0


def test_report_draws_the_graph_of_custom_types_a_plugin_registers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "shout_runtimes.py"
    plugin.write_text(CUSTOM_PLUGIN)
    snapshot = custom_type_run(tmp_path).snapshot_path
    assert snapshot is not None
    try:
        bare, drawn = tmp_path / "bare.html", tmp_path / "drawn.html"
        assert run_cli(capsys, "report", str(snapshot), "-o", str(bare))[0] == 0
        assert "The graph is missing" in bare.read_text()
        assert "wavecrest report -p MODULE" in bare.read_text()
        argv = ("report", str(snapshot), "-o", str(drawn), "-p", str(plugin))
        assert run_cli(capsys, *argv)[:2] == (0, f"{drawn}\n")
        page = drawn.read_text()
        assert "The graph is missing" not in page
        assert 'id="graph"' in page
    finally:
        with contextlib.suppress(KeyError):  # the plugin registered it
            unregister_runtime(CUSTOM_TYPE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "20990101T000000Z-000000"], "no run '20990101T000000Z-000000' in state dir"),
        (["report", "{bad}"], "not a wavecrest snapshot"),
        (["report", "{good}", "-o", "{missing}/r.html"], "cannot write the report to"),
        (["report", "{good}", "-o", "{folder}"], "it is a directory"),
        (["report"], "the following arguments are required: RUN"),
    ],
)
def test_report_refuses_bad_input_in_one_line(
    made: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x93not msgpack at all")
    before = made["completed"].read_bytes()
    values = {
        "bad": str(bad),
        "good": str(made["completed"]),
        "missing": str(tmp_path / "missing"),
        "folder": str(tmp_path),
    }
    code, out, err = run_cli(capsys, *(a.format(**values) for a in argv))
    assert (code, out) == (2, "")
    assert err.startswith("wavecrest: error: ")
    assert err.count("\n") == 1
    assert message in err
    assert made["completed"].read_bytes() == before  # the saved state is only read


def test_write_report_raises_report_error_for_a_file_it_cannot_write(
    made: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ReportError, match=r"cannot write the report to '.*': it is a directory"):
        write_report(made["completed"], tmp_path)
    with pytest.raises(ReportError, match=r"cannot write the report to '.*/no/r.html': "):
        write_report(made["completed"], tmp_path / "no" / "r.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary file left


def test_plan_format_html_prints_exactly_the_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flow = str(EXAMPLES / "etl.flow.md")
    code, out, err = run_cli(capsys, "plan", flow, "--format", "html")
    assert (code, err) == (0, "")
    assert out.startswith("<!DOCTYPE html>\n")
    assert out.endswith("</html>\n")
    assert '<g id="n' in out
    target = tmp_path / "plan.html"
    code, out, err = run_cli(capsys, "plan", flow, "--format", "html", "-o", str(target))
    assert (code, out, err) == (0, f"{target}\n", "")
    assert target.read_text().startswith("<!DOCTYPE html>")
    code, out, err = run_cli(capsys, "plan", flow, "-o", str(target))
    assert (code, out) == (2, "")
    assert "-o/--output needs --format html" in err
