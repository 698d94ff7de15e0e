"""Holds the single gateway connection for the bot token: a Redis lease plus IDENTIFY backoff.

Only the lease holder connects (two sessions would both receive every interaction); every
process keeps REST for sends. IDENTIFY attempts are recorded in Redis (`DISCORD_IDENTIFY`), so a
crash-looping deployment backs off instead of spending Discord's 1,000 IDENTIFY a day (going over resets the
token). Must not handle events: the adapter does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import discord

from relay.adapter import KeyStore, Lease
from relay.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Below this many IDENTIFYs left today (GET /gateway/bot session_start_limit), wait for the reset.
_IDENTIFY_FLOOR = 10
# Close codes after which reconnecting cannot help (topics/opcodes-and-status-codes#gateway-close-event-codes):
# 4004 authentication failed, 4010 invalid shard, 4011 sharding required, 4012 invalid API version,
# 4013 invalid intent(s), 4014 disallowed intent(s). Retrying would only spend the IDENTIFY budget.
FATAL_CLOSE_CODES = {
    4004: "Discord rejected DISCORD_BOT_TOKEN (gateway close 4004); reset the token and restart",
    4010: "Discord refused the shard (gateway close 4010)",
    4011: "Discord requires sharding for this bot (gateway close 4011)",
    4012: "Discord refused the gateway version (gateway close 4012)",
    4013: "Discord refused the intents (gateway close 4013)",
    4014: "Discord refused a privileged intent the bot is not approved for (gateway close 4014); "
    "enable it in the Developer Portal or remove it, then restart",
}


def fatal_reason(exc: BaseException | None) -> str | None:
    """The one-line operator message for a gateway failure that reconnecting cannot fix."""
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return FATAL_CLOSE_CODES[4014]
    if isinstance(exc, discord.ConnectionClosed):
        return FATAL_CLOSE_CODES.get(exc.code or 0)
    if isinstance(exc, discord.LoginFailure):
        return FATAL_CLOSE_CODES[4004]
    return None


@dataclass(frozen=True, slots=True)
class GatewayTiming:
    """Lease and backoff timings; production defaults, shorter in tests."""

    lease_ttl: float = 30.0
    renew_every: float = 10.0
    retry_every: float = 5.0  # how often a non-holder asks for the lease
    identify_base: float = 2.0
    # ≥ 86.4 s between attempts keeps even an endless crash loop under 1,000 IDENTIFY a day.
    identify_cap: float = 150.0
    stable_after: float = 60.0  # a session that lived this long resets the backoff
    max_hook_wait: float = 30.0  # longest wait inside the handshake (Discord closes idle sockets)


class IdentifyBackoff:
    """Spacing of IDENTIFY attempts, persisted as {last, streak} (only the gateway lease holder
    identifies, so read-then-write needs no transaction)."""

    def __init__(self, store: KeyStore, timing: GatewayTiming, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._timing = timing
        self._clock = clock

    async def _read(self) -> tuple[float | None, int]:
        raw = await self._store.get()
        try:
            record = json.loads(raw) if raw else {}
            return float(record["last"]), int(record.get("streak", 0))
        except (ValueError, TypeError, KeyError):
            return None, 0

    def delay(self, streak: int) -> float:
        if streak <= 0:
            return 0.0
        return min(self._timing.identify_cap, self._timing.identify_base * 2.0 ** (streak - 1))

    async def wait_time(self) -> float:
        """Seconds until the next IDENTIFY is allowed."""
        try:
            last, streak = await self._read()
        except StoreUnavailable:
            log.warning("identify backoff unreadable: waiting the cap", exc_info=True)
            return self._timing.identify_cap
        if last is None:
            return 0.0
        return max(0.0, last + self.delay(streak) - self._clock())

    async def record_attempt(self) -> None:
        try:
            _, streak = await self._read()
            await self._store.put(value=json.dumps({"last": self._clock(), "streak": streak + 1}))
        except StoreUnavailable:
            log.warning("identify attempt not recorded", exc_info=True)

    async def mark_stable(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            last, _ = await self._read()
            if last is not None:
                await self._store.put(value=json.dumps({"last": last, "streak": 0}))


class GatewayHolder:
    """Runs `client.connect()` while this process holds the gateway lease; stops it when lost."""

    def __init__(
        self,
        client: discord.Client,
        lease: Lease,
        backoff: IdentifyBackoff,
        timing: GatewayTiming,
        before_connect: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._lease = lease
        self._backoff = backoff
        self._timing = timing
        self._before_connect = before_connect
        self._stable_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.holding = False
        self.failure: str | None = None  # set once, by a fatal close: the holder then stops for good

    def stop(self) -> None:
        """Ask `run` to disconnect, release the lease and return."""
        self._stopping.set()

    async def before_identify(self, initial: bool) -> None:
        """discord.py's hook before every IDENTIFY (its own reconnects included)."""
        wait = await self._backoff.wait_time()
        if not initial:
            wait = max(wait, 5.0)  # discord.py's own spacing for re-identifies
        if wait > 0:
            log.info("gateway identify waits seconds=%.1f", wait)
            await asyncio.sleep(min(wait, self._timing.max_hook_wait))
        await self._backoff.record_attempt()

    def on_ready(self) -> None:
        """READY arrived; once the session has lasted a while, the backoff starts over."""
        if self._stable_task:
            self._stable_task.cancel()
        self._stable_task = asyncio.create_task(self._mark_stable_later(), name="discord-gateway-stable")

    async def _mark_stable_later(self) -> None:
        await asyncio.sleep(self._timing.stable_after)
        if self.holding:
            await self._backoff.mark_stable()

    async def run(self) -> None:
        """Until cancelled: take the lease when free, hold the connection while it is ours."""
        while not self._stopping.is_set():
            try:
                got = await self._lease.acquire()
            except StoreUnavailable:
                log.warning("gateway lease unavailable", exc_info=True)
                got = False
            if not got:
                await self._pause(self._timing.retry_every)
                continue
            try:
                await self._hold()
            finally:
                self.holding = False
                if self._stable_task:
                    self._stable_task.cancel()
                await self._disconnect()
                with contextlib.suppress(StoreUnavailable):
                    await asyncio.shield(self._lease.release())
            await self._pause(self._timing.retry_every)

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the sleep ran its course."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def _hold(self) -> None:
        self.holding = True
        log.info("gateway lease taken owner=%s", self._lease.owner)
        wait = await self._backoff.wait_time()
        wait = max(wait, await self._identify_budget_wait())
        if wait > 0:
            log.warning("gateway connect delayed seconds=%.1f (identify backoff)", wait)
            if not await self._sleep_holding(wait):
                return
        await self._before_connect()
        if self._stopping.is_set():
            return
        connect = asyncio.create_task(self._client.connect(reconnect=True), name="discord-gateway")
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while True:
                await asyncio.wait(
                    {connect, stopping}, timeout=self._timing.renew_every, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping.done():
                    return
                if connect.done():
                    exc = connect.exception()
                    reason = fatal_reason(exc)
                    if reason is not None:
                        self.failure = reason
                        self._stopping.set()  # no reconnect: it would fail again and spend IDENTIFYs
                        log.error("discord gateway failed for good: %s", reason)
                        return
                    log.error("gateway connection ended error=%r", exc)
                    return
                if not await self._renew():
                    log.warning("gateway lease lost: disconnecting")
                    return
        finally:
            stopping.cancel()
            # Python 3.11's wait_for (inside discord.py's handshake) can swallow a cancellation
            # that lands just as the handshake completes, so cancel until the task has ended.
            while not connect.done():
                connect.cancel()
                await asyncio.wait({connect}, timeout=0.5)
            if not connect.cancelled():
                connect.exception()  # retrieved, so asyncio does not log it as unhandled

    async def _sleep_holding(self, seconds: float) -> bool:
        """Wait while keeping the lease, so no other process identifies meanwhile."""
        end = asyncio.get_running_loop().time() + seconds
        while (left := end - asyncio.get_running_loop().time()) > 0:
            if not await self._pause(min(left, self._timing.renew_every)):
                return False
            if not await self._renew():
                return False
        return True

    async def _renew(self) -> bool:
        try:
            return await self._lease.renew()
        except StoreUnavailable:
            # Redis down: keep the connection rather than flap; the lease is for efficiency.
            log.warning("gateway lease renew failed: keeping the connection", exc_info=True)
            return True

    async def _identify_budget_wait(self) -> float:
        """Discord's own count of IDENTIFYs left today; wait for its reset when nearly spent."""
        try:
            _shards, _url, limit = await self._client.http.get_bot_gateway()
        except (discord.HTTPException, discord.GatewayNotFound, aiohttp.ClientError, OSError):
            log.warning("GET /gateway/bot failed: relying on our own backoff", exc_info=True)
            return 0.0
        remaining = int(limit.get("remaining", _IDENTIFY_FLOOR + 1))
        if remaining > _IDENTIFY_FLOOR:
            return 0.0
        reset_after = float(limit.get("reset_after", 0)) / 1000.0
        log.error("discord identify budget nearly spent remaining=%d reset_in=%.0fs", remaining, reset_after)
        return reset_after

    @property
    def connected(self) -> bool:
        ws = self._client.ws
        return self.holding and ws is not None and ws.open

    async def _disconnect(self) -> None:
        ws = self._client.ws
        if ws is not None and ws.open:
            with contextlib.suppress(Exception):
                await ws.close(code=1000)
