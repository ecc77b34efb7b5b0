"""What people see: plain progress lines, the rich live display, quiet mode and NO_COLOR."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from wavecrest.actors._cli import main
from wavecrest.actors._console import PlainProgress, RichProgress, make_console, make_progress
from wavecrest.core import ErrorInfo, NodeResult
from wavecrest.core._events import NodeFailed, NodeRetrying, NodeStarted, NodeSucceeded

FAILS = """---
name: fails
---
<workflow>
  <transform id="ok" type="template" template="fine"/>
  <transform id="bad" type="template" template="{{ 1 / 0 }}">
    <on-error><retry max="1" base="1ms" when="always"/></on-error>
  </transform>
</workflow>
"""


def _error() -> ErrorInfo:
    return ErrorInfo("ValueError", "bad row", node="x", attempt=1)


def test_plain_progress_prints_failures_and_retries_not_every_node() -> None:
    stream = io.StringIO()
    progress = PlainProgress(make_console(stream))
    progress(NodeStarted(run_id="r", at=0.0, path="x", node="x", attempt=1))
    progress(
        NodeRetrying(run_id="r", at=0.0, path="x", node="x", attempt=1, delay=0.25, error=_error())
    )
    progress(
        NodeFailed(
            run_id="r",
            at=0.0,
            path="x",
            node="x",
            attempt=2,
            error=_error(),
            result=NodeResult("x", "failed", error=_error()),
        )
    )
    lines = stream.getvalue().splitlines()
    assert lines == [
        "  retry    x: attempt 1 failed (ValueError: bad row); retry in 250ms",
        "  FAILED   x: ValueError: bad row",
    ]


def test_verbose_plain_progress_has_a_line_per_node_event() -> None:
    stream = io.StringIO()
    progress = PlainProgress(make_console(stream), verbose=True)
    progress(NodeStarted(run_id="r", at=0.0, path="x", node="x", attempt=1))
    progress(
        NodeSucceeded(
            run_id="r",
            at=0.0,
            path="x",
            node="x",
            attempt=1,
            result=NodeResult("x", "succeeded", 1, attempts=1, duration=0.5),
        )
    )
    assert stream.getvalue().splitlines() == ["  start    x attempt 1", "  done     x in 500ms"]


def test_the_live_display_counts_done_running_and_failed() -> None:
    stream = io.StringIO()
    console = make_console(stream)
    console.is_terminal  # noqa: B018 - rich decides from the stream; force it below
    console._force_terminal = True  # type: ignore[attr-defined]
    progress = RichProgress(console, total=3)
    try:
        progress(NodeStarted(run_id="r", at=0.0, path="a", node="a", attempt=1))
        progress(NodeStarted(run_id="r", at=0.0, path="b", node="b", attempt=1))
        progress(
            NodeSucceeded(
                run_id="r",
                at=0.0,
                path="a",
                node="a",
                attempt=1,
                result=NodeResult("a", "succeeded", attempts=1, duration=0.1),
            )
        )
        progress(
            NodeFailed(
                run_id="r",
                at=0.0,
                path="b",
                node="b",
                attempt=1,
                error=_error(),
                result=NodeResult("b", "failed", error=_error()),
            )
        )
        line = progress._render().plain
    finally:
        progress.close()
    assert line.startswith("● 1 done  0 running  1 failed")


def test_a_terminal_gets_the_live_display_and_a_pipe_gets_plain_lines() -> None:
    terminal = make_console(io.StringIO())
    terminal._force_terminal = True  # type: ignore[attr-defined]
    live = make_progress(terminal, quiet=False, total=1)
    try:
        assert isinstance(live, RichProgress)
    finally:
        live.close()
    assert isinstance(
        make_progress(make_console(io.StringIO()), quiet=False, total=1), PlainProgress
    )
    assert make_progress(terminal, quiet=True, total=1) is None


def test_no_color_turns_colours_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert make_console(io.StringIO()).no_color
    monkeypatch.delenv("NO_COLOR")
    assert not make_console(io.StringIO()).no_color


def test_quiet_prints_nothing_but_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = tmp_path / "fails.flow.md"
    flow.write_text(FAILS)
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    assert main(["run", str(flow), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == "errors (1):"
    assert "retry" not in err
    assert "ok" not in err
    assert main(["run", str(flow)]) == 1
    out, err = capsys.readouterr()
    assert "retry    bad: attempt 1 failed (ExpressionError" in err
    assert "FAILED   bad" in err
    assert "errors (1):" in out
    assert "errors (1):" not in err
