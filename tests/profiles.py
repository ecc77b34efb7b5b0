"""Hypothesis profiles: a deterministic one for CI and every fresh clone, a deep one by hand.

``ci`` (the default) derandomizes hypothesis: every property draws the same
examples on every machine and every run, so the suite's colour never depends
on luck. Failures found by deeper searches are pinned with ``@example`` on the
property, so they stay covered by the deterministic profile.

``explore`` (``HYPOTHESIS_PROFILE=explore``) draws fresh random examples,
``WAVECREST_EXPLORE_SCALE`` times as many as CI (default 50), with no
deadline: the profile for searching deeper before a release.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
SCALE = int(os.environ.get("WAVECREST_EXPLORE_SCALE", "50")) if PROFILE == "explore" else 1

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    # Timing health checks depend on the machine's load, not on the code.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=100 * SCALE,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """``n`` examples under the CI profile, ``n`` times the explore scale under ``explore``."""
    return n * SCALE
