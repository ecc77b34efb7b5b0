"""wavecrest.actors: the pykka runtime — supervisor trees that run workflows — and the CLI.

``run_workflow`` runs one workflow and returns its result; ``resume_workflow``
continues one from its snapshot; a ``Runtime`` runs many concurrently under
one cap and hands out ``RunHandle`` objects — awaitable, and streaming their
run's events, in an asyncio host (``async with Runtime() as rt``).
``write_report`` writes a run's HTML report (graph, timeline, errors) from
its snapshot and log.
"""

from ._pool import PooledActor, ThreadPool
from ._report import ReportError, write_report
from ._runtime import RunHandle, Runtime, resume_workflow, run_workflow

__all__ = [
    "PooledActor",
    "ReportError",
    "RunHandle",
    "Runtime",
    "ThreadPool",
    "resume_workflow",
    "run_workflow",
    "write_report",
]
