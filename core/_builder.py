"""Workflows built in code: :class:`WorkflowBuilder`, from ``Workflow.build(name, ...)``.

A builder records nodes as the caller declares them, each with the caller's
file, line and column (read from the calling frame), and
:meth:`WorkflowBuilder.workflow` turns them into the same frozen
:class:`~wavecrest.core.Workflow` the parser gives, by *being* the parser:

1. **Render.** The declarations become the text of a ``.flow.md`` file —
   YAML front matter, then one element per line (a mapping config value as a
   child element holding YAML) — and the builder remembers, for every line of
   that text, the caller's location it came from.
2. **Parse.** :func:`~wavecrest.core.parse_workflow` reads the text: every
   check the parser and planner make (ids, runtime types and required config,
   expressions, references, scope rules, cycles) applies unchanged.
3. **Relocate.** Each diagnostic is moved from its line of the text to the
   caller's location that line came from (``first defined at`` included), so
   a WorkflowError points into the caller's code; so are the locations of the
   model's nodes. The rendered text stays the workflow's ``source``: a
   persisted run of a built workflow resumes from its snapshot alone.

Config values are what a file can write: strings, numbers (written as their
text, as a file's attributes are) and mappings (a child element of YAML).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from ._errors import Diagnostic, WorkflowError
from ._model import Location, Workflow

__all__ = [
    "Body",
    "BranchBlock",
    "IfBlock",
    "ParallelBlock",
    "Retry",
    "WorkflowBuilder",
]

ConfigValue = str | int | float | Mapping[str, Any]
Inputs = str | Sequence[str] | None

_FILE = "<builder>"
_FIRST_AT = re.compile(r"(first (?:defined|given) at )(\d+):(\d+)")


def caller_location(depth: int = 1) -> Location:
    """Where the caller ``depth`` frames above this function's caller is: file, line, column.

    The column is that of the call being executed there (Python 3.11's code
    positions), 1 when unknown.
    """
    frame = sys._getframe(depth + 1)
    code, index = frame.f_code, frame.f_lasti // 2
    line, column = frame.f_lineno, 1
    for position in itertools.islice(code.co_positions(), index, index + 1):
        start, _, col, _ = position
        if start is not None:
            line = start
        if col is not None:
            column = col + 1
    return Location(code.co_filename, line or 1, column)


@dataclass(frozen=True, slots=True)
class Retry:
    """``<retry>`` of a task node or checkpoint: durations as ``"200ms"`` or seconds."""

    max: int | None = None
    backoff: Literal["exponential", "linear", "fixed"] | None = None
    base: str | float | None = None
    cap: str | float | None = None
    when: Literal["retryable", "always"] | None = None
    timeout: str | float | None = None


@dataclass(slots=True)
class _Element:
    tag: str
    loc: Location
    attrs: dict[str, str]
    children: list[_Element]
    text: str | None = None  # YAML text of a mapping config value


class Body:
    """A body being declared: the workflow's own, or a control node's. Each method adds a
    node here, records where it was called, and returns its id (task nodes) or what
    declares its bodies (control nodes)."""

    def __init__(self, owner: WorkflowBuilder, into: list[_Element]) -> None:
        self._owner = owner
        self._into = into

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    # -- task nodes ------------------------------------------------------------------------

    def source(
        self,
        id: str,
        type: str,
        *,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
        retry: Retry | None = None,
        fallback: str | None = None,
        config: Mapping[str, ConfigValue] | None = None,
        **options: ConfigValue,
    ) -> str:
        """A ``<source>`` of runtime ``source:TYPE``; ``options`` (and ``config``) are its
        config."""
        return self._task(
            "source", id, type, input, timeout, description, retry, fallback, config, options
        )

    def transform(
        self,
        id: str,
        type: str,
        *,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
        retry: Retry | None = None,
        fallback: str | None = None,
        config: Mapping[str, ConfigValue] | None = None,
        **options: ConfigValue,
    ) -> str:
        """A ``<transform>`` of runtime ``transform:TYPE``."""
        return self._task(
            "transform", id, type, input, timeout, description, retry, fallback, config, options
        )

    def sink(
        self,
        id: str,
        type: str,
        *,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
        retry: Retry | None = None,
        fallback: str | None = None,
        config: Mapping[str, ConfigValue] | None = None,
        **options: ConfigValue,
    ) -> str:
        """A ``<sink>`` of runtime ``sink:TYPE``."""
        return self._task(
            "sink", id, type, input, timeout, description, retry, fallback, config, options
        )

    def _task(
        self,
        kind: str,
        id: str,
        type: str,
        input: Inputs,
        timeout: str | float | None,
        description: str | None,
        retry: Retry | None,
        fallback: str | None,
        config: Mapping[str, ConfigValue] | None,
        options: Mapping[str, ConfigValue],
    ) -> str:
        loc = caller_location(2)
        element = self._add(kind, loc, id=id, input=input, timeout=timeout)
        owner = self._owner
        element.attrs |= owner._attrs(loc, type=type, description=description)
        for key, value in {**(config or {}), **options}.items():
            if isinstance(value, Mapping):
                text = owner._yaml(value, loc, key)
                if text is not None:
                    element.children.append(_Element(key, loc, {}, [], text))
            else:
                element.attrs |= owner._attrs(loc, **{key: value})
        owner._on_error(element, retry, fallback)
        return id

    # -- other leaves ----------------------------------------------------------------------

    def delay(
        self,
        id: str,
        duration: str | float,
        *,
        input: Inputs = None,
        description: str | None = None,
    ) -> str:
        """A ``<delay>``: waits ``duration`` and passes its input on."""
        element = self._add("delay", caller_location(1), id=id, input=input)
        element.attrs |= self._owner._attrs(element.loc, duration=duration, description=description)
        return id

    def checkpoint(
        self,
        id: str,
        *,
        prompt: str | None = None,
        timeout: str | float | None = None,
        default: Literal["approve", "reject"] | None = None,
        input: Inputs = None,
        description: str | None = None,
        retry: Retry | None = None,
        fallback: str | None = None,
    ) -> str:
        """A ``<checkpoint>``: a durable pause until approved or rejected."""
        element = self._add("checkpoint", caller_location(1), id=id, input=input, timeout=timeout)
        element.attrs |= self._owner._attrs(
            element.loc, prompt=prompt, default=default, description=description
        )
        self._owner._on_error(element, retry, fallback)
        return id

    def break_(self, id: str, when: str, *, description: str | None = None) -> str:
        """A ``<break>`` (in a loop, while or foreach body): stop iterating once ``when``."""
        element = self._add("break", caller_location(1), id=id)
        element.attrs |= self._owner._attrs(element.loc, when=when, description=description)
        return id

    # -- control nodes ---------------------------------------------------------------------

    def foreach(
        self,
        id: str,
        collection: str,
        *,
        item: str | None = None,
        index: str | None = None,
        concurrency: int | None = None,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
    ) -> Body:
        """A ``<foreach>``; declare its body on the Body returned (``with ... as body:``)."""
        element = self._add("foreach", caller_location(1), id=id, input=input, timeout=timeout)
        element.attrs |= self._owner._attrs(
            element.loc,
            collection=collection,
            item=item,
            index=index,
            concurrency=concurrency,
            description=description,
        )
        return Body(self._owner, element.children)

    def loop(
        self,
        id: str,
        max: int,
        *,
        break_when: str | None = None,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
    ) -> Body:
        """A ``<loop max break>``; declare its body on the Body returned."""
        element = self._add("loop", caller_location(1), id=id, input=input, timeout=timeout)
        element.attrs |= self._owner._attrs(
            element.loc, max=max, description=description, **{"break": break_when}
        )
        return Body(self._owner, element.children)

    def while_(
        self,
        id: str,
        condition: str,
        *,
        max: int | None = None,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
    ) -> Body:
        """A ``<while condition max>``; declare its body on the Body returned."""
        element = self._add("while", caller_location(1), id=id, input=input, timeout=timeout)
        element.attrs |= self._owner._attrs(
            element.loc, condition=condition, max=max, description=description
        )
        return Body(self._owner, element.children)

    def if_(
        self,
        id: str,
        condition: str,
        *,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
    ) -> IfBlock:
        """An ``<if>``; declare ``then()`` and optionally ``else_()`` on the block returned."""
        element = self._add("if", caller_location(1), id=id, input=input, timeout=timeout)
        element.attrs |= self._owner._attrs(
            element.loc, condition=condition, description=description
        )
        return IfBlock(self._owner, element)

    def branch(
        self,
        id: str,
        *,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
    ) -> BranchBlock:
        """A ``<branch>`` of cases; declare ``case(when)``... and ``default()`` on it."""
        element = self._add("branch", caller_location(1), id=id, input=input, timeout=timeout)
        element.attrs |= self._owner._attrs(element.loc, description=description)
        return BranchBlock(self._owner, element)

    def parallel(
        self,
        id: str,
        *,
        wait: Literal["all", "any"] | int | None = None,
        merge: Literal["array", "concat", "object"] | None = None,
        max_concurrency: int | None = None,
        input: Inputs = None,
        timeout: str | float | None = None,
        description: str | None = None,
    ) -> ParallelBlock:
        """A ``<parallel>``; ``wait`` is ``"all"``, ``"any"`` or how many branches must succeed.
        Declare each ``branch(name)`` on the block returned."""
        element = self._add("parallel", caller_location(1), id=id, input=input, timeout=timeout)
        shown_wait = f"n({wait})" if isinstance(wait, int) and not isinstance(wait, bool) else wait
        element.attrs |= self._owner._attrs(
            element.loc,
            wait=shown_wait,
            merge=merge,
            description=description,
            **{"max-concurrency": max_concurrency},
        )
        return ParallelBlock(self._owner, element)

    # -- helpers ---------------------------------------------------------------------------

    def _add(
        self,
        tag: str,
        loc: Location,
        *,
        id: str,
        input: Inputs = None,
        timeout: str | float | None = None,
    ) -> _Element:
        owner = self._owner
        element = _Element(tag, loc, owner._attrs(loc, id=id), [])
        if input is not None:
            inputs = [input] if isinstance(input, str) else list(input)
            if all(isinstance(i, str) for i in inputs):
                element.attrs["input"] = ", ".join(inputs)
            else:
                owner._problem(loc, f"invalid input {input!r}: expected node ids")
        element.attrs |= owner._attrs(loc, timeout=timeout)
        self._into.append(element)
        return element


class IfBlock:
    """The bodies of an ``<if>``: ``with block.then() as then: ...``, ``block.else_()``."""

    def __init__(self, owner: WorkflowBuilder, element: _Element) -> None:
        self._owner = owner
        self._element = element

    def __enter__(self) -> IfBlock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def then(self) -> Body:
        """The body taken when the condition holds."""
        return self._part("then", caller_location(1))

    def else_(self) -> Body:
        """The body taken otherwise."""
        return self._part("else", caller_location(1))

    def _part(self, tag: str, loc: Location) -> Body:
        part = _Element(tag, loc, {}, [])
        self._element.children.append(part)
        return Body(self._owner, part.children)


class BranchBlock:
    """The alternatives of a ``<branch>``: ``case(when)`` bodies, then one ``default()``."""

    def __init__(self, owner: WorkflowBuilder, element: _Element) -> None:
        self._owner = owner
        self._element = element

    def __enter__(self) -> BranchBlock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def case(self, when: str) -> Body:
        """The body taken when ``when`` is the first case that holds."""
        loc = caller_location(1)
        part = _Element("case", loc, self._owner._attrs(loc, when=when), [])
        self._element.children.append(part)
        return Body(self._owner, part.children)

    def default(self) -> Body:
        """The body taken when no case holds."""
        part = _Element("default", caller_location(1), {}, [])
        self._element.children.append(part)
        return Body(self._owner, part.children)


class ParallelBlock:
    """The branches of a ``<parallel>``: ``branch(name)`` bodies."""

    def __init__(self, owner: WorkflowBuilder, element: _Element) -> None:
        self._owner = owner
        self._element = element

    def __enter__(self) -> ParallelBlock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def branch(self, name: str | None = None) -> Body:
        """One branch; ``name`` keys it for ``merge="object"`` (default: its position)."""
        loc = caller_location(1)
        part = _Element("branch", loc, self._owner._attrs(loc, name=name), [])
        self._element.children.append(part)
        return Body(self._owner, part.children)


class WorkflowBuilder(Body):
    """Declares a workflow in code; :meth:`workflow` checks it and gives the frozen model.

    ``config`` maps field names to a spec (``{"type": "number", "default": 7}``)
    or a plain default, ``runtime`` takes the front matter's ``runtime:`` keys:
    the same values as a file's front matter.
    """

    def __init__(
        self,
        name: str,
        *,
        version: str | None = None,
        description: str | None = None,
        config: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
        runtime: Mapping[str, Any] | None = None,
        at: Location | None = None,
    ) -> None:
        self._nodes: list[_Element] = []
        super().__init__(self, self._nodes)
        self._loc = at if at is not None else caller_location(1)
        # Values that cannot be written in a file at all, reported with the parser's.
        self._problems: list[Diagnostic] = []
        front: dict[str, Any] = {"name": name}
        if version is not None:
            front["version"] = version
        if description is not None:
            front["description"] = description
        if config:
            front["config"] = dict(config)
        secrets = list(secrets)
        if secrets:
            front["secrets"] = secrets
        if runtime:
            front["runtime"] = dict(runtime)
        self._front = front

    def __enter__(self) -> WorkflowBuilder:
        return self

    def workflow(self) -> Workflow:
        """The workflow declared so far, checked as the parser checks a file.

        Raises WorkflowError listing every problem, each at the caller's line
        that declared what is wrong (front matter problems at the line that
        created the builder).
        """
        from ._parse import parse_workflow

        lines, origins = self._render()
        problems = list(self._problems)
        try:
            workflow = parse_workflow("\n".join(lines) + "\n", _FILE)
        except WorkflowError as exc:
            problems += (_relocate_diagnostic(d, origins) for d in exc.diagnostics)
        if problems:
            raise WorkflowError(problems)
        relocated: Workflow = _relocated(workflow, origins)
        return relocated

    # -- values ------------------------------------------------------------------------------

    def _problem(self, loc: Location, message: str) -> None:
        self._problems.append(Diagnostic(loc.file, loc.line, loc.column, message))

    def _attrs(self, loc: Location, **values: Any) -> dict[str, str]:
        """The values that are not None as attribute text: a string as it is, a number as
        its text; anything else is a problem at ``loc``."""
        attrs = {}
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, str):
                attrs[name] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                attrs[name] = repr(value)
            else:
                self._problem(
                    loc, f"invalid value {value!r} for {name!r}: expected a string or a number"
                )
        return attrs

    def _yaml(self, value: Mapping[str, Any], loc: Location, key: str) -> str | None:
        try:
            return yaml.safe_dump(
                dict(value), sort_keys=False, allow_unicode=True, default_flow_style=False
            )
        except yaml.YAMLError as exc:
            self._problem(loc, f"invalid value for {key!r}: it cannot be written as YAML: {exc}")
            return None

    def _on_error(self, element: _Element, retry: Retry | None, fallback: str | None) -> None:
        if retry is None and fallback is None:
            return
        loc = element.loc
        on_error = _Element("on-error", loc, {}, [])
        if retry is not None:
            fields = {f.name: getattr(retry, f.name) for f in dataclasses.fields(retry)}
            on_error.children.append(_Element("retry", loc, self._attrs(loc, **fields), []))
        if fallback is not None:
            on_error.children.append(_Element("fallback", loc, self._attrs(loc, node=fallback), []))
        element.children.append(on_error)

    # -- rendering -------------------------------------------------------------------------

    def _render(self) -> tuple[list[str], list[Location]]:
        try:
            front = yaml.safe_dump(
                self._front, sort_keys=False, allow_unicode=True, default_flow_style=False
            )
        except yaml.YAMLError as exc:
            self._problem(self._loc, f"the front matter cannot be written as YAML: {exc}")
            front = yaml.safe_dump({"name": self._front["name"]})
        lines = ["---", *front.splitlines(), "---"]
        origins = [self._loc] * len(lines)
        lines.append("<workflow>")
        origins.append(self._loc)
        for element in self._nodes:
            _render_element(element, 1, lines, origins)
        lines.append("</workflow>")
        origins.append(self._loc)
        return lines, origins


def _render_element(
    element: _Element, depth: int, lines: list[str], origins: list[Location]
) -> None:
    indent = "  " * depth
    attrs = "".join(f" {name}={_quote(value)}" for name, value in element.attrs.items())
    if element.text is not None:
        lines.append(f"{indent}<{element.tag}>")
        origins.append(element.loc)
        for text in element.text.splitlines():
            lines.append(f"{indent}  {_escape(text)}")
            origins.append(element.loc)
        lines.append(f"{indent}</{element.tag}>")
        origins.append(element.loc)
    elif not element.children:
        lines.append(f"{indent}<{element.tag}{attrs}/>")
        origins.append(element.loc)
    else:
        lines.append(f"{indent}<{element.tag}{attrs}>")
        origins.append(element.loc)
        for child in element.children:
            _render_element(child, depth + 1, lines, origins)
        lines.append(f"{indent}</{element.tag}>")
        origins.append(element.loc)


def _quote(value: str) -> str:
    """``"value"`` with XML escapes; line breaks and tabs kept as character references."""
    escaped = (
        _escape(value)
        .replace('"', "&quot;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )
    return f'"{escaped}"'


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _origin(line: int, origins: list[Location]) -> Location:
    return origins[min(max(line, 1), len(origins)) - 1]


def _relocate_diagnostic(diagnostic: Diagnostic, origins: list[Location]) -> Diagnostic:
    if diagnostic.file != _FILE:
        return diagnostic
    loc = _origin(diagnostic.line, origins)

    def first(match: re.Match[str]) -> str:
        return f"{match.group(1)}{_origin(int(match.group(2)), origins)}"

    return Diagnostic(loc.file, loc.line, loc.column, _FIRST_AT.sub(first, diagnostic.message))


def _relocated(value: Any, origins: list[Location]) -> Any:
    """``value`` with every Location into the rendered text replaced by its origin."""
    if isinstance(value, Location):
        return _origin(value.line, origins) if value.file == _FILE else value
    if isinstance(value, tuple):
        return tuple(_relocated(item, origins) for item in value)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    changes = {}
    for f in dataclasses.fields(value):
        if f.init:
            old = getattr(value, f.name)
            new = _relocated(old, origins)
            if new is not old:
                changes[f.name] = new
    if isinstance(value, Workflow):
        changes["path"] = None  # built in code: relative paths resolve against the cwd
    return dataclasses.replace(value, **changes) if changes else value
