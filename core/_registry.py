"""The runtime registry: what runs a task node of a given ``kind:type``.

A runtime is a callable taking one :class:`~wavecrest.core.RuntimeContext`
and returning the node's output. It is registered under its key with
:func:`register_runtime`; the parser checks every task node's key against the
registry, so registration must happen before a workflow is loaded.

Config keys named in ``expressions`` are not rendered before the call: the
runtime evaluates them itself, usually once per item (``transform:map``'s
``expression``), through :meth:`RuntimeContext.evaluate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

__all__ = ["RuntimeSpec", "get_runtime", "register_runtime", "runtime_keys", "unregister_runtime"]

RuntimeFunc = Callable[[Any], Any]
F = TypeVar("F", bound=RuntimeFunc)

_KEY = re.compile(r"(source|transform|sink):[A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """A registered runtime: its key, callable, and how its config is treated."""

    key: str
    func: RuntimeFunc
    #: Config keys the runtime evaluates itself (never rendered up front).
    expressions: frozenset[str] = frozenset()
    #: Config keys a node must set; the parser reports the missing ones.
    required: frozenset[str] = frozenset()


_REGISTRY: dict[str, RuntimeSpec] = {}


@overload
def register_runtime(
    key: str,
    func: None = None,
    *,
    expressions: Iterable[str] = (),
    required: Iterable[str] = (),
    replace: bool = False,
) -> Callable[[F], F]: ...


@overload
def register_runtime(
    key: str,
    func: F,
    *,
    expressions: Iterable[str] = (),
    required: Iterable[str] = (),
    replace: bool = False,
) -> F: ...


def register_runtime(
    key: str,
    func: F | None = None,
    *,
    expressions: Iterable[str] = (),
    required: Iterable[str] = (),
    replace: bool = False,
) -> F | Callable[[F], F]:
    """Register ``func`` as the runtime for ``key`` (``source:…``, ``transform:…`` or ``sink:…``).

    Usable as a decorator. Registering a key twice raises ValueError unless
    ``replace=True``; built-in runtimes can be replaced the same way.
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(
            f"invalid runtime key {key!r}: expected 'source:NAME', 'transform:NAME' or 'sink:NAME'"
        )

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"runtime for {key!r} must be callable, got {fn!r}")
        if key in _REGISTRY and not replace:
            raise ValueError(
                f"runtime {key!r} is already registered; pass replace=True to replace it"
            )
        _REGISTRY[key] = RuntimeSpec(key, fn, frozenset(expressions), frozenset(required))
        return fn

    return decorate if func is None else decorate(func)


def unregister_runtime(key: str) -> None:
    """Remove the runtime registered for ``key``; KeyError if there is none."""
    del _REGISTRY[key]


def get_runtime(key: str) -> RuntimeSpec:
    """The runtime registered for ``key``; KeyError if there is none."""
    _load_builtins()
    return _REGISTRY[key]


def runtime_keys() -> list[str]:
    """Every registered key, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


_builtins_loaded = False


def _load_builtins() -> None:
    # Built-ins register on import; importing lazily keeps httpx off the
    # import path of code that only parses and plans.
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        from . import _runtimes  # noqa: F401
