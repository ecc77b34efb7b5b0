"""The transform runtimes: ``template``, ``map``, ``filter`` and ``reduce``.

``transform:template`` needs nothing of its own: the executor renders a
node's config before the call, so the runtime returns the rendered
``template`` value as it is.

The other three walk a list input in order and evaluate one expression per
item through :meth:`~wavecrest.core.RuntimeContext.evaluate`, with ``item``
(the element) and ``index`` (its position, from 0) added to the node's scope;
``reduce`` adds ``acc`` as well. Their expression keys are declared in the
runtime spec, so those keys are compiled but never rendered up front.

The input must be a list or a tuple: anything else (a dict, a string, None)
is a :class:`~wavecrest.core.PermanentError` naming the node and the type,
because iterating a dict's keys or a string's characters is rarely what a
workflow meant. Cancellation is checked before the first item and then every
:data:`CANCEL_CHECK_EVERY` items, so a long map over a cancelled attempt stops
soon without paying for a check per item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .._context import RuntimeContext
from .._errors import PermanentError
from .._registry import RuntimeSpec

__all__ = ["CANCEL_CHECK_EVERY", "TRANSFORM_RUNTIMES"]

#: How many items a transform handles between two ``ctx.check_cancelled()`` calls.
CANCEL_CHECK_EVERY = 1000


def _items(ctx: RuntimeContext, key: str) -> Sequence[Any]:
    """The node's input as a sequence; PermanentError unless it is a list or a tuple."""
    value = ctx.input
    if not isinstance(value, list | tuple):
        raise PermanentError(
            f"{key} node {ctx.path!r} needs a list input, got {type(value).__name__}"
        )
    return value


def _walk(ctx: RuntimeContext, items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """``enumerate(items)``, checking for cancellation every CANCEL_CHECK_EVERY items."""
    for index, item in enumerate(items):
        if index % CANCEL_CHECK_EVERY == 0:
            ctx.check_cancelled()
        yield index, item


def template(ctx: RuntimeContext) -> Any:
    """Return the rendered ``template``.

    A template that is a single ``{{ expr }}`` renders to the native value of
    ``expr`` (a list stays a list); any other template renders to a string.
    """
    return ctx.config["template"]


def map_items(ctx: RuntimeContext) -> list[Any]:
    """Evaluate ``expression`` for each item; the output is the list of results, in order."""
    items = _items(ctx, "transform:map")
    return [ctx.evaluate("expression", item=item, index=index) for index, item in _walk(ctx, items)]


def filter_items(ctx: RuntimeContext) -> list[Any]:
    """Keep the items whose ``condition`` is truthy, in their input order.

    The output is always a list, also for a tuple input.
    """
    items = _items(ctx, "transform:filter")
    return [
        item
        for index, item in _walk(ctx, items)
        if ctx.evaluate("condition", item=item, index=index)
    ]


def reduce_items(ctx: RuntimeContext) -> Any:
    """Fold the items into ``acc`` with ``expression``; the output is the final ``acc``.

    ``acc`` starts as the value of the node's ``initial`` expression, or None
    when it has none. An empty input outputs that starting value.
    """
    items = _items(ctx, "transform:reduce")
    acc = ctx.evaluate("initial") if ctx.has_expression("initial") else None
    for index, item in _walk(ctx, items):
        acc = ctx.evaluate("expression", acc=acc, item=item, index=index)
    return acc


#: The transform runtimes, registered by the package ``__init__``.
TRANSFORM_RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec("transform:template", template, required=frozenset({"template"})),
    RuntimeSpec(
        "transform:map",
        map_items,
        expressions=frozenset({"expression"}),
        required=frozenset({"expression"}),
    ),
    RuntimeSpec(
        "transform:filter",
        filter_items,
        expressions=frozenset({"condition"}),
        required=frozenset({"condition"}),
    ),
    RuntimeSpec(
        "transform:reduce",
        reduce_items,
        expressions=frozenset({"expression", "initial"}),
        required=frozenset({"expression"}),
    ),
)
