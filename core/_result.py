"""The outcome of a run, as every driver returns it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._events import ErrorInfo, NodeResult, RunStatus

__all__ = ["RunResult"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run ended with.

    ``outputs`` maps the path of every node that produced an output to it
    (top-level and static nodes by id, iterations as ``each[2]/fetch``);
    ``nodes`` has every recorded :class:`NodeResult`; ``errors`` every
    failure (node, type, message, traceback), not only the first.
    ``callback_errors`` counts the calls of event callbacks (the run's
    ``on_event``, a Runtime's subscribers) that raised for this run's events;
    they never change anything else about the run.
    """

    run_id: str
    workflow: str
    status: RunStatus
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: tuple[ErrorInfo, ...] = ()
    nodes: dict[str, NodeResult] = field(default_factory=dict)
    seed: int = 0
    reason: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    snapshot_path: str | None = None
    abandoned: int = 0
    version: str | None = None
    callback_errors: int = 0

    @classmethod
    def from_nodes(cls, nodes: Mapping[str, NodeResult], **fields: Any) -> RunResult:
        """A result holding ``nodes``, with ``outputs`` taken from those that succeeded."""
        return cls(
            nodes=dict(nodes),
            outputs={path: r.output for path, r in nodes.items() if r.status == "succeeded"},
            **fields,
        )

    @property
    def ok(self) -> bool:
        """True when the run completed."""
        return self.status == "completed"

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        """The fixed ``run --json`` object."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "snapshot": self.snapshot_path,
            "outputs": self.outputs,
            "errors": [e.to_dict() for e in self.errors],
        }
