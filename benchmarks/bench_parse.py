"""How validating a workflow file grows with its size, and what hostile files cost.

Parses (``parse_workflow``: everything ``wavecrest validate`` does) files of
several shapes at each size: many nodes whose templates share expressions,
many nodes whose templates are all different, nodes without templates, a big
Markdown prose part, a big front matter, one node with a big YAML config
element, and one huge template attribute. Each timing is the best of
``--repeat`` runs with the caches cleared and the garbage collector off. The
table gives seconds per MB and, per shape, the ratio of s/MB at the largest
size to s/MB at the smallest: near 1 means linear growth. A second table
times the hostile files of the bad-input corpus (each must be refused
quickly, whatever it asks for).

    python -m benchmarks.bench_parse [--sizes 1,5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from wavecrest.core import WavecrestError, parse_workflow
from wavecrest.core._expr import (
    _parse_output_expression,
    compile_expression,
    compile_template,
    expression_references,
    template_references,
)

from .bench_plan import best_of

FRONT = "---\nname: big\nconfig:\n  label: {type: string, default: rows}\n---\n"


def _grow(megabytes: float, item: Callable[[int], str]) -> str:
    parts = []
    size = 0
    i = 0
    while size < megabytes * 1_000_000:
        part = item(i)
        parts.append(part)
        size += len(part)
        i += 1
    return "".join(parts)


def _nodes(template: Callable[[int], str]) -> Callable[[float], str]:
    def build(megabytes: float) -> str:
        def node(i: int) -> str:
            previous = f"t{i - 1}" if i else "seed"
            return (
                f'  <transform id="t{i}" type="template" input="{previous}" '
                f'template="{template(i)}" description="step {i} of a long pipeline"/>\n'
            )

        body = _grow(megabytes, node)
        return (
            f'{FRONT}<workflow>\n  <transform id="seed" type="template" template="s"/>\n'
            f"{body}</workflow>\n"
        )

    return build


def _prose(megabytes: float) -> str:
    text = _grow(megabytes, lambda i: f"Line {i} of the prose around the workflow, ignored.\n")
    return f'{FRONT}{text}<workflow>\n  <delay id="d" duration="0"/>\n</workflow>\n'


def _front_matter(megabytes: float) -> str:
    fields = _grow(megabytes, lambda i: f"  k{i}: {{type: string, default: 'value number {i}'}}\n")
    body = '<workflow>\n  <delay id="d" duration="0"/>\n</workflow>\n'
    return f"---\nname: big\nconfig:\n{fields}---\n{body}"


def _config_element(megabytes: float) -> str:
    entries = _grow(megabytes, lambda i: f"      key{i}: value {i} {{{{ config.label }}}}\n")
    return (
        f'{FRONT}<workflow>\n  <sink id="s" type="file" path="out.json">\n'
        f"    <format>json</format>\n    <headers>\n{entries}    </headers>\n  </sink>\n"
        "</workflow>\n"
    )


def _one_attribute(megabytes: float) -> str:
    text = _grow(megabytes, lambda i: f"row {i} {{{{ config.label }}}} ")
    return (
        f'{FRONT}<workflow>\n  <transform id="t" type="template" template="{text}"/>\n</workflow>\n'
    )


SHAPES: dict[str, Callable[[float], str]] = {
    "nodes, shared templates": _nodes(
        lambda i: f"row {i}: {{{{ input | string | truncate(20) }}}} of {{{{ config.label }}}}"
    ),
    "nodes, distinct paths": _nodes(lambda i: f"{{{{ t{i - 1}.output }}}}" if i else "first"),
    "nodes, distinct templates": _nodes(
        lambda i: f"{{{{ (t{i - 1 if i else 0}.output | length) + {i} }}}}" if i else "first"
    ),
    "nodes, no templates": _nodes(lambda i: f"row {i} of the rows"),
    "prose": _prose,
    "front matter": _front_matter,
    "config element": _config_element,
    "one attribute": _one_attribute,
}


def _clear_caches() -> None:
    for cache in (
        compile_template,
        compile_expression,
        template_references,
        expression_references,
        _parse_output_expression,
    ):
        cache.cache_clear()


def _validate(text: str) -> Callable[[], object]:
    def call() -> object:
        _clear_caches()
        try:
            return parse_workflow(text)
        except WavecrestError as exc:
            return exc

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_parse", description=__doc__)
    parser.add_argument("--sizes", default="1,5", help="file sizes in MB (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (best kept)")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({float(size) for size in args.sizes.split(",")})
    except ValueError:
        parser.error(f"invalid --sizes {args.sizes!r}: expected numbers like 1,5")
    if not sizes or sizes[0] <= 0 or args.repeat < 1:
        parser.error("sizes must be positive and --repeat at least 1")
    parse_workflow(SHAPES["nodes, shared templates"](0.01))  # warm up: imports, registry

    print(f"python {sys.version.split()[0]}, best of {args.repeat}, caches cleared each run")
    print()
    print(f"| {'shape':<26} | {'MB':>6} | {'seconds':>8} | {'s/MB':>6} |")
    print(f"|{'-' * 28}|{'-' * 8}|{'-' * 10}|{'-' * 8}|")
    growth: dict[str, list[float]] = {}
    failed = False
    for shape, build in SHAPES.items():
        for size in sizes:
            text = build(size)
            megabytes = len(text.encode()) / 1_000_000
            seconds, result = best_of(args.repeat, _validate(text))
            if isinstance(result, WavecrestError):
                print(f"{shape} at {size} MB did not parse: {result}", file=sys.stderr)
                failed = True
            per = seconds / megabytes
            growth.setdefault(shape, []).append(per)
            print(f"| {shape:<26} | {megabytes:>6.2f} | {seconds:>8.3f} | {per:>6.3f} |")
    print()
    print("s/MB at the largest size / s/MB at the smallest (near 1: linear):")
    for shape, per in growth.items():
        print(f"  {shape:<26} {per[-1] / per[0]:.2f}")
    print()
    print(_hostile(args.repeat))
    return 1 if failed else 0


def _hostile(repeat: int) -> str:
    """Seconds to refuse (or accept) each hostile file of the bad-input corpus."""
    sys.path.insert(0, "tests")
    from test_bad_files import GENERATED  # type: ignore[import-not-found]
    from test_bad_input import BAD_FILES  # type: ignore[import-not-found]

    cases = {name: text.encode() for name, (text, _) in GENERATED.items()} | BAD_FILES
    lines = [
        f"| {'hostile file':<32} | {'KB':>7} | {'seconds':>8} |",
        f"|{'-' * 34}|{'-' * 9}|{'-' * 10}|",
    ]
    for name, data in cases.items():
        seconds, _ = best_of(repeat, _validate(data))  # type: ignore[arg-type]
        lines.append(f"| {name:<32} | {len(data) / 1000:>7.1f} | {seconds:>8.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
