"""Fault plans: the file format, rule matching, seeded draws, and injection through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wavecrest.actors._cli import main
from wavecrest.core import FaultPlan, FaultPlanError, load_faults


def plan_of(*rules: dict[str, Any], seed: int | None = None) -> FaultPlan:
    return FaultPlan.from_mapping(
        {"seed": seed, "rules": list(rules)} if seed else {"rules": list(rules)}
    )


def test_rules_select_by_id_glob_type_glob_and_attempt() -> None:
    plan = plan_of(
        {"node": "load-*", "attempts": [1, 2], "raise": "transient"},
        {"type": "sink:*", "delay": "20ms"},
    )
    assert plan.draw(1, "load-a", "load-a", "source:file", 1).kind == "raise"
    assert plan.draw(1, "load-a", "load-a", "source:file", 3) is None
    assert plan.draw(1, "save", "save", "sink:file", 7).delay == pytest.approx(0.02)
    assert plan.draw(1, "other", "other", "transform:map", 1) is None


def test_the_first_matching_rule_wins_and_kinds_are_exclusive() -> None:
    plan = plan_of({"node": "x", "crash": True}, {"node": "x", "hang": True})
    assert plan.draw(0, "x", "x", "transform:map", 1).kind == "crash"


def test_draws_are_a_function_of_seed_path_and_attempt() -> None:
    """Probability draws never depend on order or timing: same seed, same faults."""
    plan = plan_of({"probability": 0.5, "raise": "permanent", "message": "disk full"})
    paths = [f"each[{i}]/n" for i in range(200)]

    def draws(seed: int) -> list[bool]:
        return [plan.draw(seed, p, "n", "transform:map", 1) is not None for p in paths]

    assert draws(7) == draws(7)
    assert list(reversed(draws(7))) == [
        plan.draw(7, p, "n", "transform:map", 1) is not None for p in reversed(paths)
    ]
    assert draws(7) != draws(8)
    assert 60 < sum(draws(7)) < 140
    fault = plan.draw(7, paths[draws(7).index(True)], "n", "transform:map", 1)
    assert fault.describe() == "raise permanent: disk full"
    assert not fault.exception("n", 1).retryable


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a fault plan must be a mapping with 'rules'"),
        ({"rule": []}, "unknown key 'rule'; expected 'seed' and 'rules'"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"rules": [{"node": "a"}]}, "rule 1: needs exactly one of raise, delay, hang, crash"),
        ({"rules": [{"raise": "sometimes"}]}, "raise must be 'transient' or 'permanent'"),
        ({"rules": [{"delay": "soon"}]}, "invalid duration 'soon'"),
        ({"rules": [{"hang": "yes"}]}, "hang must be true"),
        ({"rules": [{"crash": True, "probability": 2}]}, "'probability' must be between 0 and 1"),
        (
            {"rules": [{"crash": True, "attempts": [0]}]},
            "'attempts' must be a list of attempt numbers >= 1",
        ),
        ({"rules": [{"crash": True, "message": "x"}]}, "'message' only applies to raise"),
        ({"rules": [{"crash": True, "colour": "red"}]}, "unknown key 'colour'"),
    ],
)
def test_malformed_plans_are_refused_with_a_clear_message(data: Any, message: str) -> None:
    with pytest.raises(FaultPlanError, match=message):
        FaultPlan.from_mapping(data)


def test_a_fault_file_is_yaml(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("seed: 7\nrules:\n  - node: 'a'\n    raise: transient\n")
    plan = load_faults(path)
    assert plan is not None
    assert plan.seed == 7
    assert len(plan.rules) == 1
    path.write_text("rules: [unclosed\n")
    with pytest.raises(FaultPlanError, match="invalid YAML"):
        load_faults(path)


FLOW = """---
name: faulty
---
<workflow>
  <foreach id="each" collection="range(30) | list" concurrency="4">
    <transform id="n" type="template" template="{{ item * 2 }}">
      <on-error><retry max="3" base="1ms"/></on-error>
    </transform>
  </foreach>
</workflow>
"""


def _faults_in_log(state: Path) -> list[tuple[str, int, str]]:
    [log] = (state / "faulty").glob("*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return sorted(
        (e["node"], e["attempt"], e["fault"]) for e in lines if e["event"] == "fault.injected"
    )


def test_the_same_seed_replays_the_same_faults_and_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--faults and --seed: injected faults are logged, and a seed reproduces them exactly."""
    flow = tmp_path / "faulty.flow.md"
    flow.write_text(FLOW)
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        "rules:\n"
        "  - node: n\n    attempts: [1, 2]\n    probability: 0.4\n    raise: transient\n"
        "  - node: n\n    attempts: [1]\n    probability: 0.1\n    crash: true\n"
    )
    outcomes = []
    logs = []
    for attempt in range(3):
        state = tmp_path / f"state{attempt}"
        seed = "11" if attempt < 2 else "12"
        code = main(
            [
                "run",
                str(flow),
                "--faults",
                str(faults),
                "--seed",
                seed,
                "--state-dir",
                str(state),
                "--json",
            ]
        )
        data = json.loads(capsys.readouterr().out)
        outcomes.append((code, data["status"], data["outputs"]["each"]))
        logs.append(_faults_in_log(state))
    assert outcomes[0] == outcomes[1] == (0, "completed", [i * 2 for i in range(30)])
    assert logs[0] == logs[1]
    assert logs[0], "a 40% rule over 30 nodes injected nothing"
    assert logs[2] != logs[0]
