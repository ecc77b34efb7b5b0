"""Hypothesis strategies: random workflows, fault plans aimed at a workflow, and seeds.

* :func:`workflows` draws a random valid workflow: a DAG of task nodes in
  each body, optionally with control nodes (parallel, foreach, if, branch,
  loop, while) nested up to ``max_depth``, delays, checkpoints that approve
  themselves after a timeout, ``<break>`` nodes in repeating bodies, and
  per-node retry policies, timeouts and fallbacks. Dependencies are both
  explicit ``input`` lists and template references (``n3.output`` and
  ``nodes['t-4'].output``), inside bodies too, so the planner's lifted
  dependencies are exercised. :func:`dags` is the flat special case.
* :func:`fault_plans` draws a :class:`~wavecrest.core.FaultPlan` whose rules
  aim at a given workflow's node ids and runtime types
  (:func:`fault_plan_mappings`: the same in the fault-file form).
* :func:`seeds` draws run seeds.

Every task node of a generated workflow runs the *probe* runtime
(``transform:wc-probe``, registered when a workflow is first drawn, or for
the duration of a :func:`probe_runtime` block). Its output
is ``"<node id>:<digest>"`` where the digest covers the node's input and its
rendered ``read`` config (a template listing the outputs of the nodes it
reads and the loop variables in scope). An output therefore changes whenever
anything a node received changes, yet stays short however deep the graph.

Generated workflows use a deliberately small vocabulary, so that a reference
interpreter can say what they must do: conditions test loop variables or are
constant, foreach collections are literal lists, parallels wait for all
their branches (unless ``partial_waits``), and a checkpoint always has a
timeout and ``default="approve"``. :func:`render_flow` writes one as
``.flow.md`` text, to read a failing example or to run it with the CLI.

Sizes are bounded: about ``max_nodes`` declared nodes (fallbacks included;
a nested body still gets its first node once the budget is spent), bodies
``max_depth`` deep holding one to three nodes, at most three branches, two
cases, four foreach items and three loop iterations; a fault plan's schedule
faults at most six attempts, followed by at most ``max_rules`` broad rules.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from hypothesis import strategies as st

from .._context import RuntimeContext
from .._faults import FaultPlan
from .._graph import Plan
from .._model import (
    BranchNode,
    BreakNode,
    Case,
    CheckpointNode,
    DelayNode,
    ForeachNode,
    FrozenDict,
    IfNode,
    LoopNode,
    Node,
    OnError,
    ParallelBranch,
    ParallelNode,
    RetrySpec,
    TaskNode,
    WhileNode,
    Workflow,
)
from .._registry import (
    RuntimeSpec,
    get_runtime,
    register_runtime,
    unregister_runtime,
)
from ._load import load

__all__ = [
    "ATTEMPT_TIMEOUT",
    "FAULT_KINDS",
    "PROBE_KEY",
    "dags",
    "fault_plan_mappings",
    "fault_plans",
    "fault_targets",
    "probe",
    "probe_output",
    "probe_runtime",
    "render_flow",
    "seeds",
    "workflows",
]

# --- the probe runtime ---------------------------------------------------------------

#: The runtime key of every task node :func:`workflows` generates.
PROBE_KEY = "transform:wc-probe"


def probe_output(node_id: str, value: Any, read: Any = None) -> str:
    """What the probe returns for ``node_id`` given its input and rendered ``read`` config."""
    digest = hashlib.blake2b(repr((value, read)).encode(), digest_size=6).hexdigest()
    return f"{node_id}:{digest}"


def probe(ctx: RuntimeContext) -> str:
    """The probe runtime: a pure function of the node id, its input and its ``read`` config."""
    return probe_output(ctx.node_id, ctx.input, ctx.config.get("read"))


def _ensure_probe() -> None:
    try:
        get_runtime(PROBE_KEY)
    except KeyError:
        register_runtime(PROBE_KEY, probe)


@contextmanager
def probe_runtime() -> Iterator[None]:
    """Register the probe runtime for the duration of the block, then restore the registry
    as it was (drawing a generated workflow registers it for good)."""
    try:
        before: RuntimeSpec | None = get_runtime(PROBE_KEY)
    except KeyError:
        before = None
    register_runtime(PROBE_KEY, probe, replace=True)
    try:
        yield
    finally:
        if before is None:
            unregister_runtime(PROBE_KEY)
        else:
            register_runtime(
                PROBE_KEY,
                before.func,
                expressions=before.expressions,
                required=before.required,
                replace=True,
            )


# --- workflows -------------------------------------------------------------------------

#: The attempt timeout generated nodes get when they get one (virtual seconds).
ATTEMPT_TIMEOUT = 1.0
#: The short delay fault never reaches ATTEMPT_TIMEOUT; the long one outlasts it and the
#: default grace period, so a non-cooperative attempt is abandoned before it could finish.
_SHORT_DELAY, _LONG_DELAY = "50ms", "30s"

_CONTROL_KINDS = ("parallel", "foreach", "if", "branch", "loop", "while")


@dataclass(frozen=True, slots=True)
class _Options:
    max_nodes: int
    control: bool
    max_depth: int
    retries: bool
    fallbacks: bool
    timeouts: bool
    delays: bool
    checkpoints: bool
    breaks: bool
    concurrent_breaks: bool
    partial_waits: bool


@dataclass(frozen=True, slots=True)
class _Owner:
    """The repeating control whose body is being generated (for ``<break>``)."""

    kind: str  # foreach | loop | while
    index: str = "iteration"  # the integer loop variable
    sequential: bool = True


class _Builder:
    """Draws one workflow; ``budget`` bounds the total number of nodes."""

    def __init__(self, draw: Any, options: _Options) -> None:
        self.draw = draw
        self.options = options
        self.budget = options.max_nodes
        self.count = 0

    def new_id(self) -> str:
        k = self.count
        self.count += 1
        return f"t-{k}" if self.draw(st.integers(0, 3)) == 0 else f"n{k}"

    def reference(self, node_id: str) -> str:
        if node_id.isidentifier() and self.draw(st.booleans()):
            return f"{node_id}.output"
        return f"nodes['{node_id}'].output"

    def subset(self, pool: Sequence[str], most: int) -> list[str]:
        if not pool:
            return []
        chosen: list[str] = self.draw(
            st.lists(st.sampled_from(list(pool)), max_size=most, unique=True)
        )
        return chosen

    def condition(self, names: Sequence[str]) -> str:
        choices = ["true", "false"]
        choices += [f"{name} % 2 == 0" for name in names if name not in ("branch",)]
        if "branch" in names:
            choices.append("branch == 'b0'")
        chosen: str = self.draw(st.sampled_from(choices))
        return chosen

    def body(
        self,
        visible: Sequence[str],
        names: Sequence[str],
        depth: int,
        owner: _Owner | None,
        *,
        min_size: int,
        max_size: int,
    ) -> tuple[Node, ...]:
        opts = self.options
        size = self.draw(st.integers(min_size, max_size))
        nodes: list[Node] = []
        local: list[str] = []
        for position in range(size):
            if self.budget <= 0 and position >= min_size:
                break
            self.budget -= 1
            kinds = ["task"] * 4
            if opts.control and depth < opts.max_depth:
                kinds += _CONTROL_KINDS
            if opts.delays:
                kinds.append("delay")
            if opts.checkpoints:
                kinds.append("checkpoint")
            if owner is not None and opts.breaks and (owner.sequential or opts.concurrent_breaks):
                kinds.append("break")
            kind = self.draw(st.sampled_from(kinds))
            pool = [*visible, *local]
            node_id = self.new_id()
            inputs = tuple(self.subset(pool, 3))
            if kind == "task":
                node, fallback = self.task(node_id, inputs, pool, names)
                nodes.append(node)
                if fallback is not None:
                    nodes.append(fallback)
            elif kind == "delay":
                duration = self.draw(st.sampled_from([0.01, 0.5]))
                nodes.append(DelayNode(id=node_id, inputs=inputs, duration=duration))
            elif kind == "checkpoint":
                nodes.append(
                    CheckpointNode(
                        id=node_id, inputs=inputs, prompt="go?", timeout=0.5, default="approve"
                    )
                )
            elif kind == "break":
                assert owner is not None
                limit = self.draw(st.integers(0, 2))
                when = self.draw(st.sampled_from([f"{owner.index} >= {limit}", "false"]))
                nodes.append(BreakNode(id=node_id, when=when))
            else:
                nodes.append(self.control(kind, node_id, inputs, pool, names, depth, owner))
            local.append(node_id)
        return tuple(nodes)

    def task(
        self, node_id: str, inputs: tuple[str, ...], pool: Sequence[str], names: Sequence[str]
    ) -> tuple[TaskNode, TaskNode | None]:
        opts = self.options
        parts = [self.reference(r) for r in self.subset(pool, 2)]
        parts += self.subset([n for n in names if n not in ("input",)], 2)
        if self.draw(st.integers(0, 4)) == 0:
            parts.append("input")
        config = FrozenDict({"read": "{{ [" + ", ".join(parts) + "] }}"}) if parts else FrozenDict()
        timeout = None
        if opts.timeouts and self.draw(st.booleans()):
            timeout = ATTEMPT_TIMEOUT
        retry = None
        if opts.retries and self.draw(st.booleans()):
            retry = RetrySpec(
                max=self.draw(st.integers(0, 3)),
                backoff=self.draw(st.sampled_from(["exponential", "linear", "fixed"])),
                base=0.05,
                cap=0.5,
                when=self.draw(st.sampled_from(["retryable", "always"])),
                # The retry's timeout takes precedence over the node's: try both spellings.
                timeout=timeout if timeout is not None and self.draw(st.booleans()) else None,
            )
            if retry.timeout is not None:
                timeout = None
        fallback = None
        if opts.fallbacks and self.budget > 0 and self.draw(st.integers(0, 2)) == 0:
            self.budget -= 1
            fb_config = FrozenDict()
            if self.draw(st.booleans()):
                fb_config = FrozenDict({"read": "{{ [primary_input, error.type] }}"})
            fb_timeout = ATTEMPT_TIMEOUT if opts.timeouts and self.draw(st.booleans()) else None
            fallback = TaskNode(
                id=f"fb-{node_id}",
                kind="transform",
                type=PROBE_KEY.split(":")[1],
                config=fb_config,
                timeout=fb_timeout,
            )
        on_error = None
        if retry is not None or fallback is not None:
            on_error = OnError(retry=retry, fallback=fallback.id if fallback else None)
        node = TaskNode(
            id=node_id,
            inputs=inputs,
            kind="transform",
            type=PROBE_KEY.split(":")[1],
            config=config,
            timeout=timeout,
            on_error=on_error,
        )
        return node, fallback

    def control(
        self,
        kind: str,
        node_id: str,
        inputs: tuple[str, ...],
        pool: Sequence[str],
        names: Sequence[str],
        depth: int,
        owner: _Owner | None,
    ) -> Node:
        """A control node; ``owner`` is the repeating body it is in, which a ``<break>``
        inside its (non-repeating) bodies stops."""
        draw = self.draw
        inner = depth + 1

        def with_names(*extra: str) -> list[str]:
            return [*[n for n in names if n not in extra], *extra]

        if kind == "parallel":
            count = draw(st.integers(1, 3))
            branches = tuple(
                ParallelBranch(
                    name=f"b{k}",
                    body=self.body(
                        pool, with_names("branch"), inner, owner, min_size=1, max_size=2
                    ),
                )
                for k in range(count)
            )
            wait = None
            if self.options.partial_waits:
                wait = draw(st.one_of(st.none(), st.integers(1, count)))
            return ParallelNode(
                id=node_id,
                inputs=inputs,
                branches=branches,
                wait=wait,
                merge=draw(st.sampled_from(["array", "concat", "object"])),
                max_concurrency=draw(st.sampled_from([None, 1, 2])),
            )
        if kind == "foreach":
            items = draw(st.lists(st.integers(0, 9), max_size=4))
            item, index = draw(st.sampled_from([("item", "index"), ("it", "ix")]))
            concurrency = draw(st.sampled_from([None, 1, 2]))
            each = _Owner("foreach", index, sequential=concurrency == 1)
            body = self.body(pool, with_names(item, index), inner, each, min_size=1, max_size=3)
            return ForeachNode(
                id=node_id,
                inputs=inputs,
                collection=repr(items),
                body=body,
                item=item,
                index=index,
                concurrency=concurrency,
            )
        if kind == "if":
            condition = self.condition(names)
            then = self.body(pool, names, inner, owner, min_size=1, max_size=2)
            orelse = self.body(pool, names, inner, owner, min_size=0, max_size=2)
            return IfNode(id=node_id, inputs=inputs, condition=condition, then=then, orelse=orelse)
        if kind == "branch":
            cases = tuple(
                Case(
                    when=self.condition(names),
                    body=self.body(pool, names, inner, owner, min_size=1, max_size=2),
                )
                for _ in range(draw(st.integers(1, 2)))
            )
            default = self.body(pool, names, inner, owner, min_size=0, max_size=2)
            return BranchNode(id=node_id, inputs=inputs, cases=cases, default=default)
        names = with_names("iteration")
        body = self.body(pool, names, inner, _Owner(kind), min_size=1, max_size=2)
        most = draw(st.integers(1, 3))
        if kind == "loop":
            limit = draw(st.integers(0, 3))
            break_when = draw(st.sampled_from([None, f"iteration >= {limit}"]))
            return LoopNode(id=node_id, inputs=inputs, max=most, body=body, break_when=break_when)
        condition = f"iteration < {draw(st.integers(0, 3))}"
        return WhileNode(id=node_id, inputs=inputs, condition=condition, body=body, max=most)


@st.composite
def workflows(
    draw: Any,
    *,
    max_nodes: int = 10,
    control: bool = True,
    max_depth: int = 2,
    retries: bool = False,
    fallbacks: bool = False,
    timeouts: bool = False,
    delays: bool = True,
    checkpoints: bool = False,
    breaks: bool = True,
    concurrent_breaks: bool = True,
    partial_waits: bool = False,
    name: str = "generated",
) -> Workflow:
    """A random valid workflow of probe task nodes (see the module docstring).

    ``max_nodes`` bounds the nodes declared (bodies included; iterations run
    them several times). ``control`` allows control nodes nested up to
    ``max_depth`` levels. ``retries``, ``fallbacks`` and ``timeouts`` give
    task nodes random ``<retry>`` policies, ``<fallback>`` nodes and attempt
    timeouts of :data:`ATTEMPT_TIMEOUT`. ``breaks`` puts ``<break>`` nodes in
    repeating bodies; without ``concurrent_breaks`` only in sequential ones
    (loops, while, foreach with concurrency 1), where which iterations run
    never depends on timing. ``partial_waits`` lets parallels wait for any or
    n(K) of their branches: which branches count then depends on timing, so the
    reference model does not apply to such workflows.
    """
    options = _Options(
        max_nodes=max_nodes,
        control=control,
        max_depth=max_depth,
        retries=retries,
        fallbacks=fallbacks,
        timeouts=timeouts,
        delays=delays,
        checkpoints=checkpoints,
        breaks=breaks,
        concurrent_breaks=concurrent_breaks,
        partial_waits=partial_waits,
    )
    _ensure_probe()
    builder = _Builder(draw, options)
    body = builder.body((), (), 0, None, min_size=1, max_size=max_nodes)
    return Workflow(name=name, body=body)


def dags(**options: Any) -> st.SearchStrategy[Workflow]:
    """A random flat DAG of probe task nodes (``workflows`` without control flow or delays)."""
    return workflows(control=False, delays=False, checkpoints=False, **options)


def seeds() -> st.SearchStrategy[int]:
    """Run seeds: integers from 0 to 2**32 - 1 (shrinking towards 0)."""
    return st.integers(0, 2**32 - 1)


# --- fault plans -----------------------------------------------------------------------

#: The kinds of fault :func:`fault_plans` injects (``transient`` and ``permanent`` raise).
FAULT_KINDS = ("transient", "permanent", "crash", "hang", "delay")

#: Globs on runtime keys a rule may select by (besides a workflow's own keys).
_KIND_GLOBS = ("transform:*", "source:*", "sink:*")


@dataclass(frozen=True, slots=True)
class FaultTargets:
    """What a workflow offers fault rules: its task node ids (fallback nodes included) with
    the attempts each can make (retry max + 1; a fallback runs once), those with an attempt
    timeout (only they may hang: a hang without a timeout never ends), and runtime keys."""

    attempts: dict[str, int]
    timed: tuple[str, ...]
    types: tuple[str, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.attempts)


def fault_targets(workflow: Workflow | Plan | str | os.PathLike[str]) -> FaultTargets:
    """The task nodes, their attempts, the timed ones and the runtime keys of ``workflow``."""
    wf = load(workflow).workflow
    attempts: dict[str, int] = {}
    timed: list[str] = []
    types: set[str] = set()
    fallbacks = {
        node.on_error.fallback
        for node, _ in wf.iter_nodes()
        if isinstance(node, TaskNode) and node.on_error is not None and node.on_error.fallback
    }
    for node, _ in wf.iter_nodes():
        if isinstance(node, TaskNode):
            retry = node.on_error.retry if node.on_error is not None else None
            attempts[node.id] = 1 if node.id in fallbacks or retry is None else retry.max + 1
            types.add(node.runtime_key)
            if node.timeout is not None or (retry is not None and retry.timeout is not None):
                timed.append(node.id)
    return FaultTargets(attempts, tuple(timed), tuple(sorted(types)))


_DELAYS = (_SHORT_DELAY, _LONG_DELAY)
#: The most faults a plan's schedule puts on attempts.
_MOST_SCHEDULED = 6


def _fault(rule: dict[str, Any], kind: str, delay: Any) -> dict[str, Any]:
    if kind in ("transient", "permanent"):
        rule["raise"] = kind
    elif kind == "crash":
        rule["crash"] = True
    elif kind == "hang":
        rule["hang"] = True
    else:
        rule["delay"] = delay
    return rule


@st.composite
def fault_plan_mappings(
    draw: Any,
    workflow: Workflow | Plan | str | os.PathLike[str],
    *,
    kinds: Sequence[str] = FAULT_KINDS,
    max_rules: int = 2,
    max_attempt: int = 4,
) -> dict[str, Any]:
    """A fault plan in the fault-file form (``{"rules": [...]}``) aimed at ``workflow``.

    Faults are of ``kinds`` (``transient`` and ``permanent`` raise; ``crash``,
    ``hang``, ``delay``). A plan has two parts:

    * a *schedule*: some of the attempts the task nodes can make (each its
      retry max + 1, up to ``max_attempt``; a fallback its one) get a fault,
      each as one exact rule ``{node, attempts: [k], ...}`` (at most 16);
    * then up to ``max_rules`` *broad* rules: by prefix glob or for any node,
      sometimes also by a runtime key glob (the workflow's keys or
      ``source:*``, ``transform:*``, ``sink:*``), for every attempt, one or
      several, with probability 1 or 0.5.

    ``hang`` only ever targets a node with an attempt timeout, by exact id;
    delays are 50 ms or 30 s. Shrinking leads to fewer faults and simpler
    rules, so a failing plan shrinks to the few faults that matter.
    """
    targets = fault_targets(workflow)
    hangable = set(targets.timed)
    usable = [k for k in kinds if k != "hang"]
    slots = [
        (node, attempt)
        for node, most in targets.attempts.items()
        for attempt in range(1, min(most, max_attempt) + 1)
        if usable or (node in hangable and "hang" in kinds)
    ]
    rules: list[dict[str, Any]] = []
    if slots:
        # The schedule: how many attempts get a fault, then which ones and what fault.
        # Drawing the count first keeps the draws few, and shrinking it drops faults.
        faulted: dict[tuple[str, int], dict[str, Any]] = {}
        for _ in range(draw(st.integers(0, min(len(slots), _MOST_SCHEDULED)))):
            node, attempt = slots[draw(st.integers(0, len(slots) - 1))]
            hang = node in hangable and "hang" in kinds
            kind = draw(st.sampled_from([*usable, "hang"] if hang else usable))
            delay = draw(st.sampled_from(_DELAYS)) if kind == "delay" else None
            faulted.setdefault(
                (node, attempt), _fault({"node": node, "attempts": [attempt]}, kind, delay)
            )
        rules += [faulted[slot] for slot in slots if slot in faulted]
    broad_kinds = [k for k in kinds if k != "hang"]
    node_ids, types = list(targets.ids), [*_KIND_GLOBS, *targets.types]
    for _ in range(draw(st.integers(0, max_rules)) if broad_kinds else 0):
        kind = draw(st.sampled_from(broad_kinds))
        rule: dict[str, Any] = {}
        if node_ids and draw(st.booleans()):
            rule["node"] = draw(st.sampled_from(node_ids))[:2] + "*"
        if draw(st.integers(0, 3)) == 3:
            rule["type"] = draw(st.sampled_from(types))
        if draw(st.booleans()):
            rule["attempts"] = sorted(
                draw(st.sets(st.integers(1, max_attempt), min_size=1, max_size=max_attempt))
            )
        if draw(st.integers(0, 2)) == 2:
            rule["probability"] = 0.5
        delay = draw(st.sampled_from(_DELAYS)) if kind == "delay" else None
        rules.append(_fault(rule, kind, delay))
    return {"rules": rules}


def fault_plans(
    workflow: Workflow | Plan | str | os.PathLike[str],
    *,
    kinds: Sequence[str] = FAULT_KINDS,
    max_rules: int = 2,
    max_attempt: int = 4,
) -> st.SearchStrategy[FaultPlan]:
    """Fault plans aimed at ``workflow`` (a Workflow, Plan, path or text): the plans of
    :func:`fault_plan_mappings`, loaded as :class:`~wavecrest.core.FaultPlan` values."""
    mappings = fault_plan_mappings(
        workflow, kinds=kinds, max_rules=max_rules, max_attempt=max_attempt
    )
    return mappings.map(FaultPlan.from_mapping)


# --- rendering ---------------------------------------------------------------------------


def render_flow(workflow: Workflow) -> str:
    """``workflow`` as ``.flow.md`` text, to read a failing example or to replay it."""
    lines = ["---", f"name: {workflow.name}", "---", "<workflow>"]
    _render_body(workflow.body, lines, "  ")
    lines.append("</workflow>")
    return "\n".join(lines) + "\n"


def _attrs(**values: Any) -> str:
    out = []
    for key, value in values.items():
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            text = ", ".join(value)
        elif isinstance(value, float):
            text = f"{value:g}s"
        else:
            text = str(value)
        out.append(f" {key.rstrip('_').replace('_', '-')}={quoteattr(text)}")
    return "".join(out)


def _render_body(body: Sequence[Node], lines: list[str], indent: str) -> None:
    for node in body:
        _render_node(node, lines, indent)


def _render_node(node: Node, lines: list[str], indent: str) -> None:
    inner = indent + "  "
    common = {"id": node.id, "input": node.inputs}
    if isinstance(node, TaskNode):
        attrs = _attrs(**common, type=node.type, timeout=node.timeout, **node.config)
        on_error = node.on_error
        if on_error is None:
            lines.append(f"{indent}<{node.kind}{attrs}/>")
            return
        lines.append(f"{indent}<{node.kind}{attrs}>")
        lines.append(f"{inner}<on-error>")
        retry = on_error.retry
        if retry is not None:
            retry_attrs = _attrs(
                max=retry.max,
                backoff=retry.backoff,
                base=retry.base,
                cap=retry.cap,
                when=retry.when,
                timeout=retry.timeout,
            )
            lines.append(f"{inner}  <retry{retry_attrs}/>")
        if on_error.fallback is not None:
            lines.append(f"{inner}  <fallback{_attrs(node=on_error.fallback)}/>")
        lines.append(f"{inner}</on-error>")
        lines.append(f"{indent}</{node.kind}>")
    elif isinstance(node, DelayNode):
        lines.append(f"{indent}<delay{_attrs(**common, duration=node.duration)}/>")
    elif isinstance(node, CheckpointNode):
        attrs = _attrs(**common, prompt=node.prompt, timeout=node.timeout, default=node.default)
        lines.append(f"{indent}<checkpoint{attrs}/>")
    elif isinstance(node, BreakNode):
        lines.append(f"{indent}<break{_attrs(id=node.id, when=node.when)}/>")
    elif isinstance(node, ParallelNode):
        wait = None if node.wait is None else "any" if node.wait == 1 else f"n({node.wait})"
        attrs = _attrs(**common, wait=wait, merge=node.merge, max_concurrency=node.max_concurrency)
        lines.append(f"{indent}<parallel{attrs}>")
        for branch in node.branches:
            lines.append(f"{inner}<branch{_attrs(name=branch.name)}>")
            _render_body(branch.body, lines, inner + "  ")
            lines.append(f"{inner}</branch>")
        lines.append(f"{indent}</parallel>")
    elif isinstance(node, ForeachNode):
        attrs = _attrs(
            **common,
            collection=node.collection,
            item=node.item,
            index=node.index,
            concurrency=node.concurrency,
        )
        lines.append(f"{indent}<foreach{attrs}>")
        _render_body(node.body, lines, inner)
        lines.append(f"{indent}</foreach>")
    elif isinstance(node, IfNode):
        lines.append(f"{indent}<if{_attrs(**common, condition=node.condition)}>")
        for label, body in node.bodies():
            lines.append(f"{inner}<{label}>")
            _render_body(body, lines, inner + "  ")
            lines.append(f"{inner}</{label}>")
        lines.append(f"{indent}</if>")
    elif isinstance(node, BranchNode):
        lines.append(f"{indent}<branch{_attrs(**common)}>")
        for case in node.cases:
            lines.append(f"{inner}<case{_attrs(when=case.when)}>")
            _render_body(case.body, lines, inner + "  ")
            lines.append(f"{inner}</case>")
        lines.append(f"{inner}<default>")
        _render_body(node.default, lines, inner + "  ")
        lines.append(f"{inner}</default>")
        lines.append(f"{indent}</branch>")
    elif isinstance(node, LoopNode):
        lines.append(f"{indent}<loop{_attrs(**common, max=node.max, break_=node.break_when)}>")
        _render_body(node.body, lines, inner)
        lines.append(f"{indent}</loop>")
    elif isinstance(node, WhileNode):
        attrs = _attrs(**common, condition=node.condition, max=node.max)
        lines.append(f"{indent}<while{attrs}>")
        _render_body(node.body, lines, inner)
        lines.append(f"{indent}</while>")
