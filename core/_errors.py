"""The exception hierarchy.

Two families share the one base class :class:`WavecrestError`:

* errors about *input* (a workflow file, a config value, a snapshot, a CLI
  argument). They are raised before or instead of running anything, carry
  enough context to print ``FILE:LINE:COL: error: MESSAGE``, and make the CLI
  exit with status 2;
* errors raised *inside* a node's runtime to tell the supervisor how to treat
  the failure: :class:`TransientError` is retried under ``when="retryable"``,
  :class:`PermanentError` never is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class WavecrestError(Exception):
    """Raised for every error wavecrest itself reports."""


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One located problem in a workflow file (lines and columns count from 1)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: error: {self.message}"


class WorkflowError(WavecrestError):
    """Raised when a workflow file cannot be parsed or planned; carries every problem found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class CycleError(WavecrestError, ValueError):
    """Raised when the dependencies of a workflow form a cycle; ``cycle`` names it."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__("dependency cycle: " + " -> ".join(self.cycle))


class ExpressionError(WavecrestError):
    """Raised when a template or expression does not compile or fails to evaluate."""

    def __init__(self, message: str, *, lineno: int | None = None) -> None:
        self.lineno = lineno
        super().__init__(message)


class SandboxError(ExpressionError):
    """Raised when an expression tries to leave the sandbox or to exceed its limits."""


class ConfigError(WavecrestError):
    """Raised when run configuration or secrets are missing, unknown or ill-typed."""


class SnapshotError(WavecrestError):
    """Raised when a snapshot is missing, corrupt, foreign, of an unsupported version, or
    cannot be written where the state dir says."""


class RunNotFoundError(SnapshotError):
    """Raised when no snapshot matches a run id."""


class ResumeError(WavecrestError):
    """Raised when a run cannot be resumed as asked (changed workflow, bad decision)."""


class FaultPlanError(WavecrestError):
    """Raised when a fault plan (file or dict) is malformed."""


class RuntimeClosedError(WavecrestError, RuntimeError):
    """Raised when work is submitted to a Runtime that is closed."""


class EventsUnavailableError(WavecrestError, RuntimeError):
    """Raised when ``handle.events()`` is asked for events its run does not stream to it."""


class ExecutorError(WavecrestError):
    """Raised when the executor asked for cannot be used: unknown, not installed, or its
    scheduler unreachable."""


# --- errors raised by node runtimes ---------------------------------------------------


class NodeError(WavecrestError):
    """Base of the errors a runtime raises to classify its failure."""

    retryable: bool = False


class TransientError(NodeError):
    """Raised by a runtime for a failure that may succeed when retried."""

    retryable = True


class PermanentError(NodeError):
    """Raised by a runtime for a failure that retrying cannot fix."""

    retryable = False


class NodeTimeoutError(TransientError):
    """Raised when an attempt exceeds its timeout and is cancelled."""


class NodeCancelledError(WavecrestError):
    """Raised inside a runtime by ``ctx.sleep``/``ctx.check_cancelled`` once it is cancelled."""


class NodeCrashedError(TransientError):
    """Recorded when a node actor died without reporting a result."""


class CheckpointRejectedError(PermanentError):
    """Recorded when a checkpoint is rejected by a person or by its default."""


class InjectedFault(NodeError):
    """Raised by the fault injector; ``retryable`` follows the rule's ``raise:`` kind."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class HttpError(NodeError):
    """Raised by the HTTP runtimes for an error status; 429 and 5xx are retryable."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = status == 429 or status >= 500


class OutputEncodingError(PermanentError):
    """Raised when a node's output cannot be written to a snapshot."""


class TransferError(PermanentError):
    """Raised when an attempt's work or result cannot travel between wavecrest and a
    Dask worker: it does not pickle, or its result is over the size limit."""
