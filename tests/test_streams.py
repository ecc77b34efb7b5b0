"""Which stream each command writes: its result on stdout, diagnostics on stderr.

Every command is run without a terminal (capsys, and real pipes in a
subprocess) and both streams are pinned: ``wavecrest runs | grep failed``
must work, and ``--json`` / ``--format json|dot`` must leave exactly one
document on stdout. Colours appear only on a stream that is a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from wavecrest.actors._cli import main

FLOW = """---
name: streams
---
<workflow>
  <transform id="hello" type="template" template="hello"/>
  <transform id="shout" type="template" input="hello" template="{{ input | upper }}"/>
</workflow>
"""

FAILS = """---
name: fails
---
<workflow>
  <transform id="boom" type="template" template="{{ 1 / 0 }}"/>
</workflow>
"""

PAUSES = """---
name: pauses
---
<workflow>
  <checkpoint id="gate" prompt="go on?"/>
  <transform id="after" type="template" input="gate" template="done"/>
</workflow>
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    paths = {}
    for name, text in (("ok", FLOW), ("fails", FAILS), ("pauses", PAUSES)):
        paths[name] = tmp_path / f"{name}.flow.md"
        paths[name].write_text(text)
    paths["bad"] = tmp_path / "bad.flow.md"
    paths["bad"].write_text("---\nname: bad\n---\n<workflow>\n  <forech id='x'/>\n</workflow>\n")
    return paths


def cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_document(out: str) -> object:
    """The single JSON document ``out`` holds (json.loads refuses anything after it)."""
    assert out.endswith("}\n") or out.endswith("]\n"), out
    assert out.count("\n") == 1 or out.startswith("{\n"), "one document, one line or indented"
    return json.loads(out)


def run_id_of(capsys: pytest.CaptureFixture[str], flow: Path) -> str:
    code, out, _ = cli(capsys, "run", flow, "--json")
    assert code in (0, 1, 3)
    return str(json.loads(out)["run_id"])


def test_version_is_a_result(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--version")
    assert (code, err) == (0, "")
    assert out.startswith("wavecrest ")


def test_validate_verdicts_on_stdout_diagnostics_on_stderr(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, err = cli(capsys, "validate", files["ok"], files["bad"])
    assert code == 2
    assert out == f"{files['ok']}: ok (streams, 2 nodes)\n"
    assert err.startswith(f"{files['bad']}:5:3: error: unknown element <forech>")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("fmt", ["text", "json", "dot"])
def test_plan_in_every_format_is_on_stdout(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], fmt: str
) -> None:
    code, out, err = cli(capsys, "plan", files["ok"], "--format", fmt)
    assert (code, err) == (0, "")
    if fmt == "json":
        assert one_document(out) == {
            "workflow": "streams",
            "waves": [["hello"], ["shout"]],
            "critical_path": ["hello", "shout"],
            "dependencies": {"hello": [], "shout": ["hello"]},
        }
    elif fmt == "dot":
        assert out.startswith('digraph "streams" {\n')
        assert out.endswith("}\n")
    else:
        assert out.startswith("workflow streams\n")
        assert "critical path (2): hello -> shout" in out


def test_plan_of_a_bad_file_writes_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    for fmt in ("text", "json", "dot"):
        code, out, err = cli(capsys, "plan", files["bad"], "--format", fmt)
        assert (code, out) == (2, "")
        assert err.startswith(f"{files['bad']}:5:3: error: ")


def test_run_summary_on_stdout_progress_on_stderr(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, err = cli(capsys, "run", files["fails"])
    assert code == 1
    lines = out.splitlines()
    assert " of fails: failed in " in lines[0]
    assert any(line.split()[:2] == ["boom", "failed"] for line in lines)
    assert "errors (1):" in lines
    assert lines[-1].startswith("snapshot: ")
    # The live log: the run starting and the node failing, nothing of the summary.
    assert err.startswith("running fails (run ")
    assert "  FAILED   boom: ExpressionError: " in err
    assert "errors (1):" not in err
    assert "snapshot:" not in err


@pytest.mark.parametrize("flow", ["ok", "fails", "pauses"])
def test_run_json_is_the_only_thing_on_stdout(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], flow: str
) -> None:
    code, out, err = cli(capsys, "run", files[flow], "--json")
    document = one_document(out)
    assert isinstance(document, dict)
    assert set(document) == {"run_id", "workflow", "status", "snapshot", "outputs", "errors"}
    expected = {"ok": (0, "completed"), "fails": (1, "failed"), "pauses": (3, "paused")}[flow]
    assert (code, document["status"]) == expected
    assert err.startswith(f"running {document['workflow']} (run {document['run_id']}")
    if flow == "pauses":
        assert f"continue with: wavecrest resume {document['run_id']} --approve" in err


def test_quiet_run_writes_a_failure_to_stderr_only(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, err = cli(capsys, "run", files["fails"], "--quiet")
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == "errors (1):"


def test_resume_summary_and_json(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    paused = run_id_of(capsys, files["pauses"])
    code, out, err = cli(capsys, "resume", paused, "--approve", "--json")
    assert code == 0
    assert one_document(out) == {
        "run_id": paused,
        "workflow": "pauses",
        "status": "completed",
        "snapshot": json.loads(out)["snapshot"],
        "outputs": {"gate": None, "after": "done"},
        "errors": [],
    }
    assert err.startswith(f"resuming pauses (run {paused}")
    # Resuming a completed run: the note is the text result, a diagnostic beside --json.
    code, out, err = cli(capsys, "resume", paused)
    assert (code, err) == (0, "")
    assert out == f"run {paused} already completed; nothing to do\n"
    code, out, err = cli(capsys, "resume", paused, "--json")
    assert code == 0
    assert one_document(out)["status"] == "completed"  # type: ignore[index]
    assert err == f"run {paused} already completed; nothing to do\n"


def test_resume_text_summary_is_on_stdout(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    paused = run_id_of(capsys, files["pauses"])
    code, out, err = cli(capsys, "resume", paused, "--approve")
    assert code == 0
    assert out.splitlines()[0].startswith(f"run {paused} of pauses: completed in ")
    assert out.splitlines()[-1].startswith("snapshot: ")
    assert "completed" not in err


def test_inspect_view_and_json(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    failed = run_id_of(capsys, files["fails"])
    code, out, err = cli(capsys, "inspect", failed)
    assert (code, err) == (0, "")
    assert out.startswith(f"run {failed} of fails: failed (updated ")
    assert "  boom (attempt 1): ExpressionError: " in out
    code, out, err = cli(capsys, "inspect", failed, "--json")
    assert (code, err) == (0, "")
    document = one_document(out)
    assert isinstance(document, dict)
    assert (document["run_id"], document["status"]) == (failed, "failed")


def test_runs_table_can_be_grepped(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, err = cli(capsys, "runs")
    assert (code, out) == (0, "")
    assert err.startswith("no runs in ")
    failed = run_id_of(capsys, files["fails"])
    done = run_id_of(capsys, files["ok"])
    code, out, err = cli(capsys, "runs")
    assert (code, err) == (0, "")
    assert [line.split()[:2] for line in out.splitlines() if "failed" in line] == [
        [failed, "failed"]
    ]
    assert f"  {done}  completed" in out
    code, out, err = cli(capsys, "runs", "--json")
    assert (code, err) == (0, "")
    listed = one_document(out)
    assert isinstance(listed, list)
    assert sorted(run["run_id"] for run in listed) == sorted([failed, done])


def test_runs_reports_an_unreadable_snapshot_on_stderr(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    done = run_id_of(capsys, files["ok"])
    broken = Path(os.environ["WAVECREST_STATE_DIR"]) / "streams" / "broken.msgpack"
    broken.write_bytes(b"not a snapshot")
    code, out, err = cli(capsys, "runs", "--json")
    assert code == 2
    assert [run["run_id"] for run in one_document(out)] == [done]  # type: ignore[union-attr]
    assert err.startswith("wavecrest: error: ")
    assert str(broken) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["run", "/no/such.flow.md", "--json"],
        ["plan", "/no/such.flow.md", "--format", "json"],
        ["inspect", "no-such-run", "--json"],
        ["resume", "no-such-run", "--json"],
        ["runs", "--json", "--bogus"],
    ],
)
def test_bad_input_leaves_stdout_empty(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1
    assert "error: " in err


# --- real processes: pipes, a terminal, NO_COLOR -------------------------------------

ANSI = "\x1b["
#: An SGR sequence that sets a foreground or background colour.
COLOUR = re.compile(r"\x1b\[(?:[0-9]+;)*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9]+)*m")


def _wavecrest(*argv: str | Path, env: dict[str, str], tty_stdout: bool = False) -> tuple[str, str]:
    """Run the CLI in a fresh process; stdout to a pseudo-terminal when ``tty_stdout``."""
    command = [sys.executable, "-m", "wavecrest.actors", *map(str, argv)]
    if not tty_stdout:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=60, check=False
        )
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, env=env)
        os.close(follower)
        chunks = []
        while select.select([leader], [], [], 60)[0]:  # a hung process fails, not blocks
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once the process exits
                break
            if not chunk:
                break
            chunks.append(chunk)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    return b"".join(chunks).decode(), err.decode()


@pytest.mark.slow
def test_in_real_processes_results_and_colours_follow_their_stream(
    files: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    out, err = _wavecrest("run", files["fails"], env=env)
    assert " of fails: failed in " in out
    assert err.startswith("running fails (run ")
    # Through pipes: no colour on either stream.
    out, err = _wavecrest("runs", env=env)
    assert [line.split()[1] for line in out.splitlines() if "failed" in line] == ["failed"]
    assert ANSI not in out + err
    # stdout a terminal: its result is coloured; stderr, still a pipe, is not.
    out, err = _wavecrest("runs", env=env, tty_stdout=True)
    assert COLOUR.search(out)
    assert "failed" in out
    out, err = _wavecrest("validate", files["bad"], env=env, tty_stdout=True)
    assert ANSI not in err
    # NO_COLOR turns colours off even on a terminal (bold may stay: it is not a colour).
    out, _ = _wavecrest("runs", env={**env, "NO_COLOR": "1"}, tty_stdout=True)
    assert "failed" in out
    assert not COLOUR.search(out)
