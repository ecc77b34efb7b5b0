"""The workflow graph as a report draws it: nested bodies, status colours, the critical path.

:func:`graph_view` turns a :class:`~._graph.Plan` and the state of each of
its nodes into a :class:`GraphView`: a tree of *bodies* (the workflow's,
then each control node's), each laid out in columns by its waves, whose
items are nodes or *controls* (a control node drawn as a box around its
bodies). Fallback nodes sit beside their primary; every body's dependencies
are its edges. Iterations of foreach and loop bodies are never drawn one by
one: a body node's state counts its paths (``12 runs: 11 succeeded, 1
failed``).

Large plans are summarised. While more than ``limit`` nodes would be drawn,
the body with the most nodes of its own is replaced by at most
:data:`MAX_BOXES` summary boxes, one per wave or per run of consecutive
waves, each counting its nodes (nested bodies included) by status. Summary
boxes of one body form a chain.

Two renderings of a view, both pure text:

* :func:`render_dot` gives Graphviz input (clusters for controls and their
  bodies, ``id`` and ``class`` attributes the report's script and style
  use), for ``dot -Tsvg``;
* :func:`render_svg` lays the view out without Graphviz: columns by wave,
  items stacked, controls as boxes sized by their bodies, edges as curves.
  It is the fallback where ``dot`` is not installed.

Both give each drawn node a ``<g id="n-ID" class="node st-STATUS">``
(``critical`` added on the critical path) and each control a ``<g
class="cluster ...">``, so the report styles and links them alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import pairwise

from ._graph import Plan, PlannedNode, Scope
from ._model import TaskNode

__all__ = [
    "MAX_BOXES",
    "STATUS_ORDER",
    "GraphView",
    "NodeState",
    "ViewBody",
    "ViewControl",
    "ViewEdge",
    "ViewNode",
    "graph_view",
    "render_dot",
    "render_svg",
]

#: A summarised body is drawn as at most this many boxes.
MAX_BOXES = 12

#: Statuses from the one that matters most to the one that matters least: a node
#: with several paths (iterations) is coloured by the first one any path has.
STATUS_ORDER = (
    "failed",
    "cancelled",
    "running",
    "waiting",
    "succeeded",
    "skipped",
    "pending",
    "unused",
    "planned",
)


@dataclass(frozen=True, slots=True)
class NodeState:
    """How a plan node fared: the number of its paths in each status."""

    counts: Mapping[str, int]

    @property
    def status(self) -> str:
        return dominant(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def dominant(counts: Mapping[str, int]) -> str:
    """The status that colours a set of paths (see :data:`STATUS_ORDER`)."""
    for status in STATUS_ORDER:
        if counts.get(status):
            return status
    return "planned"


@dataclass(frozen=True, slots=True)
class ViewNode:
    """A drawn box: a node (``node`` is its id) or a summary of many (``node`` is None).

    ``shape`` is ``task``, ``control`` (a control node's header), ``other``
    (delay, checkpoint, break), ``fallback`` or ``summary``.
    """

    key: str
    label: str
    detail: str
    status: str
    shape: str
    critical: bool = False
    node: str | None = None

    @property
    def dom_id(self) -> str:
        return "n-" + self.key


@dataclass(frozen=True, slots=True)
class ViewBody:
    """A body: its items in columns (one per wave, or per group of waves when summarised)."""

    key: str
    label: str
    columns: tuple[tuple[ViewNode | ViewControl, ...], ...]
    summarised: bool = False


@dataclass(frozen=True, slots=True)
class ViewControl:
    """A control node drawn as a box: ``header`` names it, ``bodies`` are inside."""

    header: ViewNode
    bodies: tuple[ViewBody, ...]

    @property
    def key(self) -> str:
        return self.header.key


@dataclass(frozen=True, slots=True)
class ViewEdge:
    """An edge between two items of one body; ``kind`` is ``dep`` or ``fallback``."""

    source: str
    target: str
    kind: str = "dep"
    critical: bool = False


@dataclass(frozen=True, slots=True)
class GraphView:
    """What :func:`graph_view` builds; ``drawn`` counts the boxes, ``nodes`` the plan's nodes."""

    root: ViewBody
    edges: tuple[ViewEdge, ...]
    nodes: int
    drawn: int
    summarised: tuple[str, ...] = field(default=())


def _kind(pn: PlannedNode) -> str:
    node = pn.node
    return node.runtime_key if isinstance(node, TaskNode) else node.element


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _counts_text(counts: Mapping[str, int]) -> str:
    shown = [f"{counts[s]:,} {s}" for s in STATUS_ORDER if counts.get(s)]
    return ", ".join(shown)


class _Builder:
    def __init__(
        self,
        plan: Plan,
        states: Mapping[str, NodeState],
        critical: Sequence[str],
        limit: int,
    ) -> None:
        self.plan = plan
        self.states = states
        self.critical = set(critical)
        self.chain = list(critical)
        self.limit = limit
        self.edges: list[ViewEdge] = []
        self.fallback_states: dict[str, NodeState] = {}
        self.subtree: dict[int, int] = {}
        self.parent: dict[int, Scope | None] = {}
        self.summarise: set[int] = set()
        self.drawn = 0
        # The drawn item (in its body) of every node id: itself, or the summary box holding it.
        self.item_of: dict[str, str] = {}
        self.scope_of_item: dict[str, int] = {}

    # -- sizes and summarising -----------------------------------------------------------

    def count(self, scope: Scope, parent: Scope | None) -> int:
        """Record how many boxes ``scope`` and its bodies draw in full, and its parent."""
        total = 0
        for pn in scope.nodes:
            total += 1 + (1 if pn.fallback is not None else 0)
            for body in pn.bodies:
                total += self.count(body, scope)
        self.subtree[id(scope)] = total
        self.parent[id(scope)] = parent
        return total

    def choose(self) -> None:
        """Pick the bodies to summarise, largest first, until at most ``limit`` boxes remain.

        ``subtree[s]`` is what body ``s`` draws with the choices so far, so
        summarising a body inside one already summarised costs nothing and
        summarising one around it counts its boxes once.
        """
        total = self.count(self.plan.root, None)
        scopes = [s for s in self.plan.scopes.values() if s.nodes]
        scopes.sort(key=lambda s: (-len(s.nodes), s.key))
        for scope in scopes:
            if total <= self.limit:
                break
            if any(id(s) in self.summarise for s in self.ancestors(scope)):
                continue
            saved = self.subtree[id(scope)] - min(MAX_BOXES, len(scope.waves))
            if saved <= 0:
                continue
            self.summarise.add(id(scope))
            total -= saved
            self.subtree[id(scope)] -= saved
            for outer in self.ancestors(scope):
                self.subtree[id(outer)] -= saved
        self.drawn = total

    def ancestors(self, scope: Scope) -> list[Scope]:
        found = []
        parent = self.parent.get(id(scope))
        while parent is not None:
            found.append(parent)
            parent = self.parent.get(id(parent))
        return found

    # -- states --------------------------------------------------------------------------

    def state(self, node_id: str) -> NodeState:
        found = self.states.get(node_id)
        if found is not None:
            return found
        if not self.states:
            return NodeState({"planned": 1})
        return NodeState({"pending": 1})

    def node(self, pn: PlannedNode) -> ViewNode:
        state = self.state(pn.id)
        kind = _kind(pn)
        detail = kind
        if state.total > 1:
            detail = f"{kind} · {_plural(state.total, 'run')}: {_counts_text(state.counts)}"
        if pn.node.is_control:
            shape = "control"
        elif isinstance(pn.node, TaskNode):
            shape = "task"
        else:
            shape = "other"
        return ViewNode(
            pn.id, pn.id, detail, state.status, shape, pn.id in self.critical, node=pn.id
        )

    def fallback(self, primary: PlannedNode, pn: PlannedNode) -> ViewNode:
        state = self.fallback_states.get(pn.id)
        if state is None:
            state = NodeState({"planned": 1} if not self.states else {"unused": 1})
        detail = f"{_kind(pn)} · fallback of {primary.id}"
        if state.status == "unused":
            detail += " · not run"
        return ViewNode(pn.id, pn.id, detail, state.status, "fallback", False, node=pn.id)

    # -- bodies --------------------------------------------------------------------------

    def body(self, scope: Scope, key: str, label: str) -> ViewBody:
        if id(scope) in self.summarise:
            return self.summary(scope, key, label)
        columns: list[tuple[ViewNode | ViewControl, ...]] = []
        for wave in scope.waves:
            column: list[ViewNode | ViewControl] = []
            for index in wave:
                pn = scope.nodes[index]
                column.append(self.item(pn))
                self.item_of[pn.id] = pn.id
                self.scope_of_item[pn.id] = id(scope)
                if pn.fallback is not None:
                    column.append(self.fallback(pn, pn.fallback))
                    self.item_of[pn.fallback.id] = pn.fallback.id
                    self.edges.append(ViewEdge(pn.id, pn.fallback.id, "fallback"))
            columns.append(tuple(column))
        for pn in scope.nodes:
            for d in pn.deps:
                self.edges.append(ViewEdge(scope.nodes[d].id, pn.id))
        return ViewBody(key, label, tuple(columns))

    def item(self, pn: PlannedNode) -> ViewNode | ViewControl:
        header = self.node(pn)
        if not pn.node.is_control:
            return header
        bodies = []
        labels = [label for label, _ in pn.node.bodies()]
        for position, scope in enumerate(pn.bodies):
            if not scope.nodes:
                continue
            label = labels[position] if position < len(labels) else scope.label
            if pn.node.element == "parallel":
                label = f"branch {label}"
            bodies.append(self.body(scope, f"{pn.id}~{position}", label))
        return ViewControl(header, tuple(bodies))

    def summary(self, scope: Scope, key: str, label: str) -> ViewBody:
        waves = scope.waves
        groups = _groups(len(waves), MAX_BOXES)
        columns: list[tuple[ViewNode | ViewControl, ...]] = []
        previous: ViewNode | None = None
        for number, (first, last) in enumerate(groups):
            ids: list[str] = []
            for wave in waves[first : last + 1]:
                for index in wave:
                    ids += _ids_under(scope.nodes[index])
            counts: dict[str, int] = {}
            for node_id in ids:
                for status, n in self.state(node_id).counts.items():
                    counts[status] = counts.get(status, 0) + n
            title = f"wave {first + 1}" if first == last else f"waves {first + 1}-{last + 1}"
            critical = [i for i in ids if i in self.critical]
            detail = _plural(len(ids), "node")
            if self.states:
                detail += ": " + _counts_text(counts)
            box = ViewNode(
                f"{key}~w{number}",
                title,
                detail,
                dominant(counts) if self.states else "planned",
                "summary",
                bool(critical),
            )
            for node_id in ids:
                self.item_of[node_id] = box.key
            self.scope_of_item[box.key] = id(scope)
            columns.append((box,))
            if previous is not None:
                self.edges.append(
                    ViewEdge(previous.key, box.key, critical=previous.critical and box.critical)
                )
            previous = box
        return ViewBody(key, label, tuple(columns), summarised=True)

    # -- the critical path ---------------------------------------------------------------

    def mark_critical(self) -> list[ViewEdge]:
        """The edges between consecutive nodes of the critical path, lifted to one body."""
        pairs: set[tuple[str, str]] = set()
        chain = [n for n in self.chain if n in self.plan.nodes]
        for a, b in pairwise(chain):
            lifted = self.lift(a, b)
            if lifted is not None:
                pairs.add(lifted)
        return [
            ViewEdge(e.source, e.target, e.kind, True)
            if (e.source, e.target) in pairs or e.critical
            else e
            for e in self.edges
        ]

    def lift(self, a: str, b: str) -> tuple[str, str] | None:
        up_a = _ancestors(self.plan, a)
        up_b = _ancestors(self.plan, b)
        for x in up_a:
            sx = self.plan.nodes[x].scope
            for y in up_b:
                if self.plan.nodes[y].scope is sx:
                    if x == y:
                        return None
                    return self.item_of.get(x, x), self.item_of.get(y, y)
        return None


def _ids_under(pn: PlannedNode) -> list[str]:
    ids = [pn.id]
    for body in pn.bodies:
        for inner in body.nodes:
            ids += _ids_under(inner)
    return ids


def _ancestors(plan: Plan, node_id: str) -> list[str]:
    """``node_id`` and the control nodes around it, innermost first."""
    found = [node_id]
    pn = plan.nodes[node_id]
    while pn.scope is not None and pn.scope.owner is not None:
        pn = plan.nodes[pn.scope.owner]
        found.append(pn.id)
    return found


def _groups(n: int, most: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into at most ``most`` runs of consecutive numbers, as even as can be."""
    if n <= most:
        return [(i, i) for i in range(n)]
    groups = []
    start = 0
    for g in range(most):
        end = (n * (g + 1)) // most
        groups.append((start, end - 1))
        start = end
    return groups


def graph_view(
    plan: Plan,
    states: Mapping[str, NodeState] | None = None,
    *,
    critical: Sequence[str] = (),
    fallbacks: Mapping[str, NodeState] | None = None,
    limit: int = 250,
) -> GraphView:
    """The view of ``plan``: ``states`` by node id (none: a plan that has not run),
    ``fallbacks`` the states of fallback nodes by id, ``critical`` the node ids of the
    critical path in order, ``limit`` the most nodes to draw before summarising."""
    builder = _Builder(plan, states or {}, critical, limit)
    builder.fallback_states = dict(fallbacks or {})
    builder.choose()
    root = builder.body(plan.root, "root", plan.workflow.name)
    edges = builder.mark_critical()
    summarised = tuple(
        s.owner or "workflow" for s in plan.scopes.values() if id(s) in builder.summarise
    )
    return GraphView(root, tuple(edges), len(plan.nodes), builder.drawn, summarised)


# --- Graphviz -----------------------------------------------------------------------


def _q(text: str) -> str:
    """``text`` as a quoted DOT string (a newline becomes DOT's centred line break)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{quoted}"'


def _dot_label(node: ViewNode) -> str:
    detail = node.detail if len(node.detail) <= 60 else node.detail[:59] + "…"
    return _q(f"{node.label}\n{detail}")


def _classes(node: ViewNode) -> str:
    classes = [f"st-{node.status}", f"sh-{node.shape}"]
    if node.critical:
        classes.append("critical")
    return " ".join(classes)


_DOT_SHAPES = {
    "task": "box",
    "control": "hexagon",
    "other": "octagon",
    "fallback": "box",
    "summary": "box3d",
}

_FILL = {
    "succeeded": "#d3f9d8",
    "failed": "#ffc9c9",
    "cancelled": "#e5dbff",
    "running": "#a5d8ff",
    "waiting": "#fff3bf",
    "skipped": "#f1f3f5",
    "pending": "#ffffff",
    "unused": "#ffffff",
    "planned": "#e7f5ff",
}


def render_dot(view: GraphView, name: str = "workflow") -> str:
    """Graphviz input for ``view`` (left to right; controls and their bodies as clusters)."""
    out = [
        f"digraph {_q(name)} {{",
        "  graph [rankdir=LR, compound=true, newrank=true, nodesep=0.18, ranksep=0.35,"
        ' fontname="Helvetica,Arial,sans-serif", fontsize=10, bgcolor="transparent",'
        " pad=0.1];",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica,Arial,sans-serif",'
        ' fontsize=10, margin="0.10,0.04", height=0.4, penwidth=1.2];',
        '  edge [color="#868e96", arrowsize=0.6, fontname="Helvetica,Arial,sans-serif",'
        ' fontcolor="#868e96"];',
    ]
    entry: dict[str, tuple[str, str | None]] = {}  # item key -> (dot node, cluster or None)
    exit_: dict[str, tuple[str, str | None]] = {}
    _dot_body(view.root, "  ", out, entry, exit_, top=True)
    for edge in view.edges:
        if edge.source not in exit_ or edge.target not in entry:
            continue
        tail, ltail = exit_[edge.source]
        head, lhead = entry[edge.target]
        attrs = []
        if edge.kind == "fallback":
            tail, ltail = entry[edge.source]
            attrs += ["style=dashed", 'label="fallback"', "fontsize=8"]
        if ltail:
            attrs.append(f"ltail={_q(ltail)}")
        if lhead:
            attrs.append(f"lhead={_q(lhead)}")
        classes = "critical" if edge.critical else edge.kind
        attrs.append(f"class={_q(classes)}")
        if edge.critical:
            attrs += ['color="#e8590c"', "penwidth=2.4"]
        out.append(f"  {_q(tail)} -> {_q(head)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_node(node: ViewNode, indent: str) -> str:
    attrs = [
        f"id={_q(node.dom_id)}",
        f"class={_q(_classes(node))}",
        f"label={_dot_label(node)}",
        f"shape={_DOT_SHAPES.get(node.shape, 'box')}",
        f"fillcolor={_q(_FILL.get(node.status, '#ffffff'))}",
    ]
    if node.shape == "fallback" or node.status == "unused":
        attrs.append('style="rounded,filled,dashed"')
    if node.critical:
        attrs += ['color="#e8590c"', "penwidth=2.6"]
    return f"{indent}{_q(node.dom_id)} [{', '.join(attrs)}];"


def _dot_body(
    body: ViewBody,
    indent: str,
    out: list[str],
    entry: dict[str, tuple[str, str | None]],
    exit_: dict[str, tuple[str, str | None]],
    *,
    top: bool = False,
) -> None:
    for column in body.columns:
        for item in column:
            if isinstance(item, ViewNode):
                out.append(_dot_node(item, indent))
                entry[item.key] = exit_[item.key] = (item.dom_id, None)
                continue
            cluster = f"cluster_{item.key}"
            header = item.header
            classes = "control " + _classes(header)
            border = "#e8590c" if header.critical else "#adb5bd"
            out.append(f"{indent}subgraph {_q(cluster)} {{")
            out.append(
                f"{indent}  id={_q('c-' + item.key)}; class={_q(classes)};"
                f' label=""; style="rounded"; color={_q(border)};'
            )
            out.append(_dot_node(header, indent + "  "))
            last = header.dom_id
            for body_view in item.bodies:
                if len(item.bodies) > 1 or body_view.summarised:
                    out.append(f"{indent}  subgraph {_q('cluster_' + body_view.key)} {{")
                    out.append(
                        f'{indent}    id={_q("b-" + body_view.key)}; class="body";'
                        f' label={_q(body_view.label)}; style="dashed,rounded";'
                        ' color="#ced4da"; fontsize=9; fontcolor="#868e96";'
                    )
                    _dot_body(body_view, indent + "    ", out, entry, exit_)
                    out.append(f"{indent}  }}")
                else:
                    _dot_body(body_view, indent + "  ", out, entry, exit_)
                for root in body_view.columns[0] if body_view.columns else ():
                    out.append(
                        f"{indent}  {_q(header.dom_id)} -> {_q(entry[root.key][0])}"
                        ' [style=dotted, arrowhead=none, class="body"];'
                    )
                if body_view.columns:
                    last = exit_[body_view.columns[-1][0].key][0]
            out.append(f"{indent}}}")
            entry[item.key] = (header.dom_id, cluster)
            exit_[item.key] = (last, cluster)


# --- the pure-Python layout -----------------------------------------------------------

NODE_H = 34
GAP_X = 36
GAP_Y = 10
PAD = 10
HEAD_H = 26
LABEL_H = 16
CHAR_W = 6.6


def _node_width(node: ViewNode) -> float:
    widest = max(len(node.label) * (CHAR_W + 0.6), min(len(node.detail), 44) * (CHAR_W - 0.8))
    return max(110.0, min(300.0, widest + 20))


@dataclass(slots=True)
class _Box:
    """A laid-out item: its size, and once placed, its position (top left)."""

    item: ViewNode | ViewControl | ViewBody
    w: float
    h: float
    x: float = 0.0
    y: float = 0.0
    children: list[_Box] = field(default_factory=list)
    columns: list[list[_Box]] = field(default_factory=list)


def _measure_body(body: ViewBody) -> _Box:
    columns = [[_measure(item) for item in column] for column in body.columns]
    widths = [max((b.w for b in column), default=0.0) for column in columns]
    heights = [sum(b.h for b in column) + GAP_Y * max(0, len(column) - 1) for column in columns]
    w = sum(widths) + GAP_X * max(0, len(columns) - 1)
    h = max(heights, default=0.0)
    box = _Box(body, w, h, columns=columns)
    return box


def _measure(item: ViewNode | ViewControl) -> _Box:
    if isinstance(item, ViewNode):
        return _Box(item, _node_width(item), NODE_H)
    bodies = []
    for body in item.bodies:
        inner = _measure_body(body)
        labelled = len(item.bodies) > 1 or body.summarised
        inner_box = _Box(
            body,
            inner.w + 2 * PAD,
            inner.h + 2 * PAD + (LABEL_H if labelled else 0),
            columns=inner.columns,
        )
        inner_box.children = [inner]
        bodies.append(inner_box)
    header_w = _node_width(item.header)
    w = max([header_w + 2 * PAD, *[b.w + 2 * PAD for b in bodies]])
    h = HEAD_H + NODE_H + PAD + sum(b.h + PAD for b in bodies)
    return _Box(item, w, h, children=bodies)


class _Svg:
    def __init__(self) -> None:
        self.clusters: list[str] = []
        self.nodes: list[str] = []
        self.edges: list[str] = []
        self.anchors: dict[str, tuple[float, float, float, float]] = {}  # key -> x, y, w, h
        self.headers: dict[str, tuple[float, float, float, float]] = {}

    def place_body(self, box: _Box, x: float, y: float) -> None:
        cx = x
        widths = [max((b.w for b in column), default=0.0) for column in box.columns]
        for column, width in zip(box.columns, widths, strict=True):
            height = sum(b.h for b in column) + GAP_Y * max(0, len(column) - 1)
            cy = y + (box.h - height) / 2
            for child in column:
                self.place(child, cx + (width - child.w) / 2, cy)
                cy += child.h + GAP_Y
            cx += width + GAP_X

    def place(self, box: _Box, x: float, y: float) -> None:
        box.x, box.y = x, y
        item = box.item
        if isinstance(item, ViewNode):
            self.node(item, x, y, box.w, box.h)
            self.anchors[item.key] = (x, y, box.w, box.h)
            return
        assert isinstance(item, ViewControl)
        header = item.header
        classes = "cluster control " + _classes(header)
        self.clusters.append(
            f'<g id="c-{escape(item.key)}" class="{classes}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}"'
            ' rx="8"/></g>'
        )
        hw = _node_width(header)
        self.node(header, x + PAD, y + PAD, hw, NODE_H)
        self.headers[item.key] = (x + PAD, y + PAD, hw, NODE_H)
        self.anchors[item.key] = (x, y, box.w, box.h)
        cy = y + HEAD_H + NODE_H
        for body_box in box.children:
            body = body_box.item
            assert isinstance(body, ViewBody)
            labelled = len(item.bodies) > 1 or body.summarised
            bx = x + PAD
            self.clusters.append(
                f'<g id="b-{escape(body.key)}" class="cluster body">'
                f'<rect x="{bx:.1f}" y="{cy:.1f}" width="{box.w - 2 * PAD:.1f}"'
                f' height="{body_box.h:.1f}" rx="6"/>'
                + (
                    f'<text x="{bx + 8:.1f}" y="{cy + 13:.1f}">{escape(body.label)}</text>'
                    if labelled
                    else ""
                )
                + "</g>"
            )
            inner = body_box.children[0]
            inner_x = bx + (box.w - 2 * PAD - inner.w) / 2
            self.place_body(inner, inner_x, cy + PAD + (LABEL_H if labelled else 0))
            cy += body_box.h + PAD

    def node(self, node: ViewNode, x: float, y: float, w: float, h: float) -> None:
        label = node.label
        limit = int((w - 16) / (CHAR_W + 0.6))
        if len(label) > limit:
            label = label[: max(1, limit - 1)] + "…"
        detail = node.detail
        dlimit = int((w - 14) / (CHAR_W - 0.8))
        if len(detail) > dlimit:
            detail = detail[: max(1, dlimit - 1)] + "…"
        rx = 2 if node.shape == "summary" else 7
        self.nodes.append(
            f'<g id="{escape(node.dom_id)}" class="node {_classes(node)}">'
            f"<title>{escape(node.label)}\n{escape(node.detail)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}"/>'
            f'<text class="label" x="{x + w / 2:.1f}" y="{y + 14:.1f}">{escape(label)}</text>'
            f'<text class="detail" x="{x + w / 2:.1f}" y="{y + 27:.1f}">{escape(detail)}</text>'
            "</g>"
        )

    def edge(self, edge: ViewEdge) -> None:
        if edge.source not in self.anchors or edge.target not in self.anchors:
            return
        sx, sy, sw, sh = self.anchors[edge.source]
        tx, ty, tw, th = self.anchors[edge.target]
        classes = "edge " + ("critical" if edge.critical else edge.kind)
        if edge.kind == "fallback":
            x1, y1 = sx + sw / 2, sy + sh
            x2, y2 = tx + tw / 2, ty
            d = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
        else:
            x1, y1 = sx + sw, sy + sh / 2
            x2, y2 = tx, ty + th / 2
            if edge.target in self.headers:
                _hx, hy, _hw, hh = self.headers[edge.target]
                x2, y2 = tx, hy + hh / 2
            if edge.source in self.headers:
                y1 = sy + sh / 2
            bend = max(18.0, (x2 - x1) / 2)
            d = (
                f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f}"
                f" {x2 - bend:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}"
            )
        self.edges.append(f'<path class="{classes}" d="{d}" marker-end="url(#arrow)"/>')


def render_svg(view: GraphView) -> str:
    """An SVG of ``view`` laid out without Graphviz (see the module docstring)."""
    box = _measure_body(view.root)
    svg = _Svg()
    svg.place_body(box, PAD, PAD)
    for edge in view.edges:
        svg.edge(edge)
    width, height = box.w + 2 * PAD, box.h + 2 * PAD
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="layout-python"'
        f' width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>"
        f'<g class="clusters">{"".join(svg.clusters)}</g>'
        f'<g class="edges">{"".join(svg.edges)}</g>'
        f'<g class="nodes">{"".join(svg.nodes)}</g>'
        "</svg>"
    )
