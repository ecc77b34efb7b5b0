"""Bad input, the whole surface: one located line, exit 2, and saved state left untouched.

Every kind of bad input the CLI can be given (a broken or hostile workflow
file, a directory, binary garbage, a damaged or foreign snapshot) is tried
against every command that reads it, with a state dir holding real runs:
each must exit 2 with exactly one ``FILE:LINE:COL: error:`` (or
``wavecrest: error:``) line on stderr, nothing on stdout, no traceback, and
the state dir byte for byte as it was. The limits behind this
(core/_limits.py) are pinned at their edges, the YAML reader on its own, and
a hypothesis property feeds mutated workflow files to ``parse_workflow``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from profiles import examples
from wavecrest.actors._cli import main
from wavecrest.core import (
    FaultPlan,
    FaultPlanError,
    Simulation,
    WavecrestError,
    WorkflowError,
    _yaml,
    parse_workflow,
    plan,
)
from wavecrest.core._limits import (
    MAX_ALIAS_VALUES,
    MAX_ELEMENT_DEPTH,
    MAX_YAML_DEPTH,
)

HERE = Path(__file__).parent
ROOT = HERE.parent

OK = """---
name: state
---
<workflow>
  <transform id="a" type="template" template="hello"/>
</workflow>
"""

FAILS = """---
name: state
---
<workflow>
  <transform id="a" type="template" template="hello"/>
  <transform id="b" type="template" input="a" template="{{ 1 / 0 }}"/>
</workflow>
"""


def _bomb() -> str:
    lines = ["---", "name: bomb", "config:", '  a: &a ["lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghijk":
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    return "\n".join([*lines, "---", "<workflow>", '  <delay id="d" duration="0"/>', "</workflow>"])


def _deep(levels: int) -> str:
    body = '<transform id="leaf" type="template" template="x"/>'
    for i in reversed(range(levels)):
        body = f'<parallel id="p{i}"><branch>{body}</branch></parallel>'
    return f"---\nname: deep\n---\n<workflow>\n{body}\n</workflow>\n"


#: Bad workflow files: name -> file content.
BAD_FILES: dict[str, bytes] = {
    "unclosed tag": b'---\nname: x\n---\n<workflow>\n  <foreach id="f" collection="[1]">\n'
    b'    <delay id="d" duration="0"/>\n</workflow>\n',
    "mismatched tags": b'---\nname: x\n---\n<workflow>\n  <loop id="l" max="1">\n'
    b'    <delay id="d" duration="0"/>\n  </while>\n</workflow>\n',
    "broken front matter": b"---\nname: x\nconfig: {a: [1, 2}\n---\n<workflow>\n"
    b'  <delay id="d" duration="0"/>\n</workflow>\n',
    "binary garbage": bytes(range(256)) * 4,
    "garbage after a header": b"---\nname: x\n---\n<workflow>\x00\x89PNG\r\n\x1a\n",
    "not utf-8": b"---\nname: \xff\xfe\n---\n<workflow>\n</workflow>\n",
    "empty": b"",
    "500-deep parallel": _deep(500).encode(),
    "yaml alias bomb": _bomb().encode(),
    "huge integer literal": (
        '---\nname: x\n---\n<workflow>\n  <transform id="t" type="template" '
        f'template="{{{{ {"7" * 5000} }}}}"/>\n</workflow>\n'
    ).encode(),
    "300-deep parentheses": (
        '---\nname: x\n---\n<workflow>\n  <transform id="t" type="template" '
        f'template="{{{{ {"(" * 300}1{")" * 300} }}}}"/>\n</workflow>\n'
    ).encode(),
    "3000-term sum": (
        '---\nname: x\n---\n<workflow>\n  <transform id="t" type="template" '
        f'template="{{{{ {"+".join(["1"] * 3000)} }}}}"/>\n</workflow>\n'
    ).encode(),
    "constant folding bomb": (
        b'---\nname: x\n---\n<workflow>\n  <transform id="t" type="template" '
        b"template=\"{{ 'a' * 10**9 }}{{ 'x' | center(1000000000) }}{{ 10**(10**7) }}\"/>\n"
        b'  <transform id="u" type="template" template="{{ nope }}"/>\n</workflow>\n'
    ),
}


def _state_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A state dir holding a completed and a failed run (and their logs)."""
    root = tmp_path / "state"
    monkeypatch.setenv("WAVECREST_STATE_DIR", str(root))
    for text in (OK, FAILS):
        flow = tmp_path / "state.flow.md"
        flow.write_text(text)
        assert main(["run", str(flow), "--json"]) in (0, 1)
    capsys.readouterr()
    return root


def _one_error_line(err: str, prefix: str) -> None:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), err


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize(
    "command",
    [["validate"], ["plan"], ["plan", "--format", "json"], ["plan", "--format", "dot"], ["run"]],
    ids=" ".join,
)
def test_a_bad_workflow_file_is_one_located_line_and_state_is_untouched(
    name: str,
    command: list[str],
    state: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.flow.md"
    path.write_bytes(BAD_FILES[name])
    before = _state_bytes(state)
    started = time.monotonic()
    code = main([command[0], str(path), *command[1:]])
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    if name == "constant folding bomb":
        # Nothing is evaluated while checking: the only problem is the unknown name.
        assert err.startswith(f"{path}:6:3: error: unknown name 'nope' in a template of 'u'; ")
    assert (code, out) == (2, "")
    _one_error_line(err, f"{path}:")
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: \S", err)
    assert _state_bytes(state) == before
    assert took < 30, f"{name!r} took {took:.1f}s"  # a hang or an explosion, not a timing


def test_a_directory_given_as_file(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _state_bytes(state)
    for command in (["validate"], ["plan"], ["run"]):
        assert main([command[0], str(tmp_path)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == f"{tmp_path}:1:1: error: is a directory, not a workflow file\n"
    assert _state_bytes(state) == before


def test_a_bom_and_crlf_line_endings_are_valid(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "windows.flow.md"
    path.write_bytes(b"\xef\xbb\xbf" + FAILS.replace("\n", "\r\n").encode())
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (state, 2 nodes)\n"
    assert main(["plan", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["waves"] == [["a"], ["b"]]
    assert main(["run", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["outputs"] == {"a": "hello"}
    # Diagnostics point at the same lines and columns as without the BOM and CRLF.
    path.write_bytes(
        b"\xef\xbb\xbf" + b"---\r\nname: x\r\n---\r\n<workflow>\r\n  <nope/>\r\n</workflow>\r\n"
    )
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:5:3: error: unknown element <nope>")


# --- damaged snapshots ----------------------------------------------------------------


def _runs(state: Path) -> list[Path]:
    return sorted(state.glob("state/*.msgpack"))


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "cut to one byte": lambda data: data[:1],
    "empty": lambda data: b"",
    "bit-flipped payload": lambda data: data[:-40] + bytes([data[-40] ^ 0x10]) + data[-39:],
    "bit-flipped header": lambda data: bytes([data[0] ^ 0x01]) + data[1:],
    "foreign msgpack": lambda data: b"\x82\xa4name\xa3bob\xa3age\x2a",
    "foreign text": lambda data: b'{"run_id": "x", "status": "completed"}\n',
    "garbage": lambda data: bytes(range(256)),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize(
    "command", [["inspect"], ["inspect", "--json"], ["resume"], ["resume", "--json"]], ids=" ".join
)
@pytest.mark.parametrize("by", ["path", "run id"])
def test_a_damaged_snapshot_is_one_line_and_left_as_it_is(
    damage: str, command: list[str], by: str, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = _runs(state)[-1]
    snapshot.write_bytes(DAMAGE[damage](snapshot.read_bytes()))
    before = _state_bytes(state)
    target = str(snapshot) if by == "path" else snapshot.stem
    assert main([command[0], target, *command[1:]]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _one_error_line(err, "wavecrest: error: ")
    assert str(snapshot) in err
    assert _state_bytes(state) == before


@pytest.fixture(scope="module")
def snapshot_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real snapshot: a run that failed after one node succeeded."""
    from wavecrest.actors import run_workflow

    folder = tmp_path_factory.mktemp("snapshot")
    flow = folder / "state.flow.md"
    flow.write_text(FAILS)
    result = run_workflow(flow, state_dir=folder / "state")
    return Path(result.snapshot_path or "").read_bytes()


@settings(max_examples=examples(60))
@given(data=st.data())
def test_any_bit_flip_in_a_snapshot_is_refused_in_one_line(
    data: st.DataObject, snapshot_bytes: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A snapshot is checksummed as a whole: whichever bit flips, it is refused, never misread."""
    position = data.draw(st.integers(0, len(snapshot_bytes) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(snapshot_bytes)
    flipped[position] ^= 1 << bit
    path = tmp_path_factory.mktemp("flip") / "run.msgpack"
    path.write_bytes(bytes(flipped))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["inspect", str(path), "--json"])
    assert (code, out.getvalue()) == (2, "")
    _one_error_line(err.getvalue(), f"wavecrest: error: {path}: ")
    assert path.read_bytes() == bytes(flipped)


# --- the limits, at their edges -------------------------------------------------------


def _nested(kind: str, levels: int) -> str:
    body = '<transform id="leaf" type="template" template="{{ context.node }}"/>'
    for i in reversed(range(levels)):
        body = {
            "if": f'<if id="c{i}" condition="true"><then>{body}</then></if>',
            "parallel": f'<parallel id="c{i}"><branch>{body}</branch></parallel>',
            "branch": f'<branch id="c{i}"><case when="true">{body}</case></branch>',
            "foreach": f'<foreach id="c{i}" collection="[{i}]">{body}</foreach>',
            "loop": f'<loop id="c{i}" max="1">{body}</loop>',
            "while": f'<while id="c{i}" condition="iteration == 0" max="2">{body}</while>',
        }[kind]
    return f"---\nname: deep\n---\n<workflow>\n{body}\n</workflow>\n"


#: Elements each level of a control node adds (``<if>`` and ``<then>`` are two).
PER_LEVEL = {"if": 2, "parallel": 2, "branch": 2, "foreach": 1, "loop": 1, "while": 1}


@pytest.mark.parametrize("kind", sorted(PER_LEVEL))
def test_control_flow_nested_to_the_limit_works_and_one_more_level_is_an_error(kind: str) -> None:
    levels = (MAX_ELEMENT_DEPTH - 1) // PER_LEVEL[kind]  # the leaf is one more element
    workflow = parse_workflow(_nested(kind, levels))
    planned = plan(workflow)
    for render in (planned.render_text, planned.render_dot, planned.render_json):
        assert render()
    result = Simulation(workflow).run()
    assert result.status == "completed"
    [leaf] = [value for path, value in result.outputs.items() if path.endswith("leaf")]
    assert leaf == "leaf"
    with pytest.raises(WorkflowError, match=r"is nested too deeply: elements nest at most 64"):
        parse_workflow(_nested(kind, levels + PER_LEVEL[kind]))


def test_the_cli_runs_resumes_and_inspects_a_workflow_at_the_depth_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "deep.flow.md"
    flow.write_text(
        _nested("foreach", MAX_ELEMENT_DEPTH - 1).replace("{{ context.node }}", "{{ 1 / 0 }}")
    )
    state = str(tmp_path / "state")
    assert main(["run", str(flow), "--state-dir", state, "--json"]) == 1
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    flow.write_text(_nested("foreach", MAX_ELEMENT_DEPTH - 1))
    assert main(["resume", run_id, "--state-dir", state, "--force", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["status"] == "completed"
    assert main(["inspect", run_id, "--state-dir", state]) == 0
    assert "completed" in capsys.readouterr().out


# --- YAML -----------------------------------------------------------------------------


def test_yaml_alias_expansion_is_bounded_and_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(_yaml.LimitError, match=r"aliases repeat more than 100,000 values"):
        _yaml.compose(_bomb().split("---")[1])
    assert time.monotonic() - started < 10  # linear in the text, not in the expansion


def test_yaml_aliases_within_the_limit_still_work() -> None:
    items = ", ".join(["*a"] * (MAX_ALIAS_VALUES // 10))
    value = _yaml.load(f"base: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nmany: [{items}]\n")
    assert value["many"][0] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert value["many"][0] is value["base"]
    with pytest.raises(_yaml.LimitError, match="aliases repeat more than"):
        _yaml.load(f"base: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nmany: [{items}, *a]\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1, *x]", "alias \\*x refers to a node that contains it"),
        ("a: &x {b: {c: *x}}", "alias \\*x refers to a node that contains it"),
        ("[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1), "nested deeper than 64 levels"),
        ("- " * (MAX_YAML_DEPTH + 1) + "x", "nested deeper than 64 levels"),
    ],
)
def test_yaml_structures_that_would_make_walkers_recurse_forever_are_refused(
    text: str, message: str
) -> None:
    with pytest.raises(_yaml.LimitError, match=message):
        _yaml.compose(text)


def test_yaml_nesting_to_the_limit_is_fine() -> None:
    depth = MAX_YAML_DEPTH
    value = _yaml.load("[" * depth + "1" + "]" * depth)
    for _ in range(depth):
        [value] = value
    assert value == 1


@pytest.mark.parametrize(
    "text",
    [f"n: {'9' * 5000}", f"n: 0x{'f' * 5000}", "n: " + ":".join(["59"] * 2500)],
    ids=["decimal", "hex", "sexagesimal"],
)
def test_yaml_integers_too_long_to_print_are_refused(text: str) -> None:
    with pytest.raises(_yaml.YAMLError, match=r"integer of \d+ digits: at most 4300"):
        _yaml.load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [x, 'y', \"z\"]\nc: {d: ~, e: 2024-01-01, f: 1.5e3, g: 0o17, h: yes}\n",
        "- &r {k: v}\n- *r\n- !!str 12\n- |\n  block\n  text\n- >-\n  folded\n",
        "héllo: wörld\n€: [1, 2]\n",
        "",
        "# only a comment\n",
    ],
)
def test_yaml_reads_the_same_with_and_without_libyaml(text: str) -> None:
    fast = _yaml.compose(text)
    pure = yaml.compose(text, Loader=_yaml._PureLoader)
    assert _shape(fast) == _shape(pure)
    assert (_yaml.load(text) is None) == (fast is None)


@pytest.mark.parametrize(
    "text", ["a: b: c", "a:\n - x\n y: 2", "[1, 2", "{a: 1", "a: 'x", "\ta: 1", "a: *nope"]
)
def test_invalid_yaml_is_worded_as_pyyaml_words_it(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.compose(text, Loader=_yaml._PureLoader)
    with pytest.raises(yaml.YAMLError) as ours:
        _yaml.compose(text)
    assert str(ours.value) == str(pure.value)


def _shape(node: yaml.Node | None) -> object:
    """A node tree as plain values, with each node's tag and position."""
    if node is None:
        return None
    mark = (node.start_mark.line, node.start_mark.column)
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value, mark)
    if isinstance(node, yaml.SequenceNode):
        return (node.tag, [_shape(item) for item in node.value], mark)
    assert isinstance(node, yaml.MappingNode)
    return (node.tag, [(_shape(k), _shape(v)) for k, v in node.value], mark)


def test_a_fault_file_and_set_values_read_yaml_with_the_same_limits(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(_bomb().split("---")[1])
    with pytest.raises(FaultPlanError, match=r"aliases repeat more than 100,000 values"):
        FaultPlan.load(faults)
    from wavecrest.core._config import _parse_text
    from wavecrest.core._model import ConfigField

    bomb = "[" * 100 + "]" * 100
    assert _parse_text(ConfigField(name="x", type="any"), bomb) == bomb  # kept as text


# --- size ----------------------------------------------------------------------------


def _big_workflow(megabytes: float) -> str:
    """A workflow of about ``megabytes`` MB: many nodes with templates, config and prose."""
    nodes = []
    i = 0
    size = 0
    while size < megabytes * 1_000_000:
        node = (
            f'  <transform id="t{i}" type="template" input="{f"t{i - 1}" if i else "seed"}" '
            f'template="row {i}: {{{{ input | string | truncate(20) }}}} of {{{{ config.label }}}}"'
            f' description="step {i} of a long generated pipeline, with some words"/>\n'
            f"  <!-- a comment that pads the file a little, number {i} -->\n"
        )
        nodes.append(node)
        size += len(node)
        i += 1
    prose = "Generated to measure parsing cost. " * 200
    return (
        "---\nname: big\nconfig:\n  label: {type: string, default: rows}\n---\n"
        f"{prose}\n\n<workflow>\n"
        '  <transform id="seed" type="template" template="start"/>\n'
        + "".join(nodes)
        + "</workflow>\n"
    )


@pytest.mark.slow
def test_a_5_mb_workflow_validates_in_time_linear_in_its_size(tmp_path: Path) -> None:
    """A generous bound that only a hang or quadratic growth would break (see benchmarks)."""
    text = _big_workflow(5)
    started = time.monotonic()
    workflow = parse_workflow(text)
    took = time.monotonic() - started
    assert len(text) >= 5_000_000
    assert sum(1 for _ in workflow.iter_nodes()) > 10_000
    assert took < 60, f"5 MB took {took:.1f}s to validate"


# --- mutated workflow files -----------------------------------------------------------

SEEDS = sorted([*(ROOT / "examples").glob("*.flow.md"), *(HERE / "good_files").glob("*.flow.md")])


Mutation = tuple[str, int, int, bytes]  # kind, where (any int: taken modulo), bit, inserted


def _mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """``data`` with each mutation applied in turn: a bit flipped, a line deleted,
    duplicated, or a line inserted."""
    for kind, where, bit, inserted in mutations:
        lines = data.split(b"\n")
        if kind == "flip" and data:
            flipped = bytearray(data)
            flipped[where % len(data)] ^= 1 << bit
            data = bytes(flipped)
            continue
        index = where % (len(lines) + (kind == "insert"))
        if kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, lines[index])
        else:
            lines.insert(index, inserted)
        data = b"\n".join(lines)
    return data


#: Lines a mutation may insert: what has broken parsers before.
_INSERTS = [
    b"<if>",
    b"</then>",
    b"<![CDATA[",
    b"&bogus;",
    b"---",
    b"```",
    b"a: &x [*x]",
    b"  - [[[[[[[[[[[[[[[[[[[[",
    b'<transform id="z" type="template" template="{{ 9**9**9 }}{{ \'a\' * 10**12 }}"/>',
    b'<transform id="z" type="template" template="{{ ' + b"(" * 30 + b"1" + b")" * 30 + b' }}"/>',
    b'<loop id="z" max="' + b"9" * 5000 + b'"><delay id="zz" duration="0"/></loop>',
    b"\xef\xbb\xbf",
    b"\r",
]


_MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "flip", "delete", "duplicate", "insert"]),
        st.integers(0, 1 << 20),
        st.integers(0, 7),
        st.sampled_from(_INSERTS),
    ),
    min_size=1,
    max_size=4,
)
_ETL = ROOT / "examples" / "etl.flow.md"


@settings(max_examples=examples(150), deadline=timedelta(seconds=10))
@given(seed=st.sampled_from(SEEDS), mutations=_MUTATIONS)
# A control character in the front matter: PyYAML's ReaderError spoke in two lines.
@example(seed=_ETL, mutations=[("flip", 13, 0, b"")])
@example(seed=_ETL, mutations=[("insert", 1, 0, b"a: &x [*x]")])
@example(seed=_ETL, mutations=[("insert", 12, 0, _INSERTS[8])])
def test_mutated_workflow_text_parses_or_raises_a_wavecrest_error(
    seed: Path, mutations: list[Mutation]
) -> None:
    """Byte flips, deleted, duplicated and inserted lines: only a Workflow or a WavecrestError,
    each diagnostic on one line, in bounded time (the deadline fails a hang)."""
    mutated = _mutate(seed.read_bytes(), mutations)
    try:
        workflow = parse_workflow(mutated, seed.name)
    except WorkflowError as exc:
        diagnostics = exc.diagnostics
    except WavecrestError:
        return
    else:
        plan(workflow)
        return
    assert diagnostics
    for diagnostic in diagnostics:
        assert "\n" not in str(diagnostic)
        assert diagnostic.line >= 1
        assert diagnostic.column >= 1


@pytest.mark.parametrize("count", [2_000, 20_000])
def test_an_element_with_thousands_of_attributes_is_read_in_linear_time(count: int) -> None:
    """Each attribute's position is found once per element (it used to be once per lookup)."""
    attributes = " ".join(f'a{i}="v"' for i in range(count))
    text = (
        f'---\nname: x\n---\n<workflow>\n  <loop id="l" max="1" {attributes}>\n'
        '    <delay id="d" duration="0"/>\n  </loop>\n</workflow>\n'
    )
    started = time.monotonic()
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(text)
    assert time.monotonic() - started < 30  # quadratic took minutes at 20,000
    assert len(caught.value.diagnostics) == count
    line = text.splitlines()[4]
    last = caught.value.diagnostics[-1]
    assert (last.line, last.column) == (5, line.index(f" a{count - 1}=") + 2)


def test_long_values_are_shortened_in_one_line_messages() -> None:
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(
            f'---\nname: x\n---\n<workflow>\n  <delay id="d" duration="{"9" * 5000}s"/>\n'
            "</workflow>\n"
        )
    [diagnostic] = caught.value.diagnostics
    assert len(str(diagnostic)) < 200
    assert "(5001 characters)" in str(diagnostic)
