"""/why and watch filters through the real Discord adapter (discord.py against the fake Discord,
which checks each slash command's options against the declared commands) and the real core."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from aitrader_sim.world import World
from platform_fakes.discord_api import FakeDiscord
from relay.app import Relay
from relay.models import ChatRef
from tests.adapters import test_discord_e2e as e2e
from tests.adapters.test_discord_e2e import ALICE, CHANNEL, MANAGE_CHANNELS, Member, arrived, link_and_subscribe, said

# The end-to-end module's fixtures (a started Relay with the real DiscordAdapter, the fake Discord,
# the simulator's world), registered here under their own names.
world, fake, live = e2e.world, e2e.fake, e2e.live

REF = re.compile(r"/why ([a-z2-7]{8})\b")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    async def loop() -> None:
        while not await check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


async def test_why_in_a_channel_tells_the_journey_of_a_delivered_notification(
    live: Relay, fake: FakeDiscord, world: World
) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    ann = await link_and_subscribe(live, fake, world, alice)
    world.push_message(ann, "discussion_mention", "dave mentioned you", {"signal_id": 808})
    notification = await arrived(fake, CHANNEL, "dave mentioned you")
    found = REF.search(notification.text)
    assert found, notification.text

    async def journeyed() -> bool:
        events = await live.journal.chat_events(ChatRef("discord", str(CHANNEL)))
        return any(e.ref == found.group(1) and e.step == "delivered" for e in events)

    await eventually(journeyed)
    answer = said(await alice.run("why", {"ref": found.group(1)}))
    assert answer.startswith("Delivered") and "signal 808" in answer, answer
    assert "routed by subscription #" in answer and "accepted by discord (attempt 1)" in answer
    assert "accepted by discord" in said(await alice.run("why", {"ref": "808"}))
    assert "Nothing known here about zzzzzzzz" in said(await alice.run("why", {"ref": "zzzzzzzz"}))


async def test_a_trader_watch_filter_through_the_slash_command(live: Relay, fake: FakeDiscord, world: World) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    trader = world.create_agent("trader")
    text = said(await alice.run("subscribe", {"what": f"trader {trader.id} market=crypto -shill"}))
    assert "only market=crypto -shill" in text, text
    assert "market=crypto -shill" in said(await alice.run("subscriptions"))
    bad = said(await alice.run("subscribe", {"what": f"trader {trader.id} type=meme"}))
    assert "type must be one of operation, strategy, discussion" in bad and len(bad.splitlines()) == 1
