"""Durations as workflow files write them: ``250ms``, ``5s``, ``2m``, ``1h`` or plain seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds.

    Accepts a non-negative number of seconds (int, float or numeric string) or
    a number with one unit: ``ms``, ``s``, ``m``, ``h``. Raises ValueError with
    a message quoting the value otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 250ms, 5s, 2m, 1h or seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"invalid duration {value!r}: expected e.g. 250ms, 5s, 2m, 1h or seconds")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds for people: ``850ms``, ``3.2s``, ``4m05s``, ``1h02m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"
