"""Workflows built in code: the same frozen model as the parser's, the same checks, and
errors located at the caller's lines."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wavecrest.actors import resume_workflow, run_workflow
from wavecrest.core import (
    Diagnostic,
    Retry,
    RuntimeContext,
    Simulation,
    Workflow,
    WorkflowBuilder,
    WorkflowError,
    load_workflow,
    parse_workflow,
    register_runtime,
    unregister_runtime,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HERE = __file__


def here() -> int:
    """The caller's line number."""
    return sys._getframe(1).f_lineno


def build_reports() -> Workflow:
    """examples/reports.flow.md, in code."""
    wb = Workflow.build(
        "reports",
        version="1.0.0",
        description="Yearly sales scorecards per region, a summary and a verdict.",
        config={
            "out_dir": {
                "type": "string",
                "default": "out",
                "description": "Where the scorecards and the summary go",
            },
            "max_regions": {
                "type": "integer",
                "default": 3,
                "description": "Report on this many regions, largest first",
            },
            "warn_at": {
                "type": "number",
                "default": 90,
                "description": "Below this percentage of target the year is behind",
            },
        },
    )
    sales = wb.source("sales", "file", path="data/sales.csv", format="csv")
    regions = wb.source("regions", "file", path="data/regions.yaml", format="yaml")
    with wb.foreach(
        "per-region", f"{regions}.output", item="region", index="rank", concurrency=2
    ) as region:
        rows = region.transform(
            "rows", "filter", input=sales, condition="item.region == region.name"
        )
        region.transform(
            "revenue", "reduce", input=rows, expression="acc + (item.revenue | int)", initial=0
        )
        region.transform(
            "units", "reduce", input=rows, expression="acc + (item.units | int)", initial=0
        )
        region.break_("enough", "rank + 1 >= config.max_regions")
        region.transform(
            "scorecard",
            "template",
            template="{{ {'region': region.name, 'manager': region.manager, "
            "'units': units.output, 'revenue': revenue.output, 'target': region.target, "
            "'score': (100 * revenue.output / region.target) | round(1)} }}",
        )
    with wb.parallel("summaries", input="per-region", wait="all", merge="object") as summaries:
        with summaries.branch("totals") as totals:
            total = totals.transform(
                "sum",
                "reduce",
                expression="{'revenue': acc.revenue + item.revenue, "
                "'target': acc.target + item.target}",
                initial="{'revenue': 0, 'target': 0}",
            )
            totals.transform(
                "overall",
                "template",
                input=total,
                template="{{ dict(input, score=(100 * input.revenue / input.target) | round(1)) }}",
            )
        with summaries.branch("best") as best:
            best.transform(
                "top",
                "reduce",
                expression="item if acc is none or item.score > acc.score else acc",
            )
            best.transform("top-name", "template", input="top", template="{{ input.region }}")
        with summaries.branch("below_target") as below:
            below.transform("short", "filter", condition="item.score < 100")
            below.transform("short-names", "map", input="short", expression="item.region")
    with wb.branch("verdict") as verdict:
        with verdict.case("summaries.output.totals.score >= 100") as on_track:
            on_track.transform(
                "on-track",
                "template",
                template="on track: {{ summaries.output.totals.score }}% of target",
            )
        with verdict.case("summaries.output.totals.score >= config.warn_at") as at_risk:
            at_risk.transform(
                "at-risk",
                "template",
                template="at risk: {{ summaries.output.totals.score }}% of target, "
                "{{ summaries.output.below_target | join(', ') }} below",
            )
        with verdict.default() as behind:
            behind.transform(
                "behind",
                "template",
                template="behind: {{ summaries.output.totals.score }}% of target, "
                "{{ summaries.output.below_target | join(', ') }} below",
            )
    wb.sink(
        "save-scorecards",
        "file",
        input="per-region",
        path="{{ config.out_dir }}/scorecards.csv",
        format="csv",
    )
    summary = wb.transform(
        "summary",
        "template",
        template="{{ dict(summaries.output, regions=nodes['per-region'].output | length, "
        "verdict=verdict.output) }}",
    )
    wb.sink(
        "save-summary",
        "file",
        input=summary,
        path="{{ config.out_dir }}/summary.yaml",
        format="yaml",
    )
    return wb.workflow()


def build_capacity() -> Workflow:
    """examples/capacity.flow.md, in code."""
    wb = Workflow.build(
        "capacity",
        version="1.0.0",
        description="Project user growth month by month and size the server fleet before it "
        "runs out.",
        config={
            "out_dir": {
                "type": "string",
                "default": "out",
                "description": "Where the projection and the plan go",
            },
            "horizon": {
                "type": "integer",
                "default": 12,
                "description": "How many months ahead to project",
            },
            "headroom": {
                "type": "number",
                "default": 0.2,
                "description": "Spare capacity to keep, as a fraction of users",
            },
        },
    )
    load = wb.source("load", "file", path="data/capacity.yaml", format="yaml")
    header = wb.transform(
        "header",
        "template",
        input=load,
        template="{{ input.service }}: month users capacity "
        "(servers x {{ input.users_per_server }})",
    )
    wb.sink(
        "log-start",
        "file",
        input=header,
        path="{{ config.out_dir }}/projection.txt",
        format="lines",
    )
    with wb.while_(
        "project",
        "iteration == 0 or (month.output.users <= month.output.capacity and "
        "month.output.month < config.horizon)",
        input=load,
        max=120,
    ) as project:
        line = project.transform(
            "line",
            "template",
            input="month",
            template="{{ input.month }} {{ input.users }} {{ input.capacity }}",
        )
        project.sink(
            "log-month",
            "file",
            input=line,
            path="{{ nodes['log-start'].output.path }}",
            format="lines",
            mode="append",
        )
        project.transform(
            "month",
            "template",
            template="{{ dict(input, month=input.month + 1, users=(input.users * "
            "(1 + input.growth)) | round | int, capacity=input.servers * "
            "input.users_per_server) }}",
        )
    with wb.if_("verdict", "project.output.users > project.output.capacity") as verdict:
        with verdict.then() as grow:
            with grow.loop(
                "provision",
                50,
                input="project",
                break_when="boot.output.capacity >= boot.output.users * (1 + config.headroom)",
            ) as provision:
                added = provision.transform(
                    "add-server",
                    "template",
                    template="{{ dict(input, servers=input.servers + 1, "
                    "capacity=(input.servers + 1) * input.users_per_server) }}",
                )
                provision.delay("boot", "50ms", input=added)
            grow.transform(
                "grow",
                "template",
                input="provision",
                template="{{ {'action': 'grow', 'month': input.month, 'users': input.users, "
                "'servers': input.servers, 'add': input.servers - load.output.servers} }}",
            )
        with verdict.else_() as keep:
            keep.transform(
                "keep",
                "template",
                input="project",
                template="{{ {'action': 'keep', 'month': input.month, 'users': input.users, "
                "'servers': input.servers, 'add': 0} }}",
            )
    advice = wb.transform(
        "advice",
        "template",
        input="verdict",
        template="{{ load.output.service }}: {% if input.action == 'grow' %}{{ input.users }} "
        "users outgrow {{ load.output.servers }} servers in month {{ input.month }}; add "
        "{{ input.add }} (to {{ input.servers }}){% else %}{{ input.servers }} servers last "
        "the {{ config.horizon }}-month horizon ({{ input.users }} users in month "
        "{{ input.month }}){% endif %}",
    )
    wb.sink(
        "save-advice", "file", input=advice, path="{{ config.out_dir }}/advice.txt", format="text"
    )
    wb.sink(
        "save-plan", "file", input="verdict", path="{{ config.out_dir }}/plan.json", format="json"
    )
    return wb.workflow()


@pytest.mark.parametrize(
    ("build", "file"),
    [(build_reports, "reports.flow.md"), (build_capacity, "capacity.flow.md")],
)
@pytest.mark.usefixtures("no_new_threads")
def test_a_workflow_built_in_code_equals_the_file_and_runs_the_same(
    build: Any, file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of node, built and parsed: equal models, equal outputs."""
    built = build()
    parsed = load_workflow(EXAMPLES / file)
    assert built == parsed
    assert built.digest != parsed.digest  # the source texts differ; the workflows do not
    from_file = run_workflow(parsed, config={"out_dir": str(tmp_path / "file")}, seed=1)
    # A built workflow has no file: relative paths resolve against the working directory.
    monkeypatch.chdir(EXAMPLES)
    from_code = run_workflow(built, config={"out_dir": str(tmp_path / "code")}, seed=1)
    assert from_file.status == from_code.status == "completed"
    assert _without_dir(from_code.outputs, "code") == _without_dir(from_file.outputs, "file")


def _without_dir(value: Any, name: str) -> Any:
    """Outputs with the run's output folder name taken out of the paths they mention."""
    if isinstance(value, dict):
        return {key: _without_dir(item, name) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_dir(item, name) for item in value]
    if isinstance(value, str):
        return value.replace(f"/{name}/", "/OUT/")
    return value


FRONT = """---
name: gated
version: "2"
config:
  region: eu
  limit: {type: integer, required: true}
secrets: [API_TOKEN]
runtime: {max_concurrency: 2, timeout: 5m, mode: waves, grace: 1s}
---
<workflow>
  <transform id="ask" type="template" template="{{ config.region }}" timeout="10s"
             description="The first step">
    <on-error>
      <retry max="2" backoff="fixed" base="10ms"/>
      <fallback node="backup"/>
    </on-error>
  </transform>
  <transform id="backup" type="template" template="backup for {{ error.type }}"/>
  <transform id="shape" type="map" input="ask">
    <expression>item</expression>
    <headers>
      Authorization: "Bearer {{ secrets.API_TOKEN }}"
      Accept: [json, "a &lt; b &amp; c"]
    </headers>
  </transform>
  <checkpoint id="gate" input="shape" prompt="Ship {{ config.region }}?" timeout="1s"
              default="approve"/>
  <parallel id="race" wait="n(1)" merge="concat" max-concurrency="1">
    <branch><delay id="slow" duration="1.5"/></branch>
    <branch><delay id="fast" duration="0.25"/></branch>
  </parallel>
</workflow>
"""


def build_gated() -> WorkflowBuilder:
    wb = Workflow.build(
        "gated",
        version="2",
        config={"region": "eu", "limit": {"type": "integer", "required": True}},
        secrets=["API_TOKEN"],
        runtime={"max_concurrency": 2, "timeout": "5m", "mode": "waves", "grace": "1s"},
    )
    ask = wb.transform(
        "ask",
        "template",
        template="{{ config.region }}",
        timeout="10s",
        description="The first step",
        retry=Retry(max=2, backoff="fixed", base="10ms"),
        fallback="backup",
    )
    wb.transform("backup", "template", template="backup for {{ error.type }}")
    shape = wb.transform(
        "shape",
        "map",
        input=[ask],
        expression="item",
        headers={
            "Authorization": "Bearer {{ secrets.API_TOKEN }}",
            "Accept": ["json", "a < b & c"],
        },
    )
    wb.checkpoint(
        "gate", input=shape, prompt="Ship {{ config.region }}?", timeout=1, default="approve"
    )
    with wb.parallel("race", wait=1, merge="concat", max_concurrency=1) as race:
        race.branch().delay("slow", 1.5)
        race.branch().delay("fast", "0.25")
    return wb


def test_front_matter_on_error_mappings_checkpoints_and_parallel_options_match() -> None:
    built = build_gated().workflow()
    parsed = parse_workflow(FRONT)
    assert built == parsed
    assert built.node("shape").config["headers"]["Accept"] == ["json", "a < b & c"]
    assert built.runtime.timeout == 300.0


def test_a_built_workflows_source_parses_back_to_it() -> None:
    built = build_gated().workflow()
    assert parse_workflow(built.source) == built
    assert built.path is None


def test_nodes_of_a_built_workflow_are_located_where_they_were_declared() -> None:
    wb = Workflow.build("located")
    line = here() + 1
    wb.transform("a", "template", template="1")
    with wb.foreach("each", "{{ [1, 2] }}") as body:
        inner = here() + 1
        body.transform("b", "template", template="{{ item }}")
    workflow = wb.workflow()
    a, each, b = (node for node, _ in workflow.iter_nodes())
    assert (a.loc.file, a.loc.line, a.loc.column) == (HERE, line, 5)
    assert (each.loc.file, each.loc.line) == (HERE, line + 1)
    assert (b.loc.file, b.loc.line, b.loc.column) == (HERE, inner, 9)


def errors(wb: WorkflowBuilder) -> list[Diagnostic]:
    with pytest.raises(WorkflowError) as caught:
        wb.workflow()
    return list(caught.value.diagnostics)


def test_duplicate_ids_are_reported_at_the_second_declaration() -> None:
    wb = Workflow.build("dup")
    first = here() + 1
    wb.transform("a", "template", template="1")
    second = here() + 1
    wb.transform("a", "template", template="2")
    (error,) = errors(wb)
    assert (error.file, error.line) == (HERE, second)
    assert error.message == f"duplicate id 'a' (first defined at {HERE}:{first}:5)"


def test_unknown_references_and_types_are_reported_at_their_lines() -> None:
    wb = Workflow.build("refs")
    unknown_input = here() + 1
    wb.transform("a", "template", input="ghost", template="1")
    unknown_name = here() + 1
    wb.transform("b", "template", template="{{ phantom.output }}")
    unknown_type = here() + 1
    wb.transform("c", "no-such-type")
    found = {(e.line, e.message.split(";")[0]) for e in errors(wb)}
    assert found == {
        (unknown_input, "unknown input 'ghost' referenced by 'a'"),
        (unknown_name, "unknown name 'phantom' in a template of 'b'"),
        (unknown_type, "unknown node type 'transform:no-such-type'"),
    }


def test_a_cycle_is_named_and_located() -> None:
    wb = Workflow.build("loop")
    line = here() + 1
    wb.transform("x", "template", input="y", template="1")
    wb.transform("y", "template", input="x", template="2")
    (error,) = errors(wb)
    assert error.message == "dependency cycle: x -> y -> x"
    assert (error.file, error.line) == (HERE, line)


def test_front_matter_problems_point_at_the_build_call() -> None:
    line = here() + 1
    wb = Workflow.build("bad name!", runtime={"mode": "sideways"}, config={"n": {"type": "int"}})
    wb.delay("d", 1)
    messages = {(e.file, e.line, e.message.split(":")[0]) for e in errors(wb)}
    assert messages == {
        (HERE, line, "invalid name 'bad name!'"),
        (HERE, line, "invalid value 'sideways' for 'mode'"),
        (HERE, line, "invalid type 'int' for config field 'n'"),
    }


def test_values_a_file_cannot_hold_are_reported_with_the_rest() -> None:
    wb = Workflow.build("values")
    line = here() + 1
    wb.transform("a", "template", template=["not", "text"])  # type: ignore[arg-type]
    with wb.foreach("f", "{{ [] }}") as body:
        misplaced = here() + 1
        body.transform("b", "map", expression="item", flag=True)
    wb.break_("out", "true")
    found = {(e.line, e.message) for e in errors(wb)}
    assert (
        line,
        "invalid value ['not', 'text'] for 'template': expected a string or a number",
    ) in (found)
    assert (line, "transform:template needs attribute 'template'") in found
    assert (misplaced, "invalid value True for 'flag': expected a string or a number") in found
    assert any(message.startswith("<break> is only allowed inside") for _, message in found)


@pytest.fixture
def flaky_once() -> Iterator[list[int]]:
    calls: list[int] = []

    def flaky(ctx: RuntimeContext) -> Any:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise ValueError("the first run fails")
        return ctx.input

    register_runtime("transform:t-flaky-once", flaky, replace=True)
    yield calls
    unregister_runtime("transform:t-flaky-once")


@pytest.mark.usefixtures("no_new_threads")
def test_a_persisted_run_of_a_built_workflow_resumes_from_its_snapshot(
    flaky_once: list[int], tmp_path: Path
) -> None:
    wb = Workflow.build("resumable")
    first = wb.transform("first", "template", template="{{ 20 + 1 }}")
    wb.transform("second", "t-flaky-once", input=first)
    failed = run_workflow(wb.workflow(), state_dir=tmp_path)
    assert failed.status == "failed"
    again = resume_workflow(failed.run_id, state_dir=tmp_path)
    assert again.status == "completed"
    assert again.outputs == {"first": 21, "second": 21}
    assert flaky_once == [1, 1]


def test_a_built_workflow_simulates_like_the_parsed_one() -> None:
    built, parsed = build_gated().workflow(), parse_workflow(FRONT)
    config = {"limit": 3}
    secrets = {"API_TOKEN": "t"}
    one = Simulation(built, seed=4, config=config, secrets=secrets)
    other = Simulation(parsed, seed=4, config=config, secrets=secrets)
    assert one.run() == other.run()
    assert one.trace == other.trace


def test_equality_leaves_out_where_a_workflow_was_written() -> None:
    """Locations, source text and path are provenance: the same workflow written at other
    lines, with other prose, in another file, is equal; a changed attribute is not."""
    body = '<workflow>\n  <transform id="a" type="template" template="1"/>\n</workflow>\n'
    one = parse_workflow("---\nname: w\n---\n" + body, "one.flow.md")
    other = parse_workflow("---\nname: w\n---\n# Prose\n\nmore prose\n\n" + body, "two.flow.md")
    changed = parse_workflow("---\nname: w\n---\n" + body.replace('"1"', '"2"'))
    assert one.node("a").loc != other.node("a").loc
    assert one == other
    assert hash(one) == hash(other)
    assert one != changed
