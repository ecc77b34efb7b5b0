"""Failure classification, and the retry policy's public name.

The policy itself is :class:`~wavecrest.core._model.RetrySpec`, the frozen value
``<retry>`` parses to: its ``delay(n, rng)`` draws the full-jitter backoff from
an RNG the supervisor derives from (run seed, node path, attempt), so delays
never depend on timing.

A failure is *retryable* when the exception says so (``retryable`` on
:class:`~wavecrest.core.NodeError`), or it is a timeout or a connection error,
including httpx's transport errors.
"""

from __future__ import annotations

import traceback as tb

from ._errors import NodeError
from ._events import ErrorInfo
from ._model import RetrySpec

__all__ = ["RetryPolicy", "error_info", "is_retryable"]

_HTTPX_TRANSIENT = frozenset({"TransportError", "TimeoutException", "NetworkError"})


#: The behaviour of ``<retry>`` is its spec's own: ``ceiling``, ``delay``, ``should_retry``.
RetryPolicy = RetrySpec


def is_retryable(exc: BaseException) -> bool:
    """The transient-failure classification used for ``when="retryable"``."""
    if isinstance(exc, NodeError):
        return bool(getattr(exc, "retryable", False))
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return any(
        cls.__module__.startswith("httpx") and cls.__name__ in _HTTPX_TRANSIENT
        for cls in type(exc).__mro__
    )


def error_info(
    exc: BaseException, *, node: str | None = None, attempt: int | None = None
) -> ErrorInfo:
    """Record ``exc`` as an :class:`ErrorInfo` with its traceback text."""
    kind = type(exc).__name__
    text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
    return ErrorInfo(
        type=kind,
        message=str(exc) or kind,
        traceback=text,
        retryable=is_retryable(exc),
        permanent=isinstance(exc, NodeError) and not getattr(exc, "retryable", False),
        retry_after=getattr(exc, "retry_after", None),
        node=node,
        attempt=attempt,
    )
