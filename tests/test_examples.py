"""The workflows in ``examples/``: each one parses, plans and does what its prose says.

Every run writes below ``tmp_path`` (config ``out_dir``, and ``spool_dir`` for
the ETL fallback) and keeps its snapshots there, so the examples folder is
never touched. Outputs are checked by value, and so are the files written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from wavecrest.actors import resume_workflow, run_workflow
from wavecrest.actors._cli import main
from wavecrest.core import RunResult, load_workflow, plan

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.flow.md"))
CONTROL_ELEMENTS = {
    "parallel",
    "foreach",
    "if",
    "branch",
    "loop",
    "while",
    "break",
    "checkpoint",
    "delay",
}


def example(name: str) -> Path:
    return EXAMPLES_DIR / f"{name}.flow.md"


def run(name: str, tmp_path: Path, **config: Any) -> RunResult:
    """Run an example with its outputs and snapshots under ``tmp_path``."""
    config = {"out_dir": str(tmp_path / "out"), **config}
    return run_workflow(example(name), state_dir=tmp_path / "state", config=config)


def completed(result: RunResult) -> RunResult:
    assert result.status == "completed", (result.reason, result.errors)
    assert result.errors == ()
    return result


# --- every example ------------------------------------------------------------------


def test_the_examples_folder_holds_the_documented_examples() -> None:
    assert [p.name for p in EXAMPLES] == [
        "approval.flow.md",
        "capacity.flow.md",
        "etl.flow.md",
        "reports.flow.md",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_validates_and_plans(path: Path) -> None:
    """Every example parses, plans, and declares its metadata and a typed out_dir."""
    workflow = load_workflow(path)
    assert workflow.version == "1.0.0"
    assert workflow.description
    out_dir = workflow.config_fields["out_dir"]
    assert (out_dir.type, out_dir.default) == ("string", "out")
    planned = plan(workflow)
    assert planned.critical_path
    assert set(planned.nodes) == {node.id for node, _ in workflow.iter_nodes()}


def test_the_examples_together_use_every_control_node() -> None:
    elements = {node.element for path in EXAMPLES for node, _ in load_workflow(path).iter_nodes()}
    assert elements >= CONTROL_ELEMENTS
    assert {"source", "transform", "sink"} <= elements


def test_the_examples_together_read_and_write_every_file_format() -> None:
    used: dict[str, set[str]] = {"source": set(), "sink": set()}
    for path in EXAMPLES:
        for node, _ in load_workflow(path).iter_nodes():
            if node.element in used and getattr(node, "type", None) == "file":
                used[node.element].add(getattr(node, "config", {})["format"])
    assert used["source"] == {"json", "yaml", "csv"}
    assert used["sink"] == {"json", "yaml", "csv", "text", "lines"}


def test_an_example_retries_and_falls_back() -> None:
    on_error = getattr(load_workflow(example("etl")).node("save"), "on_error", None)
    assert on_error is not None
    assert on_error.retry is not None
    assert on_error.retry.max == 3
    assert on_error.fallback == "save-local"


def test_examples_out_is_gitignored() -> None:
    assert "out/" in (EXAMPLES_DIR / ".gitignore").read_text().split()


# --- etl ----------------------------------------------------------------------------

ACTIVE_NAMES = ["ADA LOVELACE", "GRACE HOPPER", "ALAN TURING", "BARBARA LISKOV"]


def test_etl_saves_the_active_users_names(tmp_path: Path) -> None:
    result = completed(run("etl", tmp_path, spool_dir=str(tmp_path / "spool")))
    saved = tmp_path / "out" / "names.json"
    assert result.outputs["names"] == ACTIVE_NAMES
    assert json.loads(saved.read_text()) == ACTIVE_NAMES
    assert result.outputs["save"] == {
        "path": str(saved),
        "format": "json",
        "mode": "write",
        "count": 4,
    }
    assert result.outputs["summary"] == (
        f"4 of 6 users are active: {', '.join(ACTIVE_NAMES)} -> {saved}"
    )
    assert "save-local" not in result.nodes  # a fallback never runs on its own
    assert not (tmp_path / "spool").exists()


def test_etl_retries_a_transient_write_failure(tmp_path: Path) -> None:
    faults = {"rules": [{"node": "save", "attempts": [1], "raise": "transient"}]}
    result = run_workflow(
        example("etl"),
        state_dir=tmp_path / "state",
        config={"out_dir": str(tmp_path / "out"), "spool_dir": str(tmp_path / "spool")},
        faults=faults,
        seed=3,
    )
    completed(result)
    assert result.nodes["save"].attempts == 2
    assert result.nodes["save"].fallback is None
    assert json.loads((tmp_path / "out" / "names.json").read_text()) == ACTIVE_NAMES


def test_etl_falls_back_to_the_spool_when_out_dir_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be\n")
    spooled = tmp_path / "spool" / "names.json"
    result = completed(
        run("etl", tmp_path, out_dir=str(blocker), spool_dir=str(tmp_path / "spool"))
    )
    save = result.nodes["save"]
    # Not a transient error, so no retry: the fallback ran after the first attempt.
    assert (save.attempts, save.fallback) == (1, "save-local")
    assert save.error is not None
    assert save.error.type == "FileExistsError"
    assert result.outputs["save"]["path"] == str(spooled)
    assert json.loads(spooled.read_text()) == ACTIVE_NAMES
    assert result.outputs["summary"].endswith(f"-> {spooled}")


def test_etl_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's first example: exit 0, and the summary among the outputs."""
    code = main(
        [
            "run",
            str(example("etl")),
            "--set",
            f"out_dir={tmp_path / 'out'}",
            "--state-dir",
            str(tmp_path / "state"),
            "--json",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    printed = json.loads(out)
    assert printed["status"] == "completed"
    assert printed["outputs"]["names"] == ACTIVE_NAMES


# --- reports ------------------------------------------------------------------------

SCORECARD_KEYS = ("region", "manager", "units", "revenue", "target", "score")
SCORECARDS = [
    dict(zip(SCORECARD_KEYS, row, strict=True))
    for row in [
        ("north", "Ada", 624, 31200, 30000, 104.0),
        ("west", "Grace", 455, 22750, 25000, 91.0),
        ("south", "Alan", 308, 15400, 20000, 77.0),
    ]
]


def test_reports_scores_the_first_regions_and_flags_the_year_at_risk(tmp_path: Path) -> None:
    result = completed(run("reports", tmp_path))
    assert result.outputs["per-region"] == SCORECARDS
    # The break fired in the third iteration; the fourth region never started.
    assert result.outputs["per-region[2]/enough"] is True
    assert not any(path.startswith("per-region[3]") for path in result.nodes)
    summary = {
        "totals": {"revenue": 69350, "target": 75000, "score": 92.5},
        "best": "north",
        "below_target": ["west", "south"],
    }
    assert result.outputs["summaries"] == summary
    verdict = "at risk: 92.5% of target, west, south below"
    assert result.outputs["verdict"] == verdict
    assert result.nodes["on-track"].status == "skipped"
    assert result.nodes["behind"].status == "skipped"

    with (tmp_path / "out" / "scorecards.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["region"], r["revenue"], r["score"]) for r in rows] == [
        ("north", "31200", "104.0"),
        ("west", "22750", "91.0"),
        ("south", "15400", "77.0"),
    ]
    saved = yaml.safe_load((tmp_path / "out" / "summary.yaml").read_text())
    assert saved == {**summary, "regions": 3, "verdict": verdict}


@pytest.mark.parametrize(
    ("config", "verdict"),
    [
        ({"max_regions": 1}, "on track: 104.0% of target"),
        (
            {"max_regions": 5, "warn_at": 96},
            "behind: 95.3% of target, west, south, islands below",
        ),
    ],
)
def test_reports_branches_on_the_overall_score(
    tmp_path: Path, config: dict[str, Any], verdict: str
) -> None:
    result = completed(run("reports", tmp_path, **config))
    assert len(result.outputs["per-region"]) == config["max_regions"]
    assert result.outputs["verdict"] == verdict


# --- capacity -----------------------------------------------------------------------


def test_capacity_adds_servers_before_the_fleet_runs_out(tmp_path: Path) -> None:
    result = completed(run("capacity", tmp_path))
    out = tmp_path / "out"
    assert (out / "projection.txt").read_text().splitlines() == [
        "checkout: month users capacity (servers x 500)",
        "1 1344 2000",
        "2 1505 2000",
        "3 1686 2000",
        "4 1888 2000",
        "5 2115 2000",
    ]
    # The while ran five months; the loop booted two servers and then broke.
    assert "project[4]/month" in result.outputs
    assert "project[5]/month" not in result.nodes
    assert result.outputs["provision"]["servers"] == 6
    assert [p for p in result.nodes if p.endswith("/boot")] == [
        "provision[0]/boot",
        "provision[1]/boot",
    ]
    plan_ = {"action": "grow", "month": 5, "users": 2115, "servers": 6, "add": 2}
    assert result.outputs["verdict"] == plan_
    assert result.nodes["keep"].status == "skipped"
    assert json.loads((out / "plan.json").read_text()) == plan_
    assert (out / "advice.txt").read_text() == (
        "checkout: 2115 users outgrow 4 servers in month 5; add 2 (to 6)"
    )


def test_capacity_keeps_the_fleet_when_it_lasts_the_horizon(tmp_path: Path) -> None:
    result = completed(run("capacity", tmp_path, horizon=3))
    out = tmp_path / "out"
    assert len((out / "projection.txt").read_text().splitlines()) == 1 + 3
    assert result.nodes["provision"].status == "skipped"
    assert result.outputs["verdict"] == {
        "action": "keep",
        "month": 3,
        "users": 1686,
        "servers": 4,
        "add": 0,
    }
    assert (out / "advice.txt").read_text() == (
        "checkout: 4 servers last the 3-month horizon (1686 users in month 3)"
    )


# --- approval -----------------------------------------------------------------------

PROPOSED = [
    {"sku": "TEA-01", "name": "Green tea 100g", "price": "4.95"},
    {"sku": "TEA-02", "name": "Black tea 250g", "price": "8.69"},
    {"sku": "CUP-01", "name": "Stoneware cup", "price": "13.20"},
    {"sku": "POT-01", "name": "Cast iron teapot", "price": "42.90"},
]


def paused_approval(tmp_path: Path) -> RunResult:
    """Run the approval example up to its checkpoint and check what it left behind."""
    result = run("approval", tmp_path)
    out = tmp_path / "out"
    assert result.status == "paused", (result.reason, result.errors)
    assert result.nodes["sign-off"].status == "waiting"
    assert result.nodes["sign-off"].reason == (
        f"Raise 4 prices by 10%? Review {out / 'price-changes.json'}"
    )
    assert json.loads((out / "price-changes.json").read_text())[1] == {
        "sku": "TEA-02",
        "old": 7.9,
        "new": 8.69,
    }
    assert not (out / "prices.csv").exists()
    return result


def test_approval_pauses_and_publishes_once_approved(tmp_path: Path) -> None:
    paused = paused_approval(tmp_path)
    result = completed(resume_workflow(paused.run_id, state_dir=tmp_path / "state", approve=True))
    out = tmp_path / "out"
    assert result.run_id == paused.run_id
    assert result.outputs["sign-off"] == PROPOSED
    with (out / "prices.csv").open(newline="") as f:
        assert list(csv.DictReader(f)) == PROPOSED
    assert (out / "audit.log").read_text() == f"run {paused.run_id}: raised 4 prices by 10%\n"


def test_approval_publishes_nothing_when_rejected(tmp_path: Path) -> None:
    paused = paused_approval(tmp_path)
    result = resume_workflow(paused.run_id, state_dir=tmp_path / "state", approve=False)
    assert result.status == "failed"
    assert [(e.node, e.type) for e in result.errors] == [("sign-off", "CheckpointRejectedError")]
    assert not (tmp_path / "out" / "prices.csv").exists()
    assert not (tmp_path / "out" / "audit.log").exists()


def test_approval_from_the_command_line_exits_3_and_says_how_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(example("approval")),
            "--set",
            f"out_dir={tmp_path / 'out'}",
            "--state-dir",
            str(tmp_path / "state"),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert (code, printed["status"]) == (3, "paused")
    assert f"wavecrest resume {printed['run_id']} --approve" in err
