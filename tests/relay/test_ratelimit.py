"""The shared limiter holds a budget across several clients of one Redis (as K processes would)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from relay.embedded_redis import connect
from relay.keys import TELEGRAM_GLOBAL_RATE, Keys
from relay.ratelimit import SharedRateLimiter


async def test_three_processes_share_one_budget(redis_url: str, keys: Keys, redis: Redis) -> None:
    clients = [connect(redis_url) for _ in range(3)]
    try:
        limiters = [
            SharedRateLimiter(c, keys.adapter_key(TELEGRAM_GLOBAL_RATE, "test"), rate=20, burst=1) for c in clients
        ]
        stamps: list[float] = []

        async def worker(limiter: SharedRateLimiter) -> None:
            for _ in range(10):
                await limiter.acquire()
                stamps.append(time.monotonic())

        await asyncio.gather(*(worker(lim) for lim in limiters))
    finally:
        for c in clients:
            await c.aclose()
    stamps.sort()
    # 30 acquisitions at 20/s: the spacing of the last 29 must add up to about 29 intervals;
    # three unshared limiters would have finished in a third of that.
    assert stamps[-1] - stamps[0] >= 29 / 20 * 0.9
    window_counts = [sum(1 for s in stamps if t <= s < t + 0.5) for t in stamps]
    assert max(window_counts) <= 11  # 20/s means about 10 per half second, never a burst of 30


async def test_burst_is_allowed_then_paced(redis: Redis, keys: Keys) -> None:
    limiter = SharedRateLimiter(redis, keys.adapter_key(TELEGRAM_GLOBAL_RATE, "burst"), rate=5, burst=3)
    assert [await limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await limiter.try_acquire()
    assert 0 < wait <= 0.2 + 0.01


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        SharedRateLimiter(None, "k", rate=0)  # type: ignore[arg-type]


async def test_reservations_are_booked_in_one_call_and_a_hold_moves_every_processes_next_slot(
    redis_url: str, keys: Keys
) -> None:
    clients = [connect(redis_url) for _ in range(2)]
    try:
        a, b = (SharedRateLimiter(c, keys.adapter_key(TELEGRAM_GLOBAL_RATE, "hold"), rate=10) for c in clients)
        first, second = await a.reserve(), await b.reserve()
        assert first == 0.0 and 0.05 < second <= 0.1 + 0.01  # booked, not refused: the next slot, 0.1 s on
        await a.hold(2.0)
        assert await b.reserve() >= 2.0 - 0.05
    finally:
        for c in clients:
            await c.aclose()
