"""Planning: a workflow's nested bodies become scopes, each a small DAG.

Every body (the workflow's own, a parallel branch, a foreach body, an ``if``'s
``then``...) is a *scope*. Within a scope, node ``a`` depends on node ``b``
when ``a`` names ``b`` as an input or refers to it in a template, or when
something inside ``a``'s bodies does: a reference that crosses scope
boundaries is *lifted* to the two ancestors that are siblings in the
innermost scope both belong to. So a body node that reads an outer node makes
its control node depend on that node, and an outer node that reads a node in
an ``if`` branch waits for the whole ``if``.

References that cannot be honoured are reported rather than guessed at: a
node inside a repeating body (foreach, loop, while) runs once per iteration,
so it cannot be read from outside that body; nodes in sibling bodies of one
control node cannot read each other; a control node cannot read its own body
except for a loop's ``break`` and a while's ``condition``, which are evaluated
per iteration.

Values are located by *path*: a node's id prefixed by one ``id[i]/`` segment
per enclosing repeating body (``each[2]/fetch``). A reference is resolved
from the referring node's frame by keeping as many segments as the referenced
node's *depth* (its number of enclosing repeating bodies), so :class:`Ref`
carries that depth.

Everything is computed once, in time linear in nodes plus edges, and is
deterministic: ties are broken by declaration order, never by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import CycleError, Diagnostic, ExpressionError, WorkflowError
from ._expr import References, expression_references, template_references
from ._model import (
    BranchNode,
    BreakNode,
    CheckpointNode,
    ForeachNode,
    IfNode,
    Location,
    LoopNode,
    Node,
    ParallelNode,
    TaskNode,
    WhileNode,
    Workflow,
)
from ._registry import get_runtime

__all__ = ["Plan", "PlannedNode", "Ref", "Scope", "analyse", "plan"]

_REPEATING = (ForeachNode, LoopNode, WhileNode)
_BASE_NAMES = frozenset({"input", "config", "secrets", "context", "nodes"})
_ROOT = ("", 0)
_NO_NAMES: frozenset[str] = frozenset()

ScopeKey = tuple[str, int]  # (owning control node id, body position); ("", 0) is the workflow


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to node ``id``, found at path prefix depth ``depth``."""

    id: str
    depth: int


@dataclass(slots=True, eq=False)
class PlannedNode:
    """A node as the scheduler sees it: its place in its scope's DAG and its resolved references.

    Treated as read-only once the plan is built.
    """

    node: Node
    index: int = 0
    scope: Scope | None = None
    depth: int = 0
    deps: tuple[int, ...] = ()
    dependents: tuple[int, ...] = ()
    wave: int = 0
    rank: int = 1
    #: Explicit inputs, in order.
    inputs: tuple[Ref, ...] = ()
    #: Every node this one reads through templates (inputs excluded), sorted by id.
    refs: tuple[Ref, ...] = ()
    #: For a loop's ``break`` or a while's ``condition``: nodes read from its own body.
    body_refs: tuple[Ref, ...] = ()
    fallback: PlannedNode | None = None
    bodies: tuple[Scope, ...] = ()
    #: For a ``<break>``: the id of the loop, while or foreach it stops.
    break_target: str | None = None

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def holds_permit(self) -> bool:
        """Only task nodes hold a concurrency permit while they run."""
        return isinstance(self.node, TaskNode)

    def __repr__(self) -> str:
        return f"<PlannedNode {self.node.id!r} wave={self.wave} rank={self.rank}>"


@dataclass(slots=True, eq=False)
class Scope:
    """One body as a DAG of :class:`PlannedNode`, with its waves and eager start order."""

    key: ScopeKey
    owner: str | None
    label: str
    repeating: bool
    nodes: tuple[PlannedNode, ...] = ()
    waves: tuple[tuple[int, ...], ...] = ()
    #: Eager priority: longest remaining path first, then declaration order.
    order: tuple[int, ...] = ()
    #: Position (in ``order``) of each node, the key of the ready queue.
    priority: tuple[int, ...] = ()
    #: The node whose output is the body's output (the last declared non-break node).
    output: int | None = None

    def __repr__(self) -> str:
        return f"<Scope {self.owner or 'workflow'}:{self.label} nodes={len(self.nodes)}>"


@dataclass(slots=True)
class _Info:
    node: Node
    scope: ScopeKey
    order: int
    # (scope, representative id) from the node's own scope outwards to the workflow.
    chain: tuple[tuple[ScopeKey, str], ...]
    parents: tuple[Node, ...]
    depth: int


@dataclass(slots=True)
class Analysis:
    """The outcome of :func:`analyse`: diagnostics, and the plan when there are none."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    plan: Plan | None = None
    cycle: tuple[str, ...] | None = None


#: What each text reads, when already known: ``(text, is_expression) -> References``.
KnownReferences = Mapping[tuple[str, bool], References]


def analyse(workflow: Workflow, known: KnownReferences | None = None) -> Analysis:
    """Check ``workflow``'s references and dependencies; build its plan if they are sound.

    ``known`` holds what texts read when the caller found it already (the
    parser does, while checking each text), so no text is compiled again.
    """
    return _Analyser(workflow, known or {}).run()


def plan(workflow: Workflow) -> Plan:
    """Plan ``workflow``. Raises CycleError naming a cycle, or WorkflowError for other problems."""
    result = analyse(workflow)
    if result.plan is None:
        if result.cycle is not None and len(result.diagnostics) == 1:
            raise CycleError(result.cycle)
        raise WorkflowError(result.diagnostics)
    return result.plan


class _Analyser:
    def __init__(self, workflow: Workflow, known: KnownReferences) -> None:
        self.workflow = workflow
        self.known = known
        self.file = workflow.path or "<string>"
        self.diagnostics: list[Diagnostic] = []
        self.infos: dict[str, _Info] = {}
        self.scopes: dict[ScopeKey, Scope] = {}
        self.scope_nodes: dict[ScopeKey, list[Node]] = {}
        self.fallback_of: dict[str, list[str]] = {}  # fallback id -> the primaries it serves
        self.first_cycle: tuple[str, ...] | None = None
        self._refs: dict[str, Ref] = {}

    # -- entry ---------------------------------------------------------------------

    def run(self) -> Analysis:
        self._index(self.workflow.body, _ROOT, (), (), 0, "body", None)
        self._check_fallbacks()
        planned = {
            nid: PlannedNode(info.node, depth=info.depth) for nid, info in self.infos.items()
        }
        edges: dict[ScopeKey, set[tuple[str, str]]] = {key: set() for key in self.scopes}
        for nid, info in self.infos.items():
            self._resolve_node(info, planned[nid], edges)
        for key, scope in self.scopes.items():
            self._build_scope(scope, key, planned, edges[key])
        scopes = self.scopes
        for nid, info in self.infos.items():
            node = info.node
            pn = planned[nid]
            bodies = node.bodies()
            if bodies:
                pn.bodies = tuple(scopes[(nid, i)] for i in range(len(bodies)))
            on_error = getattr(node, "on_error", None)
            fallback = on_error.fallback if on_error is not None else None
            if fallback is not None and fallback in planned:
                pn.fallback = planned[fallback]
            if isinstance(node, BreakNode):
                pn.break_target = next(
                    (p.id for p in reversed(info.parents) if isinstance(p, _REPEATING)), None
                )
        analysis = Analysis(sorted(set(self.diagnostics)), cycle=self.first_cycle)
        if not analysis.diagnostics:
            analysis.plan = Plan(self.workflow, self.scopes[_ROOT], planned, self.scopes)
        return analysis

    def _error(self, loc: Location, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.file, loc.line, loc.column, message))

    # -- pass 1: index every node --------------------------------------------------

    def _index(
        self,
        body: Sequence[Node],
        key: ScopeKey,
        chain: tuple[tuple[ScopeKey, str], ...],
        parents: tuple[Node, ...],
        depth: int,
        label: str,
        owner: Node | None,
    ) -> None:
        repeating = isinstance(owner, _REPEATING)
        self.scopes[key] = Scope(key, owner.id if owner else None, label, repeating)
        self.scope_nodes[key] = []
        for node in body:
            if node.id in self.infos:
                continue  # duplicate ids are the parser's to report; keep the first
            self.infos[node.id] = _Info(
                node, key, len(self.infos), ((key, node.id), *chain), parents, depth
            )
            self.scope_nodes[key].append(node)
            for position, (inner_label, inner) in enumerate(node.bodies()):
                inner_depth = depth + 1 if isinstance(node, _REPEATING) else depth
                self._index(
                    inner,
                    (node.id, position),
                    ((key, node.id), *chain),
                    (*parents, node),
                    inner_depth,
                    inner_label,
                    node,
                )

    # -- fallbacks -----------------------------------------------------------------

    def _check_fallbacks(self) -> None:
        for nid, info in self.infos.items():
            fallback = _fallback_id(info.node)
            if fallback is None:
                continue
            loc = _on_error_loc(info.node)
            target = self.infos.get(fallback)
            if target is None:
                self._error(loc, f"unknown fallback node {fallback!r} for {nid!r}")
            elif fallback == nid:
                self._error(loc, f"node {nid!r} cannot be its own fallback")
            elif not isinstance(target.node, TaskNode):
                self._error(
                    loc,
                    f"fallback {fallback!r} must be a source, transform or sink, "
                    f"not <{target.node.element}>",
                )
            elif target.scope != info.scope:
                self._error(
                    loc, f"fallback {fallback!r} must be declared in the same body as {nid!r}"
                )
            elif target.node.on_error is not None:
                self._error(
                    _on_error_loc(target.node),
                    f"fallback {fallback!r} cannot have its own <on-error> "
                    "(a fallback runs once: no retry, no further fallback)",
                )
            else:
                self.fallback_of.setdefault(fallback, []).append(nid)

    # -- pass 2: references --------------------------------------------------------

    def _references(self, node: Node) -> list[tuple[References, frozenset[str]]]:
        """Each template of ``node`` with the extra names in scope for it."""
        found: list[tuple[References, frozenset[str]]] = []
        if isinstance(node, TaskNode) and not node.config:
            return found

        def expression(text: str | None, extra: frozenset[str] = _NO_NAMES) -> None:
            if text is not None:
                try:
                    found.append((self._read(text, expression=True), extra))
                except ExpressionError:
                    pass  # the parser reports syntax errors

        if isinstance(node, TaskNode):
            try:
                expressions = get_runtime(node.runtime_key).expressions
            except KeyError:
                expressions = frozenset()
            for key, value in node.config.items():
                if key in expressions and isinstance(value, str):
                    expression(value, frozenset({"item", "index", "acc"}))
                else:
                    try:
                        found.append((self._value_reads(value), frozenset()))
                    except ExpressionError:
                        pass
        elif isinstance(node, CheckpointNode):
            try:
                found.append((self._read(node.prompt, expression=False), frozenset()))
            except ExpressionError:
                pass
        elif isinstance(node, BreakNode):
            expression(node.when)
        elif isinstance(node, ForeachNode):
            expression(node.collection)
        elif isinstance(node, IfNode):
            expression(node.condition)
        elif isinstance(node, BranchNode):
            for case in node.cases:
                expression(case.when)
        elif isinstance(node, LoopNode):
            expression(node.break_when, frozenset({"iteration"}))
        elif isinstance(node, WhileNode):
            expression(node.condition, frozenset({"iteration"}))
        return found

    def _read(self, text: str, *, expression: bool) -> References:
        """What ``text`` reads; raises ExpressionError if it does not compile."""
        found = self.known.get((text, expression))
        if found is not None:
            return found
        return expression_references(text) if expression else template_references(text)

    def _value_reads(self, value: Any) -> References:
        """What every string leaf of a config value reads (see ``value_references``)."""
        if isinstance(value, str):
            return self._read(value, expression=False)
        if isinstance(value, dict | list | tuple):
            result = References.EMPTY
            for item in value.values() if isinstance(value, dict) else value:
                result |= self._value_reads(item)
            return result
        return References.EMPTY

    def _allowed_names(self, info: _Info, extra: frozenset[str]) -> dict[str, str | None]:
        """Names usable in ``info``'s templates; a value is why a scope name is *not* usable."""
        allowed: dict[str, str | None] = dict.fromkeys(_BASE_NAMES)
        allowed.update(dict.fromkeys(extra))
        renamed: dict[str, str] = {}
        for parent in info.parents:
            if isinstance(parent, ForeachNode):
                allowed[parent.item] = None
                allowed[parent.index] = None
                for default, name in (("item", parent.item), ("index", parent.index)):
                    if name != default:
                        renamed[default] = (
                            f"is not defined here: foreach {parent.id!r} names its "
                            f"{default} {name!r}"
                        )
            elif isinstance(parent, ParallelNode):
                allowed["branch"] = None
            elif isinstance(parent, LoopNode | WhileNode):
                allowed["iteration"] = None
        if info.node.id in self.fallback_of:
            allowed["error"] = None
            allowed["primary_input"] = None
        reasons = {
            "item": "is only available inside a foreach body",
            "index": "is only available inside a foreach body",
            "branch": "is only available inside a parallel branch",
            "iteration": "is only available inside a loop or while body",
            "error": "is only available in a fallback node",
            "primary_input": "is only available in a fallback node",
            "acc": "is only available in a reduce expression",
        }
        for name, why in reasons.items():
            allowed.setdefault(name, renamed.get(name, why))
        return allowed

    def _resolve_node(
        self, info: _Info, pn: PlannedNode, edges: dict[ScopeKey, set[tuple[str, str]]]
    ) -> None:
        node = info.node
        # A fallback's references are its primaries' dependencies: it runs in their
        # place, so each primary waits for what the fallback reads.
        infos, fallback_of = self.infos, self.fallback_of
        primaries = fallback_of.get(node.id)
        owners = [infos[p] for p in primaries] if primaries else [info]
        inputs: list[Ref] = []
        scope, nid = info.scope, node.id
        shared = self._refs
        for target in node.inputs:
            tinfo = infos.get(target)
            if (
                primaries is None
                and tinfo is not None
                and tinfo.scope == scope
                and target != nid
                and target not in fallback_of
            ):
                # The common case, without _resolve: a plain node of the same body.
                edges[scope].add((target, nid))
                inputs.append(shared.get(target) or self._ref(target, tinfo.depth))
                continue
            ref = self._resolve_all(owners, nid, target, node.loc, edges, what="input")
            if ref is not None:
                inputs.append(ref)
        pn.inputs = tuple(inputs)
        templates = self._references(node)
        if not templates:
            return
        refs: dict[str, Ref] = {}
        body_refs: dict[str, Ref] = {}
        for references, extra in templates:
            allowed = self._allowed_names(info, extra)
            targets: list[str] = sorted(references.nodes)
            for name in sorted(references.names):
                if name in self.infos and name not in allowed:
                    targets.append(name)
                elif allowed.get(name, "") is None:
                    continue
                elif name in allowed:
                    self._error(node.loc, f"name {name!r} {allowed[name]}")
                else:
                    usable = sorted(n for n, why in allowed.items() if why is None)
                    self._error(
                        node.loc,
                        f"unknown name {name!r} in a template of {node.id!r}; expected a node id "
                        f"or one of {', '.join(usable)}",
                    )
            if references.dynamic_nodes:
                self._error(
                    node.loc,
                    f"in a template of {node.id!r}: read nodes with a literal id "
                    "(nodes['x'] or x.output) so the dependency is known",
                )
            for target in targets:
                body = isinstance(node, LoopNode | WhileNode) and self._inside(target, node.id)
                ref = self._resolve_all(owners, node.id, target, node.loc, edges, what="reference")
                if ref is not None:
                    (body_refs if body else refs)[target] = ref
        pn.refs = tuple(sorted(refs.values(), key=_ref_id))
        pn.body_refs = tuple(sorted(body_refs.values(), key=_ref_id))

    def _ref(self, target: str, depth: int) -> Ref:
        """One shared :class:`Ref` per node: every reader of ``target`` gets the same value."""
        ref = self._refs.get(target)
        if ref is None:
            ref = self._refs[target] = Ref(target, depth)
        return ref

    def _inside(self, target: str, control: str) -> bool:
        info = self.infos.get(target)
        return info is not None and any(rep == control for _, rep in info.chain[1:])

    def _resolve_all(
        self,
        owners: list[_Info],
        reader: str,
        target: str,
        loc: Location,
        edges: dict[ScopeKey, set[tuple[str, str]]],
        *,
        what: str,
    ) -> Ref | None:
        """Resolve ``reader``'s read of ``target`` for each node it runs as (itself, or the
        primaries of a fallback); problems are reported once, naming ``reader``."""
        first: Ref | None = None
        for position, owner in enumerate(owners):
            mark = len(self.diagnostics)
            ref = self._resolve(owner, reader, target, loc, edges, what=what)
            if position == 0:
                first = ref
            elif len(self.diagnostics) > mark:
                del self.diagnostics[mark:]  # the same problem, already reported
        return first

    def _resolve(
        self,
        info: _Info,
        reader: str,
        target: str,
        loc: Location,
        edges: dict[ScopeKey, set[tuple[str, str]]],
        *,
        what: str,
    ) -> Ref | None:
        """Turn ``info.node`` reading ``target`` into a scope edge, or report why it cannot.

        ``reader`` is the node whose template or input it is (a fallback reads on
        behalf of its primary ``info``); messages name the reader.
        """
        nid = reader
        owner_id = info.node.id
        tinfo = self.infos.get(target)
        if tinfo is None:
            kind = "input" if what == "input" else "node"
            self._error(loc, f"unknown {kind} {target!r} referenced by {nid!r}")
            return None
        if target in self.fallback_of:
            self._error(
                loc,
                f"{target!r} is a fallback node and never runs on its own; {nid!r} cannot read it",
            )
            return None
        if target in (nid, owner_id):
            self._cycle(
                self.infos[nid].node, (target, nid, target) if target != nid else (nid, nid)
            )
            return None
        if tinfo.scope == info.scope:
            # The common case: two nodes of the same body.
            edges[info.scope].add((target, owner_id))
            return self._ref(target, tinfo.depth)
        tscopes = {scope: position for position, (scope, _) in enumerate(tinfo.chain)}
        for i, (scope, rep) in enumerate(info.chain):
            j = tscopes.get(scope)
            if j is None:
                continue
            trep = tinfo.chain[j][1]
            if rep == trep:
                return self._resolve_within(info, reader, tinfo, i, j, loc, what)
            for inner_scope, _ in tinfo.chain[:j]:
                owner = self.scopes[inner_scope]
                if owner.repeating:
                    assert owner.owner is not None
                    kind = self.infos[owner.owner].node.element
                    self._error(
                        loc,
                        f"{nid!r} cannot read {target!r}: it is inside the body of "
                        f"{kind} {owner.owner!r}, which runs once per "
                        f"{'item' if kind == 'foreach' else 'iteration'}; "
                        f"read {owner.owner!r} instead",
                    )
                    return None
            edges[scope].add((trep, rep))
            return self._ref(target, tinfo.depth)
        raise AssertionError("every node shares the workflow scope")  # pragma: no cover

    def _resolve_within(
        self, info: _Info, reader: str, tinfo: _Info, i: int, j: int, loc: Location, what: str
    ) -> Ref | None:
        nid, target = reader, tinfo.node.id
        if j == 0:
            self._error(loc, f"{nid!r} is inside {target!r} and cannot read it")
        elif i == 0 and isinstance(info.node, LoopNode | WhileNode) and what != "input":
            nested = [
                self.scopes[scope].owner
                for scope, _ in tinfo.chain[: j - 1]
                if self.scopes[scope].repeating
            ]
            if not nested:
                return Ref(target, tinfo.depth)
            self._error(
                loc,
                f"{nid!r} cannot read {target!r}: it is inside the body of {nested[-1]!r}, "
                "which runs once per iteration",
            )
        elif i == 0:
            self._error(loc, f"{nid!r} cannot read {target!r} inside its own body")
        else:
            owner = info.chain[i][1]
            element = self.infos[owner].node.element
            where = "another branch" if element in ("parallel", "if", "branch") else "another body"
            self._error(loc, f"{nid!r} cannot read {target!r} in {where} of {element} {owner!r}")
        return None

    def _cycle(self, node: Node, cycle: tuple[str, ...]) -> None:
        if self.first_cycle is None:
            self.first_cycle = cycle
        self._error(node.loc, "dependency cycle: " + " -> ".join(cycle))

    # -- pass 3: per-scope DAGs ----------------------------------------------------

    def _build_scope(
        self,
        scope: Scope,
        key: ScopeKey,
        planned: Mapping[str, PlannedNode],
        edges: set[tuple[str, str]],
    ) -> None:
        fallback_of = self.fallback_of
        members = [planned[n.id] for n in self.scope_nodes[key] if n.id not in fallback_of]
        n = len(members)
        position: dict[str, int] = {}
        for index, pn in enumerate(members):
            pn.index = index
            pn.scope = scope
            position[pn.node.id] = index
        deps: list[list[int]] = [[] for _ in members]
        dependents: list[list[int]] = [[] for _ in members]
        get = position.get
        for src, dst in edges:
            s = get(src)
            d = get(dst)
            if s is not None and d is not None:
                deps[d].append(s)
                dependents[s].append(d)
        for index, pn in enumerate(members):
            before, after = deps[index], dependents[index]
            if len(before) > 1:
                before.sort()
            if len(after) > 1:
                after.sort()
            pn.deps = tuple(before)
            pn.dependents = tuple(after)
        scope.nodes = tuple(members)
        topo = _topological(deps, dependents)
        if topo is None:
            cycle = _find_cycle(scope.nodes)
            self._cycle(scope.nodes[position[cycle[0]]].node, cycle)
            return
        wave_of = [0] * n
        waves: list[list[int]] = []
        for index in topo:
            wave = 0
            for d in deps[index]:
                if wave_of[d] >= wave:
                    wave = wave_of[d] + 1
            wave_of[index] = wave
            if wave == len(waves):
                waves.append([])
            waves[wave].append(index)
        rank_of = [1] * n
        for index in reversed(topo):
            rank = 1
            for d in dependents[index]:
                if rank_of[d] >= rank:
                    rank = rank_of[d] + 1
            rank_of[index] = rank
        for index, pn in enumerate(members):
            pn.wave = wave_of[index]
            pn.rank = rank_of[index]
        scope.waves = tuple(tuple(sorted(w)) for w in waves)
        # Longest remaining path first, then declaration order: the sort is stable,
        # and ``reverse`` keeps equal ranks in their original (index) order.
        scope.order = tuple(sorted(range(n), key=rank_of.__getitem__, reverse=True))
        priority = [0] * n
        for rank, index in enumerate(scope.order):
            priority[index] = rank
        scope.priority = tuple(priority)
        outputs = [pn.index for pn in members if not isinstance(pn.node, BreakNode)]
        scope.output = outputs[-1] if outputs else None


def _topological(
    deps: Sequence[Sequence[int]], dependents: Sequence[Sequence[int]]
) -> list[int] | None:
    """A topological order (Kahn's algorithm, breadth first); None when a cycle remains."""
    remaining = [len(d) for d in deps]
    order = [i for i, count in enumerate(remaining) if count == 0]
    # ``order`` grows while it is walked: each node is appended once its last
    # dependency has been visited.
    for index in order:
        for d in dependents[index]:
            remaining[d] -= 1
            if not remaining[d]:
                order.append(d)
    return order if len(order) == len(deps) else None


def _find_cycle(nodes: Sequence[PlannedNode]) -> tuple[str, ...]:
    """A cycle as ids in data-flow order, starting and ending at its earliest-declared node."""
    # Trim, with a worklist, every node that cannot be on a cycle (no live
    # dependency or no live dependent), then walk dependencies from the earliest
    # survivor until a node repeats. Linear in nodes plus edges.
    alive = [True] * len(nodes)
    live_deps = [len(pn.deps) for pn in nodes]
    live_dependents = [len(pn.dependents) for pn in nodes]
    work = [i for i in range(len(nodes)) if not live_deps[i] or not live_dependents[i]]
    while work:
        i = work.pop()
        if not alive[i]:
            continue
        alive[i] = False
        for d in nodes[i].dependents:
            live_deps[d] -= 1
            if alive[d] and not live_deps[d]:
                work.append(d)
        for d in nodes[i].deps:
            live_dependents[d] -= 1
            if alive[d] and not live_dependents[d]:
                work.append(d)
    start = alive.index(True)
    seen: dict[int, int] = {}
    walk: list[int] = []
    current = start
    while current not in seen:
        seen[current] = len(walk)
        walk.append(current)
        current = min(d for d in nodes[current].deps if alive[d])
    loop = walk[seen[current] :]
    # ``loop`` follows dependencies backwards; reverse it into data-flow order and
    # rotate it to begin at its earliest-declared node.
    loop.reverse()
    first = loop.index(min(loop))
    loop = loop[first:] + loop[:first]
    ids = [nodes[i].id for i in loop]
    return (*ids, ids[0])


def _fallback_id(node: Node) -> str | None:
    on_error = getattr(node, "on_error", None)
    return on_error.fallback if on_error is not None else None


def _on_error_loc(node: Node) -> Location:
    on_error = getattr(node, "on_error", None)
    return on_error.loc if on_error is not None and on_error.loc.line > 0 else node.loc


def _ref_id(ref: Ref) -> str:
    return ref.id


class Plan:
    """A planned workflow: its scopes, waves, critical path and dependencies.

    ``root`` is the workflow body's scope; ``nodes`` maps every node id
    (fallback nodes included) to its :class:`PlannedNode`.
    """

    def __init__(
        self,
        workflow: Workflow,
        root: Scope,
        nodes: Mapping[str, PlannedNode],
        scopes: Mapping[ScopeKey, Scope],
    ) -> None:
        self.workflow = workflow
        self.root = root
        self.nodes = dict(nodes)
        self.scopes = dict(scopes)

    @property
    def waves(self) -> list[list[str]]:
        """The workflow body's Kahn levels, each in declaration order."""
        return [[self.root.nodes[i].id for i in wave] for wave in self.root.waves]

    @property
    def critical_path(self) -> list[str]:
        """The longest chain of the workflow body (earliest-declared on ties)."""
        return _critical_path(self.root)

    @property
    def start_order(self) -> list[str]:
        """The eager priority order of the workflow body."""
        return [self.root.nodes[i].id for i in self.root.order]

    @property
    def dependencies(self) -> dict[str, list[str]]:
        """Each scheduled node's dependencies within its own scope, in declaration order."""
        return {
            pn.id: [pn.scope.nodes[d].id for d in pn.deps]
            for pn in self._walk()
            if pn.scope is not None
        }

    def _walk(self, scope: Scope | None = None) -> Iterator[PlannedNode]:
        for pn in (scope or self.root).nodes:
            yield pn
            for body in pn.bodies:
                yield from self._walk(body)

    def __len__(self) -> int:
        return sum(1 for _ in self._walk())

    def static_paths(self) -> list[str]:
        """The paths every run has, in declaration order: the workflow's nodes and those of
        bodies that run at most once (not foreach, loop or while bodies, whose paths
        depend on the items and iterations)."""
        paths: list[str] = []

        def walk(scope: Scope) -> None:
            for pn in scope.nodes:
                paths.append(pn.id)
                if not isinstance(pn.node, _REPEATING):
                    for body in pn.bodies:
                        walk(body)

        walk(self.root)
        return paths

    # -- renderings ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The fixed ``plan --format json`` shape."""
        return {
            "workflow": self.workflow.name,
            "waves": self.waves,
            "critical_path": self.critical_path,
            "dependencies": self.dependencies,
        }

    def render_json(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def render_text(self, mode: str = "eager") -> str:
        """Waves, critical path and (eager) start order, with control bodies indented beneath."""
        wf = self.workflow
        lines = [
            f"workflow {wf.name}" + (f" {wf.version}" if wf.version else ""),
            f"  {len(self)} nodes, {len(self.root.waves)} waves, mode {mode}",
        ]
        lines += _scope_text(self.root, "  ", mode)
        path = self.critical_path
        lines.append(f"  critical path ({len(path)}): " + " -> ".join(path))
        return "\n".join(lines)

    def render_dot(self) -> str:
        """A Graphviz digraph: scope edges solid, control-to-body edges dashed, bodies clustered."""
        out = [f"digraph {_dot_id(self.workflow.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
        out += _scope_dot(self.root, "  ")
        out.append("}")
        return "\n".join(out) + "\n"


def _critical_path(scope: Scope) -> list[str]:
    if not scope.nodes:
        return []
    current = min(scope.nodes, key=lambda pn: (-pn.rank, pn.index))
    path = [current.id]
    while current.dependents:
        current = min(
            (scope.nodes[d] for d in current.dependents if scope.nodes[d].rank == current.rank - 1),
            key=lambda pn: pn.index,
        )
        path.append(current.id)
    return path


def _scope_text(scope: Scope, indent: str, mode: str) -> list[str]:
    lines = []
    for number, wave in enumerate(scope.waves, 1):
        lines.append(f"{indent}wave {number}: " + ", ".join(_label(scope.nodes[i]) for i in wave))
        for index in wave:
            pn = scope.nodes[index]
            for body in pn.bodies:
                if body.nodes:
                    lines.append(f"{indent}  {pn.id} {body.label}:")
                    lines += _scope_text(body, indent + "    ", mode)
    if mode == "eager" and len(scope.nodes) > 1 and scope.owner is None:
        lines.append(f"{indent}start order: " + ", ".join(scope.nodes[i].id for i in scope.order))
    return lines


def _label(pn: PlannedNode) -> str:
    node = pn.node
    kind = node.runtime_key if isinstance(node, TaskNode) else node.element
    fallback = f", fallback {pn.fallback.id}" if pn.fallback else ""
    return f"{node.id} ({kind}{fallback})"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scope_dot(scope: Scope, indent: str) -> list[str]:
    out = []
    for pn in scope.nodes:
        shape = "box" if isinstance(pn.node, TaskNode) else "hexagon"
        out.append(f"{indent}{_dot_id(pn.id)} [shape={shape}, label={_dot_id(_label(pn))}];")
        for d in pn.deps:
            out.append(f"{indent}{_dot_id(scope.nodes[d].id)} -> {_dot_id(pn.id)};")
        for position, body in enumerate(pn.bodies):
            if not body.nodes:
                continue
            out.append(f"{indent}subgraph {_dot_id(f'cluster_{pn.id}_{position}')} {{")
            out.append(f"{indent}  label={_dot_id(f'{pn.id} {body.label}')};")
            out += _scope_dot(body, indent + "  ")
            out.append(f"{indent}}}")
            for root in body.nodes:
                if not root.deps:
                    out.append(f"{indent}{_dot_id(pn.id)} -> {_dot_id(root.id)} [style=dashed];")
    return out
