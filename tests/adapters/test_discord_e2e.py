"""Discord end to end through the real core: `relay.app.Relay` with the real DiscordAdapter
(discord.py inside) against the fake Discord, the AI-Trader simulator over HTTP and a real Redis.

Users act only as Discord users do: INTERACTION_CREATEs from the fake (slash commands, button
presses, modal submissions). Notifications are made in the simulator (a reply, a follow) and
travel heartbeat -> inbox -> fan-out -> outbox -> delivery -> Discord on the relay's own schedule.
The last test runs `python -m adapters.main run` as a separate process.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from platform_fakes.discord_api import FakeDiscord, FakeInteraction, StoredMessage
from relay.app import Relay
from relay.config import RelaySettings
from relay.models import ChatRef
from relay.store import ChatError
from relay.tokens import TokenBox
from tests.adapters.conftest import started_discord_relay
from tests.fakes.relay_process import ROOT, relay_env

TOKEN = "MTAwE2E00000000000000000.GeTwOe.e2e-bot-token-never-real-000000000"
GUILD = 510000000000000001
CHANNEL, OTHER, THIRD = 510000000000000011, 510000000000000012, 510000000000000013
DM = 610000000000000001
ALICE, BOB = 311111111111111111, 322222222222222222
MANAGE_CHANNELS = 1 << 4
DELIVERY_TIMEOUT = 45.0  # the relay's own schedule: sync, 1 s polls, delivery


@pytest.fixture
def world() -> World:
    """The simulator asks for 1 s polls, so notifications travel within a couple of seconds."""
    return World(seed=7, poll_interval_seconds=1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    # Discord's own limits on: 50 requests/s per bot, 5 messages per 5 s per channel.
    async with FakeDiscord(token=TOKEN, guilds={GUILD: [CHANNEL, OTHER, THIRD]}) as server:
        yield server


@pytest.fixture
async def live(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, fake: FakeDiscord
) -> AsyncIterator[Relay]:
    """A started Relay whose only adapter is the real DiscordAdapter."""
    async with started_discord_relay(
        settings, redis, http, box, fake, seed=5, bot_token=TOKEN, max_requests_per_second=45, send_timeout=5.0
    ) as relay:
        yield relay


@dataclass
class Member:
    """One Discord user, acting through the fake's INTERACTION_CREATEs."""

    fake: FakeDiscord
    user_id: int
    permissions: int = 0

    async def run(
        self, name: str, options: dict[str, Any] | None = None, *, channel: int = CHANNEL, guild: int | None = GUILD
    ) -> FakeInteraction:
        return await answered(
            self.fake,
            await self.fake.interaction(
                name, options, channel_id=channel, user_id=self.user_id, guild_id=guild, permissions=self.permissions
            ),
        )

    async def press(self, message: StoredMessage, label: str) -> FakeInteraction:
        custom_id = next((cid for cid, text in message.labels().items() if text == label), None)
        assert custom_id is not None, f"no {label!r} button; buttons are {list(message.labels().values())}"
        guild = GUILD if message.channel_id != DM else None
        return await answered(
            self.fake,
            await self.fake.press(
                message.id, custom_id, user_id=self.user_id, guild_id=guild, permissions=self.permissions
            ),
        )

    async def submit(
        self, opened: FakeInteraction, values: dict[str, str], *, guild: int | None = GUILD
    ) -> FakeInteraction:
        return await answered(
            self.fake,
            await self.fake.submit_modal(
                opened, values, user_id=self.user_id, guild_id=guild, permissions=self.permissions
            ),
        )


async def answered(fake: FakeDiscord, interaction: FakeInteraction) -> FakeInteraction:
    # "…" is the placeholder that settles a deferral whose visibility turned out wrong.
    await fake.wait_for(lambda: interaction.answered and all(m.text != "…" for m in interaction.messages()), timeout=10)
    return interaction


def said(interaction: FakeInteraction) -> str:
    return "\n".join(m.text for m in interaction.messages())


async def arrived(fake: FakeDiscord, channel: int, words: str) -> StoredMessage:
    """The notification containing `words` once the relay has delivered it to the channel."""
    message: StoredMessage = await fake.wait_for(
        lambda: next((m for m in fake.channel_messages(channel) if words in m.text), None), timeout=DELIVERY_TIMEOUT
    )
    return message


async def link_and_subscribe(relay: Relay, fake: FakeDiscord, world: World, alice: Member, *channels: int) -> int:
    """Alice links agent "ann" through the /link modal in a DM, then subscribes each channel."""
    ann = world.create_agent("ann")
    opened = await alice.run("link", channel=DM, guild=None)
    assert opened.callbacks[0]["type"] == 9, "/link answers with a modal"
    linked = await alice.submit(opened, {"token": ann.token}, guild=None)
    [answer] = linked.messages()
    assert answer.ephemeral and f"Linked ann (#{ann.id})" in answer.text
    assert ann.token not in answer.text
    for channel in channels or (CHANNEL,):
        subscribed = await alice.run("subscribe", {"what": "all"}, channel=channel)
        assert "Subscribed #" in said(subscribed) and f"(#{ann.id})" in said(subscribed)
        assert not any(m.ephemeral for m in subscribed.messages()), "the channel sees who subscribed it"
    await relay.poller.sync()  # schedule the new agent now rather than at the next 5 s sync
    return ann.id


async def test_link_subscribe_notification_buttons_and_mute(live: Relay, fake: FakeDiscord, world: World) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    bob = Member(fake, BOB)  # a member without Manage Channels
    ann = await link_and_subscribe(live, fake, world, alice)
    assert len(await live.store.chat_subscriptions(ChatRef("discord", str(CHANNEL)))) == 1

    refused = await bob.run("subscribe", {"what": "all"}, channel=OTHER)
    assert said(refused) == "Only chat administrators can use /subscribe here."
    assert await live.store.chat_subscriptions(ChatRef("discord", str(OTHER))) == []

    signal_id = world.create_signal(ann, "strategy", "crypto", "BTC breakout", "long above 70k")
    quant = world.create_agent("quant")
    world.add_reply(signal_id, quant.id, "agreed @everyone, target 80k")
    notice = await arrived(fake, CHANNEL, "New reply on a strategy")
    body = notice.payload
    assert body["embeds"] and not body.get("content"), "an embed, no content"
    assert body["allowed_mentions"] == {"parse": []}
    assert body["enforce_nonce"] is True and 1 <= len(body["nonce"]) <= 25
    assert "target 80k" in notice.text and "@everyone" not in notice.text
    # A reply to ann's own strategy: she may accept it.
    assert list(notice.labels().values()) == ["Show replies", "Reply", "Accept", "Mute this kind"]

    shown = await bob.press(notice, "Show replies")
    assert f"Replies to signal {signal_id}" in said(shown) and "target 80k" in said(shown)

    opened = await alice.press(notice, "Reply")
    assert opened.callbacks[0]["type"] == 9, "Reply asks for the text in a modal"
    posted = await alice.submit(opened, {"text": "thanks, holding to 80k"})
    assert f"Reply posted to signal {signal_id}" in said(posted)
    assert [(r["agent_id"], r["content"]) for r in world.list_replies(signal_id)] == [
        (quant.id, "agreed @everyone, target 80k"),
        (ann, "thanks, holding to 80k"),
    ]

    not_allowed = await bob.press(notice, "Mute this kind")
    assert said(not_allowed) == "Only chat administrators can use /notify here."
    muted = await alice.press(notice, "Mute this kind")
    assert said(muted) == "Replies are now off in this chat."

    world.add_reply(signal_id, quant.id, "second thoughts: 75k")  # a reply notice: muted now
    world.follow(quant.id, ann)  # a follower notice, pushed after it: still on
    await arrived(fake, CHANNEL, "started following you")
    replies = [m for m in fake.channel_messages(CHANNEL) if "New reply on a strategy" in m.text]
    assert len(replies) == 1, "the muted kind was not delivered"
    assert not any("second thoughts" in m.text for m in fake.public_messages())


async def test_feed_pages_edit_the_message_in_place(live: Relay, fake: FakeDiscord, world: World) -> None:
    author = world.create_agent("chartist")
    for i in range(7):
        world.create_signal(author.id, "discussion", "crypto", f"btc idea {i}", f"content {i}")
    reader = Member(fake, BOB)
    first = await reader.run("feed", {"keyword": "btc"})
    [page] = first.messages()
    assert "page 1" in page.text and "btc idea 6" in page.text and "btc idea 1" not in page.text
    assert list(page.labels().values()) == ["Next ▶"]
    public = len(fake.public_messages())

    await reader.press(page, "Next ▶")
    await fake.wait_for(lambda: "page 2" in fake.messages[page.id].text)
    assert "btc idea 1" in page.text and "btc idea 6" not in page.text
    assert list(page.labels().values()) == ["◀ Previous"]
    await reader.press(page, "◀ Previous")
    await fake.wait_for(lambda: "page 1" in fake.messages[page.id].text)
    assert list(page.labels().values()) == ["Next ▶"]
    assert len(fake.public_messages()) == public, "paging edits the message, it posts nothing"


@pytest.mark.parametrize("status", [403, 404])
async def test_a_refusing_channel_loses_its_subscriptions(
    live: Relay, fake: FakeDiscord, world: World, status: int
) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    ann = await link_and_subscribe(live, fake, world, alice, CHANNEL, OTHER)
    gone = ChatRef("discord", str(OTHER))
    assert len(await live.store.chat_subscriptions(gone)) == 1
    fake.refuse(OTHER, status)
    world.follow(world.create_agent("fan").id, ann)
    await arrived(fake, CHANNEL, "started following you")

    async def dropped() -> None:
        while await live.store.chat_subscriptions(gone):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(dropped(), DELIVERY_TIMEOUT)
    assert len(await live.store.chat_subscriptions(ChatRef("discord", str(CHANNEL)))) == 1, "other channels keep theirs"
    assert len(fake.calls_to("POST", f"/channels/{OTHER}/messages")) == 1, "no more requests to the refusing channel"
    assert fake.channel_messages(OTHER) == []


async def test_a_channel_missing_embed_links_keeps_its_subscriptions(
    live: Relay, fake: FakeDiscord, world: World
) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    ann = await link_and_subscribe(live, fake, world, alice, CHANNEL, OTHER)
    blocked = ChatRef("discord", str(OTHER))
    fake.deny(OTHER, "embed_links")
    world.follow(world.create_agent("fan").id, ann)
    await arrived(fake, CHANNEL, "started following you")
    await arrived(fake, OTHER, "missing a permission")

    async def noted() -> ChatError:
        while not (error := await live.store.chat_error(blocked)):
            await asyncio.sleep(0.05)
        return error

    error = await asyncio.wait_for(noted(), DELIVERY_TIMEOUT)
    assert "permission" in str(error)
    assert len(await live.store.chat_subscriptions(blocked)) == 1, "the channel keeps its configuration"
    assert await live.outbox.pending(blocked), "the notification waits for the permission"
    assert await live.outbox.dead_count(blocked) == 0, "nothing dead-lettered"


async def test_a_resend_after_a_lost_response_posts_once(live: Relay, fake: FakeDiscord, world: World) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    ann = await link_and_subscribe(live, fake, world, alice)
    fake.drop_next_response(CHANNEL)  # the message is created, the relay never hears so
    world.follow(world.create_agent("fan").id, ann)
    posts = f"/channels/{CHANNEL}/messages"
    await fake.wait_for(lambda: len(fake.calls_to("POST", posts)) >= 2, timeout=DELIVERY_TIMEOUT)

    async def settled() -> None:
        while await live.outbox.pending(ChatRef("discord", str(CHANNEL))):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(settled(), DELIVERY_TIMEOUT)
    [notice] = [m for m in fake.channel_messages(CHANNEL) if "started following you" in m.text]
    nonces = {c.body["nonce"] for c in fake.calls_to("POST", posts)}
    assert nonces == {notice.payload["nonce"]}, "the resend carried the first attempt's nonce"
    assert len(fake.channel_messages(CHANNEL)) == 1


# --- the real process ---------------------------------------------------------------------------


async def _pump(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    assert stream is not None
    while chunk := await stream.read(65536):
        sink.append(chunk.decode(errors="replace"))


async def test_the_relay_process_serves_discord_and_stops_on_sigterm(
    fake: FakeDiscord, sim: SimulatorServer, world: World, redis_url: str, prefix: str, secret_key: str, redis: Redis
) -> None:
    env = relay_env(
        sim.url,
        redis_url,
        prefix,
        secret_key,
        DISCORD_BOT_TOKEN=TOKEN,
        DISCORD_API_BASE=fake.api_base,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        LOG_LEVEL="DEBUG",
        SHUTDOWN_GRACE_SECONDS="4",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.main",
        "run",
        cwd=str(ROOT),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out: list[str] = []
    err: list[str] = []
    pumps = [asyncio.create_task(_pump(proc.stdout, out)), asyncio.create_task(_pump(proc.stderr, err))]
    try:
        await fake.wait_for(lambda: fake.active_session is not None and fake.commands, timeout=20)
        alice = Member(fake, ALICE, MANAGE_CHANNELS)
        ann = world.create_agent("ann")
        opened = await alice.run("link", channel=DM, guild=None)
        linked = await alice.submit(opened, {"token": ann.token, "mode": "consume"}, guild=None)
        assert [m.ephemeral for m in linked.messages()] == [True] and "Linked ann" in said(linked)
        assert "Subscribed #" in said(await alice.run("subscribe", {"what": "all"}))
        world.follow(world.create_agent("fan").id, ann.id)
        notice = await fake.wait_for(  # the process syncs agents every 5 s, then polls every 1-2 s
            lambda: next((m for m in fake.channel_messages(CHANNEL) if "started following you" in m.text), None),
            timeout=20,
        )
        assert notice.payload["allowed_mentions"] == {"parse": []} and notice.labels()

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=60)  # only a hang takes this long
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.gather(*pumps)
    logs = "".join(err)
    # Graceful: status 0 and every part's stop logged, within the relay's own bounded stop (a
    # wall-clock limit here would measure the machine's load, not the relay).
    assert code == 0, logs[-2000:]
    assert "relay stopped" in logs and "discord adapter stopped" in logs
    # LOG_LEVEL=DEBUG: discord.py logged the raw gateway events, the modal submission included,
    # with the typed values masked; neither the agent token nor the bot token reached a line.
    assert "WebSocket Event" in logs and "'custom_id': 'rl'" in logs and "'value': '***'" in logs
    assert ann.token not in logs and TOKEN not in logs and ann.token not in "".join(out)


# --- the trader's cockpit ----------------------------------------------------------------------
# The trader's cockpit on Discord, end to end: the real discord.py adapter against the fake
# Discord, the real core, the simulator. Cards are embed field tables; Confirm publishes once and
# only for the user who asked, whose answer replaces the card; anyone else is told privately.

REALTIME = "/api/signals/realtime"


async def test_trade_confirm_only_for_the_asker_and_only_once(live: Relay, fake: FakeDiscord, world: World) -> None:
    world.us_market_open = True
    alice, bob = Member(fake, ALICE, MANAGE_CHANNELS), Member(fake, BOB)
    await link_and_subscribe(live, fake, world, alice)
    asked = await alice.run(
        "trade", {"side": "buy", "symbol": "AAPL", "quantity": 3.0, "market": "us-stock", "price": 212.5}
    )
    [card] = asked.messages()
    assert "Confirm: BUY 3 AAPL" in card.text and not card.ephemeral
    assert list(card.labels().values()) == ["Confirm", "Cancel"]
    [embed] = card.payload["embeds"]
    table = {f["name"]: (f["value"], f["inline"]) for f in embed["fields"]}
    assert table["Side"] == ("BUY", True) and table["Quantity"] == ("3", True) and table["Price"][1] is True

    refused = await bob.press(card, "Confirm")
    # A press is answered by deferring (type 6); the private note follows.
    [note] = await fake.wait_for(lambda: refused.messages(), timeout=10)
    assert note.ephemeral and "can confirm this trade" in note.text
    assert list(fake.messages[card.id].labels().values()) == ["Confirm", "Cancel"], "the card stays for alice"
    assert world.route_counts[REALTIME] == 0

    await alice.press(card, "Confirm")
    await fake.wait_for(lambda: "Published: BUY 3 AAPL" in fake.messages[card.id].text)
    assert fake.messages[card.id].payload["components"] == [], "the result has no buttons left"
    assert world.route_counts[REALTIME] == 1
    assert sum(1 for s in world.signals.values() if s.message_type == "operation") == 1


async def test_a_signal_card_is_a_field_table(live: Relay, fake: FakeDiscord, world: World) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    trader = world.create_agent("quant")
    watch = await alice.run("subscribe", {"what": f"trader {trader.id}"})
    assert f"Watching trader quant (#{trader.id})" in said(watch)
    world.create_signal(trader.id, "operation", "crypto", None, "dip", "BTC", side="buy", price=64100.0, quantity=0.5)
    await live.watcher.check_all()
    card = await fake.wait_for(
        lambda: next((m for m in fake.channel_messages(CHANNEL) if "BUY 0.5 BTC" in m.text), None), timeout=10
    )
    [embed] = card.payload["embeds"]
    assert embed["title"] == "quant: BUY 0.5 BTC @ 64,100"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Entry"] == "64,100" and fields["Market"] == "crypto"
    assert fields["Quantity"] == "0\\.5"  # escaped: "0." would start a numbered list; Discord shows 0.5
    assert all(f["inline"] for f in embed["fields"])
