"""Telegram delivery benchmark: notifications to many chats through the fake Bot API with
Telegram's real flood limits (~1/s per chat with a small burst, 20/min per group, ~30/s overall).

The relay side is the real path: Outbox streams on Redis -> relay.delivery.Deliverer (one in-flight
send per chat) -> TelegramAdapter.send -> PTB -> fake. The reference is the heartbeat skill's
approach: one loop sending each message as it comes, sleeping retry_after on a 429. Each side has
its own fake (a bot of its own, so its own limits); both run at the same time, the reference in a
child process so that neither slows the other's event loop.

    python -m bench.telegram_send [--chats 100] [--groups 20] [--notifications 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter, TelegramSettings
from bench.pipeline import pct
from bench.send_report import comparison, pacing, redis_cpu_s, steady_rate, until
from platform_fakes.telegram_api import FakeTelegram, Limits
from relay.config import RelaySettings
from relay.delivery import Deliverer
from relay.embedded_redis import open_redis
from relay.keys import Keys
from relay.leases import Leases
from relay.logs import Redactor
from relay.metrics import Metrics
from relay.models import ChatRef, Message, MessageField
from relay.outbox import Outbox, Outgoing
from relay.redis_values import scored_members
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from relay.store import Store
from relay.tokens import TokenBox, new_key_text

_NUMBER = re.compile(r"#(\d+)")
ROOT = Path(__file__).resolve().parent.parent  # the repository, cwd of the child process
TELEGRAM_CEILING = 30.0  # "about 30 messages per second" (Bot API FAQ)


def workload(chats: int, groups: int, notifications: int, seed: int, order: str = "random") -> list[tuple[int, int]]:
    """(notification number, chat id) in arrival order; groups have negative ids. `round-robin`
    gives every chat the same share, so no chat's own limit holds the end of the run."""
    ids = [-(1000 + i) for i in range(groups)] + [10_000 + i for i in range(chats - groups)]
    if order == "round-robin":
        return [(n, ids[n % len(ids)]) for n in range(notifications)]
    rng = random.Random(seed)
    return [(n, rng.choice(ids)) for n in range(notifications)]


def notification(n: int) -> Message:
    return Message(
        title=f"New reply #{n}",
        body="ann_bot replied to your signal: <b>agreed</b> & raised the target",
        fields=(MessageField("Signal", "123"),),
        link="https://ai4trade.ai/signals/123",
        footer="/reply 123",
    )


def arrivals(fake: FakeTelegram) -> dict[int, list[float]]:
    """Notification number -> times the fake accepted it (more than one: a duplicate)."""
    arrived: dict[int, list[float]] = {}
    for call in fake.sent():
        m = _NUMBER.search(call.params["text"])
        if m:
            arrived.setdefault(int(m.group(1)), []).append(call.at)
    return arrived


def figures(fake: FakeTelegram, enqueued: dict[int, float], started: float) -> dict[str, Any]:
    arrived = {n: times[0] for n, times in arrivals(fake).items()}
    latencies = [arrived[n] - enqueued[n] for n in arrived]
    seconds = (max(arrived.values()) - started) if arrived else float("nan")
    return {
        "delivered": len(arrived),
        "duplicates": len(fake.sent()) - len(arrived),
        "seconds": seconds,
        "per_second": len(arrived) / seconds if arrived else 0.0,
        "steady_per_second": steady_rate(list(arrived.values())),
        "429s": len(fake.calls_to("sendMessage", status=429)),
        "requests": len(fake.calls_to("sendMessage")),
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
    }


class Arrivals:
    """Counts distinct notifications accepted by the fake, reading only calls not seen before
    (stopping on the count of accepted calls would stop early when some arrived twice)."""

    def __init__(self, fake: FakeTelegram) -> None:
        self._fake = fake
        self._read = 0
        self.numbers: set[int] = set()

    def count(self) -> int:
        calls = self._fake.calls
        for call in calls[self._read :]:
            if call.method == "sendMessage" and call.status == 200:
                m = _NUMBER.search(call.params["text"])
                if m:
                    self.numbers.add(int(m.group(1)))
        self._read = len(calls)
        return len(self.numbers)


async def stuck_report(
    redis: Redis,
    keys: Keys,
    deliverer: Deliverer,
    adapter: TelegramAdapter,
    missing: list[int],
    work: list[tuple[int, int]],
) -> str:
    """Where the undelivered notifications sit: outbox streams, pending entries, the ready set,
    chat leases, the deliverer's busy drains and the adapter's per-chat locks and penalties."""
    chat_of = dict(work)
    chats = sorted({chat_of[n] for n in missing})
    now = time.time()
    ready = dict(scored_members(await redis.zrange(keys.outbox_ready(), 0, -1, withscores=True)))
    lines = [f"undelivered: {len(missing)} notifications in {len(chats)} chats; ready set holds {len(ready)} chats"]
    sender = adapter._sender  # diagnostics only
    locks = {cid for cid, lock in list(sender._locks.items()) if lock.locked()}
    for chat_id in chats[:20]:
        ref = ChatRef("telegram", str(chat_id))
        stream = keys.outbox(ref.key)
        length = await redis.xlen(stream)
        try:
            pending = (await redis.xpending(stream, "senders"))["pending"]
        except Exception:
            pending = "no group"
        score = ready.get(ref.key)
        due = f"due in {score - now:+.1f}s" if score is not None else "NOT in ready set"
        lease = await redis.get(keys.chat_lease(ref.key))
        busy = ref.key in deliverer._busy
        lines.append(
            f"  chat {chat_id}: missing {[n for n in missing if chat_of[n] == chat_id][:8]} stream={length} pending={pending} {due} "
            f"lease={'held' if lease else 'free'} busy={busy} lock={'held' if chat_id in locks else 'free'} "
            f"penalty={sender._limiter.penalized_for(chat_id):.1f}s"
        )
    return "\n".join(lines)


def add_chats(fake: FakeTelegram, work: list[tuple[int, int]]) -> None:
    """The fake answers "chat not found" for chats the bot never met, as Telegram does."""
    for chat_id in sorted({c for _, c in work}):
        fake.add_chat(chat_id, "private" if chat_id > 0 else "supergroup")


async def run_relay(work: list[tuple[int, int]], chats: int, budget: float, data: Path) -> dict[str, Any]:
    async with FakeTelegram(limits=Limits()) as fake, open_redis(os.environ.get("REDIS_URL"), data) as handle:
        add_chats(fake, work)
        redis = handle.redis
        keys = Keys(f"bench{uuid.uuid4().hex[:8]}")
        settings = TelegramSettings(bot_token=fake.token, api_base=fake.api_base, port=0, webhook_url=None)
        adapter = TelegramAdapter(settings, RedisAdapterServices(redis, keys, "telegram"), Redactor())
        core = RelaySettings(_env_file=None)  # the product's delivery defaults

        async def ignore(_: object) -> None:
            return None

        await adapter.start(COMMANDS, ignore, ignore)  # type: ignore[arg-type]
        leases = Leases(redis)
        metrics = Metrics()
        deliverer = Deliverer(
            Outbox(redis, keys),
            Store(redis, keys, TokenBox.from_text(new_key_text())),
            leases,
            keys,
            {"telegram": adapter},
            metrics,
            concurrency=core.delivery_concurrency,
            max_attempts=core.delivery_max_attempts,
            send_timeout=core.delivery_send_timeout_seconds,
            on_chat_change=ignore,  # no chat here is removed or moved
        )
        outbox = Outbox(redis, keys)
        enqueued: dict[int, float] = {}
        cpu0, redis_cpu0 = time.process_time(), await redis_cpu_s(redis)
        started = time.monotonic()
        for i in range(0, len(work), 100):
            batch = work[i : i + 100]
            await outbox.enqueue(
                [Outgoing(ChatRef("telegram", str(c)), f"n{n}", notification(n)) for n, c in batch], now=time.time()
            )
            now = time.monotonic()
            enqueued.update((n, now) for n, _ in batch)
        await deliverer.start()
        seen = Arrivals(fake)
        try:
            await until(lambda: seen.count() >= len(work), budget)
            if seen.count() < len(work):
                missing = sorted({n for n, _ in work} - seen.numbers)
                print(await stuck_report(redis, keys, deliverer, adapter, missing, work), file=sys.stderr)
        finally:
            await deliverer.stop(grace=2)
            await adapter.stop()
            async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
                await redis.delete(key)
        result = figures(fake, enqueued, started)
        # The fake Bot API runs in this process: its CPU is in "relay_and_fake".
        result["cpu_s"] = {
            "relay_and_fake": round(time.process_time() - cpu0, 3),
            "redis": round(await redis_cpu_s(redis) - redis_cpu0, 3),
        }
        sample = metrics.registry.get_sample_value
        result["dead"] = sample("relay_dead_letters_total", {"platform": "telegram"}) or 0.0
        result["uncertain"] = sample("relay_uncertain_resends_total") or 0.0
        result["retry_later"] = sample("relay_delivery_retry_later_total", {"platform": "telegram"}) or 0.0
        return result


async def run_reference(work: list[tuple[int, int]], budget: float) -> dict[str, Any]:
    """The heartbeat skill's loop: send each message as it comes; on a 429 sleep retry_after and resend."""
    async with (
        FakeTelegram(limits=Limits()) as fake,
        httpx.AsyncClient(base_url=f"{fake.api_base}/bot{fake.token}", timeout=10) as http,
    ):
        add_chats(fake, work)
        started = time.monotonic()
        enqueued = {n: started for n, _ in work}
        deadline = started + budget
        for n, chat_id in work:
            while time.monotonic() < deadline:
                body = {
                    "chat_id": chat_id,
                    "text": f"<b>New reply #{n}</b>\nann_bot replied to your signal",
                    "parse_mode": "HTML",
                }
                answer = (await http.post("/sendMessage", json=body)).json()
                if answer["ok"]:
                    break
                await asyncio.sleep(answer.get("parameters", {}).get("retry_after", 1))
        result = figures(fake, enqueued, started)
        result["cpu_s"] = {"reference_and_fake": round(time.process_time(), 3)}
        result["dead"] = float(len(work) - result["delivered"])
        result["uncertain"] = result["retry_later"] = float("nan")
        return result


async def reference_in_child(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the reference in its own process so the two sides do not share one CPU-bound loop."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.telegram_send",
        "--side",
        "reference",
        "--chats",
        str(args.chats),
        "--groups",
        str(args.groups),
        "--notifications",
        str(args.notifications),
        "--budget",
        str(args.budget),
        "--seed",
        str(args.seed),
        "--order",
        args.order,
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
    ("sendMessage requests", "requests", "{:.0f}"),
    ("429s received", "429s", "{:.0f}"),
    ("sent twice (duplicates)", "duplicates", "{:.0f}"),
    ("deferred sends (RetryLater)", "retry_later", "{:.0f}"),
    ("uncertain resends", "uncertain", "{:.0f}"),
    ("given up (dead letters / unsent)", "dead", "{:.0f}"),
    ("p50 enqueue->accepted (s)", "p50", "{:.1f}"),
    ("p99 enqueue->accepted (s)", "p99", "{:.1f}"),
]


def table(args: argparse.Namespace, relay: dict[str, Any], ref: dict[str, Any], ceiling: float) -> str:
    reached = pacing(relay, TELEGRAM_CEILING, "requests")
    footer = [
        f"relay throughput is {reached['pacing_pct']:.0f}% of Telegram's {TELEGRAM_CEILING:.0f}/s "
        f"({reached['steady_pacing_pct']:.0f}% from the 10th to the 90th percentile arrival) "
        f"({100 * relay['per_second'] / ceiling:.0f}% of the adapter's {ceiling:.0f}/s), "
        f"{reached['429s_per_10k_requests']} 429s per 10,000 requests"
    ]
    if relay["delivered"] < args.notifications or ref["delivered"] < args.notifications:
        footer.append(
            f"(budget of {args.budget:.0f}s reached before every message was delivered: figures cover the delivered ones)"
        )
    header = [
        f"telegram benchmark: {args.notifications} notifications to {args.chats} chats ({args.groups} groups, "
        f"{args.order}), all queued at t=0",
        f"fake Bot API limits: ~1/s per chat (burst 3), 20/min per group, 30/s overall; adapter ceiling {ceiling:.0f}/s",
    ]
    return comparison(header, ROWS, relay, ref, labels=("relay adapter", "reference loop"), footer=footer)


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--chats", type=int, default=100)
    p.add_argument("--groups", type=int, default=20)
    p.add_argument("--notifications", type=int, default=3000)
    p.add_argument("--budget", type=float, default=240.0, help="seconds each side may take at most")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--order", choices=("random", "round-robin"), default="random", help="how notifications pick chats")
    p.add_argument("--side", choices=("both", "reference"), default="both", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = workload(args.chats, args.groups, args.notifications, args.seed, args.order)
    if args.side == "reference":
        print(json.dumps(await run_reference(work, args.budget)))
        return
    data = Path(tempfile.mkdtemp(prefix="bench-telegram-"))
    relay, ref = await asyncio.gather(run_relay(work, args.chats, args.budget, data), reference_in_child(args))
    ceiling = TelegramSettings(bot_token="1:x").global_rate
    if args.json:
        workload_ = {
            "chats": args.chats,
            "groups": args.groups,
            "notifications": args.notifications,
            "order": args.order,
        }
        print(
            json.dumps(
                {
                    "workload": workload_,
                    "adapter_rate": ceiling,
                    **pacing(relay, TELEGRAM_CEILING, "requests"),
                    "relay": relay,
                    "reference": ref,
                }
            )
        )
    else:
        print(table(args, relay, ref, ceiling))


if __name__ == "__main__":
    asyncio.run(main())
