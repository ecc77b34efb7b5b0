"""Randomness derived from the run's seed.

Every random draw in a run comes from a fresh ``random.Random`` seeded by
hashing the run seed with the draw's identity (purpose, node path, attempt).
Draws therefore never depend on the order in which threads happened to ask
for them: the same seed gives the same jitter and the same faults, whatever
the timing.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["derive_rng", "derive_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed determined by ``seed`` and ``parts`` (their ``repr``)."""
    text = "\x1f".join([str(seed), *(repr(p) for p in parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def derive_rng(seed: int, *parts: object) -> random.Random:
    """A private ``random.Random`` for one draw identified by ``parts``."""
    return random.Random(derive_seed(seed, *parts))
