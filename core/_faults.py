"""Fault plans: seeded, rule-based fault injection.

A plan is a list of rules. Each rule selects attempts by node id glob, by
runtime key glob (``source:*``) and by attempt number, fires with a
probability, and injects exactly one fault: raise a transient or permanent
error, delay, hang until cancelled, or crash the executor.

For each attempt the rules are tried in order and the first that matches
*and* whose probability draw succeeds is injected. The draw comes from an RNG
derived from (run seed, node path, attempt, rule index), so the same seed
injects the same faults whatever the thread timing.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _yaml
from ._duration import parse_duration
from ._errors import FaultPlanError, InjectedFault
from ._rng import derive_rng

__all__ = ["Fault", "FaultPlan", "FaultRule", "load_faults"]

_KINDS = ("raise", "delay", "hang", "crash")
_KEYS = frozenset({"node", "type", "attempts", "probability", "message", *_KINDS})


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault to inject into an attempt."""

    kind: str  # raise | delay | hang | crash
    rule: int
    transient: bool = True
    message: str | None = None
    delay: float = 0.0

    def describe(self) -> str:
        """A short text for logs: ``raise transient: disk full``, ``delay 2s``..."""
        if self.kind == "raise":
            text = f"raise {'transient' if self.transient else 'permanent'}"
            return f"{text}: {self.message}" if self.message else text
        if self.kind == "delay":
            return f"delay {self.delay:g}s"
        return self.kind

    def exception(self, node: str, attempt: int) -> InjectedFault:
        """The exception a ``raise`` fault throws."""
        kind = "transient" if self.transient else "permanent"
        message = self.message or f"injected {kind} fault in {node!r} (attempt {attempt})"
        return InjectedFault(message, retryable=self.transient)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One rule: which attempts it selects, with what probability, and its fault."""

    fault: Fault
    node: str | None = None
    type: str | None = None
    attempts: frozenset[int] | None = None
    probability: float = 1.0

    def matches(self, node: str, runtime_key: str, attempt: int) -> bool:
        return (
            (self.node is None or fnmatch.fnmatchcase(node, self.node))
            and (self.type is None or fnmatch.fnmatchcase(runtime_key, self.type))
            and (self.attempts is None or attempt in self.attempts)
        )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A seeded list of fault rules; ``seed`` is the run seed when none is given."""

    rules: tuple[FaultRule, ...] = ()
    seed: int | None = None

    @classmethod
    def from_mapping(cls, data: object, *, source: str = "faults") -> FaultPlan:
        """Build a plan from the fault file's structure; FaultPlanError names the bad entry."""
        if not isinstance(data, Mapping):
            raise FaultPlanError(
                f"{source}: a fault plan must be a mapping with 'rules', got {data!r}"
            )
        unknown = sorted(set(data) - {"seed", "rules"})
        if unknown:
            raise FaultPlanError(
                f"{source}: unknown key {unknown[0]!r}; expected 'seed' and 'rules'"
            )
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise FaultPlanError(f"{source}: seed must be an integer, got {seed!r}")
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise FaultPlanError(f"{source}: 'rules' must be a list, got {rules!r}")
        return cls(tuple(_rule(r, i, source) for i, r in enumerate(rules)), seed)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaultPlan:
        """Read a YAML fault file; FaultPlanError for unreadable or malformed files."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FaultPlanError(f"{path}: cannot read fault file: {exc}") from exc
        try:
            data = _yaml.load(text)
        except _yaml.YAMLError as exc:
            raise FaultPlanError(f"{path}: invalid YAML: {exc}".replace("\n", " ")) from exc
        return cls.from_mapping(data if data is not None else {}, source=str(path))

    def draw(self, seed: int, path: str, node: str, runtime_key: str, attempt: int) -> Fault | None:
        """The fault injected into this attempt, if any."""
        for index, rule in enumerate(self.rules):
            if not rule.matches(node, runtime_key, attempt):
                continue
            if rule.probability >= 1.0 or (
                rule.probability > 0.0
                and derive_rng(seed, "fault", path, attempt, index).random() < rule.probability
            ):
                return rule.fault
        return None


def load_faults(
    faults: FaultPlan | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> FaultPlan | None:
    """Accept what ``run_workflow(faults=...)`` accepts: a plan, a dict, or a file path."""
    if faults is None or isinstance(faults, FaultPlan):
        return faults
    if isinstance(faults, Mapping):
        return FaultPlan.from_mapping(faults)
    if isinstance(faults, str | os.PathLike):
        return FaultPlan.load(faults)
    raise FaultPlanError(f"faults must be a path, a mapping or a FaultPlan, got {faults!r}")


def _rule(data: object, index: int, source: str) -> FaultRule:
    where = f"{source}: rule {index + 1}"
    if not isinstance(data, Mapping):
        raise FaultPlanError(f"{where}: must be a mapping, got {data!r}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise FaultPlanError(
            f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(sorted(_KEYS))}"
        )
    kinds = [k for k in _KINDS if k in data]
    if len(kinds) != 1:
        raise FaultPlanError(
            f"{where}: needs exactly one of raise, delay, hang, crash (got {len(kinds)})"
        )
    for key in ("node", "type"):
        if key in data and not isinstance(data[key], str):
            raise FaultPlanError(f"{where}: {key!r} must be a glob string, got {data[key]!r}")
    attempts = data.get("attempts")
    if attempts is not None:
        if isinstance(attempts, int) and not isinstance(attempts, bool):
            attempts = [attempts]
        if not isinstance(attempts, list) or not all(
            isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in attempts
        ):
            raise FaultPlanError(
                f"{where}: 'attempts' must be a list of attempt numbers >= 1, got {attempts!r}"
            )
    probability = data.get("probability", 1.0)
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0.0 <= probability <= 1.0
    ):
        raise FaultPlanError(f"{where}: 'probability' must be between 0 and 1, got {probability!r}")
    message = data.get("message")
    if message is not None and not isinstance(message, str):
        raise FaultPlanError(f"{where}: 'message' must be a string, got {message!r}")
    kind = kinds[0]
    value = data[kind]
    if kind == "raise":
        if value not in ("transient", "permanent"):
            raise FaultPlanError(
                f"{where}: raise must be 'transient' or 'permanent', got {value!r}"
            )
        fault = Fault("raise", index, transient=value == "transient", message=message)
    elif kind == "delay":
        try:
            fault = Fault("delay", index, delay=parse_duration(value))
        except ValueError as exc:
            raise FaultPlanError(f"{where}: {exc}") from exc
    else:
        if value is not True:
            raise FaultPlanError(f"{where}: {kind} must be true, got {value!r}")
        fault = Fault(kind, index)
    if message is not None and kind != "raise":
        raise FaultPlanError(f"{where}: 'message' only applies to raise")
    return FaultRule(
        fault,
        node=data.get("node"),
        type=data.get("type"),
        attempts=frozenset(attempts) if attempts is not None else None,
        probability=float(probability),
    )
