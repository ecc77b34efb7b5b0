"""The environment templates run in: what they may touch, and how much they may build.

It is Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` (no
attribute starting with ``_``, no ``mro``, frames or code objects, no method
that mutates a list, dict or set, ``str.format`` checked field by field),
tightened in three ways.

**Names.** Templates see their scope (``input``, ``config``, declared
``secrets``, ``context``, node outputs...) and the globals ``range``,
``dict``, ``cycler``, ``joiner`` and ``namespace``; ``lipsum`` is removed.
None of these reaches a module, a frame or ``os.environ``.

**Nothing runs at compile time.** Jinja folds constant expressions while it
compiles (``nodes.Expr.as_const``), so ``{{ 'a' * 10**9 }}`` would build its
gigabyte inside ``parse_workflow``. Here the optimizer is off, the operators
that can grow a value (``*``, ``**``, ``%``, ``+``) are *intercepted* (Jinja
never folds those and routes them through :meth:`call_binop`), and every
filter refuses to run outside an evaluation (a fold attempt then falls back
to run time). Validating a workflow never evaluates a template.

**Bounded evaluation.** Each evaluation (one render of a template, one
evaluation of an expression) carries a :class:`Budget` in a context
variable. Every operation that can grow a value estimates what it would
create *before* creating it and refuses past :data:`~._limits.MAX_SIZE`
characters or items: ``*`` and ``+`` on strings and lists, ``**`` and ``*``
on integers (at most :data:`~._limits.MAX_DIGITS` digits), ``%`` and
``format`` (the sum of widths and precisions; ``*`` widths are refused),
``str.format`` fields, ``center``/``indent``/``wordwrap``/``replace``/
``join``/``batch``/``slice``/``tojson``/``pprint``, string methods such as
``ljust``, ``zfill``, ``expandtabs``, ``replace`` and ``join``, and any
integer argument of a built-in. A value may share one part many times
(``[big] * 1000`` is one list of 1000 references), so turning a value into
text (output, ``~``, string filters) first measures its *expanded* size
(:func:`measure`, linear in its distinct parts), and a native result whose
sharing would add more than MAX_SIZE when written out (a snapshot, JSON)
is refused (:func:`check_result`). Loop iterations, filters and calls count
against :data:`~._limits.MAX_STEPS`; what is created, and what is read by an
operation whose cost grows with it (a comparison, ``in``, a slice, a filter
or test on a value, ``str.count`` and the like), against
:data:`~._limits.MAX_WORK`; nested calls against
:data:`~._limits.MAX_CALL_DEPTH`. Past any limit, :class:`LimitExceeded` (a
``SecurityError``) is raised, which :mod:`._expr` reports as
:class:`~._errors.SandboxError`.

**Static limits.** :func:`limit_tokens` sits between Jinja's lexer and its
parser (the environment's ``_tokenize``) and stops a template that nests
too deeply before the recursive-descent parser follows it.

Hooks the generated code calls (:class:`_CodeGenerator` and
:func:`instrument` emit them): ``environment.text`` around every piece of
output, ``environment.join_text`` for ``~``, ``environment.read`` around
each operand of a comparison, ``environment.cut`` for a slice, and
``environment.tick`` (a property) at the top of every loop body and in a
loop's ``if`` filter.
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import FILTERS
from jinja2.lexer import TokenStream
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.tests import TESTS
from jinja2.utils import Namespace, pass_environment
from markupsafe import EscapeFormatter, Markup

from ._limits import (
    MAX_CALL_DEPTH,
    MAX_DIGITS,
    MAX_SIZE,
    MAX_STEPS,
    MAX_TEMPLATE_BLOCKS,
    MAX_TEMPLATE_NESTING,
    MAX_WORK,
)

__all__ = [
    "MAX_RANGE",
    "Budget",
    "LimitExceeded",
    "SafeEnvironment",
    "TooComplex",
    "check_result",
    "environment",
    "evaluation",
    "expanded_size",
    "instrument",
    "limit_tokens",
    "measure",
]

#: Items a ``range()`` may have.
MAX_RANGE = 100_000
#: Steps a call (a macro, method or function) costs; a loop iteration or a filter costs one.
CALL_STEPS = 10


class LimitExceeded(SecurityError):
    """Raised when a template would exceed one of the sandbox's limits."""


class TooComplex(TemplateSyntaxError):
    """Raised while lexing a template that nests too deeply or holds too long an integer."""


class _NotEvaluating(Exception):
    """Raised by a filter called outside an evaluation: Jinja trying to fold it."""


@dataclass(slots=True)
class Budget:
    """What one evaluation has used so far."""

    steps: int = 0  # loop iterations and filters (one each), calls (CALL_STEPS each)
    work: int = 0  # characters and items created, or read by a scan
    depth: int = 0  # calls currently nested

    def step(self, steps: int = 1) -> None:
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise LimitExceeded(
                f"too much work: more than {MAX_STEPS:,} steps (loop iterations, filters and calls)"
            )

    def charge(self, amount: int) -> None:
        self.work += amount
        if self.work > MAX_WORK:
            raise LimitExceeded(
                f"too much work: more than {MAX_WORK:,} characters and items created or read"
            )


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "wavecrest_template_budget", default=None
)


def evaluation() -> _Evaluation:
    """A context manager giving the code inside it a fresh :class:`Budget`."""
    return _Evaluation()


class _Evaluation:
    __slots__ = ("_token",)

    def __enter__(self) -> Budget:
        budget = Budget()
        self._token = _BUDGET.set(budget)
        return budget

    def __exit__(self, *_exc: object) -> None:
        _BUDGET.reset(self._token)


def _budget() -> Budget:
    budget = _BUDGET.get()
    if budget is None:
        raise _NotEvaluating("not inside an evaluation")
    return budget


# --- sizes ----------------------------------------------------------------------------

_TEXT = (str, bytes, bytearray)
_SEQUENCES = (str, bytes, bytearray, list, tuple)
_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)


def _size(value: Any) -> int:
    """Characters or items of ``value`` itself (1 for a scalar)."""
    if isinstance(value, str | bytes | bytearray | list | tuple | dict | set | frozenset | range):
        return len(value)
    return 1


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    if isinstance(value, Namespace):
        attrs: dict[str, Any] = object.__getattribute__(value, "_Namespace__attrs")
        return list(attrs.values())
    children: Iterable[Any] = value
    return children


def measure(value: Any) -> tuple[int, int]:
    """``(expanded, distinct)``: characters and items of ``value`` with a part shared ``n``
    times counted ``n`` times, and with each distinct part counted once.

    ``expanded`` is about what turning ``value`` into text (or a snapshot)
    would produce. Each distinct container is visited once, so the cost is
    that of the distinct parts however often they are shared (a cycle back
    into a container counts nothing more); it is charged to the budget.
    """
    if isinstance(value, _TEXT):
        return len(value), len(value)
    if not isinstance(value, _CONTAINERS):
        return 1, 1
    sizes: dict[int, int] = {}  # id -> expanded size; 0 while its children are walked
    texts: set[int] = set()  # ids of the long strings already counted as distinct
    stack: list[tuple[Any, bool]] = [(value, False)]
    distinct = 0
    while stack:
        item, walked = stack.pop()
        key = id(item)
        if walked:
            total = 1
            for child in _children(item):
                if isinstance(child, _TEXT):
                    total += len(child)
                elif isinstance(child, _CONTAINERS):
                    total += sizes[id(child)]
                else:
                    total += 1
            sizes[key] = total
        elif key not in sizes:
            sizes[key] = 0
            stack.append((item, True))
            distinct += 1
            for child in _children(item):
                if isinstance(child, _CONTAINERS):
                    if id(child) not in sizes:
                        stack.append((child, False))
                elif isinstance(child, _TEXT) and len(child) > 64:
                    if id(child) not in texts:
                        texts.add(id(child))
                        distinct += len(child)
                else:
                    distinct += len(child) if isinstance(child, _TEXT) else 1
    _budget().charge(distinct)
    return sizes[id(value)], distinct


def expanded_size(value: Any) -> int:
    """What turning ``value`` into text would produce, about (see :func:`measure`)."""
    return measure(value)[0]


def check_result(value: Any) -> None:
    """Refuse a result whose shared parts would expand past MAX_SIZE when written out.

    ``[big] * n`` or ``batch(n, big)`` hold ``big`` ``n`` times for the price
    of one; a snapshot or a JSON document would write it out ``n`` times.
    """
    if isinstance(value, _CONTAINERS):
        expanded, distinct = measure(value)
        if expanded - distinct > MAX_SIZE:
            raise LimitExceeded(
                f"this result repeats shared values {expanded - distinct:,} items' worth: "
                f"at most {MAX_SIZE:,} are allowed (it would be {expanded:,} when written out)"
            )


def _refuse(what: str, size: int, unit: str = "characters") -> LimitExceeded:
    return LimitExceeded(f"{what} would create {size:,} {unit}: at most {MAX_SIZE:,} are allowed")


def _check_size(what: str, size: int, unit: str = "characters") -> None:
    if size > MAX_SIZE:
        raise _refuse(what, size, unit)


def _unit(value: Any) -> str:
    return "characters" if isinstance(value, _TEXT) else "items"


def _created(value: Any, what: str) -> Any:
    """Charge a value just created (``what`` names its maker) and refuse one too big."""
    size = _size(value)
    if size > MAX_SIZE:
        raise _refuse(what, size, _unit(value))
    _budget().charge(size)
    return value


def _as_text(value: Any) -> str:
    """``str(value)``, after checking what the conversion would produce."""
    if isinstance(value, str):
        return value
    if isinstance(value, _CONTAINERS):
        _check_size("printing this value", expanded_size(value))
    return str(value)


# --- operators ------------------------------------------------------------------------

# %[(key)][flags][width][.precision][length]type, as str % args reads it.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([diouxXeEfFgGcrsa%])?")
_DIGIT_RUN = re.compile(r"\d+")


def _check_printf(template: str, args: Any) -> None:
    """Refuse a ``%`` format whose widths and precisions would create too much text."""
    total = len(template)
    for match in _PRINTF.finditer(template):
        width, precision = match.group(1), match.group(2)
        if "*" in (width, precision):
            raise LimitExceeded("a '*' width or precision is not allowed in templates")
        for number in (width, precision):
            if number:
                if len(number) > 8:
                    raise _refuse("this format", 10 ** len(number))
                total += int(number)
    _check_size("this format", total)
    values = (
        args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
    )
    for value in values:
        _check_size("printing this value", expanded_size(value))


def _binop(operator: str, left: Any, right: Any) -> None:
    """Check ``left operator right`` before it runs."""
    if operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and abs(left) > 1
            and (digits := right * math.log10(abs(left))) > MAX_DIGITS
        ):
            raise LimitExceeded(
                f"{left!r} ** {right!r} would have about {digits:,.0f} digits: "
                f"at most {MAX_DIGITS} are allowed"
            )
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left and right and math.log10(abs(left)) + math.log10(abs(right)) > MAX_DIGITS:
                raise LimitExceeded(
                    f"this product would have more than {MAX_DIGITS} digits: "
                    f"at most {MAX_DIGITS} are allowed"
                )
            return
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(count, int) and isinstance(sequence, _SEQUENCES) and count > 0:
            size = len(sequence) * count
            _check_size(
                f"repeating a {type(sequence).__name__} {count:,} times", size, _unit(sequence)
            )
    elif operator == "%":
        if isinstance(left, str):
            _check_printf(left, right)
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        _check_size("this sum", len(left) + len(right), _unit(left))


# --- filters --------------------------------------------------------------------------

FilterCheck = Callable[[Any, Sequence[Any], Mapping[str, Any]], None]


def _arg(
    args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any
) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _number(value: Any, what: str, unit: str = "characters") -> int:
    if isinstance(value, int) and value > MAX_SIZE:
        raise _refuse(what, value, unit)
    return value if isinstance(value, int) else 0


def _check_center(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    _number(_arg(args, kwargs, 0, "width", 80), "'center'")


def _check_indent(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    width = _arg(args, kwargs, 0, "width", 4)
    pad = len(width) if isinstance(width, str) else _number(width, "'indent'")
    text = _as_text(value)
    _check_size("'indent'", len(text) + (text.count("\n") + 1) * pad)


def _check_wordwrap(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    wrapstring = _arg(args, kwargs, 2, "wrapstring", None)
    extra = len(wrapstring) if isinstance(wrapstring, str) else 1
    _check_size("'wordwrap'", len(_as_text(value)) * (1 + extra))


def _check_replace(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    text = _as_text(value)
    old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
    _check_replaced(text, old, new, _arg(args, kwargs, 2, "count", None), "'replace'")


def _check_replaced(text: Any, old: Any, new: Any, count: Any, what: str) -> None:
    if not isinstance(old, _TEXT) or not isinstance(new, _TEXT):
        return
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _check_size(what, len(text) + found * max(0, len(new) - len(old)))


def _check_format(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    _check_printf(_as_text(value), dict(kwargs) if kwargs else tuple(args))


def _check_batch(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    count = _number(_arg(args, kwargs, 0, "linecount", 1), "'batch'", "items")
    _check_size("'batch'", _size(value) + count, "items")


def _check_slice(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    count = _number(_arg(args, kwargs, 0, "slices", 1), "'slice'", "items")
    _check_size("'slice'", _size(value) + count, "items")


def _check_dump(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    indent = _arg(args, kwargs, 0, "indent", None)
    factor = 2 + (_number(indent, "this indent") if isinstance(indent, int) else 0)
    _check_size("printing this value", expanded_size(value) * factor)


def _check_text(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    _as_text(value)  # these filters turn their value into text first


_FILTER_CHECKS: dict[str, FilterCheck] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "format": _check_format,
    "batch": _check_batch,
    "slice": _check_slice,
    "tojson": _check_dump,
    "pprint": _check_dump,
    **dict.fromkeys(
        (
            "capitalize",
            "e",
            "escape",
            "forceescape",
            "lower",
            "safe",
            "string",
            "striptags",
            "title",
            "trim",
            "truncate",
            "upper",
            "urlencode",
            "urlize",
            "wordcount",
        ),
        _check_text,
    ),
}


#: Filters whose cost does not grow with their value: they are not charged its size.
_CONSTANT_FILTERS = frozenset(
    {
        "length",
        "count",
        "first",
        "last",
        "default",
        "d",
        "attr",
        "random",
        "abs",
        "int",
        "float",
        "round",
        "filesizeformat",
        "safe",
    }
)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing to run outside an evaluation, checked before it runs, charged for
    the value it reads (it may scan it) and for what it creates."""
    passes = getattr(func, "jinja_pass_arg", None) is not None
    check = _FILTER_CHECKS.get(name)
    scans = name not in _CONSTANT_FILTERS
    what = f"the {name!r} filter"

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        values = args[1:] if passes else args
        if values:
            if scans:
                budget.charge(_size(values[0]))
            if check is not None:
                check(values[0], values[1:], kwargs)
        return _created(func(*args, **kwargs), what)

    return bounded


def _bounded_test(func: Callable[..., Any]) -> Callable[..., Any]:
    """A test, refusing to run outside an evaluation and charged for what it reads."""
    passes = getattr(func, "jinja_pass_arg", None) is not None

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        budget.charge(sum(_size(value) for value in (args[1:] if passes else args)))
        return func(*args, **kwargs)

    return bounded


@pass_environment
def _sum(
    environment: SafeEnvironment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja's ``sum``, adding with the checked ``+`` (summing lists cannot go quadratic)."""
    from jinja2.filters import make_attrgetter

    getter = make_attrgetter(environment, attribute) if attribute is not None else None
    total = start
    for item in iterable:
        total = environment.call_binop(None, "+", total, getter(item) if getter else item)
    return total


@pass_environment
def _join(
    environment: SafeEnvironment, value: Iterable[Any], d: str = "", attribute: Any = None
) -> str:
    """Jinja's ``join`` (without autoescaping), refusing a result that would be too long."""
    from jinja2.filters import make_attrgetter

    items: Iterable[Any] = value
    if attribute is not None:
        items = map(make_attrgetter(environment, attribute), items)
    texts: list[str] = []
    size = 0
    for item in items:
        text = _as_text(item)
        size += len(text) + (len(d) if texts else 0)
        _check_size("'join'", size)  # checked as it grows: the items may share one value
        texts.append(text)
    return str(d).join(texts)


def _fromjson(text: str) -> Any:
    """Parse a JSON document (``'[1, 2]' | fromjson``)."""
    return json.loads(text)


def _tojson(value: Any, indent: int | None = None) -> str:
    """Serialise to JSON as a plain string, keeping key order and non-ASCII text."""
    return json.dumps(value, indent=indent, ensure_ascii=False)


def _range(*args: int) -> range:
    """``range`` with at most :data:`MAX_RANGE` items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded(
            f"range{args!r} would have {len(numbers):,} items: at most {MAX_RANGE:,} are allowed"
            if len(args) > 1
            else f"range({args[0]!r}) would have {len(numbers):,} items: "
            f"at most {MAX_RANGE:,} are allowed"
        )
    return numbers


# --- calls ----------------------------------------------------------------------------

_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    type,
)


_SCANNING_METHODS = frozenset({"count", "index", "rindex", "find", "rfind"})


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call to a built-in that would create too much; returns the args to use."""
    if not isinstance(obj, _BUILTIN_CALLABLES):
        return args
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and value > MAX_SIZE:
            raise LimitExceeded(
                f"argument {value!r} is too large: built-in functions and methods take at most "
                f"{MAX_SIZE:,}"
            )
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, _SEQUENCES) and (name in _SCANNING_METHODS or name.startswith("is")):
        _budget().charge(len(owner))  # they read the whole value for a small result
    if not isinstance(owner, _TEXT):
        return args
    what = f"{type(owner).__name__}.{name}"
    if name == "join" and args:
        items: list[Any] = []
        size = 0
        for item in args[0]:
            size += (len(item) if isinstance(item, _TEXT) else 1) + (len(owner) if items else 0)
            _check_size(what, size)
            items.append(item)
        return (items, *args[1:])
    if name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(tabsize, int):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            _check_size(what, len(owner) + tabs * tabsize)
    elif name == "replace" and len(args) >= 2:
        _check_replaced(owner, args[0], args[1], _arg(args, kwargs, 2, "count", None), what)
    return args


class _CheckedFormatter(SandboxedFormatter):
    """``str.format`` for templates: every field's width and precision counts."""

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self._total = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in _DIGIT_RUN.findall(format_spec):
            if len(number) > 8:
                raise _refuse("this format", 10 ** len(number))
            self._total += int(number)
        _check_size("this format", self._total + expanded_size(value))
        return super().format_field(value, format_spec)


class _CheckedEscapeFormatter(_CheckedFormatter, EscapeFormatter):
    pass


# --- static limits, checked as the lexer produces tokens -----------------------------

_OPENING = {"(", "[", "{"}
_CLOSING = {")", "]", "}"}
_BLOCK_TAGS = frozenset(
    {"for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans"}
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})
_TAG_ENDS = frozenset({"block_end", "variable_end", "linestatement_end"})


def limit_tokens(tokens: Iterable[tuple[int, str, str]]) -> Iterator[tuple[int, str, str]]:
    """Pass the lexer's raw tokens on, raising TooComplex at the first one past a limit.

    The parser recurses once per open bracket, ``{% %}`` block, unary ``not``,
    ``-`` or ``+`` awaiting its operand, and ``else`` of a conditional
    expression; it asks for the next token before it recurses, so stopping
    the stream here stops it before it goes too deep. Each open bracket
    counts itself plus the unary operators and ``else`` pending when it
    opened; the total may not pass :data:`~._limits.MAX_TEMPLATE_NESTING`,
    and open blocks may not pass :data:`~._limits.MAX_TEMPLATE_BLOCKS`.
    Integer literals longer than :data:`~._limits.MAX_DIGITS` are refused
    before Jinja converts them.
    """
    blocks = 0  # open {% %} blocks
    brackets: list[tuple[int, int]] = []  # per open bracket: (levels it adds, outer conditionals)
    nested = 0  # sum of the levels open brackets add
    unary = conditional = 0  # pending at the current bracket level
    tag: str | None = None  # the first name of the {% %} tag being read, "" before it
    assigns = False  # a {% set %} with '=': not a block
    operand = False  # the previous token ends an operand (so '-' is binary)
    for token in tokens:
        lineno, kind, value = token
        if kind == "block_begin":
            tag, assigns = "", False
        elif kind in _TAG_ENDS:
            if tag == "set" and not assigns:
                blocks += 1
            tag = None
            brackets.clear()
            nested = unary = conditional = 0
        elif kind == "name":
            if tag == "":
                tag = value
                if value in _BLOCK_TAGS:
                    blocks += 1
                elif value.startswith("end"):
                    blocks = max(0, blocks - 1)
                operand = False
            elif value == "not":
                unary += 1
                operand = False
            elif value == "else" and tag != "else":
                conditional += 1
                operand = False
            elif value in _KEYWORDS:
                operand = False
            else:
                unary, operand = 0, True
        elif kind == "operator":
            if value in _OPENING:
                levels = 1 + unary + conditional
                brackets.append((levels, conditional))
                nested += levels
                unary = conditional = 0
                operand = False
            elif value in _CLOSING:
                if brackets:
                    levels, conditional = brackets.pop()
                    nested -= levels
                unary, operand = 0, True
            elif value in ("-", "+") and not operand:
                unary += 1
            else:
                if value == "=" and tag == "set" and not brackets:
                    assigns = True
                operand = False
        elif kind in ("integer", "float", "string"):
            if kind == "integer" and len(value) > MAX_DIGITS:
                raise TooComplex(
                    f"an integer literal of {len(value)} characters: at most {MAX_DIGITS} "
                    "digits are allowed",
                    lineno,
                )
            unary, operand = 0, True
        if blocks > MAX_TEMPLATE_BLOCKS:
            raise TooComplex(f"{{% %}} blocks nest more than {MAX_TEMPLATE_BLOCKS} deep", lineno)
        if blocks + nested + unary + conditional > MAX_TEMPLATE_NESTING:
            raise TooComplex(
                f"brackets, blocks, unary operators and conditionals nest more than "
                f"{MAX_TEMPLATE_NESTING} deep",
                lineno,
            )
        yield token


# --- code generation ------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, calling the environment's hooks for output and ``~``."""

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.text(")
        if finalize.src is not None:
            self.write(finalize.src)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write(")")
        if finalize.src is not None:
            self.write(")")

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.text({super()._output_const_repr(group)})"

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        # Jinja slices with Python's [a:b:c]: here the copy is charged.
        self.write("environment.cut(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        # Comparing and ``in`` read their operands: each is charged its size.
        self.write("(environment.read(")
        self.visit(node.expr, frame)
        self.write(")")
        for operand in node.ops:
            self.write(f" {operators[operand.op]} environment.read(")
            self.visit(operand.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def instrument(tree: nodes.Node) -> None:
    """Make every ``{% for %}`` count its iterations (candidates of its ``if`` included).

    Mutates ``tree``: each loop body starts with the statement
    ``environment.tick`` (a property that counts a step), and a loop's ``if``
    filter becomes ``environment.tick and (test)``.
    """
    for loop in tree.find_all(nodes.For):
        loop.body.insert(0, nodes.ExprStmt(nodes.EnvironmentAttribute("tick"), lineno=loop.lineno))
        if loop.test is not None:
            loop.test = nodes.And(nodes.EnvironmentAttribute("tick"), loop.test, lineno=loop.lineno)


# --- the environment ------------------------------------------------------------------


class SafeEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed, bounded environment of every template (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _CodeGenerator

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            # A rendered value keeps its trailing newline, as static text does.
            keep_trailing_newline=True,
            optimized=False,
        )
        self.globals.pop("lipsum", None)
        self.globals["range"] = _range
        filters = dict(FILTERS)
        filters["fromjson"] = _fromjson
        # Jinja's own tojson HTML-escapes and returns Markup; workflows want plain JSON.
        filters["tojson"] = _tojson
        filters["sum"] = _sum
        filters["join"] = _join
        self.filters = {name: _bounded_filter(name, func) for name, func in filters.items()}
        tests: dict[str, Any] = dict(TESTS)
        self.tests = {name: _bounded_test(func) for name, func in tests.items()}

    def _tokenize(
        self,
        source: str,
        name: str | None,
        filename: str | None = None,
        state: str | None = None,
    ) -> TokenStream:
        """Jinja's token stream, through :func:`limit_tokens` (no extensions are loaded)."""
        lexer = self.lexer
        tokens = limit_tokens(lexer.tokeniter(source, name, filename, state))
        return TokenStream(lexer.wrap(tokens, name, filename), name, filename)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        _binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        if isinstance(result, _SEQUENCES):
            budget.charge(len(result))
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step(CALL_STEPS)
        if budget.depth >= MAX_CALL_DEPTH:
            raise LimitExceeded(f"calls nest deeper than {MAX_CALL_DEPTH} levels")
        args = _check_call(__obj, args, kwargs)
        budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return _created(result, "this call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` of a string, with every field checked."""
        if not isinstance(
            value, types.MethodType | types.BuiltinMethodType
        ) or value.__name__ not in ("format", "format_map"):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: _CheckedFormatter
        if isinstance(owner, Markup):
            formatter = _CheckedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _CheckedFormatter(self)
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    # -- hooks the generated code calls ------------------------------------------

    @property
    def tick(self) -> bool:
        """Count one loop iteration; always true. A property, so that the generated
        code pays an attribute load per iteration, not a call."""
        _budget().step()
        return True

    def cut(self, value: Any, start: Any, stop: Any, step: Any) -> Any:
        """``value[start:stop:step]``, charged the size of the copy it makes."""
        part = value[start:stop:step]
        _budget().charge(_size(part))
        return part

    def read(self, value: Any) -> Any:
        """An operand of a comparison or ``in``: charged its size, returned as it is."""
        _budget().charge(_size(value))
        return value

    def text(self, value: Any) -> str:
        """One piece of output as text, checked and charged."""
        text = _as_text(value)
        _budget().charge(len(text))
        return text

    def join_text(self, values: Iterable[Any]) -> str:
        """``a ~ b ~ c``: the pieces as text, joined, refusing a result too long."""
        texts = [_as_text(value) for value in values]
        size = sum(map(len, texts))
        _check_size("'~'", size)
        _budget().charge(size)
        return "".join(texts)


_ENVIRONMENT = SafeEnvironment()


def environment() -> SafeEnvironment:
    """The one environment every template is compiled in."""
    return _ENVIRONMENT
