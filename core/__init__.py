"""wavecrest.core: the pure domain — workflow model, parser and builder, expressions, planner
and scheduler.

Nothing here starts a thread or sleeps; time and randomness are injected.
"""

from ._builder import Body, BranchBlock, IfBlock, ParallelBlock, Retry, WorkflowBuilder
from ._clock import Clock, FakeClock, SystemClock
from ._context import CancelSignal, NeverCancelled, RuntimeContext
from ._duration import format_duration, parse_duration
from ._errors import (
    CheckpointRejectedError,
    ConfigError,
    CycleError,
    Diagnostic,
    EventsUnavailableError,
    ExecutorError,
    ExpressionError,
    FaultPlanError,
    HttpError,
    NodeCancelledError,
    NodeCrashedError,
    NodeError,
    NodeTimeoutError,
    OutputEncodingError,
    PermanentError,
    ResumeError,
    RunNotFoundError,
    RuntimeClosedError,
    SandboxError,
    SnapshotError,
    TransferError,
    TransientError,
    WavecrestError,
    WorkflowError,
)
from ._events import (
    CheckpointWaiting,
    ErrorInfo,
    FaultInjected,
    NodeCancelled,
    NodeFailed,
    NodeResult,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunEvent,
    RunFinished,
    RunStarted,
)
from ._execute import ExecutorCrash, TaskCall, execute_task, prepare_task
from ._faults import Fault, FaultPlan, FaultRule, load_faults
from ._graph import Plan, plan
from ._model import Workflow
from ._parse import load_workflow, parse_workflow
from ._registry import RuntimeSpec, get_runtime, register_runtime, runtime_keys, unregister_runtime
from ._result import RunResult
from ._retry import RetryPolicy, error_info, is_retryable
from ._scheduler import RunSettings, Scheduler
from ._semaphore import FifoSemaphore, SemaphoreStatistics
from ._sim import Simulation, SimulationStalled
from ._supervisor import Supervisor, SupervisorPolicy

__all__ = [
    "Body",
    "BranchBlock",
    "CancelSignal",
    "CheckpointRejectedError",
    "CheckpointWaiting",
    "Clock",
    "ConfigError",
    "CycleError",
    "Diagnostic",
    "ErrorInfo",
    "EventsUnavailableError",
    "ExecutorCrash",
    "ExecutorError",
    "ExpressionError",
    "FakeClock",
    "Fault",
    "FaultInjected",
    "FaultPlan",
    "FaultPlanError",
    "FaultRule",
    "FifoSemaphore",
    "HttpError",
    "IfBlock",
    "NeverCancelled",
    "NodeCancelled",
    "NodeCancelledError",
    "NodeCrashedError",
    "NodeError",
    "NodeFailed",
    "NodeResult",
    "NodeRetrying",
    "NodeSkipped",
    "NodeStarted",
    "NodeSucceeded",
    "NodeTimeoutError",
    "OutputEncodingError",
    "ParallelBlock",
    "PermanentError",
    "Plan",
    "ResumeError",
    "Retry",
    "RetryPolicy",
    "RunEvent",
    "RunFinished",
    "RunNotFoundError",
    "RunResult",
    "RunSettings",
    "RunStarted",
    "RuntimeClosedError",
    "RuntimeContext",
    "RuntimeSpec",
    "SandboxError",
    "Scheduler",
    "SemaphoreStatistics",
    "Simulation",
    "SimulationStalled",
    "SnapshotError",
    "Supervisor",
    "SupervisorPolicy",
    "SystemClock",
    "TaskCall",
    "TransferError",
    "TransientError",
    "WavecrestError",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowError",
    "error_info",
    "execute_task",
    "format_duration",
    "get_runtime",
    "is_retryable",
    "load_faults",
    "load_workflow",
    "parse_duration",
    "parse_workflow",
    "plan",
    "prepare_task",
    "register_runtime",
    "runtime_keys",
    "unregister_runtime",
]
