"""10 % of heartbeat responses cut after the server marked them read: nothing may be lost."""

from __future__ import annotations

import asyncio
import math

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from tests.conftest import agents_with_own_chats
from tests.fakes.recording import RecordingAdapter


@pytest.mark.parametrize(
    "rounds",
    [pytest.param(25, id="short"), pytest.param(300, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)])],
)
async def test_ten_percent_lost_heartbeat_responses_lose_nothing(
    rounds: int, relay: Relay, world: World, adapter: RecordingAdapter
) -> None:
    agents = await agents_with_own_chats(relay, world, adapter, 8, "l")
    world.faults.lose_heartbeat_responses = 0.1
    world.faults.lose_mode = "cut"
    pushed: list[int] = []
    for r in range(rounds):
        for a in agents:
            pushed += world.push_messages(a, 1 + (r + a) % 4, type="custom_note", content_fmt="lost-test {i}")
        for a in agents:
            await relay.redis.delete(relay.keys.next_poll(a))
        await asyncio.gather(*(relay.poller.poll_if_due(a) for a in agents))
    world.faults.lose_heartbeat_responses = 0.0
    for a in agents:  # one clean poll each to reconcile what the last round lost
        await relay.redis.delete(relay.keys.next_poll(a))
        await relay.poller.poll_if_due(a)
    await relay.deliverer.drain_due(math.inf)
    delivered = [int(s.key.split(":")[1][1:]) for s in adapter.sent if ":m" in s.key]
    lost = set(pushed) - set(delivered)
    print(
        f"\nlost-responses: rounds={rounds} pushed={len(pushed)} responses_lost={world.lost_heartbeats} "
        f"recovered={relay.metrics.reconciled._value.get():.0f} lost={len(lost)} duplicates={len(delivered) - len(set(delivered))}"
    )
    assert world.lost_heartbeats > 0  # the fault really fired
    assert lost == set()
    assert len(delivered) == len(set(delivered))
