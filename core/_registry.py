"""The runtime registry: what runs a task node of a given ``kind:type``.

A runtime is a callable taking one :class:`~wavecrest.core.RuntimeContext`
and returning the node's output, or a coroutine function (``async def``)
whose coroutine returns it. It is registered under its key with
:func:`register_runtime`, which records which of the two it is
(:attr:`RuntimeSpec.is_async`), so that every executor knows whether to call
it or to await it; the parser checks every task node's key against the
registry, so registration must happen before a workflow is loaded.

Config keys named in ``expressions`` are not rendered before the call: the
runtime evaluates them itself, usually once per item (``transform:map``'s
``expression``), through :meth:`RuntimeContext.evaluate`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
    #: True when ``func`` is a coroutine function (``async def``): executors await it.
    is_async: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", is_coroutine_function(self.func))


def is_coroutine_function(func: object) -> bool:
    """True for an ``async def`` function, a partial of one, or an object whose
    ``__call__`` is one."""
    if inspect.iscoroutinefunction(func):
        return True
    # An instance of a class with ``async def __call__``: look at the class's method.
    call = getattr(type(func), "__call__", None)  # noqa: B004 - the method, not callability
    return inspect.iscoroutinefunction(call)


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

    ``func`` is a plain function or an ``async def`` coroutine function; both
    take the :class:`~wavecrest.core.RuntimeContext` and give the output.
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


def is_async_runtime(key: str) -> bool:
    """True if the runtime registered for ``key`` is a coroutine function (False if there is
    none yet: the built-ins, loaded on first lookup, are all plain)."""
    spec = _REGISTRY.get(key)
    return spec is not None and spec.is_async


def runtime_keys() -> list[str]:
    """Every registered key, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


_builtins_loaded = False


def _load_builtins() -> None:
    # Built-ins register on import; importing lazily keeps httpx off the
    # import path of code that only parses and plans. The flag is set once the
    # import is complete: a second thread arriving meanwhile imports too, and
    # Python's import lock makes it wait until the built-ins are registered.
    # (The import's own lookups, on the importing thread, see the package
    # half-initialised and go on.)
    global _builtins_loaded
    if not _builtins_loaded:
        from . import _runtimes  # noqa: F401

        _builtins_loaded = True
