"""Time-limited Redis leases: "who does this job now", for efficiency, never for correctness.

Correctness comes from idempotent writes (dedup sets, per-delivery keys); a lease only keeps two
processes from doing the same work at once (docs/architecture.md, "Coordination between processes"). Release and renew are
compare-and-set in Lua so a process never drops or extends a lease someone else now holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.redis_values import text

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """Acquire, renew and release named leases held by one owner (this process)."""

    def __init__(self, redis: Redis, owner: str | None = None) -> None:
        self._redis = redis
        self.owner = owner or secrets.token_hex(8)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, key: str, ttl_ms: int) -> bool:
        """Take the lease if nobody holds it, or extend it if we already do."""
        if await self._redis.set(key, self.owner, nx=True, px=ttl_ms):
            return True
        return bool(await self._renew(keys=[key], args=[self.owner, ttl_ms]))

    async def renew(self, key: str, ttl_ms: int) -> bool:
        return bool(await self._renew(keys=[key], args=[self.owner, ttl_ms]))

    async def release(self, key: str) -> bool:
        return bool(await self._release(keys=[key], args=[self.owner]))

    @contextlib.asynccontextmanager
    async def hold(self, key: str, ttl_ms: int) -> AsyncIterator[bool]:
        """Take the lease and keep renewing it (every third of its TTL) until the block ends.

        A short TTL kept alive this way lets another process take over quickly after a crash
        while a long job (a slow send, a drain of several calls) never loses it midway.
        Yields False, without running anything, when someone else holds it.
        """
        if not await self.acquire(key, ttl_ms):
            yield False
            return
        # The renewer task starts only once the block has lasted a third of the TTL: most
        # blocks (a drain, a poll) end sooner, and a task per block cost CPU for nothing.
        done = asyncio.Event()
        renewer: asyncio.Task[None] | None = None

        def start_renewing() -> None:
            nonlocal renewer
            renewer = asyncio.create_task(self._keep(key, ttl_ms, done), name=f"lease {key}")

        timer = asyncio.get_running_loop().call_later(ttl_ms / 3000, start_renewing)
        try:
            yield True
        finally:
            # A flag as well as a cancel: a cancellation that lands inside the Redis client's own
            # timeout handling can be swallowed (asyncio.timeout on Python 3.11), and awaiting
            # that renewer would then hang this block - and the drain or poll holding it - for ever.
            timer.cancel()
            done.set()
            if renewer is not None:
                renewer.cancel()
                await asyncio.wait({renewer}, timeout=1.0)
            with contextlib.suppress(RedisError):
                await self.release(key)

    async def _keep(self, key: str, ttl_ms: int, done: asyncio.Event) -> None:
        """Renews now (a third of the TTL has passed), then every third of the TTL."""
        while not done.is_set():
            try:
                if not await self.renew(key, ttl_ms):
                    log.warning("lease lost key=%s", key)
                    return
            except RedisError as exc:
                log.warning("lease renewal failed key=%s (%s)", key, type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), ttl_ms / 3000)
                return

    async def holder(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return None if value is None else text(value)
