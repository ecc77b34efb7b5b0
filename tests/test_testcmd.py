"""``wavecrest test``: it finds a planted bug, prints a minimal fault file that reproduces it
with ``wavecrest run --faults``, and is deterministic; good workflows pass.

The CLI runs in real subprocesses (as a user runs it), so the plugin that
registers the buggy runtime is imported there, never in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wavecrest.actors._cli import main
from wavecrest.core import FaultPlan

ROOT = Path(__file__).resolve().parent.parent

#: examples/testing: a workflow and the plugin registering its runtime, whose bug needs two
#: faults at once — 'load' fails (so its fallback serves the cached copy) and the first
#: attempt of 'build' fails (so there is a second attempt) — and no other combination.
PLANTED = ROOT / "examples" / "testing"

#: An exploration seed and run count with which the search meets the bug (it is deterministic).
SEED, RUNS = 1, 1000


def wavecrest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "wavecrest.actors", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    shutil.copy(PLANTED / "index_runtimes.py", tmp_path / "planted_runtimes.py")
    shutil.copy(PLANTED / "index.flow.md", tmp_path / "planted.flow.md")
    return tmp_path


@pytest.mark.slow
def test_the_planted_bug_is_found_shrunk_and_reproduced_by_run(planted: Path) -> None:
    args = ["test", "planted.flow.md", "-p", "planted_runtimes.py", "--seed", str(SEED)]
    found = wavecrest(*args, "--runs", str(RUNS), cwd=planted)
    assert found.returncode == 1, found.stderr
    # stdout is the fault file: YAML that run --faults reads, comments saying what broke.
    assert found.stdout.startswith("# wavecrest test planted.flow.md")
    assert (
        "'build' failed with an error no fault caused: attempt 2 raised ValueError" in found.stdout
    )
    faults = yaml.safe_load(found.stdout)
    FaultPlan.from_mapping(faults)
    assert sorted(faults["rules"], key=lambda r: r["node"]) == [
        {"node": "build", "attempts": [1], "raise": "transient"},
        {"node": "load", "attempts": [1], "raise": "transient"},
    ]
    # One diagnostic line on stderr; no progress line (stderr is not a terminal).
    assert found.stderr.count("\n") == 1
    assert found.stderr.startswith("wavecrest: planted.flow.md breaks under 2 fault rule(s)")
    assert "\r" not in found.stderr

    # The same seed gives the same output, byte for byte.
    assert wavecrest(*args, "--runs", str(RUNS), cwd=planted).stdout == found.stdout

    # The printed fault file and seed reproduce the failure in a real run.
    (planted / "faults.yaml").write_text(found.stdout)
    reproduce = next(line for line in found.stdout.splitlines() if "reproduce: " in line)
    assert reproduce.startswith("# save this file as FAULTS.yaml; reproduce: ")
    command = reproduce.split("reproduce: ", 1)[1].split()
    assert command[:2] == ["wavecrest", "run"]
    command = [arg.replace("FAULTS.yaml", "faults.yaml") for arg in command[2:]]
    real = wavecrest("run", *command, "--state-dir", "state", "--json", cwd=planted)
    assert real.returncode == 1, real.stderr
    result = json.loads(real.stdout)
    assert result["status"] == "failed"
    assert [(e["node"], e["type"], e["message"]) for e in result["errors"]] == [
        ("build", "ValueError", "half-written index file")
    ]


@pytest.mark.slow
def test_json_output_is_one_document_stable_apart_from_its_time(planted: Path) -> None:
    args = ["test", "planted.flow.md", "-p", "planted_runtimes.py", "--seed", str(SEED)]
    first = wavecrest(*args, "--runs", str(RUNS), "--json", cwd=planted)
    second = wavecrest(*args, "--runs", str(RUNS), "--json", cwd=planted)
    assert first.returncode == second.returncode == 1
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert isinstance(one.pop("time"), float)
    two.pop("time")
    assert one == two
    assert one["ok"] is False
    assert one["runs"] >= 1
    violation = one["violation"]
    assert violation["status"] == "failed"
    assert yaml.safe_load(violation["fault_file"]) == violation["faults"]
    assert violation["reproduce"].startswith("wavecrest run planted.flow.md --faults")


def test_a_workflow_that_copes_with_its_faults_passes_with_a_summary(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    done = wavecrest("test", "examples/etl.flow.md", "--runs", "60", "--crash", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "examples/etl.flow.md: 60 run(s) with a crash and a resume each, nothing broke (seed 0)"
    )
    assert lines[1].startswith("  statuses: completed 60")
    assert lines[2].startswith("  faults injected: ")
    assert lines[3].startswith("  time: ")
    assert done.stderr == ""


def test_the_command_reports_bad_input_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(PLANTED / "index.flow.md", tmp_path / "planted.flow.md")
    cases: list[tuple[list[str], str]] = [
        (["test", str(tmp_path / "missing.flow.md")], "missing.flow.md:1:1: error:"),
        (["test", str(tmp_path / "planted.flow.md")], "unknown node type 'transform:index'"),
        (["test", str(tmp_path / "planted.flow.md"), "--runs", "0"], "invalid value '0'"),
        (
            ["test", str(tmp_path / "planted.flow.md"), "-p", "no_such_plugin"],
            "cannot import plugin 'no_such_plugin'",
        ),
        (
            ["test", str(tmp_path / "planted.flow.md"), "-p", str(tmp_path / "nope.py")],
            "no such file",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert message in captured.err
        assert "Traceback" not in captured.err
        assert captured.err.count("\n") == 1


def test_progress_is_shown_on_a_terminal_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flow = tmp_path / "tiny.flow.md"
    flow.write_text(
        '---\nname: tiny\n---\n<workflow>\n<transform id="a" type="template" template="x"/>\n'
        "</workflow>\n"
    )
    assert main(["test", str(flow), "--runs", "5"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["test", str(flow), "--runs", "5"]) == 0
    shown = capsys.readouterr()
    assert "\r  5/5 runs" in shown.err
    assert shown.out.startswith(f"{flow}: 5 run(s), nothing broke (seed 0)")


def test_a_plugin_module_is_imported_from_the_current_folder(planted: Path) -> None:
    done = wavecrest("validate", "planted.flow.md", "-p", "planted_runtimes", cwd=planted)
    assert done.returncode == 0, done.stderr
    assert "planted.flow.md: ok (index, 4 nodes)" in done.stdout + done.stderr


def test_a_workflow_that_fails_without_faults_is_reported_with_an_empty_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "broken.flow.md"
    flow.write_text(
        "---\nname: broken\n---\n<workflow>\n"
        '<transform id="a" type="template" template="{{ [1, 2] }}"/>\n'
        '<foreach id="each" collection="a.output[0]">'
        '<transform id="x" type="template" template="{{ item }}"/></foreach>\n'
        "</workflow>\n"
    )
    assert main(["test", str(flow)]) == 1
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out) == {"seed": 0, "rules": []}
    assert "it breaks, without faults, the workflow" in captured.out
    assert "'each' failed by itself: TypeError: foreach 'each' needs a list" in captured.out
    assert captured.err.startswith(f"wavecrest: {flow} breaks without any fault (seed 0)")
