"""Built-in runtimes; importing this package registers them.

Each module declares its runtimes as a tuple of
:class:`~wavecrest.core.RuntimeSpec` values and this package registers them
with :func:`~wavecrest.core.register_runtime`. The registry imports the
package lazily, on the first lookup, so a user may have registered a runtime
under a built-in key before that; the user's runtime then wins and the
built-in is skipped. For the same reason registering is idempotent: a key that
is already present is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._registry import RuntimeSpec, register_runtime, runtime_keys
from ._files import FILE_RUNTIMES
from ._http import HTTP_RUNTIMES
from ._transforms import TRANSFORM_RUNTIMES

__all__ = ["BUILTIN_RUNTIMES", "register_builtins"]

#: Every built-in runtime this package provides.
BUILTIN_RUNTIMES: tuple[RuntimeSpec, ...] = (*TRANSFORM_RUNTIMES, *FILE_RUNTIMES, *HTTP_RUNTIMES)


def register_builtins(specs: Iterable[RuntimeSpec]) -> None:
    """Register each spec whose key is not registered yet; present keys are kept as they are."""
    present = set(runtime_keys())
    for spec in specs:
        if spec.key not in present:
            register_runtime(
                spec.key, spec.func, expressions=spec.expressions, required=spec.required
            )


register_builtins(BUILTIN_RUNTIMES)
