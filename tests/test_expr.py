"""Templates and expressions (``wavecrest.core._expr``).

Pins native values versus strings, the ``$`` aliases, the static reference
extractor the planner relies on, the sandbox (compile-time and run-time
rejections), and that every failure is an ExpressionError with a one-line
message: a raw Jinja exception never escapes.
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.core import ExpressionError, SandboxError
from wavecrest.core._expr import (
    NO_REFERENCES,
    SCOPE_NAMES,
    Expression,
    References,
    Template,
    compile_expression,
    compile_template,
    is_template,
    render_value,
    value_references,
)


def render(text: str, **scope: Any) -> Any:
    return compile_template(text).render(scope)


def evaluate(text: str, **scope: Any) -> Any:
    return compile_expression(text).evaluate(scope)


def refs(text: str) -> References:
    return compile_template(text).references


# --- native values and strings --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ 3 }}", 3),
        ("{{ 2.5 }}", 2.5),
        ("{{ none }}", None),
        ("{{ true }}", True),
        ("{{ {'a': [1, {'b': 2}]} }}", {"a": [1, {"b": 2}]}),
        ("{{ (1, 2) }}", (1, 2)),
        ("  {{ 3 }}\n", 3),
        ("{{- 3 -}}", 3),
        ("{{ 'text' }}", "text"),
    ],
)
def test_a_single_expression_renders_to_its_native_value(text: str, expected: Any) -> None:
    template = compile_template(text)
    assert template.is_expression
    assert not template.is_static
    result = template.render({})
    assert result == expected
    assert type(result) is type(expected)


def test_a_single_expression_returns_the_scope_value_itself() -> None:
    users = [{"name": "ada"}]
    assert render("{{ users }}", users=users) is users


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n={{ 3 }}", "n=3"),
        ("{{ 1 }}{{ 2 }}", "12"),
        ("{{ [1, 2] }} items", "[1, 2] items"),
        ("{% if true %}{{ 1 }}{% endif %}", "1"),
        ("{% set x = 4 %}{{ x }}", "4"),
        ("line {{ a }}\n", "line 7\n"),
    ],
)
def test_mixed_text_renders_to_a_string(text: str, expected: str) -> None:
    template = compile_template(text)
    assert not template.is_expression
    assert template.render({"a": 7}) == expected


def test_static_text_renders_to_the_same_object_without_compiling() -> None:
    text = "just text with {braces} and $config"
    template = compile_template(text)
    assert template.is_static
    assert not template.is_expression
    assert template.references is References.EMPTY
    assert template.render({}) == text
    assert template.render({}) is template.source


@given(st.text().filter(lambda t: not is_template(t)))
def test_any_text_without_template_syntax_is_static(text: str) -> None:
    template = compile_template(text)
    assert template.is_static
    # Rendering hands back the source itself, untouched. (Compiled templates are
    # cached by text, so the source may be an equal string made elsewhere.)
    rendered = template.render({})
    assert rendered == text
    assert rendered is template.source


@given(st.integers() | st.booleans() | st.none())
def test_scalar_values_round_trip_through_a_single_expression(value: Any) -> None:
    assert render("{{ value }}", value=value) == value


def test_lazy_results_are_materialised_as_lists() -> None:
    assert render("{{ xs | map('upper') }}", xs=["a", "b"]) == ["A", "B"]
    assert render("{{ range(3) }}") == [0, 1, 2]
    assert evaluate("xs | select('odd')", xs=[1, 2, 3]) == [1, 3]


def test_default_filter_still_applies_to_undefined_values() -> None:
    assert render("{{ config.missing | default('x') }}", config={}) == "x"
    assert evaluate("config.missing is defined", config={}) is False


def test_fromjson_parses_and_tojson_writes_plain_json() -> None:
    assert render("{{ '[1, {\"a\": 2}]' | fromjson }}") == [1, {"a": 2}]
    dumped = render("{{ data | tojson }}", data={"z": "<é>", "a": 1})
    assert type(dumped) is str
    assert dumped == '{"z": "<é>", "a": 1}'


def test_is_template_detects_each_kind_of_template_syntax() -> None:
    assert is_template("a {{ b }}")
    assert is_template("{% if a %}{% endif %}")
    assert is_template("{# note #}")
    assert not is_template("{a} {b} % # $config")


# --- expressions ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a > 1", "{{ a > 1 }}", "  {{a > 1}} ", "\n{{- a > 1 -}}\n"])
def test_expressions_may_be_written_with_or_without_braces(text: str) -> None:
    expression = compile_expression(text)
    assert expression.source == text
    assert expression.evaluate({"a": 2}) is True
    assert expression.references.names == {"a"}


def test_expression_evaluate_returns_native_values() -> None:
    assert evaluate("{'name': item.name, 'n': index + 1}", item={"name": "x"}, index=0) == {
        "name": "x",
        "n": 1,
    }


def test_expression_test_is_the_truthiness_of_the_value() -> None:
    expression = compile_expression("item.active")
    assert expression.test({"item": {"active": 1}}) is True
    assert expression.test({"item": {"active": []}}) is False


def test_a_bare_expression_may_contain_braces_inside_string_literals() -> None:
    assert evaluate("'{{' ~ a ~ '}}'", a=1) == "{{1}}"


@pytest.mark.parametrize(
    "text",
    [
        "x {{ a }}",
        "{{ a }} x",
        "{{ a }}{{ b }}",
        "{{ a }} {{ b }}",
        "{% if a %}1{% endif %}",
        "{% set x = 1 %}{{ x }}",
    ],
)
def test_an_expression_must_be_a_single_expression(text: str) -> None:
    with pytest.raises(
        ExpressionError, match=r"must be a single expression, e\.g\. 'item\.active'"
    ):
        compile_expression(text)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_an_empty_expression_is_rejected(text: str) -> None:
    with pytest.raises(ExpressionError, match=r"^empty expression"):
        compile_expression(text)


# --- aliases --------------------------------------------------------------------------


def test_dollar_aliases_mean_config_secrets_and_context() -> None:
    scope = {"config": {"a": 1}, "secrets": {"T": "s"}, "context": {"run": "r"}}
    assert render("{{ $config.a }}-{{ $secrets.T }}-{{ $context.run }}", **scope) == "1-s-r"
    assert evaluate("$config.a + 1", **scope) == 2
    assert evaluate("{{ [$config.a, $secrets['T']] }}", **scope) == [1, "s"]
    assert refs("{% if $config.a %}{{ $secrets.T }}{% endif %}").names == {"config", "secrets"}


def test_aliases_inside_string_literals_comments_and_raw_blocks_are_left_alone() -> None:
    scope = {"config": {"a": 1}}
    assert render("{{ '$config' ~ \"$secrets\" }}", **scope) == "$config$secrets"
    assert evaluate("'$config.a' ~ $config.a", **scope) == "$config.a1"
    assert render("$config {# $config #}{{ $config.a }}", **scope) == "$config 1"
    assert render("{% raw %}{{ $config }}{% endraw %}{{ $config.a }}", **scope) == "{{ $config }}1"


def test_an_alias_after_a_closing_brace_inside_a_block_is_still_rewritten() -> None:
    assert render("{{ {'a': {'b': 1}}.a.b + $config.x }}", config={"x": 1}) == 2
    assert render("{{ '}}' ~ $config.x }}", config={"x": 1}) == "}}1"


@pytest.mark.parametrize("text", ["{{ $configs }}", "{{ $input }}", "$nodes.a"])
def test_dollar_is_only_an_alias_for_config_secrets_and_context(text: str) -> None:
    with pytest.raises(ExpressionError, match=r"^invalid (template|expression) syntax: .*'\$'"):
        compile_expression(text)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_string_literals_evaluate_to_themselves_even_when_they_look_like_aliases(
    text: str,
) -> None:
    literal = json.dumps("$config " + text + " $secrets", ensure_ascii=False)
    assert evaluate(literal) == "$config " + text + " $secrets"


# --- references -----------------------------------------------------------------------


def test_bare_node_ids_are_reported_as_names() -> None:
    assert refs("{{ users.output }}") == References(names=frozenset({"users"}))


def test_literal_node_keys_are_reported_in_every_form() -> None:
    found = refs(
        "{{ nodes['x-y'].output }}{{ nodes[\"b\"] }}{{ nodes.c.output }}{{ nodes.get('d') }}"
    )
    assert found.nodes == {"x-y", "b", "c", "d"}
    assert found.names == {"nodes"}
    assert not found.dynamic_nodes


def test_nodes_get_with_a_default_reports_the_key_and_the_default_names() -> None:
    found = refs("{{ nodes.get('a', fallback) }}")
    assert found.nodes == {"a"}
    assert found.names == {"nodes", "fallback"}


@pytest.mark.parametrize(
    "text",
    [
        "{{ nodes[key] }}",
        "{{ nodes.get(key) }}",
        "{{ nodes['a' ~ i] }}",
        "{% for n in nodes %}{{ n }}{% endfor %}",
        "{{ nodes | length }}",
        "{{ nodes.items() | list }}",
        "{{ nodes.values() }}",
    ],
)
def test_computed_access_to_nodes_is_flagged_dynamic(text: str) -> None:
    found = refs(text)
    assert found.dynamic_nodes
    assert "nodes" in found.names
    assert found.nodes == frozenset()


def test_references_are_found_inside_filters_tests_conditionals_and_literals() -> None:
    found = refs(
        "{{ a | join(b) }}{{ c if d is divisibleby(e) else f }}"
        "{{ [g, {'k': h}] }}{{ i | map(attribute=j) | list }}{{ nodes.x.output | default(k) }}"
    )
    assert found.names == set("abcdefghijk") | {"nodes"}
    assert found.nodes == {"x"}


def test_names_bound_by_for_loops_are_excluded_but_the_iterable_is_not() -> None:
    found = refs(
        "{% for k, (v, w) in pairs if k != skip %}{{ k }}{{ v }}{{ w }}{{ loop.index }}{{ other }}"
        "{% else %}{{ empty }}{% endfor %}"
    )
    assert found.names == {"pairs", "skip", "other", "empty"}


def test_loop_variables_do_not_leak_out_of_the_loop() -> None:
    found = refs("{% for x in xs %}{% set y = x %}{% endfor %}{{ x }}{{ y }}{{ loop }}")
    assert found.names == {"xs", "x", "y", "loop"}


def test_set_binds_a_name_only_after_the_statement() -> None:
    assert refs("{{ z }}{% set z = 1 %}{{ z }}").names == {"z"}
    assert refs("{% set a, b = pair %}{{ a }}{{ b }}").names == {"pair"}
    assert refs("{% set s %}{{ body }}{% endset %}{{ s }}").names == {"body"}


def test_a_set_inside_if_stays_visible_after_it() -> None:
    assert refs("{% if c %}{% set v = 1 %}{% endif %}{{ v }}").names == {"c"}
    found = refs(
        "{% if c %}{% elif d %}{% set v = 1 %}{% else %}{% set w = 2 %}{% endif %}{{ v }}{{ w }}"
    )
    assert found.names == {"c", "d"}


def test_with_and_macro_arguments_are_bound_inside_their_bodies() -> None:
    found = refs(
        "{% with w = u %}{{ w }}{% endwith %}{{ w }}"
        "{% macro m(a, b=d) %}{{ a }}{{ b }}{{ e }}{{ caller() }}{{ varargs }}{% endmacro %}"
        "{{ m(1) }}{% call(r) m(q) %}{{ r }}{{ s }}{% endcall %}"
    )
    assert found.names == {"u", "w", "d", "e", "q", "s"}


def test_jinja_globals_are_not_reported_as_names() -> None:
    found = refs("{{ range(n) }}{{ dict(a=1) }}{{ joiner() }}{{ cycler(1) }}{{ namespace() }}")
    assert found.names == {"n"}


def test_namespace_attribute_assignment_reads_the_namespace() -> None:
    assert refs("{% set ns.total = 1 %}").names == {"ns"}
    assert refs("{% set ns = namespace(t=0) %}{% set ns.t = x %}").names == {"x"}


def test_a_locally_rebound_nodes_name_reports_no_node_keys() -> None:
    assert refs("{% set nodes = {'a': 1} %}{{ nodes['a'] }}") == References.EMPTY


def test_expression_references_match_template_references() -> None:
    text = "nodes['a'].output + b.output"
    assert compile_expression(text).references == refs("{{ " + text + " }}")
    assert compile_expression(text).references == References(
        names=frozenset({"nodes", "b"}), nodes=frozenset({"a"})
    )


_IDENTIFIERS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: (
        not keyword.iskeyword(name)
        and name not in {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none"}
        and name not in {"range", "dict", "lipsum", "cycler", "joiner", "namespace"}
    )
)


@given(st.lists(_IDENTIFIERS, min_size=1, max_size=5))
def test_every_name_read_is_reported(names: list[str]) -> None:
    text = " + ".join(f"{name}.output" for name in names)
    assert compile_expression(text).references.names == set(names)
    assert refs("x{{ " + " }}{{ ".join(names) + " }}").names == set(names)


def test_references_union_with_or() -> None:
    left = References(frozenset({"a"}), frozenset({"x"}), dynamic_nodes=False)
    right = References(frozenset({"b"}), frozenset(), dynamic_nodes=True)
    assert left | right == References(frozenset({"a", "b"}), frozenset({"x"}), dynamic_nodes=True)
    assert left | References.EMPTY is left
    assert NO_REFERENCES is References.EMPTY


def test_value_references_unions_every_string_leaf() -> None:
    value = {
        "path": "{{ config.dir }}/{{ nodes['a'].output }}",
        "items": ["{{ b.output }}", 3, ("{{ nodes[k] }}",)],
        "plain": "text",
        "n": None,
    }
    assert value_references(value) == References(
        names=frozenset({"config", "nodes", "b", "k"}),
        nodes=frozenset({"a"}),
        dynamic_nodes=True,
    )
    assert value_references(42) is References.EMPTY


def test_scope_names_lists_the_runtime_names() -> None:
    assert {"input", "config", "secrets", "context", "nodes", "item", "index"} <= SCOPE_NAMES
    assert {"branch", "iteration", "error", "primary_input", "acc"} <= SCOPE_NAMES
    assert "users" not in SCOPE_NAMES


# --- sandbox --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("{{ ''.__class__.__mro__ }}", "__class__"),
        ("{{ x.__globals__ }}", "__globals__"),
        ("{{ cycler.__init__.__globals__ }}", "__init__"),
        ("{{ x['__class__'] }}", "__class__"),
        ("{{ x._private }}", "_private"),
        ("{{ x | attr('__class__') }}", "__class__"),
        ("{{ xs | map(attribute='__class__') | list }}", "__class__"),
        ("{{ xs | selectattr('a.__dict__') | list }}", "__dict__"),
        ("{% set ns._x = 1 %}", "_x"),
        ("{% for a in xs %}{% if a.b.__len__ %}{% endif %}{% endfor %}", "__len__"),
    ],
)
def test_private_attribute_and_item_access_is_rejected_at_compile_time(
    text: str, name: str
) -> None:
    with pytest.raises(SandboxError, match=rf"^unsafe access to '{name}' is not allowed") as info:
        compile_template(text)
    assert info.value.lineno == 1


@pytest.mark.parametrize(
    "text", ["x.__class__", "{{ x.__class__ }}", "x['__class__']", "lipsum.__globals__"]
)
def test_private_access_in_expressions_is_rejected_at_compile_time(text: str) -> None:
    with pytest.raises(SandboxError, match=r"^unsafe access to '__\w+__' is not allowed"):
        compile_expression(text)


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("{% import 'x.j2' as x %}", "import"),
        ("{% from 'x.j2' import y %}", "from ... import"),
        ("{% include 'x.j2' %}", "include"),
        ("a\n{% extends 'x.j2' %}", "extends"),
    ],
)
def test_imports_are_rejected_at_compile_time(text: str, tag: str) -> None:
    with pytest.raises(SandboxError, match=r"^imports are not allowed in expressions") as info:
        compile_template(text)
    assert f"{{% {tag} %}}" in str(info.value)
    assert info.value.lineno == text.count("\n") + 1


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("{{ x[k] }}", {"x": {}, "k": "__class__"}),
        ("{{ x | attr(k) }}", {"x": 1, "k": "__class__"}),
        ("{{ '{0.__class__}'.format(1) }}", {}),
        ("{{ xs | map(attribute=k) | list }}", {"xs": [1], "k": "__class__"}),
    ],
)
def test_escapes_only_visible_at_run_time_raise_sandbox_error(
    text: str, scope: dict[str, Any]
) -> None:
    template = compile_template(text)
    with pytest.raises(SandboxError, match=r"^error evaluating .*'__class__' .* is unsafe"):
        template.render(scope)


def test_values_in_scope_cannot_be_mutated() -> None:
    shared = {"xs": [1], "d": {"a": 1}}
    with pytest.raises(SandboxError, match=r"access to attribute 'append' of 'list' object"):
        render("{{ xs.append(2) }}", **shared)
    with pytest.raises(SandboxError, match=r"access to attribute 'update' of 'dict' object"):
        evaluate("d.update({'a': 2})", **shared)
    assert shared == {"xs": [1], "d": {"a": 1}}


# --- compile errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "lineno"),
    [
        ("{{ a }", r"^invalid template syntax: unexpected '}' \(line 1\)$", 1),
        ("one\ntwo {{ a }", r"^invalid template syntax: unexpected '}' \(line 2\)$", 2),
        ("{% for x in %}{% endfor %}", r"^invalid template syntax: Expected an expression", 1),
        ("a\nb\n{% if a %}", r"^invalid template syntax: Unexpected end of template", 3),
        ("{{ x | nosuchfilter }}", r"^invalid template: No filter named 'nosuchfilter'", 1),
    ],
)
def test_template_syntax_errors_carry_the_line_number(text: str, message: str, lineno: int) -> None:
    with pytest.raises(ExpressionError, match=message) as info:
        compile_template(text)
    assert info.value.lineno == lineno
    assert "\n" not in str(info.value)
    assert not isinstance(info.value, SandboxError)


@pytest.mark.parametrize(
    ("text", "message", "lineno"),
    [
        ("a >", r"^invalid expression syntax: unexpected 'end of template' \(line 1\)$", 1),
        ("a b", r"^invalid expression syntax: unexpected text after the expression", 1),
        ("a +\n\n)", r"^invalid expression syntax: unexpected '\)' \(line 3\)$", 3),
        ("{{ a > }}", r"^invalid expression syntax: unexpected 'end of print statement'", 1),
        ("x | nosuchfilter", r"^invalid expression: No filter named 'nosuchfilter'", 1),
    ],
)
def test_expression_syntax_errors_carry_the_line_number(
    text: str, message: str, lineno: int
) -> None:
    with pytest.raises(ExpressionError, match=message) as info:
        compile_expression(text)
    assert info.value.lineno == lineno


# --- evaluation errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scope", "message", "cause"),
    [
        ("{{ missing }}", {}, r"'missing' is undefined", "UndefinedError"),
        ("{{ x.nope }}", {"x": {}}, r"'dict object' has no attribute 'nope'", "UndefinedError"),
        ("{{ [x.nope] }}", {"x": {}}, r"has no attribute 'nope'", "UndefinedError"),
        ("{{ {'a': [x.nope]} }}", {"x": {}}, r"has no attribute 'nope'", "UndefinedError"),
        ("{{ xs | map(attribute='b') | list }}", {"xs": [{}]}, r"no attribute 'b'", None),
        ("x={{ missing }}", {}, r"'missing' is undefined", "UndefinedError"),
        ("{{ 1 / 0 }}", {}, r"division by zero", "ZeroDivisionError"),
        ("{{ 1 + 'a' }}", {}, r"unsupported operand", "TypeError"),
        ("{{ 'x' | fromjson }}", {}, r"Expecting value", "JSONDecodeError"),
        ("{% if missing %}{% endif %}", {}, r"'missing' is undefined", "UndefinedError"),
    ],
)
def test_evaluation_errors_are_wrapped_with_the_source_and_chained(
    text: str, scope: dict[str, Any], message: str, cause: str | None
) -> None:
    template = compile_template(text)
    pattern = rf"^error evaluating {re.escape(repr(text))}: .*{message}"
    with pytest.raises(ExpressionError, match=pattern) as info:
        template.render(scope)
    assert not isinstance(info.value, SandboxError)
    assert info.value.__cause__ is not None
    if cause is not None:
        assert type(info.value.__cause__).__name__ == cause


def test_expression_evaluation_errors_are_wrapped() -> None:
    expression = compile_expression("item.price * 2")
    with pytest.raises(ExpressionError, match=r"^error evaluating 'item.price \* 2': .*'price'"):
        expression.evaluate({"item": {}})
    with pytest.raises(ExpressionError, match=r"^error evaluating 'item.price \* 2'"):
        expression.test({"item": {}})


_FUZZ_ALPHABET = "{}%#$'\"ax ._[]()|,:~+-=!<>0123\n"


def _error_message(text: str, compile_: Any, scope: dict[str, Any]) -> str | None:
    """Compile and run ``text``; the ExpressionError message, or None if it ran."""
    try:
        compiled: Template | Expression = compile_(text)
        if isinstance(compiled, Template):
            compiled.render(scope)
        else:
            compiled.evaluate(scope)
    except ExpressionError as exc:
        return str(exc)
    return None


@given(st.text(alphabet=_FUZZ_ALPHABET, max_size=30))
def test_arbitrary_text_raises_nothing_but_one_line_expression_errors(text: str) -> None:
    scope = {"a": 1, "x": {"a": [1, 2]}, "config": {"a": "c"}}
    for compile_ in (compile_template, compile_expression):
        message = _error_message(text, compile_, scope)
        assert message is None or "\n" not in message


# --- render_value and caching ---------------------------------------------------------


def test_render_value_renders_every_string_leaf_of_nested_values() -> None:
    value = {
        "path": "{{ config.dir }}/out.json",
        "rows": ["{{ n }}", "n={{ n }}", 5, None, ("{{ [n] }}", "static")],
        "nested": {"{{ n }}": {"deep": "{{ flag }}"}},
    }
    scope = {"config": {"dir": "/tmp/x"}, "n": 2, "flag": False}
    assert render_value(value, scope) == {
        "path": "/tmp/x/out.json",
        "rows": [2, "n=2", 5, None, ([2], "static")],
        "nested": {"{{ n }}": {"deep": False}},
    }


def test_render_value_returns_non_strings_unchanged() -> None:
    marker = object()
    assert render_value(marker, {}) is marker
    assert render_value(3.5, {}) == 3.5
    assert render_value("{{ n }}", {"n": 1}) == 1


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text().filter(lambda t: not is_template(t)),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_render_value_leaves_static_values_equal(value: Any) -> None:
    assert render_value(value, {}) == value
    assert value_references(value) == References.EMPTY


def test_compiled_templates_and_expressions_are_cached_by_text() -> None:
    assert compile_template("{{ a }} cached") is compile_template("{{ a }} cached")
    assert compile_expression("a > 99") is compile_expression("a > 99")
    assert compile_template("{{ a }} cached") is not compile_template("{{ a }}  cached")


def test_a_compiled_template_is_reusable_with_different_scopes() -> None:
    template = compile_template("{{ item * 2 }}")
    assert [template.render({"item": i}) for i in range(4)] == [0, 2, 4, 6]


# --- the fast paths agree with Jinja's parser -----------------------------------------

_PATH_PARTS = st.sampled_from(
    [
        ".a",
        ".output",
        " . b",
        "['k']",
        '["k y"]',
        "[0]",
        "[12]",
        " [ 3 ] ",
        ".item_2",
        "[007]",
        ".0",
        "[-1]",
        "['it''s']",
        "|upper",
        "(1)",
        " + 1",
        "\n.a",
    ]
)
_HEADS = st.sampled_from(["a", "nodes", "t12", "_x", "true", "none", "not", "item", " a ", "é"])


@settings(max_examples=examples(300))
@given(head=_HEADS, steps=st.lists(_PATH_PARTS, max_size=5))
@example(head="a", steps=["[007]"])
def test_a_path_reads_as_jinja_reads_it(head: str, steps: list[str]) -> None:
    """The fast path for ``a.b['c'][0]`` builds exactly Jinja's tree, or leaves it to Jinja."""
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.parser import Parser
    from wavecrest.core._expr import _ENV, _parse_path

    code = head + "".join(steps)
    ours = _parse_path(code, 1)
    if ours is None:
        return
    parser = Parser(_ENV, code, state="variable")
    try:
        theirs = parser.parse_expression()
    except TemplateSyntaxError:
        pytest.fail(f"{code!r}: the fast path accepted what Jinja rejects")
    assert parser.stream.eos
    assert ours == theirs
    assert [n.lineno for n in ours.find_all(nodes.Node)] == [
        n.lineno for n in theirs.find_all(nodes.Node)
    ]


_TEXT_PARTS = st.sampled_from(
    [
        "text ",
        "\n",
        "{{ a }}",
        "{{ a.b['c'] }}",
        "{{ x | upper }}",
        "{{ 1 +\n 2 }}",
        "{{ {'k': '}}'} }}",
        "}}",
        "{",
        "}",
        "{{ a",
        "{{- a }}",
        "{{ a -}}",
        "{% if a %}x{% endif %}",
        "{# c #}",
        "\r\n",
        "{{ $config.x }}",
        "{{ 'a' ~ b }}",
        "{{ nope( }}",
    ]
)


@settings(max_examples=examples(300))
@given(parts=st.lists(_TEXT_PARTS, max_size=8))
def test_a_template_of_outputs_reads_as_jinja_reads_it(parts: list[str]) -> None:
    """Templates assembled from per-expression trees equal the tree Jinja parses, lines too."""
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError
    from wavecrest.core._expr import _ENV, _parse_outputs, _rewrite_template

    source = _rewrite_template("".join(parts))
    try:
        ours = _parse_outputs(source, "template")
    except ExpressionError:
        return  # a sandbox or limit check, which the slow path runs as well
    if ours is None:
        return
    tree, references = ours
    try:
        theirs = _ENV.parse(source)
    except TemplateSyntaxError:
        pytest.fail(f"{source!r}: the fast path accepted what Jinja rejects")
    assert tree == theirs
    assert [n.lineno for n in tree.find_all(nodes.Node)] == [
        n.lineno for n in theirs.find_all(nodes.Node)
    ]
    assert references == compile_template.__wrapped__("".join(parts)).references
