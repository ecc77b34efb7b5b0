"""Properties of plans of random DAGs, checked against a plain model of the graph.

A :class:`Dag` is a list of node names in declaration order plus edges
between declaration positions; :func:`build` turns it into a workflow of
``transform:template`` nodes where each edge is written one of four ways (an
``input`` id, ``x.output``, ``nodes['x']`` or ``nodes.get('x')``). Names are
random, including ids that are no identifiers (``a-b``, ``1.x``), which can
only be read through ``nodes[...]``. Declaration order is an independent
random permutation of a topological order, so it is rarely topological itself.

The model computes each node's longest chain of dependencies (its wave) and
longest chain of dependents (its rank) by plain recursion.
"""

from __future__ import annotations

import functools
import itertools
import keyword
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.core import CycleError, plan
from wavecrest.core._expr import SCOPE_NAMES
from wavecrest.core._graph import Plan
from wavecrest.core._model import (
    BranchNode,
    Case,
    FrozenDict,
    IfNode,
    Node,
    ParallelBranch,
    ParallelNode,
    TaskNode,
    Workflow,
)

SETTINGS = settings(deadline=None, max_examples=examples(100))

STYLES = ("input", "bare", "subscript", "get")

# Words a bare ``x.output`` cannot name: Jinja's literals and operators, its
# globals and the names it binds itself. Nodes with these ids are read through
# ``nodes['x']`` instead.
_NOT_BARE = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none"}
    | {"True", "False", "None", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}
    | {"loop", "self", "caller", "varargs", "kwargs", "super"}
)

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_WORD = _LOWER + "0123456789_"
_ANY = _WORD + "ABCXYZ.-"

NAMES = st.one_of(
    st.builds(str.__add__, st.sampled_from(_LOWER), st.text(_WORD, max_size=4)),
    st.builds(str.__add__, st.sampled_from(_LOWER + "0123456789ABCXYZ"), st.text(_ANY, max_size=4)),
).filter(lambda name: name not in SCOPE_NAMES)
"""Valid ids (``[A-Za-z0-9][A-Za-z0-9_.-]*``), half of them identifiers; never a scope name."""


def bare_readable(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name not in _NOT_BARE


@dataclass(frozen=True)
class Dag:
    """A directed graph: names in declaration order, ``(src, dst)`` edges where dst reads src.

    Acyclic when drawn by :func:`dags`; :func:`digraphs` draws any graph.
    """

    names: tuple[str, ...]
    edges: frozenset[tuple[int, int]]
    styles: tuple[str, ...]  # one per edge of sorted(edges)

    @property
    def size(self) -> int:
        return len(self.names)

    def preds(self, v: int) -> list[int]:
        return sorted(u for u, w in self.edges if w == v)

    def succs(self, v: int) -> list[int]:
        return sorted(w for u, w in self.edges if u == v)

    @functools.cached_property
    def waves(self) -> tuple[int, ...]:
        """Per node, the number of edges on the longest chain of dependencies ending there."""

        @functools.cache
        def wave(v: int) -> int:
            return max((wave(u) + 1 for u in self.preds(v)), default=0)

        return tuple(wave(v) for v in range(self.size))

    @functools.cached_property
    def ranks(self) -> tuple[int, ...]:
        """Per node, the number of nodes on the longest chain of dependents starting there."""

        @functools.cache
        def rank(v: int) -> int:
            return 1 + max((rank(w) for w in self.succs(v)), default=0)

        return tuple(rank(v) for v in range(self.size))

    def is_cyclic(self) -> bool:
        """Depth-first search for an edge back to a node still on the stack."""
        state = [0] * self.size  # 0 unvisited, 1 on the stack, 2 done

        def visit(v: int) -> bool:
            state[v] = 1
            for w in self.succs(v):
                if state[w] == 1 or (state[w] == 0 and visit(w)):
                    return True
            state[v] = 2
            return False

        return any(state[v] == 0 and visit(v) for v in range(self.size))

    def renamed(self, names: tuple[str, ...]) -> Dag:
        return Dag(names, self.edges, self.styles)


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 18) -> Dag:
    """A random DAG: edges drawn along a hidden topological order, then declared shuffled."""
    n = draw(st.integers(1, max_nodes))
    names = tuple(draw(st.lists(NAMES, min_size=n, max_size=n, unique=True)))
    position = draw(st.permutations(range(n)))  # topological rank -> declaration position
    edges = set()
    for j in range(1, n):
        for i in draw(st.sets(st.integers(0, j - 1), max_size=min(j, 3))):
            edges.add((position[i], position[j]))
    styles = tuple(
        draw(st.lists(st.sampled_from(STYLES), min_size=len(edges), max_size=len(edges)))
    )
    return Dag(names, frozenset(edges), styles)


def reference(name: str, style: str) -> str:
    if style == "bare" and bare_readable(name):
        return f"{{{{ {name}.output }}}}"
    if style == "get":
        return f"{{{{ nodes.get('{name}').output }}}}"
    return f"{{{{ nodes['{name}'].output }}}}"


def build_nodes(dag: Dag) -> list[Node]:
    inputs: list[list[str]] = [[] for _ in dag.names]
    templates: list[list[str]] = [[] for _ in dag.names]
    for (src, dst), style in zip(sorted(dag.edges), dag.styles, strict=True):
        if style == "input":
            inputs[dst].append(dag.names[src])
        else:
            templates[dst].append(reference(dag.names[src], style))
    return [
        TaskNode(
            id=name,
            kind="transform",
            type="template",
            inputs=tuple(inputs[v]),
            # One reference per config value: each value is a template of its own.
            config=FrozenDict({"template": "x"} | {f"r{k}": t for k, t in enumerate(templates[v])}),
        )
        for v, name in enumerate(dag.names)
    ]


def build(dag: Dag) -> Workflow:
    return Workflow(name="random", body=tuple(build_nodes(dag)))


def positions(dag: Dag, ids: list[str]) -> list[int]:
    index = {name: v for v, name in enumerate(dag.names)}
    return [index[i] for i in ids]


def wave_positions(dag: Dag, p: Plan) -> list[list[int]]:
    return [positions(dag, wave) for wave in p.waves]


# --- waves ---------------------------------------------------------------------------------


@SETTINGS
@given(dags())
def test_dependencies_are_exactly_the_edges_in_declaration_order(dag: Dag) -> None:
    p = plan(build(dag))
    assert p.dependencies == {
        name: [dag.names[u] for u in dag.preds(v)] for v, name in enumerate(dag.names)
    }


@SETTINGS
@given(dags())
def test_waves_partition_the_nodes_each_in_declaration_order(dag: Dag) -> None:
    waves = wave_positions(dag, plan(build(dag)))
    assert all(waves)
    assert sorted(v for wave in waves for v in wave) == list(range(dag.size))
    assert all(wave == sorted(wave) for wave in waves)


@SETTINGS
@given(dags())
def test_every_edge_goes_from_an_earlier_wave_to_a_later_one(dag: Dag) -> None:
    waves = wave_positions(dag, plan(build(dag)))
    wave_of = {v: k for k, wave in enumerate(waves) for v in wave}
    assert all(wave_of[src] < wave_of[dst] for src, dst in dag.edges)


@SETTINGS
@given(dags())
def test_a_nodes_wave_is_the_length_of_its_longest_dependency_chain(dag: Dag) -> None:
    waves = wave_positions(dag, plan(build(dag)))
    assert {v: k for k, wave in enumerate(waves) for v in wave} == {
        v: dag.waves[v] for v in range(dag.size)
    }


# --- critical path and start order ---------------------------------------------------------


@SETTINGS
@given(dags())
def test_critical_path_is_a_longest_chain_of_real_edges(dag: Dag) -> None:
    p = plan(build(dag))
    path = positions(dag, p.critical_path)
    assert len(path) == len(p.waves) == max(dag.ranks[v] for v in range(dag.size))
    assert all((a, b) in dag.edges for a, b in itertools.pairwise(path))
    # It starts at the earliest-declared node that heads a longest chain.
    assert path[0] == min(v for v in range(dag.size) if dag.ranks[v] == len(path))


@SETTINGS
@given(dags())
def test_start_order_is_longest_remaining_path_first_then_declaration_order(dag: Dag) -> None:
    p = plan(build(dag))
    order = positions(dag, p.start_order)
    assert order == sorted(range(dag.size), key=lambda v: (-dag.ranks[v], v))
    # A dependency always has a longer remaining path than its dependent, so
    # the start order is also a topological order.
    seen = {v: k for k, v in enumerate(order)}
    assert all(seen[src] < seen[dst] for src, dst in dag.edges)


# --- invariance and determinism -------------------------------------------------------------


@st.composite
def renamings(draw: st.DrawFn) -> tuple[Dag, Dag]:
    dag = draw(dags())
    new = tuple(draw(st.lists(NAMES, min_size=dag.size, max_size=dag.size, unique=True)))
    return dag, dag.renamed(new)


def mapped(ids: list[str], old: Dag, new: Dag) -> list[str]:
    rename = dict(zip(old.names, new.names, strict=True))
    return [rename[i] for i in ids]


@SETTINGS
@given(renamings())
def test_renaming_ids_does_not_change_the_plans_shape(pair: tuple[Dag, Dag]) -> None:
    """Ids only name nodes: waves, critical path and start order map through the renaming."""
    old, new = pair
    before, after = plan(build(old)), plan(build(new))
    assert after.waves == [mapped(wave, old, new) for wave in before.waves]
    assert after.critical_path == mapped(before.critical_path, old, new)
    assert after.start_order == mapped(before.start_order, old, new)
    assert after.dependencies == {
        mapped([k], old, new)[0]: mapped(v, old, new) for k, v in before.dependencies.items()
    }


@SETTINGS
@given(renamings())
def test_changing_only_names_keeps_start_order_positions(pair: tuple[Dag, Dag]) -> None:
    """The n-th node to start is the same declared node whatever the nodes are called."""
    old, new = pair
    assert positions(new, plan(build(new)).start_order) == positions(
        old, plan(build(old)).start_order
    )


@SETTINGS
@given(dags(), st.data())
def test_how_an_edge_is_written_does_not_change_the_plan(dag: Dag, data: st.DataObject) -> None:
    """An input, ``x.output``, ``nodes['x']`` and ``nodes.get('x')`` are the same dependency."""
    styles = tuple(
        data.draw(
            st.lists(st.sampled_from(STYLES), min_size=len(dag.styles), max_size=len(dag.styles))
        )
    )
    assert plan(build(Dag(dag.names, dag.edges, styles))).to_json() == plan(build(dag)).to_json()


@SETTINGS
@given(dags())
def test_planning_is_deterministic(dag: Dag) -> None:
    """Planning equal workflows, built separately, gives identical plans and renderings."""
    first, second = plan(build(dag)), plan(build(dag))
    assert first.to_json() == second.to_json()
    assert first.start_order == second.start_order
    assert first.render_text() == second.render_text()
    assert first.render_dot() == second.render_dot()


# --- lifting --------------------------------------------------------------------------------


def wrap(node: Node, wrapper: str, how: str) -> Node:
    if how == "then":
        return IfNode(id=wrapper, condition="true", then=(node,))
    if how == "else":
        return IfNode(id=wrapper, condition="false", then=(), orelse=(node,))
    if how == "case":
        return BranchNode(id=wrapper, cases=(Case(when="true", body=(node,)),))
    return ParallelNode(id=wrapper, branches=(ParallelBranch(name="only", body=(node,)),))


@SETTINGS
@given(dags(max_nodes=12), st.data())
def test_a_control_node_takes_the_place_of_the_node_in_its_body(
    dag: Dag, data: st.DataObject
) -> None:
    """Wrapping one node in an if, branch or parallel lifts its edges onto the wrapper."""
    chosen = data.draw(st.integers(0, dag.size - 1))
    wrapper = data.draw(NAMES.filter(lambda name: name not in dag.names))
    how = data.draw(st.sampled_from(["then", "else", "case", "parallel"]))
    body = build_nodes(dag)
    inner = body[chosen]
    body[chosen] = wrap(inner, wrapper, how)
    p = plan(Workflow(name="random", body=tuple(body)))

    names = list(dag.names)
    names[chosen] = wrapper
    expected = plan(build(dag.renamed(tuple(names))))
    assert p.waves == expected.waves
    assert p.critical_path == expected.critical_path
    assert p.start_order == expected.start_order
    assert p.dependencies == {**expected.dependencies, inner.id: []}


# --- cycles ---------------------------------------------------------------------------------


@st.composite
def digraphs(draw: st.DrawFn) -> Dag:
    """A random directed graph without self-loops, often cyclic."""
    n = draw(st.integers(2, 9))
    names = tuple(draw(st.lists(NAMES, min_size=n, max_size=n, unique=True)))
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] != e[1])
    edges = frozenset(draw(st.sets(pairs, max_size=2 * n)))
    styles = tuple(
        draw(st.lists(st.sampled_from(STYLES), min_size=len(edges), max_size=len(edges)))
    )
    return Dag(names, edges, styles)


@SETTINGS
@given(digraphs())
def test_a_cycle_is_reported_iff_there_is_one_and_named_along_real_edges(dag: Dag) -> None:
    """The cycle follows data flow and starts and ends at its earliest-declared node."""
    try:
        plan(build(dag))
    except CycleError as error:
        cycle = positions(dag, list(error.cycle))
        assert dag.is_cyclic()
        assert cycle[0] == cycle[-1] == min(cycle)
        assert len(set(cycle)) == len(cycle) - 1 >= 2
        assert all((a, b) in dag.edges for a, b in itertools.pairwise(cycle))
    else:
        assert not dag.is_cyclic()
