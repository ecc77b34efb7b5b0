"""The corpus of bad workflow files: each file's exact diagnostics, data-driven.

Every ``tests/bad_files/NAME.flow.md`` has one row in :data:`EXPECTED`: the
full list of diagnostics it must produce, as ``LINE:COL: error: MESSAGE``
(the ``FILE:`` prefix stripped), in the order ``WorkflowError`` sorts them.
Adding a case is one file plus one row; a file without a row, or a row
without a file, fails :func:`test_every_bad_file_has_a_row`.
"""

# ruff: noqa: E501  (rows are exact one-line messages; splitting them would hide diffs)

from __future__ import annotations

from pathlib import Path

import pytest
from wavecrest.core import WorkflowError, plan
from wavecrest.core._parse import load_workflow

HERE = Path(__file__).parent
BAD = HERE / "bad_files"
GOOD = HERE / "good_files"

EXPECTED: dict[str, list[str]] = {
    # --- Reading the file ----------------------------------------------------------------
    "missing_front_matter": [
        "1:1: error: missing front matter: the file must start with a '---' line",
    ],
    "unterminated_front_matter": ["1:1: error: unterminated front matter: no closing '---' line"],
    "no_workflow_element": [
        "1:1: error: no <workflow> element: the body must hold <workflow>...</workflow>",
    ],
    "unterminated_workflow": [
        "4:1: error: unterminated <workflow> element: no '</workflow>' line",
    ],
    "empty_workflow": ["4:1: error: the workflow has no nodes: add at least one node element"],
    "two_workflows": [
        "8:1: error: a second <workflow> element: a file holds exactly one workflow",
    ],
    # --- Front matter --------------------------------------------------------------------
    "front_matter_yaml_error": [
        "5:2: error: invalid YAML in front matter: expected <block end>, but found '<block mapping start>'",
    ],
    "front_matter_not_mapping": [
        "2:1: error: front matter must be a mapping of keys to values, not a list",
    ],
    "front_matter_missing_name": ["1:1: error: missing required front matter key 'name'"],
    "front_matter_bad_name": [
        "2:7: error: invalid name 'my flow': expected letters, digits, '_', '.' or '-'",
    ],
    "front_matter_unknown_key": [
        "3:1: error: unknown front matter key 'descripton'; expected one of name, version, description, config, secrets, runtime",
    ],
    "front_matter_duplicate_key": [
        "3:1: error: duplicate front matter key 'name' (first defined at 2:1)",
    ],
    "config_bad_default": [
        "4:38: error: invalid default 'seven' for config field 'threshold': expected a number",
    ],
    "config_required_with_default": [
        "6:5: error: config field 'region' is required, so it cannot have a default",
    ],
    "config_unknown_type": [
        "4:17: error: invalid type 'int' for config field 'count': expected one of string, number, integer, boolean, list, object, any",
    ],
    "config_bad_field_name": [
        "4:3: error: invalid config field name 'out-dir': expected letters, digits and '_', not starting with a digit",
    ],
    "config_unknown_spec_key": [
        "4:26: error: unknown key 'defualt' in config field 'count'; expected one of type, default, required, description",
    ],
    "secrets_bad_name": [
        "3:22: error: invalid secret name 'api-key': expected letters, digits and '_', not starting with a digit",
    ],
    "secrets_not_list": ["3:10: error: 'secrets' must be a list of names, e.g. [API_TOKEN]"],
    "runtime_unknown_key": [
        "4:3: error: unknown runtime key 'max_concurency'; expected one of max_concurrency, timeout, mode, grace, keep_going, max_restarts, restart_period",
    ],
    "runtime_bad_concurrency": [
        "4:20: error: invalid value 0 for 'max_concurrency': expected an integer >= 1",
    ],
    "runtime_bad_timeout": [
        "4:12: error: invalid duration '5 seconds' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h or seconds",
    ],
    "runtime_bad_mode": [
        "3:17: error: invalid value 'fast' for 'mode': expected one of eager, waves",
    ],
    "runtime_bad_keep_going": [
        "3:23: error: invalid value 'maybe' for 'keep_going': expected true or false",
    ],
    # Limits (core/_limits.py): checked before anything recursive or expanding runs.
    "yaml_alias_bomb": [
        "9:10: error: invalid YAML in front matter: aliases repeat more than 100,000 values (at *e)",
    ],
    "yaml_recursive_alias": [
        "4:23: error: invalid YAML in front matter: alias *self refers to a node that contains it",
    ],
    "yaml_too_deep": ["4:71: error: invalid YAML in front matter: nested deeper than 64 levels"],
    # --- XML well-formedness -------------------------------------------------------------
    # '<' and '&' inside attribute values are accepted (see test_parse.py); in text they are not.
    "xml_lt_in_text": [
        "7:21: error: invalid XML: not well-formed (invalid token); use &lt; for '<' in text, or a <![CDATA[ ]]> section",
    ],
    "xml_bare_ampersand": [
        "6:22: error: invalid XML: not well-formed (invalid token); use &amp; for '&'",
    ],
    "xml_mismatched_tag": [
        "7:5: error: invalid XML: mismatched tag; expected </foreach> to close <foreach> from 5:3"
    ],
    "xml_unclosed_tag": [
        "7:3: error: invalid XML: mismatched tag; expected </foreach> to close <foreach> from 5:3"
    ],
    # --- Every node: elements, ids, common attributes ------------------------------------
    "unknown_element": [
        "6:3: error: unknown element <forech>; expected one of source, transform, sink, parallel, foreach, if, branch, loop, while, break, checkpoint, delay",
    ],
    "misplaced_then": ["6:3: error: <then> is only allowed directly inside <if>"],
    "stray_text": [
        "6:3: error: unexpected text 'oops, prose inside the workflow' inside <workflow>; only elements are allowed here",
    ],
    "missing_id": ["5:3: error: <source> needs attribute 'id'"],
    "bad_id": [
        "5:11: error: invalid id '-src': expected a letter or digit first, then letters, digits, '_', '.' or '-'",
    ],
    "id_starts_with_underscore": [
        "5:11: error: invalid id '_src': expected a letter or digit first, then letters, digits, '_', '.' or '-'",
    ],
    "reserved_id": ["5:11: error: id 'input' is reserved"],
    "duplicate_id": ["7:16: error: duplicate id 'src' (first defined at 5:3)"],
    "empty_input_item": [
        "6:35: error: invalid input 'src,,src': expected a node id or a comma-separated list of ids",
    ],
    "bad_timeout": [
        "5:47: error: invalid duration '5 seconds' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h or seconds",
    ],
    # --- Task nodes and their config -----------------------------------------------------
    "missing_type": ["5:3: error: <source> needs attribute 'type'"],
    "unknown_type": [
        "6:24: error: unknown node type 'transform:mapp'; known types: transform:filter, transform:map, transform:reduce, transform:template",
    ],
    "missing_required_config": ["6:3: error: transform:map needs attribute 'expression'"],
    "config_key_twice": ["6:5: error: duplicate config key 'path' (first given at 5:32)"],
    "config_element_with_elements": [
        "6:11: error: unexpected <value> inside config element <path>; config elements hold text only",
    ],
    "bad_template_attribute": [
        "5:32: error: in 'path': invalid template syntax: unexpected '}' (line 1)",
    ],
    "bad_expression_element": [
        "9:9: error: in 'expression': invalid expression syntax: unexpected ')' (line 2)",
    ],
    "sandbox_violation": [
        "6:47: error: in 'expression': unsafe access to '__class__' is not allowed in expressions",
    ],
    "unknown_filter": [
        "5:37: error: in 'template': invalid template: No filter named 'shout'. (line 1)",
    ],
    "template_blocks_too_deep": [
        "5:37: error: in 'template': template too complex: {% %} blocks nest more than 16 deep (line 1)",
    ],
    # --- <on-error> ----------------------------------------------------------------------
    "two_on_errors": ["7:5: error: more than one <on-error> in <source>"],
    "on_error_on_control": [
        "7:5: error: <on-error> is only allowed directly inside <source>, <transform>, <sink> or <checkpoint>",
    ],
    "retry_bad_values": [
        "7:14: error: invalid value '-1' for 'max': expected an integer >= 0",
        "7:23: error: invalid value 'random' for 'backoff': expected one of exponential, linear, fixed",
        "7:40: error: invalid duration 'soon' for 'base': expected e.g. 250ms, 5s, 2m, 1h or seconds",
        "7:52: error: invalid value 'sometimes' for 'when': expected one of retryable, always",
    ],
    "retry_unknown_attribute": [
        "7:22: error: unknown attribute 'jitter' on <retry>; expected one of max, backoff, base, cap, when, timeout",
    ],
    "on_error_unknown_child": [
        "7:7: error: unexpected <retyr> inside <on-error>; expected <retry> or <fallback>",
    ],
    "fallback_missing_node": ["7:7: error: <fallback> needs attribute 'node'"],
    # --- Control flow, checkpoints and delays --------------------------------------------
    "parallel_no_branches": ["5:3: error: <parallel> needs at least one <branch>"],
    "parallel_non_branch_child": [
        "9:5: error: unexpected <source> inside <parallel>; expected <branch>",
    ],
    "parallel_wait_too_large": [
        "5:22: error: invalid value 'n(3)' for 'wait': expected n(K) with 1 <= K <= 2, the number of branches",
    ],
    "parallel_duplicate_branch_name": [
        "7:13: error: duplicate branch name 'x' in <parallel> (first defined at 6:13)",
    ],
    "parallel_bad_merge": [
        "5:22: error: invalid value 'dict' for 'merge': expected one of array, concat, object",
    ],
    "foreach_missing_collection": ["5:3: error: <foreach> needs attribute 'collection'"],
    "foreach_unknown_attribute": [
        "6:46: error: unknown attribute 'concurency' on <foreach>; expected one of id, input, timeout, description, collection, item, index, concurrency",
    ],
    "foreach_reserved_item": [
        "6:46: error: invalid value 'config' for 'item': it would hide 'config'",
    ],
    "foreach_empty_body": ["6:3: error: <foreach> needs at least one node"],
    "if_missing_condition": ["5:3: error: <if> needs attribute 'condition'"],
    "if_missing_then": ["6:3: error: <if> needs a <then>"],
    "if_two_elses": ["9:5: error: more than one <else> in <if>"],
    "branch_without_case": ["5:3: error: <branch> needs at least one <case>"],
    "branch_default_not_last": ["8:5: error: <case> after <default>: <default> must come last"],
    "case_missing_when": ["6:5: error: <case> needs attribute 'when'"],
    "loop_missing_max": ["5:3: error: <loop> needs attribute 'max'"],
    "loop_bad_max": ["5:20: error: invalid value '0' for 'max': expected an integer >= 1"],
    "loop_bad_break": [
        "5:28: error: in 'break': invalid expression syntax: unexpected 'end of template' (line 1)",
    ],
    "while_missing_condition": ["5:3: error: <while> needs attribute 'condition'"],
    "break_outside_loop": [
        "7:11: error: <break> is only allowed inside <loop>, <while> or <foreach>",
    ],
    "checkpoint_bad_default": [
        "5:42: error: invalid value 'yes' for 'default': expected one of approve, reject",
    ],
    "checkpoint_unknown_attribute": [
        "5:23: error: unknown attribute 'promt' on <checkpoint>; expected one of id, input, timeout, description, prompt, default",
    ],
    "delay_missing_duration": ["5:3: error: <delay> needs attribute 'duration'"],
    "delay_bad_duration": [
        "5:21: error: invalid duration '1 minute' for 'duration': expected e.g. 250ms, 5s, 2m, 1h or seconds",
    ],
    # --- Several problems in one file: all are reported ----------------------------------
    "several_problems": [
        "2:7: error: invalid name 'bad flow': expected letters, digits, '_', '.' or '-'",
        "3:28: error: invalid value 0 for 'max_concurrency': expected an integer >= 1",
        "6:47: error: invalid duration 'soon' for 'timeout': expected e.g. 250ms, 5s, 2m, 1h or seconds",
        "7:14: error: duplicate id 'src' (first defined at 6:3)",
        "7:23: error: unknown node type 'transform:mapp'; known types: transform:filter, transform:map, transform:reduce, transform:template",
        "8:3: error: <foreach> needs attribute 'collection'",
        "8:22: error: unknown attribute 'colection' on <foreach>; expected one of id, input, timeout, description, collection, item, index, concurrency",
        "9:16: error: id 'item' is reserved",
        "9:37: error: in 'expression': invalid expression syntax: unexpected 'end of template' (line 1)",
        "11:3: error: <break> is only allowed inside <loop>, <while> or <foreach>",
    ],
    # --- Semantic checks (core/_validate.py: references, scopes, cycles) ------------
    # Reported at the start tag of the node holding the reference.
    "unknown_input": ["6:3: error: unknown input 'scr' referenced by 'names'"],
    "unknown_node_subscript": ["6:3: error: unknown node 'scr' referenced by 'report'"],
    "unknown_node_attribute": [
        "6:3: error: unknown name 'scr' in a template of 'report'; expected a node id or one of config, context, input, nodes, secrets"
    ],
    "unknown_name": [
        "6:3: error: unknown name 'itme' in a template of 'names'; expected a node id or one of acc, config, context, index, input, item, nodes, secrets"
    ],
    "item_outside_foreach": ["5:3: error: name 'item' is only available inside a foreach body"],
    "iteration_outside_loop": [
        "5:3: error: name 'iteration' is only available inside a loop or while body",
    ],
    "error_outside_fallback": ["5:3: error: name 'error' is only available in a fallback node"],
    "branch_outside_parallel": [
        "5:3: error: name 'branch' is only available inside a parallel branch",
    ],
    "dynamic_nodes_index": [
        "8:3: error: in a template of 'pick': read nodes with a literal id (nodes['x'] or x.output) so the dependency is known",
    ],
    "cycle_of_three": ["5:3: error: dependency cycle: a -> b -> c -> a"],
    "self_reference_input": ["5:3: error: dependency cycle: t -> t"],
    "cycle_through_control_body": ["6:3: error: dependency cycle: check -> report -> check"],
    "foreach_body_read_from_outside": [
        "9:3: error: 'report' cannot read 'fetch': it is inside the body of foreach 'each', which runs once per item; read 'each' instead",
    ],
    "sibling_parallel_branch": [
        "10:7: error: 'r' cannot read 'l' in another branch of parallel 'fan'"
    ],
    "read_enclosing_control": ["8:7: error: 'yes' is inside 'check' and cannot read it"],
    "if_condition_reads_body": ["5:3: error: 'check' cannot read 'yes' inside its own body"],
    # Fallback problems are reported at the primary's <on-error>, or at the fallback node.
    "fallback_unknown_node": ["6:5: error: unknown fallback node 'save-local' for 'save'"],
    "fallback_control_node": [
        "6:5: error: fallback 'retry-later' must be a source, transform or sink, not <loop>",
    ],
    "fallback_in_other_body": [
        "6:5: error: fallback 'save-local' must be declared in the same body as 'save'",
    ],
    "fallback_with_on_error": [
        "11:5: error: fallback 'save-local' cannot have its own <on-error> (a fallback runs once: no retry, no further fallback)",
    ],
    "fallback_read_as_input": [
        "11:3: error: 'save-local' is a fallback node and never runs on its own; 'report' cannot read it",
    ],
}


def _nested(open_: str, close: str, depth: int, leaf: str) -> str:
    return open_ * depth + leaf + close * depth


def _flow(body: str, front: str = "") -> str:
    return f"---\nname: big\n{front}---\n<workflow>\n{body}\n</workflow>\n"


_LEAF = '<transform id="leaf" type="template" template="x"/>'
_PARALLELS = "".join(f'<parallel id="p{i}"><branch>' for i in range(500))
_IFS = "".join(f'<if id="i{i}" condition="true"><then>' for i in range(300))

#: Cases too large to keep as files, generated here: name -> (text, diagnostics). Each is a
#: class the limits of core/_limits.py turn from a crash into one located error.
GENERATED: dict[str, tuple[str, list[str]]] = {
    "parallel_500_deep": (
        _flow(_PARALLELS + _LEAF + "</branch></parallel>" * 500),
        [
            "5:855: error: <parallel> is nested too deeply: elements nest at most 64 levels "
            "inside <workflow>"
        ],
    ),
    "if_300_deep": (
        _flow(_IFS + _LEAF + "</then></if>" * 300),
        [
            "5:1143: error: <if> is nested too deeply: elements nest at most 64 levels inside <workflow>"
        ],
    ),
    "foreach_65_deep": (
        _flow(_nested('<foreach id="f" collection="[1]">', "</foreach>", 65, _LEAF)),
        [
            "5:2113: error: <foreach> is nested too deeply: elements nest at most 64 levels "
            "inside <workflow>"
        ],
    ),
    "attribute_integer_5000_digits": (
        _flow(f'<loop id="l" max="{"9" * 5000}">{_LEAF}</loop>'),
        [
            "5:14: error: invalid value '999999999999999999999999999999999999999... "
            "(5000 characters) for 'max': expected an integer >= 1 of at most 4300 digits"
        ],
    ),
    "yaml_integer_5000_digits": (
        _flow(_LEAF, f"runtime: {{max_concurrency: {'9' * 5000}}}\n"),
        ["3:28: error: invalid YAML: integer of 5000 digits: at most 4300 are allowed"],
    ),
    "template_integer_5000_digits": (
        _flow(f'<transform id="t" type="template" template="{{{{ {"9" * 5000} }}}}"/>'),
        [
            "5:35: error: in 'template': template too complex: an integer literal of 5000 "
            "characters: at most 4300 digits are allowed (line 1)"
        ],
    ),
    "template_parentheses_300_deep": (
        _flow(f'<transform id="t" type="template" template="{{{{ {"(" * 300}1{")" * 300} }}}}"/>'),
        [
            "5:35: error: in 'template': template too complex: brackets, blocks, unary operators "
            "and conditionals nest more than 24 deep (line 1)"
        ],
    ),
    "expression_sum_3000_terms": (
        _flow(f'<transform id="t" type="map" expression="{"+".join(["1"] * 3000)}"/>'),
        [
            "5:30: error: in 'expression': expression too complex: it nests more than 100 levels "
            "deep (each operator, filter, call, attribute or bracket is a level) (line 1)"
        ],
    ),
    "nested_literal_lists": (
        _flow(f'<transform id="t" type="template" template="{{{{ {"[" * 40}1{"]" * 40} }}}}"/>'),
        [
            "5:35: error: in 'template': template too complex: brackets, blocks, unary operators "
            "and conditionals nest more than 24 deep (line 1)"
        ],
    ),
}


def diagnostics_of(path: Path) -> list[str]:
    """The diagnostics loading ``path`` raises, each without the ``FILE:`` prefix."""
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    rendered = [str(d) for d in caught.value.diagnostics]
    prefix = f"{path}:"
    assert all(line.startswith(prefix) for line in rendered)
    return [line.removeprefix(prefix) for line in rendered]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_reports_exactly_its_diagnostics(name: str) -> None:
    """Each bad file yields exactly the expected diagnostics, every one of them, in order."""
    assert diagnostics_of(BAD / f"{name}.flow.md") == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_bad_file_reports_exactly_its_diagnostics(name: str, tmp_path: Path) -> None:
    """Each generated case (too large for a file) yields exactly its one located error."""
    text, expected = GENERATED[name]
    path = tmp_path / f"{name}.flow.md"
    path.write_text(text)
    assert diagnostics_of(path) == expected


def test_every_bad_file_has_a_row() -> None:
    """The corpus and the table name the same cases."""
    files = {path.name.removesuffix(".flow.md") for path in BAD.glob("*.flow.md")}
    assert files == set(EXPECTED)
    assert len(files) >= 25


def test_single_problem_files_report_one_diagnostic() -> None:
    """Apart from the cases that are about several problems, one bad file is one problem."""
    several = {"several_problems", "retry_bad_values"}
    assert all(len(rows) == 1 for name, rows in EXPECTED.items() if name not in several)
    assert all(len(rows) == 1 for _, rows in GENERATED.values())


def test_legal_references_across_bodies() -> None:
    """A loop's break and a while's condition read their own body; a body node reads an outer
    node (its control node waits for it); an outer node reads into an <if> (it waits for it)."""
    workflow = load_workflow(GOOD / "scopes.flow.md")
    dependencies = plan(workflow).dependencies
    assert dependencies["again"] == dependencies["poll"] == ["seed"]
    assert dependencies["check"] == ["seed", "again"]
    assert dependencies["report"] == ["poll", "check"]


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.flow.md")), ids=lambda path: path.name)
def test_good_file_parses_without_diagnostics(path: Path) -> None:
    """The good corpus exercises many features and parses cleanly (semantic checks included)."""
    workflow = load_workflow(path)
    assert workflow.path == str(path)
    assert workflow.body
