"""The ``wavecrest`` command line.

Exit status: 0 completed, 1 the workflow failed (or timed out), 2 bad input
(a workflow file, an argument, a config value, a snapshot), 3 paused at a
checkpoint, 130 interrupted (the snapshot is saved and the run resumable).

Only machine-readable output (``--json``, ``plan --format json|dot``) goes to
stdout; progress, summaries, warnings and errors go to stderr. Bad input is
reported in one line per problem — ``FILE:LINE:COL: error: MESSAGE`` for
workflow files, ``wavecrest: error: MESSAGE`` otherwise — never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import structlog
from wavecrest.core import (
    Plan,
    RunResult,
    SnapshotError,
    WavecrestError,
    WorkflowError,
    load_workflow,
    parse_workflow,
    plan,
)
from wavecrest.core._config import parse_assignments
from wavecrest.core._snapshot import read_snapshot

from ._console import (
    make_console,
    make_progress,
    print_errors,
    print_nodes,
    print_summary,
    with_pending,
)
from ._plugins import add_plugin_option, load_plugins
from ._prepare import default_state_dir, find_snapshot
from ._runtime import Runtime
from ._testcmd import add_test_parser, run_test

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wavecrest",
        description="Run workflows written as .flow.md files.",
        epilog="Exit status: 0 completed, 1 failed, 2 bad input, 3 paused, 130 interrupted.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser("validate", help="check workflow files for errors")
    validate.add_argument("files", nargs="+", metavar="FILE")

    plan_cmd = commands.add_parser("plan", help="show the waves and critical path of a workflow")
    plan_cmd.add_argument("file", metavar="FILE")
    plan_cmd.add_argument("--format", choices=("text", "json", "dot"), default="text")
    plan_cmd.add_argument("--mode", choices=("eager", "waves"), default=None)

    run = commands.add_parser("run", help="run a workflow")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--set", action="append", default=[], metavar="K=V", help="set a config value")
    run.add_argument("--secret", action="append", default=[], metavar="K=V", help="give a secret")
    run.add_argument("--max-concurrency", type=_positive, metavar="N")
    run.add_argument("--mode", choices=("eager", "waves"))
    run.add_argument("--state-dir", metavar="DIR")
    run.add_argument("--timeout", metavar="DUR", help="cancel the run after DUR (e.g. 30s, 5m)")
    run.add_argument(
        "--keep-going", action="store_true", help="run everything not downstream of a failure"
    )
    run.add_argument("--faults", metavar="FILE", help="inject faults from a fault file")
    run.add_argument("--seed", type=int, metavar="N", help="seed for retry jitter and faults")
    run.add_argument(
        "--append-log", action="store_true", help="record the run in the file's Execution Log"
    )
    _output_options(run)

    resume = commands.add_parser("resume", help="continue a run from its snapshot")
    resume.add_argument("run", metavar="RUN", help="a run id or a snapshot path")
    resume.add_argument("--state-dir", metavar="DIR")
    decision = resume.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve the waiting checkpoint")
    decision.add_argument("--reject", action="store_true", help="reject the waiting checkpoint")
    resume.add_argument("--force", action="store_true", help="resume even if the workflow changed")
    resume.add_argument("--set", action="append", default=[], metavar="K=V")
    resume.add_argument("--secret", action="append", default=[], metavar="K=V")
    resume.add_argument("--append-log", action="store_true")
    _output_options(resume)

    inspect = commands.add_parser("inspect", help="show a run's status, nodes and errors")
    inspect.add_argument("run", metavar="RUN", help="a run id or a snapshot path")
    inspect.add_argument("--state-dir", metavar="DIR")
    inspect.add_argument("--json", action="store_true", help="print JSON on stdout")

    runs = commands.add_parser("runs", help="list runs, grouped by workflow, newest first")
    runs.add_argument("--state-dir", metavar="DIR")
    runs.add_argument("--json", action="store_true", help="print JSON on stdout")

    add_test_parser(commands, _positive)
    for command in (validate, plan_cmd, run, resume):
        add_plugin_option(command)
    return parser


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    parser.add_argument("--verbose", "-v", action="store_true", help="a line for every node event")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected an integer >= 1"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= 1")
    return value


def _configure_logging() -> None:
    # stdout is for machine-readable output only: structured log lines that do not
    # go to a run's JSON-lines file (callback failures, warnings) go to stderr.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    _configure_logging()
    console = make_console()
    try:
        args = _parser().parse_args(argv)
        if args.version:
            from importlib.metadata import version

            print(f"wavecrest {version('wavecrest')}", file=sys.stderr)
            return EXIT_OK
        if args.command is None:
            raise _ArgumentError(
                "a command is required: validate, plan, run, resume, inspect, runs or test"
            )
        load_plugins(getattr(args, "plugins", ()))
        handler = _COMMANDS[args.command]
        return handler(args, console)
    except _ArgumentError as exc:
        _error(f"{exc} (see wavecrest --help)")
        return EXIT_INPUT
    except WorkflowError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_INPUT
    except WavecrestError as exc:
        _error(str(exc))
        return EXIT_INPUT
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED


def _error(message: str) -> None:
    print(f"wavecrest: error: {message}", file=sys.stderr)


# --- validate and plan ------------------------------------------------------------


def _validate(args: argparse.Namespace, console: Any) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            workflow = load_workflow(file)
        except WorkflowError as exc:
            for diagnostic in exc.diagnostics:
                print(diagnostic, file=sys.stderr)
            status = EXIT_INPUT
            continue
        count = sum(1 for _ in workflow.iter_nodes())
        console.print(f"{file}: ok ({workflow.name}, {count} nodes)")
    return status


def _plan(args: argparse.Namespace, console: Any) -> int:
    workflow = load_workflow(args.file)
    planned = plan(workflow)
    mode = args.mode or workflow.runtime.mode or "eager"
    if args.format == "json":
        print(planned.render_json())
    elif args.format == "dot":
        sys.stdout.write(planned.render_dot())
    else:
        print(planned.render_text(mode), file=sys.stderr)
    return EXIT_OK


# --- run and resume ----------------------------------------------------------------


def _run(args: argparse.Namespace, console: Any) -> int:
    workflow = load_workflow(args.file)
    config = parse_assignments(args.set, option="--set")
    secrets = parse_assignments(args.secret, option="--secret")
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    progress = make_progress(console, quiet=args.quiet, total=0, verbose=args.verbose)
    with Runtime(
        max_concurrency=args.max_concurrency or workflow.runtime.max_concurrency or 8
    ) as runtime:
        handle = runtime.submit(
            workflow,
            config=config,
            secrets=secrets,
            max_concurrency=args.max_concurrency,
            mode=args.mode,
            state_dir=state_dir,
            timeout=args.timeout,
            keep_going=args.keep_going,
            faults=args.faults,
            seed=args.seed,
            on_event=progress,
        )
        result, interrupted = _wait(handle)
    if progress is not None:
        progress.close()
    return _report(
        args, console, result, interrupted, workflow_file=args.file, planned=plan(workflow)
    )


def _resume(args: argparse.Namespace, console: Any) -> int:
    config = parse_assignments(args.set, option="--set")
    secrets = parse_assignments(args.secret, option="--secret")
    approve = True if args.approve else False if args.reject else None
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    progress = make_progress(console, quiet=args.quiet, total=0, verbose=args.verbose)
    with Runtime() as runtime:
        handle = runtime.resume(
            args.run,
            state_dir=state_dir,
            config=config,
            secrets=secrets,
            approve=approve,
            force=args.force,
            on_event=progress,
        )
        if handle.done() and handle.status == "completed":
            if progress is not None:
                progress.close()
            console.print(f"run {handle.run_id} already completed; nothing to do")
            result = handle.result()
            if args.json:
                print(json.dumps(result.to_json(), default=repr, ensure_ascii=False))
            return EXIT_OK
        result, interrupted = _wait(handle)
    if progress is not None:
        progress.close()
    workflow_file, planned = None, None
    if result.snapshot_path:
        record = read_snapshot(result.snapshot_path)
        workflow_file = record.workflow_path if args.append_log else None
        planned = _plan_of(record)
    return _report(args, console, result, interrupted, workflow_file=workflow_file, planned=planned)


def _plan_of(record: Any) -> Plan | None:
    """The plan of the workflow a snapshot recorded (None if it no longer parses)."""
    try:
        return plan(parse_workflow(record.source, record.workflow_path))
    except WavecrestError:
        return None


def _wait(handle: Any) -> tuple[RunResult, bool]:
    """Wait for the run; SIGINT/SIGTERM cancel it cleanly (a second one exits at once)."""
    interrupted = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:
            print("wavecrest: interrupted again; exiting without waiting", file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)
        interrupted = True
        print(
            "wavecrest: interrupted; cancelling the run and saving its snapshot...", file=sys.stderr
        )
        handle.cancel("interrupted")

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    try:
        while True:
            try:
                return handle.result(timeout=0.2), interrupted
            except TimeoutError:
                continue
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(
    args: argparse.Namespace,
    console: Any,
    result: RunResult,
    interrupted: bool,
    *,
    workflow_file: str | None,
    planned: Plan | None = None,
) -> int:
    if args.json:
        print(json.dumps(result.to_json(), default=repr, ensure_ascii=False))
    elif not args.quiet:
        print_summary(console, result, planned=planned)
    elif result.errors:
        # Quiet means no progress and no summary, but a failure is never silent.
        print_errors(console, result.errors)
    if getattr(args, "append_log", False) and workflow_file:
        from wavecrest.core._execlog import append_execution_log

        try:
            append_execution_log(workflow_file, result)
        except (OSError, WavecrestError) as exc:
            _error(f"could not append to the Execution Log of {workflow_file}: {exc}")
    if interrupted and result.status == "cancelled":
        if result.snapshot_path:
            console.print(f"resume with: wavecrest resume {result.run_id}")
        return EXIT_INTERRUPTED
    if result.status == "completed":
        return EXIT_OK
    if result.status == "paused":
        console.print(
            f"paused: {result.reason}; continue with: wavecrest resume {result.run_id} --approve"
            " (or --reject)"
        )
        return EXIT_PAUSED
    if result.status == "cancelled" and result.snapshot_path:
        console.print(f"resume with: wavecrest resume {result.run_id}")
    return EXIT_FAILED


# --- inspect and runs ---------------------------------------------------------------


def _inspect(args: argparse.Namespace, console: Any) -> int:
    path = find_snapshot(args.run, args.state_dir)
    record = read_snapshot(path)
    result = record.to_result(str(path))
    if args.json:
        print(
            json.dumps(
                {
                    "run_id": record.run_id,
                    "workflow": record.workflow,
                    "version": record.version,
                    "status": record.status,
                    "reason": record.reason,
                    "seed": record.seed,
                    "snapshot": str(path),
                    "workflow_path": record.workflow_path,
                    "created_at": record.created_at,
                    "updated_at": record.updated_at,
                    "started_at": record.started_at,
                    "finished_at": record.finished_at,
                    "config": record.config,
                    "options": record.options,
                    "resumes": record.resumes,
                    "nodes": {
                        p: {
                            "node": r.node,
                            "status": r.status,
                            "attempts": r.attempts,
                            "duration": r.duration,
                            "output": r.output if r.status == "succeeded" else None,
                            "fallback": r.fallback,
                            "reason": r.reason,
                            "errors": [e.to_dict() for e in r.errors],
                        }
                        for p, r in record.results.items()
                    },
                    "errors": [e.to_dict() for e in record.errors],
                },
                default=repr,
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.updated_at))
    console.print(f"run {record.run_id} of {record.workflow}: {record.status} (updated {stamp})")
    if record.reason:
        console.print(f"  {record.reason}")
    console.print(f"  snapshot: {path}")
    if record.workflow_path:
        console.print(f"  workflow: {record.workflow_path}")
    print_nodes(console, with_pending(result.nodes, _plan_of(record)))
    print_errors(console, result.errors)
    return EXIT_OK


def _runs(args: argparse.Namespace, console: Any) -> int:
    root = Path(args.state_dir) if args.state_dir else default_state_dir()
    found: list[dict[str, Any]] = []
    unreadable = 0
    for path in sorted(root.glob("*/*.msgpack")) if root.is_dir() else []:
        try:
            record = read_snapshot(path)
        except SnapshotError as exc:
            unreadable += 1
            _error(str(exc))
            continue
        found.append(
            {
                "run_id": record.run_id,
                "workflow": record.workflow,
                "status": record.status,
                "created_at": record.created_at,
                "updated_at": record.updated_at,
                "snapshot": str(path),
            }
        )
    found.sort(key=lambda r: (r["workflow"], -r["created_at"]))
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
        return EXIT_INPUT if unreadable else EXIT_OK
    if not found:
        console.print(f"no runs in {root}")
    current = None
    for run in found:
        if run["workflow"] != current:
            current = run["workflow"]
            console.print(f"{current}:")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["created_at"]))
        console.print(f"  {run['run_id']}  {run['status']:<10} {stamp}")
    return EXIT_INPUT if unreadable else EXIT_OK


_COMMANDS = {
    "validate": _validate,
    "plan": _plan,
    "run": _run,
    "resume": _resume,
    "inspect": _inspect,
    "runs": _runs,
    "test": run_test,
}
