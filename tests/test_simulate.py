"""simulate(): the public front of the simulator, and its canonical, reproducible trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.core import (
    FaultPlan,
    NodeStarted,
    NodeSucceeded,
    RunResult,
    RuntimeContext,
    Simulation,
    load_workflow,
    parse_workflow,
    plan,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._events import StartTask
from wavecrest.core.testing import (
    PROBE_KEY,
    check_trace,
    fault_plan_mappings,
    fault_plans,
    probe_runtime,
    render_flow,
    seeds,
    simulate,
    workflows,
)

FLOW = """---
name: sim
runtime: {max_concurrency: 2}
---
<workflow>
  <transform id="items" type="template" template="{{ [3, 1, 2] }}"/>
  <foreach id="each" collection="items.output">
    <transform id="sq" type="template" template="{{ item * item }}">
      <on-error><retry max="2" base="10ms"/></on-error>
    </transform>
  </foreach>
  <parallel id="both">
    <branch name="a"><transform id="x" type="template" template="{{ {'k': 1.5} }}"/></branch>
    <branch name="b"><transform id="y" type="template" template="{{ [none, true] }}"/></branch>
  </parallel>
  <transform id="total" type="template" input="each, both" template="{{ input }}"/>
</workflow>
"""
FAULTS = {"rules": [{"node": "sq", "attempts": [1], "raise": "transient"}]}


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "sim.flow.md"
    path.write_text(FLOW)
    return path


def test_a_path_text_workflow_or_plan_give_the_same_run(flow_file: Path) -> None:
    workflow = load_workflow(flow_file)
    digests = {
        simulate(source, seed=3, faults=FAULTS).digest()
        for source in (flow_file, str(flow_file), FLOW, workflow, plan(workflow))
    }
    assert len(digests) == 1
    sim = simulate(workflow, seed=3, faults=FAULTS)
    assert isinstance(sim, Simulation)
    assert isinstance(sim.result, RunResult)
    assert sim.result.status == "completed"
    assert sim.result.outputs["total"] == [[9, 1, 4], [{"k": 1.5}, [None, True]]]
    assert all(sim.result.nodes[f"each[{k}]/sq"].attempts == 2 for k in range(3))
    check_trace(sim)


def test_the_same_seed_gives_byte_identical_traces_here_and_in_other_processes(
    flow_file: Path, tmp_path: Path
) -> None:
    here = simulate(flow_file, seed=7, faults=FAULTS)
    again = simulate(flow_file, seed=7, faults=FAULTS)
    assert here.trace_bytes() == again.trace_bytes()
    assert here.digest() == again.digest()
    script = (
        "import sys; from wavecrest.core.testing import simulate; "
        f"print(simulate(sys.argv[1], seed=7, faults={FAULTS!r}).digest())"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(flow_file)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == here.digest()


def test_another_seed_orders_completions_differently(flow_file: Path) -> None:
    orders, digests = set(), set()
    for seed in range(5):
        sim = simulate(flow_file, seed=seed, max_concurrency=4)
        orders.add(tuple(e.path for e in sim.events if isinstance(e, NodeSucceeded)))
        digests.add(sim.digest())
        assert sim.result is not None
        assert sim.result.outputs["total"] == [[9, 1, 4], [{"k": 1.5}, [None, True]]]
    assert len(orders) > 1
    assert len(digests) == 5


def test_the_canonical_bytes_are_sorted_json_lines_without_addresses_or_tracebacks() -> None:
    class Opaque:
        pass

    def opaque(ctx: RuntimeContext) -> Any:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt")
        return {"obj": Opaque(), 2: {1, 3}, "b": b"\x00\xff"}

    register_runtime("transform:opaque", opaque, replace=True)
    try:
        workflow = parse_workflow(
            "---\nname: c\n---\n<workflow>\n"
            '<transform id="o" type="opaque"><on-error><retry max="1" when="always"/>'
            "</on-error></transform>\n</workflow>\n"
        )
        sim = simulate(workflow)
    finally:
        unregister_runtime("transform:opaque")
    lines = sim.trace_bytes().decode("utf-8").splitlines()
    assert len(lines) == len(sim.trace)
    for line in lines:
        entry = json.loads(line)
        assert line == json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = "\n".join(lines)
    assert "0x" not in text
    assert "Traceback" not in text
    assert '"traceback"' not in text
    assert '{"@repr":"<' in text
    assert '"@set":[1,3]' in text
    assert '"@bytes":"00ff"' in text


def test_durations_from_a_table_of_globs_or_a_callable(flow_file: Path) -> None:
    table = simulate(flow_file, durations={"x": "2s", "transform:template": 0.5})
    assert table.result is not None
    nodes = table.result.nodes
    assert nodes["x"].duration == 2.0
    assert nodes["y"].duration == 0.5
    assert nodes["each[1]/sq"].duration == 0.5

    def by_attempt(start: StartTask) -> float:
        return 3.0 if start.node.id == "sq" else 0.25

    called = simulate(flow_file, durations=by_attempt)
    assert called.result is not None
    assert called.result.nodes["each[0]/sq"].duration == 3.0
    assert called.result.nodes["items"].duration == 0.25
    with pytest.raises(ValueError, match=r"invalid duration for 'x'"):
        simulate(flow_file, durations={"x": "soon"})


def test_faults_as_a_plan_a_dict_or_a_file_inject_the_same(flow_file: Path, tmp_path: Path) -> None:
    fault_file = tmp_path / "faults.yaml"
    fault_file.write_text("rules:\n  - node: sq\n    attempts: [1]\n    raise: transient\n")
    digests = {
        simulate(flow_file, seed=2, faults=faults).digest()
        for faults in (FAULTS, FaultPlan.from_mapping(FAULTS), fault_file, str(fault_file))
    }
    assert len(digests) == 1
    assert simulate(flow_file, seed=2).digest() not in digests


def test_a_crash_and_a_resume_never_rerun_what_succeeded(flow_file: Path) -> None:
    crashed = simulate(flow_file, seed=1, crash_after=3)
    assert crashed.result is not None
    assert crashed.result.status == "running"
    done = {p for p, r in crashed.result.nodes.items() if r.status == "succeeded"}
    assert done
    for prior in (crashed, crashed.result, crashed.result.nodes):
        resumed = simulate(flow_file, seed=9, prior=prior)
        assert resumed.result is not None
        assert resumed.result.status == "completed"
        started = {c.path for c in resumed.trace if isinstance(c, StartTask)}
        assert not started & done
        check_trace(resumed)
    with pytest.raises(ValueError, match="has not run"):
        simulate(flow_file, prior=Simulation(plan(load_workflow(flow_file))))


def test_the_workflows_runtime_settings_apply_unless_overridden(flow_file: Path) -> None:
    sim = simulate(flow_file, durations={"*": 1.0})
    assert sim.settings.max_concurrency == 2
    assert sim.max_running == 2
    assert simulate(flow_file, max_concurrency=1).max_running == 1
    waves = simulate(flow_file, mode="waves")
    assert waves.settings.mode == "waves"
    check_trace(waves)
    text = FLOW.replace("max_concurrency: 2", "max_concurrency: 2, keep_going: true")
    failing = {"rules": [{"node": "x", "raise": "permanent"}]}
    kept = simulate(text, faults=failing)
    assert kept.result is not None
    assert kept.result.nodes["each"].status == "succeeded"
    assert kept.supervisor.policy.keep_going is True
    stopped = simulate(text, faults=failing, keep_going=False)
    assert stopped.supervisor.policy.keep_going is False
    assert stopped.result is not None
    assert stopped.result.status == "failed"


def test_a_runtime_raising_system_exit_fails_its_attempt_like_a_crashed_node() -> None:
    def leaves(ctx: RuntimeContext) -> Any:
        raise SystemExit(3)

    register_runtime("transform:leaves", leaves, replace=True)
    try:
        sim = simulate(
            '---\nname: e\n---\n<workflow><transform id="a" type="leaves"/></workflow>\n'
        )
    finally:
        unregister_runtime("transform:leaves")
    assert sim.result is not None
    assert sim.result.status == "failed"
    assert sim.result.errors[0].type == "NodeCrashedError"
    assert "SystemExit(3)" in sim.result.errors[0].message


def test_bad_arguments_say_what_is_accepted() -> None:
    with pytest.raises(TypeError, match=r"workflow must be a path, \.flow\.md text"):
        simulate(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"durations must be a callable or a mapping"):
        simulate(FLOW, durations=[1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prior must be a Simulation"):
        simulate(FLOW, prior=[1])  # type: ignore[arg-type]


# --- the strategies -------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _probe() -> Iterator[None]:
    with probe_runtime():
        yield


def test_probe_runtime_restores_the_registry() -> None:
    from wavecrest.core import runtime_keys

    with probe_runtime():
        assert PROBE_KEY in runtime_keys()
    assert PROBE_KEY in runtime_keys()  # the module fixture's registration is kept


@settings(max_examples=examples(50), deadline=None)
@given(data=st.data())
def test_fault_plans_aim_at_the_workflows_ids_and_types(data: st.DataObject) -> None:
    workflow = data.draw(workflows(retries=True, fallbacks=True, timeouts=True))
    parse_workflow(render_flow(workflow))
    mapping = data.draw(fault_plan_mappings(workflow))
    FaultPlan.from_mapping(mapping)
    ids = {n.id for n, _ in workflow.iter_nodes()}
    timed = set()
    for node, _ in workflow.iter_nodes():
        retry = getattr(node, "on_error", None) and node.on_error.retry  # type: ignore[attr-defined]
        if node.timeout is not None or (retry and retry.timeout is not None):
            timed.add(node.id)
    for rule in mapping["rules"]:
        node = rule.get("node")
        if node is not None and not node.endswith("*"):
            assert node in ids
        if node is not None and node.endswith("*"):
            assert any(i.startswith(node[:-1]) for i in ids)
        if "hang" in rule:
            assert node in timed
        if "type" in rule:
            assert rule["type"] in ("transform:*", "source:*", "sink:*", PROBE_KEY)
    plan_ = data.draw(fault_plans(workflow))
    assert isinstance(plan_, FaultPlan)
    assert 0 <= data.draw(seeds()) < 2**32


#: A generated workflow none of whose task nodes runs: a foreach over no items.
EMPTY_FOREACH = """---
name: generated
---
<workflow>
  <foreach id="t-0" collection="[]">
    <transform id="t-1" type="wc-probe" read="{{ [input] }}"/>
  </foreach>
</workflow>
"""


def test_generated_workflows_simulate_without_registering_anything() -> None:
    """The probe runtime of generated workflows is there without registering it: every run
    completes, and every task node it starts succeeds (a foreach over no items starts
    none)."""
    with probe_runtime():
        empty_foreach = parse_workflow(EMPTY_FOREACH, "generated.flow.md")

    @settings(max_examples=examples(10), deadline=None)
    @given(workflow=workflows(), seed=seeds())
    @example(workflow=empty_foreach, seed=0)
    def runs(workflow: Any, seed: int) -> None:
        sim = simulate(workflow, seed=seed)
        assert sim.result is not None
        assert sim.result.status == "completed"
        assert all(r.status in ("succeeded", "skipped") for r in sim.result.nodes.values())
        started = {e.path for e in sim.events if isinstance(e, NodeStarted)}
        assert started <= {p for p, r in sim.result.nodes.items() if r.status == "succeeded"}

    runs()


def test_a_string_with_a_line_break_is_workflow_text_not_a_path() -> None:
    text = textwrap.dedent(
        """\
        ---
        name: tiny
        ---
        <workflow><transform id="a" type="template" template="hi"/></workflow>
        """
    )
    assert simulate(text).result.outputs == {"a": "hi"}  # type: ignore[union-attr]
