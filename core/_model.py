"""The workflow model: frozen values built by the parser and read by the planner.

A :class:`Workflow` is its metadata plus a *body*: a tuple of nodes in
declaration order. Task nodes (:class:`TaskNode`, :class:`DelayNode`,
:class:`CheckpointNode`, :class:`BreakNode`) are leaves; control nodes own one
or more nested bodies, which :meth:`Node.bodies` lists uniformly so that code
walking the tree never has to know every node kind.

Everything here is immutable. Mappings are :class:`FrozenDict`, a dict that
refuses mutation but still pickles and compares like a dict. Equality is
about what a workflow does, not where it was written: locations, the source
text and the file path are left out of comparisons, so a workflow built in
code (:meth:`Workflow.build`) equals the same workflow parsed from a file.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn

if TYPE_CHECKING:
    from ._builder import WorkflowBuilder
    from ._events import ErrorInfo

__all__ = [
    "BranchNode",
    "BreakNode",
    "Case",
    "CheckpointNode",
    "ConfigField",
    "DelayNode",
    "ForeachNode",
    "FrozenDict",
    "IfNode",
    "Location",
    "LoopNode",
    "Node",
    "OnError",
    "ParallelBranch",
    "ParallelNode",
    "RetrySpec",
    "RuntimeSettings",
    "TaskNode",
    "WhileNode",
    "Workflow",
]


class FrozenDict(dict[str, Any]):
    """A read-only dict. Mutating methods raise TypeError; pickling keeps the type."""

    __slots__ = ()

    def _readonly(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("FrozenDict is read-only")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly
    __ior__ = _readonly

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


EMPTY = FrozenDict()


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: file, line and column, counting from 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Location("<memory>", 1, 1)

Backoff = Literal["exponential", "linear", "fixed"]
RetryWhen = Literal["retryable", "always"]


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """``<retry max backoff base cap when timeout/>``: up to ``max`` retries after attempt 1.

    Backoff uses full jitter: the delay before retry ``n`` (0 for the first) is
    drawn from ``[0, ceiling(n)]``, the ceiling being ``min(cap, base * 2**n)``
    for exponential backoff and ``min(cap, base * (n+1))`` for linear; fixed
    backoff waits exactly ``min(cap, base)``.
    """

    max: int = 3
    backoff: Backoff = "exponential"
    base: float = 0.2
    cap: float = 30.0
    when: RetryWhen = "retryable"
    timeout: float | None = None

    def ceiling(self, retry: int) -> float:
        """The longest delay before retry number ``retry`` (0 for the first)."""
        if self.backoff == "fixed":
            return min(self.cap, self.base)
        if self.backoff == "linear":
            return min(self.cap, self.base * (retry + 1))
        # Bound the exponent so huge retry counts cannot overflow a float.
        return min(self.cap, self.base * 2.0 ** min(retry, 1024))

    def delay(self, retry: int, rng: random.Random) -> float:
        """The delay before retry number ``retry``: full jitter, except exact for fixed backoff."""
        ceiling = self.ceiling(retry)
        if self.backoff == "fixed":
            return ceiling
        return rng.uniform(0.0, ceiling)

    def should_retry(self, attempt: int, error: ErrorInfo) -> bool:
        """True if a failure of attempt ``attempt`` (from 1) is retried under this policy.

        A permanent error is never retried, not even under ``when="always"``.
        """
        if attempt > self.max:
            return False
        if self.when == "always":
            return not error.permanent
        return error.retryable and not error.permanent


@dataclass(frozen=True, slots=True)
class OnError:
    """``<on-error>``: an optional retry policy and an optional fallback node id."""

    retry: RetrySpec | None = None
    fallback: str | None = None
    loc: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """Base of every node. ``inputs`` are the explicit ``input`` ids, in order."""

    id: str
    loc: Location = field(default=NOWHERE, compare=False)
    inputs: tuple[str, ...] = ()
    timeout: float | None = None
    description: str | None = None

    #: The element name this node was written as (``transform``, ``foreach``...).
    element: str = field(default="", init=False)

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        """The nested bodies as ``(label, nodes)`` pairs; empty for leaves."""
        return ()

    @property
    def is_control(self) -> bool:
        """True for nodes that own bodies (they never hold a permit)."""
        return bool(self.bodies())


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskNode(Node):
    """A ``<source>``, ``<transform>`` or ``<sink>``: runs the runtime ``kind:type``."""

    kind: Literal["source", "transform", "sink"]
    type: str
    config: FrozenDict = EMPTY
    on_error: OnError | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", self.kind)

    @property
    def runtime_key(self) -> str:
        """The registry key of this node's runtime, e.g. ``transform:map``."""
        return f"{self.kind}:{self.type}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DelayNode(Node):
    """``<delay duration>``: waits (cancellably, without a permit) and passes its input on."""

    duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "delay")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointNode(Node):
    """``<checkpoint prompt timeout default>``: a durable pause until approved or rejected.

    Without ``timeout`` the run pauses here. With it, the checkpoint waits that
    long for a decision and then ``default`` (``reject`` unless given) decides.
    ``timeout`` is the decision timeout here, not an attempt timeout.
    """

    prompt: str = ""
    default: Literal["approve", "reject"] | None = None
    on_error: OnError | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "checkpoint")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakNode(Node):
    """``<break when>`` in a loop, while or foreach body: once true, no further iteration starts."""

    when: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "break")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelBranch:
    """One ``<branch>`` of a ``<parallel>``; ``name`` keys it for ``merge="object"``."""

    name: str
    body: tuple[Node, ...]
    loc: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelNode(Node):
    """``<parallel wait merge max-concurrency>``: runs its branches concurrently.

    ``wait`` is the number of branches that must succeed (None means all).
    """

    branches: tuple[ParallelBranch, ...]
    wait: int | None = None
    merge: Literal["array", "concat", "object"] = "array"
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "parallel")

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        return tuple((branch.name, branch.body) for branch in self.branches)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeachNode(Node):
    """``<foreach collection item index concurrency>``: the body runs once per item."""

    collection: str
    body: tuple[Node, ...]
    item: str = "item"
    index: str = "index"
    concurrency: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "foreach")

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        return (("body", self.body),)


@dataclass(frozen=True, slots=True, kw_only=True)
class IfNode(Node):
    """``<if condition>`` with ``<then>`` and an optional ``<else>``."""

    condition: str
    then: tuple[Node, ...]
    orelse: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "if")

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        return (("then", self.then), ("else", self.orelse))


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """``<case when>``: one alternative of a ``<branch>``."""

    when: str
    body: tuple[Node, ...]
    loc: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class BranchNode(Node):
    """``<branch>`` outside a parallel: the first ``<case>`` whose ``when`` holds, else default."""

    cases: tuple[Case, ...]
    default: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "branch")

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        labels = tuple((f"case {i}", case.body) for i, case in enumerate(self.cases))
        return (*labels, ("default", self.default))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopNode(Node):
    """``<loop max break>``: up to ``max`` iterations, checking ``break_when`` after each."""

    max: int
    body: tuple[Node, ...]
    break_when: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "loop")

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        return (("body", self.body),)


@dataclass(frozen=True, slots=True, kw_only=True)
class WhileNode(Node):
    """``<while condition max>``: checks ``condition`` before each iteration, at most ``max``."""

    condition: str
    body: tuple[Node, ...]
    max: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "element", "while")

    def bodies(self) -> tuple[tuple[str, tuple[Node, ...]], ...]:
        return (("body", self.body),)


ConfigType = Literal["string", "number", "integer", "boolean", "list", "object", "any"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigField:
    """One typed ``config:`` entry of the front matter."""

    name: str
    type: ConfigType = "any"
    default: Any = None
    required: bool = False
    description: str | None = None
    loc: Location = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    """The front matter's ``runtime:`` table; None means "use the caller's or the default"."""

    max_concurrency: int | None = None
    timeout: float | None = None
    mode: Literal["eager", "waves"] | None = None
    grace: float | None = None
    keep_going: bool | None = None
    #: Restart intensity: more than ``max_restarts`` failures within
    #: ``restart_period`` seconds escalates to fail-fast.
    max_restarts: int | None = None
    restart_period: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A parsed workflow: metadata, typed config, secret names, runtime settings and body."""

    name: str
    body: tuple[Node, ...]
    version: str | None = None
    description: str | None = None
    config: tuple[ConfigField, ...] = ()
    secrets: tuple[str, ...] = ()
    runtime: RuntimeSettings = RuntimeSettings()
    source: str = field(default="", compare=False)
    path: str | None = field(default=None, compare=False)
    loc: Location = field(default=NOWHERE, compare=False)

    @classmethod
    def build(
        cls,
        name: str,
        *,
        version: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
        runtime: Mapping[str, Any] | None = None,
    ) -> WorkflowBuilder:
        """Declare a workflow in code: add nodes to the builder returned, then call its
        ``workflow()`` for the checked, frozen model (see :class:`~wavecrest.core.WorkflowBuilder`).

        The arguments are the front matter's keys, with the same values.
        """
        from ._builder import WorkflowBuilder, caller_location

        return WorkflowBuilder(
            name,
            version=version,
            description=description,
            config=config,
            secrets=secrets,
            runtime=runtime,
            at=caller_location(1),
        )

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the source text without its Execution Log section.

        Resume compares it to refuse a workflow that changed; recording runs in
        the Execution Log is not a change.
        """
        from ._execlog import strip_execution_log

        text = strip_execution_log(self.source)
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def iter_nodes(self) -> Iterator[tuple[Node, tuple[Node, ...]]]:
        """Every node, depth first in declaration order, with its enclosing control nodes."""
        yield from _walk(self.body, ())

    def node(self, node_id: str) -> Node:
        """The node with ``node_id`` anywhere in the workflow; KeyError if there is none."""
        for node, _ in self.iter_nodes():
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    @property
    def config_fields(self) -> Mapping[str, ConfigField]:
        """The config fields by name."""
        return {f.name: f for f in self.config}


def _walk(
    body: tuple[Node, ...], parents: tuple[Node, ...]
) -> Iterator[tuple[Node, tuple[Node, ...]]]:
    for node in body:
        yield node, parents
        for _, inner in node.bodies():
            yield from _walk(inner, (*parents, node))
