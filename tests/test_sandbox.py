"""Templates cannot hurt the host: known Jinja2 sandbox escapes, resource bombs, secrets.

Each escape is refused with a SandboxError (at compile time when the text
shows it, at run time when only the values do); each bomb is refused before
it builds anything, in bounded time and memory, both when rendering and when
merely compiling (Jinja folds constants while it compiles, so validating a
workflow must never evaluate one). No object in scope reaches os.environ.
"""

from __future__ import annotations

import os
import time
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.actors import run_workflow
from wavecrest.core import ExpressionError, SandboxError, parse_workflow
from wavecrest.core._expr import compile_expression, compile_template
from wavecrest.core._sandbox import environment

SCOPE: dict[str, Any] = {
    "x": "text",
    "n": 3,
    "xs": [1, 2, 3],
    "d": {"a": 1},
    "name": "__class__",
    "config": {"out_dir": "out"},
    "secrets": {},
    "context": {"run_id": "r", "node": "t"},
}


def render(text: str, **scope: Any) -> Any:
    return compile_template(text).render({**SCOPE, **scope})


# --- escapes --------------------------------------------------------------------------

#: Escapes visible in the text: refused by compile_template, before anything runs.
STATIC_ESCAPES = [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
    ("{{ x.__class__.__base__ }}", "__class__"),
    ("{{ ().__class__.__bases__[0].__subclasses__() }}", "__class__"),
    ("{{ cycler.__init__.__globals__.os.environ }}", "__init__"),
    ("{{ joiner.__init__.__globals__ }}", "__init__"),
    ("{{ namespace.__init__.__globals__ }}", "__init__"),
    ("{{ lipsum.__globals__['os'] }}", "__globals__"),
    ("{{ range.__globals__ }}", "__globals__"),
    ("{{ self._TemplateReference__context }}", "_TemplateReference__context"),
    ("{{ self.__dict__ }}", "__dict__"),
    ("{{ x['__class__'] }}", "__class__"),
    ("{{ x | attr('__class__') }}", "__class__"),
    ("{{ xs | map(attribute='__class__') | list }}", "__class__"),
    ("{{ xs | selectattr('__class__.__name__') | list }}", "__class__"),
    ("{{ xs | sort(attribute='__class__') }}", "__class__"),
    ("{% set c = x.__class__ %}{{ c }}", "__class__"),
    ("{% macro m() %}{% endmacro %}{{ m.__globals__ }}", "__globals__"),
    ("{% for c in x.__class__.__mro__ %}{{ c }}{% endfor %}", "__class__"),
    ("{% set ns = namespace() %}{% set ns._private = 1 %}", "_private"),
    ("{{ config.items.__self__ }}", "__self__"),
    ("{{ loop.__class__ }}", "__class__"),
]


@pytest.mark.parametrize(("text", "name"), STATIC_ESCAPES, ids=[t for t, _ in STATIC_ESCAPES])
def test_a_visible_escape_is_refused_at_compile_time(text: str, name: str) -> None:
    with pytest.raises(SandboxError, match=rf"^unsafe access to '{name}' is not allowed"):
        compile_template(text)


@pytest.mark.parametrize(
    "text",
    [
        "{% import 'os' as os %}",
        "{% from 'x' import y %}",
        "{% include 'x' %}",
        "{% extends 'x' %}",
    ],
)
def test_imports_includes_and_extends_are_refused(text: str) -> None:
    with pytest.raises(SandboxError, match=r"^imports are not allowed in expressions"):
        compile_template(text)


#: Escapes only the values reveal: refused by the sandbox while rendering.
DYNAMIC_ESCAPES = [
    "{{ x[name] }}",
    "{{ x | attr(name) }}",
    "{{ x | attr('_' ~ '_class' ~ '__') }}",
    "{{ xs | map(attribute=name) | list }}",
    "{{ xs | sum(attribute=name) }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ '{0[__class__]}'.format(x) }}",
    "{{ '{x.__class__}'.format_map({'x': x}) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ dict.mro() }}",
    "{{ xs.append(4) }}",
    "{{ d.update({'a': 2}) }}",
    "{{ d.pop('a') }}",
]


@pytest.mark.parametrize("text", DYNAMIC_ESCAPES)
def test_an_escape_hidden_in_values_is_refused_at_run_time(text: str) -> None:
    before = {"xs": list(SCOPE["xs"]), "d": dict(SCOPE["d"])}
    with pytest.raises(SandboxError, match=r"^error evaluating .*(is unsafe|not safely)"):
        render(text)
    assert {"xs": SCOPE["xs"], "d": SCOPE["d"]} == before


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("{{ request.environ }}", "request"),
        ("{{ lipsum() }}", "lipsum"),
        ("{{ os.environ }}", "os"),
    ],
)
def test_names_of_other_template_hosts_are_simply_undefined(text: str, name: str) -> None:
    with pytest.raises(ExpressionError, match=rf"'{name}' is undefined"):
        render(text)


def test_config_is_plain_data_without_methods_of_a_host() -> None:
    with pytest.raises(ExpressionError, match=r"has no attribute 'from_envvar'"):
        render("{{ config.from_envvar('HOME') }}")


# --- resource bombs -------------------------------------------------------------------

#: (template, message): each must be refused before it allocates or loops much.
BOMBS = [
    ("{{ 'x' * 10**10 }}", r"repeating a str 10,000,000,000 times would create"),
    ("{{ 10**10 * 'x' }}", r"repeating a str 10,000,000,000 times would create"),
    ("{{ [0] * 10**9 }}", r"repeating a list 1,000,000,000 times would create"),
    (
        "{{ [[0] * 1000] * 100000 }}",
        r"this result repeats shared values 100,098,999 items' worth: at most 10,000,000",
    ),
    ("{{ 10**(10**10) }}", r"10 \*\* 10000000000 would have about 10,000,000,000 digits"),
    ("{{ 2**100000 }}", r"2 \*\* 100000 would have about 30,103 digits: at most 4300"),
    ("{{ (10**4000) * (10**4000) }}", r"this product would have more than 4300 digits"),
    ("{{ range(10**9) }}", r"range\(1000000000\) would have 1,000,000,000 items"),
    ("{{ range(0, 10**12, 2) | list }}", r"range\(0, 1000000000000, 2\) would have"),
    ("{% for i in range(10**9) %}{% endfor %}", r"range\(1000000000\) would have"),
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        r"too much work: more than 1,000,000 steps",
    ),
    (
        "{% for i in range(100000) %}{% for j in range(100000) if false %}{% endfor %}{% endfor %}",
        r"too much work: more than 1,000,000 steps",
    ),
    ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", r"calls nest deeper than 64 levels"),
    (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(60) }}",
        r"too much work: more than 1,000,000 steps",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        r"'~' would create 16,777,216 characters",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        r"this sum would create 16,777,216 characters",
    ),
    (
        "{% set ns = namespace(t=[1]) %}{% for i in range(60) %}{% set ns.t = [ns.t, ns.t] %}"
        "{% endfor %}{{ ns.t }}",
        r"printing this value would create 3,458,764,513,820,540,927 characters",
    ),
    (
        "{% set ns = namespace(t=[1]) %}{% for i in range(60) %}{% set ns.t = [ns.t, ns.t] %}"
        "{% endfor %}{{ ns.t | tojson }}",
        r"printing this value would create",
    ),
    ("{{ 'x' | center(10**9) }}", r"'center' would create 1,000,000,000 characters"),
    ("{{ 'x' | indent(10**9) }}", r"'indent' would create 1,000,000,000 characters"),
    ("{{ ('a\n' * 100000) | indent(1000) }}", r"'indent' would create 100,201,000"),
    ("{{ ('a ' * 100000) | wordwrap(1, wrapstring='x' * 1000) }}", r"'wordwrap' would create"),
    ("{{ '%-999999999s' | format('x') }}", r"this format would create 1,000,000,000"),
    ("{{ '%.999999999f' % 1.5 }}", r"this format would create 1,000,000,000 characters"),
    ("{{ '%*s' % (10**9, 'x') }}", r"a '\*' width or precision is not allowed"),
    ("{{ '{0:>{1}}'.format('x', 10**9) }}", r"this format would create 10,000,000,000 characters"),
    ("{{ '{:>999999999}'.format('x') }}", r"this format would create"),
    ("{{ 'x'.ljust(10**9) }}", r"argument 1000000000 is too large"),
    ("{{ 'x'.zfill(10**9) }}", r"argument 1000000000 is too large"),
    ("{{ (10).to_bytes(10**9, 'big') }}", r"argument 1000000000 is too large"),
    ("{{ ('\t' * 1000).expandtabs(100000) }}", r"str.expandtabs would create 100,001,000"),
    ("{{ ('a' * 1000).replace('a', 'b' * 100000) }}", r"str.replace would create 100,000,000"),
    ("{{ ('a' * 10000) | replace('', 'b' * 10000) }}", r"'replace' would create 100,020,000"),
    (
        "{% set s = 'a' * 4000000 %}{{ ','.join([s, s, s]) }}",
        r"str.join would create 12,000,002 characters",
    ),
    ("{{ range(100000) | join('x' * 1000) }}", r"'join' would create"),
    ("{{ [1] | batch(10**9, 0) | list }}", r"'batch' would create 1,000,000,000 items"),
    ("{{ [1] | slice(10**9) | list }}", r"'slice' would create 1,000,000,000 items"),
    ("{{ ([[1] * 1000] * 1000) | sum(start=[]) | length }}", r"too much work|this sum would"),
    ("{{ [1] | tojson(indent=10**9) }}", r"would create 1,000,000,000"),
    ("{{ ('x' * 9000000) ~ ('y' * 9000000) }}", r"'~' would create 18,000,000 characters"),
    ("{{ (range(100000) | list) * 200 }}", r"repeating a list 200 times would create 20,000,000"),
    ("{{ [1] | batch(100000, 'x' * 1000) | list }}", r"this result repeats shared values"),
    ("{{ dict.fromkeys(range(100000), 'y' * 1000) }}", r"this result repeats shared values"),
    (
        "{% set big = 'x' * 1000 %}{{ [big] | batch(100000, big) | list }}",
        r"printing this value would create",
    ),
    # Work that reads a big value again and again, without creating anything big.
    *[
        (
            "{% set a = 'x' * 9000000 %}{% set b = 'x' * 9000000 %}"
            f"{{% for i in range(100000) %}}{{{{ {reading} }}}}{{% endfor %}}",
            r"too much work: more than 50,000,000 characters and items created or read",
        )
        for reading in (
            "a[1:] | length",
            "a == b",
            "'y' in a",
            "a | wordcount",
            "a.count('y')",
            "a.find('y')",
            "a is lower",
            "a | upper | length",
        )
    ],
]


@pytest.mark.parametrize(("text", "message"), BOMBS, ids=[t[:60] for t, _ in BOMBS])
def test_a_resource_bomb_is_refused_before_it_runs_away(text: str, message: str) -> None:
    started = time.monotonic()
    template = compile_template(text)  # compiling never evaluates (no constant folding)
    assert time.monotonic() - started < 5
    with pytest.raises(SandboxError, match=message):
        template.render(SCOPE)
    assert time.monotonic() - started < 30, "bounded in time: a hang or a slow machine?"


@pytest.mark.parametrize("text", [text for text, _ in BOMBS])
def test_a_bomb_in_a_workflow_is_not_evaluated_by_parsing_it(text: str) -> None:
    """parse_workflow (what validate does) compiles every template without evaluating any."""
    escaped = (
        text.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\t", "&#9;")
    )
    flow = (
        "---\nname: bomb\n---\n<workflow>\n"
        f'  <transform id="t" type="template" template="{escaped}"/>\n</workflow>\n'
    )
    started = time.monotonic()
    workflow = parse_workflow(flow)
    assert workflow.body[0].config["template"] == text
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'a' * 10**9 }}",
        "{{ 'a' * (10**9) }}",
        "{{ 10**(10**8) }}",
        "{{ 'x' | center(1000000000) }}",
        "{{ 'x' | indent(1000000000) }}",
        "{{ '%-999999999s' | format('x') }}",
        "{{ [1] | batch(1000000000, 0) | list | length }}",
        "{{ ('ab' * 3) | upper }}",
    ],
)
def test_jinja_constant_folding_never_runs_an_operator_or_a_filter(text: str) -> None:
    """Jinja folds constant expressions when it compiles; here nothing is folded."""
    template = compile_template(text)
    program = template._program
    assert program is not None
    started = time.monotonic()
    program._compile()  # code generation, where Jinja would fold the constants
    assert time.monotonic() - started < 5


def test_values_within_the_limits_render_normally() -> None:
    assert render("{{ 'ab' * 3 }}") == "ababab"
    assert render("{{ 2 ** 100 }}") == 2**100
    assert render("{{ '%5.2f|%-4s|' % (3.14159, 'x') }}") == " 3.14|x   |"
    assert render("{{ '{:>6}'.format('ab') }}") == "    ab"
    assert render("{{ 'x' | center(5) }}") == "  x  "
    assert len(render("{{ 'x' * 1000000 }}")) == 1_000_000
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}") == "012"
    assert render("{{ [[1], [2]] | sum(start=[]) }}") == [1, 2]
    assert render("{{ xs | join(',') }}") == "1,2,3"
    assert render("{{ range(5) | batch(2) | list }}") == [[0, 1], [2, 3], [4]]
    assert render("{% for x in xs if x > 1 %}{{ x }}{% endfor %}") == "23"
    assert render("{% macro m(n) %}{{ n }}{% endmacro %}{{ m(1) }}{{ m(2) }}") == "12"
    assert render("{{ range(100000) | length }}") == 100_000
    assert render("{{ 'abcdef'[1:4] ~ 'abcdef'[::2] }}") == "bcdace"
    assert render("{{ xs[::-1] }}") == [3, 2, 1]
    assert render("{{ 10**10**10 }}") == 10**100  # Jinja's ** groups from the left
    big = "x" * 9_000_000
    assert render("{% for i in range(3) %}{{ b | length }}{% endfor %}", b=big) == "9000000" * 3


def test_each_evaluation_has_its_own_budget() -> None:
    template = compile_template("{% for i in range(100000) %}{% endfor %}{{ 'x' * 9000000 }}")
    for _ in range(20):  # twenty times the budget of one evaluation, in total
        assert len(template.render({})) == 9_000_000


# --- the environment and secrets ------------------------------------------------------


def _reachable(roots: dict[str, Any], depth: int = 4) -> Iterator[tuple[str, Any]]:
    """Every object reachable from ``roots`` the way a template can reach one: attributes the
    sandbox allows, items of mappings and sequences, up to ``depth`` steps."""
    env = environment()
    seen: set[int] = set()
    frontier = list(roots.items())
    for _ in range(depth):
        following = []
        for path, obj in frontier:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield path, obj
            if isinstance(obj, dict):
                following += [(f"{path}[{k!r}]", v) for k, v in obj.items()]
            elif isinstance(obj, list | tuple):
                following += [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
            for name in dir(obj):
                try:
                    value = getattr(obj, name)
                except Exception:  # noqa: BLE001 - a property that fails is not reachable
                    continue
                if env.is_safe_attribute(obj, name, value):
                    following.append((f"{path}.{name}", value))
        frontier = following


def test_nothing_in_scope_or_among_the_globals_reaches_the_environment_or_a_module(
    tmp_path: Path,
) -> None:
    from wavecrest.core import ErrorInfo

    roots = {
        **environment().globals,
        **SCOPE,
        "error": ErrorInfo("ValueError", "bad", node="t", attempt=1, traceback="..."),
        "nodes": {"a": {"output": [1], "status": "succeeded"}},
        "input": {"rows": [{"id": 1}]},
    }
    dangerous = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)
    for path, obj in _reachable(roots):
        assert obj is not os.environ, path
        assert not isinstance(obj, dangerous), path
        assert getattr(obj, "__module__", None) not in ("os", "posix", "subprocess", "sys"), path


def test_templates_read_declared_secrets_and_no_other_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECLARED_TOKEN", "tok-declared")
    monkeypatch.setenv("UNDECLARED_TOKEN", "tok-undeclared")
    flow = tmp_path / "leak.flow.md"
    flow.write_text(
        "---\nname: leak\nsecrets: [DECLARED_TOKEN]\n---\n<workflow>\n"
        '  <transform id="all" type="template"'
        ' template="{{ [config, secrets, context, input] | tojson }}"/>\n'
        '  <transform id="env" type="template" template="{{ secrets.UNDECLARED_TOKEN }}"/>\n'
        "</workflow>\n"
    )
    result = run_workflow(flow, keep_going=True)
    assert "tok-declared" in result.outputs["all"]
    assert "tok-undeclared" not in result.outputs["all"]
    [error] = result.errors
    assert error.node == "env"
    assert "has no attribute 'UNDECLARED_TOKEN'" in error.message


# --- random expressions ---------------------------------------------------------------

_ATOMS = st.sampled_from(
    [
        "1",
        "0",
        "-1",
        "10",
        "99999999999",
        "2.5",
        "1e308",
        "'ab'",
        "''",
        "x",
        "n",
        "xs",
        "d",
        "[1, 2]",
        "{'k': 'v'}",
        "none",
        "true",
        "range(5)",
        "cycler(1, 2)",
        "namespace(a=1)",
        "d.a",
        "xs[0]",
        "xs[1:]",
        "x.upper()",
        "'%s'",
        "'{}'",
    ]
)
_BINARY = st.sampled_from(
    ["+", "-", "*", "**", "/", "//", "%", "~", "and", "or", "==", "<", "in", "if x else"]
)
_FILTERS = st.sampled_from(
    [
        "length",
        "string",
        "upper",
        "list",
        "first",
        "join",
        "center(100)",
        "indent(8)",
        "sum",
        "reverse",
        "unique",
        "sort",
        "tojson",
        "int",
        "abs",
        "batch(3)",
        "format(1)",
        "truncate(3)",
        "replace('a', 'bb')",
        "wordwrap(5)",
        "default(1)",
        "map('string')",
        "select",
        "pprint",
    ]
)


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 4 if depth < 4 else 0))
    if kind == 0:
        return draw(_ATOMS)
    if kind == 1:
        return f"({draw(_expressions(depth + 1))} {draw(_BINARY)} {draw(_expressions(depth + 1))})"
    if kind == 2:
        return f"{draw(_expressions(depth + 1))} | {draw(_FILTERS)}"
    if kind == 3:
        return f"[{draw(_expressions(depth + 1))}, {draw(_expressions(depth + 1))}]"
    return f"not {draw(_expressions(depth + 1))}"


@settings(max_examples=examples(300), deadline=timedelta(seconds=10))
@given(text=_expressions())
@example(text="((99999999999 ** 99999999999) ** 10)")
@example(text="(xs * 99999999999) | join")
@example(text="('ab' * 99999999999) | length")
@example(text="(x | center(100)) * 99999999999")
def test_random_expressions_evaluate_or_raise_an_expression_error_in_bounded_time(
    text: str,
) -> None:
    try:
        compile_expression(text).evaluate(SCOPE)
    except ExpressionError as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message


_TEMPLATE_PARTS = st.sampled_from(
    [
        "text ",
        "{{ x }}",
        "{{ n * 3 }}",
        "{% for i in range(n) %}",
        "{% endfor %}",
        "{% if n %}",
        "{% else %}",
        "{% endif %}",
        "{% set y = xs | sum %}",
        "{{ y }}",
        "{{ loop.index }}",
        "{% macro m(a) %}",
        "{% endmacro %}",
        "{{ m(1) }}",
        "{{ 'x' * 10**9 }}",
        "{#",
        "#}",
        "{{ range(10**9) }}",
        "{% raw %}",
        "{% endraw %}",
        "{{",
        "}}",
        "{%",
        "%}",
        "{{ x ~ x }}",
    ]
)


@settings(max_examples=examples(300), deadline=timedelta(seconds=10))
@given(parts=st.lists(_TEMPLATE_PARTS, max_size=12))
@example(parts=["{% macro m(a) %}", "{{ m(1) }}", "{% endmacro %}", "{{ m(1) }}"])
@example(parts=["{% for i in range(n) %}", "{{ 'x' * 10**9 }}", "{% endfor %}"])
def test_random_templates_render_or_raise_an_expression_error_in_bounded_time(
    parts: list[str],
) -> None:
    text = "".join(parts)
    try:
        compile_template(text).render(SCOPE)
    except ExpressionError as exc:
        message = str(exc)
    else:
        return
    assert "\n" not in message
