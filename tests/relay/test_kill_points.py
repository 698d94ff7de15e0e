"""A real relay process killed with SIGKILL at each point of the pipeline, then restarted.

The process runs `aitrader-relay run --console` against the simulator and the test Redis; it
freezes at a named fault point (RELAY_FAULT_PAUSE), the test kills it there, starts a fresh one,
and reads what reached the console chat. Nothing may be lost; duplicates are counted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.faults import MARKER
from relay.keys import Keys
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import TokenBox
from tests.fakes.relay_process import RelayProcess, relay_env


@pytest.fixture
def fast_world() -> World:
    return World(seed=5, poll_interval_seconds=1)


@pytest.fixture
async def fast_sim(fast_world: World) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(fast_world) as server:
        yield server


async def prepared(fast_world: World, redis: Redis, keys: Keys, secret_key: str) -> int:
    """An agent linked by the console user, routed into the console chat."""
    agent = fast_world.create_agent("kp")
    store = Store(redis, keys, TokenBox.from_text(secret_key))
    await store.link("console:you", agent.id, agent.name, agent.token, "consume")
    await store.add_subscription(Subscription(0, "agent", ChatRef("console", "local"), agent_id=agent.id))
    return agent.id


def delivered_counts(text: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for match in re.finditer(r"killtest-(\d+)\b", text):
        counts[int(match.group(1))] = counts.get(int(match.group(1)), 0) + 1
    return counts


@pytest.mark.parametrize("point", ["after_heartbeat", "after_persist", "after_send"])
async def test_killed_at_each_point_then_restarted_loses_nothing(
    point: str,
    fast_world: World,
    fast_sim: SimulatorServer,
    redis_url: str,
    redis: Redis,
    keys: Keys,
    prefix: str,
    secret_key: str,
) -> None:
    agent_id = await prepared(fast_world, redis, keys, secret_key)
    ids = fast_world.push_messages(agent_id, 6, type="custom_note", content_fmt="killtest-{i}")
    first = RelayProcess(relay_env(fast_sim.url, redis_url, prefix, secret_key, RELAY_FAULT_PAUSE=point))
    await first.start()
    await first.wait_for(lambda: f"{MARKER}: {point}" in first.err)
    await first.kill()
    assert sorted(fast_world.handed_out(agent_id)) == sorted(ids)  # the server marked all 6 read

    second = RelayProcess(relay_env(fast_sim.url, redis_url, prefix, secret_key))
    await second.start()
    await second.wait_for(lambda: len(delivered_counts(first.out + second.out)) == 6)
    await second.terminate()  # exits 0 after logging "relay stopped"

    counts = delivered_counts(first.out + second.out)
    assert sorted(counts) == [0, 1, 2, 3, 4, 5]  # every message arrived
    duplicates = sum(c - 1 for c in counts.values())
    if point == "after_send":
        # The first process printed one notification and died before acknowledging it: that one
        # send's outcome was unknown, so it may arrive twice, and nothing else may.
        assert duplicates <= 1
    else:
        assert duplicates == 0
