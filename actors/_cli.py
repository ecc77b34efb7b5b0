"""The ``wavecrest`` command line.

Exit status: 0 completed, 1 the workflow failed (or timed out), 2 bad input
(a workflow file, an argument, a config value, a snapshot), 3 paused at a
checkpoint, 130 interrupted (the snapshot is saved and the run resumable).

A command's *result* goes to stdout, so it can be piped (``wavecrest runs |
grep failed``): the plan in every format, ``validate``'s verdicts, the
``runs`` table, the ``inspect`` view, ``run``/``resume``'s final summary (the
status line, the node table, the errors, the snapshot line) and ``--version``.
*Diagnostics* go to stderr: progress, live logs, hints, warnings and errors.
With ``--json`` (or ``plan --format json|dot|html``) stdout holds exactly that
one document; ``report`` and ``plan -o FILE`` print the path of the file they
wrote. Commands write through :class:`Streams`, which keeps the two apart
and gives each its own console, so colours appear only on a stream that is a
terminal (and never under ``NO_COLOR``). Bad input is reported in one line
per problem — ``FILE:LINE:COL: error: MESSAGE`` for workflow files,
``wavecrest: error: MESSAGE`` otherwise — never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from rich.text import Text
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
    status_text,
    with_pending,
)
from ._logging import EVENTS, LIBRARY, NODES
from ._plugins import add_plugin_option, load_plugins
from ._prepare import default_state_dir, find_snapshot
from ._runtime import Runtime
from ._testcmd import add_test_parser, run_test

__all__ = ["Streams", "main"]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_PAUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Streams:
    """Where a command writes: its result to stdout, its diagnostics to stderr.

    ``out`` and ``err`` are rich consoles on the two streams, each deciding
    on colour for its own stream (a terminal and no ``NO_COLOR``). Commands
    print what they produce with :meth:`result` (or :meth:`document` for a
    machine-readable document), and progress, hints and warnings with
    :meth:`diagnostic`; :meth:`error` is the one-line ``wavecrest: error:``.
    """

    def __init__(self) -> None:
        self.out = make_console(sys.stdout)
        self.err = make_console(sys.stderr)

    def result(self, *objects: Any) -> None:
        """Print part of the command's result (text or a rich renderable) on stdout."""
        self.out.print(*objects)

    def document(self, text: str) -> None:
        """Write a machine-readable document (JSON, DOT) on stdout, exactly as given."""
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()

    def diagnostic(self, *objects: Any) -> None:
        """Print a diagnostic (a hint, a note, a warning) on stderr."""
        self.err.print(*objects)

    def error(self, message: str) -> None:
        """Report an error on stderr as one ``wavecrest: error: MESSAGE`` line."""
        _error(message)


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


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
    plan_cmd.add_argument("--format", choices=("text", "json", "dot", "html"), default="text")
    plan_cmd.add_argument("--mode", choices=("eager", "waves"), default=None)
    plan_cmd.add_argument(
        "-o", "--output", metavar="FILE", help="with --format html: write the page to FILE"
    )

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
    _executor_option(run)
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
    _executor_option(resume)
    _output_options(resume)

    inspect = commands.add_parser("inspect", help="show a run's status, nodes and errors")
    inspect.add_argument("run", metavar="RUN", help="a run id or a snapshot path")
    inspect.add_argument("--state-dir", metavar="DIR")
    inspect.add_argument("--json", action="store_true", help="print JSON on stdout")

    runs = commands.add_parser("runs", help="list runs, grouped by workflow, newest first")
    runs.add_argument("--state-dir", metavar="DIR")
    runs.add_argument("--json", action="store_true", help="print JSON on stdout")

    report = commands.add_parser(
        "report", help="write a run's HTML report: graph, timeline, nodes and errors"
    )
    report.add_argument("run", metavar="RUN", help="a run id or a snapshot path")
    report.add_argument(
        "-o", "--output", metavar="FILE", help="the file to write (default: RUN_ID.html)"
    )
    report.add_argument("--state-dir", metavar="DIR")
    add_test_parser(commands, _positive)
    for command in (validate, plan_cmd, run, resume, report):
        add_plugin_option(command)
    return parser


def _executor_option(parser: argparse.ArgumentParser) -> None:
    # Checked when the Runtime opens it: a bad value or an unreachable scheduler is
    # an ExecutorError, so exit 2 with one line.
    parser.add_argument(
        "--executor",
        metavar="EXECUTOR",
        help="where node attempts run: local (default) or dask://HOST:PORT",
    )


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


@contextlib.contextmanager
def _diagnostics_on_stderr() -> Iterator[None]:
    """While the CLI runs, wavecrest's own diagnostics (a failing callback, a snapshot that
    could not be written) go to stderr; stdout is for machine-readable output only. Run
    events are the console view's, runtimes' log lines the run log's: their loggers stop
    propagating meanwhile."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%H:%M:%S"))
    library = logging.getLogger(LIBRARY)
    quiet = [logging.getLogger(EVENTS), logging.getLogger(NODES)]
    propagate = [logger.propagate for logger in quiet]
    library.addHandler(handler)
    for logger in quiet:
        logger.propagate = False
    try:
        yield
    finally:
        library.removeHandler(handler)
        for logger, before in zip(quiet, propagate, strict=True):
            logger.propagate = before


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    with _diagnostics_on_stderr():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    streams = Streams()
    try:
        args = _parser().parse_args(argv)
        if args.version:
            from importlib.metadata import version

            streams.result(f"wavecrest {version('wavecrest')}")
            return EXIT_OK
        if args.command is None:
            raise _ArgumentError(
                "a command is required: validate, plan, run, resume, inspect, runs, report or test"
            )
        load_plugins(getattr(args, "plugins", ()))
        handler = _COMMANDS[args.command]
        return handler(args, streams)
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


def _validate(args: argparse.Namespace, streams: Streams) -> int:
    """An ``ok`` verdict per good file on stdout; each bad file's diagnostics on stderr."""
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
        streams.result(f"{file}: ok ({workflow.name}, {count} nodes)")
    return status


def _plan(args: argparse.Namespace, streams: Streams) -> int:
    if args.output is not None and args.format != "html":
        raise _ArgumentError("-o/--output needs --format html")
    workflow = load_workflow(args.file)
    planned = plan(workflow)
    if args.format == "html":
        return _plan_html(planned, args.output, streams)
    mode = args.mode or workflow.runtime.mode or "eager"
    if args.format == "json":
        streams.document(planned.render_json())
    elif args.format == "dot":
        streams.document(planned.render_dot())
    else:
        streams.result(planned.render_text(mode))
    return EXIT_OK


def _plan_html(planned: Plan, output: str | None, streams: Streams) -> int:
    from ._report import render_plan_report, write_text

    page = render_plan_report(planned)
    if output is None:
        streams.document(page)
    else:
        write_text(Path(output), page)
        streams.document(output)
    return EXIT_OK


# --- run and resume ----------------------------------------------------------------


def _run(args: argparse.Namespace, streams: Streams) -> int:
    workflow = load_workflow(args.file)
    config = parse_assignments(args.set, option="--set")
    secrets = parse_assignments(args.secret, option="--secret")
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    progress = make_progress(streams.err, quiet=args.quiet, total=0, verbose=args.verbose)
    with Runtime(
        max_concurrency=args.max_concurrency or workflow.runtime.max_concurrency or 8,
        executor=args.executor,
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
        args, streams, result, interrupted, workflow_file=args.file, planned=plan(workflow)
    )


def _resume(args: argparse.Namespace, streams: Streams) -> int:
    config = parse_assignments(args.set, option="--set")
    secrets = parse_assignments(args.secret, option="--secret")
    approve = True if args.approve else False if args.reject else None
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()
    progress = make_progress(streams.err, quiet=args.quiet, total=0, verbose=args.verbose)
    with Runtime(executor=args.executor) as runtime:
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
            note = f"run {handle.run_id} already completed; nothing to do"
            result = handle.result()
            if args.json:
                streams.diagnostic(note)
                streams.document(_json(result.to_json()))
            else:
                streams.result(note)
            return EXIT_OK
        result, interrupted = _wait(handle)
    if progress is not None:
        progress.close()
    workflow_file, planned = None, None
    if result.snapshot_path:
        record = read_snapshot(result.snapshot_path)
        workflow_file = record.workflow_path if args.append_log else None
        planned = _plan_of(record)
    return _report(args, streams, result, interrupted, workflow_file=workflow_file, planned=planned)


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
    streams: Streams,
    result: RunResult,
    interrupted: bool,
    *,
    workflow_file: str | None,
    planned: Plan | None = None,
) -> int:
    """The run's result on stdout (its summary, or ``--json``); what to do next on stderr."""
    if args.json:
        streams.document(_json(result.to_json()))
    elif not args.quiet:
        print_summary(streams.out, result, planned=planned)
    elif result.errors:
        # Quiet means no progress and no summary, but a failure is never silent.
        print_errors(streams.err, result.errors)
    if getattr(args, "append_log", False) and workflow_file:
        from wavecrest.core._execlog import append_execution_log

        try:
            append_execution_log(workflow_file, result)
        except (OSError, WavecrestError) as exc:
            streams.error(f"could not append to the Execution Log of {workflow_file}: {exc}")
    if interrupted and result.status == "cancelled":
        if result.snapshot_path:
            streams.diagnostic(f"resume with: wavecrest resume {result.run_id}")
        return EXIT_INTERRUPTED
    if result.status == "completed":
        return EXIT_OK
    if result.status == "paused":
        streams.diagnostic(
            f"paused: {result.reason}; continue with: wavecrest resume {result.run_id} --approve"
            " (or --reject)"
        )
        return EXIT_PAUSED
    if result.status == "cancelled" and result.snapshot_path:
        streams.diagnostic(f"resume with: wavecrest resume {result.run_id}")
    return EXIT_FAILED


# --- inspect and runs ---------------------------------------------------------------


def _inspect(args: argparse.Namespace, streams: Streams) -> int:
    path = find_snapshot(args.run, args.state_dir)
    record = read_snapshot(path)
    result = record.to_result(str(path))
    if args.json:
        streams.document(
            _json(
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
                }
            )
        )
        return EXIT_OK
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.updated_at))
    streams.result(f"run {record.run_id} of {record.workflow}: {record.status} (updated {stamp})")
    if record.reason:
        streams.result(f"  {record.reason}")
    streams.result(f"  snapshot: {path}")
    if record.workflow_path:
        streams.result(f"  workflow: {record.workflow_path}")
    print_nodes(streams.out, with_pending(result.nodes, _plan_of(record)))
    print_errors(streams.out, result.errors)
    return EXIT_OK


def _runs(args: argparse.Namespace, streams: Streams) -> int:
    root = Path(args.state_dir) if args.state_dir else default_state_dir()
    found: list[dict[str, Any]] = []
    unreadable = 0
    for path in sorted(root.glob("*/*.msgpack")) if root.is_dir() else []:
        try:
            record = read_snapshot(path)
        except SnapshotError as exc:
            unreadable += 1
            streams.error(str(exc))
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
        streams.document(json.dumps(found, ensure_ascii=False))
        return EXIT_INPUT if unreadable else EXIT_OK
    if not found:
        # Like an empty listing elsewhere: nothing on stdout, a note for people.
        streams.diagnostic(f"no runs in {root}")
    current = None
    for run in found:
        if run["workflow"] != current:
            current = run["workflow"]
            streams.result(f"{current}:")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run["created_at"]))
        line = Text.assemble(f"  {run['run_id']}  ", status_text(run["status"], 10), f" {stamp}")
        streams.result(line)
    return EXIT_INPUT if unreadable else EXIT_OK


def _report_run(args: argparse.Namespace, streams: Streams) -> int:
    from ._report import write_report

    streams.document(str(write_report(args.run, args.output, state_dir=args.state_dir)))
    return EXIT_OK


_COMMANDS = {
    "validate": _validate,
    "plan": _plan,
    "run": _run,
    "resume": _resume,
    "inspect": _inspect,
    "runs": _runs,
    "report": _report_run,
    "test": run_test,
}
