"""Typed run configuration and secrets.

A workflow declares its config fields (with a type, a default, ``required``)
and its secret names in the front matter. A run gets values from
``--set K=V`` (text, coerced to the declared type) or from
``run_workflow(config=...)`` (Python values; strings are coerced the same
way, other values must already have the right type). Unknown keys, missing
required fields and ill-typed values are :class:`ConfigError`, raised before
anything runs.

Secrets come from ``--secret K=V`` / ``secrets=`` or else from the environment
variable of the same name. They are only ever held in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from . import _yaml
from ._errors import ConfigError
from ._model import ConfigField, Workflow

__all__ = ["parse_assignments", "resolve_config", "resolve_secrets"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_assignments(items: Iterable[str], *, option: str = "--set") -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; ConfigError for items without ``=``."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"invalid {option} {item!r}: expected KEY=VALUE")
        values[key] = value
    return values


def resolve_config(workflow: Workflow, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's config: declared defaults overridden by ``given``, typed and checked."""
    fields = workflow.config_fields
    given = dict(given or {})
    unknown = sorted(set(given) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise ConfigError(
            f"unknown config key {unknown[0]!r} for workflow {workflow.name!r}; known keys: {known}"
        )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name in given:
            values[name] = coerce(field, given[name])
        elif field.required:
            raise ConfigError(
                f"missing required config {name!r} ({field.type}) for workflow "
                f"{workflow.name!r}; give it with --set {name}=VALUE"
            )
        else:
            values[name] = field.default
    return values


def coerce(field: ConfigField, value: Any) -> Any:
    """``value`` as ``field``'s type; text is parsed, other values are checked."""
    kind = field.type
    if isinstance(value, str) and kind != "string":
        value = _parse_text(field, value)
    if _fits(kind, value):
        return value
    raise ConfigError(
        f"invalid value {value!r} for config {field.name!r}: expected {_article(kind)}"
    )


def _parse_text(field: ConfigField, text: str) -> Any:
    kind = field.type
    stripped = text.strip()
    if kind == "boolean":
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return text
    if kind == "integer":
        try:
            return int(stripped)
        except ValueError:
            return text
    if kind == "number":
        try:
            return int(stripped)
        except ValueError:
            try:
                return float(stripped)
            except ValueError:
                return text
    try:
        parsed = _yaml.load(text)
    except _yaml.YAMLError:
        return text
    if kind == "any":
        return parsed if parsed is not None or stripped in ("null", "~") else text
    return parsed


def _fits(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, Mapping)
    return False


def _article(kind: str) -> str:
    return {"integer": "an integer", "object": "an object (mapping)"}.get(kind, f"a {kind}")


def resolve_secrets(
    workflow: Workflow,
    given: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each declared secret from ``given``, else the environment; ConfigError if one is missing."""
    environ = os.environ if environ is None else environ
    given = dict(given or {})
    declared = set(workflow.secrets)
    unknown = sorted(set(given) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"unknown secret {unknown[0]!r} for workflow {workflow.name!r}; "
            f"declared secrets: {known}"
        )
    values: dict[str, str] = {}
    for name in workflow.secrets:
        if name in given:
            value = given[name]
        elif name in environ:
            value = environ[name]
        else:
            raise ConfigError(
                f"missing secret {name!r}: set the environment variable {name} "
                f"or pass --secret {name}=VALUE"
            )
        if not isinstance(value, str):
            raise ConfigError(f"secret {name!r} must be a string, got {type(value).__name__}")
        values[name] = value
    return values
