"""Leases: a held lease is renewed while its block runs and given back when the block ends,
however the renewal was interrupted."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from relay.keys import Keys
from relay.leases import Leases


class SwallowsOneCancel(Leases):
    """A renewal that swallows the cancellation landing in it, as a Redis client's own timeout
    handling can (asyncio.timeout and wait_for on Python 3.11)."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.renewing = asyncio.Event()
        self.swallowed = 0

    async def renew(self, key: str, ttl_ms: int) -> bool:
        self.renewing.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.swallowed += 1
        return await super().renew(key, ttl_ms)


async def test_a_block_ends_and_gives_the_lease_back_even_if_its_renewal_swallows_the_cancel(
    redis: Redis, keys: Keys
) -> None:
    leases = SwallowsOneCancel(redis)
    key = keys.chat_lease("rec:1:")

    async def hold_until_a_renewal_is_under_way() -> None:
        async with leases.hold(key, 150) as held:  # renewed every 50 ms
            assert held
            await leases.renewing.wait()

    # Before the fix this never returned: the renewer went on renewing for ever.
    await asyncio.wait_for(hold_until_a_renewal_is_under_way(), timeout=10)
    assert leases.swallowed == 1
    assert await redis.exists(key) == 0
    await asyncio.sleep(0.3)  # no renewal brings it back
    assert await redis.exists(key) == 0
