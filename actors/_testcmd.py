"""``wavecrest test FILE``: explore seeded fault plans of a workflow in simulation.

The exploration itself is :func:`wavecrest.core.testing._explore.explore`
(pure, imported only when the command runs); this module turns its report
into the command's output. Results go
to stdout — the summary, or the minimal fault file that breaks the
workflow, which is a YAML document ``wavecrest run --faults`` reads — and
diagnostics to stderr: the progress line (on a terminal only) and one line
saying what broke. With ``--json`` stdout holds one JSON document whose only
field that changes between two runs with the same seed is ``time``.

Exit status: 0 nothing broke, 1 a case broke the workflow, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

import yaml
from wavecrest.core import load_workflow
from wavecrest.core._config import parse_assignments

from ._plugins import add_plugin_option

if TYPE_CHECKING:
    from wavecrest.core.testing._explore import Exploration, Finding

__all__ = ["add_test_parser", "run_test"]

DEFAULT_RUNS = 200


def add_test_parser(commands: Any, positive: Any) -> None:
    """Register the ``test`` subcommand on the CLI's subparsers (``positive``: its int type)."""
    test = commands.add_parser(
        "test", help="explore seeded fault plans in simulation; print the smallest that breaks it"
    )
    test.add_argument("file", metavar="FILE")
    test.add_argument(
        "--runs", type=positive, default=DEFAULT_RUNS, metavar="N", help="fault plans to try"
    )
    test.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the exploration")
    test.add_argument("--max-concurrency", type=positive, metavar="N")
    test.add_argument("--mode", choices=("eager", "waves"))
    test.add_argument(
        "--crash", action="store_true", help="also crash each run at a random point and resume it"
    )
    test.add_argument("--keep-going", action="store_true", help="simulate under keep-going")
    test.add_argument("--set", action="append", default=[], metavar="K=V", help="a config value")
    test.add_argument("--secret", action="append", default=[], metavar="K=V", help="a secret")
    test.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_plugin_option(test)


def _reproduce(args: argparse.Namespace, finding: Finding) -> str:
    words = ["wavecrest", "run", args.file, "--faults", "FAULTS.yaml", "--seed", str(finding.seed)]
    if args.max_concurrency:
        words += ["--max-concurrency", str(args.max_concurrency)]
    if args.mode:
        words += ["--mode", args.mode]
    if args.keep_going:
        words.append("--keep-going")
    for item in args.set:
        words += ["--set", item]
    for plugin in args.plugins:
        words += ["-p", plugin]
    return shlex.join(words)


def fault_file(args: argparse.Namespace, report: Exploration, finding: Finding) -> str:
    """The minimal fault plan as a YAML fault file, its header comments saying what broke."""
    what = "this fault plan breaks" if finding.faults.get("rules") else "it breaks, without faults,"
    lines = [f"# wavecrest test {args.file} --seed {args.seed}: {what} the workflow"]
    lines += [f"#   {problem}" for problem in finding.problems]
    if report.runs:
        lines.append(
            f"# found after {report.runs} run(s), shrunk in {report.shrinks} more; "
            f"the run ends {finding.status}"
        )
    if finding.crash_after is not None:
        lines.append(
            f"# the process crashed after {finding.crash_after} attempt outcome(s) and the run "
            "was resumed: run it, kill it there, then resume it"
        )
    lines.append(f"# save this file as FAULTS.yaml; reproduce: {_reproduce(args, finding)}")
    body = yaml.safe_dump(finding.faults, sort_keys=False, default_flow_style=None, width=100)
    return "\n".join(lines) + "\n" + body


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"


def _summary(args: argparse.Namespace, report: Exploration, seconds: float) -> str:
    crash = " with a crash and a resume each" if report.crash else ""
    injected = sum(report.faults.values())
    return "\n".join(
        [
            f"{args.file}: {report.runs} run(s){crash}, nothing broke (seed {report.seed})",
            f"  statuses: {_counts(report.statuses)}",
            f"  faults injected: {injected} ({_counts(report.faults)})",
            f"  time: {seconds:.2f}s",
        ]
    )


def _document(args: argparse.Namespace, report: Exploration, seconds: float) -> dict[str, Any]:
    finding = report.finding
    violation = None
    if finding is not None:
        violation = {
            "problems": list(finding.problems),
            "status": finding.status,
            "seed": finding.seed,
            "crash_after": finding.crash_after,
            "faults": finding.faults,
            "fault_file": fault_file(args, report, finding),
            "reproduce": _reproduce(args, finding),
        }
    return {
        "file": args.file,
        "workflow": report.workflow,
        "seed": report.seed,
        "ok": report.ok,
        "runs": report.runs,
        "shrinks": report.shrinks,
        "crash": report.crash,
        "statuses": dict(sorted(report.statuses.items())),
        "faults": dict(sorted(report.faults.items())),
        "violation": violation,
        "time": round(seconds, 3),
    }


class _Progress:
    """``  37/200 runs`` rewritten in place on a terminal's stderr; nothing otherwise."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        self.shown = True
        print(f"\r  {done}/{total} runs", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)


def run_test(args: argparse.Namespace, console: Any) -> int:
    """The ``test`` command (see the module docstring)."""
    # Imported here: the toolkit pulls in hypothesis, which the other commands never need.
    from wavecrest.core.testing._explore import explore

    del console  # results are plain text on stdout
    workflow = load_workflow(args.file)
    config = parse_assignments(args.set, option="--set")
    secrets = parse_assignments(args.secret, option="--secret")
    progress = _Progress() if sys.stderr.isatty() else None
    started = time.perf_counter()
    try:
        report = explore(
            workflow,
            runs=args.runs,
            seed=args.seed,
            max_concurrency=args.max_concurrency,
            mode=args.mode,
            crash=args.crash,
            keep_going=True if args.keep_going else None,
            config=config,
            secrets=secrets,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.close()
    seconds = time.perf_counter() - started
    finding = report.finding
    if args.json:
        print(json.dumps(_document(args, report, seconds), ensure_ascii=False, default=repr))
    elif finding is None:
        print(_summary(args, report, seconds))
    else:
        sys.stdout.write(fault_file(args, report, finding))
    if finding is not None:
        faults = len(finding.faults.get("rules", []))
        under = f"under {faults} fault rule(s)" if faults else "without any fault"
        print(
            f"wavecrest: {args.file} breaks {under} (seed {finding.seed}): {finding.problems[0]}",
            file=sys.stderr,
        )
        return 1
    return 0
