"""Pipeline benchmark: N agents x M messages through poll -> persist -> fan-out -> a counting sink.

The AI-Trader simulator runs in its own process (as the real server would), the relay in this
one with an embedded Valkey. Prints notifications/s, p50/p99 from creation in the simulator to
the sink, Redis commands per notification and peak RSS, next to the heartbeat skill's reference
loop (poll each agent in turn and hand each message to the sink as it comes, nothing stored).

    python -m bench.pipeline [--agents 100] [--messages 100] [--steady 5] [--json]

`--json` prints one JSON object instead of the table, with CPU seconds per process (relay =
this process, simulator = its own process read from /proc, redis = Valkey's own INFO cpu), so
figures stay meaningful on a shared machine where wall-clock rates are noise. After everything
is delivered the relay keeps running for `--steady` seconds of polls that find nothing new:
`relay_cpu_ms_per_poll`, `redis_round_trips_per_poll` and `http_calls_per_poll` come from that
window. Redis round trips are Valkey's `total_reads_processed` (one read event per request or
pipeline the server receives), counted on the server so the relay's client is left as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from adapters.main import build_http
from relay import eventloop
from relay.adapter import Dispatch, OnChatChange
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.logs import Redactor
from relay.models import ChatRef, CommandSpec, Message
from relay.store import Store, Subscription
from relay.tokens import load_or_create_key

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


async def redis_counters(redis: Redis, nodes: Sequence[Redis] = ()) -> tuple[float, int, int]:
    """Valkey's own CPU seconds, read events (round trips) and commands so far; summed over
    `nodes` (a cluster's, each through its own client) when given."""
    total = (0.0, 0, 0)
    for node in nodes or (redis,):
        cpu = await node.info("cpu")
        stats = await node.info("stats")
        total = (
            total[0] + float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            total[1] + int(stats["total_reads_processed"]),
            total[2] + int(stats["total_commands_processed"]),
        )
    return total


@dataclass
class HttpCounter:
    """Counts the relay client's upstream calls through httpx's public event hooks."""

    calls: int = 0

    async def __call__(self, request: httpx.Request) -> None:
        self.calls += 1


def counted(counter: Any) -> float:
    """A prometheus counter's total over its labels."""
    return float(sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total")))


def polls_done(relay: Relay) -> float:
    return sum(
        sample.value
        for metric in relay.metrics.polls.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@dataclass
class CountingSink:
    """A chat platform that accepts everything at once and notes when each delivery arrived."""

    platform: str = "sink"
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


async def run_relay(
    agents: int,
    messages: int,
    steady: float = 3.0,
    *,
    redis_url: str | None = None,
    cluster: bool = False,
    nodes: Sequence[Redis] = (),
) -> dict[str, float]:
    """The relay on an embedded Valkey, or on the Redis at `redis_url` (a cluster node with
    `cluster`; then `nodes` are clients of every node, for Valkey's counters)."""
    sim, url = await start_simulator()
    data = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as control,
            open_redis(redis_url, data, 512 if cluster else 40, cluster=cluster) as handle,
        ):
            made, created = await seed(control, agents, messages)
            settings = RelaySettings(
                _env_file=None,
                aitrader_base_url=url,
                relay_data_dir=data,
                poll_min_seconds=1,
                poll_max_seconds=2,
                delivery_concurrency=128,
                # The backlog exists before the relay starts, so no push would ring: measured
                # here is polling alone (bench.steady measures the doorbell).
                doorbell=False,
                redis_url=redis_url,
                redis_cluster=cluster,
                relay_key_prefix=f"bench{uuid.uuid4().hex[:8]}" if redis_url else "relay",
            )
            keys = settings.keys()
            box = load_or_create_key(None, data, embedded=True)
            store = Store(handle.redis, keys, box)
            for agent in made:
                await store.link(
                    f"sink:{agent['agent_id']}", agent["agent_id"], agent["name"], agent["token"], "consume"
                )
                await store.add_subscription(
                    Subscription(0, "agent", ChatRef("sink", str(agent["agent_id"])), agent_id=agent["agent_id"])
                )
            expected = agents * messages
            sink = CountingSink(expected=expected)
            for node in nodes or (handle.redis,):
                await node.config_resetstat()
            http_calls = HttpCounter()
            async with build_http(settings, request_hooks=[http_calls]) as http:
                relay = Relay(settings, handle.redis, http, box, [sink], redactor=Redactor(), rng=random.Random(1))
                redis0 = await redis_counters(handle.redis, nodes)
                cpu0, sim0 = time.process_time(), proc_cpu_s(sim.pid)
                started = time.monotonic()
                async with relay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sink.done.wait(), timeout=float(os.environ.get("BENCH_TIMEOUT", "600")))
                    cpu1, sim1, redis1 = (
                        time.process_time(),
                        proc_cpu_s(sim.pid),
                        await redis_counters(handle.redis, nodes),
                    )
                    polls1, calls1 = polls_done(relay), http_calls.calls
                    # Steady state: every message is delivered; the polls from here on find nothing.
                    await asyncio.sleep(steady)
                    cpu2, sim2 = time.process_time(), proc_cpu_s(sim.pid)
                    redis2 = await redis_counters(handle.redis, nodes)
                    polls2, calls2 = polls_done(relay), http_calls.calls
                elapsed = max(sink.arrived.values(), default=time.monotonic()) - started
            latencies = [sink.arrived[k] - created[int(k.split(":")[1][1:])] for k in sink.arrived]
            delivered = len(sink.arrived)
            steady_polls = max(1.0, polls2 - polls1)
            relay_cpu = cpu1 - cpu0
            # Each INFO pair the bench sends is itself 2 reads; leave them out of the relay's count.
            info_reads = 2 * max(1, len(nodes))
            return {
                "delivered": delivered,
                "lost": expected - delivered,
                # What the relay itself reported as possibly lost upstream (relay.recovery).
                "possible_losses_reported": counted(relay.metrics.possible_losses),
                "upstream_errors": counted(relay.metrics.upstream_errors),
                "duplicates": sink.duplicates,
                "seconds": elapsed,
                "per_second": delivered / elapsed,
                "p50": pct(latencies, 0.5),
                "p95": pct(latencies, 0.95),
                "p99": pct(latencies, 0.99),
                "redis_per_notification": (redis1[2] - redis0[2] - info_reads) / max(1, delivered),
                "redis_round_trips_per_notification": (redis1[1] - redis0[1] - info_reads) / max(1, delivered),
                "notifications_per_relay_cpu_s": delivered / relay_cpu if relay_cpu else float("nan"),
                "cpu_relay_s": relay_cpu,
                "cpu_simulator_s": sim1 - sim0,
                "cpu_redis_s": redis1[0] - redis0[0],
                "polls": polls1,
                "http_calls": calls1,
                "steady_polls": steady_polls,
                "relay_cpu_ms_per_poll": (cpu2 - cpu1) * 1000 / steady_polls,
                "steady_cpu_relay_s": cpu2 - cpu1,
                "steady_cpu_simulator_s": sim2 - sim1,
                "steady_cpu_redis_s": redis2[0] - redis1[0],
                "redis_round_trips_per_poll": (redis2[1] - redis1[1] - info_reads) / steady_polls,
                "http_calls_per_poll": (calls2 - calls1) / steady_polls,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
    finally:
        sim.terminate()
        await sim.wait()


async def run_reference(agents: int, messages: int, steady: float = 3.0) -> dict[str, float]:
    """The heartbeat skill's loop: each agent in turn, each message handed over as it comes."""
    sim, url = await start_simulator()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as control:
            made, created = await seed(control, agents, messages)
            arrived: dict[int, float] = {}
            expected = agents * messages
            polls = 0

            async def one_round(http: httpx.AsyncClient) -> None:
                nonlocal polls
                for agent in made:
                    body = (
                        await http.post(
                            "/api/claw/agents/heartbeat", headers={"Authorization": f"Bearer {agent['token']}"}
                        )
                    ).json()
                    polls += 1
                    for m in body.get("messages", []):
                        arrived[m["id"]] = time.monotonic()

            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                cpu0, sim0 = time.process_time(), proc_cpu_s(sim.pid)
                started = time.monotonic()
                deadline = started + float(os.environ.get("BENCH_TIMEOUT", "600"))
                while len(arrived) < expected and time.monotonic() < deadline:
                    await one_round(http)
                cpu1, sim1, polls1 = time.process_time(), proc_cpu_s(sim.pid), polls
                # Steady state, as for the relay: whole rounds that find nothing new.
                steady_end = time.monotonic() + steady
                while time.monotonic() < steady_end:
                    await one_round(http)
                cpu2, sim2, steady_polls = time.process_time(), proc_cpu_s(sim.pid), max(1, polls - polls1)
            elapsed = max(arrived.values(), default=time.monotonic()) - started
            latencies = [arrived[i] - created[i] for i in arrived]
            loop_cpu = cpu1 - cpu0
            return {
                "delivered": len(arrived),
                "lost": expected - len(arrived),
                "possible_losses_reported": 0.0,
                "upstream_errors": 0.0,
                "duplicates": 0,
                "seconds": elapsed,
                "per_second": len(arrived) / elapsed,
                "p50": pct(latencies, 0.5),
                "p95": pct(latencies, 0.95),
                "p99": pct(latencies, 0.99),
                "redis_per_notification": 0.0,
                "redis_round_trips_per_notification": 0.0,
                "notifications_per_relay_cpu_s": len(arrived) / loop_cpu if loop_cpu else float("nan"),
                "cpu_relay_s": loop_cpu,
                "cpu_simulator_s": sim1 - sim0,
                "cpu_redis_s": 0.0,
                "polls": polls1,
                "http_calls": polls1,
                "steady_polls": steady_polls,
                "relay_cpu_ms_per_poll": (cpu2 - cpu1) * 1000 / steady_polls,
                "steady_cpu_relay_s": cpu2 - cpu1,
                "steady_cpu_simulator_s": sim2 - sim1,
                "steady_cpu_redis_s": 0.0,
                "redis_round_trips_per_poll": 0.0,
                "http_calls_per_poll": 1.0,
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
        ("p95 created→sink (s)", "p95", "{:.2f}"),
        ("p99 created→sink (s)", "p99", "{:.2f}"),
        ("lost", "lost", "{:.0f}"),
        ("notifications / relay CPU-second", "notifications_per_relay_cpu_s", "{:.0f}"),
        ("CPU s: relay (or reference loop)", "cpu_relay_s", "{:.2f}"),
        ("CPU s: simulator", "cpu_simulator_s", "{:.2f}"),
        ("CPU s: redis", "cpu_redis_s", "{:.2f}"),
        ("relay CPU ms / steady poll", "relay_cpu_ms_per_poll", "{:.2f}"),
        ("Redis round trips / steady poll", "redis_round_trips_per_poll", "{:.1f}"),
        ("HTTP calls / steady poll", "http_calls_per_poll", "{:.2f}"),
        ("Redis commands / notification", "redis_per_notification", "{:.1f}"),
        ("Redis round trips / notification", "redis_round_trips_per_notification", "{:.1f}"),
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


JSON_FIGURES = (
    "notifications_per_relay_cpu_s",
    "relay_cpu_ms_per_poll",
    "redis_round_trips_per_notification",
    "redis_round_trips_per_poll",
    "redis_per_notification",
    "http_calls_per_poll",
    "p50",
    "p95",
    "p99",
    "lost",
    "possible_losses_reported",
    "upstream_errors",
    "duplicates",
    "delivered",
    "seconds",
    "per_second",
    "polls",
    "http_calls",
    "steady_polls",
    "rss_mb",
)


def figures(result: dict[str, float]) -> dict[str, Any]:
    """One side's JSON figures: latency keys get their `_s` suffix, CPU seconds go per process."""
    out: dict[str, Any] = {}
    for key in JSON_FIGURES:
        name = f"{key}_s" if key in ("p50", "p95", "p99") else key
        value = result[key]
        out[name] = None if isinstance(value, float) and math.isnan(value) else round(value, 4)
    out["cpu_s"] = {
        "relay": round(result["cpu_relay_s"], 3),
        "simulator": round(result["cpu_simulator_s"], 3),
        "redis": round(result["cpu_redis_s"], 3),
    }
    # The steady window's (polls that find nothing), per process as above.
    out["steady_cpu_s"] = {
        "relay": round(result["steady_cpu_relay_s"], 3),
        "simulator": round(result["steady_cpu_simulator_s"], 3),
        "redis": round(result["steady_cpu_redis_s"], 3),
    }
    return out


def as_json(agents: int, messages: int, steady: float, relay: dict[str, float], ref: dict[str, float]) -> str:
    body: dict[str, Any] = {"agents": agents, "messages": messages, "steady_seconds": steady}
    body["loop"] = eventloop.loop_name()
    body["redis_parser"] = "hiredis" if importlib.util.find_spec("hiredis") else "python"
    body.update(figures(relay))
    body["reference"] = figures(ref)
    body["reference"]["cpu_s"]["loop"] = body["reference"]["cpu_s"].pop("relay")
    body["reference"]["steady_cpu_s"]["loop"] = body["reference"]["steady_cpu_s"].pop("relay")
    return json.dumps(body, indent=2)


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--steady", type=float, default=5.0, help="seconds of polls that find nothing, after delivery")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    relay = await run_relay(args.agents, args.messages, args.steady)
    ref = await run_reference(args.agents, args.messages, args.steady)
    print(
        as_json(args.agents, args.messages, args.steady, relay, ref)
        if args.json
        else table(args.agents, args.messages, relay, ref)
    )


if __name__ == "__main__":
    eventloop.run(main())
