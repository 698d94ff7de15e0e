"""A real relay process killed with SIGKILL at each point of the pipeline, then restarted.

The process runs `aitrader-relay run --console` against the simulator and the test Redis; it
freezes at a named fault point (RELAY_FAULT_PAUSE), the test kills it there, starts a fresh one,
and reads what reached the console chat. Nothing may be lost; duplicates are counted.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from redis.asyncio import Redis

from relay.faults import MARKER
from relay.keys import Keys
from relay.models import ChatRef
from relay.store import Store, Subscription
from relay.tokens import TokenBox

ROOT = Path(__file__).resolve().parents[2]


class RelayProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.out = ""
        self.err = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.main", "run", "--console",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env, cwd=str(ROOT),
        )
        self._readers = [asyncio.create_task(self._pump(self.proc.stdout, "out")), asyncio.create_task(self._pump(self.proc.stderr, "err"))]

    async def _pump(self, stream: asyncio.StreamReader | None, name: str) -> None:
        assert stream is not None
        while chunk := await stream.read(4096):
            setattr(self, name, getattr(self, name) + chunk.decode(errors="replace"))

    async def wait_for(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; stdout tail={self.out[-800:]!r} stderr tail={self.err[-1500:]!r}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await asyncio.gather(*self._readers)

    async def terminate(self) -> float:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout=15)
        await asyncio.gather(*self._readers)
        assert code == 0, self.err[-1500:]
        return time.monotonic() - started


@pytest.fixture
def fast_world() -> World:
    return World(seed=5, poll_interval_seconds=1)


@pytest.fixture
async def fast_sim(fast_world: World):
    async with SimulatorServer(fast_world) as server:
        yield server


async def prepared(fast_world: World, redis: Redis, keys: Keys, secret_key: str) -> int:
    """An agent linked by the console user, routed into the console chat."""
    agent = fast_world.create_agent("kp")
    store = Store(redis, keys, TokenBox.from_text(secret_key))
    await store.link("console:you", agent.id, agent.name, agent.token, "consume")
    await store.add_subscription(Subscription(0, "agent", ChatRef("console", "local"), agent_id=agent.id))
    return agent.id


def relay_env(sim_url: str, redis_url: str, prefix: str, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_"))}
    env.update(
        AITRADER_BASE_URL=sim_url, REDIS_URL=redis_url, RELAY_KEY_PREFIX=prefix, RELAY_SECRET_KEY=secret,
        POLL_MIN_SECONDS="1", POLL_MAX_SECONDS="2", LOG_LEVEL="INFO", AITRADER_TIMEOUT_SECONDS="3",
        **extra,
    )
    return env


def delivered_counts(text: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for match in re.finditer(r"killtest-(\d+)\b", text):
        counts[int(match.group(1))] = counts.get(int(match.group(1)), 0) + 1
    return counts


@pytest.mark.parametrize("point", ["after_heartbeat", "after_persist", "after_send"])
async def test_killed_at_each_point_then_restarted_loses_nothing(
    point: str, fast_world: World, fast_sim: SimulatorServer, redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
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
    shutdown_seconds = await second.terminate()

    counts = delivered_counts(first.out + second.out)
    assert sorted(counts) == [0, 1, 2, 3, 4, 5]  # every message arrived
    duplicates = sum(c - 1 for c in counts.values())
    if point == "after_send":
        # The first process printed one notification and died before acknowledging it: that one
        # send's outcome was unknown, so it may arrive twice, and nothing else may.
        assert duplicates <= 1
    else:
        assert duplicates == 0
    assert shutdown_seconds < 10
