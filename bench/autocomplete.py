"""What Discord autocomplete and translations cost.

Autocomplete: the real path, a relay with the Discord adapter (discord.py) against the fake Discord
on 127.0.0.1, embedded Valkey. One channel holds 50 subscriptions, its /why journal 300 delivered
signals, and the user's followed traders (100) are cached. Each keystroke is an
APPLICATION_COMMAND_AUTOCOMPLETE interaction sent over the fake gateway; measured is the time until
the fake received the type-8 answer (Discord allows 3 s), one keystroke at a time and in bursts of
50 at once. CPU: this process (the relay *and* the fake Discord, which cannot be split: discord.py's
URLs are process-wide) and Valkey's own (INFO cpu). Nothing asks AI-Trader (no upstream runs).

Translations: CPU per rendered notification in English and in Chinese (the fan-out renders one per
language among a notification's chats), and what loading the catalogue costs once per process.

    python -m bench.autocomplete [--keystrokes 200] [--burst 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from adapters.discord import DiscordAdapter, DiscordSettings
from bench.pipeline import pct, redis_counters
from platform_fakes.discord_api import FakeDiscord, FakeInteraction
from relay import render
from relay.app import Relay
from relay.config import RelaySettings
from relay.embedded_redis import open_redis
from relay.i18n import Catalogues
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, Notification
from relay.services import RedisAdapterServices
from relay.store import Subscription
from relay.tokens import TokenBox, new_key_text

TOKEN = "MTAwBENCH0000000000000000.GbEnCh.bench-bot-token-never-real-000000"
GUILD = 540000000000000001
CHANNEL = 540000000000000100
USER = 555555555555555555
ADMINISTRATOR = 1 << 3
KINDS: tuple[tuple[str, str, str], ...] = (
    ("unsubscribe", "id", "1"),
    ("replies", "signal_id", ""),
    ("unfollow", "agent_id", "tr"),
    ("subscribe", "what", "replies men"),
)


async def _answered(fake: FakeDiscord, record: FakeInteraction) -> float:
    """Milliseconds from the interaction's dispatch to the bot to its type-8 answer reaching the fake."""
    await fake.wait_for(lambda: record.choices is not None, timeout=10)
    answer = fake.calls_to("POST", f"/interactions/{record.id}/")[0]
    return (answer.arrived - record.received) * 1000


async def _keystroke(fake: FakeDiscord, name: str, option: str, typed: str) -> float:
    record = await fake.autocomplete(
        name, option, typed, channel_id=CHANNEL, guild_id=GUILD, user_id=USER, permissions=ADMINISTRATOR
    )
    return await _answered(fake, record)


async def run_autocomplete(keystrokes: int, burst: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="bench-autocomplete-"))
    async with (
        FakeDiscord(token=TOKEN, guilds={GUILD: [CHANNEL]}, global_limit=None, channel_limit=None) as fake,
        open_redis(None, data) as handle,
        httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=1) as http,
    ):
        redis = handle.redis
        settings = RelaySettings(
            _env_file=None,
            aitrader_base_url="http://127.0.0.1:9",
            relay_data_dir=data,
            relay_key_prefix=f"bench{uuid.uuid4().hex[:8]}",
            doorbell=False,
        )
        keys = Keys(settings.relay_key_prefix)
        adapter = DiscordAdapter(
            DiscordSettings(bot_token=TOKEN, api_base=fake.api_base, gateway_url=fake.gateway_url),
            RedisAdapterServices(redis, keys, "discord"),
            Redactor(),
        )
        box = TokenBox.from_text(new_key_text())
        relay = Relay(settings, redis, http, box, [adapter], redactor=Redactor(), rng=random.Random(1))
        chat = ChatRef("discord", str(CHANNEL))
        async with relay:
            await fake.wait_for(lambda: fake.active_session is not None and fake.commands, timeout=30)
            for i in range(50):
                await relay.store.add_subscription(Subscription(0, "feed", chat, keyword=f"kw{i}", created_by=f"b{i}"))
            batch = relay.journal.batch()
            for i in range(300):
                batch.chat(chat, f"7:m{i}:{chat.key}", "delivered", at=time.time(), signal=1000 + i)
            await relay.journal.write(batch)
            await relay.suggestions.remember_following(f"discord:{USER}", [(i, f"trader{i}") for i in range(100)])
            for name, option, typed in KINDS:  # warm-up: first calls import and connect
                await _keystroke(fake, name, option, typed)
            await redis.config_resetstat()
            cpu0, redis0 = time.process_time(), await redis_counters(redis)
            wall0 = time.monotonic()
            sequential: dict[str, list[float]] = {name: [] for name, _, _ in KINDS}
            for i in range(keystrokes):
                name, option, typed = KINDS[i % len(KINDS)]
                sequential[name].append(await _keystroke(fake, name, option, typed))
            bursts: list[float] = []
            for _ in range(max(1, keystrokes // burst)):
                records = await asyncio.gather(
                    *(
                        fake.autocomplete(
                            name,
                            option,
                            typed,
                            channel_id=CHANNEL,
                            guild_id=GUILD,
                            user_id=USER,
                            permissions=ADMINISTRATOR,
                        )
                        for name, option, typed in (KINDS[j % len(KINDS)] for j in range(burst))
                    )
                )
                bursts += await asyncio.gather(*(_answered(fake, r) for r in records))
            wall = time.monotonic() - wall0
            cpu1, redis1 = time.process_time(), await redis_counters(redis)
            total = keystrokes + len(bursts)
            late = sum(1 for values in (*sequential.values(), bursts) for v in values if v > 3000)
            out: dict[str, Any] = {
                "keystrokes": total,
                "over_3s": late,
                "wall_s": round(wall, 2),
                "cpu_relay_and_fake_discord_s": round(cpu1 - cpu0, 3),
                "cpu_redis_s": round(redis1[0] - redis0[0], 3),
                "cpu_ms_per_keystroke_relay_and_fake": round(1000 * (cpu1 - cpu0) / total, 3),
                "redis_commands_per_keystroke": round((redis1[2] - redis0[2]) / total, 2),
            }
            for name, values in sequential.items():
                out[f"{name}_ms_p50_p99"] = [round(pct(values, 0.5), 1), round(pct(values, 0.99), 1)]
            out[f"burst_of_{burst}_ms_p50_p99_max"] = [
                round(pct(bursts, 0.5), 1),
                round(pct(bursts, 0.99), 1),
                round(max(bursts), 1),
            ]
            return out


def run_translations(count: int) -> dict[str, Any]:
    started = time.process_time()
    catalogues = Catalogues.load()
    load_ms = (time.process_time() - started) * 1000
    n = Notification(7, 1, "strategy_reply", "nice call", {"signal_id": 42, "market": "crypto"}, None)
    out: dict[str, Any] = {"catalogue_load_cpu_ms": round(load_ms, 1)}
    for lang in ("en", "zh"):
        t = catalogues.translator(lang)
        started = time.process_time()
        for _ in range(count):
            render.notification(n, t=t)
        out[f"render_notification_cpu_us_{lang}"] = round(1e6 * (time.process_time() - started) / count, 1)
    return out


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keystrokes", type=int, default=200)
    p.add_argument("--burst", type=int, default=50)
    p.add_argument("--renders", type=int, default=20_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = {**await run_autocomplete(args.keystrokes, args.burst), **run_translations(args.renders)}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:45} {value}")


if __name__ == "__main__":
    asyncio.run(main())
