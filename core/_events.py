"""The core's vocabulary: results, observable events, inputs and commands.

The scheduler is driven as ``commands = scheduler.handle(input)``:

* *inputs* (:class:`PermitsGranted`, :class:`TaskSucceeded`, :class:`TimerFired`,
  supervisor decisions...) are what the outside world reports;
* *commands* (:class:`StartTask`, :class:`RequestPermits`, :class:`StartTimer`,
  :class:`Escalate`, :class:`Emit`...) are what it asks the outside world to do.

Attempts are identified by a *token*, unique within a run, so a late report
from a superseded attempt (one abandoned after its timeout, say) can never be
mistaken for the current one.

*Events* (subclasses of :class:`RunEvent`) are the observable history of a
run: they go to ``on_event`` callbacks, in order within a run. All of these
are frozen values.

A persisted run also keeps a *journal*: the same history for the snapshot
writer and the run log, flat. Every node start and success, by far the most
of any run, is a marker followed by its fields, with nothing built for it:

* ``STARTED, path, attempt, at, fallback, queued, running`` (``fallback``: the
  fallback node's id when the attempt is one, else None; ``queued``: the
  seconds it waited for a permit; ``running``: see :class:`NodeStarted`);
* ``SUCCEEDED, path, attempt, at, result, encoded, reused`` (``encoded``: the
  output's snapshot encoding when the attempt made it, else None);

and any other event is there as itself. The flat form matters: a journal
waits for the writer for some milliseconds, and objects that wait are what
make Python's garbage collector run its full collections more often.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, NamedTuple

from ._model import RetrySpec, TaskNode

__all__ = [
    "JOURNAL_STARTED",
    "JOURNAL_SUCCEEDED",
    "AbandonTask",
    "CancelRun",
    "CancelTask",
    "CancelTimer",
    "CheckpointDecided",
    "CheckpointWaiting",
    "Command",
    "Emit",
    "ErrorInfo",
    "Escalate",
    "FailNode",
    "FaultInjected",
    "NodeCancelled",
    "NodeFailed",
    "NodeResult",
    "NodeRetrying",
    "NodeSkipped",
    "NodeStarted",
    "NodeSucceeded",
    "PermitsGranted",
    "ReleasePermits",
    "RequestPermits",
    "RetryNode",
    "RunEvent",
    "RunFallback",
    "RunFinished",
    "RunStarted",
    "StartTask",
    "StartTimer",
    "TaskCancelled",
    "TaskFailed",
    "TaskSucceeded",
    "TimerFired",
    "WithdrawPermits",
    "journal_events",
]

Status = Literal["pending", "running", "waiting", "succeeded", "failed", "cancelled", "skipped"]
RunStatus = Literal["running", "completed", "failed", "cancelled", "paused"]


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure as recorded: exception type name, message and traceback text.

    ``retryable`` and ``permanent`` are the classification made where the
    exception was caught (a permanent error is never retried, not even under
    ``when="always"``); ``node`` is the path of the node once recorded.
    """

    type: str
    message: str
    traceback: str = ""
    retryable: bool = False
    permanent: bool = False
    #: Seconds the failing service asked to wait (HTTP ``Retry-After``), if any.
    retry_after: float | None = None
    node: str | None = None
    attempt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The public shape: ``{"node", "type", "message", "traceback"}``."""
        return {
            "node": self.node,
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
        }

    def __str__(self) -> str:
        where = f"{self.node}: " if self.node else ""
        return f"{where}{self.type}: {self.message}"


@dataclass(frozen=True, slots=True)
class NodeResult:
    """What happened to one node execution (one path; iterations have their own).

    When a fallback ran, ``fallback`` names it; ``error`` is then the
    primary's error if the fallback succeeded, or the fallback's own error
    with ``primary_error`` the primary's if it failed too.
    """

    node: str
    status: Status
    output: Any = None
    error: ErrorInfo | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration: float | None = None
    fallback: str | None = None
    primary_error: ErrorInfo | None = None
    abandoned: bool = False
    reason: str | None = None

    @property
    def errors(self) -> tuple[ErrorInfo, ...]:
        """Every error recorded for this node, the primary's first."""
        return tuple(e for e in (self.primary_error, self.error) if e is not None)


# --- observable events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEvent:
    """Base of the observable events. ``at`` is wall-clock time (seconds since the epoch)."""

    name: ClassVar[str] = "run.event"
    run_id: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(RunEvent):
    """The run began (or resumed)."""

    name: ClassVar[str] = "run.started"
    workflow: str
    seed: int
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStarted(RunEvent):
    """An attempt of a task node started (``fallback`` names the fallback node when it is one).

    ``queued`` is how long the attempt waited for its concurrency permit: the
    seconds from when it became ready (its dependencies done, its retry delay
    over, or its primary failed for a fallback) to ``at``.
    ``running`` is the number of the run's attempts in flight once this one
    started, which is the number of permits the run holds: a trace checker
    reads the run's permit accounting from it (None when not known).
    """

    name: ClassVar[str] = "node.started"
    path: str
    node: str
    attempt: int
    fallback: str | None = None
    queued: float = 0.0
    running: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRetrying(RunEvent):
    """An attempt failed and another follows after ``delay`` seconds (or a fallback runs)."""

    name: ClassVar[str] = "node.retrying"
    path: str
    node: str
    attempt: int
    delay: float
    error: ErrorInfo
    fallback: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSucceeded(RunEvent):
    """A node finished with an output (``reused`` when taken from a resumed snapshot)."""

    name: ClassVar[str] = "node.succeeded"
    path: str
    node: str
    attempt: int
    result: NodeResult
    reused: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFailed(RunEvent):
    """A node failed for good: retries and fallback, if any, are spent.

    ``fail_fast`` is True when this failure stops the run (nothing starts after it).
    """

    name: ClassVar[str] = "node.failed"
    path: str
    node: str
    attempt: int
    error: ErrorInfo
    result: NodeResult
    fail_fast: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCancelled(RunEvent):
    """A node stopped because the run or its parallel/foreach no longer needed it."""

    name: ClassVar[str] = "node.cancelled"
    path: str
    node: str
    attempt: int
    result: NodeResult


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSkipped(RunEvent):
    """A node will not run: an untaken branch, or downstream of a failure."""

    name: ClassVar[str] = "node.skipped"
    path: str
    node: str
    result: NodeResult


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointWaiting(RunEvent):
    """A checkpoint waits for a decision; ``deadline`` (wall clock) when it has a timeout."""

    name: ClassVar[str] = "checkpoint.waiting"
    path: str
    node: str
    prompt: str
    deadline: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultInjected(RunEvent):
    """The fault plan injected ``fault`` into an attempt."""

    name: ClassVar[str] = "fault.injected"
    path: str
    node: str
    attempt: int
    fault: str
    rule: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(RunEvent):
    """The run ended; ``reason`` says why it was cancelled, paused or failed early."""

    name: ClassVar[str] = "run.finished"
    status: RunStatus
    reason: str | None = None
    errors: tuple[ErrorInfo, ...] = ()
    abandoned: int = 0


# Inputs and commands cross the hot path once or twice per node, so they are
# NamedTuples (built by C code, several times faster than frozen dataclasses).
# They compare by type as well as by fields, as dataclasses do: ReleasePermits(1)
# is not RequestPermits(1).


def _typed_eq(self: tuple[Any, ...], other: object) -> bool:
    return type(self) is type(other) and tuple.__eq__(self, other)


# --- inputs -----------------------------------------------------------------------------


class PermitsGranted(NamedTuple):
    """The semaphore granted ``count`` permits to this run."""

    count: int  # type: ignore[assignment]  # shadows tuple.count


class TaskSucceeded(NamedTuple):
    """The attempt ``token`` returned ``output``; ``encoded`` is its snapshot encoding, if made."""

    token: int
    output: Any
    encoded: bytes | None = None


class TaskFailed(NamedTuple):
    """The attempt ``token`` raised (or its executor died: ``error.type == 'NodeCrashedError'``)."""

    token: int
    error: ErrorInfo


class TaskCancelled(NamedTuple):
    """The attempt ``token`` stopped because it saw its cancellation."""

    token: int


class TimerFired(NamedTuple):
    """The timer ``timer`` started by :class:`StartTimer` is due."""

    timer: int


@dataclass(frozen=True, slots=True)
class CancelRun:
    """Stop the run: ``reason`` is ``cancelled``, ``timeout`` or ``interrupted``."""

    reason: str = "cancelled"
    message: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointDecided:
    """A person (or program) approved or rejected the checkpoint at ``path``."""

    path: str
    approve: bool


# Supervisor decisions, answering an Escalate.


@dataclass(frozen=True, slots=True)
class RetryNode:
    """Run the node at ``path`` again after ``delay`` seconds."""

    path: str
    delay: float


@dataclass(frozen=True, slots=True)
class RunFallback:
    """Run the node's fallback in its place."""

    path: str


@dataclass(frozen=True, slots=True)
class FailNode:
    """The node at ``path`` has failed for good; ``fail_fast`` stops the whole run."""

    path: str
    fail_fast: bool
    reason: str | None = None


# --- commands ---------------------------------------------------------------------------


class RequestPermits(NamedTuple):
    """Ask the semaphore for ``count`` more permits (answered by PermitsGranted)."""

    count: int  # type: ignore[assignment]  # shadows tuple.count


class ReleasePermits(NamedTuple):
    """Give ``count`` held permits back."""

    count: int  # type: ignore[assignment]  # shadows tuple.count


class WithdrawPermits(NamedTuple):
    """Drop up to ``count`` requests still queued at the semaphore (no longer needed)."""

    count: int  # type: ignore[assignment]  # shadows tuple.count


class StartTask(NamedTuple):
    """Execute one attempt of a task node.

    ``node`` is the node to run (the fallback's node for a fallback); ``scope``
    is the template scope, None when the node has no templates.
    """

    token: int
    path: str
    attempt: int
    node: TaskNode
    input: Any
    scope: dict[str, Any] | None = None
    fault: Any = None
    fallback_for: str | None = None


class CancelTask(NamedTuple):
    """Ask attempt ``token`` to stop (cooperatively: set its cancellation token)."""

    token: int
    reason: str


class AbandonTask(NamedTuple):
    """Stop waiting for attempt ``token``: it ignored cancellation past its grace period."""

    token: int


class StartTimer(NamedTuple):
    """Deliver ``TimerFired(timer)`` after ``delay`` seconds."""

    timer: int
    delay: float


class CancelTimer(NamedTuple):
    """The timer ``timer`` is no longer needed (firing it anyway is harmless)."""

    timer: int


@dataclass(frozen=True, slots=True)
class Escalate:
    """An attempt failed: the supervisor must answer with RetryNode, RunFallback or FailNode."""

    path: str
    node: str
    attempt: int
    error: ErrorInfo
    is_fallback: bool = False
    retry: RetrySpec | None = None
    has_fallback: bool = False


class Emit(NamedTuple):
    """Publish an observable event."""

    event: RunEvent


#: The NamedTuple messages: compared by type and fields (see _typed_eq).
_MESSAGES: tuple[type[tuple[Any, ...]], ...] = (
    PermitsGranted,
    TaskSucceeded,
    TaskFailed,
    TaskCancelled,
    TimerFired,
    RequestPermits,
    ReleasePermits,
    WithdrawPermits,
    StartTask,
    CancelTask,
    AbandonTask,
    StartTimer,
    CancelTimer,
    Emit,
)


def _typed_ne(self: tuple[Any, ...], other: object) -> bool:
    return not _typed_eq(self, other)


for _message in _MESSAGES:
    # A plain tuple's __eq__ would make ReleasePermits(1) == RequestPermits(1).
    setattr(_message, "__eq__", _typed_eq)  # noqa: B010 - assigned after the class bodies
    setattr(_message, "__ne__", _typed_ne)  # noqa: B010
    setattr(_message, "__hash__", tuple.__hash__)  # noqa: B010
del _message


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: A node start in a journal (see the module docstring).
JOURNAL_STARTED: Final = _Marker("JOURNAL_STARTED")
#: A node success in a journal (see the module docstring).
JOURNAL_SUCCEEDED: Final = _Marker("JOURNAL_SUCCEEDED")


def journal_events(journal: Sequence[Any], run_id: str) -> Iterator[RunEvent]:
    """The events ``journal`` records, as the scheduler emits them to observers."""
    i, n = 0, len(journal)
    while i < n:
        item = journal[i]
        if item is JOURNAL_STARTED:
            path, attempt, at, fallback, queued, running = journal[i + 1 : i + 7]
            yield NodeStarted(
                run_id=run_id,
                at=at,
                path=path,
                node=_node_of(path),
                attempt=attempt,
                fallback=fallback,
                queued=queued,
                running=running,
            )
            i += 7
        elif item is JOURNAL_SUCCEEDED:
            path, attempt, at, result, _encoded, reused = journal[i + 1 : i + 7]
            yield NodeSucceeded(
                run_id=run_id,
                at=at,
                path=path,
                node=_node_of(path),
                attempt=attempt,
                result=result,
                reused=reused,
            )
            i += 7
        else:
            yield item
            i += 1


def _node_of(path: str) -> str:
    # A path is its frame's prefix, which ends in "/" unless empty, and the node id.
    return path.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class Finished:
    """The run is over; nothing more will be asked. The scheduler's ``result()`` has it all."""

    status: RunStatus
    reason: str | None = None
    errors: tuple[ErrorInfo, ...] = field(default=())


Command = (
    RequestPermits
    | ReleasePermits
    | WithdrawPermits
    | StartTask
    | CancelTask
    | AbandonTask
    | StartTimer
    | CancelTimer
    | Escalate
    | Emit
    | Finished
)
