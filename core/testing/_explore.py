"""Exploration: run a workflow under many seeded fault plans and shrink the first that breaks it.

This is the pure part of ``wavecrest test``. :func:`explore` first runs the
workflow without faults (the *baseline*), then lets hypothesis draw
``runs`` cases — a fault plan aimed at the workflow
(:func:`~wavecrest.core.testing.fault_plan_mappings`), a run seed and, with
``crash``, a point at which the process dies before the run is resumed —
and simulates each. A case *breaks* the workflow when any of these fails
(:func:`run_problems`):

* the run ends: it does not stall (a hang nothing cancels) and the
  simulator raises nothing;
* every invariant holds (:func:`~wavecrest.core.testing.check_trace`);
* the outcome is consistent: ``completed`` exactly when no error was
  recorded, every failed node's errors are in the run's errors;
* **every failure comes from a fault**: a node fails for good only when the
  attempt that failed it had a fault injected. A runtime that raises by
  itself under a fault schedule (the first attempt got a fault, the second
  hit a bug that only a retry reaches) breaks the workflow, and so does a
  control node whose condition fails on what a fallback produced;
* with ``crash``: the run resumed after the crash ends without re-running
  what succeeded, and — when the workflow's outputs do not depend on the
  seed and no fallback had run — with the outputs of an undisturbed run.

The first breaking case is shrunk by hypothesis to a minimal one: fewest
rules, simplest rules, smallest seed and crash point. Everything is
deterministic: the same workflow and seed give the same report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, reporting, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .._errors import WavecrestError
from .._events import Emit, FaultInjected, StartTask, TaskCancelled, TaskFailed, TaskSucceeded
from .._graph import Plan
from .._result import RunResult
from .._sim import Simulation, SimulationStalled
from ._invariants import find_violations
from ._load import WorkflowLike, load
from ._simulate import simulate
from ._strategies import fault_plan_mappings, seeds

__all__ = ["Exploration", "Finding", "explore", "run_problems"]

#: Error types that are decisions of the workflow, not failures of its code.
_DECISIONS = frozenset({"CheckpointRejectedError", "BodyFailed"})


@dataclass(frozen=True, slots=True)
class Finding:
    """The smallest case found that breaks the workflow.

    ``faults`` is the fault plan in the fault-file form, its ``seed`` the
    run seed (so ``wavecrest run --faults`` with that file replays it);
    ``crash_after`` is the number of attempt outcomes after which the process
    died (None without ``crash``); ``problems`` says what broke, one line each.
    """

    problems: tuple[str, ...]
    faults: dict[str, Any]
    seed: int
    crash_after: int | None
    status: str


@dataclass(frozen=True, slots=True)
class Exploration:
    """What :func:`explore` did and found.

    ``runs`` counts the fault plans explored (the fault-free baseline run
    aside), ``shrinks`` the runs spent shrinking a finding; ``statuses`` and
    ``faults`` count the explored runs' final statuses and the faults
    injected into them, by kind. ``finding`` is None when nothing broke.
    """

    workflow: str
    seed: int
    runs: int
    shrinks: int
    crash: bool
    statuses: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    finding: Finding | None = None

    @property
    def ok(self) -> bool:
        """True when no case broke the workflow."""
        return self.finding is None


def _fault_kind(description: str) -> str:
    """``raise transient: disk full`` -> ``raise transient``; ``delay 2s`` -> ``delay``."""
    head = description.split(":", 1)[0]
    return "delay" if head.startswith("delay") else head


def _own_failures(sim: Simulation) -> list[str]:
    """Failed nodes whose failing attempt had no fault injected (or control nodes whose own
    evaluation failed)."""
    result = sim.result
    assert result is not None
    last: dict[str, StartTask] = {}
    for item in sim.trace:
        if isinstance(item, StartTask):
            last[item.path] = item
    problems = []
    for path, node in result.nodes.items():
        if node.status != "failed" or node.error is None:
            continue
        error = node.error
        if error.type in _DECISIONS:
            continue
        start = last.get(path)
        if start is None:
            problems.append(f"{path!r} failed by itself: {error.type}: {error.message}")
        elif start.fault is None:
            which = f"its fallback {start.node.id!r}" if start.fallback_for else "attempt"
            number = "" if start.fallback_for else f" {start.attempt}"
            problems.append(
                f"{path!r} failed with an error no fault caused: {which}{number} raised "
                f"{error.type}: {error.message}"
            )
    return problems


def _reported(result: RunResult) -> list[str]:
    problems = []
    if result.status == "completed" and result.errors:
        problems.append(f"the run completed with {len(result.errors)} error(s) recorded")
    if result.status == "failed" and not result.errors:
        problems.append(f"the run failed without reporting an error ({result.reason})")
    recorded = {(e.node, e.type, e.message) for e in result.errors}
    for path, node in result.nodes.items():
        if node.status != "failed":
            continue
        for error in node.errors:
            if error.type in _DECISIONS - {"CheckpointRejectedError"}:
                continue
            if (error.node, error.type, error.message) not in recorded:
                problems.append(f"the failure of {path!r} ({error.type}) is not in the errors")
    return problems


def run_problems(sim: Simulation) -> list[str]:
    """Why a finished simulation breaks its workflow (see the module docstring), if it does."""
    result = sim.result
    if result is None:
        return ["the simulation has not run"]
    problems = [str(v) for v in find_violations(sim)]
    if result.status == "running":  # a crash: what holds is checked after the resume
        return problems
    problems += _reported(result)
    problems += _own_failures(sim)
    return problems


@dataclass(slots=True)
class _Case:
    problems: list[str]
    status: str
    faults: Counter[str]
    crash_after: int | None = None


class _Explorer:
    def __init__(
        self,
        plan: Plan,
        *,
        max_concurrency: int | None,
        mode: str | None,
        keep_going: bool | None,
        config: Mapping[str, Any] | None,
        secrets: Mapping[str, str] | None,
    ) -> None:
        self.plan = plan
        self.options: dict[str, Any] = {
            "max_concurrency": max_concurrency,
            "mode": mode,
            "keep_going": keep_going,
            "config": config,
            "secrets": secrets,
        }
        self.expected: dict[str, Any] | None = None  # outputs, when the seed does not change them

    def simulate(self, **extra: Any) -> Simulation | str:
        try:
            return simulate(self.plan, **self.options, **extra)
        except SimulationStalled as exc:
            return f"the run never ends: {exc}"
        except WavecrestError as exc:
            return f"the simulation failed: {type(exc).__name__}: {exc}"

    def baseline(self, seed: int) -> _Case:
        first = self.simulate(seed=seed)
        if isinstance(first, str):
            return _Case([f"without faults, {first}"], "stalled", Counter())
        problems = [f"without faults: {p}" for p in run_problems(first)]
        assert first.result is not None
        if not problems and first.result.status == "completed":
            second = self.simulate(seed=seed + 1)
            if (
                not isinstance(second, str)
                and second.result is not None
                and second.result.outputs == first.result.outputs
            ):
                self.expected = first.result.outputs
        return _Case(problems, first.result.status, Counter())

    def case(self, mapping: dict[str, Any], seed: int, crash_at: int | None) -> _Case:
        sim = self.simulate(seed=seed, faults=mapping)
        if isinstance(sim, str):
            return _Case([sim], "stalled", Counter())
        result = sim.result
        assert result is not None
        injected = Counter(
            _fault_kind(item.event.fault)
            for item in sim.trace
            if isinstance(item, Emit) and isinstance(item.event, FaultInjected)
        )
        problems = run_problems(sim)
        case = _Case(problems, result.status, injected)
        if crash_at is None or problems:
            return case
        outcomes = sum(
            1 for item in sim.trace if isinstance(item, TaskSucceeded | TaskFailed | TaskCancelled)
        )
        crash_after = crash_at % (outcomes + 1)
        case.crash_after = crash_after
        crashed = self.simulate(seed=seed, faults=mapping, crash_after=crash_after)
        if isinstance(crashed, str):
            case.problems.append(crashed)
            return case
        assert crashed.result is not None
        case.problems += [f"before the crash: {p}" for p in run_problems(crashed)]
        resumed = self.simulate(seed=seed, prior=crashed)
        if isinstance(resumed, str):
            case.problems.append(f"after the crash, resumed: {resumed}")
            return case
        assert resumed.result is not None
        case.status = resumed.result.status
        case.problems += [f"after the crash, resumed: {p}" for p in run_problems(resumed)]
        fallbacks = any(r.fallback for r in crashed.result.nodes.values())
        if (
            not case.problems
            and self.expected is not None
            and not fallbacks
            and resumed.result.status == "completed"
            and resumed.result.outputs != self.expected
        ):
            differ = sorted(
                path
                for path in set(self.expected) | set(resumed.result.outputs)
                if self.expected.get(path) != resumed.result.outputs.get(path)
            )
            case.problems.append(
                "after the crash, resumed: the outputs differ from an undisturbed run's at "
                + ", ".join(repr(p) for p in differ[:5])
            )
        return case


def explore(
    workflow: WorkflowLike,
    *,
    runs: int = 100,
    seed: int = 0,
    max_concurrency: int | None = None,
    mode: str | None = None,
    crash: bool = False,
    keep_going: bool | None = None,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    max_rules: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> Exploration:
    """Explore ``runs`` seeded fault plans (and crashes, with ``crash``) of ``workflow`` in
    simulation; shrink the first case that breaks it (see the module docstring).

    ``seed`` seeds the exploration; ``max_concurrency``, ``mode``,
    ``keep_going``, ``config`` and ``secrets`` are as for
    :func:`~wavecrest.core.testing.simulate`; fault plans have up to
    ``max_rules`` rules. ``progress(done, runs)`` is called after each
    explored case (not while shrinking).
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs!r}")
    plan = load(workflow)
    name = plan.workflow.name
    explorer = _Explorer(
        plan,
        max_concurrency=max_concurrency,
        mode=mode,
        keep_going=keep_going,
        config=config,
        secrets=secrets,
    )
    statuses: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    base = explorer.baseline(seed)
    if base.problems:
        found = Finding(tuple(base.problems), {"seed": seed, "rules": []}, seed, None, base.status)
        return Exploration(name, seed, 0, 0, crash, {}, {}, found)

    explored = 0
    shrinks = 0
    broken: tuple[dict[str, Any], int, _Case] | None = None

    class _Broken(Exception):
        pass

    def check(case: tuple[dict[str, Any], int, int | None]) -> None:
        nonlocal explored, shrinks, broken
        mapping, run_seed, crash_at = case
        outcome = explorer.case(mapping, run_seed, crash_at)
        if broken is None:
            explored += 1
            statuses[outcome.status] += 1
            faults.update(outcome.faults)
            if progress is not None:
                progress(explored, runs)
        else:
            shrinks += 1
        if outcome.problems:
            broken = (mapping, run_seed, outcome)
            raise _Broken

    cases = st.tuples(
        fault_plan_mappings(plan, max_rules=max_rules),
        seeds(),
        st.integers(0, 255) if crash else st.none(),
    )
    search = settings(
        max_examples=runs,
        database=None,
        derandomize=False,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )(hypothesis_seed(seed)(given(cases)(check)))
    with reporting.with_reporter(lambda _text: None):
        try:
            search()
        except _Broken:
            pass
    finding: Finding | None = None
    if broken is not None:
        mapping, run_seed, outcome = broken
        finding = Finding(
            tuple(outcome.problems),
            {"seed": run_seed, **mapping},
            run_seed,
            outcome.crash_after,
            outcome.status,
        )
    return Exploration(name, seed, explored, shrinks, crash, dict(statuses), dict(faults), finding)
