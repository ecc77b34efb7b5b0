"""Templates and expressions: sandboxed Jinja2, plus a static reference extractor.

Every config value and attribute of a workflow may hold Jinja2 template syntax;
conditions and per-item expressions may be written with or without ``{{ }}``.
Compilation happens once per distinct text (``functools.lru_cache``) and does
four things in order:

1. **Alias rewriting.** ``$config``, ``$secrets`` and ``$context`` are not
   valid Jinja, so a small scanner drops the ``$`` wherever it stands in code:
   inside ``{{ }}`` and ``{% %}`` blocks of a template, anywhere in a bare
   expression, but never inside string literals, comments or ``{% raw %}``
   blocks. Line numbers are unchanged by the rewrite.
2. **Parsing, limits and the sandbox check.** The text is parsed once with
   ``env.parse`` (or, for a bare expression, Jinja's expression parser); the
   lexer's tokens pass :func:`._sandbox.limit_tokens` first, which stops a
   text nesting too deeply before the recursive parser follows it. A text of
   only ``{{ expr }}`` tags is assembled from its expressions instead, each
   parsed and checked once however often it recurs (plain paths without
   Jinja's lexer at all); the tree is the one Jinja would build. The tree is
   then walked, iteratively and first: deeper than MAX_EXPRESSION_DEPTH,
   an unknown filter or test, attribute or item access to a name starting
   with ``_`` and ``{% import %}``/``{% include %}``/``{% extends %}`` are
   rejected before anything else walks it. The environment is the bounded
   :class:`~._sandbox.SafeEnvironment` (an ``ImmutableSandboxedEnvironment``:
   outputs are shared between nodes and must never be mutated); whatever it
   catches at run time is re-raised as :class:`SandboxError` too.
3. **Reference extraction.** The same AST yields :class:`References`: the
   free names a text reads and the literal node ids of ``nodes['x']``,
   ``nodes.x`` and ``nodes.get('x')``. The planner turns them into edges.
4. **Code generation, on first use.** A text that is exactly one
   ``{{ expr }}`` (ignoring surrounding whitespace) is compiled like
   ``env.compile_expression`` from the already-parsed AST, so rendering
   returns the *native* value (a list stays a list). Any other template
   renders to a string. Generating and compiling the Python code waits for
   the first render: reading a workflow only parses and checks. A text with
   no template syntax at all is *static*: rendering returns it unchanged
   without touching Jinja.

Undefined names and attributes fail loudly (``StrictUndefined``), including
an undefined value returned as, or directly inside, a native result.
Lazy results (generators from ``map``/``select``, ``range``) are materialised
as lists so that an output can be read more than once. Every render or
evaluation runs inside one :func:`._sandbox.evaluation` budget. No raw Jinja
exception escapes this module: compile problems raise :class:`ExpressionError`
with ``lineno``; evaluation problems raise it chained from the cause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

from jinja2 import Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateAssertionError, TemplateSyntaxError
from jinja2.parser import Parser

from . import _sandbox
from ._errors import ExpressionError, SandboxError
from ._limits import MAX_EXPRESSION_DEPTH

__all__ = [
    "NO_REFERENCES",
    "RESERVED_NAMES",
    "SCOPE_NAMES",
    "Expression",
    "References",
    "Template",
    "compile_expression",
    "compile_template",
    "expression_references",
    "is_template",
    "render_value",
    "template_references",
    "value_references",
]

SCOPE_NAMES: frozenset[str] = frozenset(
    {
        "input",
        "config",
        "secrets",
        "context",
        "nodes",
        "item",
        "index",
        "branch",
        "iteration",
        "error",
        "primary_input",
        "acc",
    }
)
"""Names the runtime itself may put in a scope; any other free name is a node id."""

_CACHE_SIZE = 4096
_REFERENCES_CACHE_SIZE = 1 << 16


# --- references -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class References:
    """What a template or expression reads, found statically.

    ``names`` are the free names read (aliases reported without ``$``), never
    names bound inside the text (``{% for %}``/``{% set %}``/``{% with %}``
    targets, macro arguments, ``loop``) nor Jinja globals such as ``range``.
    ``nodes`` are the literal ids of ``nodes['x']``, ``nodes.x`` and
    ``nodes.get('x')``. ``dynamic_nodes`` is true when ``nodes`` is used any
    other way (a computed key, iteration, ``nodes.items()``), so the set of
    nodes read cannot be known before running.
    """

    names: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    dynamic_nodes: bool = False

    EMPTY: ClassVar[References]

    def __or__(self, other: References) -> References:
        """The union of two reference sets."""
        if not (other.names or other.nodes or other.dynamic_nodes):
            return self
        if not (self.names or self.nodes or self.dynamic_nodes):
            return other
        return References(
            self.names | other.names,
            self.nodes | other.nodes,
            self.dynamic_nodes or other.dynamic_nodes,
        )


References.EMPTY = References()
NO_REFERENCES = References.EMPTY
"""The references of text that reads nothing (same object as ``References.EMPTY``)."""


# --- the environment ------------------------------------------------------------------

_ENV = _sandbox.environment()
_GLOBAL_NAMES = frozenset(_ENV.globals)

#: Names a node id may not take: the scope names, Jinja's globals and its
#: literal constants. A node called ``range`` could never be read as ``range.output``.
RESERVED_NAMES: frozenset[str] = (
    SCOPE_NAMES | _GLOBAL_NAMES | frozenset({"true", "false", "none", "True", "False", "None"})
)


# --- alias rewriting ------------------------------------------------------------------

_ALIAS = re.compile(r"\$(config|secrets|context)(?![A-Za-z0-9_])")
_TAG_OPEN = re.compile(r"\{\{|\{%|\{#")
_RAW_BEGIN = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_RAW_END = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_OPENING = "([{"
_CLOSING = ")]}"


def _rewrite_code(text: str, pos: int, closer: str | None) -> tuple[str, int]:
    """Rewrite aliases in code from ``pos`` up to ``closer`` at bracket depth 0 (or the end).

    Returns the rewritten code including the closer, and the index after it.
    Brackets are balanced as Jinja's lexer does, so ``{{ {'a': {}} }}`` ends
    at the last ``}}``.
    """
    out: list[str] = []
    depth = 0
    start = i = pos
    n = len(text)
    while i < n:
        char = text[i]
        if closer is not None and depth == 0 and text.startswith(closer, i):
            out.append(text[start : i + len(closer)])
            return "".join(out), i + len(closer)
        if char in "'\"":
            i += 1
            while i < n and text[i] != char:
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if char == "$" and (alias := _ALIAS.match(text, i)):
            out.append(text[start:i])
            start = i + 1
            i = alias.end()
            continue
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING and depth:
            depth -= 1
        i += 1
    out.append(text[start:])
    return "".join(out), n


def _rewrite_template(text: str) -> str:
    """``text`` with ``$config``/``$secrets``/``$context`` rewritten inside template code."""
    if "$" not in text:
        return text
    out: list[str] = []
    pos = 0
    while match := _TAG_OPEN.search(text, pos):
        start = match.start()
        out.append(text[pos:start])
        opener = match.group()
        if opener == "{#":
            end = text.find("#}", start + 2)
            pos = len(text) if end < 0 else end + 2
            out.append(text[start:pos])
        elif raw := _RAW_BEGIN.match(text, start):
            end_raw = _RAW_END.search(text, raw.end())
            pos = len(text) if end_raw is None else end_raw.end()
            out.append(text[start:pos])
        else:
            code, pos = _rewrite_code(text, start + 2, "}}" if opener == "{{" else "%}")
            out.append(opener)
            out.append(code)
    out.append(text[pos:])
    return "".join(out)


def _rewrite_expression(text: str) -> str:
    """A bare expression with the aliases rewritten outside string literals."""
    return _rewrite_code(text, 0, None)[0] if "$" in text else text


# --- static checks --------------------------------------------------------------------

_IMPORT_TAGS: dict[type[nodes.Node], str] = {
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
    nodes.Include: "include",
    nodes.Extends: "extends",
}
# Filters whose first positional argument names an attribute to look up.
_ATTRIBUTE_FILTERS = frozenset({"attr", "selectattr", "rejectattr", "groupby"})


def _unsafe(name: str, lineno: int) -> SandboxError:
    return SandboxError(f"unsafe access to {name!r} is not allowed in expressions", lineno=lineno)


def _check_attribute_argument(arg: nodes.Node) -> None:
    """Reject a literal attribute path with a private part (``'a.__class__'``)."""
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        for part in arg.value.split("."):
            if part.startswith("_"):
                raise _unsafe(part, arg.lineno)


def _post_order(tree: nodes.Node, kind: str, depth: int = 0) -> Iterator[nodes.Node]:
    """Every node of ``tree``, children first: in ``a.b.c`` the ``a.b`` comes before ``.c``.

    Iterative, and the first walk over a freshly parsed tree: it refuses a
    tree deeper than MAX_EXPRESSION_DEPTH before any recursive walker (the
    reference collector, Jinja's code generator, Python's compiler) sees it.
    """
    stack = [(tree, tree.iter_child_nodes())]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            yield node
        elif len(stack) + depth >= MAX_EXPRESSION_DEPTH:
            raise ExpressionError(
                f"{kind} too complex: it nests more than {MAX_EXPRESSION_DEPTH} levels deep "
                f"(each operator, filter, call, attribute or bracket is a level) "
                f"(line {child.lineno})",
                lineno=child.lineno,
            )
        else:
            stack.append((child, child.iter_child_nodes()))


def _check_tree(tree: nodes.Node, kind: str, depth: int = 0) -> None:
    """Check a parsed template or expression before anything else walks or compiles it.

    Raises ExpressionError for a tree nested too deeply or an unknown filter
    or test, and SandboxError for private attribute/item access or an import.
    The first offence in reading order is reported.
    """
    for node in _post_order(tree, kind, depth):
        if isinstance(node, nodes.Getattr | nodes.NSRef):
            if node.attr.startswith("_"):
                raise _unsafe(node.attr, node.lineno)
        elif isinstance(node, nodes.Getitem):
            key = node.arg
            if isinstance(key, nodes.Const) and str(key.value).startswith("_"):
                raise _unsafe(str(key.value), node.lineno)
        elif isinstance(node, nodes.Filter | nodes.Test):
            table, what = (
                (_ENV.filters, "filter") if isinstance(node, nodes.Filter) else (_ENV.tests, "test")
            )
            if node.name not in table:
                # What Jinja's code generator would say; it now runs only on first use.
                unknown = TemplateAssertionError(f"No {what} named {node.name!r}.", node.lineno)
                raise _syntax_error(kind, unknown)
            if node.name in _ATTRIBUTE_FILTERS and node.args:
                _check_attribute_argument(node.args[0])
            for keyword in node.kwargs:
                if keyword.key == "attribute":
                    _check_attribute_argument(keyword.value)
        elif (tag := _IMPORT_TAGS.get(type(node))) is not None:
            raise SandboxError(
                f"imports are not allowed in expressions: found {{% {tag} %}}",
                lineno=node.lineno,
            )


# --- reference extraction -------------------------------------------------------------

# ``nodes.<name>`` is a dict attribute, not a node id, when ``nodes`` is a dict.
_MAPPING_ATTRIBUTES = frozenset(name for name in dir(dict) if not name.startswith("_"))
_MACRO_NAMES = frozenset({"varargs", "kwargs", "caller"})


def _target_names(target: nodes.Node) -> set[str]:
    """Names bound by an assignment target (``x``, ``a, (b, c)``); NSRef binds none."""
    if isinstance(target, nodes.Name):
        return {target.name}
    if isinstance(target, nodes.Tuple):
        return {name for item in target.items for name in _target_names(item)}
    return set()


class _ReferenceCollector:
    """Walks a Jinja AST tracking locally bound names, as Jinja's own scoping does.

    ``bound`` sets passed around are the names bound at that point of the
    scope; statements of one scope are visited in order and may add to it.
    ``{% if %}`` shares its scope (a ``set`` in a branch stays visible after
    it); loops, macros, ``with`` and blocks get a copy.
    """

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.nodes: set[str] = set()
        self.dynamic_nodes = False

    def references(self) -> References:
        if not (self.names or self.nodes or self.dynamic_nodes):
            return References.EMPTY
        return References(frozenset(self.names), frozenset(self.nodes), self.dynamic_nodes)

    def statements(self, body: Iterable[nodes.Node], bound: set[str]) -> None:
        """Visit statements in order. Mutates ``bound`` with the names they bind."""
        for node in body:
            self.statement(node, bound)

    def statement(self, node: nodes.Node, bound: set[str]) -> None:
        if isinstance(node, nodes.For):
            self.expression(node.iter, bound)
            inner = bound | _target_names(node.target) | {"loop"}
            if node.test is not None:
                self.expression(node.test, inner)
            self.statements(node.body, inner)
            self.statements(node.else_, set(bound))
        elif isinstance(node, nodes.If):
            self.expression(node.test, bound)
            self.statements(node.body, bound)
            self.statements(node.elif_, bound)
            self.statements(node.else_, bound)
        elif isinstance(node, nodes.Assign):
            self.expression(node.node, bound)
            self.expression(node.target, bound)  # an NSRef target reads its namespace
            bound |= _target_names(node.target)
        elif isinstance(node, nodes.AssignBlock):
            self.statements(node.body, set(bound))
            if node.filter is not None:
                self.expression(node.filter, bound)
            self.expression(node.target, bound)
            bound |= _target_names(node.target)
        elif isinstance(node, nodes.With):
            for value in node.values:
                self.expression(value, bound)
            inner = set(bound)
            for target in node.targets:
                inner |= _target_names(target)
            self.statements(node.body, inner)
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            if isinstance(node, nodes.CallBlock):
                self.expression(node.call, bound)
            for default in node.defaults:
                self.expression(default, bound)
            inner = bound | _MACRO_NAMES | {arg.name for arg in node.args}
            if isinstance(node, nodes.Macro):
                inner.add(node.name)  # a macro may call itself
            self.statements(node.body, inner)
            if isinstance(node, nodes.Macro):
                bound.add(node.name)
        else:
            # Output, FilterBlock, Block, scopes: expressions in the current
            # scope, nested statements in a copy of it.
            for child in node.iter_child_nodes():
                if isinstance(child, nodes.Stmt):
                    self.statement(child, set(bound))
                else:
                    self.expression(child, bound)

    def _is_scope_nodes(self, node: nodes.Node, bound: set[str]) -> bool:
        return isinstance(node, nodes.Name) and node.name == "nodes" and "nodes" not in bound

    def expression(self, node: nodes.Node, bound: set[str]) -> None:
        if isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name not in bound and node.name not in _GLOBAL_NAMES:
                self.names.add(node.name)
                if node.name == "nodes":
                    self.dynamic_nodes = True  # bare ``nodes``: iterated, filtered, ...
            return
        if isinstance(node, nodes.NSRef):
            if node.name not in bound:
                self.names.add(node.name)
            return
        if isinstance(node, nodes.Getattr) and self._is_scope_nodes(node.node, bound):
            self.names.add("nodes")
            if node.attr in _MAPPING_ATTRIBUTES:
                self.dynamic_nodes = True
            else:
                self.nodes.add(node.attr)
            return
        if isinstance(node, nodes.Getitem) and self._is_scope_nodes(node.node, bound):
            self.names.add("nodes")
            self._node_key(node.arg, bound)
            return
        if (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr == "get"
            and self._is_scope_nodes(node.node.node, bound)
        ):
            self.names.add("nodes")
            if node.args:
                self._node_key(node.args[0], bound)
                rest: list[nodes.Node] = list(node.args[1:])
            else:
                self.dynamic_nodes = True
                rest = []
            rest.extend(node.kwargs)
            rest.extend(n for n in (node.dyn_args, node.dyn_kwargs) if n is not None)
            for child in rest:
                self.expression(child, bound)
            return
        for child in node.iter_child_nodes():
            self.expression(child, bound)

    def _node_key(self, key: nodes.Node, bound: set[str]) -> None:
        if isinstance(key, nodes.Const) and isinstance(key.value, str):
            self.nodes.add(key.value)
        else:
            self.dynamic_nodes = True
            self.expression(key, bound)


def _collect_references(tree: nodes.Node) -> References:
    collector = _ReferenceCollector()
    if isinstance(tree, nodes.Template):
        collector.statements(tree.body, set())
    else:
        collector.expression(tree, set())
    return collector.references()


# --- compilation ----------------------------------------------------------------------


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _syntax_error(kind: str, exc: TemplateSyntaxError) -> ExpressionError:
    """An ExpressionError for a Jinja compile-time error; ``lineno`` counts from 1 in the text."""
    # The code generator's errors (unknown filter) are not about syntax.
    if isinstance(exc, _sandbox.TooComplex):
        what = f"{kind} too complex"
    elif isinstance(exc, TemplateAssertionError):
        what = f"invalid {kind}"
    else:
        what = f"invalid {kind} syntax"
    detail = _one_line(exc.message or str(exc))
    return ExpressionError(f"{what}: {detail} (line {exc.lineno})", lineno=exc.lineno)


def _literal_depth(node: nodes.Node) -> int:
    """How deeply list/tuple/dict literals nest in an expression."""
    below = max((_literal_depth(child) for child in node.iter_child_nodes()), default=0)
    return below + 1 if isinstance(node, nodes.List | nodes.Tuple | nodes.Dict) else below


def _is_path(node: nodes.Node) -> bool:
    """True for ``a``, ``a.b``, ``a['b'].c``, constants: they only read existing values."""
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Const):
            return False
        node = node.node
    return isinstance(node, nodes.Name | nodes.Const)


def _find_undefined(value: Any, depth: int) -> Undefined | None:
    """An Undefined in ``value`` or in its list/tuple/dict items down to ``depth`` levels.

    Each container is looked into once, however often the value shares it.
    """
    seen: set[int] = set()
    stack = [(value, depth)]
    while stack:
        item, levels = stack.pop()
        if isinstance(item, Undefined):
            return item
        if levels <= 0 or id(item) in seen:
            continue
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        seen.add(id(item))
        stack.extend((child, levels - 1) for child in reversed(list(children)))
    return None


def _raise_undefined(value: Undefined) -> NoReturn:
    """Raise the error a StrictUndefined carries (UndefinedError, or SecurityError)."""
    str(value)  # StrictUndefined raises its stored error on any use
    raise AssertionError("unreachable: StrictUndefined did not raise")  # pragma: no cover


def _native_program(expr: nodes.Expr) -> Callable[[Mapping[str, Any]], Any]:
    """Compile one expression AST to a function returning its native value.

    This is what ``env.compile_expression`` does, minus the second parse and
    with ``undefined_to_none=False`` so an undefined result raises instead of
    silently becoming None.
    """
    # Path expressions return scope values (never holding Undefined) or one
    # Undefined; results built by literals or filters are scanned as deep as
    # the literals nest (at least one level, for ``map(attribute=...)``).
    depth = 0 if _is_path(expr) else max(1, _literal_depth(expr))
    assign = nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)
    tree = nodes.Template([assign], lineno=1)
    tree.set_environment(_ENV)
    evaluate = TemplateExpression(_ENV.from_string(tree), undefined_to_none=False)

    path = _is_path(expr)

    def run(scope: Mapping[str, Any]) -> Any:
        value = evaluate(scope)
        if isinstance(value, Iterator | range):
            value = list(value)
        if (undefined := _find_undefined(value, depth)) is not None:
            _raise_undefined(undefined)
        if not path:  # a path returns a value from the scope: nothing new to check
            _sandbox.check_result(value)
        return value

    return run


def _text_program(tree: nodes.Template) -> Callable[[Mapping[str, Any]], Any]:
    """Compile a template AST to a function rendering it to a string."""
    return _ENV.from_string(tree).render


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is exactly one ``{{ expr }}`` plus whitespace."""
    if len(tree.body) != 1 or not isinstance(output := tree.body[0], nodes.Output):
        return None
    found: nodes.Expr | None = None
    for node in output.nodes:
        if isinstance(node, nodes.TemplateData):
            if node.data.strip():
                return None
        elif found is None:
            found = node
        else:
            return None
    return found


def _parse_template(text: str, kind: str) -> tuple[nodes.Template, References]:
    """The checked tree of a template and what it reads."""
    source = _rewrite_template(text)
    try:
        parsed = _parse_outputs(source, kind)
        if parsed is not None:
            return parsed
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(kind, exc) from None
    except RecursionError:  # pragma: no cover - the lexer's limits stop this first
        raise _too_complex(kind) from None
    _check_tree(tree, kind)
    return tree, _collect_references(tree)


def _parse_outputs(source: str, kind: str) -> tuple[nodes.Template, References] | None:
    """What Jinja would parse from text that has only ``{{ expr }}`` tags, or None.

    This is the common case (``path="{{ config.out }}/x.json"``), and most
    such expressions recur across a workflow's nodes, so each one is parsed,
    checked and has its references collected once
    (:func:`_parse_output_expression`); the template's tree is assembled
    around them: the same ``Output`` of ``TemplateData`` and expressions that
    Jinja's parser builds (tests/test_expr.py compares the two). Anything
    else (blocks, comments, whitespace control, a carriage return, an
    unclosed tag, an expression Jinja would reject) returns None, and Jinja
    parses the text itself.
    """
    if "{{" not in source or "{%" in source or "{#" in source or "\r" in source:
        return None
    pieces: list[nodes.Node] = []
    references = References.EMPTY
    position = line = 0  # line: the line breaks before ``position``
    while (start := source.find("{{", position)) >= 0:
        if start > position:
            pieces.append(nodes.TemplateData(source[position:start], lineno=line + 1))
            line += source.count("\n", position, start)
        end = _output_end(source, start + 2)
        if end is None:
            return None  # unclosed or unbalanced: Jinja's to read and to word
        code = source[start + 2 : end - 2]
        if code[:1] in "-+" or code[-1:] in "-+":
            return None  # whitespace control
        parsed = _parse_output_expression(code, line, kind)
        if parsed is None:
            return None
        expression, read = parsed
        pieces.append(expression)
        references |= read
        line += source.count("\n", start, end)
        position = end
    if position < len(source):
        pieces.append(nodes.TemplateData(source[position:], lineno=line + 1))
    tree = nodes.Template([nodes.Output(pieces, lineno=1)], lineno=1)
    tree.environment = _ENV
    tree.body[0].environment = _ENV
    for piece in pieces:
        piece.environment = _ENV
    return tree, references


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _output_end(source: str, position: int) -> int | None:
    """The index after the ``}}`` closing the ``{{`` before ``position``, as Jinja's lexer
    finds it (brackets balanced, string literals skipped); None if Jinja would complain."""
    expected: list[str] = []
    length = len(source)
    while position < length:
        char = source[position]
        if char in "'\"":
            position += 1
            while position < length and source[position] != char:
                position += 2 if source[position] == "\\" else 1
            if position >= length:
                return None
        elif not expected and source.startswith("}}", position):
            return position + 2
        elif char in _PAIRS:
            expected.append(_PAIRS[char])
        elif char in ")]}" and (not expected or expected.pop() != char):
            return None
        position += 1
    return None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_output_expression(
    code: str, line: int, kind: str
) -> tuple[nodes.Expr, References] | None:
    """The checked expression of one ``{{ code }}`` after ``line`` line breaks, and what it
    reads; None if Jinja's parser should word the error.

    Shared by every template holding it: nothing changes an expression's tree
    once parsed (the optimizer is off; the sandbox instruments loops only).
    Raises ExpressionError or SandboxError as _check_tree does.
    """
    expression = _parse_path(code, line + 1)
    if expression is None:
        parser = Parser(_ENV, "\n" * line + code, state="variable")
        try:
            expression = parser.parse_expression()
        except TemplateSyntaxError:
            return None
        if not parser.stream.eos:
            return None
    # The expression sits two levels down: Template, Output, expression.
    _check_tree(expression, kind, depth=2)
    expression.set_environment(_ENV)
    return expression, _collect_references(expression)


_PATH_START = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)")
_PATH_STEP = re.compile(
    r"[ \t]*(?:\.[ \t]*([A-Za-z_][A-Za-z0-9_]*)"  # .name
    r"""|\[[ \t]*(?:'([^'\\\n]*)'|"([^"\\\n]*)"|(0|[1-9][0-9]{0,17}))[ \t]*\])"""  # [key]
)
_PATH_END = re.compile(r"[ \t]*")
_NOT_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else"}
)


def _parse_path(code: str, lineno: int) -> nodes.Expr | None:
    """The tree Jinja parses from a plain path (``a``, ``a.b``, ``a['b'][0]``), or None.

    Paths are most of the expressions a workflow writes (``t12.output``,
    ``nodes['x'].output``, ``config.threshold``) and are read here at a
    fraction of the cost of Jinja's lexer and parser; tests compare the
    trees. Anything else, a line break included, is left to Jinja.
    """
    match = _PATH_START.match(code)
    if match is None or match.group(1) in _NOT_NAMES:
        return None
    node: nodes.Expr = nodes.Name(match.group(1), "load", lineno=lineno)
    position = match.end()
    while step := _PATH_STEP.match(code, position):
        attribute, single, double, number = step.groups()
        if attribute is not None:
            node = nodes.Getattr(node, attribute, "load", lineno=lineno)
        else:
            key: str | int = (
                int(number) if number is not None else (single if single is not None else double)
            )
            node = nodes.Getitem(node, nodes.Const(key, lineno=lineno), "load", lineno=lineno)
        position = step.end()
    if _PATH_END.match(code, position).end() != len(code):  # type: ignore[union-attr]
        return None
    return node


def _parse_bare_expression(text: str) -> nodes.Expr:
    """Parse an expression written without braces; raises TemplateSyntaxError."""
    parser = Parser(_ENV, _rewrite_expression(text), state="variable")
    try:
        expr = parser.parse_expression()
    except RecursionError:  # pragma: no cover - the lexer's limits stop this first
        raise _too_complex("expression") from None
    if not parser.stream.eos:
        parser.fail("unexpected text after the expression", parser.stream.current.lineno)
    return expr


def _too_complex(kind: str) -> ExpressionError:
    return ExpressionError(f"{kind} too complex: it nests too deeply to compile")


def _evaluation_error(source: str, exc: Exception) -> ExpressionError:
    if isinstance(exc, ExpressionError):
        message = str(exc)
    else:
        message = _one_line(str(exc)) or type(exc).__name__
    error_type = SandboxError if isinstance(exc, SecurityError | SandboxError) else ExpressionError
    return error_type(f"error evaluating {_shown(source)}: {message}")


def _shown(source: str) -> str:
    """``repr(source)``, cut for a one-line message when it is long."""
    text = repr(source)
    return text if len(text) <= 200 else f"{text[:160]}... ({len(source)} characters)"


class _Program:
    """A parsed template's code, generated on first use (validation never needs it).

    Generating and compiling Python code costs several times what parsing
    does, so :func:`compile_template` stops at the checked syntax tree. The
    tree is instrumented for the sandbox's loop budget once, here, and never
    changed again: two threads racing on the first use both compile it, and
    either result is fine.
    """

    __slots__ = ("_kind", "_run", "_tree")

    def __init__(self, tree: nodes.Template | nodes.Expr, kind: str, *, loops: bool) -> None:
        if loops:  # a {% for %} can only be written in a {% %} tag
            _sandbox.instrument(tree)
        self._tree = tree
        self._kind = kind
        self._run: Callable[[Mapping[str, Any]], Any] | None = None

    def __call__(self, scope: Mapping[str, Any]) -> Any:
        run = self._run
        if run is None:
            run = self._run = self._compile()
        with _sandbox.evaluation():
            return run(scope)

    def _compile(self) -> Callable[[Mapping[str, Any]], Any]:
        tree = self._tree
        expr = _single_expression(tree) if isinstance(tree, nodes.Template) else tree
        try:
            if expr is not None:
                run = _native_program(expr)
            else:
                assert isinstance(tree, nodes.Template)
                run = _text_program(tree)
        except TemplateSyntaxError as exc:
            raise _syntax_error(self._kind, exc) from None
        except (SyntaxError, RecursionError, MemoryError):  # pragma: no cover - limits first
            raise _too_complex(self._kind) from None
        return run


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """A compiled config value or attribute; get one from :func:`compile_template`.

    ``is_static`` texts have no template syntax and render to themselves.
    ``is_expression`` texts are exactly one ``{{ expr }}`` (surrounding
    whitespace ignored) and render to the native value; all others render to
    a string.
    """

    source: str
    is_static: bool
    is_expression: bool
    references: References
    # None exactly when is_static.
    _program: Callable[[Mapping[str, Any]], Any] | None = field(default=None, repr=False)

    def render(self, scope: Mapping[str, Any]) -> Any:
        """Render with the names in ``scope``.

        Raises ExpressionError if evaluation fails (undefined name, bad
        operand, failing filter) and SandboxError for an unsafe operation.
        """
        program = self._program
        if program is None:
            return self.source
        try:
            return program(scope)
        except Exception as exc:
            raise _evaluation_error(self.source, exc) from exc


@dataclass(frozen=True, slots=True, eq=False)
class Expression:
    """A compiled expression or condition; get one from :func:`compile_expression`."""

    source: str
    references: References
    _program: Callable[[Mapping[str, Any]], Any] = field(repr=False)

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """The native value of the expression with the names in ``scope``.

        Raises ExpressionError if evaluation fails and SandboxError for an
        unsafe operation.
        """
        try:
            return self._program(scope)
        except Exception as exc:
            raise _evaluation_error(self.source, exc) from exc

    def test(self, scope: Mapping[str, Any]) -> bool:
        """The truthiness of :meth:`evaluate`, for conditions."""
        return bool(self.evaluate(scope))


def is_template(text: str) -> bool:
    """True if ``text`` contains template syntax: ``{{``, ``{%`` or ``{#``."""
    return "{{" in text or "{%" in text or "{#" in text


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_template(text: str) -> Template:
    """Compile a config value or attribute; the same text returns the same object.

    Raises ExpressionError (with ``lineno``) for a syntax error or an unknown
    filter, and SandboxError for private attribute access or imports.
    """
    if not is_template(text):
        return Template(text, is_static=True, is_expression=False, references=References.EMPTY)
    tree, references = _parse_template(text, "template")
    return Template(
        text,
        is_static=False,
        is_expression=_single_expression(tree) is not None,
        references=references,
        _program=_Program(tree, "template", loops="{%" in text),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_expression(text: str) -> Expression:
    """Compile an expression written with or without braces (``a > 1``, ``{{ a > 1 }}``).

    The same text returns the same object. Text around the braces, several
    ``{{ }}`` blocks or ``{% %}`` statements raise ExpressionError; so does a
    syntax error (with ``lineno``). Unsafe access raises SandboxError.
    """
    stripped = text.strip()
    if not stripped:
        raise ExpressionError(
            f"empty expression {text!r}: write e.g. 'item.active' or '{{{{ item.active }}}}'"
        )
    not_single = ExpressionError(
        f"{text!r} must be a single expression, e.g. 'item.active' or '{{{{ item.active }}}}'"
    )
    if stripped.startswith("{{") and stripped.endswith("}}"):
        tree, references = _parse_template(text, "expression")
        if _single_expression(tree) is None:
            raise not_single
        return Expression(text, references, _Program(tree, "expression", loops=False))
    try:
        expr = _parse_bare_expression(text)
    except TemplateSyntaxError as exc:
        if is_template(stripped):
            raise not_single from None
        raise _syntax_error("expression", exc) from None
    _check_tree(expr, "expression")
    return Expression(text, _collect_references(expr), _Program(expr, "expression", loops=False))


@functools.lru_cache(maxsize=_REFERENCES_CACHE_SIZE)
def template_references(text: str) -> References:
    """What a config value or attribute reads; raises as :func:`compile_template` does.

    Cached apart from the compiled templates and many times deeper, so that
    checking a workflow of tens of thousands of nodes compiles each text once.
    """
    return compile_template(text).references


@functools.lru_cache(maxsize=_REFERENCES_CACHE_SIZE)
def expression_references(text: str) -> References:
    """What an expression or condition reads; raises as :func:`compile_expression` does."""
    return compile_expression(text).references


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render every string leaf of nested dicts, lists and tuples with ``scope``.

    Containers are rebuilt (dict keys are not rendered); other values are
    returned as they are.
    """
    if isinstance(value, str):
        return compile_template(value).render(scope)
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, scope) for item in value]
    if isinstance(value, tuple):
        return tuple(render_value(item, scope) for item in value)
    return value


def value_references(value: Any) -> References:
    """The union of the references of every string leaf of a nested dict/list/tuple value."""
    if isinstance(value, str):
        return template_references(value)
    if isinstance(value, dict):
        items: Iterable[Any] = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return References.EMPTY
    result = References.EMPTY
    for item in items:
        result |= value_references(item)
    return result
