"""The workflow-file parser: from ``.flow.md`` text to the frozen model, or every problem at once.

The bad-file corpus (``test_bad_files.py``) pins one message per kind of
error; these tests pin the model the parser builds, positions, and the
behaviour around the edges (input decoding, prose, several errors).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from wavecrest.core import Diagnostic, WorkflowError, register_runtime, unregister_runtime
from wavecrest.core import _parse as parse_module
from wavecrest.core._model import (
    BranchNode,
    BreakNode,
    CheckpointNode,
    ConfigField,
    DelayNode,
    ForeachNode,
    FrozenDict,
    IfNode,
    Location,
    LoopNode,
    OnError,
    ParallelNode,
    RetrySpec,
    RuntimeSettings,
    TaskNode,
    WhileNode,
    Workflow,
)
from wavecrest.core._parse import load_workflow, parse_workflow

HEAD = "---\nname: wf\n---\n"


def flow(body: str, head: str = HEAD) -> str:
    """A workflow file: ``head`` (front matter) then ``<workflow>`` around ``body`` (dedented).

    With the default head, ``<workflow>`` is line 4 and the body starts on line 5.
    """
    return f"{head}<workflow>\n{textwrap.dedent(body).strip(chr(10))}\n</workflow>\n"


def errors(text: str | bytes, path: str | None = None) -> list[str]:
    """Every diagnostic parsing ``text`` raises, as ``LINE:COL: error: MESSAGE``."""
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(text, path)
    prefix = f"{path or '<string>'}:"
    return [str(d).removeprefix(prefix) for d in caught.value.diagnostics]


# --- a full example ------------------------------------------------------------------

FULL = """\
---
name: full.example-1
version: 1.0
description: Every element kind in one file.
config:
  threshold: {type: number, default: 7, description: Minimum score}
  region: {type: string, required: true}
  out_dir: ./out
secrets: [API_TOKEN, DB_PASSWORD]
runtime: {max_concurrency: 8, timeout: 5m, mode: waves}
---
# A workflow

Some prose that is not part of the workflow.

<workflow>
  <source id="users" type="file" path="users.json" format="json" timeout="30s"
          description="The user list"/>
  <transform id="active" type="filter" input=" users " condition="{{ item.active }}"/>
  <transform id="names" type="map" input="users, active" expression="item.name">
    <on-error>
      <retry max="5" backoff="linear" base="100ms" cap="2s" when="always" timeout="1m"/>
      <fallback node="names-fallback"/>
    </on-error>
  </transform>
  <transform id="names-fallback" type="template" template="[]"/>
  <parallel id="fan" wait="any" merge="concat" max-concurrency="2">
    <branch name="left">
      <transform id="l" type="template" template="left"/>
    </branch>
    <branch>
      <transform id="r" type="template" template="right"/>
      <delay id="pause" duration="250ms"/>
    </branch>
  </parallel>
  <foreach id="each" collection="users.output" item="user" index="n" concurrency="3">
    <transform id="greet" type="template" template="hi {{ user.name }} #{{ n }}"/>
    <break id="stop" when="n >= 10"/>
  </foreach>
  <if id="check" condition="users.output | length > 0">
    <then>
      <transform id="yes" type="template" template="yes"/>
    </then>
    <else>
      <transform id="no" type="template" template="no"/>
    </else>
  </if>
  <branch id="route">
    <case when="users.output is string">
      <transform id="text" type="template" template="text"/>
    </case>
    <default>
      <transform id="other" type="template" template="other"/>
    </default>
  </branch>
  <loop id="again" max="4" break="iteration >= 2">
    <transform id="step" type="template" template="{{ iteration }}"/>
  </loop>
  <while id="poll" condition="iteration &lt; 3">
    <delay id="tick" duration="2"/>
  </while>
  <checkpoint id="approve" prompt="Continue with {{ nodes['names'].output }}?" timeout="1h"
              default="reject"/>
</workflow>

## Execution Log

- run 1: completed
"""


@pytest.fixture(scope="module")
def full() -> Workflow:
    return parse_workflow(FULL, "full.flow.md")


def test_full_example_metadata(full: Workflow) -> None:
    """Front matter fields land on the Workflow; source, path and loc are kept."""
    assert full.name == "full.example-1"
    assert full.version == "1.0"  # a YAML number is kept as written
    assert full.description == "Every element kind in one file."
    assert full.secrets == ("API_TOKEN", "DB_PASSWORD")
    assert full.runtime == RuntimeSettings(max_concurrency=8, timeout=300.0, mode="waves")
    assert full.config == (
        ConfigField(
            name="threshold",
            type="number",
            default=7,
            description="Minimum score",
            loc=Location("full.flow.md", 6, 3),
        ),
        ConfigField(
            name="region", type="string", required=True, loc=Location("full.flow.md", 7, 3)
        ),
        ConfigField(
            name="out_dir", type="string", default="./out", loc=Location("full.flow.md", 8, 3)
        ),
    )
    assert full.source == FULL
    assert full.path == "full.flow.md"
    assert full.loc == Location("full.flow.md", 16, 1)


def test_full_example_declares_every_node_in_order(full: Workflow) -> None:
    """Nodes come out depth first in declaration order, nested bodies included."""
    assert [node.id for node, _ in full.iter_nodes()] == [
        *("users", "active", "names", "names-fallback"),
        *("fan", "l", "r", "pause"),
        *("each", "greet", "stop"),
        *("check", "yes", "no"),
        *("route", "text", "other"),
        *("again", "step"),
        *("poll", "tick"),
        "approve",
    ]
    assert [node.id for node in full.body] == [
        *("users", "active", "names", "names-fallback", "fan", "each", "check"),
        *("route", "again", "poll", "approve"),
    ]


def test_full_example_task_nodes(full: Workflow) -> None:
    """Task nodes: kind, type, config from the other attributes, common attributes, on-error."""
    users = full.node("users")
    assert users == TaskNode(
        id="users",
        loc=Location("full.flow.md", 17, 3),
        timeout=30.0,
        description="The user list",
        kind="source",
        type="file",
        config=FrozenDict({"path": "users.json", "format": "json"}),
    )
    assert users.loc == Location("full.flow.md", 17, 3)  # equality leaves locations out
    active = full.node("active")
    assert isinstance(active, TaskNode)
    assert active.inputs == ("users",)
    assert active.runtime_key == "transform:filter"
    assert active.config == {"condition": "{{ item.active }}"}
    names = full.node("names")
    assert isinstance(names, TaskNode)
    assert names.inputs == ("users", "active")
    assert names.on_error == OnError(
        retry=RetrySpec(max=5, backoff="linear", base=0.1, cap=2.0, when="always", timeout=60.0),
        fallback="names-fallback",
        loc=Location("full.flow.md", 21, 5),
    )
    assert names.on_error is not None
    assert names.on_error.loc == Location("full.flow.md", 21, 5)
    assert isinstance(names.config, FrozenDict)
    with pytest.raises(TypeError, match="read-only"):
        names.config["expression"] = "other"


def test_full_example_parallel(full: Workflow) -> None:
    """Branch names default to their position; wait="any" means one branch."""
    fan = full.node("fan")
    assert isinstance(fan, ParallelNode)
    assert (fan.wait, fan.merge, fan.max_concurrency) == (1, "concat", 2)
    assert [branch.name for branch in fan.branches] == ["left", "1"]
    assert [[node.id for node in branch.body] for branch in fan.branches] == [["l"], ["r", "pause"]]
    assert fan.branches[1].loc == Location("full.flow.md", 31, 5)
    pause = full.node("pause")
    assert pause == DelayNode(id="pause", loc=Location("full.flow.md", 33, 7), duration=0.25)


def test_full_example_foreach_and_break(full: Workflow) -> None:
    each = full.node("each")
    assert isinstance(each, ForeachNode)
    assert (each.collection, each.item, each.index, each.concurrency) == (
        "users.output",
        "user",
        "n",
        3,
    )
    assert [node.id for node in each.body] == ["greet", "stop"]
    assert full.node("stop") == BreakNode(
        id="stop", loc=Location("full.flow.md", 38, 5), when="n >= 10"
    )


def test_full_example_if_and_branch(full: Workflow) -> None:
    check = full.node("check")
    assert isinstance(check, IfNode)
    assert check.condition == "users.output | length > 0"
    assert [n.id for n in check.then] == ["yes"]
    assert [n.id for n in check.orelse] == ["no"]
    route = full.node("route")
    assert isinstance(route, BranchNode)
    assert [(case.when, [n.id for n in case.body]) for case in route.cases] == [
        ("users.output is string", ["text"])
    ]
    assert route.cases[0].loc == Location("full.flow.md", 49, 5)
    assert [n.id for n in route.default] == ["other"]


def test_full_example_loops_and_checkpoint(full: Workflow) -> None:
    again = full.node("again")
    assert isinstance(again, LoopNode)
    assert (again.max, again.break_when, [n.id for n in again.body]) == (
        4,
        "iteration >= 2",
        ["step"],
    )
    poll = full.node("poll")
    assert isinstance(poll, WhileNode)
    assert (poll.condition, poll.max) == ("iteration < 3", 1000)  # &lt; decoded; default max
    assert full.node("tick") == DelayNode(
        id="tick", loc=Location("full.flow.md", 60, 5), duration=2.0
    )
    assert full.node("approve") == CheckpointNode(
        id="approve",
        loc=Location("full.flow.md", 62, 3),
        timeout=3600.0,
        prompt="Continue with {{ nodes['names'].output }}?",
        default="reject",
    )


# --- front matter --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("'hello'", ConfigField(name="f", type="string", default="hello")),
        ("true", ConfigField(name="f", type="boolean", default=True)),
        ("3", ConfigField(name="f", type="integer", default=3)),
        ("2.5", ConfigField(name="f", type="number", default=2.5)),
        ("[1, 2]", ConfigField(name="f", type="list", default=[1, 2])),
        ("{a: 1}", ConfigField(name="f", type="object", default={"a": 1})),
        ("{}", ConfigField(name="f", type="object", default={})),
        ("", ConfigField(name="f", type="any", default=None)),
        ("2024-01-31", ConfigField(name="f", type="string", default="2024-01-31")),
        ("{default: 3}", ConfigField(name="f", type="any", default=3)),
        ("{type: integer}", ConfigField(name="f", type="integer")),
        ("{type: number, default: 3}", ConfigField(name="f", type="number", default=3)),
        ("{type: list, required: false}", ConfigField(name="f", type="list")),
    ],
)
def test_config_field_forms(written: str, expected: ConfigField) -> None:
    """A spec mapping has ``type`` or only spec keys; anything else is a default, type inferred.

    An empty mapping is an ``object`` default; dates stay strings; integers are numbers.
    """
    workflow = parse_workflow(
        flow('<delay id="d" duration="1"/>', f"---\nname: wf\nconfig:\n  f: {written}\n---\n")
    )
    (field,) = workflow.config
    assert field == ConfigField(
        name=expected.name,
        type=expected.type,
        default=expected.default,
        required=expected.required,
        loc=Location("<string>", 4, 3),
    )
    assert field.loc == Location("<string>", 4, 3)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        (
            "{type: boolean, default: 1}",
            "4:31: error: invalid default 1 for config field 'f': expected true or false",
        ),
        (
            "{type: number, default: true}",
            "4:30: error: invalid default True for config field 'f': expected a number",
        ),
        (
            "{type: integer, default: 1.5}",
            "4:31: error: invalid default 1.5 for config field 'f': expected an integer",
        ),
        (
            "{type: object, default: [1]}",
            "4:30: error: invalid default [1] for config field 'f': expected a mapping",
        ),
        (
            "{type: string, required: yes please}",
            "4:31: error: invalid value 'yes please' for 'required': expected true or false",
        ),
    ],
)
def test_config_default_must_match_its_type(written: str, message: str) -> None:
    text = flow('<delay id="d" duration="1"/>', f"---\nname: wf\nconfig:\n  f: {written}\n---\n")
    assert errors(text) == [message]


def test_runtime_settings_all_keys() -> None:
    head = """\
---
name: wf
runtime:
  max_concurrency: 3
  timeout: 90
  mode: eager
  grace: 500ms
  keep_going: true
  max_restarts: 0
  restart_period: 2m
---
"""
    workflow = parse_workflow(flow('<delay id="d" duration="1"/>', head))
    assert workflow.runtime == RuntimeSettings(
        max_concurrency=3,
        timeout=90.0,
        mode="eager",
        grace=0.5,
        keep_going=True,
        max_restarts=0,
        restart_period=120.0,
    )


def test_empty_sections_and_defaults() -> None:
    """``config:``, ``secrets:`` and ``runtime:`` may be empty; version/description are optional."""
    head = "---\nname: wf\nconfig:\nsecrets:\nruntime:\n---\n"
    workflow = parse_workflow(flow('<delay id="d" duration="1"/>', head))
    assert (workflow.version, workflow.description) == (None, None)
    assert (workflow.config, workflow.secrets, workflow.runtime) == ((), (), RuntimeSettings())


def test_front_matter_yaml_error_is_located_in_the_file() -> None:
    """A YAML error is reported at its mark, shifted past the opening '---' line."""
    head = "---\nname: wf\nruntime: {mode: eager\n---\n"
    assert errors(flow('<delay id="d" duration="1"/>', head)) == [
        "3:22: error: invalid YAML in front matter: expected ',' or '}', but got '<stream end>'"
    ]


def test_bad_front_matter_key_does_not_stop_the_body() -> None:
    """Front matter and body are both checked, so errors from both come together."""
    head = "---\nname: wf\nnmae: typo\n---\n"
    assert errors(flow('<delay id="d" duration="soon"/>', head)) == [
        "3:1: error: unknown front matter key 'nmae'; expected one of name, version, "
        "description, config, secrets, runtime",
        "6:15: error: invalid duration 'soon' for 'duration': expected e.g. 250ms, 5s, 2m, 1h "
        "or seconds",
    ]


# --- attributes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("250ms", 0.25), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), ("0", 0.0)],
)
def test_durations(written: str, seconds: float) -> None:
    workflow = parse_workflow(flow(f'<delay id="d" duration="{written}" timeout="{written}"/>'))
    node = workflow.node("d")
    assert isinstance(node, DelayNode)
    assert (node.duration, node.timeout) == (seconds, seconds)


@pytest.mark.parametrize("written", ["5 seconds", "-1s", "1d", "", "fast"])
def test_invalid_duration_quotes_the_value(written: str) -> None:
    assert errors(flow(f'<delay id="d" duration="{written}"/>')) == [
        f"5:15: error: invalid duration {written!r} for 'duration': expected e.g. 250ms, 5s, "
        "2m, 1h or seconds"
    ]


@pytest.mark.parametrize(
    ("written", "inputs"),
    [("a", ("a",)), ("a,b", ("a", "b")), (" a , b ,c ", ("a", "b", "c"))],
)
def test_input_lists(written: str, inputs: tuple[str, ...]) -> None:
    body = f"""
        <delay id="a" duration="1"/>
        <delay id="b" duration="1"/>
        <delay id="c" duration="1"/>
        <delay id="d" duration="1" input="{written}"/>
    """
    assert parse_workflow(flow(body)).node("d").inputs == inputs


@pytest.mark.parametrize("written", ["", "a,", ",a", "a,,b", " , "])
def test_input_list_with_an_empty_item_is_an_error(written: str) -> None:
    body = f"""
        <delay id="a" duration="1"/>
        <delay id="d" duration="1" input="{written}"/>
        <delay id="b" duration="1"/>
    """
    assert errors(flow(body)) == [
        f"6:28: error: invalid input {written!r}: expected a node id or a comma-separated list "
        "of ids"
    ]


@pytest.mark.parametrize(
    ("wait", "expected"), [("all", None), ("any", 1), ("n(1)", 1), ("n(2)", 2), ("n( 3 )", 3)]
)
def test_parallel_wait(wait: str, expected: int | None) -> None:
    body = f"""
        <parallel id="p" wait="{wait}">
          <branch><delay id="a" duration="1"/></branch>
          <branch><delay id="b" duration="1"/></branch>
          <branch><delay id="c" duration="1"/></branch>
        </parallel>
    """
    node = parse_workflow(flow(body)).node("p")
    assert isinstance(node, ParallelNode)
    assert (node.wait, node.merge) == (expected, "array")


@pytest.mark.parametrize("wait", ["n(0)", "n(4)"])
def test_parallel_wait_out_of_range(wait: str) -> None:
    body = f"""
        <parallel id="p" wait="{wait}">
          <branch><delay id="a" duration="1"/></branch>
          <branch><delay id="b" duration="1"/></branch>
          <branch><delay id="c" duration="1"/></branch>
        </parallel>
    """
    assert errors(flow(body)) == [
        f"5:18: error: invalid value {wait!r} for 'wait': expected n(K) with 1 <= K <= 3, "
        "the number of branches"
    ]


def test_retry_defaults_and_empty_on_error() -> None:
    body = """
        <transform id="a" type="template" template="x">
          <on-error><retry/></on-error>
        </transform>
        <transform id="b" type="template" template="x">
          <on-error/>
        </transform>
    """
    workflow = parse_workflow(flow(body))
    a, b = workflow.node("a"), workflow.node("b")
    assert isinstance(a, TaskNode)
    assert isinstance(b, TaskNode)
    assert a.on_error == OnError(retry=RetrySpec(), loc=Location("<string>", 6, 3))
    assert b.on_error == OnError(loc=Location("<string>", 9, 3))
    assert (a.on_error.loc, b.on_error.loc) == (
        Location("<string>", 6, 3),
        Location("<string>", 9, 3),
    )


def test_foreach_and_while_defaults() -> None:
    body = """
        <foreach id="each" collection="[1, 2]">
          <while id="w" condition="false">
            <delay id="d" duration="1"/>
          </while>
        </foreach>
    """
    workflow = parse_workflow(flow(body))
    each, loop = workflow.node("each"), workflow.node("w")
    assert isinstance(each, ForeachNode)
    assert (each.item, each.index, each.concurrency) == ("item", "index", None)
    assert isinstance(loop, WhileNode)
    assert loop.max == 1000


def test_break_is_allowed_at_any_depth_inside_a_loop() -> None:
    body = """
        <loop id="l" max="3">
          <if id="c" condition="iteration > 1">
            <then>
              <parallel id="p">
                <branch><break id="b" when="true"/></branch>
              </parallel>
            </then>
          </if>
        </loop>
    """
    assert isinstance(parse_workflow(flow(body)).node("b"), BreakNode)


# --- config written as child elements ------------------------------------------------


def test_config_child_element_text_is_dedented() -> None:
    body = """
        <transform id="t" type="template">
          <template>
            Dear {{ input.name }},

              thank you.
          </template>
          <note>  one line  </note>
          <empty/>
        </transform>
    """
    node = parse_workflow(flow(body)).node("t")
    assert isinstance(node, TaskNode)
    assert node.config == {
        "template": "Dear {{ input.name }},\n\n  thank you.",
        "note": "one line",
        "empty": "",
    }


def test_config_child_element_yaml_mapping_becomes_a_frozen_dict() -> None:
    body = """
        <sink id="s" type="file" path="out.json">
          <options>
            indent: 2
            header: "{{ context.run_id }}"
            tags: [x, y]
            nested: {a: 1}
          </options>
          <format>json</format>
          <scalar>42</scalar>
        </sink>
    """
    node = parse_workflow(flow(body)).node("s")
    assert isinstance(node, TaskNode)
    assert node.config == {
        "path": "out.json",
        "options": {
            "indent": 2,
            "header": "{{ context.run_id }}",
            "tags": ["x", "y"],
            "nested": {"a": 1},
        },
        "format": "json",
        "scalar": "42",  # YAML scalars are not converted: only mappings are
    }
    assert isinstance(node.config["options"], FrozenDict)


def test_expression_config_is_never_read_as_yaml() -> None:
    """``{'a': item}`` reads as YAML mapping and as Jinja dict; an expression key keeps the text."""
    body = """
        <transform id="t" type="map">
          <expression>{'a': item}</expression>
        </transform>
    """
    node = parse_workflow(flow(body)).node("t")
    assert isinstance(node, TaskNode)
    assert node.config == {"expression": "{'a': item}"}


def test_cdata_holds_text_with_markup_characters() -> None:
    body = """
        <transform id="t" type="filter">
          <condition><![CDATA[ item < 10 and item > 0 ]]></condition>
        </transform>
    """
    node = parse_workflow(flow(body)).node("t")
    assert isinstance(node, TaskNode)
    assert node.config == {"condition": "item < 10 and item > 0"}


def test_template_error_in_child_text_points_at_its_line() -> None:
    """ExpressionError.lineno is mapped through the dedented text to the file line and column."""
    body = """
        <transform id="t" type="template">
          <template>
            first line
              {{ broken }
          </template>
        </transform>
    """
    assert errors(flow(body)) == [
        "8:7: error: in 'template': invalid template syntax: unexpected '}' (line 2)"
    ]


def test_template_error_in_yaml_leaf_points_at_the_value() -> None:
    body = """
        <sink id="s" type="file" path="out.json">
          <options>
            ok: "{{ input }}"
            bad: "{{ input }"
          </options>
        </sink>
    """
    assert errors(flow(body)) == [
        "8:10: error: in 'options': invalid template syntax: unexpected '}' (line 1)"
    ]


@pytest.fixture
def custom_runtime() -> Iterator[str]:
    """A registered runtime with its own required and expression keys; removed afterwards."""
    key = "transform:test-parse-custom"
    register_runtime(key, lambda ctx: ctx.input, expressions={"rule"}, required={"rule", "label"})
    yield key
    unregister_runtime(key)


def test_runtime_spec_drives_required_and_expression_keys(custom_runtime: str) -> None:
    """Keys in ``expressions`` compile as expressions; other strings only if they are templates."""
    ok = flow('<transform id="t" type="test-parse-custom" rule="item > 1" label="a > b ("/>')
    node = parse_workflow(ok).node("t")
    assert isinstance(node, TaskNode)
    assert node.runtime_key == custom_runtime
    assert node.config == {"rule": "item > 1", "label": "a > b ("}
    missing = flow('<transform id="t" type="test-parse-custom" rule="x >"/>')
    assert errors(missing) == [
        "5:1: error: transform:test-parse-custom needs attribute 'label'",
        "5:44: error: in 'rule': invalid expression syntax: unexpected 'end of template' (line 1)",
    ]


# --- '<' and '&' in attribute values ------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "{{ item.score < 5 }}",
        "{{ item.score <= 5 }}",
        "item.score<5",
        "1 < item.score and item.score <= 9",
        "item.score &lt; 5 or item.score < 0",
    ],
)
def test_less_than_in_an_attribute_is_accepted(condition: str) -> None:
    """A bare '<' inside a quoted attribute value reads as '<'; '&lt;' still does too."""
    workflow = parse_workflow(flow(f'<transform id="t" type="filter" condition="{condition}"/>'))
    node = workflow.node("t")
    assert isinstance(node, TaskNode)
    assert node.config == {"condition": condition.replace("&lt;", "<")}


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("https://x/?a=1&b=2", "https://x/?a=1&b=2"),
        ("https://x/?a=1&amp;b=2", "https://x/?a=1&b=2"),
        ("a & b && c&", "a & b && c&"),
        ("&lt;&gt;&quot;&apos;&#60;&#x3C;", "<>\"'<<"),
        ("&;&#;&#x;&#xZ;&1;", "&;&#;&#x;&#xZ;&1;"),
    ],
)
def test_ampersand_in_an_attribute_is_accepted(written: str, value: str) -> None:
    """A '&' that starts no entity or character reference is a literal '&'; references decode."""
    workflow = parse_workflow(flow(f"<source id='s' type='file' path='{written}' format='json'/>"))
    node = workflow.node("s")
    assert isinstance(node, TaskNode)
    assert node.config["path"] == value


def test_markup_characters_outside_attribute_values_are_left_alone() -> None:
    """Comments, CDATA and processing instructions keep their text; only start tags are changed."""
    body = """
        <!-- a < b & c -->
        <?note x < y & z?>
        <transform id="t" type="filter" condition="item < 3">
          <label><![CDATA[a < b & c="<"]]></label>
        </transform>
    """
    node = parse_workflow(flow(body)).node("t")
    assert isinstance(node, TaskNode)
    assert node.config == {"condition": "item < 3", "label": 'a < b & c="<"'}


def test_positions_after_escaped_attribute_values_are_file_positions() -> None:
    """Escaping changes no position: a node, an attribute or an error to the right of an
    escaped value, on its line or the lines below, is reported where the file has it."""
    crowded = (
        '<source id="s" type="file" path="in.json?a=1&b=2&c=3"/>'
        "<transform id='t' type='template' template='{{ 1 < 2 }} & {{ 2 <= 3 }}' input='s'/>"
        "<delay id='d' duration='x'/>"
    )
    body = f"""
        {crowded}
        <delay id="e" timeout="{"<&" * 3}" duration="y"/>
        <transform id="u" type="filter"
                   condition="item.a < 1 or
        item.b &lt; 2 or item.c < 3" timeout="z"/>
    """
    assert errors(flow(body)) == [
        "5:153: error: invalid duration 'x' for 'duration': expected e.g. 250ms, 5s, 2m, 1h or "
        "seconds",
        "6:15: error: invalid duration '<&<&<&' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h "
        "or seconds",
        "6:32: error: invalid duration 'y' for 'duration': expected e.g. 250ms, 5s, 2m, 1h or "
        "seconds",
        "9:30: error: invalid duration 'z' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h or "
        "seconds",
    ]
    fixed = flow(body.replace("'x'", "'1'").replace('"y"', '"1"').replace('"z"', '"1"'))
    workflow = parse_workflow(fixed.replace('"<&<&<&"', '"1"'))
    assert [(node.id, node.loc.line, node.loc.column) for node, _ in workflow.iter_nodes()] == [
        ("s", 5, 1),
        ("t", 5, 56),
        ("d", 5, 139),
        ("e", 6, 1),
        ("u", 7, 1),
    ]
    u = workflow.node("u")
    assert isinstance(u, TaskNode)
    # XML turns a line break inside an attribute value into a space.
    assert u.config["condition"] == "item.a < 1 or item.b < 2 or item.c < 3"


def test_xml_error_to_the_right_of_an_escaped_value_is_located_in_the_file() -> None:
    """Expat's columns are counted in the escaped text; they are mapped back to the file's."""
    body = (
        '<transform id="t" type="filter" condition="a < b & c < d"><label>x < y</label></transform>'
    )
    assert errors(flow(body)) == [
        "5:68: error: invalid XML: not well-formed (invalid token); use &lt; for '<' in text, "
        "or a <![CDATA[ ]]> section"
    ]
    body = '<delay id="d" duration="1" description="a&b < c">a &b c</delay>'
    assert errors(flow(body)) == [
        "5:52: error: invalid XML: not well-formed (invalid token); use &amp; for '&'"
    ]


# --- locations -----------------------------------------------------------------------


def test_node_location_is_the_start_tag_in_the_file() -> None:
    text = HEAD + (
        "Intro prose.\n\n<workflow>\n  <delay id='a' duration='1'/>\n"
        "  <parallel id='p'>\n    <branch>\n\n        <delay id='deep' duration='1'/>\n"
        "    </branch>\n  </parallel>\n</workflow>\n"
    )
    workflow = parse_workflow(text, "x.flow.md")
    assert workflow.loc == Location("x.flow.md", 6, 1)
    assert workflow.node("a").loc == Location("x.flow.md", 7, 3)
    assert workflow.node("deep").loc == Location("x.flow.md", 11, 9)


def test_error_location_after_prose_and_a_fenced_workflow() -> None:
    """Fenced code is skipped when looking for the body, and positions stay file positions."""
    text = HEAD + (
        "```xml\n<workflow>\n  <nothing/>\n</workflow>\n```\n"
        "<workflow>\n\n\n      <delay id='a' duration='1'\n"
        "             timeout='x'/>\n</workflow>\n"
    )
    assert errors(text) == [
        "13:14: error: invalid duration 'x' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h "
        "or seconds"
    ]


def test_attribute_errors_point_at_the_attribute() -> None:
    assert errors(flow('  <loop id="l"   max="x"><delay id="d" duration="1"/></loop>')) == [
        "5:16: error: invalid value 'x' for 'max': expected an integer >= 1"
    ]


def test_crlf_line_endings_and_bom() -> None:
    text = "\ufeff" + flow('<delay id="d" duration="x"/>').replace("\n", "\r\n")
    assert errors(text) == [
        "5:15: error: invalid duration 'x' for 'duration': expected e.g. 250ms, 5s, 2m, 1h or "
        "seconds"
    ]
    good = "\ufeff" + flow('<delay id="d" duration="1"/>').replace("\n", "\r\n")
    workflow = parse_workflow(good)
    assert workflow.source == good
    assert workflow.node("d").loc == Location("<string>", 5, 1)


# --- several errors at once ----------------------------------------------------------


def test_every_problem_is_reported_and_siblings_keep_being_checked() -> None:
    body = """
        <delay id="a" duration="soon"/>
        <foreach id="each">
          <delay id="b" duration="later"/>
          <forech id="c"/>
        </foreach>
        <delay id="a" duration="1"/>
        <transform id="t" type="nope"/>
    """
    assert errors(flow(body)) == [
        "5:15: error: invalid duration 'soon' for 'duration': expected e.g. 250ms, 5s, 2m, 1h "
        "or seconds",
        "6:1: error: <foreach> needs attribute 'collection'",
        "7:17: error: invalid duration 'later' for 'duration': expected e.g. 250ms, 5s, 2m, 1h "
        "or seconds",
        "8:3: error: unknown element <forech>; expected one of source, transform, sink, "
        "parallel, foreach, if, branch, loop, while, break, checkpoint, delay",
        "10:8: error: duplicate id 'a' (first defined at 5:1)",
        "11:19: error: unknown node type 'transform:nope'; known types: transform:filter, "
        "transform:map, transform:reduce, transform:template",
    ]


def test_xml_error_hint_for_less_than_in_text() -> None:
    body = '<transform id="t" type="filter"><condition>a < b</condition></transform>'
    assert errors(flow(body)) == [
        "5:46: error: invalid XML: not well-formed (invalid token); use &lt; for '<' in text, "
        "or a <![CDATA[ ]]> section"
    ]


def test_text_inside_a_task_node_is_an_error() -> None:
    assert errors(flow('<transform id="t" type="template" template="x">oops</transform>')) == [
        "5:48: error: unexpected text 'oops' inside <transform>; only elements are allowed here"
    ]


# --- semantic checks -----------------------------------------------------------------


def test_semantic_checks_run_on_a_complete_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_workflow's diagnostics join the parser's, even when there are local errors."""
    seen: list[Workflow] = []

    def check(workflow: Workflow, known: object = None) -> list[Diagnostic]:
        seen.append(workflow)
        return [Diagnostic(workflow.path or "<string>", 5, 1, "semantic problem")]

    monkeypatch.setattr(parse_module, "check_workflow", check)
    assert errors(flow('<delay id="d" duration="1" timeout="x"/>')) == [
        "5:1: error: semantic problem",
        "5:28: error: invalid duration 'x' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h or "
        "seconds",
    ]
    assert [node.id for node in seen[0].body] == ["d"]


def test_semantic_checks_are_skipped_when_a_node_was_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node missing its id is left out; references to it must not be reported as unknown."""
    calls: list[Workflow] = []

    def check(workflow: Workflow, known: object = None) -> list[Diagnostic]:
        calls.append(workflow)
        return []

    monkeypatch.setattr(parse_module, "check_workflow", check)
    assert errors(flow('<delay duration="1"/>\n<delay id="b" duration="1"/>')) == [
        "5:1: error: <delay> needs attribute 'id'"
    ]
    assert calls == []


def test_semantic_checks_are_wired_to_validate() -> None:
    """An unknown input reaches the user through the real check_workflow."""
    diagnostics = errors(flow('<delay id="d" duration="1" input="ghost"/>'))
    assert len(diagnostics) == 1
    assert diagnostics[0].startswith("5:1: error: ")
    assert "'ghost'" in diagnostics[0]


def test_the_semantic_checks_reuse_what_the_parser_compiled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each text is compiled once per parse, however many texts a workflow has (the caches
    hold far fewer): the parser hands what each one reads to the semantic checks."""
    from wavecrest.core import _expr, _graph

    compiled: list[str] = []
    real = _expr.template_references.__wrapped__

    def counting(text: str) -> _expr.References:
        compiled.append(text)
        return real(text)

    monkeypatch.setattr(_graph, "template_references", counting)
    monkeypatch.setattr(parse_module, "template_references", counting)
    body = "\n".join(
        f'<transform id="t{i}" type="template" template="{{{{ config.n }}}} {i}"/>'
        for i in range(50)
    )
    parse_module.parse_workflow(
        "---\nname: many\nconfig:\n  n: 1\n---\n<workflow>\n" + body + "\n</workflow>\n"
    )
    assert sorted(compiled) == sorted(f"{{{{ config.n }}}} {i}" for i in range(50))


# --- reading files -------------------------------------------------------------------


def test_load_workflow_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.flow.md"
    path.write_text(flow('<delay id="d" duration="1"/>'), encoding="utf-8")
    workflow = load_workflow(path)
    assert workflow.path == str(path)
    assert workflow.loc == Location(str(path), 4, 1)
    assert load_workflow(str(path)).digest == workflow.digest


def load_errors(path: Path) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    return [str(d) for d in caught.value.diagnostics]


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.flow.md"
    assert load_errors(path) == [f"{path}:1:1: error: cannot read file: no such file"]


def test_load_directory(tmp_path: Path) -> None:
    assert load_errors(tmp_path) == [f"{tmp_path}:1:1: error: is a directory, not a workflow file"]


@pytest.mark.parametrize(
    "data", [b"\x89PNG\r\n\x1a\n\x00\x00", b"---\nname: \xff\n---\n", b"---\x00\n"]
)
def test_load_binary_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "binary.flow.md"
    path.write_bytes(data)
    assert load_errors(path) == [f"{path}:1:1: error: file is not UTF-8 text"]


@pytest.mark.parametrize("data", [b"", b"   \n\t\n"])
def test_load_empty_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "empty.flow.md"
    path.write_bytes(data)
    assert load_errors(path) == [f"{path}:1:1: error: file is empty"]


def test_parse_accepts_bytes_and_names_strings() -> None:
    workflow = parse_workflow(flow('<delay id="d" duration="1"/>').encode("utf-8"))
    assert workflow.path is None
    assert workflow.node("d").loc.file == "<string>"


# --- prose around the workflow -------------------------------------------------------


def test_prose_and_execution_log_are_ignored() -> None:
    text = (
        HEAD
        + "# Title\n\nSome *prose* with <b>html</b>.\n\n"
        + '<workflow>\n  <delay id="d" duration="1"/>\n</workflow>\n'
        + "\nMore prose.\n\n## Execution Log\n\n"
        + "```\nrun 1 failed\n```\n<workflow>\n  this log line is not parsed\n"
    )
    workflow = parse_workflow(text)
    assert [node.id for node in workflow.body] == ["d"]


def test_text_after_the_closing_tag_on_its_line_is_ignored() -> None:
    text = HEAD + '<workflow><delay id="d" duration="1"/></workflow> trailing words\n'
    assert [node.id for node in parse_workflow(text).body] == ["d"]
