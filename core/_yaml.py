"""YAML as wavecrest reads it: safe, bounded and fast.

Every YAML text wavecrest reads (front matter, config elements, fault files,
``--set`` values, yaml data files) goes through :func:`compose` or
:func:`load`. On top of PyYAML's ``SafeLoader``:

* **No implicit timestamps.** ``2024-01-01`` stays the string it reads as.
* **Bounded.** While composing, a collection nested deeper than
  :data:`~._limits.MAX_YAML_DEPTH`, aliases that repeat more than
  :data:`~._limits.MAX_ALIAS_VALUES` values in all (the "billion laughs"
  bomb, where each level repeats the one before), and an alias inside the
  very node it names (a structure containing itself) raise
  :class:`LimitError` at the offending mark. Composing is linear in the text:
  the expanded size of each node is computed once, from its children's. An
  integer scalar of more than :data:`~._limits.MAX_DIGITS` digits is refused
  when constructed (Python could not print it, and sexagesimal ``1:2:3...``
  would grow without bound).
* **Fast.** When PyYAML has libyaml, libyaml produces the events and Python
  composes them (so the checks above still apply), about ten times faster
  than PyYAML alone. A text that libyaml rejects is read again by PyYAML's
  own parser, so a syntax error reads the same with or without libyaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from ._limits import MAX_ALIAS_VALUES, MAX_DIGITS, MAX_YAML_DEPTH

__all__ = ["LimitError", "YAMLError", "compose", "construct", "load", "load_all"]

YAMLError = yaml.YAMLError
_T = TypeVar("_T")


class LimitError(ComposerError):
    """Raised when a YAML text asks for more than the limits allow (depth, aliases, digits)."""


class _Bounded:
    """Composer overrides that bound nesting and alias expansion (mixed into the loaders)."""

    _depth: int
    _sizes: dict[int, int]
    _repeated: int

    def _reset_bounds(self) -> None:
        self._depth = 0
        self._sizes = {}  # id(node) -> values it stands for, aliases expanded
        self._repeated = 0  # values repeated by aliases so far

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()  # type: ignore[attr-defined]
        kind = type(event)
        if kind is ScalarEvent:  # a leaf, counted as one value (not stored in _sizes)
            if event.anchor is None and not self.yaml_path_resolvers:  # type: ignore[attr-defined]
                return self.compose_scalar_node(None)  # type: ignore[attr-defined, no-any-return]
            return super().compose_node(parent, index)  # type: ignore[misc, no-any-return]
        mark: Any = event.start_mark  # libyaml's marks are yaml.Mark-like
        sizes = self._sizes
        if kind is AliasEvent:
            node: Node = super().compose_node(parent, index)  # type: ignore[misc]
            size = 1 if isinstance(node, ScalarNode) else sizes.get(id(node))
            if size is None:  # the alias names a node still being composed
                raise LimitError(
                    None,
                    None,
                    f"alias *{event.anchor} refers to a node that contains it",
                    mark,
                )
            self._repeated += size
            if self._repeated > MAX_ALIAS_VALUES:
                raise LimitError(
                    None,
                    None,
                    f"aliases repeat more than {MAX_ALIAS_VALUES:,} values (at *{event.anchor})",
                    mark,
                )
            return node
        if self._depth >= MAX_YAML_DEPTH:
            raise LimitError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
        if isinstance(node, SequenceNode):
            size = 1 + sum(sizes.get(id(item), 1) for item in node.value)
        else:
            size = 1 + sum(sizes.get(id(k), 1) + sizes.get(id(v), 1) for k, v in node.value)
        sizes[id(node)] = size
        return node


class _Constructor(SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        digits = sum(char.isdigit() for char in text)
        # A decimal integer that long cannot even be converted; any other form
        # (0x.., 0o.., 0b.., sexagesimal 1:2:3) is bounded by its length first.
        if digits > MAX_DIGITS or len(text) > 4 * MAX_DIGITS:
            raise self._too_long(node, digits)
        value = super().construct_yaml_int(node)
        if (size := int(value.bit_length() * 0.30103) + 1) > MAX_DIGITS:
            raise self._too_long(node, size)
        return value

    @staticmethod
    def _too_long(node: ScalarNode, digits: int) -> ConstructorError:
        return ConstructorError(
            None,
            None,
            f"integer of {digits} digits: at most {MAX_DIGITS} are allowed",
            node.start_mark,
        )


_Constructor.yaml_constructors = {
    **SafeConstructor.yaml_constructors,
    "tag:yaml.org,2002:int": _Constructor.construct_yaml_int,
}
# Without implicit timestamps: a date-like scalar stays a string.
_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}


class _PureLoader(_Bounded, yaml.SafeLoader, _Constructor):
    """PyYAML's own reader, scanner and parser."""

    yaml_implicit_resolvers = _RESOLVERS

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._reset_bounds()


_Loader: type
try:
    from yaml._yaml import CParser

    class _FastLoader(_Bounded, Composer, CParser, _Constructor, Resolver):
        """libyaml's parser, PyYAML's (bounded) composer, constructor and resolver."""

        yaml_implicit_resolvers = _RESOLVERS

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            _Constructor.__init__(self)
            Resolver.__init__(self)
            self._reset_bounds()

    _Loader = _FastLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = _PureLoader


def _composed(compose_with: Callable[[type], _T]) -> _T:
    """``compose_with(loader)`` with libyaml's parser where there is one; a text it
    rejects is read again by PyYAML's own, which words the error (and has the last say
    on what is valid)."""
    try:
        return compose_with(_Loader)
    except LimitError:
        raise
    except yaml.YAMLError:
        if _Loader is _PureLoader:
            raise
    return compose_with(_PureLoader)


def compose(text: str) -> Node | None:
    """The node tree of a one-document YAML text, every node with its mark; None if empty.

    Raises LimitError past a limit, and another YAMLError for invalid YAML.
    """
    return _composed(lambda loader: yaml.compose(text, Loader=loader))


def construct(node: Node) -> Any:
    """The Python value of a composed node: plain dicts, lists and scalars.

    Raises a YAMLError (ConstructorError) for a value that cannot be built.
    """
    return _Constructor().construct_document(node)


def load(text: str) -> Any:
    """The Python value of a one-document YAML text (None if empty); raises YAMLError."""
    node = compose(text)
    return None if node is None else construct(node)


def load_all(text: str) -> list[Any]:
    """The Python values of every document of a YAML text (``---`` apart), bounded as
    :func:`load` is across the whole text; raises YAMLError."""
    nodes = _composed(lambda loader: list(yaml.compose_all(text, Loader=loader)))
    return [None if node is None else construct(node) for node in nodes]
