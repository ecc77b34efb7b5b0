"""Canonical trace bytes: one stable encoding of a simulated run's trace.

A :class:`~wavecrest.core.Simulation` records every input it hands the
scheduler and every command it gets back. :func:`trace_bytes` writes that
trace as UTF-8 JSON lines, one per entry, so that the same run gives the same
bytes in any process, on any machine, and :func:`trace_digest` hashes them.

Each line is a JSON object with sorted keys and no spaces:

* a frozen value (an input, a command, an event, a result, an error, a fault;
  a dataclass or a NamedTuple) is ``{"@type": class name, field: value, ...}``, except that a
  :class:`StartTask`'s ``node`` is the node's id and its template ``scope`` is
  left out (it is made of outputs the trace records anyway, and of secrets),
  and an :class:`ErrorInfo`'s ``traceback`` is left out (it names files and
  lines of the code, not what the run did);
* floats are written with Python's shortest round-trip digits (``repr``);
* lists and tuples are arrays; dicts with string keys are objects; other
  dicts are ``{"@dict": [[key, value], ...]}`` and sets
  ``{"@set": [...]}``, sorted by their encoded form; bytes are
  ``{"@bytes": hex}``;
* anything else is ``{"@repr": repr(value)}`` with memory addresses
  (``0x7f...``) removed, so object identities never reach the bytes.

Nothing in the trace depends on ids, addresses or the wall clock: the
simulator's clock is virtual and its run id fixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from ._events import ErrorInfo, StartTask

__all__ = ["canonical_value", "trace_bytes", "trace_digest"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_FIELDS: dict[type, tuple[str, ...]] = {}
_LEFT_OUT: dict[type, frozenset[str]] = {
    StartTask: frozenset({"scope"}),
    ErrorInfo: frozenset({"traceback"}),
}
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        left_out = _LEFT_OUT.get(cls, frozenset())
        every = (
            cls._fields  # type: ignore[attr-defined]
            if issubclass(cls, tuple)
            else tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        )
        names = tuple(name for name in every if name not in left_out)
        _FIELDS[cls] = names
    return names


def _is_record(value: Any) -> bool:
    """A frozen value with named fields: a dataclass instance or a NamedTuple."""
    if isinstance(value, tuple):
        return hasattr(type(value), "_fields")
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def canonical_value(value: Any) -> Any:
    """``value`` as plain JSON data, by the rules of the module docstring."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int or kind is float:
        return value
    if kind is list or kind is tuple:
        return [canonical_value(v) for v in value]
    if _is_record(value):
        out: dict[str, Any] = {"@type": kind.__name__}
        for name in _fields(kind):
            out[name] = canonical_value(getattr(value, name))
        if isinstance(value, StartTask):
            out["node"] = value.node.id
        return out
    if isinstance(value, dict):
        if all(type(k) is str for k in value):
            return {k: canonical_value(v) for k, v in value.items()}
        pairs = [[canonical_value(k), canonical_value(v)] for k, v in value.items()]
        return {"@dict": sorted(pairs, key=lambda pair: _dumps(pair[0]))}
    for base in (bool, int, float, str):  # subclasses, such as enums, as their base value
        if isinstance(value, base):
            return base(value)
    if isinstance(value, set | frozenset):
        return {"@set": sorted((canonical_value(v) for v in value), key=_dumps)}
    if isinstance(value, bytes | bytearray):
        return {"@bytes": bytes(value).hex()}
    return {"@repr": _ADDRESS.sub("", repr(value))}


def trace_bytes(trace: Iterable[object]) -> bytes:
    """The canonical bytes of ``trace``: one JSON line per entry (see the module docstring)."""
    return "".join(_dumps(canonical_value(entry)) + "\n" for entry in trace).encode("utf-8")


def trace_digest(trace: Iterable[object]) -> str:
    """The SHA-256 hex digest of :func:`trace_bytes`."""
    return hashlib.sha256(trace_bytes(trace)).hexdigest()
