"""`AdapterServices` over Redis: leases, shared rate budgets, a seen-once check and key stores,
each confined to one platform's declared key families (`relay.keys`).

Every write applies its family's expiry, so an adapter cannot leave an unbounded key behind, and
a family of another platform, or of another kind, is refused when the adapter is built rather
than discovered in a Redis dump. Redis errors surface as `StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.errors import StoreUnavailable
from relay.keys import COMMAND_SEEN_TTL, AdapterFamily, FamilyKind, Keys
from relay.leases import Leases
from relay.ratelimit import SharedRateLimiter
from relay.redis_values import text, texts

# A counter whose expiry starts with its first count (EXPIRE ... NX needs Redis 7; this does not).
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 and tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc


class RedisLease:
    def __init__(self, leases: Leases, key: str, ttl_ms: int) -> None:
        self._leases = leases
        self._key = key
        self._ttl_ms = ttl_ms
        self.owner = leases.owner

    async def acquire(self) -> bool:
        with _unavailable():
            return await self._leases.acquire(self._key, self._ttl_ms)

    async def renew(self) -> bool:
        with _unavailable():
            return await self._leases.renew(self._key, self._ttl_ms)

    async def release(self) -> bool:
        with _unavailable():
            return await self._leases.release(self._key)


class RedisRateBudget:
    def __init__(self, limiter: SharedRateLimiter) -> None:
        self._limiter = limiter

    async def acquire(self) -> None:
        with _unavailable():
            await self._limiter.acquire()

    async def hold(self, seconds: float) -> None:
        with _unavailable():
            await self._limiter.hold(seconds)


class RedisKeyStore:
    def __init__(self, redis: Redis, keys: Keys, family: AdapterFamily) -> None:
        self._r = redis
        self._keys = keys
        self.family = family
        self._incr = redis.register_script(_INCR)

    def _key(self, parts: tuple[object, ...]) -> str:
        return self._keys.adapter_key(self.family, *parts)

    async def get(self, *parts: object) -> str | None:
        with _unavailable():
            raw = await self._r.get(self._key(parts))
        return None if raw is None else text(raw)

    async def put(self, *parts: object, value: str | int, only_if_absent: bool = False) -> bool:
        with _unavailable():
            done = await self._r.set(self._key(parts), value, ex=self.family.ttl_s, nx=only_if_absent)
        return bool(done)

    async def take(self, *parts: object) -> str | None:
        with _unavailable():
            raw = await self._r.getdel(self._key(parts))
        return None if raw is None else text(raw)

    async def exists(self, *parts: object) -> bool:
        with _unavailable():
            return bool(await self._r.exists(self._key(parts)))

    async def delete(self, *keys: tuple[object, ...]) -> None:
        if keys:
            with _unavailable():
                await self._r.delete(*(self._key(parts) for parts in keys))

    async def incr(self, *parts: object) -> int:
        with _unavailable():
            return int(await self._incr(keys=[self._key(parts)], args=[self.family.ttl_s or 0]))

    async def add(self, *parts: object, member: str | int) -> None:
        key = self._key(parts)
        with _unavailable():
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.sadd(key, member)
                if self.family.ttl_s is not None:
                    pipe.expire(key, self.family.ttl_s)
                await pipe.execute()

    async def members(self, *parts: object) -> set[str]:
        with _unavailable():
            raw = await self._r.smembers(self._key(parts))
        return set(texts(raw))


class RedisAdapterServices:
    """One platform's view of Redis. Built by the composition root, one per adapter."""

    def __init__(self, redis: Redis, keys: Keys, platform: str, *, owner: str | None = None) -> None:
        self.platform = platform
        self._r = redis
        self._keys = keys
        self._leases = Leases(redis, owner)

    def _check(self, family: AdapterFamily, *kinds: FamilyKind) -> AdapterFamily:
        if family.platform != self.platform:
            raise ValueError(f"{self.platform} adapter asked for {family.platform}'s key family {family.name!r}")
        if family.kind not in kinds:
            raise ValueError(f"key family {family.platform}:{family.name} is a {family.kind}, not a {'/'.join(kinds)}")
        return family

    def lease(self, family: AdapterFamily, ttl_s: float | None = None) -> RedisLease:
        self._check(family, "lease")
        limit = family.ttl_s
        ttl = limit if ttl_s is None else ttl_s
        if ttl is None or ttl <= 0 or (limit is not None and ttl > limit):
            raise ValueError(f"lease {family.name}: TTL {ttl_s} outside (0, {limit}] s")
        return RedisLease(self._leases, self._keys.adapter_key(family), int(ttl * 1000))

    def rate_budget(self, family: AdapterFamily, per_second: float, burst: int = 1) -> RedisRateBudget:
        self._check(family, "rate")
        return RedisRateBudget(SharedRateLimiter(self._r, self._keys.adapter_key(family), per_second, burst))

    def store(self, family: AdapterFamily) -> RedisKeyStore:
        self._check(family, "string", "counter", "set")
        return RedisKeyStore(self._r, self._keys, family)

    async def first_time(self, event_id: str) -> bool:
        with _unavailable():
            first = await self._r.set(self._keys.command_seen(self.platform, event_id), 1, nx=True, ex=COMMAND_SEEN_TTL)
        return bool(first)
