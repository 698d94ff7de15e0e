"""Keeps this bot inside Discord's bot-wide limits: request pacing, the invalid-request budget,
and channels that refused us.

Discord bans the IP for a while after 10,000 responses of 401, 403 or 429 (except 429s with scope
"shared") in 10 minutes (discord-api-docs topics/rate-limits). Failed responses are counted in
Redis per 10-minute window, and a channel that answered 403/404 gets no further requests until
it shows signs of life. Must not send or retry anything itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from types import SimpleNamespace

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay.keys import Keys

log = logging.getLogger(__name__)

INVALID_WINDOW_S = 600
INVALID_BUDGET = 10_000  # Discord's figure per window
INVALID_STOP_AT = 2_500  # a quarter of it: stop sending well before Cloudflare would ban us
GONE_TTL_S = 24 * 3600
_GONE_LOCAL_MAX = 10_000


class Pacer:
    """Spaces requests evenly at `rate` per second.

    discord.py waits on per-route buckets and on a global 429, but nothing stops it from
    *causing* global 429s: it has no bot-wide limiter (Discord allows 50 requests/s).
    Even spacing keeps any one-second window at or below `rate` + 1 requests.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._spacing = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._spacing
        if slot > now:
            await asyncio.sleep(slot - now)


class RequestGuard:
    """Counts invalid responses (shared through Redis) and remembers refused channels."""

    def __init__(self, redis: Redis, keys: Keys, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self.invalid: Counter[int] = Counter()  # this process's totals by status, for tests and /metrics
        self._window = -1
        self._window_count = 0
        self._gone: OrderedDict[int, float] = OrderedDict()

    def trace_config(self) -> aiohttp.TraceConfig:
        """Sees every response discord.py gets, including the 429s it retries internally."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        response = params.response
        status = response.status
        if status in (401, 403) or (status == 429 and response.headers.get("X-RateLimit-Scope") != "shared"):
            await self.record_invalid(status)

    async def record_invalid(self, status: int) -> None:
        self.invalid[status] += 1
        window = int(self._clock() // INVALID_WINDOW_S)
        key = self._keys.adapter("discord", "invalid", window)
        try:
            count = int(await self._redis.incr(key))
            if count == 1:
                await self._redis.expire(key, 2 * INVALID_WINDOW_S)
        except RedisError:
            count = (self._window_count if window == self._window else 0) + 1
        self._window, self._window_count = window, count
        if count == INVALID_STOP_AT:
            log.error("discord invalid requests high count=%d budget=%d: pausing sends", count, INVALID_BUDGET)

    def pause_for(self) -> float:
        """Seconds to hold sends because the invalid-request budget is running low (0: fine)."""
        now = self._clock()
        window = int(now // INVALID_WINDOW_S)
        if window != self._window or self._window_count < INVALID_STOP_AT:
            return 0.0
        return (window + 1) * INVALID_WINDOW_S - now

    async def mark_gone(self, channel_id: int, status: int) -> None:
        """Remember a channel that answered 403/404; logs once per channel."""
        self._remember(channel_id)
        try:
            first = await self._redis.set(self._gone_key(channel_id), status, nx=True, ex=GONE_TTL_S)
        except RedisError:
            first = True
        if first:
            log.warning("discord channel refused channel=%s status=%d: no more sends there", channel_id, status)

    async def is_gone(self, channel_id: int) -> bool:
        expires = self._gone.get(channel_id)
        if expires is not None:
            if expires > self._clock():
                return True
            del self._gone[channel_id]
        try:
            if await self._redis.exists(self._gone_key(channel_id)):
                self._remember(channel_id)
                return True
        except RedisError:
            pass
        return False

    async def clear_gone(self, *channel_ids: int) -> None:
        """The channel is reachable again (an interaction came from it, or the bot rejoined)."""
        for channel_id in channel_ids:
            self._gone.pop(channel_id, None)
        if channel_ids:
            try:
                await self._redis.delete(*(self._gone_key(c) for c in channel_ids))
            except RedisError:
                log.warning("discord gone marks not cleared count=%d", len(channel_ids), exc_info=True)

    def _remember(self, channel_id: int) -> None:
        self._gone[channel_id] = self._clock() + GONE_TTL_S
        self._gone.move_to_end(channel_id)
        while len(self._gone) > _GONE_LOCAL_MAX:
            self._gone.popitem(last=False)

    def _gone_key(self, channel_id: int) -> str:
        return self._keys.adapter("discord", "gone", channel_id)
