"""Capped exponential backoff with full jitter (AWS Architecture Blog, 2015).

`sleep = U(0, min(cap, base * 2**attempt))` spreads retries of many agents or chats over the
whole window instead of bunching them into synchronized waves.
"""

from __future__ import annotations

import random


def full_jitter(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    ceiling = min(cap, base * (2 ** min(max(attempt, 0), 32)))
    return rng.uniform(0, ceiling)
