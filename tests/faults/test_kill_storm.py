"""Kill storm: relay processes SIGKILLed at random moments while AI-Trader notifications flow to
Telegram chats and Discord channels (the real adapters against the fake platforms).

Lost must be 0 on both platforms. Discord must show no duplicate (every send carries a nonce);
Telegram has no idempotency key, so a duplicate is allowed only for a send that was in flight
when a process was killed: the relay marks each send just before the platform call and clears
the mark with its outcome, so the marks left in Redis after a SIGKILL name exactly those sends.
"""

from __future__ import annotations

import asyncio
import random
import re
import time

import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from platform_fakes.discord_api import FakeDiscord
from platform_fakes.telegram_api import FakeTelegram
from relay.keys import Keys
from relay.models import ChatRef
from relay.redis_values import text_dict
from relay.store import Store, Subscription
from relay.tokens import TokenBox
from tests.fakes.relay_process import RelayProcess, relay_env

TG_TOKEN = "1234567:FAKEstormFAKEstormFAKEstormFAKEstorm"
DC_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.STORM.fake-discord-token-for-the-kill-storm"
MARK = re.compile(r"storm-(\d+)\b")
GUILD = 900


def counts(texts: list[str]) -> dict[int, int]:
    out: dict[int, int] = {}
    for text in texts:
        for m in MARK.finditer(text):
            out[int(m.group(1))] = out.get(int(m.group(1)), 0) + 1
    return out


@pytest.mark.parametrize(
    ("agents", "messages", "kills"),
    [
        pytest.param(6, 120, 8, id="ci"),
        pytest.param(50, 10_000, 50, id="short", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
        pytest.param(50, 10_000, 200, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
    ],
)
async def test_kill_storm_loses_nothing_on_either_platform(
    agents: int, messages: int, kills: int, redis_url: str, redis: Redis, keys: Keys, prefix: str, secret_key: str
) -> None:
    rng = random.Random(agents * 7 + kills)
    world = World(seed=1, poll_interval_seconds=1)
    channels = [10_000 + i for i in range(agents)]
    async with (
        SimulatorServer(world) as sim,
        FakeTelegram(TG_TOKEN, limits=None) as tg,
        FakeDiscord(token=DC_TOKEN, global_limit=None, channel_limit=None, guilds={GUILD: channels}) as dc,
    ):
        store = Store(redis, keys, TokenBox.from_text(secret_key))
        owners: dict[int, int] = {}  # agent -> its Telegram chat (its Discord channel is channels[i])
        for i in range(agents):
            agent = world.create_agent(f"k{i}")
            chat_id = 5000 + i
            tg.add_chat(chat_id, "private")
            await store.link(f"telegram:{chat_id}", agent.id, agent.name, agent.token, "consume")
            await store.add_subscription(Subscription(0, "agent", ChatRef("telegram", str(chat_id)), agent_id=agent.id))
            await store.add_subscription(
                Subscription(0, "agent", ChatRef("discord", str(channels[i])), agent_id=agent.id)
            )
            owners[agent.id] = i
        env = relay_env(
            sim.url,
            redis_url,
            prefix,
            secret_key,
            TELEGRAM_BOT_TOKEN=TG_TOKEN,
            TELEGRAM_API_BASE=tg.api_base,
            TELEGRAM_GLOBAL_RATE="200",
            DISCORD_BOT_TOKEN=DC_TOKEN,
            DISCORD_API_BASE=dc.api_base,
            DISCORD_GATEWAY_URL=dc.gateway_url,
            DISCORD_MAX_REQUESTS_PER_SECOND="50",
            LOG_LEVEL="INFO",  # a stop is judged by its "relay stopped" line (RelayProcess.terminate)
        )
        relay = RelayProcess(env)
        await relay.start()
        agent_ids = list(owners)
        every = max(1, messages // (kills + 1))
        done = 0
        expected: dict[int, int] = {}  # message number -> agent it went to
        upstream_id: dict[int, int] = {}  # message number -> AI-Trader message id
        in_flight: set[str] = set()  # delivery keys whose send was under way at a SIGKILL
        in_flight_per_kill: list[int] = []
        for n in range(messages):
            expected[n] = rng.choice(agent_ids)
            upstream_id[n] = world.push_message(expected[n], "custom_note", f"storm-{n}")
            await asyncio.sleep(0.02)
            if n % every == every - 1 and done < kills:
                await asyncio.sleep(rng.uniform(0.0, 1.2))  # anywhere in a poll or a send
                await relay.kill()
                marks = set(text_dict(await redis.hgetall(keys.in_flight())).values())
                in_flight_per_kill.append(len(marks - in_flight))
                in_flight |= marks
                relay = RelayProcess(env)
                await relay.start()
                done += 1

        deadline = time.monotonic() + (120 if messages < 1000 else 900)
        while time.monotonic() < deadline:
            tg_seen = counts([c.params.get("text", "") for c in tg.sent()])
            dc_seen = counts([m.text for m in dc.channel_messages()])
            if len(tg_seen) >= len(expected) and len(dc_seen) >= len(expected):
                break
            await asyncio.sleep(0.5)
        await relay.terminate()
        tg_seen = counts([c.params.get("text", "") for c in tg.sent()])
        dc_seen = counts([m.text for m in dc.channel_messages()])
        possible = int((await redis.hget(keys.stats(), "uncertain_resends")) or 0)

    tg_dups = sum(c - 1 for c in tg_seen.values())
    dc_dups = sum(c - 1 for c in dc_seen.values())
    tg_in_flight = {k for k in in_flight if ":telegram:" in k}

    def tg_key(n: int) -> str:
        return f"{expected[n]}:m{upstream_id[n]}:telegram:{5000 + owners[expected[n]]}:"

    duplicated = {n for n, c in tg_seen.items() if c > 1}
    print(
        f"\nkill-storm: {agents} agents, {2 * agents} chats, {messages} messages, {done} SIGKILLs; "
        f"sends in flight at the kills: {len(in_flight)} (telegram {len(tg_in_flight)}, per kill "
        f"{in_flight_per_kill}); telegram lost={len(set(expected) - set(tg_seen))} dup={tg_dups} "
        f"(unknown-outcome resends counted {possible}); discord lost={len(set(expected) - set(dc_seen))} dup={dc_dups}"
    )
    assert done == kills
    assert len(expected) == messages
    assert set(expected) - set(tg_seen) == set()
    assert set(expected) - set(dc_seen) == set()
    assert dc_dups == 0
    assert tg_dups <= len(tg_in_flight)
    assert {n for n in duplicated if tg_key(n) not in tg_in_flight} == set()  # only those sends
