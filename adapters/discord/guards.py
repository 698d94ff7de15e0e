"""Keeps this bot inside Discord's bot-wide limits: request pacing, the invalid-request budget,
and channels that refused us.

Pacing belongs to the bot token, not to a process: `GlobalPacer` takes one slot of a rate
budget on Redis (`AdapterServices.rate_budget`) for every REST request, right before aiohttp sends it
(an aiohttp trace hook), so K relay processes on one Redis together stay under
DISCORD_MAX_REQUESTS_PER_SECOND, and requests discord.py delays or retries are paced when they
really leave. Interaction answers are exempt, as they are from Discord's global limit: a user
never waits behind a delivery backlog.

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
import yarl

from relay.adapter import AdapterServices
from relay.errors import StoreUnavailable
from relay.keys import DISCORD_GLOBAL_RATE, DISCORD_GONE, DISCORD_INVALID

log = logging.getLogger(__name__)

# Time a request may take between getting its slot and reaching Discord (connection pool, write,
# the event loop). Slots are spaced for `rate` in (1 + this) seconds, so a sliding second at
# Discord's end holds at most `rate` requests even when two of them travelled unequally fast.
PACING_MARGIN_S = 0.05
# Paths under the API base that Discord does not count against the bot's global limit.
EXEMPT_PATHS = ("/interactions/", "/webhooks/")
INVALID_WINDOW_S = 600
INVALID_BUDGET = 10_000  # Discord's figure per window
INVALID_STOP_AT = 2_500  # a quarter of it: stop sending well before Cloudflare would ban us
GONE_TTL_S = DISCORD_GONE.ttl_s or 24 * 3600  # a channel's stored mark lasts as long
_GONE_LOCAL_MAX = 10_000


class Pacer:
    """Spaces requests evenly at `rate` per second, in this process only (`GlobalPacer`'s
    fallback while Redis is unreachable).

    discord.py waits on per-route buckets and on a global 429, but nothing stops it from
    *causing* global 429s: it has no bot-wide limiter (Discord allows 50 requests/s).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._spacing = 1.0 / rate
        self._clock = clock
        self._next = 0.0

    def hold(self, seconds: float) -> None:
        """No slot before `seconds` from now."""
        self._next = max(self._next, self._clock() + seconds)

    async def wait(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._spacing
        if slot > now:
            await asyncio.sleep(slot - now)


def paced_rate(ceiling: float) -> float:
    """The slot rate that keeps any second at Discord's end at or below `ceiling` requests."""
    return ceiling / (1.0 + PACING_MARGIN_S)


class GlobalPacer:
    """Bot-wide pacing of REST requests, shared by every process on one Redis.

    Within a process one waiter at a time asks Redis (an asyncio.Lock is FIFO), so a hundred
    channels waiting cost one Redis call per slot, not a hundred, and none is starved. If Redis
    does not answer, this process paces alone at the full rate rather than stop sending, and
    asks Redis again only every `retry_shared_s` (a failing call can take seconds of retries).
    """

    def __init__(
        self,
        services: AdapterServices,
        ceiling: float,
        api_base: str,
        *,
        retry_shared_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        rate = paced_rate(ceiling)
        # A burst of two: a waiter woken late (a busy event loop) takes its slot right after the
        # previous one instead of losing it; two back to back stay far inside 50 in any second.
        self._shared = services.rate_budget(DISCORD_GLOBAL_RATE, rate, burst=2)
        self._local = Pacer(rate, clock)
        self._queue = asyncio.Lock()
        self._retry_shared_s = retry_shared_s
        self._clock = clock
        self._down_until: float | None = None
        self.shared_failures = 0
        base = yarl.URL(api_base)
        self._origin = (base.scheme, base.host, base.port)
        self._base_path = base.path.rstrip("/")
        self.paced = 0  # requests this process paced, for tests and metrics
        self.global_429s = 0  # global 429s this process saw (each held every process's slots)

    def is_paced(self, url: yarl.URL) -> bool:
        """REST calls to the API base count; interaction answers and the gateway do not."""
        if (url.scheme, url.host, url.port) != self._origin or not url.path.startswith(self._base_path + "/"):
            return False
        return not url.path[len(self._base_path) :].startswith(EXEMPT_PATHS)

    async def wait(self) -> None:
        async with self._queue:
            if self._down_until is not None and self._clock() < self._down_until:
                await self._local.wait()
            else:
                try:
                    await self._shared.acquire()
                except StoreUnavailable:
                    self.shared_failures += 1
                    if self._down_until is None:
                        log.warning("discord shared pacing unavailable: pacing this process alone", exc_info=True)
                    self._down_until = self._clock() + self._retry_shared_s
                    await self._local.wait()
                else:
                    if self._down_until is not None:
                        log.info("discord shared pacing available again")
                    self._down_until = None
        self.paced += 1

    async def on_request_start(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        # Awaited by aiohttp before the connection is used: the request leaves after its slot.
        if self.is_paced(params.url):
            await self.wait()

    async def on_request_end(
        self, _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        """A global 429 (X-RateLimit-Global: true) stops the whole bot: discord.py waits it out in
        this process only, so the shared slots are held for its Retry-After in every process."""
        response = params.response
        if response.status != 429 or response.headers.get("X-RateLimit-Global", "").lower() != "true":
            return
        try:
            seconds = float(response.headers.get("Retry-After", "1"))
        except ValueError:
            seconds = 1.0
        self.global_429s += 1
        self._local.hold(seconds)
        try:
            await self._shared.hold(seconds)
        except StoreUnavailable:
            log.info("discord shared pacing unavailable: the global hold applies to this process only")


class RequestGuard:
    """Counts invalid responses (shared through Redis) and remembers refused channels."""

    def __init__(self, services: AdapterServices, clock: Callable[[], float] = time.time) -> None:
        self._invalid_counts = services.store(DISCORD_INVALID)
        self._gone_marks = services.store(DISCORD_GONE)
        self._clock = clock
        self.invalid: Counter[int] = Counter()  # this process's totals by status, for tests and /metrics
        self._window = -1
        self._window_count = 0
        self._gone: OrderedDict[int, float] = OrderedDict()
        self._held_until = 0.0

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
        try:
            count = await self._invalid_counts.incr(window)
        except StoreUnavailable:
            count = (self._window_count if window == self._window else 0) + 1
        self._window, self._window_count = window, count
        if count == INVALID_STOP_AT:
            log.error("discord invalid requests high count=%d budget=%d: pausing sends", count, INVALID_BUDGET)

    def hold(self, seconds: float, why: str) -> None:
        """Hold every send of this process for `seconds` (a Cloudflare ban is per IP, not per
        channel: sending elsewhere would only prolong it). Logs once per hold."""
        until = self._clock() + seconds
        if until > self._held_until:
            if self._held_until <= self._clock():
                log.error("discord sends paused seconds=%.0f reason=%s", seconds, why)
            self._held_until = until

    def pause_for(self) -> float:
        """Seconds to hold sends: a ban is being waited out, or the invalid-request budget is
        running low (0: fine)."""
        now = self._clock()
        held = max(0.0, self._held_until - now)
        window = int(now // INVALID_WINDOW_S)
        if window != self._window or self._window_count < INVALID_STOP_AT:
            return held
        return max(held, (window + 1) * INVALID_WINDOW_S - now)

    async def mark_gone(self, channel_id: int, status: int) -> None:
        """Remember a channel that answered 403/404; logs once per channel."""
        self._remember(channel_id)
        try:
            first = await self._gone_marks.put(channel_id, value=status, only_if_absent=True)
        except StoreUnavailable:
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
            if await self._gone_marks.exists(channel_id):
                self._remember(channel_id)
                return True
        except StoreUnavailable:
            pass
        return False

    async def clear_gone(self, *channel_ids: int) -> None:
        """The channel is reachable again (an interaction came from it, or the bot rejoined)."""
        for channel_id in channel_ids:
            self._gone.pop(channel_id, None)
        if channel_ids:
            try:
                await self._gone_marks.delete(*((c,) for c in channel_ids))
            except StoreUnavailable:
                log.warning("discord gone marks not cleared count=%d", len(channel_ids), exc_info=True)

    def _remember(self, channel_id: int) -> None:
        self._gone[channel_id] = self._clock() + GONE_TTL_S
        self._gone.move_to_end(channel_id)
        while len(self._gone) > _GONE_LOCAL_MAX:
            self._gone.popitem(last=False)
