"""The reference model: what a generated workflow must do, from the documented semantics.

:func:`expected_run` interprets a workflow drawn by
:func:`~wavecrest.core.testing.workflows` directly — a sequential, recursive
interpreter that shares nothing with the scheduler but the expression engine
and :meth:`FaultPlan.draw` (which fault an attempt gets) — and says which
paths succeed with which output, which fail, which are skipped, and how many
attempts each task path makes, under keep-going. The scheduler must agree
with it however completions interleave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._expr import compile_expression, compile_template
from .._faults import FaultPlan
from .._model import (
    BranchNode,
    BreakNode,
    CheckpointNode,
    DelayNode,
    ForeachNode,
    IfNode,
    LoopNode,
    Node,
    ParallelNode,
    TaskNode,
    WhileNode,
    Workflow,
)
from ._strategies import probe_output

__all__ = ["Expected", "expected_run"]


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
