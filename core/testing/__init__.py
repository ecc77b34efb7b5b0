"""wavecrest.core.testing: verify workflows — simulate them, generate faults, check traces.

* :func:`simulate` runs a workflow through the real core in virtual time,
  from a seed: the same inputs give the same trace, byte for byte.
* :func:`workflows`, :func:`dags`, :func:`fault_plans` and :func:`seeds` are
  hypothesis strategies: random workflows, fault plans aimed at a workflow,
  run seeds.
* :func:`check_trace` checks a simulation, a real run's events or its log
  against the scheduler's invariants and raises :class:`InvariantViolation`
  listing every broken one.
* :func:`replay` re-drives the core from a recorded run's log and reports
  the first decision the code now makes otherwise.
* :func:`explore` is ``wavecrest test``: many seeded fault plans in
  simulation, the first that breaks the workflow shrunk to a minimal one.

Like the rest of ``wavecrest.core`` this package is pure: no threads, no
sleeping, no global randomness. Importing it imports hypothesis;
``wavecrest.core`` itself never imports it.
"""

from .._sim import Simulation, SimulationStalled
from ._explore import Exploration, Finding, explore, run_problems
from ._invariants import INVARIANTS, InvariantViolation, Violation, check_trace, find_violations
from ._replay import Divergence, ReplayError, ReplayReport, replay
from ._runlog import RunLogError
from ._simulate import simulate
from ._strategies import (
    PROBE_KEY,
    dags,
    fault_plan_mappings,
    fault_plans,
    probe_runtime,
    render_flow,
    seeds,
    workflows,
)

__all__ = [
    "INVARIANTS",
    "PROBE_KEY",
    "Divergence",
    "Exploration",
    "Finding",
    "InvariantViolation",
    "ReplayError",
    "ReplayReport",
    "RunLogError",
    "Simulation",
    "SimulationStalled",
    "Violation",
    "check_trace",
    "dags",
    "explore",
    "fault_plan_mappings",
    "fault_plans",
    "find_violations",
    "probe_runtime",
    "render_flow",
    "replay",
    "run_problems",
    "seeds",
    "simulate",
    "workflows",
]
