"""The wavecrest command: exit codes and no tracebacks for bad input (streams: test_streams)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from wavecrest.actors._cli import main

GOOD = """---
name: greet
config:
  who: {type: string, default: world}
  times: {type: integer, default: 2}
secrets: [GREET_TOKEN]
---
<workflow>
  <transform id="hello" type="template" template="hello {{ config.who }}"/>
  <transform id="many" type="template" input="hello" template="{{ [input] * config.times }}"/>
</workflow>
"""


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "greet.flow.md"
    path.write_text(GOOD)
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GREET_TOKEN", "t0ken")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_prints_its_verdict_on_stdout(
    capsys: pytest.CaptureFixture[str], good: Path
) -> None:
    code, out, err = run_cli(capsys, "validate", str(good))
    assert (code, out, err) == (0, f"{good}: ok (greet, 2 nodes)\n", "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read file"),
        (b"", "file is empty"),
        (b"\x00\x01\x02\xff", "file is not UTF-8 text"),
        (b"no front matter here\n", "missing front matter"),
    ],
)
def test_validate_reports_unreadable_input_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "x.flow.md"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert out == ""
    assert err.startswith(f"{path}:1:1: error: ")
    assert message in err
    assert "Traceback" not in err


def test_validate_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "validate", str(tmp_path))
    assert code == 2
    assert "is a directory" in err


def test_validate_reports_every_problem_located(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.flow.md"
    path.write_text(
        "---\nname: bad\n---\n<workflow>\n"
        '  <transform id="a" type="nope"/>\n'
        '  <transform id="b" type="template" input="zzz" template="x"/>\n'
        "</workflow>\n"
    )
    code, _, err = run_cli(capsys, "validate", str(path))
    lines = err.strip().splitlines()
    assert code == 2
    assert lines[0].startswith(f"{path}:5:21: error: unknown node type 'transform:nope'")
    assert lines[1] == f"{path}:6:3: error: unknown input 'zzz' referenced by 'b'"


def test_plan_json_is_the_only_thing_on_stdout(
    capsys: pytest.CaptureFixture[str], good: Path
) -> None:
    code, out, err = run_cli(capsys, "plan", str(good), "--format", "json")
    assert code == 0
    assert err == ""
    assert json.loads(out) == {
        "workflow": "greet",
        "waves": [["hello"], ["many"]],
        "critical_path": ["hello", "many"],
        "dependencies": {"hello": [], "many": ["hello"]},
    }


def test_plan_text_and_dot_are_results_on_stdout(
    capsys: pytest.CaptureFixture[str], good: Path
) -> None:
    code, out, err = run_cli(capsys, "plan", str(good))
    assert (code, err) == (0, "")
    assert "wave 1: hello" in out
    assert "critical path (2): hello -> many" in out
    code, out, err = run_cli(capsys, "plan", str(good), "--format", "dot")
    assert (code, err) == (0, "")
    assert out.startswith('digraph "greet" {')
    assert out.endswith("}\n")
    assert '"hello" -> "many";' in out


def test_run_json_prints_the_fixed_object(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    code, out, _ = run_cli(
        capsys, "run", str(good), "--json", "--set", "who=ada", "--set", "times=3"
    )
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"run_id", "workflow", "status", "snapshot", "outputs", "errors"}
    assert data["status"] == "completed"
    assert data["outputs"] == {"hello": "hello ada", "many": ["hello ada"] * 3}
    assert Path(data["snapshot"]).is_file()


def test_run_prints_its_summary_on_stdout_and_progress_on_stderr(
    capsys: pytest.CaptureFixture[str], good: Path
) -> None:
    code, out, err = run_cli(capsys, "run", str(good))
    assert code == 0
    assert out.splitlines()[0].startswith("run ")
    assert " of greet: completed in " in out.splitlines()[0]
    assert "hello world" in out
    assert out.splitlines()[-1].startswith("snapshot: ")
    assert err.startswith("running greet (run ")
    assert "completed" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "times=many"], "invalid value 'many' for config 'times': expected an integer"),
        (["--set", "nope=1"], "unknown config key 'nope' for workflow 'greet'"),
        (["--set", "oops"], "invalid --set 'oops': expected KEY=VALUE"),
        (["--max-concurrency", "0"], "invalid value '0': expected an integer >= 1"),
        (["--mode", "fast"], "invalid choice: 'fast'"),
        (["--timeout", "soon"], "invalid timeout: invalid duration 'soon'"),
        (["--faults", "/nonexistent.yaml"], "cannot read fault file"),
    ],
)
def test_bad_run_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], good: Path, argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, "run", str(good), *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_state_dir_that_cannot_be_written_is_bad_input(
    capsys: pytest.CaptureFixture[str], good: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = run_cli(capsys, "run", str(good), "--state-dir", str(blocker / "state"))
    assert (code, out) == (2, "")
    assert f"{blocker / 'state' / 'greet'}: cannot keep run" in err
    assert "(Not a directory)" in err
    assert len(err.strip().splitlines()) == 1


def test_a_missing_secret_is_bad_input(
    capsys: pytest.CaptureFixture[str], good: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GREET_TOKEN")
    code, _, err = run_cli(capsys, "run", str(good))
    assert code == 2
    assert "missing secret 'GREET_TOKEN'" in err
    code, _, _ = run_cli(capsys, "run", str(good), "--secret", "GREET_TOKEN=given")
    assert code == 0


def test_a_failed_workflow_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "fail.flow.md"
    path.write_text(
        "---\nname: fail\n---\n<workflow>\n"
        '  <transform id="x" type="template" template="{{ 1 / 0 }}"/>\n'
        "</workflow>\n"
    )
    code, out, err = run_cli(capsys, "run", str(path))
    assert code == 1
    assert "x (attempt 1): ExpressionError" in out  # the summary's errors: the result
    assert "FAILED   x: ExpressionError" in err  # the progress line, a diagnostic


def test_unknown_command_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice: 'frobnicate'" in err
    code, _, err = run_cli(capsys)
    assert code == 2
    assert "a command is required" in err


def test_python_m_and_the_console_script_are_the_same_cli(good: Path) -> None:
    """`python -m wavecrest.actors` and `wavecrest` both exist and agree."""
    module = subprocess.run(
        [sys.executable, "-m", "wavecrest.actors", "validate", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    script = Path(sys.executable).with_name("wavecrest")
    console = subprocess.run(
        [str(script), "validate", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert module.returncode == console.returncode == 0
    assert module.stdout == console.stdout == f"{good}: ok (greet, 2 nodes)\n"
    assert module.stderr == console.stderr == ""


def test_a_run_timeout_ends_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "slow.flow.md"
    path.write_text(
        '---\nname: slow\n---\n<workflow>\n  <delay id="d" duration="30s"/>\n</workflow>\n'
    )
    code, out, err = run_cli(capsys, "run", str(path), "--timeout", "50ms")
    assert code == 1
    assert ": cancelled in " in out
    assert "run exceeded its timeout of 50ms" in out
    assert "resume with: wavecrest resume" in err
    assert "resume with" not in out
    assert "Traceback" not in out + err


def test_nodes_that_never_started_are_listed_as_pending(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "ff.flow.md"
    path.write_text(
        "---\nname: ff\n---\n<workflow>\n"
        '  <transform id="bad" type="template" template="{{ 1 / 0 }}"/>\n'
        '  <transform id="later" type="template" input="bad" template="x"/>\n'
        "</workflow>\n"
    )
    code, out, _ = run_cli(capsys, "run", str(path))
    assert code == 1
    [row] = [line for line in out.splitlines() if line.startswith("later")]
    assert row.split()[:2] == ["later", "pending"]
    run_id = next(line.split()[1] for line in out.splitlines() if line.startswith("run "))
    code, out, err = run_cli(capsys, "inspect", run_id)
    assert (code, err) == (0, "")
    assert any(line.split()[:2] == ["later", "pending"] for line in out.splitlines())
