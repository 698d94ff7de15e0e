"""Health a PaaS can read: /healthz, /readyz (with the reasons, as JSON) and /metrics.

/healthz answers from the event loop itself, so a 200 means the process and its loop are alive.
/readyz fails, naming each reason, when Redis does not answer, an adapter is not connected,
linked agents have had no successful poll for 3 x POLL_MAX_SECONDS while AI-Trader answers (when
it does not, restarting the relay would not help, so that alone keeps it ready), or the oldest
queued delivery is older than READY_MAX_QUEUE_AGE_SECONDS (notifications held for quiet hours, a snooze or
a digest are not queued: they have a gauge of their own). /metrics refreshes the gauges that
describe shared state (read from Redis, so every process reports the same) before it renders.

Adapters report their state through an optional `state` attribute ("connected", "standby",
"starting", "failed", "stopped"); one without it counts as connected (the console).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relay.keys import Keys

READY_STATES = frozenset({"connected", "standby"})  # standby: another process holds the gateway, REST works
REDIS_TIMEOUT = 2.0  # seconds a health check waits for Redis; a PaaS probe itself times out soon after
OLDEST_SCAN = 200  # chats looked at (earliest due first) for the oldest queued delivery
BACKLOG_SCAN = 10_000  # chats whose queues are counted for the backlog gauge
UPSTREAM_DOWN_STREAK = 3  # consecutive unavailable polls that mean "AI-Trader is down" (poller.OUTAGE_STREAK)


@dataclass
class Snapshot:
    """Shared state as Redis says now, and this process's adapters."""

    redis_ok: bool = True
    redis_error: str = ""
    linked_agents: int = 0
    last_poll_ok: float | None = None
    upstream_down: bool = False
    backlog: int = 0
    chats_queued: int = 0
    oldest_queued: float | None = None  # epoch of the oldest queued delivery
    dead_letters: int = 0
    held: int = 0  # held for quiet hours or a snooze, or collected for a digest (relay.holding)
    adapters: dict[str, str] = field(default_factory=dict)


class Health:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        adapters: Mapping[str, object],
        registry: CollectorRegistry,
        *,
        poll_max_seconds: float,
        max_queue_age: float,
        running: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._r = redis
        self._k = keys
        self._adapters = adapters
        self._registry = registry
        self._stale_after = 3 * poll_max_seconds
        self._max_queue_age = max_queue_age
        self._running = running
        self._clock = clock
        self._started_at = clock()
        r = registry
        self.since_poll = Gauge(
            "relay_seconds_since_last_successful_poll",
            "Seconds since any process last polled any agent successfully (-1: never)",
            registry=r,
        )
        self.backlog = Gauge("relay_outbox_backlog", "Deliveries queued in every chat's outbox", registry=r)
        self.oldest = Gauge(
            "relay_outbox_oldest_age_seconds", "Age of the oldest queued delivery (0: none queued)", registry=r
        )
        self.dead = Gauge("relay_dead_letter_count", "Dead letters kept in Redis", registry=r)
        self.held = Gauge(
            "relay_held_backlog",
            "Notifications held for quiet hours or a snooze, or collected for a digest, not yet sent",
            registry=r,
        )
        self.connected = Gauge(
            "relay_adapter_connected", "1 when the adapter is connected (or on standby)", ["platform"], registry=r
        )
        self.linked = Gauge("relay_linked_agents", "Linked agents", registry=r)

    async def snapshot(self) -> Snapshot:
        snap = Snapshot(adapters={name: _state(a) for name, a in self._adapters.items()})
        try:
            await asyncio.wait_for(self._read(snap), REDIS_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            snap.redis_ok = False
            snap.redis_error = type(exc).__name__
        return snap

    async def _read(self, snap: Snapshot) -> None:
        r, k = self._r, self._k
        async with r.pipeline(transaction=False) as pipe:
            pipe.scard(k.agents())
            pipe.get(k.poll_last_ok())
            pipe.get(k.upstream_failures())
            pipe.zcard(k.outbox_ready())
            pipe.xlen(k.dead_letters())
            pipe.zrange(k.outbox_ready(), 0, BACKLOG_SCAN - 1)
            pipe.srandmember(k.hold_chats(), BACKLOG_SCAN)
            agents, last_ok, failures, queued, dead, chats, holding = await pipe.execute()
        snap.linked_agents = int(agents)
        snap.last_poll_ok = float(last_ok) if last_ok else None
        snap.upstream_down = int(failures or 0) >= UPSTREAM_DOWN_STREAK
        snap.chats_queued = int(queued)
        snap.dead_letters = int(dead)
        if holding:
            async with r.pipeline(transaction=False) as pipe:
                for chat in holding:
                    pipe.xlen(k.held(_text(chat)))
                    pipe.xlen(k.digest(_text(chat)))
                snap.held = sum(int(n) for n in await pipe.execute())
        if chats:
            async with r.pipeline(transaction=False) as pipe:
                for chat in chats:
                    pipe.xlen(k.outbox(_text(chat)))
                snap.backlog = sum(int(n) for n in await pipe.execute())
            # Chats due earliest hold the oldest entries (a chat waiting out a retry-after is due
            # later but may hold older ones, hence more than the first few).
            async with r.pipeline(transaction=False) as pipe:
                for chat in chats[:OLDEST_SCAN]:
                    pipe.xrange(k.outbox(_text(chat)), count=1)
                firsts = await pipe.execute()
            stamps = [int(_text(rows[0][0]).split("-")[0]) / 1000 for rows in firsts if rows]
            snap.oldest_queued = min(stamps) if stamps else None

    def reasons(self, snap: Snapshot) -> list[str]:
        """Why this process is not ready; empty when it is."""
        now = self._clock()
        out = []
        if not self._running():
            out.append("starting")
        if not snap.redis_ok:
            out.append(f"redis unreachable ({snap.redis_error})")
        out += [f"adapter {name} {state}" for name, state in snap.adapters.items() if state not in READY_STATES]
        if snap.redis_ok and snap.linked_agents and not snap.upstream_down:
            since = now - (snap.last_poll_ok or self._started_at)
            if since > self._stale_after:
                out.append(
                    f"no successful poll for {since:.0f} s (limit {self._stale_after:.0f} s) while AI-Trader answers"
                )
        if snap.oldest_queued is not None and now - snap.oldest_queued > self._max_queue_age:
            out.append(
                f"oldest queued delivery is {now - snap.oldest_queued:.0f} s old (limit {self._max_queue_age:.0f} s)"
            )
        return out

    def update_gauges(self, snap: Snapshot) -> None:
        now = self._clock()
        for name, state in snap.adapters.items():
            self.connected.labels(name).set(1 if state in READY_STATES else 0)
        if not snap.redis_ok:
            return  # keep the last values read rather than report zeros
        self.since_poll.set(now - snap.last_poll_ok if snap.last_poll_ok else -1)
        self.backlog.set(snap.backlog)
        self.oldest.set(max(0.0, now - snap.oldest_queued) if snap.oldest_queued else 0)
        self.dead.set(snap.dead_letters)
        self.held.set(snap.held)
        self.linked.set(snap.linked_agents)

    # --- HTTP ---------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        snap = await self.snapshot()
        self.update_gauges(snap)
        reasons = self.reasons(snap)
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "redis": "ok" if snap.redis_ok else snap.redis_error,
            "adapters": snap.adapters,
            "linked_agents": snap.linked_agents,
            "seconds_since_last_successful_poll": (
                round(self._clock() - snap.last_poll_ok, 1) if snap.last_poll_ok else None
            ),
            "ai_trader": "unavailable" if snap.upstream_down else "answering",
            "outbox_backlog": snap.backlog,
            "outbox_oldest_age_seconds": (round(self._clock() - snap.oldest_queued, 1) if snap.oldest_queued else None),
            "dead_letters": snap.dead_letters,
            "held_backlog": snap.held,
        }
        return JSONResponse(body, status_code=200 if not reasons else 503)

    async def metrics(self, request: Request) -> Response:
        self.update_gauges(await self.snapshot())
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", self.readyz, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]


def _state(adapter: object) -> str:
    state = getattr(adapter, "state", "connected")
    return state if isinstance(state, str) else "connected"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
