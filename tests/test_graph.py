"""The planner (``wavecrest.core._graph``): dependencies, lifting, cycles, waves and renderings.

Workflows are built as model objects, so each test shows the graph it plans.
Task nodes are built-in ``transform:template`` nodes whose config values are
templates; a reference in any of them is a dependency. The last section plans
the generated graphs of ``benchmarks/graphs.py`` and parses them back.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from wavecrest.core import (
    CycleError,
    RuntimeSpec,
    WavecrestError,
    WorkflowError,
    get_runtime,
    parse_workflow,
    plan,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._graph import Plan, analyse
from wavecrest.core._model import (
    BranchNode,
    BreakNode,
    Case,
    CheckpointNode,
    ForeachNode,
    FrozenDict,
    IfNode,
    LoopNode,
    Node,
    OnError,
    ParallelBranch,
    ParallelNode,
    TaskNode,
    WhileNode,
    Workflow,
)

ROOT = Path(__file__).resolve().parent.parent


def task(node_id: str, *inputs: str, fallback: str | None = None, **config: Any) -> TaskNode:
    """A ``transform:template`` node reading ``inputs``; ``config`` values are templates."""
    return TaskNode(
        id=node_id,
        kind="transform",
        type="template",
        inputs=inputs,
        config=FrozenDict({"template": "x", **config}),
        on_error=OnError(fallback=fallback) if fallback else None,
    )


def reads(node_id: str, template: str, *inputs: str) -> TaskNode:
    """A task node whose ``template`` is ``template``."""
    return task(node_id, *inputs, template=template)


def workflow(*body: Node, name: str = "wf") -> Workflow:
    return Workflow(name=name, body=body)


def planned(*body: Node) -> Plan:
    return plan(workflow(*body))


def problems(*body: Node) -> list[str]:
    """The messages of every diagnostic planning ``body`` reports (none when it plans)."""
    return [d.message for d in analyse(workflow(*body)).diagnostics]


def if_(
    node_id: str, *then: Node, condition: str = "true", orelse: tuple[Node, ...] = ()
) -> IfNode:
    return IfNode(id=node_id, condition=condition, then=then, orelse=orelse)


def foreach(node_id: str, *body: Node, collection: str = "[1, 2]") -> ForeachNode:
    return ForeachNode(id=node_id, collection=collection, body=body)


def loop(node_id: str, *body: Node, break_when: str | None = None) -> LoopNode:
    return LoopNode(id=node_id, max=3, body=body, break_when=break_when)


def while_(node_id: str, *body: Node, condition: str = "iteration < 2") -> WhileNode:
    return WhileNode(id=node_id, condition=condition, body=body)


def parallel(node_id: str, *branches: tuple[Node, ...]) -> ParallelNode:
    return ParallelNode(
        id=node_id,
        branches=tuple(ParallelBranch(name=f"b{i}", body=body) for i, body in enumerate(branches)),
    )


def branch(
    node_id: str, *cases: tuple[str, tuple[Node, ...]], default: tuple[Node, ...] = ()
) -> BranchNode:
    return BranchNode(
        id=node_id, cases=tuple(Case(when=w, body=b) for w, b in cases), default=default
    )


# --- dependencies from inputs and references --------------------------------------------


def test_explicit_inputs_are_dependencies_listed_in_declaration_order() -> None:
    """``input`` ids become dependencies, listed in declaration order (not as written)."""
    p = planned(task("a"), task("b"), task("c", "b", "a"))
    assert p.dependencies == {"a": [], "b": [], "c": ["a", "b"]}


def test_bare_node_reference_is_a_dependency() -> None:
    """``{{ a.output }}`` in any config value makes the node depend on ``a``."""
    p = planned(task("a"), task("b", template="x", path="{{ a.output }}/out.json"))
    assert p.dependencies["b"] == ["a"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ nodes['a-b'].output }}",
        '{{ nodes["a-b"].status }}',
        "{{ nodes.get('a-b').output }}",
        "{% if nodes['a-b'].output %}yes{% endif %}",
    ],
)
def test_nodes_mapping_reads_non_identifier_ids(template: str) -> None:
    """``nodes['a-b']`` (subscript, ``get``, in a statement) reads an id that is no identifier."""
    p = planned(task("a-b"), reads("c", template))
    assert p.dependencies["c"] == ["a-b"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ [1, 2] | select('in', a.output) | list }}",
        "{{ 'k' | replace('k', a.output) }}",
        "{{ z.output if false else a.status }}",
        "{{ nodes['z'].output | default(a.output) }}",
    ],
)
def test_references_in_filter_arguments_are_dependencies(template: str) -> None:
    """A node read inside a filter's arguments or a conditional expression is a dependency."""
    p = planned(task("a"), task("z"), reads("b", template))
    assert "a" in p.dependencies["b"]


def test_references_in_nested_config_values_are_dependencies() -> None:
    """String leaves of mapping and list config values are templates too."""
    node = task(
        "b", options={"header": "{{ a.output }}", "tags": ["x", "{{ nodes['c-1'].output }}"]}
    )
    p = planned(task("a"), task("c-1"), node)
    assert p.dependencies["b"] == ["a", "c-1"]


def test_expression_config_reads_nodes_beside_item() -> None:
    """A map's ``expression`` may use ``item`` and still read a node (a dependency)."""
    node = TaskNode(
        id="scaled",
        kind="transform",
        type="map",
        inputs=("values",),
        config=FrozenDict({"expression": "item * factor.output"}),
    )
    p = planned(task("values"), task("factor"), node)
    assert p.dependencies["scaled"] == ["values", "factor"]


def test_input_and_reference_to_the_same_node_count_once() -> None:
    p = planned(task("a"), reads("b", "{{ a.output }} {{ nodes['a'].output }}", "a"))
    assert p.dependencies["b"] == ["a"]


def test_names_bound_inside_a_template_are_not_dependencies() -> None:
    """Loop variables and ``set`` targets shadow node ids; only free names are references."""
    template = "{% for a in [1] %}{{ a }}{% endfor %}{% set b = 2 %}{{ b }}{{ c.output }}"
    p = planned(task("a"), task("b"), task("c"), reads("d", template))
    assert p.dependencies["d"] == ["c"]


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (foreach("f", task("t"), collection="{{ a.output }}"), ["a"]),
        (foreach("f", task("t"), collection="nodes['a'].output | select"), ["a"]),
        (if_("f", task("t"), condition="a.output | length > 0"), ["a"]),
        (branch("f", ("a.output == 1", (task("t"),)), ("false", (task("u"),))), ["a"]),
        (loop("f", task("t"), break_when="iteration >= a.output"), ["a"]),
        (while_("f", task("t"), condition="iteration < a.output"), ["a"]),
    ],
    ids=["foreach-collection", "foreach-nodes", "if-condition", "case-when", "loop-break", "while"],
)
def test_control_node_expressions_are_dependencies(control: Node, expected: list[str]) -> None:
    """Conditions, case tests, collections and loop tests reading a node depend on it."""
    p = planned(task("a"), task("other"), control)
    assert p.dependencies["f"] == expected


def test_checkpoint_prompt_reference_is_a_dependency() -> None:
    p = planned(task("a"), CheckpointNode(id="ok", prompt="Ship {{ a.output }}?"))
    assert p.dependencies["ok"] == ["a"]


def test_unknown_reference_and_unknown_input_are_reported() -> None:
    assert problems(reads("b", "{{ ghost.output }}", "phantom")) == [
        "unknown input 'phantom' referenced by 'b'",
        "unknown name 'ghost' in a template of 'b'; expected a node id or one of "
        "config, context, input, nodes, secrets",
    ]


def test_reading_nodes_with_a_computed_key_is_rejected() -> None:
    """The planner must know every dependency; ``nodes[name]`` with a variable key is an error."""
    assert problems(task("a"), reads("b", "{% set k = 'a' %}{{ nodes[k].output }}")) == [
        "in a template of 'b': read nodes with a literal id (nodes['x'] or x.output) "
        "so the dependency is known"
    ]


# --- lifting across bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda body: if_("c", body),
        lambda body: if_("c", task("t0"), orelse=(body,)),
        lambda body: foreach("c", body),
        lambda body: loop("c", body),
        lambda body: while_("c", body),
        lambda body: parallel("c", (task("t0"),), (body,)),
        lambda body: branch("c", ("true", (body,))),
    ],
    ids=["if-then", "if-else", "foreach", "loop", "while", "parallel", "branch"],
)
def test_body_node_reading_an_outer_node_makes_its_control_node_depend_on_it(make: Any) -> None:
    p = planned(task("a"), task("b"), make(reads("inner", "{{ b.output }}")), task("after", "c"))
    assert p.dependencies["c"] == ["b"]
    assert p.dependencies["inner"] == []
    assert p.waves == [["a", "b"], ["c"], ["after"]]


def test_lifting_goes_to_the_innermost_shared_body() -> None:
    """A deep node reading a sibling of its ancestor adds the edge in that body, not higher up."""
    deep = reads("t", "{{ a.output }} {{ x.output }}")
    p = planned(task("a"), parallel("p", (task("x"), if_("i", deep)), (task("y"),)), task("c", "t"))
    assert p.dependencies == {
        "a": [],
        "p": ["a"],  # t reads a: lifted to the workflow body
        "x": [],
        "i": ["x"],  # t reads x: the edge stays inside the branch
        "t": [],
        "y": [],
        "c": ["p"],  # c reads t inside the parallel: waits for all of p
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda body: if_("c", body),
        lambda body: if_("c", task("t0"), orelse=(body,)),
        lambda body: branch("c", ("true", (task("t0"),)), default=(body,)),
        lambda body: parallel("c", (body,)),
    ],
    ids=["if-then", "if-else", "branch-default", "parallel"],
)
def test_outer_node_reading_inside_a_non_repeating_body_depends_on_its_control_node(
    make: Any,
) -> None:
    p = planned(make(task("inner")), reads("out", "{{ inner.output }}"))
    assert p.dependencies["out"] == ["c"]
    assert p.critical_path == ["c", "out"]


@pytest.mark.parametrize(
    ("control", "unit"),
    [
        (foreach("c", task("inner")), "item"),
        (loop("c", task("inner")), "iteration"),
        (while_("c", task("inner")), "iteration"),
    ],
)
def test_outer_node_cannot_read_inside_a_repeating_body(control: Node, unit: str) -> None:
    assert problems(control, task("out", "inner")) == [
        f"'out' cannot read 'inner': it is inside the body of {control.element} 'c', "
        f"which runs once per {unit}; read 'c' instead"
    ]


def test_nodes_in_sibling_bodies_cannot_read_each_other() -> None:
    assert problems(if_("c", task("t"), orelse=(task("e", "t"),))) == [
        "'e' cannot read 't' in another branch of if 'c'"
    ]


@pytest.mark.parametrize(
    "control",
    [
        if_("c", task("inner"), condition="inner.output"),
        foreach("c", task("inner"), collection="inner.output"),
        branch("c", ("inner.output", (task("inner"),))),
    ],
    ids=["if", "foreach", "branch"],
)
def test_control_node_cannot_read_its_own_body(control: Node) -> None:
    assert problems(control) == ["'c' cannot read 'inner' inside its own body"]


def test_body_node_cannot_read_its_enclosing_control_node() -> None:
    assert problems(if_("c", reads("inner", "{{ c.output }}"))) == [
        "'inner' is inside 'c' and cannot read it"
    ]


def test_loop_break_and_while_condition_may_read_their_own_body() -> None:
    """They are evaluated per iteration: legal, recorded as body reads, and no dependency."""
    p = planned(
        loop("l", task("step"), break_when="step.output >= 3"),
        while_("w", if_("i", task("probe")), condition="nodes['probe'].output != 'done'"),
    )
    assert p.dependencies == {"l": [], "step": [], "w": [], "i": [], "probe": []}
    assert [r.id for r in p.nodes["l"].body_refs] == ["step"]
    assert [r.id for r in p.nodes["w"].body_refs] == ["probe"]
    assert p.nodes["l"].refs == ()


def test_break_node_reading_its_body_sibling_depends_on_it() -> None:
    body = (task("fetch"), BreakNode(id="stop", when="fetch.output == 'done'"))
    p = planned(LoopNode(id="l", max=5, body=body))
    assert p.dependencies["stop"] == ["fetch"]
    assert p.nodes["stop"].break_target == "l"


def test_loop_break_cannot_read_into_a_nested_repeating_body() -> None:
    assert problems(loop("l", foreach("f", task("t")), break_when="t.output")) == [
        "'l' cannot read 't': it is inside the body of 'f', which runs once per iteration"
    ]


@pytest.mark.parametrize(
    "control",
    [
        LoopNode(id="l", max=3, inputs=("s",), body=(task("s"),)),
        WhileNode(id="l", condition="iteration < 2", inputs=("s",), body=(task("s"),)),
    ],
    ids=["loop", "while"],
)
def test_loop_input_cannot_name_a_node_of_its_own_body(control: Node) -> None:
    """Only a loop's ``break`` and a while's ``condition`` run per iteration; inputs are read once.

    Before the loop starts its body has not run, so an input from the body can
    never be satisfied. The planner must reject it (the scheduler otherwise
    fails with an IndexError when the loop starts).
    """
    with pytest.raises(WorkflowError, match=r"'l' cannot read 's'"):
        planned(control)


# --- fallbacks -------------------------------------------------------------------------------


def test_fallback_dependencies_are_lifted_onto_its_primary() -> None:
    """The fallback runs in its primary's place: the primary waits for what the fallback reads."""
    p = planned(
        task("a"),
        task("primary", "a", fallback="rescue"),
        reads("rescue", "{{ b.output }}", "c"),
        task("b"),
        task("c"),
    )
    assert p.dependencies == {"a": [], "primary": ["a", "b", "c"], "b": [], "c": []}
    assert p.waves == [["a", "b", "c"], ["primary"]]
    assert p.nodes["primary"].fallback is p.nodes["rescue"]


def test_fallback_in_a_body_lifts_onto_the_primary_then_onto_the_control_node() -> None:
    inner = (task("primary", fallback="rescue"), reads("rescue", "{{ outer.output }}"))
    p = planned(task("outer"), if_("i", *inner))
    assert p.dependencies == {"outer": [], "i": ["outer"], "primary": []}


def test_a_fallback_node_cannot_be_read() -> None:
    assert problems(task("p", fallback="fb"), task("fb"), task("c", "fb")) == [
        "'fb' is a fallback node and never runs on its own; 'c' cannot read it"
    ]


def test_cycle_through_a_fallback_is_named_with_its_primary() -> None:
    with pytest.raises(CycleError) as caught:
        planned(task("p", fallback="fb"), reads("fb", "{{ q.output }}"), task("q", "p"))
    assert caught.value.cycle == ("p", "q", "p")


def test_a_fallback_shared_by_two_primaries_is_never_started_before_its_dependencies() -> None:
    """Each primary may hand over to the fallback, so each must wait for what it reads.

    (Or sharing a fallback is rejected at plan time.) Today only the first
    primary waits: ``p2``'s fallback runs before ``b`` and renders ``b.output``
    as None.
    """
    body = (
        task("p1", fallback="fb"),
        task("p2", fallback="fb"),
        task("b"),
        reads("fb", "{{ b.output }}"),
    )
    result = analyse(workflow(*body))
    if result.plan is not None:
        assert result.plan.dependencies["p1"] == ["b"]
        assert result.plan.dependencies["p2"] == ["b"]


def test_diagnostics_about_a_fallbacks_reads_name_the_fallback() -> None:
    """A problem in what the fallback reads is reported against the fallback, not its primary."""
    messages = problems(task("p", fallback="fb"), task("fb", "zz"))
    assert len(messages) == 1
    assert "'zz'" in messages[0]
    assert "'fb'" in messages[0]


# --- cycles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "cycle"),
    [
        ((task("a", "c"), task("b", "a"), task("c", "b")), ("a", "b", "c", "a")),
        # declared z, c, a, b: the cycle starts at c, the earliest declared of its nodes
        ((task("z"), task("c", "b"), task("a", "c"), task("b", "a")), ("c", "a", "b", "c")),
        # the same cycle through templates, written against data flow
        (
            (
                reads("a", "{{ b.output }}"),
                reads("b", "{{ nodes['c-1'].output }}"),
                task("c-1", "a"),
            ),
            ("a", "c-1", "b", "a"),
        ),
        ((task("a", "b"), task("b", "a"), task("tail", "a")), ("a", "b", "a")),
        ((task("a", "a"),), ("a", "a")),
    ],
    ids=["declared-in-flow", "rotated", "templates", "two-cycle-with-tail", "self"],
)
def test_cycle_error_names_the_cycle_in_data_flow_order(
    body: tuple[Node, ...], cycle: tuple[str, ...]
) -> None:
    with pytest.raises(
        CycleError, match=re.escape("dependency cycle: " + " -> ".join(cycle))
    ) as caught:
        planned(*body)
    assert caught.value.cycle == cycle


def test_cycle_error_is_a_value_error_and_a_wavecrest_error() -> None:
    """Like graphlib's CycleError, it is a ValueError."""
    with pytest.raises(ValueError, match="dependency cycle") as caught:
        planned(task("a", "b"), task("b", "a"))
    assert isinstance(caught.value, WavecrestError)


def test_cycle_through_a_control_body_names_the_control_node() -> None:
    """``a`` reads a node inside the if, which reads ``a``: lifted, that is ``a -> i -> a``."""
    with pytest.raises(CycleError) as caught:
        planned(task("a", "t"), if_("i", task("t", "a")))
    assert caught.value.cycle == ("a", "i", "a")


def test_cycle_inside_a_body_names_body_nodes() -> None:
    with pytest.raises(CycleError) as caught:
        planned(task("top"), foreach("f", task("x", "y"), task("y", "x")))
    assert caught.value.cycle == ("x", "y", "x")


def test_parsing_reports_a_cycle_at_the_node_that_starts_it() -> None:
    text = (
        "---\nname: wf\n---\n<workflow>\n"
        '  <transform id="z" type="template" template="z"/>\n'
        '  <transform id="b" type="template" input="a" template="b"/>\n'
        '  <transform id="a" type="template" template="{{ b.output }}"/>\n'
        "</workflow>\n"
    )
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(text)
    assert [str(d) for d in caught.value.diagnostics] == [
        "<string>:6:3: error: dependency cycle: b -> a -> b"
    ]


# --- waves, critical path, start order --------------------------------------------------------


def test_waves_are_kahn_levels_in_declaration_order() -> None:
    """Each node sits one wave after its latest dependency; a wave lists nodes as declared."""
    p = planned(task("d", "b", "c"), task("c", "a"), task("b", "a"), task("a"), task("e"))
    assert p.waves == [["a", "e"], ["c", "b"], ["d"]]


def test_a_node_waits_for_its_longest_dependency_chain() -> None:
    p = planned(task("a"), task("b", "a"), task("c", "b"), task("d", "a", "c"))
    assert p.waves == [["a"], ["b"], ["c"], ["d"]]


def test_critical_path_is_the_longest_chain_earliest_declared_on_ties() -> None:
    p = planned(task("s"), task("x", "s"), task("y", "s"), task("z", "y"), task("w", "x"))
    assert p.critical_path == ["s", "x", "w"]


def test_critical_path_need_not_start_at_the_first_declared_node() -> None:
    p = planned(task("lone"), task("a"), task("b", "a"), task("c", "b"))
    assert p.critical_path == ["a", "b", "c"]
    assert len(p.critical_path) == len(p.waves)


def test_start_order_puts_longest_remaining_path_first_then_declaration_order() -> None:
    """Eager mode's priority: ``a`` heads a 3-chain, ``x`` and ``b`` tie at 2 (x declared first)."""
    p = planned(task("x"), task("y", "x"), task("a"), task("b", "a"), task("c", "b"))
    assert p.start_order == ["a", "x", "b", "y", "c"]


def test_bodies_are_planned_as_their_own_dags() -> None:
    """Body nodes depend only on nodes of their body; the workflow's waves hold top-level nodes."""
    body = (task("t1"), task("t2", "t1"), reads("t3", "{{ t1.output }} {{ top.output }}"))
    p = planned(task("top"), foreach("f", *body))
    assert p.waves == [["top"], ["f"]]
    assert p.dependencies == {"top": [], "f": ["top"], "t1": [], "t2": ["t1"], "t3": ["t1"]}
    assert len(p) == 5


def test_planning_a_single_node() -> None:
    p = planned(task("only"))
    assert (p.waves, p.critical_path, p.start_order) == ([["only"]], ["only"], ["only"])


# --- renderings --------------------------------------------------------------------------------


def diamond() -> Plan:
    return planned(task("a"), task("b", "a"), task("c-1", "a"), task("d", "b", "c-1"))


def test_json_has_exactly_the_fixed_shape() -> None:
    data = json.loads(diamond().render_json())
    assert data == {
        "workflow": "wf",
        "waves": [["a"], ["b", "c-1"], ["d"]],
        "critical_path": ["a", "b", "d"],
        "dependencies": {"a": [], "b": ["a"], "c-1": ["a"], "d": ["b", "c-1"]},
    }
    assert list(data) == ["workflow", "waves", "critical_path", "dependencies"]
    assert diamond().to_json() == data


def test_text_lists_waves_start_order_and_critical_path() -> None:
    text = diamond().render_text()
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "workflow wf"
    assert "4 nodes, 3 waves, mode eager" in lines
    assert "wave 1: a (transform:template)" in lines
    assert "wave 2: b (transform:template), c-1 (transform:template)" in lines
    assert "wave 3: d (transform:template)" in lines
    assert "start order: a, b, c-1, d" in lines
    assert lines[-1] == "critical path (3): a -> b -> d"


def test_text_in_waves_mode_has_no_start_order() -> None:
    text = diamond().render_text(mode="waves")
    assert "mode waves" in text
    assert "start order" not in text


def test_text_indents_bodies_under_their_control_node() -> None:
    p = planned(task("a"), if_("i", task("yes", template="{{ a.output }}")))
    assert (
        "  wave 2: i (if)\n    i then:\n      wave 1: yes (transform:template)" in p.render_text()
    )


_QUOTED = r'"(?:[^"\\]|\\.)*"'
_DOT_LINE = {
    "graph": re.compile(rf"digraph ({_QUOTED}) \{{"),
    "subgraph": re.compile(rf"subgraph ({_QUOTED}) \{{"),
    "close": re.compile(r"\}"),
    "attr": re.compile(rf"(rankdir=LR|node \[shape=box\]|label={_QUOTED});"),
    "node": re.compile(rf"({_QUOTED}) \[shape=(box|hexagon), label=({_QUOTED})\];"),
    "edge": re.compile(rf"({_QUOTED}) -> ({_QUOTED})( \[style=dashed\])?;"),
}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def dot_structure(dot: str) -> tuple[set[str], list[tuple[str, str, bool]]]:
    """Check ``dot``'s statements and braces; return its declared nodes and its edges."""
    depth = 0
    declared: set[str] = set()
    edges: list[tuple[str, str, bool]] = []
    for number, raw in enumerate(dot.strip().splitlines()):
        line = raw.strip()
        kind, match = next(
            ((k, m) for k, pattern in _DOT_LINE.items() if (m := pattern.fullmatch(line))),
            (None, None),
        )
        assert match is not None, f"not a DOT statement: {raw!r}"
        assert (kind == "graph") == (number == 0), raw
        if kind in ("graph", "subgraph"):
            depth += 1
        elif kind == "close":
            depth -= 1
            assert depth >= 0, "unbalanced braces"
        elif kind == "node":
            declared.add(_unquote(match[1]))
        elif kind == "edge":
            edges.append((_unquote(match[1]), _unquote(match[2]), match[3] is not None))
    assert depth == 0, "unbalanced braces"
    return declared, edges


def test_dot_declares_every_node_and_draws_every_dependency() -> None:
    p = planned(
        task("a"),
        parallel("p", (task("x"), reads("y", "{{ x.output }} {{ a.output }}")), (task("z"),)),
        task("d", "p", "a"),
    )
    declared, edges = dot_structure(p.render_dot())
    assert declared == {"a", "p", "x", "y", "z", "d"}
    assert {(src, dst) for src, dst, _ in edges} <= {(s, d) for s in declared for d in declared}
    solid = {(src, dst) for src, dst, dashed in edges if not dashed}
    dashed = {(src, dst) for src, dst, is_dashed in edges if is_dashed}
    assert solid == {(dep, n) for n, deps in p.dependencies.items() for dep in deps}
    assert dashed == {("p", "x"), ("p", "z")}  # control node to each body's first wave


def test_dot_escapes_quotes_and_backslashes() -> None:
    dot = plan(workflow(task("a"), task("b", "a"), name='say "hi" \\ now')).render_dot()
    assert dot.startswith('digraph "say \\"hi\\" \\\\ now" {')
    declared, edges = dot_structure(dot)
    assert declared == {"a", "b"}
    assert edges == [("a", "b", False)]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_accepts_the_dot_output() -> None:
    p = planned(
        task("a"),
        foreach("each", task("fetch"), task("save", "fetch"), collection="a.output"),
        if_("check", task("yes"), orelse=(task("no"),)),
        task("end", "each", "check"),
    )
    done = subprocess.run(
        ["dot", "-Tcanon"], input=p.render_dot(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


# --- ids that shadow template globals ----------------------------------------------------------


@pytest.mark.parametrize("node_id", ["range", "dict", "lipsum", "cycler", "joiner", "namespace"])
def test_bare_reference_to_an_id_named_like_a_template_global_is_never_silently_dropped(
    node_id: str,
) -> None:
    """``{{ range.output }}`` reading a node ``range``: a dependency, or rejected when parsing.

    Today the reference extractor ignores Jinja globals, so no edge is made and
    the reader runs first (then fails, or reads the global instead).
    """
    text = (
        "---\nname: wf\n---\n<workflow>\n"
        f'  <transform id="{node_id}" type="template" template="x"/>\n'
        f'  <transform id="use" type="template" template="{{{{ {node_id}.output }}}}"/>\n'
        "</workflow>\n"
    )
    try:
        parsed = parse_workflow(text)
    except WorkflowError:
        return
    assert plan(parsed).dependencies["use"] == [node_id]


# --- the benchmark graphs ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def graphs() -> Iterator[ModuleType]:
    """``benchmarks/graphs.py`` loaded from its file, with ``transform:noop`` registered.

    The registry is global: whatever ``transform:noop`` was before is restored
    afterwards (other tests list the known runtime keys).
    """
    spec = importlib.util.spec_from_file_location(
        "_bench_graphs", ROOT / "benchmarks" / "graphs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        previous: RuntimeSpec | None = get_runtime(module.NOOP)
    except KeyError:
        previous = None
    module.register_noop()
    yield module
    if previous is None:
        unregister_runtime(module.NOOP)
    else:
        register_runtime(
            previous.key,
            previous.func,
            expressions=previous.expressions,
            required=previous.required,
            replace=True,
        )


def test_benchmark_graphs_have_their_documented_shapes(graphs: ModuleType) -> None:
    assert planned(*graphs.chain(4).body).waves == [["n0"], ["n1"], ["n2"], ["n3"]]
    assert plan(graphs.wide(4)).waves == [["n0"], ["n1", "n2", "n3"]]
    layered = graphs.layered(60, layers=6, fan_in=3, seed=7)
    p = plan(layered)
    assert [len(wave) for wave in p.waves] == [10] * 6
    assert all(len(node.inputs) == 3 for node in layered.body[10:])
    assert layered == graphs.layered(60, layers=6, fan_in=3, seed=7)
    assert layered != graphs.layered(60, layers=6, fan_in=3, seed=8)


def test_benchmark_graphs_parse_back_from_their_flow_md_text(graphs: ModuleType) -> None:
    for generated in (graphs.chain(5), graphs.wide(5), graphs.layered(50, seed=3)):
        parsed = parse_workflow(graphs.to_flow_md(generated))
        assert parsed.name == generated.name
        assert [(n.id, n.runtime_key, n.inputs) for n in parsed.body] == [
            (n.id, n.runtime_key, n.inputs) for n in generated.body
        ]
        assert plan(parsed).to_json() == plan(generated).to_json()


def test_benchmark_flow_md_writer_refuses_control_nodes(graphs: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"task nodes only, not <if> 'i'"):
        graphs.to_flow_md(workflow(if_("i", task("t"))))


def test_an_ideal_list_schedule_starts_ready_nodes_in_the_order_given(
    graphs: ModuleType,
) -> None:
    # n0 (1 s), then n1, n2 (1 s each) and n3 (2 s), all reading n0, on two workers.
    fan_out = graphs.wide(4)
    seconds = {"n0": 1.0, "n1": 1.0, "n2": 1.0, "n3": 2.0}
    # In declaration order n3 starts last, at 2 s, when n1 and n2 have finished.
    assert graphs.list_schedule_seconds(fan_out, seconds, 2) == 4.0
    # Put first, n3 runs beside n1 and then n2.
    assert graphs.list_schedule_seconds(fan_out, seconds, 2, {"n3": 1}) == 3.0
    # One worker runs everything in turn; a chain never runs two nodes at once.
    assert graphs.list_schedule_seconds(fan_out, seconds, 1) == 5.0
    chain = graphs.chain(3)
    assert graphs.list_schedule_seconds(chain, {"n0": 1.0, "n1": 2.0, "n2": 3.0}, 8) == 6.0


def test_an_ideal_list_schedule_never_beats_the_makespan_lower_bound(graphs: ModuleType) -> None:
    sleeps = graphs.sleep_layered(120, seed=5)
    seconds = graphs.durations(sleeps)
    bound = max(graphs.critical_path_seconds(sleeps, seconds), sum(seconds.values()) / 8)
    ranks = {node_id: node.rank for node_id, node in plan(sleeps).nodes.items()}
    for priority in (None, ranks):
        makespan = graphs.list_schedule_seconds(sleeps, seconds, 8, priority)
        # Graham's bound for any list schedule: at most (2 - 1/m) times the optimum.
        assert bound <= makespan <= (2 - 1 / 8) * bound
