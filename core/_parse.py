"""Reading ``.flow.md`` files into the frozen workflow model.

A workflow file is Markdown: YAML front matter between a first line ``---``
and the next ``---`` line, then prose holding one ``<workflow>`` XML element.
Parsing goes in three steps over one text:

1. **Split.** The text is cut into lines (``\\n``, ``\\r\\n`` or ``\\r``). The
   front matter is the text between the two ``---`` lines. The body is the
   first line outside fenced code blocks whose stripped text starts with
   ``<workflow``, through the first line holding ``</workflow>`` (cut after
   it). Everything else is prose and is ignored, an "Execution Log" section
   included.
2. **Read.** The front matter is *composed* with PyYAML, so every key and
   value keeps its mark. The body is read with :mod:`xml.parsers.expat` into a
   small tree of :class:`_Element` values that keep the position of each start
   tag and of each run of text; ElementTree would lose them. Positions are
   shifted by where their part starts, so every diagnostic points into the
   file itself.

   The body is XML with one leniency, because authors write
   ``condition="{{ item.score < 5 }}"`` and ``url="https://x/?a=1&b=2"``:
   inside the quoted attribute values of start tags, each ``<`` becomes
   ``&lt;`` and each ``&`` that does not begin a reference (``&name;``,
   ``&#123;``, ``&#x1F;``) becomes ``&amp;`` before expat sees the text
   (so an undefined ``&name;`` is still an error). Element text, comments
   and everything else stay strict, with hints for a bare ``<`` or ``&`` in
   text. Escaping never moves a line break, so a per-line list of the
   escapes (:class:`_Lenient`) turns expat's columns back into columns of
   the file as written; attribute positions are found by rescanning the
   original text from the start tag.
3. **Build.** One method per element kind turns an element into a model node,
   checking everything that is local to it: attributes, numbers, durations,
   runtime types and required config, expression syntax, the form of ids
   (a letter or digit first: expressions cannot read ``nodes['_x']``) and
   their uniqueness, where ``<break>`` may stand. A problem becomes a
   :class:`Diagnostic` and building goes on with the siblings, so one pass
   reports every problem. An invalid optional value falls back to its
   default; a node missing a value the model cannot do without (an ``id``, a
   ``<loop>``'s ``max``...) is left out of its body, which makes the model
   *incomplete*.

Finally the semantic checks of :func:`check_workflow` (references, scope
rules, cycles) run whenever a :class:`Workflow` could be built from a complete
model; on an incomplete one they would report references to the nodes left
out. Any diagnostic at all raises one :class:`WorkflowError` carrying all of
them.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, TypeVar, cast
from xml.parsers import expat

import yaml

from . import _yaml
from ._duration import parse_duration
from ._errors import Diagnostic, ExpressionError, WorkflowError
from ._expr import (
    RESERVED_NAMES,
    SCOPE_NAMES,
    References,
    expression_references,
    is_template,
    template_references,
)
from ._limits import MAX_DIGITS, MAX_ELEMENT_DEPTH
from ._model import (
    BranchNode,
    BreakNode,
    Case,
    CheckpointNode,
    ConfigField,
    ConfigType,
    DelayNode,
    ForeachNode,
    FrozenDict,
    IfNode,
    Location,
    LoopNode,
    Node,
    OnError,
    ParallelBranch,
    ParallelNode,
    RetrySpec,
    RuntimeSettings,
    TaskNode,
    WhileNode,
    Workflow,
)
from ._registry import RuntimeSpec, get_runtime, runtime_keys
from ._validate import check_workflow

__all__ = ["load_workflow", "parse_workflow"]

T = TypeVar("T")

# --- the vocabulary ------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
# Not starting with '_': expressions may not read ``nodes['_x']`` (a sandbox rule).
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER = re.compile(r"\s*\d+\s*")
_WAIT_N = re.compile(r"\s*n\(\s*(\d+)\s*\)\s*")
_EXECUTION_LOG = re.compile(r"#{1,6}\s+execution log\s*#*\s*", re.IGNORECASE)
_FENCE = re.compile(r"(`{3,}|~{3,})")
_LINE_PIECES = re.compile(r"[^\n]*\n|[^\n]+")
_WORKFLOW_START = re.compile(r"<workflow(?=[\s>/]|$)")
_SELF_CLOSED_WORKFLOW = re.compile(r"\s*<workflow(?:\s[^>]*)?/>")
# One attribute of a start tag expat has already accepted.
_ATTRIBUTE = re.compile(r"""\s+([^\s=/>]+)\s*=\s*(?:"[^"]*"|'[^']*')""")
# Lenient attribute values: markup whose content is copied as it is (opening, closing) ...
_SKIPPED_MARKUP = (("<!--", "-->"), ("<![CDATA[", "]]>"), ("<?", "?>"), ("<!", ">"), ("</", ">"))
# ... the name of a start tag, an attribute up to its opening quote (group 1) ...
_START_TAG = re.compile(r"<[^\W\d][\w.:-]*")
_ATTRIBUTE_VALUE = re.compile(r"""\s+[^\s=/>]+\s*=\s*(["'])""")
# ... and in its value a '<', or an '&' that does not start an entity or character reference.
_ATTRIBUTE_ESCAPED = re.compile(r"<|&(?!(?:[^\W\d][\w.:-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")

_TASK_KINDS = ("source", "transform", "sink")
_NODE_TAGS = (
    *_TASK_KINDS,
    *("parallel", "foreach", "if", "branch", "loop", "while", "break", "checkpoint", "delay"),
)
#: Elements that are only valid directly inside a particular parent.
_PLACED_ELEMENTS = {
    "then": "<if>",
    "else": "<if>",
    "case": "<branch>",
    "default": "<branch>",
    "on-error": "<source>, <transform>, <sink> or <checkpoint>",
    "retry": "<on-error>",
    "fallback": "<on-error>",
}
_COMMON_ATTRIBUTES = ("id", "input", "timeout", "description")
_REPEATING = "<loop>, <while> or <foreach>"

_FRONT_MATTER_KEYS = ("name", "version", "description", "config", "secrets", "runtime")
_RUNTIME_KEYS = (
    "max_concurrency",
    "timeout",
    "mode",
    "grace",
    "keep_going",
    "max_restarts",
    "restart_period",
)
_CONFIG_SPEC_KEYS = ("type", "default", "required", "description")
_CONFIG_TYPES: tuple[ConfigType, ...] = (
    "string",
    "number",
    "integer",
    "boolean",
    "list",
    "object",
    "any",
)
_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "list": "a list",
    "object": "a mapping",
}
_DURATION_HINT = "expected e.g. 250ms, 5s, 2m, 1h or seconds"
_UNBUILT: Any = object()  # a YAML value that could not be built (already reported)
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


# --- public API ----------------------------------------------------------------------


def parse_workflow(text: str | bytes, path: str | os.PathLike[str] | None = None) -> Workflow:
    """Parse the text of a ``.flow.md`` file; ``path`` only names it in diagnostics.

    Bytes must be UTF-8. Raises WorkflowError listing every problem found,
    each located in the file (lines and columns count from 1).
    """
    file = "<string>" if path is None else str(path)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise WorkflowError([Diagnostic(file, 1, 1, "file is not UTF-8 text")]) from None
    if "\x00" in text:
        raise WorkflowError([Diagnostic(file, 1, 1, "file is not UTF-8 text")])
    if not text.strip():
        raise WorkflowError([Diagnostic(file, 1, 1, "file is empty")])
    return _Parser(text, file, None if path is None else str(path)).parse()


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read and parse the workflow file at ``path``.

    An unreadable file (missing, a directory, not UTF-8, empty) is reported
    like any other problem: a WorkflowError with one diagnostic at 1:1.
    """
    file = str(path)
    if os.path.isdir(path):
        raise WorkflowError([Diagnostic(file, 1, 1, "is a directory, not a workflow file")])
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise WorkflowError([Diagnostic(file, 1, 1, "cannot read file: no such file")]) from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise WorkflowError([Diagnostic(file, 1, 1, f"cannot read file: {reason}")]) from None
    return parse_workflow(data, path)


# --- the element tree ----------------------------------------------------------------


@dataclass(slots=True)
class _TextRun:
    """Character data as expat reported it: where it starts (file coordinates) and what it is."""

    line: int
    column: int
    data: str


@dataclass(slots=True, eq=False)
class _Element:
    """One XML element: its tag, attributes in document order, children and text runs."""

    tag: str
    loc: Location
    attrs: dict[str, str]
    children: list[_Element] = field(default_factory=list)
    text: list[_TextRun] = field(default_factory=list)
    #: Where each attribute's name is written, found on first use (see ``attr_loc``).
    attr_locs: dict[str, Location] | None = None

    @property
    def name(self) -> str:
        """The tag as messages write it: ``<foreach>``."""
        return f"<{self.tag}>"


class _XmlError(Exception):
    """An expat error in file coordinates."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


@dataclass(slots=True)
class _Lenient:
    """XML text with ``<`` and bare ``&`` escaped inside start-tag attribute values.

    Escaping never adds or removes a line break, so only columns move: ``shifts``
    holds, per 1-based line of the text, ``(column, extra)`` for each escaped
    character in order, ``column`` its 0-based column in the original line and
    ``extra`` how many characters its escape added.
    """

    text: str
    shifts: dict[int, list[tuple[int, int]]]

    def original_column(self, line: int, column: int) -> int:
        """The 0-based original column of 0-based ``column`` of the escaped ``line``.

        A column inside an escape maps to the character it replaced.
        """
        shift = 0
        for original, extra in self.shifts.get(line, ()):
            start = original + shift  # where the escape starts in the escaped line
            if column <= start:
                break
            if column <= start + extra:
                return original
            shift += extra
        return column - shift


def _escape_attribute_values(text: str) -> _Lenient:
    """Escape ``<`` as ``&lt;`` and each ``&`` not starting a reference as ``&amp;``.

    Only inside the quoted attribute values of start tags: text, comments,
    CDATA sections, processing instructions and end tags are copied as they
    are, so expat stays strict everywhere else. A start tag is followed
    attribute by attribute and left alone from the first thing that is not
    ``name="value"`` on; expat then reports it.
    """
    pieces: list[str] = []
    shifts: dict[int, list[tuple[int, int]]] = {}
    copied = 0  # text[:copied] is in ``pieces``
    line, line_start, counted = 1, 0, 0  # the line of text[counted] and where it starts
    position = 0
    while (position := text.find("<", position)) >= 0:
        for opening, closing in _SKIPPED_MARKUP:
            if text.startswith(opening, position):
                end = text.find(closing, position + len(opening))
                position = len(text) if end < 0 else end + len(closing)
                break
        else:
            tag = _START_TAG.match(text, position)
            if tag is None:
                position += 1
                continue
            position = tag.end()
            while value := _ATTRIBUTE_VALUE.match(text, position):
                close = text.find(value.group(1), value.end())
                if close < 0:
                    break
                for char in _ATTRIBUTE_ESCAPED.finditer(text, value.end(), close):
                    escape = "&lt;" if char.group() == "<" else "&amp;"
                    offset = char.start()
                    if newlines := text.count("\n", counted, offset):
                        line += newlines
                        line_start = text.rindex("\n", counted, offset) + 1
                    counted = offset
                    shifts.setdefault(line, []).append((offset - line_start, len(escape) - 1))
                    pieces += (text[copied:offset], escape)
                    copied = offset + 1
                position = close + 1
    pieces.append(text[copied:])
    return _Lenient("".join(pieces), shifts)


def _read_xml(text: str, file: str, first_line: int, file_lines: list[str]) -> _Element:
    """Read ``text``, which starts at file line ``first_line``, into an element tree.

    ``text`` is read leniently (see :func:`_escape_attribute_values`); every
    position is translated back to the file as written. Raises _XmlError at
    the first well-formedness error, with a hint when the culprit is a bare
    ``<`` or ``&`` in text.
    """
    lenient = _escape_attribute_values(text)
    parser = expat.ParserCreate()
    parser.ordered_attributes = True
    stack: list[_Element] = []
    root: list[_Element] = []

    def here() -> tuple[int, int]:
        line = parser.CurrentLineNumber
        column = lenient.original_column(line, parser.CurrentColumnNumber)
        return line + first_line - 1, column + 1

    def start(tag: str, attrs: list[str]) -> None:
        line, column = here()
        if len(stack) > MAX_ELEMENT_DEPTH:  # stack[0] is <workflow>
            # Checked before the tree grows deeper: every walker over it recurses.
            raise _XmlError(
                line,
                column,
                f"<{tag}> is nested too deeply: elements nest at most {MAX_ELEMENT_DEPTH} "
                "levels inside <workflow>",
            )
        element = _Element(
            tag, Location(file, line, column), dict(zip(attrs[::2], attrs[1::2], strict=True))
        )
        (stack[-1].children if stack else root).append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def characters(data: str) -> None:
        if stack:
            line, column = here()
            stack[-1].text.append(_TextRun(line, column, data))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(lenient.text, True)
    except expat.ExpatError as exc:
        column = lenient.original_column(exc.lineno or 1, exc.offset or 0)
        line = (exc.lineno or 1) + first_line - 1
        message = f"invalid XML: {expat.ErrorString(exc.code)}"
        source = file_lines[line - 1] if line <= len(file_lines) else ""
        if exc.code == expat.errors.codes[expat.errors.XML_ERROR_INVALID_TOKEN]:
            column, message = _xml_hint(source, column, message)
        elif exc.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH] and stack:
            open_ = stack[-1]
            message += (
                f"; expected </{open_.tag}> to close {open_.name} from "
                f"{open_.loc.line}:{open_.loc.column}"
            )
        raise _XmlError(line, column + 1, message) from None
    return root[0]


def _xml_hint(line: str, offset: int, message: str) -> tuple[int, str]:
    """Point an invalid-token error at a bare ``&`` or ``<`` in text and say how to escape it.

    Expat stops on the character after ``&name`` when no ``;`` follows, and
    just after a ``<`` that starts no markup. (Attribute values never get
    here: :func:`_escape_attribute_values` escaped them.)
    """
    ampersand = line.rfind("&", 0, offset + 1)
    if ampersand >= 0 and re.fullmatch(r"[A-Za-z0-9_.:#-]*", line[ampersand + 1 : offset]):
        return ampersand, f"{message}; use &amp; for '&'"
    if offset > 0 and line[offset - 1] == "<":
        return offset - 1, f"{message}; use &lt; for '<' in text, or a <![CDATA[ ]]> section"
    return offset, message


@dataclass(slots=True)
class _Text:
    """Element text after dedenting, with the file position of each of its lines."""

    value: str
    #: File (line, column) of the first character of each line of ``value``.
    origins: list[tuple[int, int]]

    def position(self, line: int, column: int = 0) -> tuple[int, int]:
        """The file position of ``value``'s ``line`` (0-based) and ``column`` (0-based)."""
        if not self.origins:
            return 1, 1
        origin_line, origin_column = self.origins[min(max(line, 0), len(self.origins) - 1)]
        return origin_line, origin_column + column

    def line_position(self, line: int) -> tuple[int, int]:
        """The file position of the first non-blank character of ``value``'s ``line`` (0-based)."""
        lines = self.value.split("\n")
        line = min(max(line, 0), len(lines) - 1)
        return self.position(line, len(lines[line]) - len(lines[line].lstrip()))


def _element_text(runs: list[_TextRun]) -> _Text:
    """Join text runs, strip surrounding blank lines and remove the common indentation.

    Text starting on the tag's own line (``<x>value``) only loses its leading
    spaces; it does not count towards the common indentation of the others.
    """
    raw_lines: list[str] = []
    starts: list[tuple[int, int]] = []
    pending = True
    for run in runs:
        line, column = run.line, run.column
        for piece in _LINE_PIECES.findall(run.data):
            if pending:
                raw_lines.append("")
                starts.append((line, column))
            raw_lines[-1] += piece.rstrip("\n")
            pending = piece.endswith("\n")
            if pending:
                line, column = line + 1, 1
            else:
                column += len(piece)
    nonblank = [i for i, text in enumerate(raw_lines) if text.strip()]
    if not nonblank:
        return _Text("", [])
    first, last = nonblank[0], nonblank[-1]
    kept = raw_lines[first : last + 1]
    tag_line = first == 0  # the text starts on the element's own line
    indented = [text for i, text in enumerate(kept) if text.strip() and not (tag_line and i == 0)]
    margin = min((len(text) - len(text.lstrip()) for text in indented), default=0)
    lines: list[str] = []
    origins: list[tuple[int, int]] = []
    for i, text in enumerate(kept):
        cut = len(text) - len(text.lstrip()) if tag_line and i == 0 else min(margin, len(text))
        line, column = starts[first + i]
        lines.append(text[cut:])
        origins.append((line, column + cut))
    lines[-1] = lines[-1].rstrip()
    return _Text("\n".join(lines), origins)


# --- front matter values -------------------------------------------------------------


class _Invalid(Exception):
    """A value that cannot be used; the message is the diagnostic's."""


def _shown(value: object) -> str:
    """``repr(value)``, shortened for a one-line message when it is long."""
    text = repr(value)
    if len(text) <= 60:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else "shortened"
    return f"{text[:40]}... ({size})"


def _to_int(value: object, key: str, minimum: int) -> int:
    expected = f"expected an integer >= {minimum}"
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value):
        if len(value.strip()) > MAX_DIGITS:
            expected += f" of at most {MAX_DIGITS} digits"
            raise _Invalid(f"invalid value {_shown(value)} for {key!r}: {expected}")
        number = int(value)
    else:
        raise _Invalid(f"invalid value {_shown(value)} for {key!r}: {expected}")
    if number < minimum:
        raise _Invalid(f"invalid value {_shown(value)} for {key!r}: {expected}")
    return number


def _to_duration(value: object, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        raise _Invalid(f"invalid duration {_shown(value)} for {key!r}: {_DURATION_HINT}") from None


def _to_choice(value: object, key: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    raise _Invalid(
        f"invalid value {_shown(value)} for {key!r}: expected one of {', '.join(choices)}"
    )


def _to_bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"invalid value {_shown(value)} for {key!r}: expected true or false")


def _matches_type(value: object, type_: ConfigType) -> bool:
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "list":
        return isinstance(value, list)
    if type_ == "object":
        return isinstance(value, dict)
    return True


def _infer_type(value: object) -> ConfigType:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "any"


def _yaml_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _snippet(text: str) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= 40 else line[:37] + "..."


class _CommonFields(TypedDict):
    id: str
    loc: Location
    inputs: tuple[str, ...]
    timeout: float | None
    description: str | None


@dataclass(slots=True)
class _FrontMatter:
    name: str | None = None
    version: str | None = None
    description: str | None = None
    config: list[ConfigField] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)


# --- the parser ----------------------------------------------------------------------


class _Parser:
    """One parse of one text. Collects diagnostics; :meth:`parse` raises if there are any.

    ``complete`` stays true while every element could be built into the model.
    """

    def __init__(self, text: str, file: str, path: str | None) -> None:
        self.source = text
        self.file = file
        self.path = path
        normalized = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.lines = normalized.split("\n")
        self.text = normalized
        self.line_offsets = [0]
        for line in self.lines[:-1]:
            self.line_offsets.append(self.line_offsets[-1] + len(line) + 1)
        self.diagnostics: list[Diagnostic] = []
        self.complete = True
        self.ids: dict[str, Location] = {}
        #: What each text compiled so far reads, for the semantic checks.
        self.references: dict[tuple[str, bool], References] = {}

    # -- reporting ---------------------------------------------------------------------

    def error(self, loc: Location | tuple[int, int], message: str) -> None:
        line, column = (loc.line, loc.column) if isinstance(loc, Location) else loc
        self.diagnostics.append(Diagnostic(self.file, line, column, message))

    def convert(self, loc: Location, func: Callable[..., T], *args: Any) -> T | None:
        """``func(*args)``, or None after reporting its _Invalid at ``loc``."""
        try:
            return func(*args)
        except _Invalid as exc:
            self.error(loc, str(exc))
            return None

    def at(self, line: int, column: int) -> Location:
        return Location(self.file, line, column)

    # -- the whole file ----------------------------------------------------------------

    def parse(self) -> Workflow:
        body_start = 0
        front = None
        if self.lines[0].rstrip() != "---":
            self.error((1, 1), "missing front matter: the file must start with a '---' line")
        else:
            close = next(
                (i for i in range(1, len(self.lines)) if self.lines[i].rstrip() == "---"), None
            )
            if close is None:
                self.error((1, 1), "unterminated front matter: no closing '---' line")
                body_start = 1
            else:
                front = self.front_matter("\n".join(self.lines[1:close]))
                body_start = close + 1
        root = self.find_body(body_start)
        body = self.workflow_body(root) if root is not None else None
        workflow = None
        if front is not None and front.name is not None and root is not None and body is not None:
            workflow = Workflow(
                name=front.name,
                body=body,
                version=front.version,
                description=front.description,
                config=tuple(front.config),
                secrets=tuple(front.secrets),
                runtime=RuntimeSettings(**front.runtime),
                source=self.source,
                path=self.path,
                loc=root.loc,
            )
            if self.complete:
                self.diagnostics.extend(check_workflow(workflow, self.references))
        if self.diagnostics or workflow is None:
            raise WorkflowError(self.diagnostics)
        return workflow

    # -- front matter ------------------------------------------------------------------

    def mark(self, mark: yaml.Mark | None) -> Location:
        """A YAML mark of the front matter (which starts on line 2) as a file location.

        The mark's character offset is used, not its line: YAML also breaks
        lines at U+0085, U+2028 and U+2029, which the file's lines do not.
        """
        if mark is None:
            return self.at(2, 1)
        return self.offset_loc(self.line_offsets[1] + mark.index)

    def node_loc(self, node: yaml.Node) -> Location:
        return self.mark(node.start_mark)

    def construct(self, node: yaml.Node) -> Any:
        """The Python value of a composed node (plain dicts, lists and scalars).

        A value that cannot be built is reported and returned as ``_UNBUILT``.
        """
        try:
            return _yaml.construct(node)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or node.start_mark
            self.error(self.mark(mark), f"invalid YAML: {getattr(exc, 'problem', None) or exc}")
            return _UNBUILT

    def front_matter(self, text: str) -> _FrontMatter | None:
        front = _FrontMatter()
        try:
            document = _yaml.compose(text)
        except yaml.reader.ReaderError as exc:
            # A character YAML does not allow: located by its offset, not by a mark.
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            self.error(
                self.offset_loc(self.line_offsets[1] + exc.position),
                f"invalid YAML in front matter: character U+{code:04X} is not allowed",
            )
            return None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            self.error(self.mark(mark), f"invalid YAML in front matter: {problem}")
            return None
        if document is None:
            self.error((1, 1), "missing required front matter key 'name'")
            return front
        if not isinstance(document, yaml.MappingNode):
            self.error(
                self.node_loc(document),
                f"front matter must be a mapping of keys to values, not {_yaml_kind(document)}",
            )
            return None
        handlers: dict[str, Callable[[_FrontMatter, yaml.Node], None]] = {
            "name": self.fm_name,
            "version": self.fm_version,
            "description": self.fm_description,
            "config": self.fm_config,
            "secrets": self.fm_secrets,
            "runtime": self.fm_runtime,
        }
        seen: set[str] = set()
        for key, value in self.mapping_items(document, "front matter key"):
            seen.add(key.value)
            handler = handlers.get(key.value)
            if handler is None:
                self.error(
                    self.node_loc(key),
                    f"unknown front matter key {key.value!r}; "
                    f"expected one of {', '.join(_FRONT_MATTER_KEYS)}",
                )
            else:
                handler(front, value)
        if "name" not in seen:
            self.error((1, 1), "missing required front matter key 'name'")
        return front

    def mapping_items(
        self, node: yaml.MappingNode, what: str, where: str = ""
    ) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
        """The (key, value) pairs of ``node`` with string keys; reports others and duplicates."""
        first: dict[str, Location] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR_TAG:
                shown = _yaml_kind(key)
                self.error(self.node_loc(key), f"invalid {what} {shown}{where}: expected a name")
                continue
            loc = self.node_loc(key)
            if key.value in first:
                earlier = first[key.value]
                self.error(
                    loc,
                    f"duplicate {what} {key.value!r}{where} (first defined at "
                    f"{earlier.line}:{earlier.column})",
                )
                continue
            first[key.value] = loc
            yield key, value

    def scalar_text(self, node: yaml.Node, key: str) -> str | None:
        """A scalar as written (``1.0`` stays ``'1.0'``); None for null and collections."""
        if not isinstance(node, yaml.ScalarNode):
            self.error(self.node_loc(node), f"{key!r} must be a string, not {_yaml_kind(node)}")
            return None
        if node.tag == _NULL_TAG:
            return None
        return str(node.value)

    def fm_name(self, front: _FrontMatter, node: yaml.Node) -> None:
        name = self.scalar_text(node, "name")
        if name is None or not _NAME.fullmatch(name):
            if isinstance(node, yaml.ScalarNode):
                self.error(
                    self.node_loc(node),
                    f"invalid name {(name or '')!r}: expected letters, digits, '_', '.' or '-'",
                )
        else:
            front.name = name

    def fm_version(self, front: _FrontMatter, node: yaml.Node) -> None:
        front.version = self.scalar_text(node, "version")

    def fm_description(self, front: _FrontMatter, node: yaml.Node) -> None:
        front.description = self.scalar_text(node, "description")

    def fm_secrets(self, front: _FrontMatter, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return
        if not isinstance(node, yaml.SequenceNode):
            self.error(self.node_loc(node), "'secrets' must be a list of names, e.g. [API_TOKEN]")
            return
        first: dict[str, Location] = {}
        for item in node.value:
            loc = self.node_loc(item)
            if not isinstance(item, yaml.ScalarNode) or not _IDENTIFIER.fullmatch(item.value):
                self.error(
                    loc,
                    f"invalid secret name {_yaml_kind(item)}: expected letters, digits and '_', "
                    "not starting with a digit",
                )
            elif item.value in first:
                earlier = first[item.value]
                self.error(
                    loc,
                    f"duplicate secret {item.value!r} (first defined at "
                    f"{earlier.line}:{earlier.column})",
                )
            else:
                first[item.value] = loc
                front.secrets.append(item.value)

    def fm_runtime(self, front: _FrontMatter, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return
        if not isinstance(node, yaml.MappingNode):
            self.error(
                self.node_loc(node),
                "'runtime' must be a mapping, e.g. {max_concurrency: 8, timeout: 5m}",
            )
            return
        settings = front.runtime
        for key, value_node in self.mapping_items(node, "runtime key"):
            name = key.value
            if name not in _RUNTIME_KEYS:
                self.error(
                    self.node_loc(key),
                    f"unknown runtime key {name!r}; expected one of {', '.join(_RUNTIME_KEYS)}",
                )
                continue
            value = self.construct(value_node)
            if value is _UNBUILT:
                continue
            loc = self.node_loc(value_node)
            result: object = None
            if name == "max_concurrency":
                result = self.convert(loc, _to_int, value, name, 1)
            elif name == "max_restarts":
                result = self.convert(loc, _to_int, value, name, 0)
            elif name in ("timeout", "grace", "restart_period"):
                result = self.convert(loc, _to_duration, value, name)
            elif name == "mode":
                result = self.convert(loc, _to_choice, value, name, ("eager", "waves"))
            else:
                result = self.convert(loc, _to_bool, value, name)
            if result is not None:
                settings[name] = result

    def fm_config(self, front: _FrontMatter, node: yaml.Node) -> None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            return
        if not isinstance(node, yaml.MappingNode):
            self.error(
                self.node_loc(node),
                "'config' must be a mapping of field names to a type spec or a default value",
            )
            return
        for key, value in self.mapping_items(node, "config field"):
            front.config.append(self.config_field(key, value))

    def config_field(self, key: yaml.ScalarNode, node: yaml.Node) -> ConfigField:
        name = key.value
        loc = self.node_loc(key)
        if not _IDENTIFIER.fullmatch(name):
            self.error(
                loc,
                f"invalid config field name {name!r}: expected letters, digits and '_', "
                "not starting with a digit",
            )
        if not isinstance(node, yaml.MappingNode) or not self.is_config_spec(node):
            value = self.construct(node)
            if value is _UNBUILT:
                value = None
            return ConfigField(name=name, type=_infer_type(value), default=value, loc=loc)
        type_: ConfigType = "any"
        default: Any = None
        default_loc: Location | None = None
        required = False
        required_loc = loc
        description = None
        for spec_key, value_node in self.mapping_items(node, "key", f" in config field {name!r}"):
            which = spec_key.value
            value_loc = self.node_loc(value_node)
            if which == "type":
                written = self.construct(value_node)
                if written is _UNBUILT:
                    continue
                if written in _CONFIG_TYPES:
                    type_ = cast(ConfigType, written)
                else:
                    self.error(
                        value_loc,
                        f"invalid type {written!r} for config field {name!r}: "
                        f"expected one of {', '.join(_CONFIG_TYPES)}",
                    )
            elif which == "default":
                default = self.construct(value_node)
                if default is _UNBUILT:
                    default = None
                    continue
                default_loc = value_loc
            elif which == "required":
                written = self.construct(value_node)
                if written is _UNBUILT:
                    continue
                checked = self.convert(value_loc, _to_bool, written, "required")
                required = bool(checked)
                required_loc = self.node_loc(spec_key)
            elif which == "description":
                description = self.scalar_text(value_node, "description")
            else:
                self.error(
                    self.node_loc(spec_key),
                    f"unknown key {which!r} in config field {name!r}; "
                    f"expected one of {', '.join(_CONFIG_SPEC_KEYS)}",
                )
        if required and default_loc is not None:
            self.error(
                required_loc,
                f"config field {name!r} is required, so it cannot have a default",
            )
        if default_loc is not None and default is not None and not _matches_type(default, type_):
            self.error(
                default_loc,
                f"invalid default {default!r} for config field {name!r}: "
                f"expected {_TYPE_NAMES[type_]}",
            )
            default = None
        return ConfigField(
            name=name,
            type=type_,
            default=default,
            required=required,
            description=description,
            loc=loc,
        )

    @staticmethod
    def is_config_spec(node: yaml.MappingNode) -> bool:
        """A mapping is a field spec if it has ``type``, or is non-empty and uses only spec keys."""
        keys = {key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
        return "type" in keys or (bool(node.value) and keys <= set(_CONFIG_SPEC_KEYS))

    # -- locating the body -------------------------------------------------------------

    def find_body(self, first: int) -> _Element | None:
        """The ``<workflow>`` element's tree, searching from line index ``first``."""
        start = next(
            (index for index, text in self.unfenced(first) if _WORKFLOW_START.match(text)), None
        )
        if start is None:
            self.error((1, 1), "no <workflow> element: the body must hold <workflow>...</workflow>")
            return None
        loc = (start + 1, len(self.lines[start]) - len(self.lines[start].lstrip()) + 1)
        end = next(
            (i for i in range(start, len(self.lines)) if "</workflow>" in self.lines[i]), None
        )
        if end is None:
            if not _SELF_CLOSED_WORKFLOW.match(self.lines[start]):
                self.error(loc, "unterminated <workflow> element: no '</workflow>' line")
                return None
            end = start
        self.check_single_workflow(end + 1)
        chunk = self.lines[start : end + 1]
        if "</workflow>" in chunk[-1]:
            chunk[-1] = chunk[-1][: chunk[-1].index("</workflow>") + len("</workflow>")]
        try:
            return _read_xml("\n".join(chunk), self.file, start + 1, self.lines)
        except _XmlError as exc:
            self.error((exc.line, exc.column), exc.message)
            return None

    def unfenced(self, first: int) -> Iterator[tuple[int, str]]:
        """``(index, stripped text)`` of the lines from ``first`` on outside fenced code blocks."""
        fence: str | None = None
        for index in range(first, len(self.lines)):
            stripped = self.lines[index].strip()
            if fence is not None:
                if stripped.startswith(fence) and not stripped.strip(fence[0]):
                    fence = None  # a closing fence: the same character, at least as many
            elif opening := _FENCE.match(stripped):
                fence = opening.group(1)
            else:
                yield index, stripped

    def check_single_workflow(self, first: int) -> None:
        """Report a second ``<workflow>`` before any "Execution Log" section."""
        for index, stripped in self.unfenced(first):
            if _EXECUTION_LOG.fullmatch(stripped):
                return
            if _WORKFLOW_START.match(stripped):
                column = len(self.lines[index]) - len(self.lines[index].lstrip()) + 1
                self.error(
                    (index + 1, column),
                    "a second <workflow> element: a file holds exactly one workflow",
                )
                return

    # -- element helpers ---------------------------------------------------------------

    def attr_loc(self, element: _Element, name: str) -> Location:
        """Where attribute ``name`` of ``element`` is written, or the element's start.

        The start tag is rescanned once per element, however many attributes
        are looked up (an element may have thousands).
        """
        if element.attr_locs is None:
            element.attr_locs = {}
            offset = self.line_offsets[element.loc.line - 1] + element.loc.column - 1
            position = offset + 1 + len(element.tag)
            while match := _ATTRIBUTE.match(self.text, position):
                element.attr_locs.setdefault(match.group(1), self.offset_loc(match.start(1)))
                position = match.end()
        return element.attr_locs.get(name, element.loc)

    def offset_loc(self, offset: int) -> Location:
        index = bisect.bisect_right(self.line_offsets, offset) - 1
        return self.at(index + 1, offset - self.line_offsets[index] + 1)

    def check_attributes(self, element: _Element, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for name in element.attrs:
            if name not in allowed:
                expected = f"expected one of {', '.join(allowed)}" if allowed else "it takes none"
                self.error(
                    self.attr_loc(element, name),
                    f"unknown attribute {_shown(name)} on {element.name}; {expected}",
                )

    def check_no_text(self, element: _Element) -> None:
        """Report the first non-whitespace text directly inside ``element``."""
        for run in element.text:
            if run.data.strip():
                leading = run.data[: len(run.data) - len(run.data.lstrip())]
                line = run.line + leading.count("\n")
                column = (
                    len(leading) - leading.rfind("\n")
                    if "\n" in leading
                    else run.column + len(leading)
                )
                self.error(
                    (line, column),
                    f"unexpected text {_snippet(run.data)!r} inside {element.name}; "
                    "only elements are allowed here",
                )
                return

    def check_leaf(self, element: _Element) -> None:
        """Report any content of an element that takes none."""
        self.check_no_text(element)
        for child in element.children:
            self.error(child.loc, f"unexpected {child.name} inside {element.name}")

    def required(self, element: _Element, name: str) -> str | None:
        value = element.attrs.get(name)
        if value is None:
            self.error(element.loc, f"{element.name} needs attribute {name!r}")
        return value

    def int_attr(self, element: _Element, name: str, minimum: int) -> int | None:
        value = element.attrs.get(name)
        if value is None:
            return None
        return self.convert(self.attr_loc(element, name), _to_int, value, name, minimum)

    def duration_attr(self, element: _Element, name: str) -> float | None:
        value = element.attrs.get(name)
        if value is None:
            return None
        return self.convert(self.attr_loc(element, name), _to_duration, value, name)

    def choice_attr(self, element: _Element, name: str, choices: tuple[str, ...]) -> str | None:
        value = element.attrs.get(name)
        if value is None:
            return None
        return self.convert(self.attr_loc(element, name), _to_choice, value, name, choices)

    def expression_attr(self, element: _Element, name: str, *, required: bool) -> str | None:
        """The attribute's text after checking that it compiles as an expression."""
        value = self.required(element, name) if required else element.attrs.get(name)
        if value is not None:
            loc = self.attr_loc(element, name)
            self.compile(value, name, expression=True, at=loc)
        return value

    def compile(
        self,
        text: str,
        key: str,
        *,
        expression: bool,
        at: Location | Callable[[int | None], Location],
    ) -> None:
        """Compile ``text`` as an expression or (if it has template syntax) a template.

        ``at`` is where to report an error, or maps the error's line within
        ``text`` to that place.
        """
        try:
            if expression:
                self.references[text, True] = expression_references(text)
            elif is_template(text):
                self.references[text, False] = template_references(text)
        except ExpressionError as exc:
            self.error(at if isinstance(at, Location) else at(exc.lineno), f"in {key!r}: {exc}")

    # -- bodies ------------------------------------------------------------------------

    def workflow_body(self, root: _Element) -> tuple[Node, ...] | None:
        self.check_attributes(root, ())
        if not root.children:
            self.check_no_text(root)
            self.error(root.loc, "the workflow has no nodes: add at least one node element")
            return None
        return self.body(root, in_loop=False)

    def body(self, element: _Element, *, in_loop: bool) -> tuple[Node, ...]:
        """The nodes written directly inside ``element``, in order; broken ones left out."""
        self.check_no_text(element)
        nodes = []
        for child in element.children:
            node = self.node(child, in_loop=in_loop)
            if node is None:
                self.complete = False
            else:
                nodes.append(node)
        return tuple(nodes)

    def nonempty_body(self, element: _Element, *, in_loop: bool) -> tuple[Node, ...]:
        if not element.children:
            self.error(element.loc, f"{element.name} needs at least one node")
        return self.body(element, in_loop=in_loop)

    def node(self, element: _Element, *, in_loop: bool) -> Node | None:
        builder = self._BUILDERS.get(element.tag)
        if builder is not None:
            return builder(self, element, in_loop)
        if element.tag in _PLACED_ELEMENTS:
            self.error(
                element.loc,
                f"{element.name} is only allowed directly inside {_PLACED_ELEMENTS[element.tag]}",
            )
        else:
            self.error(
                element.loc,
                f"unknown element {element.name}; expected one of {', '.join(_NODE_TAGS)}",
            )
        return None

    def common(self, element: _Element) -> _CommonFields | None:
        """The attributes every node has; None (after reporting) without an id."""
        inputs = self.inputs(element)
        timeout = self.duration_attr(element, "timeout")
        node_id = element.attrs.get("id")
        if node_id is None:
            self.error(element.loc, f"{element.name} needs attribute 'id'")
            return None
        self.check_id(element, node_id)
        return {
            "id": node_id,
            "loc": element.loc,
            "inputs": inputs,
            "timeout": timeout,
            "description": element.attrs.get("description"),
        }

    def check_id(self, element: _Element, node_id: str) -> None:
        """Report an ill-formed, reserved or duplicate id; the first use of an id claims it."""
        loc = self.attr_loc(element, "id")
        if not _NODE_ID.fullmatch(node_id):
            self.error(
                loc,
                f"invalid id {_shown(node_id)}: expected a letter or digit first, "
                "then letters, digits, '_', '.' or '-'",
            )
        elif node_id in RESERVED_NAMES:
            self.error(loc, f"id {node_id!r} is reserved")
        elif node_id in self.ids:
            first = self.ids[node_id]
            self.error(
                loc, f"duplicate id {node_id!r} (first defined at {first.line}:{first.column})"
            )
        else:
            self.ids[node_id] = element.loc

    def inputs(self, element: _Element) -> tuple[str, ...]:
        value = element.attrs.get("input")
        if value is None:
            return ()
        items = tuple(item.strip() for item in value.split(","))
        if not all(items):
            self.error(
                self.attr_loc(element, "input"),
                f"invalid input {value!r}: expected a node id or a comma-separated list of ids",
            )
            return tuple(item for item in items if item)
        return items

    # -- task nodes --------------------------------------------------------------------

    def task(self, element: _Element, in_loop: bool) -> Node | None:
        kind = cast(Literal["source", "transform", "sink"], element.tag)
        self.check_no_text(element)
        common = self.common(element)
        type_ = self.required(element, "type")
        spec: RuntimeSpec | None = None
        if type_ is not None:
            try:
                spec = get_runtime(f"{kind}:{type_}")
            except KeyError:
                known = [key for key in runtime_keys() if key.startswith(f"{kind}:")]
                self.error(
                    self.attr_loc(element, "type"),
                    f"unknown node type '{kind}:{type_}'; "
                    f"known types: {', '.join(known) or 'none'}",
                )
        expressions = spec.expressions if spec is not None else frozenset()
        config: dict[str, Any] = {}
        given: dict[str, Location] = {}
        for name, value in element.attrs.items():
            if name in (*_COMMON_ATTRIBUTES, "type"):
                continue
            loc = self.attr_loc(element, name)
            given[name] = loc
            config[name] = value
            self.compile(value, name, expression=name in expressions, at=loc)
        on_error: OnError | None = None
        for child in element.children:
            if child.tag == "on-error":
                if on_error is not None:
                    self.error(child.loc, f"more than one <on-error> in {element.name}")
                else:
                    on_error = self.on_error(child)
                continue
            if child.tag in given:
                first = given[child.tag]
                self.error(
                    child.loc,
                    f"duplicate config key {child.tag!r} "
                    f"(first given at {first.line}:{first.column})",
                )
                continue
            given[child.tag] = child.loc
            config[child.tag] = self.config_element(child, child.tag in expressions)
        if spec is not None:
            for name in sorted(spec.required - config.keys()):
                self.error(element.loc, f"{spec.key} needs attribute {name!r}")
        if common is None or type_ is None:
            return None
        return TaskNode(
            **common,
            kind=kind,
            type=type_,
            config=FrozenDict(config),
            on_error=on_error,
        )

    def config_element(self, element: _Element, is_expression: bool) -> Any:
        """A config value written as a child element: its text, or a YAML mapping's dict."""
        self.check_attributes(element, ())
        for child in element.children:
            self.error(
                child.loc,
                f"unexpected {child.name} inside config element {element.name}; "
                "config elements hold text only",
            )
        text = _element_text(element.text)
        key = element.tag

        def at(lineno: int | None) -> Location:
            return self.at(*text.line_position((lineno or 1) - 1)) if text.origins else element.loc

        if not is_expression:
            mapping = self.yaml_mapping(text, key)
            if mapping is not None:
                return mapping
        self.compile(text.value, key, expression=is_expression, at=at)
        return text.value

    def yaml_mapping(self, text: _Text, key: str) -> FrozenDict | None:
        """``text`` as a YAML mapping (string leaves checked as templates), or None."""
        try:
            document = _yaml.compose(text.value)
            if not isinstance(document, yaml.MappingNode):
                return None
            value = _yaml.construct(document)
        except yaml.YAMLError:
            return None
        if not isinstance(value, dict):
            return None
        for leaf in _string_leaves(document):
            if is_template(leaf.value):

                def at(lineno: int | None, leaf: yaml.ScalarNode = leaf) -> Location:
                    mark = leaf.start_mark
                    if leaf.style in ("|", ">"):  # the text starts below the indicator
                        return self.at(*text.line_position(mark.line + (lineno or 1)))
                    if lineno is not None and lineno > 1:
                        return self.at(*text.line_position(mark.line + lineno - 1))
                    return self.at(*text.position(mark.line, mark.column))

                self.compile(leaf.value, key, expression=False, at=at)
        return FrozenDict(value)

    def on_error(self, element: _Element) -> OnError:
        self.check_attributes(element, ())
        self.check_no_text(element)
        retry: RetrySpec | None = None
        fallback: str | None = None
        seen: set[str] = set()
        for child in element.children:
            if child.tag not in ("retry", "fallback"):
                self.error(
                    child.loc,
                    f"unexpected {child.name} inside <on-error>; expected <retry> or <fallback>",
                )
                continue
            if child.tag in seen:
                self.error(child.loc, f"more than one {child.name} in <on-error>")
                continue
            seen.add(child.tag)
            self.check_leaf(child)
            if child.tag == "retry":
                retry = self.retry(child)
            else:
                self.check_attributes(child, ("node",))
                fallback = self.required(child, "node")
        return OnError(retry=retry, fallback=fallback, loc=element.loc)

    def retry(self, element: _Element) -> RetrySpec:
        self.check_attributes(element, ("max", "backoff", "base", "cap", "when", "timeout"))
        fields: dict[str, Any] = {
            "max": self.int_attr(element, "max", 0),
            "backoff": self.choice_attr(element, "backoff", ("exponential", "linear", "fixed")),
            "base": self.duration_attr(element, "base"),
            "cap": self.duration_attr(element, "cap"),
            "when": self.choice_attr(element, "when", ("retryable", "always")),
            "timeout": self.duration_attr(element, "timeout"),
        }
        return RetrySpec(**{name: value for name, value in fields.items() if value is not None})

    # -- leaves ------------------------------------------------------------------------

    def delay(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "duration"))
        self.check_leaf(element)
        common = self.common(element)
        duration = None
        if self.required(element, "duration") is not None:
            duration = self.duration_attr(element, "duration")
        if common is None or duration is None:
            return None
        return DelayNode(**common, duration=duration)

    def break_(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "when"))
        self.check_leaf(element)
        common = self.common(element)
        when = self.expression_attr(element, "when", required=True)
        if not in_loop:
            self.error(element.loc, f"<break> is only allowed inside {_REPEATING}")
        if common is None or when is None:
            return None
        return BreakNode(**common, when=when)

    def checkpoint(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "prompt", "default"))
        self.check_no_text(element)
        common = self.common(element)
        prompt = element.attrs.get("prompt", "")
        loc = self.attr_loc(element, "prompt")
        self.compile(prompt, "prompt", expression=False, at=loc)
        default = self.choice_attr(element, "default", ("approve", "reject"))
        on_error: OnError | None = None
        for child in element.children:
            if child.tag != "on-error":
                self.error(
                    child.loc, f"unexpected {child.name} inside <checkpoint>; expected <on-error>"
                )
            elif on_error is not None:
                self.error(child.loc, "more than one <on-error> in <checkpoint>")
            else:
                on_error = self.on_error(child)
        if common is None:
            return None
        return CheckpointNode(
            **common,
            prompt=prompt,
            default=cast(Literal["approve", "reject"] | None, default),
            on_error=on_error,
        )

    # -- control nodes -----------------------------------------------------------------

    def parallel(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "wait", "merge", "max-concurrency"))
        self.check_no_text(element)
        common = self.common(element)
        merge = self.choice_attr(element, "merge", ("array", "concat", "object"))
        max_concurrency = self.int_attr(element, "max-concurrency", 1)
        branches: list[ParallelBranch] = []
        names: dict[str, Location] = {}
        for child in element.children:
            if child.tag != "branch":
                self.error(
                    child.loc, f"unexpected {child.name} inside <parallel>; expected <branch>"
                )
                continue
            self.check_attributes(child, ("name",))
            name = child.attrs.get("name", str(len(branches)))
            loc = self.attr_loc(child, "name") if "name" in child.attrs else child.loc
            if not name.strip():
                self.error(loc, "a branch name must not be empty")
            elif name in names:
                first = names[name]
                self.error(
                    loc,
                    f"duplicate branch name {name!r} in <parallel> "
                    f"(first defined at {first.line}:{first.column})",
                )
            names.setdefault(name, loc)
            body = self.nonempty_body(child, in_loop=in_loop)
            branches.append(ParallelBranch(name=name, body=body, loc=child.loc))
        if not branches:
            self.error(element.loc, "<parallel> needs at least one <branch>")
        wait = self.wait(element, len(branches))
        if common is None:
            return None
        return ParallelNode(
            **common,
            branches=tuple(branches),
            wait=wait,
            merge=cast(Literal["array", "concat", "object"], merge or "array"),
            max_concurrency=max_concurrency,
        )

    def wait(self, element: _Element, branches: int) -> int | None:
        """``wait``: None for ``all``, 1 for ``any``, K for ``n(K)`` with 1 <= K <= branches."""
        value = element.attrs.get("wait")
        if value is None or value.strip() == "all":
            return None
        if value.strip() == "any":
            return 1
        loc = self.attr_loc(element, "wait")
        match = _WAIT_N.fullmatch(value)
        if match is None or len(match.group(1)) > MAX_DIGITS:
            self.error(loc, f"invalid value {_shown(value)} for 'wait': expected all, any or n(K)")
            return None
        count = int(match.group(1))
        if not 1 <= count <= max(branches, 1):
            self.error(
                loc,
                f"invalid value {value!r} for 'wait': expected n(K) with 1 <= K <= {branches}, "
                "the number of branches",
            )
            return None
        return count

    def foreach(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(
            element, (*_COMMON_ATTRIBUTES, "collection", "item", "index", "concurrency")
        )
        common = self.common(element)
        collection = self.expression_attr(element, "collection", required=True)
        names = {"item": "item", "index": "index"}
        for which in names:
            value = element.attrs.get(which)
            if value is None:
                continue
            loc = self.attr_loc(element, which)
            if not _IDENTIFIER.fullmatch(value):
                self.error(
                    loc,
                    f"invalid value {value!r} for {which!r}: expected a name of letters, "
                    "digits and '_', not starting with a digit",
                )
            elif value in SCOPE_NAMES - {"item", "index"}:
                self.error(loc, f"invalid value {value!r} for {which!r}: it would hide {value!r}")
            else:
                names[which] = value
        if names["item"] == names["index"]:
            self.error(element.loc, f"'item' and 'index' must differ, both are {names['item']!r}")
        concurrency = self.int_attr(element, "concurrency", 1)
        body = self.nonempty_body(element, in_loop=True)
        if common is None or collection is None:
            return None
        return ForeachNode(
            **common,
            collection=collection,
            body=body,
            item=names["item"],
            index=names["index"],
            concurrency=concurrency,
        )

    def if_(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "condition"))
        self.check_no_text(element)
        common = self.common(element)
        condition = self.expression_attr(element, "condition", required=True)
        parts: dict[str, tuple[Node, ...]] = {}
        for child in element.children:
            if child.tag not in ("then", "else"):
                self.error(
                    child.loc, f"unexpected {child.name} inside <if>; expected <then> or <else>"
                )
            elif child.tag in parts:
                self.error(child.loc, f"more than one {child.name} in <if>")
            else:
                self.check_attributes(child, ())
                if child.tag == "then":
                    parts["then"] = self.nonempty_body(child, in_loop=in_loop)
                else:
                    parts["else"] = self.body(child, in_loop=in_loop)
        if "then" not in parts:
            self.error(element.loc, "<if> needs a <then>")
        if common is None or condition is None or "then" not in parts:
            return None
        return IfNode(
            **common, condition=condition, then=parts["then"], orelse=parts.get("else", ())
        )

    def branch(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, _COMMON_ATTRIBUTES)
        self.check_no_text(element)
        common = self.common(element)
        cases: list[Case] = []
        broken = False
        default: tuple[Node, ...] | None = None
        for child in element.children:
            if child.tag == "case":
                if default is not None:
                    self.error(child.loc, "<case> after <default>: <default> must come last")
                self.check_attributes(child, ("when",))
                when = self.expression_attr(child, "when", required=True)
                body = self.nonempty_body(child, in_loop=in_loop)
                if when is None:
                    broken = True
                else:
                    cases.append(Case(when=when, body=body, loc=child.loc))
            elif child.tag == "default":
                if default is not None:
                    self.error(child.loc, "more than one <default> in <branch>")
                    continue
                self.check_attributes(child, ())
                default = self.body(child, in_loop=in_loop)
            else:
                self.error(
                    child.loc,
                    f"unexpected {child.name} inside <branch>; expected <case> or <default>",
                )
        if not cases and not broken:
            self.error(element.loc, "<branch> needs at least one <case>")
        if common is None or not cases:
            return None
        if broken:
            self.complete = False
        return BranchNode(**common, cases=tuple(cases), default=default or ())

    def loop(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "max", "break"))
        common = self.common(element)
        maximum = None
        if self.required(element, "max") is not None:
            maximum = self.int_attr(element, "max", 1)
        break_when = self.expression_attr(element, "break", required=False)
        body = self.nonempty_body(element, in_loop=True)
        if common is None or maximum is None:
            return None
        return LoopNode(**common, max=maximum, body=body, break_when=break_when)

    def while_(self, element: _Element, in_loop: bool) -> Node | None:
        self.check_attributes(element, (*_COMMON_ATTRIBUTES, "condition", "max"))
        common = self.common(element)
        condition = self.expression_attr(element, "condition", required=True)
        maximum = self.int_attr(element, "max", 1)
        body = self.nonempty_body(element, in_loop=True)
        if common is None or condition is None:
            return None
        return WhileNode(**common, condition=condition, body=body, max=maximum or 1000)

    _BUILDERS: dict[str, Callable[[_Parser, _Element, bool], Node | None]] = {
        "source": task,
        "transform": task,
        "sink": task,
        "parallel": parallel,
        "foreach": foreach,
        "if": if_,
        "branch": branch,
        "loop": loop,
        "while": while_,
        "break": break_,
        "checkpoint": checkpoint,
        "delay": delay,
    }


def _string_leaves(node: yaml.Node) -> Iterator[yaml.ScalarNode]:
    """Every string scalar under ``node`` (mapping values and list items, not keys)."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR_TAG:
            yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _string_leaves(item)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            yield from _string_leaves(value)
