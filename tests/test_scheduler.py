"""The scheduler core's semantics, pinned with exact outputs and statuses.

Every run here goes through the deterministic :class:`Simulation`: the real
scheduler and supervisor, a FIFO semaphore, virtual time. ``duration=``
fixes how long each attempt takes, which fixes the completion order a test
relies on; ``trace`` (every input and command, in order) is what the
ordering assertions read.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest
from wavecrest.core import (
    FaultPlan,
    NodeCancelled,
    NodeRetrying,
    NodeStarted,
    NodeSucceeded,
    PermanentError,
    RunResult,
    RunSettings,
    RuntimeContext,
    Simulation,
    SupervisorPolicy,
    TransientError,
    Workflow,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._events import (
    AbandonTask,
    CancelTask,
    FailNode,
    PermitsGranted,
    ReleasePermits,
    StartTask,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
)
from wavecrest.core.testing import check_trace

# --- runtimes and helpers ---------------------------------------------------------------


def _flaky(ctx: RuntimeContext) -> str:
    """Fails its first ``fails`` attempts with ``error`` (transient, permanent or value)."""
    if ctx.attempt <= int(ctx.config.get("fails", 0)):
        error = ctx.config.get("error", "transient")
        message = f"{ctx.node_id} failed attempt {ctx.attempt}"
        if error == "transient":
            raise TransientError(message)
        if error == "permanent":
            raise PermanentError(message)
        raise ValueError(message)
    return f"{ctx.node_id}@{ctx.attempt}"


def _slow(ctx: RuntimeContext) -> Any:
    """Sleeps ``seconds`` (cancellably, in virtual time), then passes its input on."""
    ctx.sleep(float(ctx.config.get("seconds", 10)))
    return ctx.input


RUNTIMES: dict[str, Callable[[RuntimeContext], Any]] = {
    "transform:flaky": _flaky,
    "transform:slow": _slow,
}


@pytest.fixture(autouse=True, scope="module")
def _runtimes() -> Iterator[None]:
    for key, func in RUNTIMES.items():
        register_runtime(key, func, replace=True)
    yield
    for key in RUNTIMES:
        unregister_runtime(key)


def flow(body: str, *, config: str = "") -> Workflow:
    head = "---\nname: test\n" + textwrap.dedent(config) + "---\n"
    return parse_workflow(f"{head}<workflow>\n{textwrap.dedent(body).strip()}\n</workflow>\n")


def by_id(durations: dict[str, float], default: float = 0.01) -> Callable[[StartTask], float]:
    """Attempt durations by node id (or by path, which wins)."""

    def duration(start: StartTask) -> float:
        return durations.get(start.path, durations.get(start.node.id, default))

    return duration


def run(
    body: str | Workflow,
    *,
    cap: int = 8,
    mode: str = "eager",
    keep_going: bool = False,
    grace: float = 5.0,
    timeout: float | None = None,
    durations: dict[str, float] | None = None,
    config_spec: str = "",
    policy: SupervisorPolicy | None = None,
    **options: Any,
) -> tuple[Simulation, RunResult]:
    workflow = body if isinstance(body, Workflow) else flow(body, config=config_spec)
    if durations is not None:
        options["duration"] = by_id(durations)
    sim = Simulation(
        workflow,
        settings=RunSettings(max_concurrency=cap, mode=mode, grace=grace, timeout=timeout),
        policy=policy or SupervisorPolicy(keep_going=keep_going),
        **options,
    )
    return sim, sim.run()


def started(sim: Simulation) -> list[str]:
    """The paths of the attempts started, in order."""
    return [c.path for c in sim.trace if isinstance(c, StartTask)]


def statuses(result: RunResult) -> dict[str, str]:
    return {path: r.status for path, r in result.nodes.items()}


def max_running(sim: Simulation, within: Callable[[str], Any] = lambda path: path) -> int:
    """The most attempts running at once, counting distinct ``within(path)`` values."""
    running: dict[int, str] = {}
    most = 0
    for item in sim.trace:
        if isinstance(item, StartTask):
            running[item.token] = item.path
            most = max(most, len({within(p) for p in running.values()}))
        elif isinstance(item, TaskSucceeded | TaskFailed | TaskCancelled | AbandonTask):
            running.pop(item.token, None)
    return most


def retrying(sim: Simulation) -> list[NodeRetrying]:
    return [e for e in sim.events if isinstance(e, NodeRetrying)]


# --- data flow --------------------------------------------------------------------------


def test_one_input_passes_its_value_and_several_pass_a_list_in_input_order() -> None:
    _, result = run(
        """
        <transform id="a" type="template" template="{{ [1, 2] }}"/>
        <transform id="b" type="template" template="{{ 'b' }}"/>
        <transform id="one" type="template" input="a" template="{{ input }}"/>
        <transform id="many" type="template" input="b, a" template="{{ input }}"/>
        <transform id="nothing" type="template" template="{{ input }}"/>
        """,
        durations={"a": 0.5, "b": 0.1},
    )
    assert result.status == "completed"
    assert result.outputs["one"] == [1, 2]
    assert result.outputs["many"] == ["b", [1, 2]]
    assert result.outputs["nothing"] is None


def test_templates_read_outputs_by_bare_id_and_by_nodes_index() -> None:
    """``x.output`` and ``nodes['x-y'].output`` both read outputs and make dependencies."""
    sim, result = run(
        """
        <transform id="x" type="template" template="{{ 20 }}"/>
        <transform id="x-y" type="template" template="{{ 22 }}"/>
        <transform id="sum" type="template" template="{{ x.output + nodes['x-y'].output }}"/>
        <transform id="text" type="template" template="x={{ x.output }}"/>
        """,
        durations={"x": 1.0, "x-y": 2.0},
    )
    assert result.outputs["sum"] == 42
    assert result.outputs["text"] == "x=20"
    order = started(sim)
    assert order.index("sum") > max(order.index("x"), order.index("x-y"))
    check_trace(sim)


def test_config_is_in_scope_with_its_defaults_and_overrides() -> None:
    workflow = flow(
        '<transform id="t" type="template" template="{{ config.n * 2 }} {{ config.name }}"/>',
        config="config:\n  n: {type: number, default: 3}\n  name: {type: string}\n",
    )
    sim = Simulation(workflow, config={"n": 21, "name": "z"})
    assert sim.run().outputs["t"] == "42 z"


# --- parallel ---------------------------------------------------------------------------

PARALLEL = """
<parallel id="p" {attrs}>
  <branch name="a"><transform id="a1" type="template" template="{{{{ [branch, 1] }}}}"/></branch>
  <branch name="b"><transform id="b1" type="template" template="{{{{ [branch, 2] }}}}"/></branch>
  <branch name="c"><transform id="c1" type="template" template="{{{{ [branch, 3] }}}}"/></branch>
</parallel>
"""
#: Branch c finishes first, then b, then a.
REVERSED = {"a1": 3.0, "b1": 2.0, "c1": 1.0}


def test_parallel_waits_for_all_and_outputs_each_branch_in_branch_order() -> None:
    """merge="array": the list of each branch's last output, in branch order, whatever
    the completion order; ``branch`` names the branch."""
    _, result = run(PARALLEL.format(attrs=""), durations=REVERSED)
    assert result.outputs["p"] == [["a", 1], ["b", 2], ["c", 3]]


@pytest.mark.parametrize(
    ("merge", "output"),
    [
        ("concat", ["a", 1, "b", 2, "c", 3]),
        ("object", {"a": ["a", 1], "b": ["b", 2], "c": ["c", 3]}),
    ],
)
def test_parallel_merges_by_concatenation_or_into_an_object(merge: str, output: Any) -> None:
    _, result = run(PARALLEL.format(attrs=f'merge="{merge}"'), durations=REVERSED)
    assert result.outputs["p"] == output


def test_parallel_wait_any_takes_the_first_branch_done_and_cancels_the_rest() -> None:
    sim, result = run(PARALLEL.format(attrs='wait="any"'), durations=REVERSED)
    assert result.status == "completed"
    assert result.outputs["p"] == [["c", 3]]
    assert statuses(result) == {
        "c1": "succeeded",
        "p": "succeeded",
        "a1": "cancelled",
        "b1": "cancelled",
    }
    assert {r.reason for p, r in result.nodes.items() if p in ("a1", "b1")} == {"superseded"}
    check_trace(sim)


def test_parallel_wait_n_takes_the_first_n_branches_done_in_branch_order() -> None:
    _, result = run(PARALLEL.format(attrs='wait="n(2)" merge="object"'), durations=REVERSED)
    assert result.outputs["p"] == {"b": ["b", 2], "c": ["c", 3]}
    assert result.nodes["a1"].status == "cancelled"


def test_parallel_max_concurrency_bounds_the_branches_running_at_once() -> None:
    sim, result = run(
        PARALLEL.format(attrs='max-concurrency="2"'), durations={"a1": 1, "b1": 1, "c1": 1}
    )
    assert result.outputs["p"] == [["a", 1], ["b", 2], ["c", 3]]
    assert max_running(sim) == 2
    assert started(sim) == ["a1", "b1", "c1"]


def test_a_superseded_attempt_that_ignores_cancellation_is_abandoned_after_the_grace() -> None:
    """wait="any" no longer needs the slow branch: it is cancelled, and abandoned after
    the grace period instead of holding the run (and its permit) until it ends."""
    sim, result = run(
        """
        <parallel id="p" wait="any">
          <branch name="a"><transform id="fast" type="template" template="f"/></branch>
          <branch name="b"><transform id="stuck" type="slow" seconds="1000"/></branch>
        </parallel>
        <transform id="after" type="template" input="p" template="{{ input }}"/>
        """,
        grace=2.0,
        cooperative=lambda start: False,
    )
    assert result.status == "completed"
    assert result.outputs["after"] == ["f"]
    assert result.abandoned == 1
    stuck = result.nodes["stuck"]
    assert (stuck.status, stuck.reason, stuck.abandoned) == ("cancelled", "superseded", True)
    assert sim.clock.monotonic() < 3
    check_trace(sim)


def test_a_failing_branch_under_keep_going_fails_the_parallel_but_not_its_siblings() -> None:
    """The other branches run to the end; the parallel fails, what reads it is skipped,
    nodes independent of it complete."""
    sim, result = run(
        """
        <parallel id="p">
          <branch name="a">
            <transform id="a1" type="flaky" fails="1" error="permanent"/>
            <transform id="a2" type="template" input="a1" template="never"/>
          </branch>
          <branch name="b"><transform id="b1" type="slow" seconds="1"/></branch>
        </parallel>
        <transform id="after" type="template" input="p" template="never"/>
        <transform id="free" type="template" template="free"/>
        """,
        keep_going=True,
    )
    assert result.status == "failed"
    assert statuses(result) == {
        "a1": "failed",
        "a2": "skipped",
        "b1": "succeeded",
        "p": "failed",
        "after": "skipped",
        "free": "succeeded",
    }
    assert result.nodes["after"].reason == "upstream 'p' did not succeed"
    assert result.nodes["p"].error is not None
    assert "'a1'" in result.nodes["p"].error.message
    assert [(e.node, e.type) for e in result.errors] == [("a1", "PermanentError")]
    check_trace(sim)


# --- foreach ----------------------------------------------------------------------------

FOREACH = """
<foreach id="each" collection="[5, 6, 7, 8]" {attrs}>
  <transform id="x" type="template" template="{{{{ [{item}, {index}] }}}}"/>
</foreach>
"""


def test_foreach_outputs_follow_item_order_whatever_the_completion_order() -> None:
    durations = {f"each[{k}]/x": 4.0 - k for k in range(4)}  # the last item finishes first
    sim, result = run(FOREACH.format(attrs="", item="item", index="index"), durations=durations)
    assert result.outputs["each"] == [[5, 0], [6, 1], [7, 2], [8, 3]]
    done = [c.token for c in sim.trace if isinstance(c, TaskSucceeded)]
    assert done == sorted(done, reverse=True)  # they really did finish in reverse


def test_foreach_keeps_each_iteration_result_at_its_own_path() -> None:
    _, result = run(FOREACH.format(attrs="", item="item", index="index"))
    assert {p: result.outputs[p] for p in result.outputs if p.startswith("each[")} == {
        "each[0]/x": [5, 0],
        "each[1]/x": [6, 1],
        "each[2]/x": [7, 2],
        "each[3]/x": [8, 3],
    }
    assert result.nodes["each[2]/x"].status == "succeeded"
    assert "x" not in result.nodes


def test_foreach_item_and_index_can_be_renamed_and_the_item_is_the_body_input() -> None:
    _, result = run(
        """
        <foreach id="each" collection="['a', 'b']" item="letter" index="i">
          <transform id="x" type="template" template="{{ [letter, i, input] }}"/>
        </foreach>
        """
    )
    assert result.outputs["each"] == [["a", 0, "a"], ["b", 1, "b"]]


def test_foreach_concurrency_bounds_the_iterations_running_at_once() -> None:
    sim, result = run(
        FOREACH.format(attrs='concurrency="2"', item="item", index="index"), durations={"x": 1.0}
    )
    assert result.outputs["each"] == [[5, 0], [6, 1], [7, 2], [8, 3]]
    assert max_running(sim, within=lambda path: path.split("/")[0]) == 2
    assert started(sim) == [f"each[{k}]/x" for k in range(4)]


def test_foreach_over_an_empty_collection_outputs_an_empty_list() -> None:
    sim, result = run(
        """
        <foreach id="each" collection="[]">
          <transform id="x" type="template" template="x"/>
        </foreach>
        <transform id="after" type="template" input="each" template="{{ input }}"/>
        """
    )
    assert result.outputs["each"] == []
    assert result.outputs["after"] == []
    assert started(sim) == ["after"]


@pytest.mark.parametrize(("collection", "kind"), [("{'a': 1}", "dict"), ("'abc'", "str")])
def test_foreach_over_something_not_a_list_fails_the_node(collection: str, kind: str) -> None:
    sim, result = run(
        f"""
        <foreach id="each" collection="{collection}">
          <transform id="x" type="template" template="x"/>
        </foreach>
        """
    )
    assert result.status == "failed"
    assert result.nodes["each"].status == "failed"
    (error,) = result.errors
    assert error.node == "each"
    assert error.type == "TypeError"
    assert f"needs a list to iterate over; its collection {collection!r} gave {kind}" in (
        error.message
    )
    assert started(sim) == []


def test_a_break_in_a_foreach_stops_later_iterations() -> None:
    """Iterations after the one whose ``<break>`` fired never start; the output ends with
    the breaking iteration's."""
    sim, result = run(
        """
        <foreach id="each" collection="[1, 2, 3, 4, 5]" concurrency="1">
          <transform id="x" type="template" template="{{ item * 10 }}"/>
          <break id="stop" when="x.output >= 20"/>
        </foreach>
        """
    )
    assert result.outputs["each"] == [10, 20]
    assert started(sim) == ["each[0]/x", "each[1]/x"]
    assert result.outputs["each[0]/stop"] is False
    assert result.outputs["each[1]/stop"] is True
    assert not any(p.startswith(("each[2]", "each[3]", "each[4]")) for p in result.nodes)


def test_a_break_in_a_concurrent_foreach_cuts_the_output_at_the_breaking_item() -> None:
    """Later iterations already running are cancelled; the output ends at the breaking item."""
    sim, result = run(
        """
        <foreach id="each" collection="[1, 2, 3, 4]">
          <transform id="x" type="slow" seconds="1"/>
          <transform id="f" type="template" template="{{ index }}"/>
          <break id="stop" input="f" when="index >= 1"/>
        </foreach>
        """
    )
    assert result.status == "completed"
    assert result.outputs["each"] == [0, 1]
    for k in (2, 3):
        assert result.nodes[f"each[{k}]/x"].status == "cancelled"
        assert result.nodes[f"each[{k}]/x"].reason == "superseded"
    assert sim.clock.monotonic() < 2
    check_trace(sim)


# --- if and branch ----------------------------------------------------------------------

IF = """
<transform id="n" type="template" template="{{{{ {value} }}}}"/>
<if id="check" condition="n.output > 3">
  <then>
    <transform id="yes" type="template" template="yes"/>
    <transform id="yes2" type="template" input="yes" template="{{{{ input }}}}!"/>
  </then>
  <else>
    <transform id="no" type="template" template="no"/>
    <parallel id="inner">
      <branch name="x"><transform id="deep" type="template" template="deep"/></branch>
    </parallel>
  </else>
</if>
"""


def test_if_runs_then_and_outputs_its_last_output_and_skips_else_as_not_taken() -> None:
    sim, result = run(IF.format(value=5))
    assert result.outputs["check"] == "yes!"
    for path in ("no", "inner", "deep"):
        assert result.nodes[path].status == "skipped"
        assert result.nodes[path].reason == "not taken"
    assert sorted(started(sim)) == ["n", "yes", "yes2"]


def test_if_runs_else_when_the_condition_is_false() -> None:
    _, result = run(IF.format(value=1))
    assert result.outputs["check"] == ["deep"]  # the else body ends with the parallel
    assert result.nodes["yes"].reason == "not taken"
    assert result.nodes["yes2"].reason == "not taken"


def test_if_without_else_outputs_none_when_false() -> None:
    _, result = run(
        '<if id="c" condition="false"><then><transform id="t" type="template" template="t"/>'
        "</then></if>"
    )
    assert result.status == "completed"
    assert result.outputs["c"] is None
    assert result.nodes["t"].reason == "not taken"


@pytest.mark.parametrize(
    ("value", "taken"), [("'text'", "text"), ("{'k': 1}", "obj"), ("[1]", "other")]
)
def test_branch_takes_the_first_case_that_holds_else_the_default(value: str, taken: str) -> None:
    _, result = run(
        f"""
        <transform id="v" type="template" template="{{{{ {value} }}}}"/>
        <branch id="route">
          <case when="v.output is string">
            <transform id="text" type="template" template="T"/>
          </case>
          <case when="v.output is mapping">
            <transform id="obj" type="template" template="D"/>
          </case>
          <case when="v.output is string">
            <transform id="again" type="template" template="A"/>
          </case>
          <default><transform id="other" type="template" template="O"/></default>
        </branch>
        """
    )
    assert result.outputs["route"] == {"text": "T", "obj": "D", "other": "O"}[taken]
    for node in ("text", "obj", "again", "other"):
        if node == taken:
            assert result.nodes[node].status == "succeeded"
        else:
            assert result.nodes[node].status == "skipped"
            assert result.nodes[node].reason == "not taken"


# --- loop and while ---------------------------------------------------------------------


def test_loop_counts_iterations_from_zero_and_breaks_after_the_iteration_that_says_so() -> None:
    """``break`` sees that iteration's outputs; the output is the last iteration's last
    body output; every iteration's results are kept."""
    sim, result = run(
        """
        <loop id="lp" max="10" break="step.output >= 20">
          <transform id="step" type="template" template="{{ iteration * 10 }}"/>
          <transform id="last" type="template" input="step" template="{{ [iteration, input] }}"/>
        </loop>
        """
    )
    assert result.outputs["lp"] == [2, 20]
    assert {p: v for p, v in result.outputs.items() if "/step" in p} == {
        "lp[0]/step": 0,
        "lp[1]/step": 10,
        "lp[2]/step": 20,
    }
    assert result.outputs["lp[1]/last"] == [1, 10]
    assert "lp[3]/step" not in result.nodes
    assert len(started(sim)) == 6


def test_loop_stops_at_max_and_passes_each_iteration_output_to_the_next() -> None:
    _, result = run(
        """
        <transform id="seed" type="template" template="{{ 1 }}"/>
        <loop id="lp" max="3" input="seed">
          <transform id="double" type="template" template="{{ input * 2 }}"/>
        </loop>
        """
    )
    assert result.outputs["lp"] == 8
    assert [result.outputs[f"lp[{k}]/double"] for k in range(3)] == [2, 4, 8]


def test_while_checks_its_condition_before_each_iteration() -> None:
    _, result = run(
        """
        <while id="w" condition="iteration == 0 or nodes['probe'].output != 'done'" max="10">
          <transform id="probe" type="template"
                     template="{{ 'done' if iteration == 2 else iteration }}"/>
        </while>
        """
    )
    assert result.outputs["w"] == "done"
    assert [result.outputs[f"w[{k}]/probe"] for k in range(3)] == [0, 1, "done"]
    assert "w[3]/probe" not in result.nodes


def test_while_whose_condition_is_false_at_once_runs_nothing_and_outputs_none() -> None:
    sim, result = run(
        """
        <while id="w" condition="false" max="10">
          <transform id="b" type="template" template="b"/>
        </while>
        <transform id="after" type="template" input="w" template="{{ input }}"/>
        """
    )
    assert result.outputs["w"] is None
    assert result.outputs["after"] is None
    assert started(sim) == ["after"]


def test_while_stops_at_max() -> None:
    _, result = run(
        '<while id="w" condition="true" max="2">'
        '<transform id="b" type="template" template="{{ iteration }}"/></while>'
    )
    assert result.outputs["w"] == 1
    assert "w[2]/b" not in result.nodes


def test_a_break_node_stops_a_loop_or_while_after_its_iteration() -> None:
    """A ``<break>`` (also one nested in an ``if`` of the body) ends the loop once the
    iteration it fired in is done; the output is that iteration's last body output."""
    _, result = run(
        """
        <loop id="lp" max="5">
          <transform id="step" type="template" template="{{ iteration }}"/>
          <break id="stop" input="step" when="iteration >= 1"/>
        </loop>
        <while id="w" condition="true" max="5">
          <if id="maybe" condition="iteration == 2">
            <then><break id="enough" when="true"/></then>
          </if>
          <transform id="ws" type="template" template="{{ iteration }}"/>
        </while>
        """
    )
    assert result.outputs["lp"] == 1
    assert (result.outputs["lp[0]/stop"], result.outputs["lp[1]/stop"]) == (False, True)
    assert "lp[2]/step" not in result.nodes
    assert result.outputs["w"] == 2
    assert result.outputs["w[2]/enough"] is True
    assert "w[3]/ws" not in result.nodes


def test_a_failing_iteration_under_keep_going_fails_the_foreach_but_not_the_others() -> None:
    """Every other item still runs; a loop stops at its failing iteration."""
    sim, result = run(
        """
        <foreach id="each" collection="[0, 1, 2]" concurrency="1">
          <transform id="x" type="flaky" fails="{{ 1 if item == 1 else 0 }}" error="permanent"/>
        </foreach>
        <transform id="after" type="template" input="each" template="a"/>
        <loop id="lp" max="3">
          <transform id="l" type="flaky" fails="{{ 1 if iteration == 1 else 0 }}"
                     error="permanent"/>
        </loop>
        """,
        keep_going=True,
    )
    assert result.status == "failed"
    assert statuses(result) == {
        "each[0]/x": "succeeded",
        "each[1]/x": "failed",
        "each[2]/x": "succeeded",
        "each": "failed",
        "after": "skipped",
        "lp[0]/l": "succeeded",
        "lp[1]/l": "failed",
        "lp": "failed",
    }
    assert result.nodes["each"].error is not None
    assert result.nodes["each"].error.message == (
        "1 node(s) in the body of 'each' did not succeed: 'each[1]/x'"
    )
    assert sorted(e.node for e in result.errors) == ["each[1]/x", "lp[1]/l"]
    check_trace(sim)


# --- delay and checkpoint ---------------------------------------------------------------


def test_delay_passes_its_input_on_after_its_duration() -> None:
    sim, result = run(
        """
        <transform id="a" type="template" template="{{ 5 }}"/>
        <delay id="d" input="a" duration="2s"/>
        <transform id="b" type="template" input="d" template="{{ input + 1 }}"/>
        """,
        durations={"a": 0.5},
    )
    assert result.outputs["d"] == 5
    assert result.outputs["b"] == 6
    assert result.nodes["d"].duration == pytest.approx(2.0)
    (b_started,) = [e for e in sim.events if isinstance(e, NodeStarted) and e.path == "b"]
    assert result.started_at is not None
    assert b_started.at - result.started_at == pytest.approx(2.5)


def test_a_delay_or_retry_wait_cut_short_keeps_when_it_began() -> None:
    """A stop cancels what waits on a timer; the result says since when it waited."""
    _, result = run(
        """
        <transform id="a" type="template" template="{{ 5 }}"/>
        <delay id="d" input="a" duration="30s"/>
        <transform id="f" type="flaky" fails="9">
          <on-error><retry max="3" backoff="fixed" base="20s"/></on-error>
        </transform>
        """,
        durations={"a": 0.5, "f": 1.0},
        timeout=5.0,
    )
    assert result.status == "cancelled"
    assert result.started_at is not None
    delay, flaky = result.nodes["d"], result.nodes["f"]
    assert (delay.status, flaky.status) == ("cancelled", "cancelled")
    assert delay.started_at is not None
    assert flaky.started_at is not None
    assert delay.started_at - result.started_at == pytest.approx(0.5)
    assert delay.duration == pytest.approx(4.5)
    assert flaky.started_at == result.started_at  # its one attempt began at once
    assert flaky.duration == pytest.approx(5.0)


CHECKPOINT = """
<transform id="a" type="template" template="{{ 5 }}"/>
<checkpoint id="ok" input="a" prompt="ship {{ a.output }}?" ATTRS>
  <on-error><fallback node="fb"/></on-error>
</checkpoint>
<transform id="fb" type="template" template="fallback: {{ error.type }}"/>
<transform id="after" type="template" input="ok" template="{{ input }}"/>
"""


def test_a_checkpoint_without_timeout_pauses_the_run() -> None:
    sim, result = run(CHECKPOINT.replace("ATTRS", ""))
    assert result.status == "paused"
    assert result.reason == "waiting at checkpoint 'ok'"
    assert result.nodes["ok"].status == "waiting"
    assert result.nodes["ok"].reason == "ship 5?"
    assert "after" not in result.nodes
    check_trace(sim)


def test_an_approved_checkpoint_continues_a_resumed_run() -> None:
    _, paused = run(CHECKPOINT.replace("ATTRS", ""))
    sim, result = run(CHECKPOINT.replace("ATTRS", ""), prior=paused.nodes, decisions={"ok": True})
    assert result.status == "completed"
    assert result.outputs["ok"] == 5
    assert result.outputs["after"] == 5
    assert started(sim) == ["after"]


def test_a_rejected_checkpoint_fails_and_its_fallback_applies() -> None:
    _, paused = run(CHECKPOINT.replace("ATTRS", ""))
    _, result = run(CHECKPOINT.replace("ATTRS", ""), prior=paused.nodes, decisions={"ok": False})
    assert result.status == "completed"
    assert result.outputs["ok"] == "fallback: CheckpointRejectedError"
    assert result.nodes["ok"].error is not None
    assert result.nodes["ok"].error.message == "checkpoint 'ok' was rejected by decision"


def test_a_rejected_checkpoint_without_fallback_fails_the_run() -> None:
    workflow = flow('<checkpoint id="ok" prompt="go?"/>')
    _, result = run(workflow, decisions={"ok": False})
    assert result.status == "failed"
    assert [(e.node, e.type) for e in result.errors] == [("ok", "CheckpointRejectedError")]


@pytest.mark.parametrize(("default", "approved"), [("approve", True), ("reject", False)])
def test_a_checkpoint_with_a_timeout_decides_by_its_default(default: str, approved: bool) -> None:
    workflow = flow(
        f"""
        <checkpoint id="ok" prompt="go?" timeout="1h" default="{default}"/>
        <transform id="after" type="template" input="ok" template="after"/>
        """
    )
    sim, result = run(workflow)
    assert sim.clock.monotonic() >= 3600
    if approved:
        assert result.status == "completed"
        assert result.outputs["after"] == "after"
    else:
        assert result.status == "failed"
        assert result.errors[0].message == (
            "checkpoint 'ok' was rejected by its default after its timeout"
        )


# --- modes ------------------------------------------------------------------------------

MODES = """
<transform id="slow" type="slow" seconds="5"/>
<transform id="fast" type="template" template="fast"/>
<transform id="next" type="template" input="fast" template="next"/>
<transform id="last" type="template" input="next, slow" template="last"/>
"""


def test_eager_mode_starts_a_node_as_soon_as_its_dependencies_succeeded() -> None:
    sim, _ = run(MODES)
    order = started(sim)
    slow_done = next(
        i for i, c in enumerate(sim.trace) if isinstance(c, TaskSucceeded) and c.output is None
    )
    next_start = next(
        i for i, c in enumerate(sim.trace) if isinstance(c, StartTask) and c.path == "next"
    )
    assert next_start < slow_done
    assert order.index("last") == 3


def test_waves_mode_starts_no_node_of_a_wave_before_the_previous_wave_ended() -> None:
    """``next`` (wave 1) waits for ``slow`` (wave 0) although its own input is ready."""
    sim, result = run(MODES, mode="waves")
    assert result.status == "completed"
    tokens = {c.token: c.path for c in sim.trace if isinstance(c, StartTask)}
    done = [tokens[c.token] for c in sim.trace if isinstance(c, TaskSucceeded)]
    order = started(sim)
    assert done[:2] == ["fast", "slow"]  # both wave 0; fast has the longer path
    positions = {
        (type(c).__name__, tokens[c.token] if not isinstance(c, StartTask) else c.path): i
        for i, c in enumerate(sim.trace)
        if isinstance(c, StartTask | TaskSucceeded)
    }
    assert positions[("StartTask", "next")] > positions[("TaskSucceeded", "slow")]
    assert order == ["fast", "slow", "next", "last"]
    check_trace(sim)


def test_waves_mode_keeps_a_barrier_inside_each_frame() -> None:
    sim, result = run(
        f"""
        <foreach id="each" collection="[1, 2]">
          {MODES}
        </foreach>
        """,
        mode="waves",
    )
    assert result.status == "completed"
    check_trace(sim)


def test_eager_mode_starts_the_longest_remaining_path_first_then_declaration_order() -> None:
    sim, _ = run(
        """
        <transform id="a" type="template" template="a"/>
        <transform id="b" type="template" template="b"/>
        <transform id="c" type="template" template="c"/>
        <transform id="c2" type="template" input="c" template="c2"/>
        <transform id="c3" type="template" input="c2" template="c3"/>
        <transform id="b2" type="template" input="b" template="b2"/>
        """,
        cap=1,
    )
    assert started(sim) == ["c", "b", "c2", "a", "c3", "b2"]


def test_a_body_node_inherits_the_remaining_path_of_its_control_node() -> None:
    """The loop's body task has the loop's long chain after it, so it goes before ``a``."""
    sim, _ = run(
        """
        <transform id="a" type="template" template="a"/>
        <transform id="a2" type="template" input="a" template="a2"/>
        <loop id="lp" max="1"><transform id="t" type="template" template="t"/></loop>
        <transform id="c1" type="template" input="lp" template="c1"/>
        <transform id="c2" type="template" input="c1" template="c2"/>
        """,
        cap=1,
    )
    assert started(sim) == ["lp[0]/t", "a", "c1", "a2", "c2"]


def test_node_started_says_how_long_the_attempt_queued_for_its_permit() -> None:
    """``queued`` runs from when the attempt became ready to when it got a permit: at
    concurrency 1 each ready node waits for the ones before it, a retry's wait starts
    after its delay, and a fallback queues from when its primary failed."""
    sim, result = run(
        """
        <transform id="a" type="slow" seconds="0"/>
        <transform id="b" type="flaky" fails="1">
          <on-error><retry max="1" backoff="fixed" base="500ms"/></on-error>
        </transform>
        <transform id="c" type="slow" seconds="0"/>
        <transform id="d" type="flaky" fails="9">
          <on-error><fallback node="e"/></on-error>
        </transform>
        <transform id="e" type="template" template="spare"/>
        """,
        cap=1,
        durations={"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.0, "e": 0.0},
    )
    assert result.status == "completed"
    queued = [
        (e.path, e.attempt, e.fallback, e.queued) for e in sim.events if isinstance(e, NodeStarted)
    ]
    # a 0-3, b#1 3-4, c 4-6; b's retry is ready at 4.5 and goes before d (declared later):
    # b#2 6-7, d 7-7, and d's fallback e is ready and started at 7.
    assert queued == [
        ("a", 1, None, 0.0),
        ("b", 1, None, pytest.approx(3.0)),
        ("c", 1, None, pytest.approx(4.0)),
        ("b", 2, None, pytest.approx(1.5)),
        ("d", 1, None, pytest.approx(7.0)),
        ("d", 1, "e", 0.0),
    ]


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_a_node_runs_at_most_max_retries_plus_one_attempts(retries: int) -> None:
    sim, result = run(
        f"""
        <transform id="a" type="flaky" fails="99">
          <on-error><retry max="{retries}" base="10ms"/></on-error>
        </transform>
        """
    )
    assert result.status == "failed"
    assert result.nodes["a"].attempts == retries + 1
    assert started(sim) == ["a"] * (retries + 1)
    assert [c.attempt for c in sim.trace if isinstance(c, StartTask)] == list(range(1, retries + 2))
    assert result.errors[-1].message == f"a failed attempt {retries + 1}"


def test_a_retried_node_succeeds_once_its_failures_are_outlasted() -> None:
    _, result = run(
        """
        <transform id="a" type="flaky" fails="2"><on-error><retry max="2"/></on-error></transform>
        <transform id="b" type="template" input="a" template="{{ input }}"/>
        """
    )
    assert result.status == "completed"
    assert result.outputs["b"] == "a@3"
    assert result.nodes["a"].attempts == 3
    assert result.errors == ()


@pytest.mark.parametrize(
    ("backoff", "ceilings"),
    [
        ("exponential", [0.1, 0.2, 0.4, 0.5, 0.5]),
        ("linear", [0.1, 0.2, 0.3, 0.4, 0.5]),
    ],
)
@pytest.mark.parametrize("seed", range(5))
def test_retry_delays_are_full_jitter_below_their_ceiling(
    backoff: str, ceilings: list[float], seed: int
) -> None:
    """Retry n (from 0) waits U(0, min(cap, base*2^n)) (exponential) or
    U(0, min(cap, base*(n+1))) (linear), and the next attempt starts that much later."""
    sim, _ = run(
        f"""
        <transform id="a" type="flaky" fails="99">
          <on-error><retry max="5" backoff="{backoff}" base="100ms" cap="500ms"/></on-error>
        </transform>
        """,
        seed=seed,
        durations={"a": 0.0},
    )
    delays = [e.delay for e in retrying(sim)]
    assert len(delays) == 5
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0 <= delay <= ceiling
    starts = [e.at for e in sim.events if isinstance(e, NodeStarted)]
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    assert gaps == pytest.approx(delays, abs=1e-6)


def test_retry_delays_vary_with_the_seed() -> None:
    body = (
        '<transform id="a" type="flaky" fails="99">'
        '<on-error><retry max="3"/></on-error></transform>'
    )
    draws = {tuple(e.delay for e in retrying(run(body, seed=seed)[0])) for seed in range(4)}
    assert len(draws) == 4


def test_fixed_backoff_waits_exactly_base_capped() -> None:
    sim, _ = run(
        """
        <transform id="a" type="flaky" fails="99">
          <on-error><retry max="2" backoff="fixed" base="2s" cap="1500ms"/></on-error>
        </transform>
        """
    )
    assert [e.delay for e in retrying(sim)] == [1.5, 1.5]


@pytest.mark.parametrize(("when", "attempts"), [("always", 3), ("retryable", 1)])
def test_when_always_retries_any_error_but_retryable_only_transient_ones(
    when: str, attempts: int
) -> None:
    _, result = run(
        f"""
        <transform id="a" type="flaky" fails="2" error="value">
          <on-error><retry max="3" when="{when}"/></on-error>
        </transform>
        """
    )
    assert result.nodes["a"].attempts == attempts
    assert result.status == ("completed" if when == "always" else "failed")


@pytest.mark.parametrize("when", ["always", "retryable"])
def test_a_permanent_error_is_never_retried(when: str) -> None:
    sim, result = run(
        f"""
        <transform id="a" type="flaky" fails="1" error="permanent">
          <on-error><retry max="3" when="{when}"/></on-error>
        </transform>
        """
    )
    assert result.status == "failed"
    assert started(sim) == ["a"]
    assert result.errors[0].type == "PermanentError"


FALLBACK = """
<transform id="src" type="template" template="{{{{ 'payload' }}}}"/>
<transform id="a" type="flaky" input="src" fails="9" {error}>
  <on-error><retry max="1" base="10ms"/><fallback node="fb"/></on-error>
</transform>
<transform id="fb" type="{fb_type}" fails="1"
           template="{{{{ [error.type, error.message, primary_input, input] }}}}"/>
<transform id="after" type="template" input="a" template="{{{{ input }}}}"/>
"""


def test_a_fallback_runs_once_with_the_error_and_primary_input_and_stands_in() -> None:
    sim, result = run(FALLBACK.format(error="", fb_type="template"))
    assert result.status == "completed"
    expected = ["TransientError", "a failed attempt 2", "payload", "payload"]
    assert result.outputs["a"] == expected
    assert result.outputs["after"] == expected
    node = result.nodes["a"]
    assert (node.status, node.fallback, node.attempts) == ("succeeded", "fb", 2)
    assert node.error is not None
    assert node.error.message == "a failed attempt 2"
    assert started(sim) == ["src", "a", "a", "a", "after"]
    fallback_starts = [c for c in sim.trace if isinstance(c, StartTask) and c.fallback_for]
    assert [(c.node.id, c.fallback_for, c.attempt) for c in fallback_starts] == [("fb", "a", 1)]
    assert "fb" not in result.nodes  # a fallback never runs on its own
    assert result.errors == ()


def test_a_failing_fallback_reports_both_errors() -> None:
    _, result = run(FALLBACK.format(error='error="permanent"', fb_type="flaky"))
    assert result.status == "failed"
    node = result.nodes["a"]
    assert node.status == "failed"
    assert node.attempts == 1  # permanent: the retry policy does not apply
    assert [e.message for e in node.errors] == ["a failed attempt 1", "fb failed attempt 1"]
    assert [(e.node, e.message) for e in result.errors] == [
        ("a", "a failed attempt 1"),
        ("a", "fb failed attempt 1"),
    ]
    assert "after" not in result.outputs


KEEP_GOING = """
<transform id="bad" type="flaky" fails="1" error="permanent"/>
<transform id="child" type="template" input="bad" template="c"/>
<transform id="grandchild" type="template" template="{{ child.output }}"/>
<transform id="good" type="template" template="g"/>
<transform id="good2" type="template" input="good" template="g2"/>
<transform id="bad2" type="flaky" input="good" fails="1" error="value"/>
"""


def test_keep_going_skips_only_what_depends_on_a_failure_and_reports_every_error() -> None:
    sim, result = run(KEEP_GOING, keep_going=True)
    assert result.status == "failed"
    assert statuses(result) == {
        "bad": "failed",
        "child": "skipped",
        "grandchild": "skipped",
        "good": "succeeded",
        "good2": "succeeded",
        "bad2": "failed",
    }
    assert result.nodes["grandchild"].reason == "upstream 'bad' did not succeed"
    assert sorted((e.node, e.type) for e in result.errors) == [
        ("bad", "PermanentError"),
        ("bad2", "ValueError"),
    ]
    check_trace(sim)


def test_fail_fast_cancels_in_flight_nodes_and_starts_nothing_after() -> None:
    sim, result = run(
        """
        <transform id="bad" type="flaky" fails="1" error="permanent"/>
        <transform id="long" type="slow" seconds="10"/>
        <transform id="queued" type="template" template="q"/>
        <transform id="later" type="template" input="bad" template="l"/>
        """,
        cap=2,
        durations={"bad": 0.5},
    )
    assert result.status == "failed"
    assert result.reason == "node 'bad' failed"
    assert statuses(result) == {"bad": "failed", "long": "cancelled"}
    assert result.nodes["long"].reason == "stopping"
    fail = next(i for i, c in enumerate(sim.trace) if isinstance(c, FailNode) and c.fail_fast)
    assert not any(isinstance(c, StartTask) for c in sim.trace[fail:])
    assert any(isinstance(c, CancelTask) and c.reason == "stopping" for c in sim.trace[fail:])
    assert sim.clock.monotonic() < 10  # the slow node did not run to its end
    check_trace(sim)


def test_restart_intensity_turns_a_retry_storm_into_fail_fast() -> None:
    sim, result = run(
        """
        <transform id="a" type="flaky" fails="99"><on-error><retry max="9"/></on-error></transform>
        """,
        policy=SupervisorPolicy(keep_going=True, max_restarts=2, restart_period=60),
    )
    assert result.status == "failed"
    assert result.nodes["a"].attempts == 3
    assert result.reason == "restart intensity exceeded: more than 2 retries within 60s"
    assert len(retrying(sim)) == 2


def test_a_timed_out_cooperative_attempt_is_cancelled_and_retried() -> None:
    sim, result = run(
        """
        <transform id="a" type="slow" seconds="10" timeout="1s">
          <on-error><retry max="1" backoff="fixed" base="500ms"/></on-error>
        </transform>
        """,
        duration=lambda start: 0.01,
        cooperative=lambda start: True,
    )
    # Both attempts time out: the runtime sleeps 10s each time.
    assert result.status == "failed"
    assert result.nodes["a"].attempts == 2
    assert [e.type for e in result.errors] == ["NodeTimeoutError"]
    assert result.errors[0].message == "node 'a' timed out after 1.0s"
    assert sim.clock.monotonic() == pytest.approx(2.5)
    assert result.abandoned == 0
    check_trace(sim)


def test_a_timed_out_attempt_that_ignores_cancellation_is_abandoned_after_the_grace() -> None:
    sim, result = run(
        """
        <transform id="a" type="slow" seconds="100" timeout="1s"/>
        <transform id="b" type="template" template="b"/>
        """,
        grace=2.0,
        cap=1,
        keep_going=True,
        cooperative=lambda start: False,
    )
    assert result.status == "failed"
    assert result.abandoned == 1
    (error,) = result.errors
    assert error.type == "NodeTimeoutError"
    assert error.message == (
        "node 'a' timed out after 1.0s and ignored cancellation for 2.0s; it was abandoned"
    )
    abandon = next(i for i, c in enumerate(sim.trace) if isinstance(c, AbandonTask))
    assert sim.clock.monotonic() < 100
    # Its permit went back and the waiting node got it.
    assert isinstance(sim.trace[abandon - 1], ReleasePermits)
    assert result.outputs["b"] == "b"
    assert sim.scheduler.held == 0
    assert sim.semaphore.statistics().held == 0
    check_trace(sim)


def test_a_whole_run_timeout_cancels_the_run() -> None:
    sim, result = run(
        """
        <transform id="a" type="slow" seconds="100"/>
        <transform id="b" type="template" input="a" template="b"/>
        """,
        timeout=3.0,
    )
    assert result.status == "cancelled"
    assert result.reason == "run exceeded its timeout of 3.0s"
    assert statuses(result) == {"a": "cancelled"}
    assert sim.clock.monotonic() == pytest.approx(3.0)
    assert next(e for e in sim.events if isinstance(e, NodeCancelled)).path == "a"
    check_trace(sim)


def test_a_whole_run_timeout_abandons_attempts_that_ignore_it_after_the_grace() -> None:
    sim, result = run(
        '<transform id="a" type="slow" seconds="100"/>',
        timeout=3.0,
        grace=2.0,
        cooperative=lambda start: False,
    )
    assert result.status == "cancelled"
    assert result.abandoned == 1
    assert result.nodes["a"].abandoned
    assert sim.clock.monotonic() == pytest.approx(5.0)
    check_trace(sim)


# --- fault injection in the simulator ---------------------------------------------------


def test_a_hang_fault_waits_until_the_attempt_timeout_and_is_retried() -> None:
    """A hung attempt reports nothing; its timeout cancels it and the retry runs."""
    faults = FaultPlan.from_mapping({"rules": [{"node": "a", "attempts": [1], "hang": True}]})
    sim, result = run(
        """
        <transform id="a" type="template" template="a" timeout="2s">
          <on-error><retry max="1" backoff="fixed" base="1s"/></on-error>
        </transform>
        """,
        faults=faults,
    )
    assert result.status == "completed"
    assert result.nodes["a"].attempts == 2
    (retry,) = retrying(sim)
    assert retry.error.type == "NodeTimeoutError"
    check_trace(sim)


def test_crash_and_transient_faults_are_retried_and_permanent_ones_are_not() -> None:
    faults = FaultPlan.from_mapping(
        {
            "rules": [
                {"node": "a", "attempts": [1], "crash": True},
                {"node": "a", "attempts": [2], "raise": "transient"},
                {"node": "p", "raise": "permanent", "message": "no"},
            ]
        }
    )
    _, result = run(
        """
        <transform id="a" type="template" template="a"><on-error><retry max="2"/></on-error>
        </transform>
        <transform id="p" type="template" template="p"><on-error><retry max="2"/></on-error>
        </transform>
        """,
        faults=faults,
        keep_going=True,
    )
    assert result.nodes["a"].attempts == 3
    assert result.outputs["a"] == "a"
    assert (result.nodes["p"].status, result.nodes["p"].attempts) == ("failed", 1)
    assert [(e.node, e.type, e.message) for e in result.errors] == [("p", "InjectedFault", "no")]


def test_no_permit_is_left_held_when_the_run_ends_with_a_grant_in_flight() -> None:
    """The semaphore granted a permit while the failing run was stopping: it goes back."""
    sim, result = run(
        """
        <transform id="bad" type="flaky" fails="1" error="permanent"/>
        <transform id="other" type="template" template="o"/>
        """,
        cap=1,
    )
    assert result.status == "failed"
    granted_after_finish = [i for i, c in enumerate(sim.trace) if isinstance(c, PermitsGranted)][-1]
    assert isinstance(sim.trace[granted_after_finish + 1], ReleasePermits)
    assert sim.semaphore.statistics().held == 0
    check_trace(sim)


# --- resume -----------------------------------------------------------------------------

RESUMABLE = """
<transform id="s" type="template" template="{{ [1, 2, 3] }}"/>
<foreach id="each" collection="s.output" concurrency="2">
  <transform id="x" type="template" template="{{ item * 10 }}"/>
  <transform id="y" type="template" input="x" template="{{ input + 1 }}"/>
</foreach>
<loop id="lp" max="4" break="step.output >= 30">
  <transform id="step" type="template" template="{{ (iteration + 1) * 10 }}"/>
</loop>
<parallel id="p">
  <branch name="a">
    <transform id="pa" type="template" input="each" template="{{ input | sum }}"/>
  </branch>
  <branch name="b">
    <transform id="pb" type="template" input="lp" template="{{ input }}"/>
  </branch>
</parallel>
<transform id="z" type="template" input="p" template="{{ input }}"/>
"""


def _outcomes(sim: Simulation) -> int:
    return sum(1 for c in sim.trace if isinstance(c, TaskSucceeded | TaskFailed | TaskCancelled))


def test_a_crash_after_k_outcomes_keeps_exactly_the_first_k_tasks_done() -> None:
    """The crashed run is the uninterrupted one cut short (same seed, same trace)."""
    whole, _ = run(RESUMABLE)
    paths = {c.token: c.path for c in whole.trace if isinstance(c, StartTask)}
    first = [paths[c.token] for c in whole.trace if isinstance(c, TaskSucceeded)][:4]
    sim, crashed = run(RESUMABLE, crash_after=4)
    assert crashed.status == "running"
    tasks = {p for p in crashed.nodes if p in paths.values()}
    assert {p for p in tasks if crashed.nodes[p].status == "succeeded"} == set(first)
    assert sim.trace == whole.trace[: len(sim.trace)]


@pytest.mark.parametrize("seed", [0, 1])
def test_resume_after_a_crash_at_every_point_restarts_nothing_that_succeeded(seed: int) -> None:
    """Foreach items and loop iterations included, the outputs equal an uninterrupted run's."""
    whole, uninterrupted = run(RESUMABLE, seed=seed)
    assert uninterrupted.outputs["z"] == [63, 30]
    assert uninterrupted.outputs["lp[2]/step"] == 30
    for crash_after in range(_outcomes(whole) + 1):
        _, crashed = run(RESUMABLE, seed=seed, crash_after=crash_after)
        done = {p for p, r in crashed.nodes.items() if r.status == "succeeded"}
        sim, resumed = run(RESUMABLE, seed=seed + 7, prior=crashed.nodes)
        assert resumed.status == "completed", crash_after
        assert not done & set(started(sim)), crash_after
        assert resumed.outputs == uninterrupted.outputs, crash_after
        reused = {e.path for e in sim.events if isinstance(e, NodeSucceeded) and e.reused}
        assert reused <= done
        check_trace(sim)


def test_a_break_that_fired_before_a_crash_still_stops_its_loop_after_resume() -> None:
    body = """
    <foreach id="each" collection="[1, 2, 3]" concurrency="1">
      <break id="stop" when="item >= 1"/>
      <transform id="x" type="template" template="{{ item }}"/>
    </foreach>
    <loop id="lp" max="3">
      <break id="enough" when="iteration >= 0"/>
      <transform id="y" type="template" template="{{ iteration }}"/>
    </loop>
    """
    _, uninterrupted = run(body)
    assert (uninterrupted.outputs["each"], uninterrupted.outputs["lp"]) == ([1], 0)
    _, crashed = run(body, crash_after=0)
    assert crashed.nodes["each[0]/stop"].output is True
    sim, resumed = run(body, prior=crashed.nodes)
    assert resumed.outputs == uninterrupted.outputs
    assert sorted(started(sim)) == ["each[0]/x", "lp[0]/y"]


def test_a_break_inside_a_finished_if_or_branch_still_stops_its_loop_after_resume() -> None:
    """The break's own node never runs again when the if/branch around it succeeded
    before the crash: the iteration it stopped is stopped again when it reopens."""
    body = """
    <loop id="lp" max="2">
      <branch id="pick">
        <case when="true"><break id="enough" when="iteration >= 0"/></case>
        <case when="true"><transform id="other" type="template" template="no"/></case>
      </branch>
      <transform id="y" type="template" template="{{ iteration }}"/>
    </loop>
    <foreach id="each" collection="[1, 2, 3]" concurrency="1">
      <if id="check" condition="item >= 2">
        <then><break id="stop" when="true"/></then>
      </if>
      <transform id="x" type="template" template="{{ item }}"/>
    </foreach>
    """
    whole, uninterrupted = run(body, cap=1)
    assert (uninterrupted.outputs["lp"], uninterrupted.outputs["each"]) == (0, [1, 2])
    for crash_after in range(_outcomes(whole) + 1):
        _, crashed = run(body, cap=1, crash_after=crash_after)
        sim, resumed = run(body, cap=1, prior=crashed.nodes)
        assert resumed.outputs == uninterrupted.outputs, crash_after
        assert "lp[1]/y" not in resumed.nodes, crash_after
        assert "each[2]/x" not in resumed.nodes, crash_after
        check_trace(sim)


def test_resume_after_a_failure_reruns_the_failed_and_skipped_nodes_only() -> None:
    _, failed = run(KEEP_GOING, keep_going=True)
    fixed = flow(KEEP_GOING.replace('fails="1"', 'fails="0"'))
    sim, result = run(fixed, prior=failed.nodes)
    assert result.status == "completed"
    assert sorted(started(sim)) == ["bad", "bad2", "child", "grandchild"]


# --- invariants on hand-picked runs ---------------------------------------------------


@pytest.mark.parametrize("cap", [1, 2])
def test_nested_control_flow_never_deadlocks_at_any_concurrency(cap: int) -> None:
    sim, result = run(
        """
        <parallel id="p">
          <branch name="a">
            <foreach id="each" collection="[1, 2, 3]">
              <loop id="lp" max="2">
                <transform id="t" type="template" template="{{ [item, iteration] }}"/>
              </loop>
            </foreach>
          </branch>
          <branch name="b"><transform id="b1" type="slow" seconds="1"/></branch>
        </parallel>
        """,
        cap=cap,
    )
    assert result.status == "completed"
    assert result.outputs["p"] == [[[1, 1], [2, 1], [3, 1]], None]
    check_trace(sim)


def test_the_same_seed_replays_the_same_trace() -> None:
    first, _ = run(RESUMABLE, seed=3)
    second, _ = run(RESUMABLE, seed=3)
    other, _ = run(RESUMABLE, seed=4)
    assert first.trace == second.trace
    assert first.trace != other.trace


def test_a_node_whose_recovery_the_stop_cuts_short_is_cancelled_not_failed() -> None:
    """Two attempts time out together; the first fails the run fast. The second would have
    run its fallback: it did not fail for good, so it ends cancelled, and only the first
    is among the run's errors."""
    wf = parse_workflow(
        "---\nname: twin\n---\n<workflow>\n"
        '  <transform id="a" type="template" template="a" timeout="1s"/>\n'
        '  <transform id="b" type="template" template="b" timeout="1s">\n'
        '    <on-error><fallback node="b-local"/></on-error>\n'
        "  </transform>\n"
        '  <transform id="b-local" type="template" template="local"/>\n'
        "</workflow>\n"
    )
    faults = FaultPlan.from_mapping({"rules": [{"delay": "30s"}]})
    result = Simulation(
        wf,
        seed=1,
        settings=RunSettings(max_concurrency=2),
        faults=faults,
        cooperative=lambda _start: False,
    ).run()
    assert result.status == "failed"
    assert [(e.node, e.type) for e in result.errors] == [("a", "NodeTimeoutError")]
    assert result.nodes["a"].status == "failed"
    assert result.nodes["b"].status == "cancelled"
    assert result.nodes["b"].reason == "stopping"
    assert result.nodes["b"].error is not None
    assert result.nodes["b"].error.type == "NodeTimeoutError"
