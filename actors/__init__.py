"""wavecrest.actors: the pykka runtime — supervisor trees that run workflows — and the CLI.

``run_workflow`` runs one workflow and returns its result; ``resume_workflow``
continues one from its snapshot; a ``Runtime`` runs many concurrently under
one cap and hands out ``RunHandle`` objects — awaitable, and streaming their
run's events, in an asyncio host (``async with Runtime() as rt``).
"""

from ._pool import PooledActor, ThreadPool
from ._runtime import RunHandle, Runtime, resume_workflow, run_workflow

__all__ = [
    "PooledActor",
    "RunHandle",
    "Runtime",
    "ThreadPool",
    "resume_workflow",
    "run_workflow",
]
