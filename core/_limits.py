"""The limits that keep bad input cheap: how deep and how big a workflow may ask for.

Every reader of untrusted text checks one of these *before* anything
recursive or expanding runs, so a hostile or broken file costs time and
memory in proportion to its size and is reported as one located error,
never a ``RecursionError``, a hang or an exhausted machine:

* the XML body: elements nest at most :data:`MAX_ELEMENT_DEPTH` deep inside
  ``<workflow>`` (checked while expat reads, before the tree is built);
* YAML (front matter, config elements, fault files, ``--set`` values):
  collections nest at most :data:`MAX_YAML_DEPTH` deep, aliases repeat at
  most :data:`MAX_ALIAS_VALUES` values in all, integers have at most
  :data:`MAX_DIGITS` digits (checked while composing and constructing);
* templates, before Jinja parses them: brackets, ``{% %}`` blocks, unary
  operators and conditional expressions nest at most
  :data:`MAX_TEMPLATE_NESTING` deep, blocks at most :data:`MAX_TEMPLATE_BLOCKS`,
  integer literals have at most :data:`MAX_DIGITS` digits; after parsing and
  before any other walk, the syntax tree is at most
  :data:`MAX_EXPRESSION_DEPTH` levels deep (``1+1+1`` is three);
* templates while they render: see :mod:`._sandbox` (:data:`MAX_SIZE`,
  :data:`MAX_STEPS`, :data:`MAX_WORK`, :data:`MAX_CALL_DEPTH`).

The numbers are far above what a workflow needs and far below what would
exhaust Python's recursion limit (1000 frames) or a machine.
"""

from __future__ import annotations

__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_CALL_DEPTH",
    "MAX_DIGITS",
    "MAX_ELEMENT_DEPTH",
    "MAX_EXPRESSION_DEPTH",
    "MAX_SIZE",
    "MAX_STEPS",
    "MAX_TEMPLATE_BLOCKS",
    "MAX_TEMPLATE_NESTING",
    "MAX_WORK",
    "MAX_YAML_DEPTH",
]

#: Elements nested inside ``<workflow>`` (``<then>``, ``<branch>``, ``<case>`` count).
MAX_ELEMENT_DEPTH = 64
#: Nested YAML sequences and mappings.
MAX_YAML_DEPTH = 64
#: Values that YAML aliases may repeat in one document, counted as often as repeated.
MAX_ALIAS_VALUES = 100_000
#: Decimal digits of an integer: Python's own limit for converting one to text.
MAX_DIGITS = 4300
#: Brackets, ``{% %}`` blocks, unary operators and ``if``/``else`` nested in a template.
MAX_TEMPLATE_NESTING = 24
#: ``{% %}`` blocks nested in a template (Python compiles at most 20 nested loops).
MAX_TEMPLATE_BLOCKS = 16
#: Levels of a template's syntax tree, each operator, filter, call or attribute a level.
MAX_EXPRESSION_DEPTH = 100
#: Characters of a string, or items of a list, dict or range, that a template may create.
MAX_SIZE = 10_000_000
#: Steps one evaluation may take: a loop iteration or a filter is one, a call
#: (a macro, method or function) ten, for a call costs about ten times as much.
MAX_STEPS = 1_000_000
#: Characters and items one evaluation may create or read in all: every string, list or
#: dict an operator, filter, call or piece of output creates counts its size, and so
#: does every value a comparison, ``in``, a slice, a filter or a test reads.
MAX_WORK = 50_000_000
#: Calls (macros, methods, functions) nested inside one another while rendering.
MAX_CALL_DEPTH = 64
