"""The WebSocket doorbell (relay/doorbell.py) against the simulator's `/ws/notify/{id}`.

Polling is set to once an hour, so anything delivered after the first poll was fetched because
a push rang: with the doorbell broken these tests time out. Conditions are waited for with a
deadline, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import Callable

import httpx
from redis.asyncio import Redis

from aitrader_sim import SimulatorServer, World
from aitrader_sim.notify import NotifySockets
from relay import logs
from relay.app import Relay
from relay.config import RelaySettings
from relay.doorbell import FILES_KEPT, socket_budget
from relay.logs import Redactor
from relay.models import ChatRef
from relay.store import Subscription
from relay.tokens import TokenBox
from tests.conftest import make_settings
from tests.fakes.recording import RecordingAdapter
from tests.relay.test_pipeline import message_ids

DEADLINE = 45.0
HOUR = 3600


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def hourly(sim: SimulatorServer, redis_url: str, prefix: str, secret_key: str, **overrides: object) -> RelaySettings:
    return make_settings(
        sim.url, redis_url, prefix, secret_key, poll_min_seconds=HOUR, poll_max_seconds=HOUR, **overrides
    )


def registry(sim: SimulatorServer) -> NotifySockets:
    assert sim.notify is not None
    return sim.notify


async def link(relay: Relay, world: World, name: str, mode: str = "consume") -> int:
    agent = world.create_agent(name)
    await relay.store.link(f"rec:{name}", agent.id, agent.name, agent.token, mode)  # type: ignore[arg-type]
    await relay.store.add_subscription(Subscription(0, "agent", ChatRef("rec", name), agent_id=agent.id))
    return agent.id


def polls(relay: Relay, outcome: str) -> float:
    return float(relay.metrics.doorbell_polls.labels(outcome)._value.get())


async def first_poll_done(relay: Relay, agent_id: int) -> None:
    """The scheduler's first poll (within 5 s of start); after it, only a push polls again."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while (agent := await relay.store.agent(agent_id)) is None or agent.last_ok is None:
        assert loop.time() < end, "no first poll"
        await asyncio.sleep(0.05)


def relay_with(settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox) -> Relay:
    return Relay(settings, redis, http, box, [RecordingAdapter()], redactor=Redactor(), rng=random.Random(5))


def sink(relay: Relay) -> RecordingAdapter:
    adapter = relay.adapters["rec"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter


async def test_a_push_polls_the_agent_within_seconds_not_at_its_interval(
    sim: SimulatorServer,
    world: World,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    relay = relay_with(hourly(sim, redis_url, prefix, secret_key), redis, http, box)
    agent_id = await link(relay, world, "ann")
    async with relay:
        await until(lambda: agent_id in registry(sim).connections, "the relay's socket")
        await first_poll_done(relay, agent_id)
        heartbeats = world.heartbeat_counts[agent_id]
        ids = world.push_messages(agent_id, 3, type="custom_note", content_fmt="rung {i}")
        await until(lambda: set(ids) <= set(message_ids(sink(relay))), "delivery after the push")
        assert world.heartbeat_counts[agent_id] > heartbeats
        assert relay.metrics.doorbell_pushes._value.get() >= 1
        assert polls(relay, "polled") >= 1
    assert sorted(message_ids(sink(relay))) == sorted(ids)
    # Stopped: the socket is closed and the lease given back.
    await until(lambda: agent_id not in registry(sim).connections, "the socket closed at stop")
    assert await redis.get(relay.keys.doorbell_lease(agent_id)) is None


async def test_observe_mode_never_opens_a_socket_and_the_setting_turns_it_all_off(
    sim: SimulatorServer,
    world: World,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    relay = relay_with(hourly(sim, redis_url, prefix, secret_key), redis, http, box)
    watcher = await link(relay, world, "obs", mode="observe")
    consumer = await link(relay, world, "con")
    async with relay:
        # One sync looks at both agents; once the consumer's socket is open the observer was skipped.
        await until(lambda: consumer in registry(sim).connections, "the consumer's socket")
        assert relay.doorbell is not None and not relay.doorbell.holds(watcher)
        assert watcher not in registry(sim).connections
        assert registry(sim).stats.accepted == 1
    off = relay_with(hourly(sim, redis_url, prefix, secret_key, doorbell=False), redis, http, box)
    assert off.doorbell is None
    accepted = registry(sim).stats.accepted
    async with off:
        await first_poll_done(off, consumer)
    assert registry(sim).stats.accepted == accepted  # no socket was opened


async def test_a_flood_of_pushes_costs_at_most_one_poll_per_two_seconds(
    sim: SimulatorServer,
    world: World,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    relay = relay_with(hourly(sim, redis_url, prefix, secret_key), redis, http, box)
    agent_id = await link(relay, world, "ann")
    async with relay:
        await until(lambda: agent_id in registry(sim).connections, "the relay's socket")
        await first_poll_done(relay, agent_id)
        world.faults.ws_flood = 199  # 200 frames per push
        loop = asyncio.get_running_loop()
        started = loop.time()
        heartbeats = world.heartbeat_counts[agent_id]
        ids = world.push_messages(agent_id, 5, type="custom_note", content_fmt="flood {i}")
        await until(lambda: relay.metrics.doorbell_pushes._value.get() >= 1000, "the flood heard")
        await until(lambda: set(ids) <= set(message_ids(sink(relay))), "delivery")
        elapsed = loop.time() - started
        extra = world.heartbeat_counts[agent_id] - heartbeats
    # 1,000 pushes; each poll is one heartbeat call here. At most one poll per 2 s, plus the first.
    assert 1 <= extra <= elapsed / 2 + 2, (extra, elapsed)
    assert sorted(message_ids(sink(relay))) == sorted(ids)


async def test_sockets_are_sharded_by_lease_and_capped_per_process(
    sim: SimulatorServer,
    world: World,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    first = relay_with(hourly(sim, redis_url, prefix, secret_key, doorbell_max_sockets=2), redis, http, box)
    second = relay_with(hourly(sim, redis_url, prefix, secret_key, doorbell_max_sockets=2), redis, http, box)
    agents = [await link(first, world, f"a{i}") for i in range(3)]
    reg = registry(sim)
    async with first:
        await until(lambda: len(reg.connections) == 2, "two sockets from the first process")
        bell = first.doorbell
        assert bell is not None
        # The server registers a socket as its handshake ends, the relay counts it a moment later.
        await until(lambda: bell.sockets == 2, f"the first process counts its two sockets ({bell.sockets})")
        async with second:
            await until(lambda: len(reg.connections) == 3, "the third agent's socket from the second")
            other = second.doorbell
            assert other is not None

            def held_by() -> list[tuple[bool, bool]]:
                return [(bell.holds(a), other.holds(a)) for a in agents]

            await until(lambda: all(a != b for a, b in held_by()), f"each agent in one process: {held_by()}")
            # No process opened a second socket for an agent the other holds (it would replace it).
            assert reg.stats.accepted == 3
        # The second process stopped and gave its lease back: the first is at its cap, so the
        # agent it held waits for a process with room, and nobody else replaced anything.
        await until(lambda: len(reg.connections) == 2, "the second process's socket closed")
        assert reg.stats.accepted == 3


async def test_a_dropped_socket_reconnects_and_catches_up(
    sim: SimulatorServer,
    world: World,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    relay = relay_with(hourly(sim, redis_url, prefix, secret_key), redis, http, box)
    agent_id = await link(relay, world, "ann")
    reg = registry(sim)
    async with relay:
        await until(lambda: agent_id in reg.connections, "the relay's socket")
        await first_poll_done(relay, agent_id)
        await reg.drop(agent_id)
        await until(lambda: agent_id not in reg.connections, "the drop")
        # Created around the reconnect: pushed or not, the reconnect itself rings once.
        ids = world.push_messages(agent_id, 2, type="custom_note", content_fmt="gap {i}")
        await until(lambda: reg.stats.accepted >= 2, "the reconnect")
        await until(lambda: set(ids) <= set(message_ids(sink(relay))), "delivery after the reconnect")


async def test_the_token_in_the_socket_url_reaches_no_log_line_at_debug(
    sim: SimulatorServer,
    world: World,
    redis_url: str,
    prefix: str,
    secret_key: str,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
) -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    redactor = logs.configure("DEBUG", stream=buffer)
    relay = Relay(hourly(sim, redis_url, prefix, secret_key), redis, http, box, [RecordingAdapter()], redactor=redactor)
    reg = registry(sim)
    try:
        async with relay:
            # Linked after start, so the redactor was never told this token: only the URL
            # pattern and the quieted websockets logger stand between it and the log.
            agent_id = await link(relay, world, "canary")
            token = world.agents[agent_id].token
            assert token not in redactor
            await until(lambda: agent_id in reg.connections, "the relay's socket")
            world.rotate_token(agent_id)  # the next handshake is refused (403)
            await reg.drop(agent_id)
            await until(lambda: reg.stats.refused >= 1, "a refused reconnect")
            await until(lambda: "refused with HTTP 403" in buffer.getvalue(), "the refusal logged")
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    assert token not in buffer.getvalue()


def test_the_socket_cap_leaves_files_for_everything_else() -> None:
    assert socket_budget(1000, open_files_limit=1024) == 1024 - FILES_KEPT
    assert socket_budget(1000, open_files_limit=20_000) == 1000
    assert socket_budget(1000, open_files_limit=300) == 0  # then no doorbell at all
