"""The report's workflow graph: every node drawn, bodies nested, states counted, summaries."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from wavecrest.core import Plan, load_workflow, parse_workflow, plan
from wavecrest.core._graphview import (
    MAX_BOXES,
    NodeState,
    ViewControl,
    ViewNode,
    graph_view,
    render_dot,
    render_svg,
)

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.flow.md"))
SVG = "{http://www.w3.org/2000/svg}"


def planned(body: str, name: str = "g") -> Plan:
    text = f"---\nname: {name}\n---\n<workflow>\n" + textwrap.dedent(body) + "\n</workflow>\n"
    return plan(parse_workflow(text))


def node(id_: str, inputs: str = "") -> str:
    given = f' input="{inputs}"' if inputs else ""
    return f'<transform id="{id_}" type="template"{given} template="x"/>'


def layered(n: int, width: int = 25) -> str:
    """``n`` nodes in layers of ``width``, each reading one node of the layer before."""
    return "\n".join(node(f"n{i}", f"n{i - width}" if i >= width else "") for i in range(n))


def drawn_ids(svg: str) -> set[str]:
    return set(re.findall(r'<g id="n-([^"~]+)" class="node', svg.replace("&#45;", "-")))


def rects(svg: str) -> dict[str, tuple[float, float, float, float]]:
    """The rectangle of every node and cluster group of a built-in layout, by group id."""
    found = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        if group.get("id") and rect is not None:
            found[group.get("id", "")] = tuple(
                float(rect.get(k, "0")) for k in ("x", "y", "width", "height")
            )
    return found  # type: ignore[return-value]


def inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_built_in_layout_draws_every_node_of_every_example(path: Path) -> None:
    flow = plan(load_workflow(path))
    svg = render_svg(graph_view(flow, critical=flow.critical_path))
    ET.fromstring(svg)  # well-formed
    assert drawn_ids(svg) == set(flow.nodes)


def test_body_nodes_are_drawn_inside_their_control_node_and_their_body() -> None:
    flow = plan(load_workflow(EXAMPLES[[p.name for p in EXAMPLES].index("reports.flow.md")]))
    boxes = rects(render_svg(graph_view(flow)))
    for node_id, pn in flow.nodes.items():
        owners = []
        scope = pn.scope
        while scope is not None and scope.owner is not None:
            owners.append(scope.owner)
            scope = flow.nodes[scope.owner].scope
        for owner in owners:
            assert inside(boxes[f"n-{node_id}"], boxes[f"c-{owner}"]), (node_id, owner)
    # The parallel's three branches are three bodies side by side inside it.
    for position in range(3):
        assert inside(boxes[f"b-summaries~{position}"], boxes["c-summaries"])
    assert inside(boxes["n-short"], boxes["b-summaries~2"])
    assert not inside(boxes["n-short"], boxes["b-summaries~0"])


def test_a_body_node_counts_its_runs_and_takes_the_colour_of_the_worst() -> None:
    flow = planned(
        f"""
        <foreach id="each" collection="[1, 2, 3]">{node("work")}</foreach>
        {node("after", "each")}
        """
    )
    states = {
        "each": NodeState({"failed": 1}),
        "work": NodeState({"succeeded": 2, "failed": 1}),
    }
    view = graph_view(flow, states)
    (control,), (after,) = view.root.columns
    assert isinstance(control, ViewControl)
    (work,) = control.bodies[0].columns[0]
    assert isinstance(work, ViewNode)
    assert (work.status, work.detail) == (
        "failed",
        "transform:template · 3 runs: 1 failed, 2 succeeded",
    )
    assert isinstance(after, ViewNode)
    assert after.status == "pending"  # the run has states, and none for it: it never started
    assert graph_view(flow).root.columns[1][0].status == "planned"  # type: ignore[union-attr]


def test_a_fallback_is_drawn_beside_its_primary_and_says_whether_it_ran() -> None:
    flow = planned(
        f"""
        <transform id="save" type="template" template="x">
          <on-error><fallback node="spare"/></on-error>
        </transform>
        {node("spare")}
        """
    )
    ran = graph_view(
        flow,
        {"save": NodeState({"succeeded": 1})},
        fallbacks={"spare": NodeState({"succeeded": 1})},
    )
    idle = graph_view(flow, {"save": NodeState({"succeeded": 1})})
    (column,) = ran.root.columns
    assert [(n.key, n.shape) for n in column] == [("save", "task"), ("spare", "fallback")]  # type: ignore[union-attr]
    assert column[1].status == "succeeded"  # type: ignore[union-attr]
    assert idle.root.columns[0][1].status == "unused"  # type: ignore[union-attr]
    assert [(e.source, e.target, e.kind) for e in ran.edges] == [("save", "spare", "fallback")]


def test_only_the_edges_between_consecutive_critical_nodes_are_critical() -> None:
    flow = planned("\n".join([node("a"), node("b", "a"), node("c", "a,b")]))
    view = graph_view(flow, critical=["a", "b", "c"])
    assert {(e.source, e.target): e.critical for e in view.edges} == {
        ("a", "b"): True,
        ("a", "c"): False,
        ("b", "c"): True,
    }


def test_a_critical_path_into_a_body_marks_the_edge_into_its_control_node() -> None:
    flow = planned(
        f"""
        {node("src")}
        <parallel id="p" input="src"><branch name="one">{node("x")}</branch></parallel>
        {node("z", "p")}
        """
    )
    view = graph_view(flow, critical=["src", "x", "p", "z"])
    assert {(e.source, e.target): e.critical for e in view.edges} == {
        ("src", "p"): True,
        ("p", "z"): True,
    }


def test_a_large_plan_is_summarised_into_wave_boxes_that_count_every_node() -> None:
    flow = planned(layered(600))  # 24 waves of 25
    states = {f"n{i}": NodeState({"failed" if i == 7 else "succeeded": 1}) for i in range(600)}
    view = graph_view(flow, states, critical=["n7", "n32"], limit=250)
    assert view.summarised == ("workflow",)
    boxes = [item for column in view.root.columns for item in column]
    assert len(boxes) == MAX_BOXES == view.drawn
    assert all(isinstance(b, ViewNode) and b.shape == "summary" for b in boxes)
    counted = [int(re.match(r"([\d,]+) nodes", b.detail).group(1)) for b in boxes]  # type: ignore[union-attr]
    assert sum(counted) == 600
    assert boxes[0].label == "waves 1-2"
    assert boxes[0].status == "failed"  # type: ignore[union-attr]
    assert boxes[0].detail == "50 nodes: 1 failed, 49 succeeded"  # type: ignore[union-attr]
    assert [b.critical for b in boxes[:2]] == [True, False]  # type: ignore[union-attr]
    assert len(view.edges) == MAX_BOXES - 1
    svg = render_svg(view)
    assert svg.count('class="node st-') == MAX_BOXES


def test_summarising_picks_the_largest_body_and_keeps_the_rest_drawn() -> None:
    body = "\n".join(node(f"b{i}", f"b{i - 20}" if i >= 20 else "") for i in range(400))
    flow = planned(f'{node("src")}<foreach id="each" input="src" collection="[1]">{body}</foreach>')
    view = graph_view(flow, limit=100)
    assert view.summarised == ("each",)
    (src,), (each,) = view.root.columns
    assert isinstance(src, ViewNode)
    assert src.key == "src"
    assert isinstance(each, ViewControl)
    assert each.bodies[0].summarised
    assert view.drawn == 2 + MAX_BOXES
    small = graph_view(flow, limit=1000)
    assert small.summarised == ()
    assert small.drawn == 402


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_graphviz_lays_out_the_same_nodes_as_the_built_in_layout(path: Path) -> None:
    flow = plan(load_workflow(path))
    view = graph_view(flow, critical=flow.critical_path)
    done = subprocess.run(
        ["dot", "-Tsvg"],
        input=render_dot(view, flow.workflow.name),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == ""
    svg = done.stdout.replace("&#45;", "-")
    assert drawn_ids(svg) == drawn_ids(render_svg(view)) == set(flow.nodes)
    controls = [pn.id for pn in flow.nodes.values() if pn.node.is_control]
    assert all(f'<g id="c-{owner}" class="cluster' in svg for owner in controls)
