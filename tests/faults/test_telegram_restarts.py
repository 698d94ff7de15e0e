"""SIGTERM restarts of a relay running the real Telegram adapter while notifications flow, against
a fake Bot API that keeps answering and against one that stops answering at each SIGTERM (every
request is still carried out - a sendMessage is delivered - but no answer comes back).

Both: nothing lost, no traceback, the getUpdates lease released by every stop. Responsive: no
duplicate. Stalling: a duplicate only for a send that was in flight at the SIGTERM (the in-flight
marks the stopped process leaves in Redis name them), since its answer never came.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics

import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from platform_fakes.telegram_api import FakeTelegram
from relay.keys import TELEGRAM_POLLER, Keys
from relay.models import ChatRef
from relay.redis_values import text_dict
from relay.store import Store, Subscription
from relay.tokens import TokenBox
from tests.fakes.relay_process import RelayProcess, relay_env

TG_TOKEN = "7654321:FAKErestartFAKErestartFAKErestartFAKE"
MARK = re.compile(r"restart-(\d+)\b")
AGENTS = 8  # private chats: Telegram allows about one message per second in each


def counts(fake: FakeTelegram) -> dict[int, int]:
    out: dict[int, int] = {}
    for call in fake.sent():
        for m in MARK.finditer(str(call.params.get("text", ""))):
            out[int(m.group(1))] = out.get(int(m.group(1)), 0) + 1
    return out


@pytest.mark.parametrize("stalling", [False, True], ids=["responsive", "stalling"])
@pytest.mark.parametrize(
    ("restarts", "grace"),
    [
        pytest.param(3, 3, id="short"),
        pytest.param(20, 8, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
    ],
)
async def test_sigterm_restarts_with_a_slow_bot_api_lose_nothing_and_duplicate_only_in_flight_sends(
    restarts: int,
    grace: int,
    stalling: bool,
    redis_url: str,
    redis: Redis,
    keys: Keys,
    prefix: str,
    secret_key: str,
) -> None:
    world = World(seed=5, poll_interval_seconds=1)
    async with SimulatorServer(world) as sim, FakeTelegram(TG_TOKEN, limits=None) as tg:
        store = Store(redis, keys, TokenBox.from_text(secret_key))
        chat_of: dict[int, int] = {}
        for i in range(AGENTS):
            agent = world.create_agent(f"r{i}")
            chat_of[agent.id] = 7000 + i
            tg.add_chat(chat_of[agent.id], "private")
            await store.link(f"telegram:{chat_of[agent.id]}", agent.id, agent.name, agent.token, "consume")
            await store.add_subscription(
                Subscription(0, "agent", ChatRef("telegram", str(chat_of[agent.id])), agent_id=agent.id)
            )
        env = relay_env(
            sim.url,
            redis_url,
            prefix,
            secret_key,
            TELEGRAM_BOT_TOKEN=TG_TOKEN,
            TELEGRAM_API_BASE=tg.api_base,
            TELEGRAM_GLOBAL_RATE="200",
            SHUTDOWN_GRACE_SECONDS=str(grace),
        )
        agents = list(chat_of)
        upstream: dict[int, tuple[int, int]] = {}  # message number -> (agent, AI-Trader id)

        async def notifications_flow() -> None:
            n = 0
            while True:
                agent = agents[n % len(agents)]
                upstream[n] = (agent, world.push_message(agent, "custom_note", f"restart-{n}"))
                n += 1
                await asyncio.sleep(0.2)  # 5/s in all: under a second per message in each chat

        processes: list[RelayProcess] = []
        current = RelayProcess(env)
        await current.start()
        await current.wait_for(lambda: "relay started" in current.err)
        processes.append(current)
        pusher = asyncio.create_task(notifications_flow())
        shutdowns: list[float] = []
        in_flight: set[str] = set()
        in_flight_per_stop: list[int] = []
        lease_left: list[bool] = []
        try:
            for _ in range(restarts):
                before = len(counts(tg))
                await current.wait_for(lambda before=before: len(counts(tg)) >= before + 10, timeout=60)  # type: ignore[misc]
                if stalling:
                    tg.answering.clear()
                shutdowns.append(await current.terminate())
                marks = set(text_dict(await redis.hgetall(keys.in_flight())).values())
                in_flight_per_stop.append(len(marks - in_flight))
                in_flight |= marks
                lease_left.append(bool(await redis.exists(keys.adapter_key(TELEGRAM_POLLER))))
                tg.answering.set()
                current = RelayProcess(env)
                await current.start()
                await current.wait_for(lambda p=current: "relay started" in p.err)  # type: ignore[misc]
                processes.append(current)
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        expected = set(upstream)
        # The backlog left by the restarts drains at about one message per second per private
        # chat: the deadline grows with it (it only turns a hang into a failure).
        await current.wait_for(lambda: expected <= set(counts(tg)), timeout=120 + len(expected) / AGENTS)
        shutdowns.append(await current.terminate())
    seen = counts(tg)
    duplicated = {n for n, c in seen.items() if c > 1}
    duplicates = sum(c - 1 for c in seen.values())

    def key(n: int) -> str:
        agent, message_id = upstream[n]
        return f"{agent}:m{message_id}:telegram:{chat_of[agent]}:"

    stopped_in = [float(t) for p in processes for t in re.findall(r"relay stopped in ([\d.]+)s", p.err)]
    tracebacks = [p.err for p in processes if "Traceback" in p.err or "did not stop cleanly" in p.err]
    print(
        f"\ntelegram-restarts ({'stalling' if stalling else 'responsive'} Bot API, grace {grace} s): "
        f"restarts={restarts} messages={len(expected)} lost={len(expected - set(seen))} duplicates={duplicates} "
        f"sends in flight at the SIGTERMs={len(in_flight)} per stop={in_flight_per_stop} "
        f"SIGTERM to exit max={max(shutdowns):.2f}s mean={statistics.mean(shutdowns):.2f}s "
        f"(Relay.stop max={max(stopped_in):.2f}s) leases left={sum(lease_left)}"
    )
    assert expected - set(seen) == set()
    assert tracebacks == [], tracebacks[0][-3000:]
    assert lease_left == [False] * restarts  # released on every stop, stalled or not
    if stalling:
        assert duplicates <= len(in_flight)
        assert {n for n in duplicated if key(n) not in in_flight} == set()
    else:
        assert duplicates == 0
