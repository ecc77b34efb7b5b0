"""The built-in runtimes: transform:template/map/filter/reduce, source:file and sink:file.

Every runtime is called through the registry with a hand-built
RuntimeContext; file tests use relative paths against ``base_dir=tmp_path``
so they also pin path resolution.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.core import (
    NodeCancelledError,
    PermanentError,
    RuntimeContext,
    RuntimeSpec,
    get_runtime,
    register_runtime,
    unregister_runtime,
)
from wavecrest.core._expr import compile_expression
from wavecrest.core._runtimes import BUILTIN_RUNTIMES, register_builtins
from wavecrest.core._runtimes import _files as files_module

RUNTIMES_DIR = Path(files_module.__file__).parent


# --- helpers ------------------------------------------------------------------------


def transform(
    key: str,
    input: Any,
    *,
    node_id: str = "node",
    scope: dict[str, Any] | None = None,
    cancel: Any = None,
    **expressions: str,
) -> Any:
    """Run ``transform:KEY`` on ``input`` with each keyword compiled as an expression."""
    ctx = RuntimeContext(
        input=input,
        node_id=node_id,
        scope=scope,
        cancel=cancel,
        expressions={name: compile_expression(text) for name, text in expressions.items()},
    )
    return get_runtime(f"transform:{key}").func(ctx)


def source(base: Path, path: str | Path, *, node_id: str = "src", **config: Any) -> Any:
    """Run source:file on ``path`` relative to ``base``."""
    ctx = RuntimeContext(config={"path": path, **config}, node_id=node_id, base_dir=base)
    return get_runtime("source:file").func(ctx)


def sink(base: Path, path: str | Path, value: Any, *, node_id: str = "out", **config: Any) -> Any:
    """Run sink:file writing ``value`` to ``path`` relative to ``base``."""
    ctx = RuntimeContext(
        input=value, config={"path": path, **config}, node_id=node_id, base_dir=base
    )
    return get_runtime("sink:file").func(ctx)


class CountingExpression:
    """An expression stand-in that counts evaluations and can run a hook on each."""

    def __init__(self, hook: Any = None) -> None:
        self.calls = 0
        self.hook = hook

    def evaluate(self, scope: Any) -> Any:
        self.calls += 1
        if self.hook is not None:
            self.hook(scope)
        return scope["item"]


class FlagSignal:
    """A CancelSignal that tests set by hand and that counts how often it is polled."""

    def __init__(self, *, is_set: bool = False) -> None:
        self.flag = is_set
        self.polls = 0

    def set(self) -> None:
        self.flag = True

    def is_set(self) -> bool:
        self.polls += 1
        return self.flag

    def wait(self, timeout: float | None = None) -> bool:
        return self.flag


def content(path: Path) -> str:
    """The file's text exactly as stored (``read_text`` would translate line endings)."""
    return path.read_bytes().decode("utf-8")


def temp_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- registration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expressions", "required"),
    [
        ("transform:template", set(), {"template"}),
        ("transform:map", {"expression"}, {"expression"}),
        ("transform:filter", {"condition"}, {"condition"}),
        ("transform:reduce", {"expression", "initial"}, {"expression"}),
        ("source:file", set(), {"path"}),
        ("sink:file", set(), {"path"}),
    ],
)
def test_builtin_is_registered_with_its_expression_and_required_keys(
    key: str, expressions: set[str], required: set[str]
) -> None:
    spec = get_runtime(key)
    assert spec.key == key
    assert spec.expressions == expressions
    assert spec.required == required


def test_registering_builtins_again_keeps_the_registered_runtimes() -> None:
    before = {spec.key: get_runtime(spec.key).func for spec in BUILTIN_RUNTIMES}
    register_builtins(BUILTIN_RUNTIMES)
    assert {key: get_runtime(key).func for key in before} == before


def test_a_runtime_registered_before_the_builtins_wins_over_the_builtin() -> None:
    def mine(ctx: RuntimeContext) -> str:
        return "mine"

    def builtin(ctx: RuntimeContext) -> str:
        return "builtin"

    register_runtime("transform:zz-user-first", mine)
    try:
        register_builtins(
            [
                RuntimeSpec("transform:zz-user-first", builtin),
                RuntimeSpec("transform:zz-new", builtin, required=frozenset({"x"})),
            ]
        )
        assert get_runtime("transform:zz-user-first").func is mine
        assert get_runtime("transform:zz-new").func is builtin
        assert get_runtime("transform:zz-new").required == {"x"}
    finally:
        unregister_runtime("transform:zz-user-first")
        unregister_runtime("transform:zz-new")


def test_runtime_modules_import_no_threads_sleep_random_or_actors() -> None:
    banned = {"threading", "pykka", "time", "random", "wavecrest.actors"}
    for module in RUNTIMES_DIR.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in banned, f"{module.name} imports {name}"
                assert not name.startswith("wavecrest.actors"), f"{module.name} imports {name}"


# --- transform:template -------------------------------------------------------------


@pytest.mark.parametrize("rendered", ["hello ann", [1, 2, 3], {"a": 1}, None, 7])
def test_template_outputs_the_rendered_template_value_unchanged(rendered: Any) -> None:
    ctx = RuntimeContext(input="ignored", config={"template": rendered})
    assert get_runtime("transform:template").func(ctx) == rendered


# --- transform:map ------------------------------------------------------------------


def test_map_evaluates_the_expression_for_each_item_in_order() -> None:
    assert transform("map", [1, 2, 3], expression="item * 2") == [2, 4, 6]


def test_map_sees_index_and_the_node_scope() -> None:
    out = transform(
        "map",
        [10, 20],
        scope={"config": {"factor": 3}},
        expression="item * config.factor + index",
    )
    assert out == [30, 61]


def test_map_accepts_an_expression_written_in_braces() -> None:
    assert transform("map", ["a", "b"], expression="{{ item ~ index }}") == ["a0", "b1"]


def test_map_over_a_tuple_outputs_a_list_and_empty_input_outputs_empty_list() -> None:
    assert transform("map", (1, 2), expression="item + 1") == [2, 3]
    assert transform("map", [], expression="item + 1") == []


@pytest.mark.parametrize("key", ["map", "filter", "reduce"])
@pytest.mark.parametrize(
    ("value", "type_name"),
    [({"a": 1}, "dict"), ("abc", "str"), (None, "NoneType"), (3, "int"), ({1, 2}, "set")],
)
def test_list_transforms_reject_a_non_list_input_naming_node_and_type(
    key: str, value: Any, type_name: str
) -> None:
    names = {"map": "expression", "filter": "condition", "reduce": "expression"}
    with pytest.raises(
        PermanentError, match=rf"^transform:{key} node 'shape' needs a list input, got {type_name}$"
    ):
        transform(key, value, node_id="shape", **{names[key]: "item"})


def test_map_on_a_cancelled_attempt_raises_before_evaluating_anything() -> None:
    expression = CountingExpression()
    ctx = RuntimeContext(
        input=[1, 2, 3], cancel=FlagSignal(is_set=True), expressions={"expression": expression}
    )
    with pytest.raises(NodeCancelledError):
        get_runtime("transform:map").func(ctx)
    assert expression.calls == 0


@pytest.mark.parametrize(("key", "name"), [("map", "expression"), ("filter", "condition")])
def test_cancelling_mid_way_stops_within_a_thousand_items(key: str, name: str) -> None:
    signal = FlagSignal()

    def cancel_at_1500(scope: Any) -> None:
        if scope["index"] == 1500:
            signal.set()

    expression = CountingExpression(cancel_at_1500)
    ctx = RuntimeContext(input=list(range(10_000)), cancel=signal, expressions={name: expression})
    with pytest.raises(NodeCancelledError):
        get_runtime(f"transform:{key}").func(ctx)
    assert expression.calls == 2000


def test_reduce_stops_when_cancelled_mid_way() -> None:
    signal = FlagSignal()

    class Sum:
        def evaluate(self, scope: Any) -> Any:
            if scope["index"] == 1234:
                signal.set()
            return (scope["acc"] or 0) + scope["item"]

    ctx = RuntimeContext(input=list(range(5000)), cancel=signal, expressions={"expression": Sum()})
    with pytest.raises(NodeCancelledError):
        get_runtime("transform:reduce").func(ctx)


def test_cancellation_is_not_polled_for_every_item() -> None:
    signal = FlagSignal()
    ctx = RuntimeContext(
        input=list(range(2500)), cancel=signal, expressions={"expression": CountingExpression()}
    )
    assert get_runtime("transform:map").func(ctx) == list(range(2500))
    assert signal.polls == 3  # before items 0, 1000 and 2000


# --- transform:filter ---------------------------------------------------------------


def test_filter_keeps_items_whose_condition_holds_in_order() -> None:
    assert transform("filter", [1, 2, 3, 4, 5, 6], condition="item % 2 == 0") == [2, 4, 6]


def test_filter_uses_truthiness_and_sees_index() -> None:
    assert transform("filter", [0, 1, "", "a", None, [], [0]], condition="item") == [1, "a", [0]]
    assert transform("filter", ("a", "b", "c"), condition="{{ index != 1 }}") == ["a", "c"]


def test_filter_condition_sees_the_node_scope() -> None:
    out = transform(
        "filter",
        [{"n": 5}, {"n": 9}, {"n": 7}],
        scope={"config": {"threshold": 7}},
        condition="item.n >= config.threshold",
    )
    assert out == [{"n": 9}, {"n": 7}]


# --- transform:reduce ---------------------------------------------------------------


def test_reduce_folds_from_the_initial_value() -> None:
    assert transform("reduce", [1, 2, 3, 4], expression="acc + item", initial="10") == 20


def test_reduce_without_initial_starts_from_none() -> None:
    assert transform("reduce", [1, 2], expression="[acc, item]") == [[None, 1], 2]


def test_reduce_sees_index() -> None:
    assert transform("reduce", ["a", "b", "c"], expression="acc + index", initial="0") == 3


def test_reduce_of_empty_input_is_the_initial_value_or_none() -> None:
    assert transform("reduce", [], expression="acc + item", initial="{{ [] }}") == []
    assert transform("reduce", [], expression="acc + item") is None


# --- source:file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("data.json", '{"a": [1, 2.5, null, true]}', {"a": [1, 2.5, None, True]}),
        ("data.yaml", "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
        ("data.YML", "- 1\n- two\n", [1, "two"]),
        (
            "data.csv",
            "name,age\nann,31\nbob,7\n",
            [{"name": "ann", "age": "31"}, {"name": "bob", "age": "7"}],
        ),
        ("notes.txt", "hello\nworld\n", "hello\nworld\n"),
        ("notes.md", "# title\n", "# title\n"),
        ("data.log", '{"not": "parsed"}', '{"not": "parsed"}'),
        ("no_extension", "plain", "plain"),
    ],
)
def test_source_infers_the_format_from_the_extension(
    tmp_path: Path, name: str, content: str, expected: Any
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    assert source(tmp_path, name) == expected


def test_source_format_overrides_the_extension(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "data.csv").write_text("[1, 2]", encoding="utf-8")
    assert source(tmp_path, "data.txt", format="lines") == ["a", "b"]
    assert source(tmp_path, "data.csv", format="json") == [1, 2]


def test_source_resolves_relative_paths_against_base_dir_and_keeps_absolute_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.json").write_text("1", encoding="utf-8")
    assert source(tmp_path, "sub/x.json") == 1
    assert source(tmp_path / "elsewhere", tmp_path / "sub" / "x.json") == 1


def test_source_reads_utf8(tmp_path: Path) -> None:
    (tmp_path / "u.txt").write_bytes("héllo ✓".encode())
    assert source(tmp_path, "u.txt") == "héllo ✓"


def test_source_text_keeps_the_file_exactly(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(b"a\r\nb\rc\n\n")
    assert source(tmp_path, "t.txt") == "a\r\nb\rc\n\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"a\nb\n", ["a", "b"]),
        (b"a\nb", ["a", "b"]),
        (b"a\r\nb\r\n", ["a", "b"]),
        (b"a\rb", ["a", "b"]),
        (b"a\n\nb\n\n", ["a", "", "b", ""]),
        (b"", []),
        (b"\n", [""]),
        (b"tab\tand\x0bvertical", ["tab\tand\x0bvertical"]),
    ],
)
def test_source_lines_splits_on_line_endings_without_a_trailing_empty_line(
    tmp_path: Path, content: bytes, expected: list[str]
) -> None:
    (tmp_path / "l.txt").write_bytes(content)
    assert source(tmp_path, "l.txt", format="lines") == expected


def test_source_csv_values_are_strings_and_quoting_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_bytes(b'id,text\r\n1,"a, b"\r\n\r\n2,"two\nlines"\r\n3,""\r\n')
    assert source(tmp_path, "q.csv") == [
        {"id": "1", "text": "a, b"},
        {"id": "2", "text": "two\nlines"},
        {"id": "3", "text": ""},
    ]


@pytest.mark.parametrize("content", [b"", b"a,b\n"])
def test_source_csv_without_data_rows_is_an_empty_list(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "e.csv").write_bytes(content)
    assert source(tmp_path, "e.csv") == []


def test_source_csv_ignores_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "bom.csv").write_bytes("\ufeffname\nann\n".encode())
    assert source(tmp_path, "bom.csv") == [{"name": "ann"}]


def test_source_csv_rejects_a_row_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,b,c\n1,2,3\n4,5\n", encoding="utf-8")
    with pytest.raises(
        PermanentError, match=r"cannot parse .*r\.csv as csv: line 3 has 2 fields, the header has 3"
    ):
        source(tmp_path, "r.csv")


def test_source_json_lines_read_as_the_list_of_documents(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text('{"a":1}\n\n[2,3]\n"x"\n', encoding="utf-8")
    assert source(tmp_path, "j.json") == [{"a": 1}, [2, 3], "x"]


def test_source_yaml_several_documents_read_as_a_list_and_empty_as_none(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("a: 1\n---\n- 2\n--- x\n", encoding="utf-8")
    (tmp_path / "e.yaml").write_text("", encoding="utf-8")
    assert source(tmp_path, "m.yaml") == [{"a": 1}, [2], "x"]
    assert source(tmp_path, "e.yaml") is None


def test_source_yaml_reads_as_the_workflow_s_own_yaml_bounded_and_dates_as_text(
    tmp_path: Path,
) -> None:
    """A yaml data file goes through the same bounded reader as front matter: an alias
    bomb (each level ten times the one before, a billion values at the ninth) is a
    clear permanent error at once, not a run that eats the machine's memory."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, 9):
        levels.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(levels) + "\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(PermanentError, match=r"as yaml: aliases repeat more than 100,000"):
        source(tmp_path, "bomb.yaml")
    assert time.monotonic() - started < 10  # linear in the text, not in the expansion
    deep = "[" * 200 + "]" * 200
    (tmp_path / "deep.yaml").write_text(deep, encoding="utf-8")
    with pytest.raises(PermanentError, match=r"as yaml: "):
        source(tmp_path, "deep.yaml")
    (tmp_path / "d.yaml").write_text("when: 2024-01-01\n---\n- 1\n", encoding="utf-8")
    assert source(tmp_path, "d.yaml") == [{"when": "2024-01-01"}, [1]]


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("bad.json", '{"a": 1,}', "json"),
        ("bad2.json", '{"a": 1}\n{broken\n', "json"),
        ("empty.json", "", "json"),
        ("bad.yaml", "a: [1, 2\n", "yaml"),
        ("bad2.yaml", "a: 1\n b: 2\n", "yaml"),
    ],
)
def test_source_malformed_json_or_yaml_is_a_permanent_error_naming_the_path(
    tmp_path: Path, name: str, content: str, fmt: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(PermanentError, match=rf"^cannot parse {tmp_path / name} as {fmt}: "):
        source(tmp_path, name)


def test_source_missing_file_raises_file_not_found_with_the_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file for source:file node 'src'") as info:
        source(tmp_path, "data/missing.json")
    assert info.value.filename == str(tmp_path / "data" / "missing.json")
    assert str(tmp_path / "data" / "missing.json") in str(info.value)


def test_source_rejects_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(PermanentError, match=r"cannot read .*latin\.txt as utf-8"):
        source(tmp_path, "latin.txt")


@pytest.mark.parametrize("runtime", ["source", "sink"])
def test_unknown_format_is_a_permanent_error_listing_the_valid_ones(
    tmp_path: Path, runtime: str
) -> None:
    (tmp_path / "x.json").write_text("1", encoding="utf-8")
    expected = (
        rf"^unknown format 'xml' for {runtime}:file node 'n'; "
        r"valid formats are json, yaml, csv, text, lines$"
    )
    call = source if runtime == "source" else sink
    args = () if runtime == "source" else ([1],)
    with pytest.raises(PermanentError, match=expected):
        call(tmp_path, "x.json", *args, format="xml", node_id="n")
    assert content(tmp_path / "x.json") == "1"


@pytest.mark.parametrize("path", ["", None, 3])
def test_file_runtimes_reject_a_missing_or_empty_path(tmp_path: Path, path: Any) -> None:
    with pytest.raises(PermanentError, match=r"source:file node 'src' needs a path, got "):
        source(tmp_path, path)
    with pytest.raises(PermanentError, match=r"sink:file node 'out' needs a path, got "):
        sink(tmp_path, path, [1])


# --- sink:file, write mode ----------------------------------------------------------


def test_sink_json_writes_indented_unescaped_json_with_a_newline(tmp_path: Path) -> None:
    value = {"name": "Zoë", "when": datetime.date(2024, 1, 2), "tags": ["a"]}
    out = sink(tmp_path, "out.json", value)
    assert content(tmp_path / "out.json") == (
        '{\n  "name": "Zoë",\n  "when": "2024-01-02",\n  "tags": [\n    "a"\n  ]\n}\n'
    )
    assert out == {
        "path": str(tmp_path / "out.json"),
        "format": "json",
        "mode": "write",
        "count": 1,
    }


def test_sink_yaml_writes_block_style_in_key_order(tmp_path: Path) -> None:
    sink(tmp_path, "out.yml", {"b": 1, "a": ["x", "é"]})
    assert content(tmp_path / "out.yml") == "b: 1\na:\n- x\n- é\n"


def test_sink_csv_header_is_first_row_keys_then_later_new_keys(tmp_path: Path) -> None:
    rows = [{"b": 1, "a": "x, y"}, {"a": 2, "c": None}, {"d": "new"}]
    out = sink(tmp_path, "out.csv", rows)
    assert content(tmp_path / "out.csv") == ('b,a,c,d\r\n1,"x, y",,\r\n,2,,\r\n,,,new\r\n')
    assert out["count"] == 3


def test_sink_csv_writes_lists_of_lists_as_they_are(tmp_path: Path) -> None:
    out = sink(tmp_path, "out.csv", [["h1", "h2"], [1, 2], ("3", None)])
    assert content(tmp_path / "out.csv") == "h1,h2\r\n1,2\r\n3,\r\n"
    assert out["count"] == 3


def test_sink_csv_writes_a_single_dict_as_one_row(tmp_path: Path) -> None:
    out = sink(tmp_path, "one.csv", {"a": 1, "b": 2})
    assert content(tmp_path / "one.csv") == "a,b\r\n1,2\r\n"
    assert out["count"] == 1


def test_sink_csv_of_an_empty_list_writes_an_empty_file(tmp_path: Path) -> None:
    assert sink(tmp_path, "e.csv", [])["count"] == 0
    assert (tmp_path / "e.csv").read_bytes() == b""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, r"the input must be a list of dicts or a list of lists, got int"),
        ("a,b", r"the input must be a list of dicts or a list of lists, got str"),
        ([{"a": 1}, [1]], r"rows must be all dicts or all lists, got dict, list"),
        ([1, 2], r"rows must be all dicts or all lists, got int"),
    ],
)
def test_sink_csv_rejects_inputs_that_are_not_rows(
    tmp_path: Path, value: Any, message: str
) -> None:
    with pytest.raises(PermanentError, match=rf"cannot write .*bad\.csv as csv: {message}"):
        sink(tmp_path, "bad.csv", value)
    assert not (tmp_path / "bad.csv").exists()


def test_sink_text_writes_str_of_the_input_and_counts_one(tmp_path: Path) -> None:
    assert sink(tmp_path, "t.txt", "no newline added")["count"] == 1
    assert content(tmp_path / "t.txt") == "no newline added"
    assert sink(tmp_path, "l.txt", [1, "a"])["count"] == 1
    assert content(tmp_path / "l.txt") == "[1, 'a']"


def test_sink_lines_writes_one_item_per_line(tmp_path: Path) -> None:
    out = sink(tmp_path, "l.txt", ["a", 2, None], format="lines")
    assert content(tmp_path / "l.txt") == "a\n2\nNone\n"
    assert out == {"path": str(tmp_path / "l.txt"), "format": "lines", "mode": "write", "count": 3}
    assert sink(tmp_path, "one.txt", 42, format="lines")["count"] == 1
    assert content(tmp_path / "one.txt") == "42\n"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.json", "json"),
        ("a.yaml", "yaml"),
        ("a.YML", "yaml"),
        ("a.csv", "csv"),
        ("a.txt", "text"),
        ("a.md", "text"),
        ("a.out", "json"),
        ("noext", "json"),
    ],
)
def test_sink_infers_the_format_from_the_extension_defaulting_to_json(
    tmp_path: Path, name: str, fmt: str
) -> None:
    assert sink(tmp_path, name, [{"k": "v"}])["format"] == fmt


def test_sink_creates_missing_parent_folders(tmp_path: Path) -> None:
    out = sink(tmp_path, "a/b/c/out.json", [1])
    assert json.loads(content(tmp_path / "a" / "b" / "c" / "out.json")) == [1]
    assert out["path"] == str(tmp_path / "a" / "b" / "c" / "out.json")
    sink(tmp_path, "d/e/log.txt", "x", mode="append")
    assert content(tmp_path / "d" / "e" / "log.txt") == "x"


def test_sink_write_mode_replaces_a_longer_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("x" * 1000, encoding="utf-8")
    sink(tmp_path, "out.txt", "short")
    assert content(tmp_path / "out.txt") == "short"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out.json").write_text("old", encoding="utf-8")

    def failing_replace(src: Any, dst: Any) -> None:
        assert Path(src).read_text(encoding="utf-8") == "[\n  1\n]\n"
        raise OSError("disk on fire")

    monkeypatch.setattr(files_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        sink(tmp_path, "out.json", [1])
    assert content(tmp_path / "out.json") == "old"
    assert temp_leftovers(tmp_path) == []


def test_sink_write_keeps_the_permissions_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "p.json"
    target.write_text("{}", encoding="utf-8")
    target.chmod(0o640)
    sink(tmp_path, "p.json", [1])
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_sink_write_gives_a_new_file_the_usual_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.write_text("", encoding="utf-8")
    sink(tmp_path, "new.json", [1])
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == stat.S_IMODE(
        reference.stat().st_mode
    )


def test_sink_yaml_rejects_a_value_yaml_cannot_represent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"cannot write .*o\.yaml as yaml: "):
        sink(tmp_path, "o.yaml", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_a_rejected_input_creates_no_folder(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"cannot write .*x\.csv as csv"):
        sink(tmp_path, "new/dir/x.csv", 5)
    assert list(tmp_path.iterdir()) == []


def test_sink_rejects_text_that_is_not_valid_unicode(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"cannot write .*s\.txt as utf-8"):
        sink(tmp_path, "s.txt", "lone \ud800 surrogate")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["overwrite", "APPEND", 1])
def test_sink_rejects_an_unknown_mode_listing_the_valid_ones(tmp_path: Path, mode: Any) -> None:
    with pytest.raises(
        PermanentError,
        match=rf"^unknown mode {mode!r} for sink:file node 'out'; valid modes are write, append$",
    ):
        sink(tmp_path, "x.json", [1], mode=mode)
    assert not (tmp_path / "x.json").exists()


# --- sink:file, append mode ---------------------------------------------------------


def test_sink_append_json_adds_one_compact_document_per_line(tmp_path: Path) -> None:
    (tmp_path / "log.json").write_text('{"a":1}', encoding="utf-8")  # no final newline
    out = sink(tmp_path, "log.json", {"b": "é"}, mode="append")
    sink(tmp_path, "log.json", [1, 2], mode="append")
    assert content(tmp_path / "log.json") == '{"a":1}\n{"b":"é"}\n[1,2]\n'
    assert out == {
        "path": str(tmp_path / "log.json"),
        "format": "json",
        "mode": "append",
        "count": 1,
    }
    assert source(tmp_path, "log.json") == [{"a": 1}, {"b": "é"}, [1, 2]]


def test_sink_append_yaml_adds_a_new_document(tmp_path: Path) -> None:
    (tmp_path / "log.yaml").write_text("a: 1\n", encoding="utf-8")
    sink(tmp_path, "log.yaml", {"b": 2}, mode="append")
    sink(tmp_path, "log.yaml", ["x"], mode="append")
    assert content(tmp_path / "log.yaml") == "a: 1\n---\nb: 2\n---\n- x\n"
    assert source(tmp_path, "log.yaml") == [{"a": 1}, {"b": 2}, ["x"]]


def test_sink_append_csv_follows_the_existing_header_without_repeating_it(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("name,age\nann,31\n", encoding="utf-8")
    out = sink(tmp_path, "t.csv", [{"age": 7, "name": "bob"}, {"name": "cy"}], mode="append")
    assert content(tmp_path / "t.csv") == "name,age\nann,31\nbob,7\r\ncy,\r\n"
    assert out["count"] == 2
    assert source(tmp_path, "t.csv") == [
        {"name": "ann", "age": "31"},
        {"name": "bob", "age": "7"},
        {"name": "cy", "age": ""},
    ]


@pytest.mark.parametrize("existing", [None, b""])
def test_sink_append_csv_writes_the_header_to_a_new_or_empty_file(
    tmp_path: Path, existing: bytes | None
) -> None:
    if existing is not None:
        (tmp_path / "t.csv").write_bytes(existing)
    sink(tmp_path, "t.csv", [{"a": 1}], mode="append")
    sink(tmp_path, "t.csv", [{"a": 2}], mode="append")
    assert content(tmp_path / "t.csv") == "a\r\n1\r\n2\r\n"


def test_sink_append_csv_rejects_columns_the_existing_header_lacks(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(
        PermanentError,
        match=(
            r"cannot append to .*t\.csv as csv: "
            r"rows have columns \['b'\] that its header \['a'\] lacks"
        ),
    ):
        sink(tmp_path, "t.csv", [{"a": 2, "b": 3}], mode="append")
    assert content(tmp_path / "t.csv") == "a\n1\n"


def test_sink_append_csv_lists_of_lists_add_rows(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2", encoding="utf-8")  # no final newline
    sink(tmp_path, "t.csv", [[3, 4]], mode="append")
    assert source(tmp_path, "t.csv") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_sink_append_text_adds_str_of_the_input_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("abc", encoding="utf-8")
    sink(tmp_path, "t.txt", "def", mode="append")
    sink(tmp_path, "t.txt", 1, mode="append")
    assert content(tmp_path / "t.txt") == "abcdef1"


def test_sink_append_lines_adds_lines_after_the_existing_ones(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a\nb", encoding="utf-8")  # no final newline
    out = sink(tmp_path, "l.txt", ["c", "d"], format="lines", mode="append")
    sink(tmp_path, "l.txt", "e", format="lines", mode="append")
    assert content(tmp_path / "l.txt") == "a\nb\nc\nd\ne\n"
    assert out["count"] == 2


def test_sink_append_to_a_new_file_creates_it(tmp_path: Path) -> None:
    sink(tmp_path, "new.json", {"a": 1}, mode="append")
    assert content(tmp_path / "new.json") == '{"a":1}\n'
    sink(tmp_path, "new.yaml", {"a": 1}, mode="append")
    assert source(tmp_path, "new.yaml") == {"a": 1}


# --- round trips --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "value"),
    [
        ("r/out.json", None, {"users": [{"name": "Zoë", "n": 1.5, "ok": True, "x": None}]}),
        ("r/out.yaml", None, {"list": [1, "two", {"three": [3]}], "empty": {}}),
        (
            "r/out.csv",
            None,
            [{"name": "ann", "note": 'a, "quoted"\nline'}, {"name": "bob", "note": ""}],
        ),
        ("r/out.txt", None, "line 1\r\nline 2\n\n"),
        ("r/out.txt", "lines", ["first", "", "  spaced  ", "last"]),
        ("r/out.data", "json", [1, [2, [3]]]),
    ],
)
def test_sink_then_source_gives_back_the_value(
    tmp_path: Path, name: str, fmt: str | None, value: Any
) -> None:
    config = {"format": fmt} if fmt else {}
    out = sink(tmp_path, name, value, **config)
    assert Path(out["path"]) == tmp_path / name
    assert source(tmp_path, name, **config) == value
    assert temp_leftovers(tmp_path / "r") == []


def test_appending_then_reading_gives_back_every_appended_record(tmp_path: Path) -> None:
    for record in ({"n": 1}, {"n": 2}, {"n": 3}):
        for name, fmt in (("a.json", None), ("a.yaml", None), ("a.csv", None)):
            sink(tmp_path, name, record, mode="append", **({"format": fmt} if fmt else {}))
        sink(tmp_path, "a.txt", [str(record["n"])], format="lines", mode="append")
    assert source(tmp_path, "a.json") == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert source(tmp_path, "a.yaml") == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert source(tmp_path, "a.csv") == [{"n": "1"}, {"n": "2"}, {"n": "3"}]
    assert source(tmp_path, "a.txt", format="lines") == ["1", "2", "3"]


@pytest.mark.parametrize(
    "value", ["\x85", "a\x85b", {"k\x85": "v\x85"}, ["\u2028", "x\u2029y"], "\ufeffa", "é ✓"]
)
def test_yaml_keeps_unicode_line_break_characters(tmp_path: Path, value: Any) -> None:
    sink(tmp_path, "u.yaml", value)
    assert source(tmp_path, "u.yaml") == value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def prop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roundtrip")


@settings(max_examples=examples(150), deadline=None)
@given(value=json_values, fmt=st.sampled_from(["json", "yaml"]))
def test_json_and_yaml_round_trip_any_json_value(prop_dir: Path, value: Any, fmt: str) -> None:
    sink(prop_dir, f"v.{fmt}", value)
    assert source(prop_dir, f"v.{fmt}") == value


line_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\n"))


@settings(max_examples=examples(150), deadline=None)
@given(lines=st.lists(line_text, max_size=8))
def test_lines_round_trip_any_list_of_strings_without_line_breaks(
    prop_dir: Path, lines: list[str]
) -> None:
    sink(prop_dir, "v.lines", lines, format="lines")
    assert source(prop_dir, "v.lines", format="lines") == lines


@settings(max_examples=examples(100), deadline=None)
@given(text=st.text())
def test_text_round_trips_exactly(prop_dir: Path, text: str) -> None:
    sink(prop_dir, "v.txt", text)
    assert source(prop_dir, "v.txt") == text


@settings(max_examples=examples(100), deadline=None)
@given(
    records=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c"]), line_text | st.text(), min_size=1),
        min_size=1,
        max_size=5,
    )
)
def test_csv_round_trips_string_rows_filling_missing_columns(
    prop_dir: Path, records: list[dict[str, str]]
) -> None:
    sink(prop_dir, "v.csv", records)
    header = list(dict.fromkeys(key for row in records for key in row))
    assert source(prop_dir, "v.csv") == [
        {key: row.get(key, "") for key in header} for row in records
    ]


def test_prop_dir_holds_no_temp_files_after_the_properties(prop_dir: Path) -> None:
    assert temp_leftovers(prop_dir) == []
    assert all(not name.startswith(".") for name in os.listdir(prop_dir))


def test_yaml_sink_output_is_plain_safe_yaml(tmp_path: Path) -> None:
    sink(tmp_path, "s.yaml", {"date": datetime.date(2024, 5, 6)})
    assert yaml.safe_load(content(tmp_path / "s.yaml")) == {"date": datetime.date(2024, 5, 6)}
