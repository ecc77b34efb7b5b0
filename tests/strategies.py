"""Hypothesis strategies for workflows and fault plans, a reference model, and trace checkers.

This module is the seed of wavecrest's public testing toolkit. It has five
parts, usable separately:

* **The probe runtime** (``transform:wc-probe``). Every generated task node
  runs it. Its output is ``"<node id>:<digest>"`` where the digest covers the
  node's input and its rendered ``read`` config (a template listing the
  outputs of the nodes it reads and the loop variables in scope). An output
  therefore changes whenever anything a node received changes, yet stays
  short however deep the graph. Register it with :func:`probe_runtime`.

* **Strategies.** :func:`workflows` draws a random workflow: a DAG of task
  nodes in each body, optionally with control nodes (parallel, foreach, if,
  branch, loop, while) nested up to ``max_depth``, delays, checkpoints that
  approve themselves after a timeout, ``<break>`` nodes in repeating bodies,
  and per-node retry policies, timeouts and fallbacks. Dependencies are both
  explicit ``input`` lists and template references (``n3.output`` and
  ``nodes['t-4'].output``), inside bodies too, so the planner's lifted
  dependencies are exercised. :func:`dags` is the flat special case.
  :func:`fault_plan_mappings` and :func:`fault_plans` draw fault plans in the
  fault-file form for a given set of node ids.

* **The reference model.** :func:`expected_run` interprets a generated
  workflow directly — a sequential, recursive interpreter written from the
  documented semantics, sharing nothing with the scheduler but the
  expression engine and ``FaultPlan.draw`` (which fault an attempt gets) —
  and says which paths succeed with which output, which fail, which are
  skipped, and how many attempts each task path makes, under keep-going.

* **Trace checkers.** ``check_*`` functions take a finished
  :class:`~wavecrest.core.Simulation` and assert one invariant each over its
  trace: dependencies respected, concurrency and permits within the cap,
  every attempt accounted for, the waves barrier, nothing started after
  fail-fast, attempts within the retry budget. :func:`check_invariants` runs
  those that hold for every run.

* **Rendering.** :func:`render_flow` writes a generated workflow as
  ``.flow.md`` text: readable in a failing example's notes, and a file the
  CLI can replay.

Generated workflows use a deliberately small vocabulary so that the model can
stay simple: conditions test loop variables or are constant, foreach
collections are literal lists, parallels wait for all their branches (unless
``partial_waits``), and a checkpoint always has a timeout and
``default="approve"``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from hypothesis import strategies as st
from wavecrest.core import (
    FaultPlan,
    RuntimeContext,
    Simulation,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._events import (
    AbandonTask,
    CancelRun,
    CheckpointDecided,
    Emit,
    FailNode,
    NodeCancelled,
    NodeFailed,
    NodeSkipped,
    NodeSucceeded,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    RetryNode,
    RunFallback,
    StartTask,
    TaskCancelled,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WithdrawPermits,
)
from wavecrest.core._expr import compile_expression, compile_template
from wavecrest.core._model import (
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

__all__ = [
    "ATTEMPT_TIMEOUT",
    "FAULT_KINDS",
    "PROBE_KEY",
    "Expected",
    "check_attempts",
    "check_concurrency",
    "check_dependencies",
    "check_invariants",
    "check_no_start_after_fail_fast",
    "check_outcomes_matched",
    "check_permits",
    "check_waves",
    "dags",
    "expected_run",
    "fault_plan_mappings",
    "fault_plans",
    "fault_targets",
    "probe",
    "probe_output",
    "probe_runtime",
    "render_flow",
    "workflows",
]

# --- the probe runtime ---------------------------------------------------------------

PROBE_KEY = "transform:wc-probe"


def probe_output(node_id: str, value: Any, read: Any = None) -> str:
    """What the probe returns for ``node_id`` given its input and rendered ``read`` config."""
    digest = hashlib.blake2b(repr((value, read)).encode(), digest_size=6).hexdigest()
    return f"{node_id}:{digest}"


def probe(ctx: RuntimeContext) -> str:
    """The probe runtime: a pure function of the node id, its input and its ``read`` config."""
    return probe_output(ctx.node_id, ctx.input, ctx.config.get("read"))


@contextmanager
def probe_runtime() -> Iterator[None]:
    """Register the probe runtime for the duration of the block."""
    register_runtime(PROBE_KEY, probe, replace=True)
    try:
        yield
    finally:
        unregister_runtime(PROBE_KEY)


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
        return self.draw(st.lists(st.sampled_from(list(pool)), max_size=most, unique=True))

    def condition(self, names: Sequence[str]) -> str:
        choices = ["true", "false"]
        choices += [f"{name} % 2 == 0" for name in names if name not in ("branch",)]
        if "branch" in names:
            choices.append("branch == 'b0'")
        return self.draw(st.sampled_from(choices))

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
    builder = _Builder(draw, options)
    body = builder.body((), (), 0, None, min_size=1, max_size=max_nodes)
    return Workflow(name=name, body=body)


def dags(**options: Any) -> st.SearchStrategy[Workflow]:
    """A random flat DAG of probe task nodes (``workflows`` without control flow or delays)."""
    return workflows(control=False, delays=False, checkpoints=False, **options)


# --- fault plans -----------------------------------------------------------------------

FAULT_KINDS = ("transient", "permanent", "crash", "hang", "delay")


def fault_targets(workflow: Workflow) -> tuple[list[str], list[str]]:
    """The ids of ``workflow``'s task nodes, and those of them with an attempt timeout.

    Only the latter may get a ``hang`` fault: a hang without a timeout never ends.
    """
    ids: list[str] = []
    timed: list[str] = []
    for node, _ in workflow.iter_nodes():
        if isinstance(node, TaskNode):
            ids.append(node.id)
            retry = node.on_error.retry if node.on_error is not None else None
            if node.timeout is not None or (retry is not None and retry.timeout is not None):
                timed.append(node.id)
    return ids, timed


@st.composite
def fault_plan_mappings(
    draw: Any,
    node_ids: Sequence[str],
    *,
    hangable: Sequence[str] = (),
    kinds: Sequence[str] = FAULT_KINDS,
    max_rules: int = 4,
    max_attempt: int = 4,
) -> dict[str, Any]:
    """A fault plan in the fault-file form, with rules aimed at ``node_ids``.

    Rules select a node by exact id, by a prefix glob or not at all, sometimes
    by runtime type glob and attempt numbers, with probability 1 or 0.5.
    ``hang`` rules only ever select one node of ``hangable`` by exact id.
    """
    rules: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, max_rules))):
        kind = draw(st.sampled_from(list(kinds)))
        rule: dict[str, Any] = {}
        if kind == "hang":
            if not hangable:
                continue
            rule["node"] = draw(st.sampled_from(list(hangable)))
            rule["hang"] = True
        else:
            target = draw(st.sampled_from(["exact", "glob", "any"])) if node_ids else "any"
            if target == "exact":
                rule["node"] = draw(st.sampled_from(list(node_ids)))
            elif target == "glob":
                rule["node"] = draw(st.sampled_from(list(node_ids)))[:2] + "*"
            if kind in ("transient", "permanent"):
                rule["raise"] = kind
            elif kind == "crash":
                rule["crash"] = True
            else:
                rule["delay"] = draw(st.sampled_from([_SHORT_DELAY, _LONG_DELAY]))
        if draw(st.integers(0, 3)) == 0:
            rule["type"] = draw(st.sampled_from(["transform:*", "source:*", PROBE_KEY]))
        if draw(st.booleans()):
            rule["attempts"] = sorted(
                draw(st.sets(st.integers(1, max_attempt), min_size=1, max_size=max_attempt))
            )
        if draw(st.integers(0, 2)) == 0:
            rule["probability"] = 0.5
        rules.append(rule)
    return {"seed": draw(st.integers(0, 2**16)), "rules": rules}


def fault_plans(node_ids: Sequence[str], **options: Any) -> st.SearchStrategy[FaultPlan]:
    """:func:`fault_plan_mappings` loaded as a :class:`FaultPlan`."""
    return fault_plan_mappings(node_ids, **options).map(FaultPlan.from_mapping)


# --- the reference model --------------------------------------------------------------


@dataclass(slots=True)
class Expected:
    """What a generated workflow must do, as the reference model computes it (keep-going).

    ``status`` maps every path that must be recorded to ``succeeded``,
    ``failed`` or ``skipped`` (``not_taken`` lists the skipped paths of
    untaken bodies); ``outputs`` the output of every succeeded path.
    ``attempts`` is the number of primary attempts of every task path that
    runs, ``fallbacks`` the paths whose fallback runs. Paths in ``optional``
    (iterations after a foreach's ``<break>`` fired, which may or may not have
    started by then) may be missing or in any state; when one succeeded, its
    output must be ``optional[path]``.
    """

    status: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    fallbacks: set[str] = field(default_factory=set)
    not_taken: set[str] = field(default_factory=set)
    optional: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> set[str]:
        return {p for p, s in self.status.items() if s == "failed"}

    @property
    def completed(self) -> bool:
        """True when the run must complete (nothing fails)."""
        return not self.failed


_ERROR_TYPES = {
    "raise": "InjectedFault",
    "crash": "NodeCrashedError",
    "timeout": "NodeTimeoutError",
}


def _attempt_timeout(node: TaskNode) -> float | None:
    retry = node.on_error.retry if node.on_error is not None else None
    if retry is not None and retry.timeout is not None:
        return retry.timeout
    return node.timeout


def _references(node: Node) -> set[str]:
    """The node ids ``node`` and everything inside it read (inputs and templates)."""
    found = set(node.inputs)
    if isinstance(node, TaskNode):
        for value in node.config.values():
            if isinstance(value, str):
                refs = compile_template(value).references
                found |= set(refs.nodes) | set(refs.names)
    for _, body in node.bodies():
        for inner in body:
            found |= _references(inner)
    return found


class _Model:
    def __init__(self, workflow: Workflow, faults: FaultPlan | None, seed: int) -> None:
        self.faults = faults
        self.seed = seed
        self.fallbacks: dict[str, TaskNode] = {}
        for node, _ in workflow.iter_nodes():
            on_error = getattr(node, "on_error", None)
            if on_error is not None and on_error.fallback is not None:
                fallback = workflow.node(on_error.fallback)
                assert isinstance(fallback, TaskNode)
                self.fallbacks[on_error.fallback] = fallback
        self.expected = Expected()
        self.last_error = "raise"  # the kind of the latest failed attempt, for ``error.type``
        self.broke: list[bool] = []  # per enclosing repeating body: did a <break> fire

    # -- recording

    def record(self, path: str, status: str, output: Any, optional: bool) -> None:
        if optional:
            if status == "succeeded":
                self.expected.optional[path] = output
            else:
                self.expected.optional.setdefault(path, None)
            return
        self.expected.status[path] = status
        if status == "succeeded":
            self.expected.outputs[path] = output

    def not_taken(self, body: Sequence[Node], prefix: str, optional: bool) -> None:
        for node in body:
            if node.id in self.fallbacks:
                continue
            self.record(prefix + node.id, "skipped", None, optional)
            if not optional:
                self.expected.not_taken.add(prefix + node.id)
            if not isinstance(node, ForeachNode | LoopNode | WhileNode):
                for _, inner in node.bodies():
                    self.not_taken(inner, prefix, optional)

    # -- evaluation

    @staticmethod
    def scope(env: Mapping[str, Any], bindings: Mapping[str, Any], value: Any) -> dict[str, Any]:
        views = {nid: {"output": out, "status": "succeeded"} for nid, out in env.items()}
        return {
            "input": value,
            "config": {},
            "secrets": {},
            "nodes": views,
            **views,
            **bindings,
        }

    @staticmethod
    def input_of(node: Node, env: Mapping[str, Any], value: Any) -> Any:
        if not node.inputs:
            return value
        if len(node.inputs) == 1:
            return env[node.inputs[0]]
        return [env[i] for i in node.inputs]

    def body(
        self,
        nodes: Sequence[Node],
        prefix: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        value: Any,
        optional: bool,
    ) -> tuple[Any, bool]:
        """Run one frame: returns its output and whether it failed."""
        env = dict(env)
        local: dict[str, str] = {}
        failed = False
        members = [n for n in nodes if n.id not in self.fallbacks]
        outputs = [n.id for n in members if not isinstance(n, BreakNode)]
        for node in members:
            deps = _references(node) & set(local)
            path = prefix + node.id
            if any(local[d] != "succeeded" for d in deps):
                status, output = "skipped", None
                self.record(path, status, None, optional)
            else:
                status, output = self.node(node, prefix, env, bindings, value, optional)
            local[node.id] = status
            if status == "succeeded":
                env[node.id] = output
            else:
                failed = True
        out = None
        if outputs and local.get(outputs[-1]) == "succeeded":
            out = env[outputs[-1]]
        return out, failed

    def iteration(
        self,
        nodes: Sequence[Node],
        prefix: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        value: Any,
        optional: bool,
    ) -> tuple[Any, bool, bool]:
        """One iteration of a repeating body: its output, whether it failed, whether it broke."""
        self.broke.append(False)
        out, failed = self.body(nodes, prefix, env, bindings, value, optional)
        return out, failed, self.broke.pop()

    def node(
        self,
        node: Node,
        prefix: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        value: Any,
        optional: bool,
    ) -> tuple[str, Any]:
        path = prefix + node.id
        received = self.input_of(node, env, value)
        status, output = "succeeded", received
        if isinstance(node, TaskNode):
            status, output = self.task(node, path, env, bindings, received, optional)
        elif isinstance(node, DelayNode | CheckpointNode):
            pass
        elif isinstance(node, BreakNode):
            scope = self.scope(env, bindings, received)
            output = bool(compile_expression(node.when).evaluate(scope))
            if output:
                self.broke[-1] = True  # the innermost repeating body stops
        elif isinstance(node, ParallelNode):
            outs: list[Any] = []
            failed = False
            for branch in node.branches:
                scope = {**bindings, "branch": branch.name}
                out, branch_failed = self.body(branch.body, prefix, env, scope, received, optional)
                failed |= branch_failed
                outs.append(out)
            status, output = ("failed", None) if failed else ("succeeded", _merge(node, outs))
        elif isinstance(node, ForeachNode):
            status, output = self.foreach(node, prefix, env, bindings, optional)
        elif isinstance(node, IfNode | BranchNode):
            status, output = self.choice(node, prefix, env, bindings, received, optional)
        elif isinstance(node, LoopNode | WhileNode):
            status, output = self.loop(node, prefix, env, bindings, received, optional)
        else:  # pragma: no cover - the generator makes no other node
            raise AssertionError(f"the model cannot run {node!r}")
        self.record(path, status, output, optional)
        return status, output

    def task(
        self,
        node: TaskNode,
        path: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        received: Any,
        optional: bool,
    ) -> tuple[str, Any]:
        scope = self.scope(env, bindings, received)
        read = node.config.get("read")
        rendered = compile_template(read).render(scope) if read is not None else None
        retry = node.on_error.retry if node.on_error is not None else None
        attempt = 1
        while True:
            error = self.fault(path, node, attempt)
            if error is None:
                if not optional:
                    self.expected.attempts[path] = attempt
                return "succeeded", probe_output(node.id, received, rendered)
            retried = (
                retry is not None
                and attempt <= retry.max
                and error != "permanent"  # every injected non-permanent error is retryable
            )
            if not retried:
                break
            attempt += 1
        if not optional:
            self.expected.attempts[path] = attempt
        fallback_id = node.on_error.fallback if node.on_error is not None else None
        if fallback_id is None:
            return "failed", None
        if not optional:
            self.expected.fallbacks.add(path)
        fallback = self.fallbacks[fallback_id]
        if self.fault(path, fallback, 1) is not None:
            return "failed", None
        fb_input = self.input_of(fallback, env, received)
        fb_scope = {
            **self.scope(env, bindings, fb_input),
            "error": {"type": _ERROR_TYPES[self.last_error]},
            "primary_input": received,
        }
        fb_read = fallback.config.get("read")
        fb_rendered = compile_template(fb_read).render(fb_scope) if fb_read is not None else None
        return "succeeded", probe_output(fallback.id, fb_input, fb_rendered)

    def fault(self, path: str, node: TaskNode, attempt: int) -> str | None:
        """None if the attempt succeeds, else ``retryable`` or ``permanent``."""
        if self.faults is None:
            return None
        fault = self.faults.draw(self.seed, path, node.id, node.runtime_key, attempt)
        if fault is None:
            return None
        timeout = _attempt_timeout(node)
        if fault.kind == "delay":
            if timeout is None or fault.delay < timeout / 2:
                return None
            assert fault.delay > timeout * 2, "delay faults must be far from the timeout"
            self.last_error = "timeout"
            return "retryable"
        if fault.kind == "hang":
            assert timeout is not None, f"a hang fault on {path!r} without a timeout never ends"
            self.last_error = "timeout"
            return "retryable"
        self.last_error = fault.kind
        if fault.kind == "raise" and not fault.transient:
            return "permanent"
        return "retryable"

    def foreach(
        self,
        node: ForeachNode,
        prefix: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        optional: bool,
    ) -> tuple[str, Any]:
        items = compile_expression(node.collection).evaluate(self.scope(env, bindings, None))
        outs: list[Any] = []
        failed = False
        cutoff: int | None = None
        for k, item in enumerate(items):
            later = optional or (cutoff is not None and k > cutoff)
            out, iteration_failed, broke = self.iteration(
                node.body,
                f"{prefix}{node.id}[{k}]/",
                env,
                {**bindings, node.item: item, node.index: k},
                item,
                later,
            )
            if later:
                continue
            outs.append(out)
            failed |= iteration_failed
            if broke and cutoff is None:
                cutoff = k
        return ("failed", None) if failed else ("succeeded", outs)

    def choice(
        self,
        node: IfNode | BranchNode,
        prefix: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        received: Any,
        optional: bool,
    ) -> tuple[str, Any]:
        scope = self.scope(env, bindings, received)
        bodies = [body for _, body in node.bodies()]
        if isinstance(node, IfNode):
            taken = 0 if compile_expression(node.condition).evaluate(scope) else 1
        else:
            taken = next(
                (
                    k
                    for k, case in enumerate(node.cases)
                    if compile_expression(case.when).evaluate(scope)
                ),
                len(node.cases),
            )
        for k, body in enumerate(bodies):
            if k != taken:
                self.not_taken(body, prefix, optional)
        out, failed = self.body(bodies[taken], prefix, env, bindings, received, optional)
        return ("failed", None) if failed else ("succeeded", out)

    def loop(
        self,
        node: LoopNode | WhileNode,
        prefix: str,
        env: Mapping[str, Any],
        bindings: Mapping[str, Any],
        received: Any,
        optional: bool,
    ) -> tuple[str, Any]:
        last: Any = None
        for iteration in range(node.max):
            scope = {**self.scope(env, bindings, received), "iteration": iteration}
            if isinstance(node, WhileNode) and not compile_expression(node.condition).evaluate(
                scope
            ):
                break
            out, failed, broke = self.iteration(
                node.body,
                f"{prefix}{node.id}[{iteration}]/",
                env,
                {**bindings, "iteration": iteration},
                received if iteration == 0 else last,
                optional,
            )
            if failed:
                return "failed", None
            last = out
            if broke or (
                isinstance(node, LoopNode)
                and node.break_when is not None
                and compile_expression(node.break_when).evaluate(scope)
            ):
                break
        return "succeeded", last


def _merge(node: ParallelNode, outputs: list[Any]) -> Any:
    if node.merge == "object":
        return {branch.name: out for branch, out in zip(node.branches, outputs, strict=True)}
    if node.merge == "concat":
        merged: list[Any] = []
        for out in outputs:
            if isinstance(out, list | tuple):
                merged.extend(out)
            elif out is not None:
                merged.append(out)
        return merged
    return outputs


def expected_run(workflow: Workflow, *, faults: FaultPlan | None = None, seed: int = 0) -> Expected:
    """What running a generated ``workflow`` under keep-going must give (see :class:`Expected`).

    ``faults`` and ``seed`` are the run's fault plan and seed: the model asks
    the plan which fault each attempt gets, exactly as the scheduler does.
    Restart intensity is assumed never to be reached.
    """
    model = _Model(workflow, faults, seed)
    model.body(workflow.body, "", {}, {}, None, False)
    return model.expected


# --- trace checkers ----------------------------------------------------------------------

_SETTLED = (NodeSucceeded, NodeFailed, NodeCancelled, NodeSkipped)
_OUTCOMES = (TaskSucceeded, TaskFailed, TaskCancelled)
_INPUTS = (
    *_OUTCOMES,
    PermitsGranted,
    TimerFired,
    RetryNode,
    RunFallback,
    FailNode,
    CancelRun,
    CheckpointDecided,
)


def _prefix(path: str, depth: int) -> str:
    """The first ``depth`` ``id[i]/`` segments of ``path``."""
    parts = path.split("/")[:-1]
    return "".join(part + "/" for part in parts[:depth])


def _chain(sim: Simulation, node_id: str) -> list[Any]:
    """The planned node and every enclosing control node, innermost first."""
    chain = []
    pn = sim.plan.nodes[node_id]
    while True:
        chain.append(pn)
        assert pn.scope is not None
        if pn.scope.owner is None:
            return chain
        pn = sim.plan.nodes[pn.scope.owner]


def _primary(start: StartTask) -> str:
    return start.fallback_for or start.node.id


def check_dependencies(sim: Simulation) -> None:
    """Every attempt starts after every dependency of its node, and of each enclosing
    control node, succeeded (in the same iteration)."""
    succeeded: set[str] = set()
    for item in sim.trace:
        if isinstance(item, Emit) and isinstance(item.event, NodeSucceeded):
            succeeded.add(item.event.path)
        elif isinstance(item, StartTask):
            for pn in _chain(sim, _primary(item)):
                prefix = _prefix(item.path, pn.depth)
                assert pn.scope is not None
                for d in pn.deps:
                    dep = prefix + pn.scope.nodes[d].id
                    assert dep in succeeded, (
                        f"{item.path!r} started before its dependency {dep!r} succeeded"
                    )


def check_waves(sim: Simulation) -> None:
    """Waves mode: no node of wave k+1 of a frame starts before every node of wave k of
    that frame settled (for the node itself and each enclosing control node)."""
    settled: set[str] = set()
    for item in sim.trace:
        if isinstance(item, Emit) and isinstance(item.event, _SETTLED):
            settled.add(item.event.path)
        elif isinstance(item, StartTask):
            for pn in _chain(sim, _primary(item)):
                prefix = _prefix(item.path, pn.depth)
                assert pn.scope is not None
                for wave in pn.scope.waves[: pn.wave]:
                    for index in wave:
                        earlier = prefix + pn.scope.nodes[index].id
                        assert earlier in settled, (
                            f"{item.path!r} (wave {pn.wave}) started before {earlier!r} "
                            "of an earlier wave settled"
                        )


def check_concurrency(sim: Simulation) -> None:
    """At no point do more attempts run than ``max_concurrency`` (trace and simulator agree)."""
    cap = sim.settings.max_concurrency
    assert sim.max_running <= cap, f"{sim.max_running} attempts ran at once, cap {cap}"
    running: set[int] = set()
    most = 0
    for item in sim.trace:
        if isinstance(item, StartTask):
            running.add(item.token)
            most = max(most, len(running))
        elif isinstance(item, (*_OUTCOMES, AbandonTask)):
            running.discard(item.token)
    assert most <= cap, f"{most} attempts ran at once, cap {cap}"


def check_permits(sim: Simulation) -> None:
    """Permits held plus requested never exceed the cap; every running attempt holds one
    (checked whenever an input arrives); nothing is held or queued once the run is over."""
    cap = sim.settings.max_concurrency
    held = requested = 0
    running: set[int] = set()
    for item in sim.trace:
        if isinstance(item, _INPUTS):
            assert held == len(running), f"{held} permits held for {len(running)} attempts"
        if isinstance(item, RequestPermits):
            requested += item.count
        elif isinstance(item, PermitsGranted):
            # A grant can cross a withdrawal (the run ended meanwhile); it is then released.
            requested = max(0, requested - item.count)
            held += item.count
        elif isinstance(item, ReleasePermits):
            held -= item.count
        elif isinstance(item, WithdrawPermits):
            requested = max(0, requested - item.count)
        elif isinstance(item, StartTask):
            running.add(item.token)
        elif isinstance(item, (*_OUTCOMES, AbandonTask)):
            running.discard(item.token)
        assert held >= 0, "more permits released than held"
        assert held + requested <= cap, f"held {held} + requested {requested} > cap {cap}"
    assert held == 0, f"{held} permit(s) still held at the end"
    assert requested == 0, f"{requested} permit(s) still requested at the end"
    stats = sim.semaphore.statistics()
    assert stats.held == 0, f"the semaphore still counts {stats.held} permit(s) held"
    assert stats.waiting == 0, f"the semaphore still queues {stats.waiting} request(s)"
    assert sim.scheduler.held == 0


def check_outcomes_matched(sim: Simulation) -> None:
    """Every started attempt ended exactly once: one outcome, or abandoned (never both)."""
    started = Counter[int]()
    ended = Counter[int]()
    for item in sim.trace:
        if isinstance(item, StartTask):
            started[item.token] += 1
        elif isinstance(item, (*_OUTCOMES, AbandonTask)):
            ended[item.token] += 1
    assert all(n == 1 for n in started.values()), "a token was started twice"
    assert ended == started, f"attempts not ended exactly once: {started - ended or ended}"


def check_no_start_after_fail_fast(sim: Simulation) -> None:
    """Once a failure stops the run (FailNode with fail_fast), no attempt starts."""
    stopped = False
    for item in sim.trace:
        if isinstance(item, FailNode) and item.fail_fast:
            stopped = True
        elif isinstance(item, StartTask):
            assert not stopped, f"{item.path!r} started after fail-fast"


def check_attempts(sim: Simulation) -> None:
    """Each path runs at most ``retry.max + 1`` primary attempts and its fallback at most
    once, after them; attempts are numbered 1, 2, 3... in order."""
    attempts: dict[str, list[int]] = {}
    fallbacks = Counter[str]()
    for item in sim.trace:
        if not isinstance(item, StartTask):
            continue
        if item.fallback_for is not None:
            fallbacks[item.path] += 1
            assert item.path in attempts, f"fallback of {item.path!r} ran before its primary"
            continue
        assert not fallbacks[item.path], f"{item.path!r} retried after its fallback"
        attempts.setdefault(item.path, []).append(item.attempt)
        retry = item.node.on_error.retry if item.node.on_error is not None else None
        most = (retry.max if retry is not None else 0) + 1
        assert item.attempt <= most, f"{item.path!r}: attempt {item.attempt} > {most}"
    for path, numbers in attempts.items():
        assert numbers == list(range(1, len(numbers) + 1)), f"{path!r} attempts {numbers}"
    assert all(n == 1 for n in fallbacks.values()), f"a fallback ran twice: {fallbacks}"


def check_invariants(sim: Simulation) -> None:
    """Every trace invariant that holds for any finished run."""
    check_dependencies(sim)
    check_concurrency(sim)
    check_permits(sim)
    check_outcomes_matched(sim)
    check_attempts(sim)
    check_no_start_after_fail_fast(sim)
    if sim.settings.mode == "waves":
        check_waves(sim)


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
