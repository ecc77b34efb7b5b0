"""Retry policy and failure classification.

Backoff uses *full jitter*: the delay before retry ``n`` (``n = 0`` for the
first retry) is drawn uniformly from ``[0, ceiling(n)]`` where the ceiling is
``min(cap, base * 2**n)`` for exponential backoff and ``min(cap, base * (n+1))``
for linear. Fixed backoff waits exactly ``min(cap, base)``. The draw comes
from an RNG derived from (run seed, node path, attempt), so it never depends
on timing.

A failure is *retryable* when the exception says so (``retryable`` on
:class:`~wavecrest.core.NodeError`), or it is a timeout or a connection error,
including httpx's transport errors.
"""

from __future__ import annotations

import random
import traceback as tb
from dataclasses import dataclass

from ._errors import NodeError
from ._events import ErrorInfo
from ._model import RetrySpec

__all__ = ["RetryPolicy", "error_info", "is_retryable"]

_HTTPX_TRANSIENT = frozenset({"TransportError", "TimeoutException", "NetworkError"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before retrying; built from a :class:`RetrySpec`."""

    max: int = 3
    backoff: str = "exponential"
    base: float = 0.2
    cap: float = 30.0
    when: str = "retryable"

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        return cls(spec.max, spec.backoff, spec.base, spec.cap, spec.when)

    def ceiling(self, retry: int) -> float:
        """The longest delay before retry number ``retry`` (0 for the first)."""
        if self.backoff == "fixed":
            return min(self.cap, self.base)
        if self.backoff == "linear":
            return min(self.cap, self.base * (retry + 1))
        # Bound the exponent so huge retry counts cannot overflow a float.
        return min(self.cap, self.base * 2.0 ** min(retry, 1024))

    def delay(self, retry: int, rng: random.Random) -> float:
        """The delay before retry number ``retry``: full jitter, except exact for fixed backoff."""
        ceiling = self.ceiling(retry)
        if self.backoff == "fixed":
            return ceiling
        return rng.uniform(0.0, ceiling)

    def should_retry(self, attempt: int, error: ErrorInfo) -> bool:
        """True if a failure of attempt ``attempt`` (from 1) is retried under this policy."""
        if attempt > self.max:
            return False
        if self.when == "always":
            return not error.permanent
        return error.retryable and not error.permanent


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
