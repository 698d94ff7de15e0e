"""Discord delivery benchmark: notifications to many channels through the fake Discord with
Discord's limits (50 requests/s per bot, 5 messages per 5 s per channel).

The relay side is the real path: Outbox streams on Redis -> relay.delivery.Deliverer (one in-flight
send per channel) -> DiscordAdapter.send -> discord.py -> fake. The reference is a sequential loop
calling the same DiscordAdapter.send one message at a time. Each side has its own fake (its own
bot, so its own limits) and runs in its own process at the same time: discord.py's URLs are
process-wide, so two fakes cannot share one process.

    python -m bench.discord_send [--channels 100] [--notifications 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from adapters.discord import DiscordAdapter, DiscordSettings
from adapters.discord.guards import PACING_MARGIN_S, paced_rate
from bench.pipeline import pct
from bench.send_report import comparison, pacing, redis_cpu_s, steady_rate, until
from platform_fakes.discord_api import FakeDiscord
from relay.adapter import ChatChange
from relay.delivery import Deliverer
from relay.embedded_redis import open_redis
from relay.errors import DeliveryError, RetryLater
from relay.keys import Keys
from relay.leases import Leases
from relay.logs import Redactor
from relay.metrics import Metrics
from relay.models import ChatRef, Message, MessageField
from relay.outbox import Outbox, Outgoing
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from relay.store import Store
from relay.tokens import TokenBox, new_key_text

TOKEN = "MTAwBENCH00000000000000000.GbEnCh.bench-bot-token-not-real-0000000"
ROOT = Path(__file__).resolve().parent.parent  # the repository, cwd of the child process
DISCORD_CEILING = 50.0  # requests/s per bot; 100 channels x 1/s would allow more
_NUMBER = re.compile(r"#(\d+)")


def workload(channels: int, notifications: int) -> list[tuple[int, int]]:
    """(notification number, channel id), round-robin over the channels."""
    return [(n, 700_000_000_000_000_000 + n % channels) for n in range(notifications)]


def notification(n: int) -> Message:
    return Message(
        title=f"New reply #{n}",
        body="ann_bot replied to your signal: **agreed** & raised the target @everyone",
        fields=(MessageField("Signal", "123"),),
        link="https://ai4trade.ai/signals/123",
        footer="/reply 123",
    )


def figures(fake: FakeDiscord, enqueued: dict[int, float], started: float) -> dict[str, Any]:
    arrived: dict[int, float] = {}
    for message in fake.channel_messages():
        if m := _NUMBER.search(message.text):
            arrived.setdefault(int(m.group(1)), message.created_at)
    wall = time.time() - time.monotonic()  # fake stamps wall time; enqueue times are monotonic
    latencies = [arrived[n] - wall - enqueued[n] for n in arrived]
    seconds = (max(arrived.values()) - wall - started) if arrived else float("nan")
    return {
        "delivered": len(arrived),
        "seconds": seconds,
        "per_second": len(arrived) / seconds if arrived else 0.0,
        "steady_per_second": steady_rate(list(arrived.values())),
        "429s": len(fake.rate_limited),
        "requests": len(fake.calls_to("POST", "/messages")),
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
    }


async def ignore(_: object) -> None:
    return None


async def started_adapter(fake: FakeDiscord, redis: Redis, keys: Keys) -> DiscordAdapter:
    settings = DiscordSettings(bot_token=TOKEN, api_base=fake.api_base, gateway_url=fake.gateway_url)
    adapter = DiscordAdapter(settings, RedisAdapterServices(redis, keys, "discord"), Redactor())
    await adapter.start(COMMANDS, ignore, ignore)  # type: ignore[arg-type]
    return adapter


async def _no_chat_changes(_: ChatChange) -> None:
    """No channel in this benchmark is removed or moved."""


async def run_relay(work: list[tuple[int, int]], channels: int, budget: float, data: Path) -> dict[str, Any]:
    async with FakeDiscord(token=TOKEN) as fake, open_redis(os.environ.get("REDIS_URL"), data) as handle:
        redis = handle.redis
        keys = Keys(f"bench{uuid.uuid4().hex[:8]}")
        adapter = await started_adapter(fake, redis, keys)
        metrics = Metrics()
        deliverer = Deliverer(
            Outbox(redis, keys),
            Store(redis, keys, TokenBox.from_text(new_key_text())),
            Leases(redis),
            keys,
            {"discord": adapter},
            metrics,
            concurrency=channels,
            on_chat_change=_no_chat_changes,
        )
        outbox = Outbox(redis, keys)
        enqueued: dict[int, float] = {}
        cpu0, redis_cpu0 = time.process_time(), await redis_cpu_s(redis)
        started = time.monotonic()
        for i in range(0, len(work), 100):
            batch = work[i : i + 100]
            await outbox.enqueue(
                [Outgoing(ChatRef("discord", str(c)), f"n{n}", notification(n)) for n, c in batch], now=time.time()
            )
            now = time.monotonic()
            enqueued.update((n, now) for n, _ in batch)
        await deliverer.start()
        try:
            await until(lambda: len(fake.channel_messages()) >= len(work), budget)
        finally:
            await deliverer.stop(grace=2)
            await adapter.stop()
            async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
                await redis.delete(key)
        result = figures(fake, enqueued, started)
        # The fake Discord runs in this process: its CPU is in "relay_and_fake".
        result["cpu_s"] = {
            "relay_and_fake": round(time.process_time() - cpu0, 3),
            "redis": round(await redis_cpu_s(redis) - redis_cpu0, 3),
        }
        result["global_429s_seen"] = float(adapter.pacer.global_429s)
        result["dead"] = metrics.registry.get_sample_value("relay_dead_letters_total", {"platform": "discord"}) or 0.0
        return result


async def run_reference(work: list[tuple[int, int]], budget: float, data: Path) -> dict[str, Any]:
    """One message at a time through the same adapter.send; waits out a RetryLater and resends."""
    async with FakeDiscord(token=TOKEN) as fake, open_redis(os.environ.get("REDIS_URL"), data) as handle:
        keys = Keys(f"benchref{uuid.uuid4().hex[:8]}")
        adapter = await started_adapter(fake, handle.redis, keys)
        started = time.monotonic()
        enqueued = {n: started for n, _ in work}
        deadline = started + budget
        given_up = 0
        try:
            for n, channel in work:
                while time.monotonic() < deadline:
                    try:
                        await adapter.send(ChatRef("discord", str(channel)), notification(n), key=f"n{n}")
                        break
                    except RetryLater as exc:
                        await asyncio.sleep(exc.seconds)
                    except DeliveryError:
                        given_up += 1
                        break
        finally:
            await adapter.stop()
            async for key in handle.redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
                await handle.redis.delete(key)
        result = figures(fake, enqueued, started)
        result["cpu_s"] = {"reference_and_fake": round(time.process_time(), 3)}
        result["dead"] = float(given_up)
        return result


async def reference_in_child(args: argparse.Namespace) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.discord_send",
        "--side",
        "reference",
        "--channels",
        str(args.channels),
        "--notifications",
        str(args.notifications),
        "--budget",
        str(args.budget),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


ROWS = [
    ("delivered", "delivered", "{:.0f}"),
    ("wall time to deliver all (s)", "seconds", "{:.1f}"),
    ("messages/s", "per_second", "{:.1f}"),
    ("messages/s, 10th-90th percentile", "steady_per_second", "{:.1f}"),
    ("POST /messages requests", "requests", "{:.0f}"),
    ("429s received", "429s", "{:.0f}"),
    ("given up (dead letters)", "dead", "{:.0f}"),
    ("p50 enqueue->accepted (s)", "p50", "{:.1f}"),
    ("p99 enqueue->accepted (s)", "p99", "{:.1f}"),
]


def table(args: argparse.Namespace, relay: dict[str, Any], ref: dict[str, Any], paced: float) -> str:
    reached = pacing(relay, DISCORD_CEILING, "requests")
    header = [
        f"discord benchmark: {args.notifications} notifications to {args.channels} channels, all queued at t=0",
        f"fake Discord limits: 50 requests/s per bot, 5 messages / 5 s per channel -> ceiling {DISCORD_CEILING:.0f}/s; "
        f"adapter paces every REST request at {paced:.1f}/s, shared through Redis "
        f"(DISCORD_MAX_REQUESTS_PER_SECOND less a {PACING_MARGIN_S:.0%} margin for travel-time jitter)",
    ]
    footer = [
        f"relay throughput is {reached['pacing_pct']:.0f}% of Discord's {DISCORD_CEILING:.0f}/s "
        f"({reached['steady_pacing_pct']:.0f}% from the 10th to the 90th percentile arrival) "
        f"and {100 * relay['per_second'] / paced:.0f}% of the adapter's own {paced:.1f}/s pacing; "
        f"{reached['429s_per_10k_requests']} 429s per 10,000 requests"
    ]
    return comparison(header, ROWS, relay, ref, labels=("relay (delivery)", "sequential send"), footer=footer)


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--notifications", type=int, default=3000)
    p.add_argument("--budget", type=float, default=240.0, help="seconds each side may take at most")
    p.add_argument("--side", choices=("both", "reference"), default="both", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    work = workload(args.channels, args.notifications)
    data = Path(tempfile.mkdtemp(prefix="bench-discord-"))
    if args.side == "reference":
        print(json.dumps(await run_reference(work, args.budget, data)))
        return
    ref_task = asyncio.create_task(reference_in_child(args))
    relay = await run_relay(work, args.channels, args.budget, data)
    ref = await ref_task
    paced = paced_rate(DiscordSettings(bot_token=TOKEN).max_requests_per_second)
    if args.json:
        workload_ = {"channels": args.channels, "notifications": args.notifications}
        print(
            json.dumps(
                {
                    "workload": workload_,
                    "adapter_rate": paced,
                    **pacing(relay, DISCORD_CEILING, "requests"),
                    "relay": relay,
                    "reference": ref,
                }
            )
        )
    else:
        print(table(args, relay, ref, paced))


if __name__ == "__main__":
    asyncio.run(main())
