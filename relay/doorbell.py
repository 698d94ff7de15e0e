"""The WebSocket doorbell: a push from AI-Trader means "poll this agent now", nothing more.

AI-Trader pushes `{type, content, data}` to `/ws/notify/{agent_id}` for each notification it
records (docs/upstream.md §6). The frames carry no id and the server keeps ONE socket per agent
id, so a push can be missed (our socket replaced by the agent's own client or the web UI, a
reconnect gap) and cannot be deduplicated: the heartbeat stays the source of truth, and a frame's
content is never read. What a push buys is latency: the agent is polled within seconds instead
of at its next interval.

- Consume mode only: an observe-mode agent is never polled through the heartbeat, and its own
  client may want the socket.
- Sharded by a lease per agent (`Keys.doorbell_lease`): only the process holding it opens the
  agent's socket, so K processes never fight over the one slot upstream; a dead process's
  sockets move on when its leases expire. At most `max_sockets` per process.
- Pushes are coalesced: at most one extra poll per agent every `ring_gap` seconds (a flood of
  pushes costs one poll per gap). A (re)connect rings once, for what the gap may have hidden.
- Reconnects back off with full jitter up to `backoff_cap`; a socket that stayed open
  `STABLE_SECONDS` starts the count again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from redis.exceptions import RedisError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from relay import __version__
from relay.backoff import full_jitter
from relay.keys import Keys
from relay.leases import Leases
from relay.metrics import Metrics
from relay.store import LinkedAgent, Store

log = logging.getLogger(__name__)

PollNow = Callable[[int], Awaitable[bool]]

# Renewed every 20 s while the socket is held. Long, because every held socket renews its own
# (at 1,000 sockets, a 30 s lease was 3 % of the relay's CPU under py-spy); a dead process's
# sockets move on within a minute, and polling covers that minute.
LEASE_MS = 60_000
SYNC_SECONDS = 5.0  # how often linked agents are matched to sockets (and a dead holder's taken over)
RECHECK_SECONDS = 30.0  # a held agent's record (mode, state, token) is read again this often
INELIGIBLE_SECONDS = 60.0  # an observe-mode or paused agent is looked at again after this
TAKEN_SECONDS = 15.0  # an agent whose lease another process holds: tried again after this
STABLE_SECONDS = 30.0  # a socket open this long resets the reconnect backoff
BUSY_RETRIES = 2  # rings answered "busy" (a poll already running) that are tried again
MAX_FRAME = 1 << 20  # frames are never parsed; a larger one just ends the socket


@dataclass(frozen=True, slots=True)
class DoorbellSettings:
    max_sockets: int = 1000
    ring_gap: float = 2.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0


FILES_KEPT = 512  # file descriptors left for Redis, httpx, the platforms and the HTTP server


def socket_budget(requested: int, open_files_limit: int | None = None) -> int:
    """`DOORBELL_MAX_SOCKETS`, lowered to what the process's open-file limit leaves: every socket
    is a file descriptor, and at a common soft limit of 1024, 1000 sockets would starve Redis and
    httpx of connections ("Too many open files"). `open_files_limit` for tests."""
    if open_files_limit is None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        open_files_limit = soft if soft != resource.RLIM_INFINITY else None
    if open_files_limit is None:
        return requested
    return max(0, min(requested, open_files_limit - FILES_KEPT))


def eligible(agent: LinkedAgent | None) -> bool:
    return agent is not None and agent.state == "active" and agent.mode == "consume" and agent.token is not None


def websocket_base(http_base: str) -> str:
    """`https://ai4trade.ai` -> `wss://ai4trade.ai` (the server serves both on one origin)."""
    if http_base.startswith("https://"):
        return "wss://" + http_base.removeprefix("https://")
    return "ws://" + http_base.removeprefix("http://")


@dataclass
class _Held:
    token: str
    checked: float
    task: asyncio.Task[None] | None = None
    polling: bool = False
    closing: bool = False
    rung: asyncio.Event = field(default_factory=asyncio.Event)


class Doorbell:
    def __init__(
        self,
        store: Store,
        leases: Leases,
        keys: Keys,
        poll_now: PollNow,
        base_url: str,
        metrics: Metrics,
        settings: DoorbellSettings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._leases = leases
        self._k = keys
        self._poll_now = poll_now
        self._ws_base = websocket_base(base_url.rstrip("/"))
        self._metrics = metrics
        self._s = settings
        self._rng = rng or random.Random()
        self._held: dict[int, _Held] = {}
        self._skip_until: dict[int, float] = {}
        self._open: set[int] = set()
        self._loop: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def sockets(self) -> int:
        """Sockets open now in this process."""
        return len(self._open)

    def holds(self, agent_id: int) -> bool:
        return agent_id in self._held

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.create_task(self._sync_forever(), name="doorbell sync")

    async def stop(self, timeout: float = 2.0) -> None:
        """Close every socket and give the leases back, within `timeout`. A poll a push started
        is left running: it belongs to the poller now, whose own stop gives it the grace."""
        self._stopping = True
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.wait({self._loop}, timeout=1.0)
        tasks = [h.task for h in self._held.values() if h.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _sync_forever(self) -> None:
        while not self._stopping:
            try:
                await self.sync()
            except RedisError as exc:
                log.warning("doorbell: cannot read linked agents (%s)", type(exc).__name__)
            except Exception:
                log.exception("doorbell: sync failed")
            await asyncio.sleep(SYNC_SECONDS)

    async def sync(self) -> None:
        """Open sockets for linked consume-mode agents nobody holds, up to the cap; close those
        whose agent is gone, paused, observed or relinked with another token."""
        if self._stopping:
            return
        ids = await self._store.agent_ids()
        wanted = set(ids)
        now = time.monotonic()
        for agent_id, held in list(self._held.items()):
            if agent_id not in wanted:
                self._let_go(agent_id)
            elif now - held.checked >= RECHECK_SECONDS:
                held.checked = now
                agent = await self._store.agent(agent_id)
                if not eligible(agent) or (agent is not None and agent.token != held.token):
                    self._let_go(agent_id)  # a relinked agent gets a new socket at the next sync
        self._skip_until = {a: t for a, t in self._skip_until.items() if a in wanted and t > now}
        for agent_id in ids:
            if len(self._held) >= self._s.max_sockets or self._stopping:
                break
            if agent_id in self._held or agent_id in self._skip_until:
                continue
            agent = await self._store.agent(agent_id)
            if agent is None or not eligible(agent) or agent.token is None:
                self._skip_until[agent_id] = now + INELIGIBLE_SECONDS
                continue
            if not await self._leases.acquire(self._k.doorbell_lease(agent_id), LEASE_MS):
                # Another process holds its socket. Tried again later, to take over from a dead
                # one (whose lease expires within LEASE_MS), without re-reading every agent each sync.
                self._skip_until[agent_id] = now + TAKEN_SECONDS
                continue
            held = _Held(token=agent.token, checked=now)
            self._held[agent_id] = held
            held.task = asyncio.create_task(self._hold(agent_id, held), name=f"doorbell {agent_id}")
        self._metrics.doorbell_held.set(len(self._held))

    def _let_go(self, agent_id: int) -> None:
        held = self._held.get(agent_id)
        if held is not None and held.task is not None:
            held.task.cancel()

    # --- one agent -----------------------------------------------------------------------
    async def _hold(self, agent_id: int, held: _Held) -> None:
        key = self._k.doorbell_lease(agent_id)
        answer = asyncio.create_task(self._answer(agent_id, held), name=f"doorbell answer {agent_id}")
        listen = asyncio.create_task(self._listen(agent_id, held), name=f"doorbell socket {agent_id}")
        keep = asyncio.create_task(self._keep_lease(key), name=f"doorbell lease {agent_id}")
        try:
            await asyncio.wait({listen, keep}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            held.closing = True
            for task in (listen, keep):
                task.cancel()
            await asyncio.wait({listen, keep}, timeout=2.0)
            if not held.polling:
                answer.cancel()  # else it ends after its poll (which the poller's stop bounds)
            with contextlib.suppress(RedisError):
                await self._leases.release(key)
            if self._held.get(agent_id) is held:
                del self._held[agent_id]
            self._metrics.doorbell_held.set(len(self._held))

    async def _keep_lease(self, key: str) -> None:
        """Returns when the lease is lost: then another process may open the socket instead."""
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            try:
                if not await self._leases.renew(key, LEASE_MS):
                    log.info("doorbell: lease lost key=%s; closing the socket", key)
                    return
            except RedisError as exc:
                # Debug only: in a Redis outage every socket would say it every 10 s (the outage
                # itself is reported by the poller and /readyz).
                log.debug("doorbell: lease renewal failed key=%s (%s)", key, type(exc).__name__)

    async def _listen(self, agent_id: int, held: _Held) -> None:
        failures = 0
        url = f"{self._ws_base}/ws/notify/{agent_id}?token={quote(held.token, safe='')}"
        while not self._stopping:
            opened: float | None = None
            try:
                async with connect(
                    url,
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=1,
                    max_size=MAX_FRAME,
                    compression=None,
                    user_agent_header=f"aitrader-relay/{__version__}",
                ) as ws:
                    opened = time.monotonic()
                    self._open.add(agent_id)
                    self._metrics.doorbell_connects.labels("open").inc()
                    self._metrics.doorbell_sockets.set(len(self._open))
                    held.rung.set()  # what was pushed while we were not listening
                    async for _ in ws:  # the content is untrusted and not needed: it only rings
                        self._metrics.doorbell_pushes.inc()
                        held.rung.set()
                reason = "closed by the server"
            except InvalidStatus as exc:
                # 403: the token no longer matches (the poller pauses the agent on its next 401);
                # 404 or 200: a server without WebSocket support.
                reason = f"refused with HTTP {exc.response.status_code}"
                self._metrics.doorbell_connects.labels("refused").inc()
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = type(exc).__name__
                if opened is None:
                    self._metrics.doorbell_connects.labels("failed").inc()
            except Exception as exc:  # never end the loop: the lease would go round every sync
                # The type only: a message could quote the URL, which carries the token.
                reason = f"unexpected {type(exc).__name__}"
                self._metrics.doorbell_connects.labels("failed").inc()
            finally:
                self._open.discard(agent_id)
                self._metrics.doorbell_sockets.set(len(self._open))
            if opened is not None and time.monotonic() - opened >= STABLE_SECONDS:
                failures = 0
            failures += 1
            wait = full_jitter(failures, base=self._s.backoff_base, cap=self._s.backoff_cap, rng=self._rng)
            level = logging.INFO if failures == 1 else logging.DEBUG
            log.log(
                level, "doorbell: socket agent=%s %s; again in %.1fs (attempt %d)", agent_id, reason, wait, failures
            )
            await asyncio.sleep(wait)

    async def _answer(self, agent_id: int, held: _Held) -> None:
        """One poll per ring, at most one per `ring_gap`; pushes meanwhile fold into the next."""
        last = float("-inf")
        busy = 0
        while not held.closing:
            await held.rung.wait()
            delay = last + self._s.ring_gap - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            held.rung.clear()
            last = time.monotonic()
            held.polling = True
            try:
                polled = await self._poll_now(agent_id)
            finally:
                held.polling = False
            self._metrics.doorbell_polls.labels("polled" if polled else "busy").inc()
            # Busy: a poll of this agent was already running (here or in another process) and may
            # have read the heartbeat before the pushed row existed. Ring again after the gap.
            if polled:
                busy = 0
            elif busy < BUSY_RETRIES:
                busy += 1
                held.rung.set()
            else:
                busy = 0
