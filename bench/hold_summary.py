"""Quiet-hours summary benchmark: N held notifications (worst-case text: long titles and bodies full
of characters HTML and Markdown must escape) routed into one chat's held stream, released as one
summary, and rendered by both adapters' own renderers.

It measures what the issue asks to be measured: whether a summary of 1,000 notifications renders
within the platforms' limits (Telegram 4,096 characters per message; Discord 2,000 of content,
4,096 per embed description, 6,000 over a message's embeds) as ONE message, and what holding and
releasing cost: relay CPU (this process) and Valkey CPU apart, per phase, over several runs.

    python -m bench.hold_summary [--notifications 1000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from adapters.discord.embeds import render as discord_render
from adapters.telegram.markup import render as telegram_render
from adapters.telegram.markup import utf16_len
from relay.chat_settings import ChatSettings
from relay.embedded_redis import open_redis
from relay.holding import IMPORTANCE, Holding
from relay.keys import Keys
from relay.leases import Leases
from relay.models import ChatRef, Message
from relay.outbox import Outbox, Outgoing
from relay.redis_values import stream_entries

CHAT = ChatRef("bench", "quiet")
TELEGRAM_MAX = 4096
DISCORD_CONTENT_MAX, DISCORD_DESCRIPTION_MAX, DISCORD_EMBEDS_MAX = 2000, 4096, 6000


def notification(i: int) -> Outgoing:
    title = f"<b>{'Ünïcødé & 🚀 @everyone ' * 12}</b> **#{i}**"
    body = f"{'x<&>_*`' * 200}\nsecond line {i}"
    return Outgoing(CHAT, f"bench:{i}", Message(title=title, body=body), kind=IMPORTANCE[i % len(IMPORTANCE)])


async def redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def one_run(redis: Redis, n: int) -> dict[str, Any]:
    keys = Keys(f"bench-hold-{uuid.uuid4().hex[:8]}")
    outbox = Outbox(redis, keys)
    holding = Holding(redis, keys, ChatSettings(redis, keys), outbox, Leases(redis))
    await holding.set_snooze(CHAT, time.time() + 3600)
    items = [notification(i) for i in range(n)]

    cpu0, redis0, wall0 = time.process_time(), await redis_cpu(redis), time.perf_counter()
    left = await holding.divert(items, time.time())
    cpu1, redis1, wall1 = time.process_time(), await redis_cpu(redis), time.perf_counter()
    assert left == [], "all held"
    await holding.set_snooze(CHAT, None)
    cpu2, redis2, wall2 = time.process_time(), await redis_cpu(redis), time.perf_counter()
    sent = await holding.check_chat(CHAT)
    cpu3, redis3, wall3 = time.process_time(), await redis_cpu(redis), time.perf_counter()
    assert sent == ["summary"], sent
    [(_, fields)] = stream_entries(await redis.xrange(keys.outbox(CHAT.key)))
    summary = Message.from_json(fields["m"])

    render0 = time.process_time()
    chunks = telegram_render(summary)
    parts = discord_render(summary)
    render_cpu = time.process_time() - render0
    embeds: list[dict[str, Any]] = [dict(e.to_dict()) for part in parts for e in part.embeds]
    embed_total = sum(
        len(e.get("title", "")) + len(e.get("description", "")) + len((e.get("footer") or {}).get("text", ""))
        for e in embeds
    )
    async for key in redis.scan_iter(match=f"{keys.prefix}:*"):
        await redis.delete(key)
    return {
        "notifications": n,
        "hold_relay_cpu_s": cpu1 - cpu0,
        "hold_redis_cpu_s": redis1 - redis0,
        "hold_wall_s": wall1 - wall0,
        "release_relay_cpu_s": cpu3 - cpu2,
        "release_redis_cpu_s": redis3 - redis2,
        "release_wall_s": wall3 - wall2,
        "render_cpu_s": render_cpu,
        "telegram_messages": len(chunks),
        "telegram_visible_utf16": max(utf16_len(c.text) for c in chunks),
        "telegram_html_chars": max(len(c.html) for c in chunks),
        "discord_messages": len(parts),
        "discord_embed_chars": embed_total,
        "discord_description_chars": max(len(e.get("description", "")) for e in embeds),
        "discord_content_chars": 0,  # the adapter sends embeds only
        "within_limits": (
            len(chunks) == 1
            and utf16_len(chunks[0].text) <= TELEGRAM_MAX
            and len(parts) == 1
            and embed_total <= DISCORD_EMBEDS_MAX
        ),
    }


def table(runs: Sequence[dict[str, Any]]) -> str:
    def span(key: str, fmt: str = "{:.3f}") -> str:
        values = [r[key] for r in runs]
        lo, hi = min(values), max(values)
        return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"

    n = runs[0]["notifications"]
    rows = [
        f"hold-summary benchmark: {n:,} held notifications, {len(runs)} runs (ranges are min-max)",
        "| phase | relay CPU s | Valkey CPU s | wall s |",
        "|---|---|---|---|",
        f"| hold {n:,} (divert) | {span('hold_relay_cpu_s')} | {span('hold_redis_cpu_s')} | {span('hold_wall_s')} |",
        f"| release + compose + enqueue | {span('release_relay_cpu_s')} | {span('release_redis_cpu_s')} "
        f"| {span('release_wall_s')} |",
        f"| render (both adapters) | {span('render_cpu_s', '{:.4f}')} | – | – |",
        "",
        "| platform | messages | size | limit |",
        "|---|---|---|---|",
        f"| Telegram | {span('telegram_messages', '{}')} | {span('telegram_visible_utf16', '{}')} UTF-16 units "
        f"shown ({span('telegram_html_chars', '{}')} HTML) | {TELEGRAM_MAX} |",
        f"| Discord | {span('discord_messages', '{}')} | {span('discord_embed_chars', '{}')} embed chars "
        f"(description {span('discord_description_chars', '{}')}, content 0) | {DISCORD_EMBEDS_MAX} embeds, "
        f"{DISCORD_DESCRIPTION_MAX} description, {DISCORD_CONTENT_MAX} content |",
        f"within limits as one message in every run: {all(r['within_limits'] for r in runs)}",
    ]
    return "\n".join(rows)


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--notifications", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    async with open_redis(None, Path(tempfile.mkdtemp(prefix="bench-hold-"))) as handle:
        runs = [await one_run(handle.redis, args.notifications) for _ in range(args.runs)]
    print(json.dumps(runs) if args.json else table(runs))


if __name__ == "__main__":
    asyncio.run(main())
