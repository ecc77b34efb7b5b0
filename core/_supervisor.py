"""The failure policy of a run, as a pure decision function.

Every failed attempt is escalated here and answered with exactly one
decision:

1. a failed *fallback* fails the node (its primary's error is kept too);
2. a failure the node's retry policy accepts is retried after a jittered
   delay — unless the run's *restart intensity* is exceeded: more than
   ``max_restarts`` retries within ``restart_period`` seconds, as with an OTP
   supervisor, turns the failure final and the run fail-fast, so a retry
   storm cannot go on forever;
3. otherwise a node with a fallback runs it;
4. otherwise the node fails for good, and the run fails fast unless it is
   keeping going.

State: the timestamps of recent retries, pruned to the intensity window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ._clock import Clock
from ._events import Escalate, FailNode, RetryNode, RunFallback
from ._rng import derive_rng

__all__ = ["Supervisor", "SupervisorPolicy"]

Decision = RetryNode | RunFallback | FailNode


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """Run-wide failure settings: fail-fast or keep-going, and the restart intensity."""

    keep_going: bool = False
    max_restarts: int | None = 200
    restart_period: float = 60.0


class Supervisor:
    """Decides what follows a failed attempt. Mutates only its window of recent retries."""

    def __init__(self, policy: SupervisorPolicy, *, seed: int, clock: Clock) -> None:
        self.policy = policy
        self.seed = seed
        self.clock = clock
        # Monotonic times of the retries granted within the current window, oldest first.
        self._restarts: deque[float] = deque()

    def decide(self, failure: Escalate) -> Decision:
        """The decision for one escalated failure."""
        if failure.is_fallback:
            return FailNode(failure.path, fail_fast=not self.policy.keep_going)
        spec = failure.retry
        if spec is not None and spec.should_retry(failure.attempt, failure.error):
            if self._intensity_exceeded():
                limit = self.policy.max_restarts
                return FailNode(
                    failure.path,
                    fail_fast=True,
                    reason=f"restart intensity exceeded: more than {limit} retries "
                    f"within {self.policy.restart_period:g}s",
                )
            rng = derive_rng(self.seed, "retry", failure.path, failure.attempt)
            delay = spec.delay(failure.attempt - 1, rng)
            if failure.error.retry_after is not None:
                # The service said when to come back; never earlier than that.
                delay = max(delay, failure.error.retry_after)
            return RetryNode(failure.path, delay)
        if failure.has_fallback:
            return RunFallback(failure.path)
        return FailNode(failure.path, fail_fast=not self.policy.keep_going)

    def _intensity_exceeded(self) -> bool:
        limit = self.policy.max_restarts
        if limit is None:
            return False
        now = self.clock.monotonic()
        window_start = now - self.policy.restart_period
        while self._restarts and self._restarts[0] <= window_start:
            self._restarts.popleft()
        if len(self._restarts) >= limit:
            return True
        self._restarts.append(now)
        return False
