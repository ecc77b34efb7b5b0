"""Properties of the scheduler core over random workflows, concurrency limits, modes and seeds.

Random workflows come from the public toolkit's strategies
(``wavecrest.core.testing``): DAGs of probe task nodes, with and without
nested control flow. Each is run in the deterministic :class:`Simulation`;
the seed changes the order in which attempts complete. The outcome is
compared with the reference model (``expected_run``) and the trace is checked
against the run invariants (``check_trace``): the scheduler must agree with a
sequential interpreter however completions interleave, whatever the
concurrency limit (1 included) and in both modes.

A state machine drives the bare :class:`Scheduler` as an adversarial
environment: permits are granted late and partially, attempts complete in any
order, some fail and are retried, the run may be cancelled at any point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from profiles import examples
from wavecrest.core import (
    FakeClock,
    FaultPlan,
    NeverCancelled,
    NodeSucceeded,
    RunResult,
    RunSettings,
    Scheduler,
    Simulation,
    Supervisor,
    SupervisorPolicy,
    TransientError,
    Workflow,
    error_info,
    execute_task,
    parse_workflow,
    plan,
)
from wavecrest.core._events import (
    AbandonTask,
    CancelRun,
    CancelTask,
    CancelTimer,
    CheckpointDecided,
    CheckpointWaiting,
    Emit,
    Escalate,
    Finished,
    PermitsGranted,
    ReleasePermits,
    RequestPermits,
    StartTask,
    StartTimer,
    TaskCancelled,
    TaskFailed,
    TimerFired,
    WithdrawPermits,
    journal_events,
)
from wavecrest.core.testing import (
    check_trace,
    dags,
    fault_plans,
    probe_runtime,
    render_flow,
    seeds,
    workflows,
)
from wavecrest.core.testing._reference import Expected, expected_run

EXAMPLES = 100


@pytest.fixture(autouse=True, scope="module")
def _probe() -> Iterator[None]:
    with probe_runtime():
        yield


#: Flat DAGs of tasks, and workflows with nested control flow, delays and checkpoints.
any_workflow = st.one_of(dags(max_nodes=10), workflows(max_nodes=10, checkpoints=True))
caps = st.integers(1, 4)
modes = st.sampled_from(["eager", "waves"])
run_seeds = seeds()


def simulate(
    workflow: Workflow,
    *,
    cap: int = 4,
    mode: str = "eager",
    seed: int = 0,
    **options: Any,
) -> tuple[Simulation, RunResult]:
    sim = Simulation(
        workflow, seed=seed, settings=RunSettings(max_concurrency=cap, mode=mode), **options
    )
    return sim, sim.run()


def assert_matches(result: RunResult, expected: Expected, *, attempts: bool = True) -> None:
    """Every path the model records has the model's status and output; any other recorded
    path is an optional one (after a foreach's break) with the model's output if it ran."""
    for path, status in expected.status.items():
        got = result.nodes.get(path)
        assert got is not None, f"{path!r} has no result; expected {status}"
        assert got.status == status, f"{path!r} is {got.status} ({got.reason}); expected {status}"
        if status == "succeeded":
            assert result.outputs[path] == expected.outputs[path], path
        if path in expected.not_taken:
            assert got.reason == "not taken", path
    for path, got in result.nodes.items():
        if path not in expected.status:
            assert path in expected.optional, f"unexpected result for {path!r}: {got.status}"
            if got.status == "succeeded":
                assert result.outputs[path] == expected.optional[path], path
    if attempts:
        for path, count in expected.attempts.items():
            assert result.nodes[path].attempts == count, path
            assert (result.nodes[path].fallback is not None) == (path in expected.fallbacks)


def starts_per_path(sim: Simulation) -> Counter[str]:
    return Counter(c.path for c in sim.trace if isinstance(c, StartTask))


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(
    workflow=workflows(
        checkpoints=True, retries=True, fallbacks=True, timeouts=True, partial_waits=True
    )
)
def test_generated_workflows_are_valid_flow_files_with_the_same_plan(workflow: Workflow) -> None:
    """The strategies only make workflows the parser accepts: rendered as ``.flow.md``
    they parse back to the same dependencies and waves."""
    text = render_flow(workflow)
    note(text)
    again = parse_workflow(text)
    assert plan(again).dependencies == plan(workflow).dependencies
    assert plan(again).waves == plan(workflow).waves
    assert [n.id for n, _ in again.iter_nodes()] == [n.id for n, _ in workflow.iter_nodes()]


# --- runs without faults ----------------------------------------------------------------


@settings(max_examples=examples(EXAMPLES * 2), deadline=None)
@given(workflow=any_workflow, cap=caps, mode=modes, seed=run_seeds, cooperative=st.booleans())
def test_a_run_agrees_with_the_reference_model_and_keeps_every_invariant(
    workflow: Workflow, cap: int, mode: str, seed: int, cooperative: bool
) -> None:
    """Outputs, statuses and skipped bodies are the model's; dependencies, concurrency,
    permits, attempts (and the waves barrier) hold over the whole trace. Attempts that a
    break made superfluous are cancelled, or abandoned if they ignore it."""
    note(render_flow(workflow))
    sim, result = simulate(
        workflow, cap=cap, mode=mode, seed=seed, cooperative=lambda _start: cooperative
    )
    assert result.status == "completed", result.reason
    assert result.errors == ()
    assert_matches(result, expected_run(workflow))
    check_trace(sim)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(workflow=any_workflow, cap=caps, mode=modes, seed=run_seeds)
def test_each_task_of_a_successful_run_runs_exactly_once_per_path(
    workflow: Workflow, cap: int, mode: str, seed: int
) -> None:
    note(render_flow(workflow))
    sim, result = simulate(workflow, cap=cap, mode=mode, seed=seed)
    assert result.status == "completed"
    starts = starts_per_path(sim)
    assert all(n == 1 for n in starts.values()), starts
    succeeded = Counter(e.path for e in sim.events if isinstance(e, NodeSucceeded))
    assert all(n == 1 for n in succeeded.values()), succeeded
    assert set(starts) <= set(succeeded)
    assert all(result.nodes[path].attempts == 1 for path in starts)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(workflow=any_workflow, cap=caps, mode=modes)
def test_running_attempts_never_exceed_max_concurrency(
    workflow: Workflow, cap: int, mode: str
) -> None:
    note(render_flow(workflow))
    sim, _ = simulate(workflow, cap=cap, mode=mode, duration=lambda _start: 1.0)
    check_trace(sim)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(
    workflow=st.booleans().flatmap(
        lambda control: workflows(max_nodes=10, control=control, concurrent_breaks=False)
    ),
    cap=caps,
    seeds=st.lists(run_seeds, min_size=2, max_size=3, unique=True),
)
def test_outputs_do_not_depend_on_completion_order_or_mode(
    workflow: Workflow, cap: int, seeds: list[int]
) -> None:
    """Different seeds (completion orders) and both modes give the same outputs."""
    note(render_flow(workflow))
    outputs = []
    for seed in seeds:
        for mode in ("eager", "waves"):
            _, result = simulate(workflow, cap=cap, mode=mode, seed=seed)
            assert result.status == "completed"
            outputs.append(result.outputs)
    assert all(o == outputs[0] for o in outputs)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(workflow=any_workflow, cap=caps, seed=run_seeds)
def test_waves_mode_starts_no_wave_before_the_previous_one_of_its_frame_ended(
    workflow: Workflow, cap: int, seed: int
) -> None:
    note(render_flow(workflow))
    sim, result = simulate(workflow, cap=cap, mode="waves", seed=seed)
    assert result.status == "completed"
    check_trace(sim)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(workflow=any_workflow, cap=caps, mode=modes, seed=run_seeds)
def test_the_same_seed_gives_the_same_trace(
    workflow: Workflow, cap: int, mode: str, seed: int
) -> None:
    note(render_flow(workflow))
    first, _ = simulate(workflow, cap=cap, mode=mode, seed=seed)
    second, _ = simulate(workflow, cap=cap, mode=mode, seed=seed)
    assert first.trace == second.trace
    assert first.events == second.events


# --- runs with injected faults ------------------------------------------------------------


def plans_for(workflow: Workflow) -> st.SearchStrategy[FaultPlan]:
    """Fault plans aimed at the task nodes of ``workflow`` (hangs only where a timeout is):
    a schedule of faults on their attempts and up to four broad rules."""
    return fault_plans(workflow, max_rules=4)


@st.composite
def faulty(draw: Any, *, control: bool | None = None) -> tuple[Workflow, FaultPlan]:
    """A workflow whose task nodes have random retries, timeouts and fallbacks, with a
    random fault plan aimed at them."""
    if control is None:
        control = draw(st.booleans())
    workflow = draw(
        workflows(
            max_nodes=8,
            control=control,
            delays=control,
            retries=True,
            fallbacks=True,
            timeouts=True,
            concurrent_breaks=False,
        )
    )
    return workflow, draw(plans_for(workflow))


def simulate_faulty(
    case: tuple[Workflow, FaultPlan],
    *,
    cap: int,
    mode: str,
    seed: int,
    cooperative: bool,
    keep_going: bool,
) -> tuple[Simulation, RunResult, Expected]:
    workflow, faults = case
    note(repr(faults))
    sim, result = simulate(
        workflow,
        cap=cap,
        mode=mode,
        seed=seed,
        faults=faults,
        policy=SupervisorPolicy(keep_going=keep_going, max_restarts=None),
        cooperative=lambda _start: cooperative,
    )
    return sim, result, expected_run(workflow, faults=faults, seed=seed)


@settings(max_examples=examples(EXAMPLES * 2), deadline=None)
@given(case=faulty(), cap=caps, mode=modes, seed=run_seeds, cooperative=st.booleans())
def test_under_keep_going_faults_fail_exactly_the_nodes_the_model_says(
    case: tuple[Workflow, FaultPlan], cap: int, mode: str, seed: int, cooperative: bool
) -> None:
    """A node fails iff its retries (and fallback) cannot outlast its injected faults;
    downstream of a failure is skipped, everything else runs with the model's output and
    number of attempts."""
    note(render_flow(case[0]))
    sim, result, expected = simulate_faulty(
        case, cap=cap, mode=mode, seed=seed, cooperative=cooperative, keep_going=True
    )
    assert result.status == ("completed" if expected.completed else "failed"), result.reason
    assert_matches(result, expected)
    failed_tasks = {e.node for e in result.errors}
    assert failed_tasks <= expected.failed
    check_trace(sim)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(
    case=faulty(),
    cap=caps,
    mode=modes,
    seed=run_seeds,
    keep_going=st.booleans(),
    crash_after=st.integers(0, 12),
)
def test_the_journal_records_exactly_the_events(
    case: tuple[Workflow, FaultPlan],
    cap: int,
    mode: str,
    seed: int,
    keep_going: bool,
    crash_after: int,
) -> None:
    """A persisted run's log and snapshot are written from the journal, observers get
    the events: both must tell the same history, in the same order, in a run that
    stops part-way and in its resumption (where earlier results are reused)."""
    workflow, faults = case
    note(render_flow(workflow))
    settings_ = RunSettings(max_concurrency=cap, mode=mode)
    policy = SupervisorPolicy(keep_going=keep_going, max_restarts=None)
    first = Simulation(
        workflow,
        seed=seed,
        settings=settings_,
        faults=faults,
        policy=policy,
        crash_after=crash_after,
        journal=True,
    )
    stopped = first.run()
    second = Simulation(
        workflow, seed=seed, settings=settings_, policy=policy, prior=stopped.nodes, journal=True
    )
    second.run()
    for sim in (first, second):
        assert list(journal_events(sim.journal, "sim")) == sim.events
    if any(r.status == "succeeded" for r in stopped.nodes.values()):
        assert any(getattr(e, "reused", False) for e in second.events)


@settings(max_examples=examples(EXAMPLES * 2), deadline=None)
@given(case=faulty(), cap=caps, mode=modes, seed=run_seeds, cooperative=st.booleans())
def test_under_fail_fast_faults_stop_the_run_and_nothing_starts_after(
    case: tuple[Workflow, FaultPlan], cap: int, mode: str, seed: int, cooperative: bool
) -> None:
    """The run fails iff the model has a failure; what succeeded has the model's output,
    what failed is a failure of the model; no attempt starts after the fail-fast decision
    and no permit is left held."""
    note(render_flow(case[0]))
    sim, result, expected = simulate_faulty(
        case, cap=cap, mode=mode, seed=seed, cooperative=cooperative, keep_going=False
    )
    assert result.status == ("completed" if expected.completed else "failed"), result.reason
    for path, got in result.nodes.items():
        if got.status == "succeeded":
            want = expected.outputs[path] if path in expected.outputs else expected.optional[path]
            assert result.outputs[path] == want, path
        elif got.status == "failed":
            assert expected.status.get(path) == "failed", path
    if expected.completed:
        assert_matches(result, expected)
    else:
        assert result.errors
        assert {e.node for e in result.errors} <= expected.failed
    check_trace(sim)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(
    workflow=workflows(
        max_nodes=10, retries=True, fallbacks=True, timeouts=True, partial_waits=True
    ).flatmap(lambda workflow: st.tuples(st.just(workflow), plans_for(workflow))),
    cap=caps,
    mode=modes,
    seed=run_seeds,
    cooperative=st.booleans(),
    keep_going=st.booleans(),
)
def test_any_run_ends_and_keeps_every_invariant(
    workflow: tuple[Workflow, FaultPlan],
    cap: int,
    mode: str,
    seed: int,
    cooperative: bool,
    keep_going: bool,
) -> None:
    """Also where no model says what the outcome is (parallels waiting for any or n(K)
    branches, breaks in concurrent foreach bodies, faults everywhere, attempts ignoring
    cancellation), a run ends, completed exactly when nothing failed, and the trace keeps
    every invariant."""
    note(render_flow(workflow[0]))
    note(repr(workflow[1]))
    sim, result = simulate(
        workflow[0],
        cap=cap,
        mode=mode,
        seed=seed,
        faults=workflow[1],
        policy=SupervisorPolicy(keep_going=keep_going, max_restarts=None),
        cooperative=lambda _start: cooperative,
    )
    assert result.status == ("failed" if result.errors else "completed"), result.reason
    check_trace(sim)


# --- resume -----------------------------------------------------------------------------


#: A break taken before a crash inside a branch whose body never runs again (the branch
#: succeeded before the crash): the resumed loop must still stop after iteration 0.
BREAK_IN_A_FINISHED_BRANCH = """---
name: break-in-branch
---
<workflow>
  <loop id="t-0" max="2">
    <branch id="t-1">
      <case when="true"><break id="t-2" when="iteration >= 0"/></case>
      <case when="true"><transform id="t-3" type="wc-probe"/></case>
    </branch>
    <transform id="t-4" type="wc-probe"/>
  </loop>
</workflow>
"""

with probe_runtime():
    _break_in_a_finished_branch = parse_workflow(BREAK_IN_A_FINISHED_BRANCH, "break.flow.md")


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(
    workflow=st.booleans().flatmap(
        lambda control: workflows(max_nodes=10, control=control, concurrent_breaks=False)
    ),
    cap=caps,
    mode=modes,
    seed=run_seeds,
    crash_at=st.integers(0, 64),
    resume_seed=run_seeds,
)
@example(
    workflow=_break_in_a_finished_branch,
    cap=1,
    mode="eager",
    seed=0,
    crash_at=0,
    resume_seed=0,
)
def test_resuming_after_a_crash_at_any_point_gives_the_uninterrupted_outputs(
    workflow: Workflow, cap: int, mode: str, seed: int, crash_at: int, resume_seed: int
) -> None:
    """No path that succeeded before the crash starts again, and the outputs equal an
    uninterrupted run's. The crash comes after ``crash_at`` task outcomes, modulo the
    uninterrupted run's count plus one, so that every point can be drawn."""
    note(render_flow(workflow))
    whole, uninterrupted = simulate(workflow, cap=cap, mode=mode, seed=seed)
    outcomes = sum(1 for c in whole.trace if type(c).__name__ == "TaskSucceeded")
    crash_after = crash_at % (outcomes + 1)
    note(f"crash after {crash_after} of {outcomes} outcomes")
    _, crashed = simulate(workflow, cap=cap, mode=mode, seed=seed, crash_after=crash_after)
    done = {path for path, r in crashed.nodes.items() if r.status == "succeeded"}
    resumed_sim, resumed = simulate(
        workflow, cap=cap, mode=mode, seed=resume_seed, prior=crashed.nodes
    )
    assert resumed.status == "completed"
    again = done & set(starts_per_path(resumed_sim))
    assert not again, f"started again after resume: {sorted(again)}"
    assert resumed.outputs == uninterrupted.outputs
    check_trace(resumed_sim)


@settings(max_examples=examples(EXAMPLES), deadline=None)
@given(
    case=st.booleans()
    .flatmap(
        lambda control: workflows(
            max_nodes=8,
            control=control,
            delays=control,
            retries=True,
            timeouts=True,
            concurrent_breaks=False,
        )
    )
    .flatmap(lambda workflow: st.tuples(st.just(workflow), plans_for(workflow))),
    interruption=st.sampled_from(["fail-fast", "keep-going", "timeout", "crash"]),
    cap=caps,
    mode=modes,
    seed=run_seeds,
    data=st.data(),
)
def test_resuming_a_failed_cancelled_or_crashed_run_completes_it_like_an_uninterrupted_one(
    case: tuple[Workflow, FaultPlan],
    interruption: str,
    cap: int,
    mode: str,
    seed: int,
    data: st.DataObject,
) -> None:
    """A run that failed (fail-fast or keep-going) under injected faults, hit its run
    timeout, or crashed while retrying, resumed without the faults: nothing that
    succeeded starts again and the outputs are those of a run that was never disturbed."""
    note(render_flow(case[0]))
    workflow, faults = case
    note(repr(faults))
    _, undisturbed = simulate(workflow, cap=cap, mode=mode, seed=seed)
    first = Simulation(
        workflow,
        seed=seed,
        faults=faults,
        settings=RunSettings(
            max_concurrency=cap,
            mode=mode,
            timeout=data.draw(st.floats(0.001, 0.1), label="timeout")
            if interruption == "timeout"
            else None,
        ),
        policy=SupervisorPolicy(keep_going=interruption == "keep-going", max_restarts=None),
        crash_after=data.draw(st.integers(0, 8), label="crash_after")
        if interruption == "crash"
        else None,
    )
    interrupted = first.run()
    done = {path for path, r in interrupted.nodes.items() if r.status == "succeeded"}
    resumed_sim, resumed = simulate(
        workflow,
        cap=cap,
        mode=mode,
        seed=data.draw(run_seeds, label="seed"),
        prior=interrupted.nodes,
    )
    assert resumed.status == "completed", resumed.reason
    again = done & set(starts_per_path(resumed_sim))
    assert not again, f"started again after resume: {sorted(again)}"
    assert resumed.outputs == undisturbed.outputs
    check_trace(resumed_sim)


# --- the bare scheduler under an adversarial environment ------------------------------------


class SchedulerMachine(RuleBasedStateMachine):
    """Drives a :class:`Scheduler` directly, playing semaphore, executor, timers and
    supervisor, with hypothesis choosing every interleaving.

    Permits are granted late, one at a time and in any amount the free capacity
    allows; attempts complete in any order; any attempt may fail transiently
    (once, and only where the node retries), which the supervisor answers at a moment of
    hypothesis' choosing; checkpoints are approved before or after their timeout;
    the run may be cancelled at any point. Whatever
    happens, held + requested stays within the cap, every running attempt holds
    a permit, nothing starts once the run is stopping, and when nothing is left
    to do the run has finished, with the model's outputs unless it failed or
    was cancelled.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scheduler: Scheduler | None = None

    @initialize(
        workflow=st.booleans().flatmap(
            lambda control: workflows(
                max_nodes=8,
                control=control,
                concurrent_breaks=False,
                retries=True,
                checkpoints=True,
            )
        ),
        cap=caps,
        mode=modes,
    )
    def start(self, workflow: Workflow, cap: int, mode: str) -> None:
        note(render_flow(workflow))
        self.workflow = workflow
        self.cap = cap
        self.clock = FakeClock()
        self.scheduler = Scheduler(
            plan(workflow),
            run_id="machine",
            clock=self.clock,
            settings=RunSettings(max_concurrency=cap, mode=mode),
        )
        self.supervisor = Supervisor(
            SupervisorPolicy(keep_going=True, max_restarts=None), seed=0, clock=self.clock
        )
        self.available = cap  # the semaphore's free permits
        self.queued = 0  # requests queued at the semaphore
        self.running: dict[int, StartTask] = {}
        self.cancelled: set[int] = set()
        self.timers: dict[int, float] = {}  # timer -> due (monotonic)
        self.decisions: list[Escalate] = []
        self.failed_any = False
        self.stopping = False
        self.finished: Finished | None = None
        self.checkpoints: list[str] = []  # paths of the checkpoints that waited
        self.apply(self.scheduler.start())

    # -- the environment

    def apply(self, commands: list[Any]) -> None:
        for command in commands:
            assert self.finished is None, f"{command!r} after the run finished"
            if isinstance(command, RequestPermits):
                self.queued += command.count
            elif isinstance(command, ReleasePermits):
                self.available += command.count
            elif isinstance(command, WithdrawPermits):
                self.queued = max(0, self.queued - command.count)
            elif isinstance(command, StartTask):
                assert not self.stopping, f"{command.path!r} started while stopping"
                assert command.token not in self.running
                self.running[command.token] = command
            elif isinstance(command, CancelTask):
                self.cancelled.add(command.token)
            elif isinstance(command, AbandonTask):
                self.running.pop(command.token, None)
            elif isinstance(command, StartTimer):
                self.timers[command.timer] = self.clock.monotonic() + command.delay
            elif isinstance(command, CancelTimer):
                self.timers.pop(command.timer, None)
            elif isinstance(command, Escalate):
                self.decisions.append(command)
            elif isinstance(command, Finished):
                self.finished = command
            else:
                assert isinstance(command, Emit)
                if isinstance(command.event, CheckpointWaiting):
                    self.checkpoints.append(command.event.path)

    def handle(self, message: object) -> None:
        assert self.scheduler is not None
        self.apply(self.scheduler.handle(message))

    # -- rules

    @precondition(lambda self: self.finished is None and self.queued and self.available)
    @rule(data=st.data())
    def grant(self, data: st.DataObject) -> None:
        """The semaphore grants some of the queued requests."""
        count = data.draw(st.integers(1, min(self.queued, self.available)), label="grant")
        self.queued -= count
        self.available -= count
        self.handle(PermitsGranted(count))

    @precondition(lambda self: self.finished is None and self.running)
    @rule(data=st.data(), fail=st.integers(0, 3))
    def complete(self, data: st.DataObject, fail: int) -> None:
        """One running attempt (any of them) reports: success, or a transient failure."""
        token = data.draw(st.sampled_from(sorted(self.running)), label="token")
        start = self.running.pop(token)
        self.clock.advance(0.001)
        if token in self.cancelled and fail == 0:
            self.handle(TaskCancelled(token))
        elif fail == 1 and start.attempt == 1 and retries(start) >= 1:
            self.failed_any = True
            error = error_info(TransientError("flaky"), node=start.path, attempt=start.attempt)
            self.handle(TaskFailed(token, error))
        else:
            self.handle(execute_task(start, cancel=NeverCancelled()))

    @precondition(lambda self: self.finished is None and self.decisions)
    @rule(data=st.data())
    def decide(self, data: st.DataObject) -> None:
        """The supervisor answers one pending escalation."""
        position = data.draw(st.integers(0, len(self.decisions) - 1), label="decision")
        escalation = self.decisions.pop(position)
        self.handle(self.supervisor.decide(escalation))

    @precondition(lambda self: self.finished is None and self.timers)
    @rule()
    def fire_timer(self) -> None:
        """Time moves to the earliest timer, which fires."""
        timer, due = min(self.timers.items(), key=lambda kv: (kv[1], kv[0]))
        del self.timers[timer]
        self.clock.set(max(due, self.clock.monotonic()))
        self.handle(TimerFired(timer))

    @precondition(lambda self: self.finished is None and not self.stopping)
    @rule(dice=st.integers(0, 9))
    def cancel(self, dice: int) -> None:
        """Rarely, the run is cancelled."""
        if dice:
            return
        self.stopping = True
        self.handle(CancelRun("cancelled"))

    @precondition(lambda self: self.finished is None and self.checkpoints)
    @rule(data=st.data())
    def approve(self, data: st.DataObject) -> None:
        """Someone approves a checkpoint, before its timeout or (harmlessly) again after."""
        path = data.draw(st.sampled_from(self.checkpoints), label="checkpoint")
        self.handle(CheckpointDecided(path, approve=True))

    @rule()
    def tick(self) -> None:
        """Time passes without anything happening (always possible, also once finished)."""
        self.clock.advance(0.001)

    # -- invariants

    @invariant()
    def permits_within_the_cap(self) -> None:
        """held + requested <= cap, and the permits handed to the run are exactly those it
        holds, one per running attempt."""
        if self.scheduler is None:
            return
        sched = self.scheduler
        assert sched.held + sched.requested <= self.cap
        assert sched.held == self.cap - self.available
        assert sched.requested == self.queued
        assert sched.held == sched.statistics()["running"] == len(self.running)

    def teardown(self) -> None:
        if self.scheduler is None:
            return
        # Let the environment run to its end: whatever was pending completes.
        for _ in range(10_000):
            if self.finished is not None:
                break
            if self.running:
                token = min(self.running)
                start = self.running.pop(token)
                if token in self.cancelled:
                    self.handle(TaskCancelled(token))
                else:
                    self.handle(execute_task(start, cancel=NeverCancelled()))
            elif self.decisions:
                self.handle(self.supervisor.decide(self.decisions.pop(0)))
            elif self.queued and self.available:
                count = min(self.queued, self.available)
                self.queued -= count
                self.available -= count
                self.handle(PermitsGranted(count))
            elif self.timers:
                self.fire_timer()
            else:
                raise AssertionError(
                    f"nothing left to do but the run is {self.scheduler.status}: "
                    f"{self.scheduler.statistics()}"
                )
        assert self.finished is not None
        assert self.scheduler.held == 0
        assert self.available == self.cap, "a permit was never released"
        result = self.scheduler.result()
        if self.stopping:
            assert result.status == "cancelled"
        else:
            assert result.status == "completed", result.reason
            assert_matches(result, expected_run(self.workflow), attempts=not self.failed_any)


def retries(start: StartTask) -> int:
    retry = start.node.on_error.retry if start.node.on_error is not None else None
    return retry.max if retry is not None else 0


TestSchedulerMachine = SchedulerMachine.TestCase
TestSchedulerMachine.settings = settings(
    max_examples=examples(EXAMPLES),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
