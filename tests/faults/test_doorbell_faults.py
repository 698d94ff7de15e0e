"""The doorbell under socket faults: sockets dropped at random and all at once, every push
flooded, and the agent's own WebSocket client taking the one socket per agent id away from the
relay (and then closing, which leaves the relay's socket deaf), all while messages are created.

A push only ever starts a poll, so whatever happens to the sockets: nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from aitrader_sim import SimulatorServer, World
from aitrader_sim.notify import NotifySockets
from relay.app import Relay
from tests.conftest import agents_with_own_chats
from tests.fakes.recording import RecordingAdapter
from tests.relay.test_pipeline import message_ids

DEADLINE = 180.0


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("agents", "rounds"),
    [
        pytest.param(5, 20, id="short"),
        pytest.param(20, 400, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
    ],
)
async def test_dropped_and_flooded_sockets_lose_nothing_and_duplicate_nothing(
    agents: int, rounds: int, relay: Relay, world: World, sim: SimulatorServer, adapter: RecordingAdapter
) -> None:
    rng = random.Random(agents * 1000 + rounds)
    assert sim.notify is not None
    reg: NotifySockets = sim.notify
    ids = await agents_with_own_chats(relay, world, adapter, agents, "bell")
    tokens = {a: world.agents[a].token for a in ids}
    created: list[int] = []
    async with relay:
        await until(lambda: set(ids) <= set(reg.connections), "every agent's socket")
        world.faults.update({"ws_drop_probability": 0.15, "ws_flood": 20})
        for r in range(rounds):
            for a in ids:
                created += world.push_messages(a, rng.randint(0, 3), type="custom_note", content_fmt=f"bell-{r} {{i}}")
            if r % 7 == 3:
                await reg.drop()  # every socket at once, as a server restart would
            if r % 10 == 5:
                # The agent's own client takes the slot (the relay's socket goes deaf), then closes
                # (the entry is deleted: nobody hears this agent's pushes until the relay reconnects).
                victim = rng.choice(ids)
                url = sim.url.replace("http://", "ws://") + f"/ws/notify/{victim}?token={tokens[victim]}"
                async with connect(url, proxy=None):
                    created += world.push_messages(victim, 2, type="custom_note", content_fmt=f"own-client-{r} {{i}}")
                    await asyncio.sleep(rng.uniform(0, 0.3))
            await asyncio.sleep(rng.uniform(0, 0.2))
        world.faults.update({"ws_drop_probability": 0.0, "ws_flood": 0})
        await until(lambda: set(created) <= set(message_ids(adapter)), "every message delivered")
    delivered = message_ids(adapter)
    m = relay.metrics
    print(
        f"\ndoorbell faults: agents={agents} rounds={rounds} created={len(created)} delivered={len(set(delivered))} "
        f"duplicates={len(delivered) - len(set(delivered))} sockets_dropped={reg.stats.dropped} "
        f"frames_pushed={reg.stats.pushed} unrouted={reg.stats.unrouted} "
        f"pushes_heard={m.doorbell_pushes._value.get():.0f} "
        f"polls_rung={m.doorbell_polls.labels('polled')._value.get():.0f} "
        f"busy={m.doorbell_polls.labels('busy')._value.get():.0f} "
        f"connects={m.doorbell_connects.labels('open')._value.get():.0f}"
    )
    assert sorted(set(delivered)) == sorted(created)  # nothing lost, nothing invented
    assert len(delivered) == len(set(delivered))  # nothing twice
    # The faults really fired, and the doorbell really rang through them.
    assert reg.stats.dropped > 0
    assert reg.stats.pushed > len(created)  # the flood
    assert relay.metrics.doorbell_pushes._value.get() > 0
    assert relay.metrics.doorbell_polls.labels("polled")._value.get() > 0
    assert relay.metrics.doorbell_connects.labels("open")._value.get() > agents  # reconnects
    assert world.overlapping_heartbeats == 0  # a push never polls beside a running poll
