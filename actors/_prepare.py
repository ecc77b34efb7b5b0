"""Turning run_workflow's and resume_workflow's options into a prepared run.

Everything that can be wrong with the input is checked here, before any actor
starts: the workflow file, config and secrets, the mode and limits, the fault
plan, the snapshot to resume and whether its workflow changed. Errors are
WavecrestError subclasses with one-line messages; the CLI turns them into
exit status 2.

Option precedence: an explicit argument, then the workflow's ``runtime:``
front matter, then the Runtime's or wavecrest's default.
"""

from __future__ import annotations

import os
import secrets as _secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wavecrest.core import (
    ConfigError,
    FaultPlan,
    NodeResult,
    Plan,
    ResumeError,
    RunEvent,
    RunNotFoundError,
    RunSettings,
    SnapshotError,
    SupervisorPolicy,
    Workflow,
    WorkflowError,
    load_faults,
    load_workflow,
    parse_duration,
    parse_workflow,
    plan,
)
from wavecrest.core._config import resolve_config, resolve_secrets
from wavecrest.core._snapshot import RunRecord, read_snapshot

from ._lock import RunLock

__all__ = [
    "DEFAULT_STATE_DIR",
    "PreparedRun",
    "default_state_dir",
    "find_snapshot",
    "new_run_id",
    "prepare_resume",
    "prepare_run",
]

DEFAULT_STATE_DIR = ".wavecrest-state"
DEFAULT_CONCURRENCY = 8
DEFAULT_GRACE = 5.0
DEFAULT_MAX_RESTARTS = 200
DEFAULT_RESTART_PERIOD = 60.0


def default_state_dir() -> Path:
    """``$WAVECREST_STATE_DIR`` or ``.wavecrest-state`` in the current folder."""
    return Path(os.environ.get("WAVECREST_STATE_DIR") or DEFAULT_STATE_DIR)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time of day to the second plus 6 random hex digits."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{_secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedRun:
    """A run ready to start: everything the supervisor needs, already validated."""

    workflow: Workflow
    plan: Plan
    run_id: str
    seed: int
    config: dict[str, Any]
    secrets: dict[str, str]
    settings: RunSettings
    policy: SupervisorPolicy
    faults: FaultPlan | None = None
    faults_spec: Any = None
    state_dir: Path | None = None
    prior: dict[str, NodeResult] | None = None
    decisions: dict[str, bool] = field(default_factory=dict)
    record: RunRecord | None = None
    on_event: Callable[[RunEvent], Any] | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def resumed(self) -> bool:
        return self.record is not None

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the workflow resolve against."""
        return Path(self.workflow.path).resolve().parent if self.workflow.path else Path.cwd()

    @property
    def snapshot_path(self) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir / self.workflow.name / f"{self.run_id}.msgpack"

    @property
    def log_path(self) -> Path | None:
        path = self.snapshot_path
        return path.with_suffix(".jsonl") if path is not None else None

    def options(self) -> dict[str, Any]:
        """The run's options as a snapshot keeps them."""
        return {
            "mode": self.settings.mode,
            "max_concurrency": self.settings.max_concurrency,
            "timeout": self.settings.timeout,
            "grace": self.settings.grace,
            "keep_going": self.policy.keep_going,
            "max_restarts": self.policy.max_restarts,
            "restart_period": self.policy.restart_period,
            "faults": self.faults_spec if isinstance(self.faults_spec, dict | str) else None,
        }


def _workflow(source: Workflow | str | os.PathLike[str]) -> Workflow:
    if isinstance(source, Workflow):
        return source
    if isinstance(source, str | os.PathLike):
        return load_workflow(source)
    raise TypeError(f"workflow must be a path or a Workflow, got {source!r}")


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"invalid {what} {value!r}: expected an integer >= 1")
    return value


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"invalid {what}: {exc}") from None


def prepare_run(
    workflow: Workflow | str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    max_concurrency: int | None = None,
    mode: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    timeout: float | str | None = None,
    keep_going: bool = False,
    faults: Any = None,
    seed: int | None = None,
    on_event: Callable[[RunEvent], Any] | None = None,
    run_id: str | None = None,
    default_concurrency: int = DEFAULT_CONCURRENCY,
    environ: Mapping[str, str] | None = None,
) -> PreparedRun:
    """Validate a new run's inputs; raises WavecrestError subclasses for bad input."""
    wf = _workflow(workflow)
    planned = plan(wf)
    fault_plan = load_faults(faults)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"invalid seed {seed!r}: expected an integer")
    if seed is None:
        seed = (
            fault_plan.seed
            if fault_plan is not None and fault_plan.seed is not None
            else (_secrets.randbits(32))
        )
    rt = wf.runtime
    chosen_mode = mode or rt.mode or "eager"
    if chosen_mode not in ("eager", "waves"):
        raise ConfigError(f"invalid mode {chosen_mode!r}: expected 'eager' or 'waves'")
    cap = _positive_int(
        max_concurrency or rt.max_concurrency or default_concurrency, "max_concurrency"
    )
    run_timeout = _seconds(timeout, "timeout") if timeout is not None else rt.timeout
    settings = RunSettings(
        mode=chosen_mode,
        max_concurrency=cap,
        grace=rt.grace if rt.grace is not None else DEFAULT_GRACE,
        timeout=run_timeout,
    )
    policy = SupervisorPolicy(
        keep_going=bool(keep_going or rt.keep_going),
        max_restarts=rt.max_restarts if rt.max_restarts is not None else DEFAULT_MAX_RESTARTS,
        restart_period=rt.restart_period
        if rt.restart_period is not None
        else DEFAULT_RESTART_PERIOD,
    )
    return PreparedRun(
        workflow=wf,
        plan=planned,
        run_id=run_id or new_run_id(),
        seed=seed,
        config=resolve_config(wf, config),
        secrets=resolve_secrets(wf, secrets, environ),
        settings=settings,
        policy=policy,
        faults=fault_plan,
        faults_spec=faults
        if isinstance(faults, Mapping)
        else (os.fspath(faults) if isinstance(faults, str | os.PathLike) else None),
        state_dir=Path(state_dir) if state_dir is not None else None,
        on_event=on_event,
    )


def find_snapshot(run: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None) -> Path:
    """The snapshot file for a run id, or ``run`` itself when it is a snapshot path."""
    candidate = Path(run)
    if candidate.suffix == ".msgpack" or os.sep in str(run) or candidate.is_file():
        if not candidate.is_file():
            raise RunNotFoundError(f"{candidate}: no such snapshot")
        return candidate
    root = Path(state_dir) if state_dir is not None else default_state_dir()
    matches = sorted(root.glob(f"*/{run}.msgpack")) if root.is_dir() else []
    if not matches:
        raise RunNotFoundError(f"no run {str(run)!r} in state dir {str(root)!r}")
    if len(matches) > 1:
        shown = ", ".join(str(m) for m in matches)
        raise RunNotFoundError(f"run id {str(run)!r} is ambiguous: {shown}; give the snapshot path")
    return matches[0]


def lock_record(
    run: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None
) -> tuple[Path, RunRecord, RunLock]:
    """Find a run's snapshot, lock the run (RunInUseError if it is running) and read it.

    The snapshot is read under the lock, so it is the last one its previous
    owner wrote. The caller owns the lock from then on.
    """
    path = find_snapshot(run, state_dir)
    lock = RunLock.acquire(path, path.stem)
    try:
        return path, read_snapshot(path), lock
    except BaseException:
        lock.release()
        raise


def _resume_workflow(record: RunRecord, snapshot: Path, force: bool) -> Workflow:
    source_path = record.workflow_path
    if source_path and Path(source_path).is_file():
        current = load_workflow(source_path)
        if current.digest != record.digest and not force:
            raise ResumeError(
                f"{source_path} changed since run {record.run_id} was started; "
                "resume with --force to run the changed workflow"
            )
        return current
    try:
        return parse_workflow(record.source, source_path)
    except WorkflowError as exc:
        raise SnapshotError(
            f"{snapshot}: the workflow saved in the snapshot is invalid: {exc}"
        ) from None


def prepare_resume(
    snapshot: Path,
    record: RunRecord,
    *,
    config: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    approve: bool | None = None,
    force: bool = False,
    on_event: Callable[[RunEvent], Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PreparedRun:
    """Validate a resume of the run ``record`` read from ``snapshot`` (see :func:`lock_record`):
    check its workflow, merge config and decisions."""
    wf = _resume_workflow(record, snapshot, force)
    if wf.name != record.workflow:
        raise ResumeError(
            f"{snapshot}: the snapshot belongs to workflow {record.workflow!r}, "
            f"but {wf.path} is {wf.name!r}"
        )
    planned = plan(wf)
    decisions = dict(record.decisions)
    waiting = [p for p, r in record.results.items() if r.status == "waiting"]
    if approve is not None:
        if not waiting:
            raise ResumeError(
                f"run {record.run_id} is not waiting at a checkpoint "
                f"(status {record.status}); --approve/--reject do not apply"
            )
        for path in waiting:
            decisions[path] = approve
    options = record.options
    rt = wf.runtime
    merged = {k: v for k, v in record.config.items() if k in wf.config_fields}
    merged.update(config or {})
    settings = RunSettings(
        mode=options.get("mode") or rt.mode or "eager",
        max_concurrency=options.get("max_concurrency") or rt.max_concurrency or DEFAULT_CONCURRENCY,
        grace=options.get("grace") or rt.grace or DEFAULT_GRACE,
        timeout=options.get("timeout"),
    )
    policy = SupervisorPolicy(
        keep_going=bool(options.get("keep_going")),
        max_restarts=options.get("max_restarts", DEFAULT_MAX_RESTARTS),
        restart_period=options.get("restart_period") or DEFAULT_RESTART_PERIOD,
    )
    return PreparedRun(
        workflow=wf,
        plan=planned,
        run_id=record.run_id,
        seed=record.seed,
        config=resolve_config(wf, merged),
        secrets=resolve_secrets(wf, secrets, environ),
        settings=settings,
        policy=policy,
        state_dir=snapshot.parent.parent,
        prior=dict(record.results),
        decisions=decisions,
        record=record,
        on_event=on_event,
        created_at=record.created_at,
    )
