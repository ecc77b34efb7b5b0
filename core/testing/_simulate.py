"""``simulate``: run a workflow through the real core, in virtual time, from a seed.

A thin front for :class:`~wavecrest.core.Simulation` that takes what a user
has at hand — a workflow path, text or value, a fault plan as a value, dict
or file, durations as a callable or a table of globs — applies the
workflow's ``runtime:`` settings the way ``run_workflow`` does, runs it once
and returns the finished simulation (``.result``, ``.trace``,
``.digest()``).
"""

from __future__ import annotations

import fnmatch
import os
import random
from collections.abc import Callable, Mapping
from typing import Any

from .._config import resolve_config, resolve_secrets
from .._duration import parse_duration
from .._events import NodeResult, StartTask
from .._faults import FaultPlan, load_faults
from .._result import RunResult
from .._scheduler import RunSettings
from .._sim import Simulation
from .._supervisor import SupervisorPolicy
from ._load import WorkflowLike, load

__all__ = ["Durations", "Prior", "simulate"]

#: How long each attempt takes in virtual seconds: a callable of the attempt, or a mapping
#: of globs (on node id or runtime key) to seconds or duration texts (``"250ms"``).
Durations = Callable[[StartTask], float] | Mapping[str, float | str]
#: The run a simulation resumes: a finished Simulation, a RunResult, or node results by path.
Prior = Simulation | RunResult | Mapping[str, NodeResult]

_DEFAULT_CONCURRENCY = 8
_DEFAULT_GRACE = 5.0


def _durations(durations: Durations | None, rng: random.Random) -> Callable[[StartTask], float]:
    def default(_start: StartTask) -> float:
        return rng.uniform(0.001, 0.01)

    if durations is None:
        return default
    if callable(durations):
        return durations
    if not isinstance(durations, Mapping):
        raise TypeError(
            f"durations must be a callable or a mapping of globs to durations, got {durations!r}"
        )
    table: list[tuple[str, float]] = []
    for pattern, value in durations.items():
        try:
            table.append((pattern, parse_duration(value)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid duration for {pattern!r}: {exc}") from None

    def duration(start: StartTask) -> float:
        node = start.node
        for pattern, seconds in table:
            if fnmatch.fnmatchcase(node.id, pattern) or fnmatch.fnmatchcase(
                node.runtime_key, pattern
            ):
                return seconds
        return default(start)

    return duration


def _prior(prior: Prior | None) -> Mapping[str, NodeResult] | None:
    if prior is None or isinstance(prior, Mapping):
        return prior
    if isinstance(prior, Simulation):
        if prior.result is None:
            raise ValueError("prior is a Simulation that has not run; pass a finished one")
        return prior.result.nodes
    if isinstance(prior, RunResult):
        return prior.nodes
    raise TypeError(
        f"prior must be a Simulation, a RunResult or node results by path, got {prior!r}"
    )


def simulate(
    workflow: WorkflowLike,
    *,
    seed: int = 0,
    max_concurrency: int | None = None,
    mode: str | None = None,
    faults: FaultPlan | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    durations: Durations | None = None,
    crash_after: int | None = None,
    prior: Prior | None = None,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    keep_going: bool | None = None,
) -> Simulation:
    """Run ``workflow`` once in virtual time and return the finished :class:`Simulation`.

    ``workflow`` is a ``.flow.md`` path, its text, a Workflow or a Plan. Task
    nodes run their real runtimes (registered ones included); ``durations``
    only says how long each attempt takes in virtual time — a callable of
    the attempt (its ``.path``, ``.attempt`` and ``.node``, whose ``.id`` and
    ``.runtime_key`` name it) or a mapping of globs, tried in order against
    the node id and then the runtime key, to seconds or duration texts;
    otherwise a seeded draw between 1 and 10 ms. ``seed`` orders simultaneous
    completions and is the run seed (retry jitter, fault probabilities).
    ``faults`` is a FaultPlan, its dict form or a fault file (its own
    ``seed`` is not used: ``seed`` is). ``crash_after`` stops the run after
    that many attempt outcomes, as a crash would; ``prior`` (a Simulation, a
    RunResult or node results by path) resumes from an earlier run.
    ``max_concurrency``, ``mode`` and ``keep_going`` default to the
    workflow's ``runtime:`` settings (8, eager, fail-fast without them), as
    do the grace period, run timeout and restart intensity.

    Same inputs, same seed: the same trace, byte for byte (``digest()``).
    """
    planned = load(workflow)
    wf = planned.workflow
    rt = wf.runtime
    settings = RunSettings(
        mode=mode or rt.mode or "eager",
        max_concurrency=max_concurrency or rt.max_concurrency or _DEFAULT_CONCURRENCY,
        grace=rt.grace if rt.grace is not None else _DEFAULT_GRACE,
        timeout=rt.timeout,
    )
    defaults = SupervisorPolicy()
    policy = SupervisorPolicy(
        keep_going=bool(keep_going if keep_going is not None else rt.keep_going),
        max_restarts=rt.max_restarts if rt.max_restarts is not None else defaults.max_restarts,
        restart_period=(
            rt.restart_period if rt.restart_period is not None else defaults.restart_period
        ),
    )
    sim = Simulation(
        planned,
        seed=seed,
        settings=settings,
        policy=policy,
        faults=load_faults(faults),
        config=resolve_config(wf, config),
        secrets=resolve_secrets(wf, secrets),
        prior=_prior(prior),
        crash_after=crash_after,
    )
    sim.duration = _durations(durations, sim.rng)
    sim.run()
    return sim
