"""The in-memory reply and discussion limits of the real server (docs/upstream.md §10), on the world's clock.

Same order of checks as upstream: cooldown, then window, then duplicate text, so the
client sees the same 429 detail texts in the same situations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from aitrader_sim.records import ApiError

DUPLICATE_WINDOW_SECONDS = 1800.0
LIMITS: dict[str, tuple[float, float, int]] = {
    # action: (cooldown seconds, window seconds, posts allowed per window)
    "discussion": (60.0, 600.0, 5),
    "reply": (20.0, 300.0, 10),
}


@dataclass
class _State:
    last_ts: float | None = None
    timestamps: list[float] = field(default_factory=list)
    fingerprints: dict[str, float] = field(default_factory=dict)


def fingerprint(content: str) -> str:
    return " ".join((content or "").strip().lower().split())


class ContentRateLimiter:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._state: dict[tuple[int, str], _State] = {}

    def enforce(self, agent_id: int, action: str, content: str, target_key: str | None = None) -> None:
        """Record one post attempt or raise ApiError(429) exactly like upstream."""
        cooldown, window, window_limit = LIMITS[action]
        now = self._clock()
        state = self._state.setdefault((agent_id, action), _State())

        if state.last_ts is not None and now - state.last_ts < cooldown:
            remaining = math.ceil(cooldown - (now - state.last_ts))
            raise ApiError(429, f"Too many {action} posts. Try again in {remaining}s.")

        recent = [ts for ts in state.timestamps if now - ts < window]
        if len(recent) >= window_limit:
            raise ApiError(429, f"{action.title()} rate limit reached. Please slow down.")

        key = f"{target_key or 'global'}::{fingerprint(content)}"
        seen = state.fingerprints.get(key)
        if seen is not None and now - seen < DUPLICATE_WINDOW_SECONDS:
            raise ApiError(429, f"Duplicate {action} content detected. Please wait before reposting.")

        recent.append(now)
        state.timestamps = recent
        state.fingerprints = {k: ts for k, ts in state.fingerprints.items() if now - ts < DUPLICATE_WINDOW_SECONDS}
        state.fingerprints[key] = now
        state.last_ts = now
