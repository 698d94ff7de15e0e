"""Pipeline benchmark: N agents x M messages through poll -> persist -> fan-out -> a counting sink.

The AI-Trader simulator runs in its own process (as the real server would), the relay in this
one with an embedded Valkey. Prints notifications/s, p50/p99 from creation in the simulator to
the sink, Redis commands per notification and peak RSS, next to the heartbeat skill's reference
loop (poll each agent in turn and hand each message to the sink as it comes, nothing stored).

    python -m bench.pipeline [--agents 100] [--messages 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from relay.adapter import Dispatch, Limits, OnChatChange
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, CommandSpec, Message
from relay.store import Store, Subscription
from relay.tokens import load_or_create_key


@dataclass
class CountingSink:
    """A chat platform that accepts everything at once and notes when each delivery arrived."""

    platform: str = "sink"
    limits: Limits = field(default_factory=lambda: Limits(100_000, "codepoints", 1e9))
    arrived: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        pass

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        if key in self.arrived:
            self.duplicates += 1
        self.arrived[key] = time.monotonic()
        if len(self.arrived) >= self.expected:
            self.done.set()

    async def stop(self) -> None:
        pass


async def start_simulator() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aitrader_sim", "--port", "0", "--poll-interval", "1", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode().strip()
    return proc, line.split("=", 1)[1]


async def seed(control: httpx.AsyncClient, agents: int, messages: int) -> tuple[list[dict[str, Any]], dict[int, float]]:
    created: dict[int, float] = {}
    made = []
    for i in range(agents):
        agent = (await control.post("/_sim/agents", json={"name": f"bench{i}"})).json()
        made.append(agent)
    for agent in made:
        ids = (
            await control.post(
                "/_sim/messages",
                json={"agent_id": agent["agent_id"], "type": "price_alert", "content": "x", "count": messages},
            )
        ).json()["ids"]
        now = time.monotonic()
        created.update({m: now for m in ids})
    return made, created


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_relay(agents: int, messages: int) -> dict[str, float]:
    sim, url = await start_simulator()
    data = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control, open_redis(None, data) as handle:
            made, created = await seed(control, agents, messages)
            settings = RelaySettings(
                _env_file=None,
                aitrader_base_url=url,
                relay_data_dir=data,
                poll_min_seconds=1,
                poll_max_seconds=2,
                delivery_concurrency=128,
            )
            keys = Keys(settings.relay_key_prefix)
            box = load_or_create_key(None, data, embedded=True)
            store = Store(handle.redis, keys, box)
            for agent in made:
                await store.link(
                    f"sink:{agent['agent_id']}", agent["agent_id"], agent["name"], agent["token"], "consume"
                )
                await store.add_subscription(
                    Subscription(0, "agent", ChatRef("sink", str(agent["agent_id"])), agent_id=agent["agent_id"])
                )
            sink = CountingSink(expected=agents * messages)
            await handle.redis.config_resetstat()
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                relay = Relay(settings, handle.redis, http, box, [sink], redactor=Redactor(), rng=random.Random(1))
                started = time.monotonic()
                async with relay:
                    await asyncio.wait_for(sink.done.wait(), timeout=float(os.environ.get("BENCH_TIMEOUT", "600")))
                elapsed = max(sink.arrived.values()) - started
            stats = await handle.redis.info("commandstats")
            commands = sum(v["calls"] for v in stats.values())
            latencies = [sink.arrived[k] - created[int(k.split(":")[1][1:])] for k in sink.arrived]
            return {
                "delivered": len(sink.arrived),
                "duplicates": sink.duplicates,
                "seconds": elapsed,
                "per_second": len(sink.arrived) / elapsed,
                "p50": pct(latencies, 0.5),
                "p99": pct(latencies, 0.99),
                "redis_per_notification": commands / max(1, len(sink.arrived)),
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
    finally:
        sim.terminate()
        await sim.wait()


async def run_reference(agents: int, messages: int) -> dict[str, float]:
    """The heartbeat skill's loop: each agent in turn, each message handed over as it comes."""
    sim, url = await start_simulator()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control:
            made, created = await seed(control, agents, messages)
            arrived: dict[int, float] = {}
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                while len(arrived) < agents * messages:
                    for agent in made:
                        body = (
                            await http.post(
                                "/api/claw/agents/heartbeat", headers={"Authorization": f"Bearer {agent['token']}"}
                            )
                        ).json()
                        for m in body.get("messages", []):
                            arrived[m["id"]] = time.monotonic()
            elapsed = max(arrived.values()) - started
            latencies = [arrived[i] - created[i] for i in arrived]
            return {
                "delivered": len(arrived),
                "duplicates": 0,
                "seconds": elapsed,
                "per_second": len(arrived) / elapsed,
                "p50": pct(latencies, 0.5),
                "p99": pct(latencies, 0.99),
                "redis_per_notification": 0.0,
                "rss_mb": float("nan"),
            }
    finally:
        sim.terminate()
        await sim.wait()


def table(agents: int, messages: int, relay: dict[str, float], ref: dict[str, float]) -> str:
    rows = [
        ("notifications delivered", "delivered", "{:.0f}"),
        ("duplicates", "duplicates", "{:.0f}"),
        ("wall time to deliver all (s)", "seconds", "{:.2f}"),
        ("notifications/s", "per_second", "{:.0f}"),
        ("p50 created→sink (s)", "p50", "{:.2f}"),
        ("p99 created→sink (s)", "p99", "{:.2f}"),
        ("Redis commands / notification", "redis_per_notification", "{:.1f}"),
        ("peak RSS of the relay process (MB)", "rss_mb", "{:.0f}"),
    ]
    out = [f"pipeline benchmark: {agents} agents x {messages} messages = {agents * messages} notifications", ""]
    out.append(f"{'figure':38} {'relay':>12} {'reference':>12}")
    for label, key, fmt in rows:
        out.append(f"{label:38} {fmt.format(relay[key]):>12} {fmt.format(ref[key]):>12}")
    out.append("")
    out.append(f"throughput ratio relay/reference: {relay['per_second'] / ref['per_second']:.2f}")
    out.append("(the reference stores nothing and keeps no order or dedup: a lost response loses its messages)")
    return "\n".join(out)


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--messages", type=int, default=100)
    args = p.parse_args(argv)
    relay = await run_relay(args.agents, args.messages)
    ref = await run_reference(args.agents, args.messages)
    print(table(args.agents, args.messages, relay, ref))


if __name__ == "__main__":
    asyncio.run(main())
