"""Three relay processes on one Redis, one killed (SIGKILL) and restarted at intervals: each agent
is polled by one process at a time, and nothing is lost."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.keys import Keys
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import TokenBox
from tests.fakes.relay_process import RelayProcess, relay_env
from tests.relay.test_kill_points import delivered_counts


def started(process: RelayProcess) -> Callable[[], bool]:
    return lambda: "relay started" in process.err


@pytest.mark.parametrize(
    ("seconds", "kill_every"),
    [
        pytest.param(12, 4, id="short"),
        pytest.param(600, 60, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
    ],
)
async def test_three_processes_one_killed_at_intervals(
    seconds: float, kill_every: float, redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
) -> None:
    world = World(seed=3, poll_interval_seconds=1)
    world.faults.slow_seconds = 0.05  # heartbeats take time, so two pollers at once would overlap
    rng = random.Random(5)
    async with SimulatorServer(world) as sim:
        store = Store(redis, keys, TokenBox.from_text(secret_key))
        agents = []
        for i in range(20):
            agent = world.create_agent(f"s{i}")
            await store.link(f"console:u{i}", agent.id, agent.name, agent.token, "consume")
            await store.add_subscription(Subscription(0, "agent", ChatRef("console", "local"), agent_id=agent.id))
            agents.append(agent.id)
        env = relay_env(sim.url, redis_url, prefix, secret_key)
        procs = [RelayProcess(env) for _ in range(3)]
        everyone = list(procs)
        for p in procs:
            await p.start()
        n = kills = 0
        # Counted in kills, not wall-clock: on a loaded machine a kill and restart can take longer
        # than the spacing, and a timed loop then ended with fewer kills than the test is about.
        planned = max(2, round(seconds / kill_every))
        last_kill = time.monotonic()
        while kills < planned:
            world.push_message(rng.choice(agents), "custom_note", f"killtest-{n}")
            n += 1
            await asyncio.sleep(0.1)
            if time.monotonic() - last_kill >= kill_every:
                victim = rng.randrange(3)
                await procs[victim].kill()
                procs[victim] = RelayProcess(env)
                everyone.append(procs[victim])
                await procs[victim].start()
                kills += 1
                last_kill = time.monotonic()
        await procs[0].wait_for(lambda: len(delivered_counts("".join(p.out for p in everyone))) == n, timeout=90)
        for p in procs:
            # A stop is judged by its "relay stopped" line, which a process still starting (the
            # last restart) has no logging for yet.
            await p.wait_for(started(p), timeout=60)
            await p.terminate()
    counts = delivered_counts("".join(p.out for p in everyone))
    polls = sum(world.heartbeat_counts.values())
    single_owner = 1 - world.overlapping_heartbeats / max(1, polls)
    print(
        f"\nscale-out: 3 processes, {kills} kills, {n} messages, heartbeats={polls}, overlapping={world.overlapping_heartbeats}, "
        f"single-owner={single_owner:.4%}, lost={n - len(counts)}, duplicates={sum(c - 1 for c in counts.values())}"
    )
    assert sorted(counts) == list(range(n))
    assert single_owner >= 0.999
    assert sum(c - 1 for c in counts.values()) <= kills  # only a send cut by a SIGKILL may repeat
