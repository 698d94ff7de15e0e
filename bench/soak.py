"""Soak benchmark: does Redis memory stay flat over a long run of deliveries?

Feeds the AI-Trader simulator (its own process) a steady stream of notifications for a few
agents, runs the whole relay in this process with an embedded Valkey and a counting sink, and
every `--every` deliveries prints Redis `used_memory`, the key count, the size of the delivered
dedup set and CPU seconds per process (relay, simulator, Valkey). Every Redis family is bounded
(relay/keys.py): once the per-agent dedup sets and the delivered set have reached their caps
(the warm-up: `--agents` x SEEN_CAP and DELIVERED_CAP deliveries), memory must stop growing.

    python -m bench.soak [--count 1000000] [--agents 20] [--every 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from adapters.main import build_http
from bench.pipeline import start_simulator
from relay.adapter import Dispatch, OnChatChange
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.keys import DELIVERED_CAP, SEEN_CAP, Keys
from relay.logs import Redactor
from relay.models import ChatRef, CommandSpec, Message
from relay.redis_values import text_dict, text_or_empty
from relay.store import Store, Subscription
from relay.tokens import load_or_create_key

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class BitmapSink:
    """Accepts everything and marks each upstream message id in a bitmap (ids are sequential
    from 1 and each agent has one chat): a bit already set is a duplicate. One bit per id keeps
    the sink's own memory out of the relay process's figures."""

    platform: str = "sink"
    seen: bytearray = field(default_factory=bytearray)
    delivered: int = 0
    duplicates: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        pass

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        message_id = int(key.split(":")[1][1:])
        byte, bit = divmod(message_id, 8)
        if byte >= len(self.seen):
            self.seen.extend(bytes(byte + 1 - len(self.seen) + 65536))
        if self.seen[byte] & (1 << bit):
            self.duplicates += 1
        else:
            self.seen[byte] |= 1 << bit
            self.delivered += 1
        self.arrived.set()

    async def stop(self) -> None:
        pass


def _awaiting(coro: object) -> list[str]:
    """file:line of each coroutine a stuck task is awaiting, outermost first."""
    out = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            out.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return out


async def where_stuck(r: Redis, keys: Keys, control: httpx.AsyncClient, made: list[dict[str, Any]]) -> str:
    """What a stalled run shows: queued work in Redis, unread work upstream, error counters."""
    lines = [
        f"stalled; outbox ready: {await r.zcard(keys.outbox_ready())} chats; reconcile marks: "
        f"{await r.scard(keys.needs_reconcile())}; upstream failures: {text_or_empty(await r.get(keys.upstream_failures()))}"
    ]
    for a in made[:5]:
        agent_id = a["agent_id"]
        inbox = (await control.get(f"/_sim/inbox/{agent_id}")).json()
        lines.append(
            f"agent {agent_id}: inbox stream {await r.xlen(keys.inbox(agent_id))}, outbox "
            f"{await r.xlen(keys.outbox(f'sink:{agent_id}:'))}, next poll {await r.zscore(keys.poll_due(), str(agent_id))}, "
            f"fails {text_or_empty(await r.get(keys.backoff(agent_id)))}, upstream unread "
            f"{len(inbox.get('unread', []))}"
        )
    lines.append(f"stats: {text_dict(await r.hgetall(keys.stats()))}")
    return "\n".join(lines)


async def soak(count: int, agents: int, every: int, batch: int) -> list[dict[str, float]]:
    sim, url = await start_simulator()
    data = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    samples: list[dict[str, float]] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as control, open_redis(None, data) as handle:
            r = handle.redis
            valkey_pid = int((await r.info("server"))["process_id"])
            settings = RelaySettings(
                _env_file=None,
                aitrader_base_url=url,
                relay_data_dir=data,
                poll_min_seconds=1,
                poll_max_seconds=2,
            )
            keys = Keys(settings.relay_key_prefix)
            box = load_or_create_key(None, data, embedded=True)
            store = Store(r, keys, box)
            made = [(await control.post("/_sim/agents", json={"name": f"soak{i}"})).json() for i in range(agents)]
            for a in made:
                await store.link(f"sink:{a['agent_id']}", a["agent_id"], a["name"], a["token"], "consume")
                await store.add_subscription(
                    Subscription(0, "agent", ChatRef("sink", str(a["agent_id"])), agent_id=a["agent_id"])
                )
            sink = BitmapSink()
            pushed = 0
            started = time.monotonic()
            cpu0 = (cpu_seconds(os.getpid()), cpu_seconds(sim.pid), cpu_seconds(valkey_pid))
            next_sample = every
            print(
                f"soak: {count:,} deliveries, {agents} agents, warm-up until the caps fill "
                f"({agents} x {SEEN_CAP:,} seen ids, {DELIVERED_CAP:,} delivered keys)",
                flush=True,
            )
            print(
                f"{'delivered':>10} {'wall s':>7} {'used_memory MB':>15} {'keys':>6} {'delivered set':>13} "
                f"{'relay RSS MB':>12} {'CPU s relay':>11} {'sim':>7} {'valkey':>7}",
                flush=True,
            )
            async with build_http(settings) as http:
                relay = Relay(settings, r, http, box, [sink], redactor=Redactor(), rng=random.Random(1))
                async with relay:
                    while sink.delivered < count:
                        # Keep about two batches upstream: a steady flow, not one huge backlog.
                        while pushed < count and pushed - sink.delivered < 2 * batch:
                            n = min(batch, count - pushed)
                            for i, a in enumerate(made):
                                share = n // agents + (1 if i < n % agents else 0)
                                if share:
                                    await control.post(
                                        "/_sim/messages",
                                        json={
                                            "agent_id": a["agent_id"],
                                            "type": "price_alert",
                                            "content": "x",
                                            "count": share,
                                        },
                                    )
                            pushed += n
                        sink.arrived.clear()
                        try:
                            await asyncio.wait_for(sink.arrived.wait(), timeout=120)
                        except TimeoutError:
                            print(await where_stuck(r, keys, control, made), flush=True)
                            print(relay.deliverer.describe(), flush=True)
                            for task in asyncio.all_tasks():
                                if task.get_name().startswith("drain"):
                                    print(task.get_name(), " <- ".join(_awaiting(task.get_coro())), flush=True)
                            raise SystemExit(f"soak: no delivery for 120 s at {sink.delivered:,}") from None
                        while sink.delivered >= next_sample:
                            mem = await r.info("memory")
                            sample = {
                                "delivered": float(sink.delivered),
                                "wall": time.monotonic() - started,
                                "used_memory_mb": int(mem["used_memory"]) / 2**20,
                                "keys": float(await r.dbsize()),
                                "delivered_set": float(await r.zcard(keys.delivered())),
                                "relay_rss_mb": rss_mb(os.getpid()),
                                "cpu_relay": cpu_seconds(os.getpid()) - cpu0[0],
                                "cpu_sim": cpu_seconds(sim.pid) - cpu0[1],
                                "cpu_valkey": cpu_seconds(valkey_pid) - cpu0[2],
                            }
                            samples.append(sample)
                            print(
                                f"{sample['delivered']:>10,.0f} {sample['wall']:>7.0f} {sample['used_memory_mb']:>15.2f} "
                                f"{sample['keys']:>6.0f} {sample['delivered_set']:>13,.0f} {sample['relay_rss_mb']:>12.0f} "
                                f"{sample['cpu_relay']:>11.0f} {sample['cpu_sim']:>7.0f} {sample['cpu_valkey']:>7.0f}",
                                flush=True,
                            )
                            next_sample += every
            print(f"duplicates: {sink.duplicates}; lost: {pushed - sink.delivered}", flush=True)
    finally:
        sim.terminate()
        await sim.wait()
    return samples


def verdict(samples: list[dict[str, float]], warm_up: int) -> str:
    after = [s for s in samples if s["delivered"] > warm_up]
    if len(after) < 2:
        return "too few samples after the warm-up to judge growth (raise --count)"
    first, last = after[0], after[-1]
    growth = last["used_memory_mb"] - first["used_memory_mb"]
    span = last["delivered"] - first["delivered"]
    return (
        f"after warm-up ({first['delivered']:,.0f} -> {last['delivered']:,.0f} deliveries): used_memory "
        f"{first['used_memory_mb']:.2f} -> {last['used_memory_mb']:.2f} MB ({growth:+.2f} MB, "
        f"{growth * 2**20 / span:+.1f} bytes per delivery)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    # A poll that outlasts its 1 s interval makes APScheduler log every skipped run.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--count", type=int, default=1_000_000, help="deliveries in all")
    p.add_argument("--agents", type=int, default=20, help="agents (and chats); each holds SEEN_CAP ids at most")
    p.add_argument("--every", type=int, default=100_000, help="deliveries between samples")
    p.add_argument("--batch", type=int, default=5_000, help="notifications pushed upstream at a time")
    args = p.parse_args(argv)
    if min(args.count, args.agents, args.every, args.batch) < 1:
        p.error("--count, --agents, --every and --batch must be positive")
    samples = asyncio.run(soak(args.count, args.agents, args.every, args.batch))
    print(verdict(samples, max(DELIVERED_CAP, args.agents * SEEN_CAP)), flush=True)


if __name__ == "__main__":
    main()
