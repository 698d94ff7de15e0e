"""A send-rate limit shared by every relay process on one Redis (GCRA in one Lua call).

Platform ceilings are per bot token, not per process: with K processes delivering, each one's
in-process limiter would let K times the budget through. The clock is Redis' own TIME, so
processes with drifting clocks still agree. The platforms' published ceilings are the starting
rates (Discord 50 requests/s per bot, Telegram about 30 messages/s per bot); a retry_after that
concerns the whole bot holds every process's slots (`hold`).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

# Generic cell rate algorithm: KEYS[1] holds the theoretical arrival time (ms) of the next cell.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


# Reservation form of the same algorithm: the caller always gets a slot - the earliest free one -
# and is told how long to sleep until it (ms, with sub-millisecond precision). Nobody asks twice,
# so a waiter that wakes late does not push later slots back: a busy event loop loses no rate.
# A hold (ARGV[3] > 0) moves the next free slot to at least now + ARGV[3] ms for every process:
# how a platform's retry_after on the whole bot is obeyed everywhere at once.
RESERVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, tolerance, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if hold > 0 then
  if now + hold > tat then tat = now + hold end
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
  return '0'
end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return string.format('%.3f', wait)
"""


class SharedRateLimiter:
    """At most `rate` acquisitions per second across all processes, with bursts up to `burst`."""

    def __init__(self, redis: Redis, key: str, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._key = key
        self._interval_ms = 1000.0 / rate
        self._tolerance_ms = self._interval_ms * (burst - 1)
        self._script = redis.register_script(GCRA_SCRIPT)
        self._reserve = redis.register_script(RESERVE_SCRIPT)

    async def try_acquire(self) -> float:
        """0 when a slot was taken now; otherwise the seconds to wait before trying again."""
        wait_ms = await self._script(keys=[self._key], args=[self._interval_ms, self._tolerance_ms])
        return float(wait_ms) / 1000.0

    async def reserve(self) -> float:
        """Books the earliest free slot; returns the seconds until it (0: now)."""
        wait_ms = await self._reserve(keys=[self._key], args=[self._interval_ms, self._tolerance_ms, 0])
        return float(wait_ms) / 1000.0

    async def acquire(self) -> None:
        """Waits for a slot: one round trip, then one sleep until the slot booked."""
        wait = await self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    async def hold(self, seconds: float) -> None:
        """No slot for anyone, in any process, for `seconds` from now (a platform's retry_after)."""
        if seconds > 0:
            await self._reserve(keys=[self._key], args=[self._interval_ms, self._tolerance_ms, seconds * 1000.0])

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        return None
