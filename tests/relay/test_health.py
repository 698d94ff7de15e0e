"""/healthz, /readyz and /metrics over real HTTP, against a real Redis, the simulator and a relay.

Each not-ready reason is produced for real: a Redis nobody answers on, an adapter that reports
itself failed, linked agents whose polls stopped succeeding while AI-Trader answers, a queued
delivery older than the configured age.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from adapters.http_front import FrontServer
from aitrader_sim.world import World
from relay.app import Relay
from relay.embedded_redis import connect
from relay.health import Health
from relay.models import ChatRef, Message
from relay.outbox import Outgoing
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter


@dataclass
class Served:
    health: Health
    http: httpx.AsyncClient

    async def ready(self) -> tuple[int, dict[str, object]]:
        answer = await self.http.get("/readyz")
        body: dict[str, object] = answer.json()
        return answer.status_code, body


async def serve(health: Health) -> AsyncIterator[Served]:
    front = FrontServer(0, host="127.0.0.1")
    front.add(health.routes())
    await front.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{front.shared.port}", timeout=10) as http:
            yield Served(health, http)
    finally:
        await front.stop()


def make_health(relay: Relay, redis: Redis, **overrides: object) -> Health:
    values: dict[str, object] = {"poll_max_seconds": 10.0, "max_queue_age": 60.0}
    values.update(overrides)
    return Health(
        redis,
        relay.keys,
        relay.adapters,
        relay.metrics.registry,
        poll_max_seconds=float(values["poll_max_seconds"]),  # type: ignore[arg-type]
        max_queue_age=float(values["max_queue_age"]),  # type: ignore[arg-type]
    )


@pytest.fixture
async def served(relay: Relay, redis: Redis) -> AsyncIterator[Served]:
    async for s in serve(make_health(relay, redis)):
        yield s


async def test_healthz_answers_and_an_idle_relay_is_ready(served: Served) -> None:
    assert (await served.http.get("/healthz")).json() == {"status": "ok"}
    code, body = await served.ready()
    assert code == 200 and body["ready"] is True and body["reasons"] == []
    assert body["redis"] == "ok" and body["adapters"] == {"rec": "connected"}
    # Any other path is a 404, not the metrics page.
    assert (await served.http.get("/anything")).status_code == 404


async def test_redis_unreachable_is_a_named_reason(relay: Relay) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = connect(f"redis://127.0.0.1:{port}/0")
    try:
        async for s in serve(make_health(relay, dead)):
            code, body = await s.ready()
            assert code == 503
            reasons = body["reasons"]
            assert isinstance(reasons, list) and len(reasons) == 1
            # ConnectionError, or TimeoutError where the client retries the connect past the check's limit.
            assert reasons[0] in ("redis unreachable (ConnectionError)", "redis unreachable (TimeoutError)")
            assert (await s.http.get("/healthz")).status_code == 200  # the process itself is fine
    finally:
        await dead.aclose()


async def test_a_disconnected_adapter_is_a_named_reason(
    served: Served, adapter: RecordingAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapter, "state", "failed", raising=False)
    code, body = await served.ready()
    assert code == 503 and body["reasons"] == ["adapter rec failed"]
    metrics = (await served.http.get("/metrics")).text
    assert 'relay_adapter_connected{platform="rec"} 0.0' in metrics
    monkeypatch.setattr(adapter, "state", "standby", raising=False)  # REST works, gateway elsewhere
    assert (await served.ready())[0] == 200


async def test_no_successful_poll_for_three_max_intervals_while_ai_trader_answers(
    relay: Relay, redis: Redis, dm: Chat, world: World
) -> None:
    agent = world.create_agent("polled")
    await dm.text("link", token=agent.token)
    await relay.poller.poll(agent.id)
    health = make_health(relay, redis, poll_max_seconds=10.0)
    async for s in serve(health):
        code, body = await s.ready()
        assert code == 200, body
        assert isinstance(body["seconds_since_last_successful_poll"], float)
        # The last success was 31 s ago (> 3 x 10 s), and no outage streak: AI-Trader answers.
        await redis.set(relay.keys.poll_last_ok(), time.time() - 31)
        code, body = await s.ready()
        assert code == 503
        reasons = body["reasons"]
        assert isinstance(reasons, list) and len(reasons) == 1
        reason = str(reasons[0])
        assert reason.startswith("no successful poll for 31 s (limit 30 s) while AI-Trader answers"), reason
        assert "relay_seconds_since_last_successful_poll 31" in (await s.http.get("/metrics")).text
        # AI-Trader down (the poller's outage streak): restarting the relay would not help.
        await redis.set(relay.keys.upstream_failures(), 3)
        code, body = await s.ready()
        assert code == 200 and body["ai_trader"] == "unavailable", body


async def test_oldest_queued_delivery_older_than_the_limit(relay: Relay, redis: Redis) -> None:
    chat = ChatRef("rec", "old")
    now = time.time()
    items = [Outgoing(chat, f"k{i}", Message(title="t", body=str(i))) for i in range(3)]
    await relay.outbox.enqueue(items, now=now)
    await redis.set(relay.keys.poll_last_ok(), now)
    async for s in serve(make_health(relay, redis, max_queue_age=60.0)):
        code, body = await s.ready()
        assert code == 200 and body["outbox_backlog"] == 3
        metrics = (await s.http.get("/metrics")).text
        assert "relay_outbox_backlog 3.0" in metrics
        assert "relay_dead_letter_count 0.0" in metrics and "relay_linked_agents 0.0" in metrics
    # The same queue, seen two minutes later.
    late = Health(
        redis,
        relay.keys,
        relay.adapters,
        CollectorRegistry(),
        poll_max_seconds=10.0,
        max_queue_age=60.0,
        clock=lambda: now + 120,
    )
    reasons = late.reasons(await late.snapshot())
    assert len(reasons) == 1 and reasons[0].startswith("oldest queued delivery is 12"), reasons
    assert reasons[0].endswith("s old (limit 60 s)")
