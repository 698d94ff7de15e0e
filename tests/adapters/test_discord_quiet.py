"""Quiet hours, snooze and digests through the real Discord adapter (discord.py) and the real core
against the fake Discord, which refuses what Discord refuses (content over 2,000 characters, an
embed description over 4,096, embeds over 6,000 in total). A summary is one message with a
component button that pages through the held notifications."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from aitrader_sim.world import World
from platform_fakes.discord_api import FakeDiscord
from relay.app import Relay
from relay.models import ChatRef, Message
from relay.outbox import Outgoing
from tests.adapters import test_discord_e2e as e2e
from tests.adapters.test_discord_e2e import ALICE, CHANNEL, MANAGE_CHANNELS, Member, arrived, link_and_subscribe, said

# The end-to-end module's fixtures (a started Relay with the real DiscordAdapter, the fake Discord,
# the simulator's world), registered here under their own names.
world, fake, live = e2e.world, e2e.fake, e2e.live

SUPPRESS_NOTIFICATIONS = 1 << 12  # Discord message flag: delivered without a push or sound


def embed_size(payload: dict[str, object]) -> int:
    """What Discord counts toward the 6,000 characters of a message's embeds."""
    total = 0
    embeds = payload.get("embeds") or []
    assert isinstance(embeds, list)
    for e in embeds:
        assert isinstance(e, dict)
        total += len(e.get("title", "")) + len(e.get("description", "")) + len((e.get("footer") or {}).get("text", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in e.get("fields") or [])
    return total


async def test_quiet_hours_hold_and_one_summary_pages_with_a_button(
    live: Relay, fake: FakeDiscord, world: World
) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    ann = await link_and_subscribe(live, fake, world, alice)
    now = datetime.now(UTC)
    hours = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"
    assert "held and sent as one summary" in said(await alice.run("quiet", {"hours": hours}))
    assert "Followers are now silent" in said(await alice.run("notify", {"kind": "followers", "mode": "silent"}))
    for i in range(14):
        world.push_message(ann, "price_alert", f"ETH alert {i}")
    fan = world.create_agent("fan")
    world.follow(fan.id, ann)
    follower = await arrived(fake, CHANNEL, "started following you")
    assert int(follower.payload.get("flags") or 0) & SUPPRESS_NOTIFICATIONS, "silent kind: no sound, not held"
    plan = await live.holding.plan(ChatRef("discord", str(CHANNEL)))
    assert plan.held == 14
    assert "Quiet hours" in said(await alice.run("status"))
    assert not any("ETH alert" in m.text for m in fake.channel_messages(CHANNEL))

    assert "Quiet hours are off" in said(await alice.run("quiet", {"hours": "off"}))
    summary = await arrived(fake, CHANNEL, "Quiet hours are over: 14 notifications held")
    assert "messages 14" in summary.text and "ETH alert 13" in summary.text
    assert not int(summary.payload.get("flags") or 0) & SUPPRESS_NOTIFICATIONS
    assert list(summary.labels().values()) == ["Show all 14"]
    assert len([m for m in fake.channel_messages(CHANNEL) if "Quiet hours are over" in m.text]) == 1

    shown = await alice.press(summary, "Show all 14")
    [page] = shown.messages()
    assert "Held notifications 1-10 of 14" in page.text and list(page.labels().values()) == ["Next"]
    await alice.press(page, "Next")
    await fake.wait_for(lambda: "Held notifications 11-14 of 14" in fake.messages[page.id].text)


async def test_a_digest_is_one_message_and_off_sends_what_was_collected(
    live: Relay, fake: FakeDiscord, world: World
) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    ann = await link_and_subscribe(live, fake, world, alice)
    assert "one hourly digest" in said(await alice.run("digest", {"what": "messages hourly"}))
    for i in range(3):
        world.push_message(ann, "price_alert", f"SOL alert {i}")
    fan = world.create_agent("fan")
    world.follow(fan.id, ann)
    await arrived(fake, CHANNEL, "started following you")
    assert (await live.holding.plan(ChatRef("discord", str(CHANNEL)))).digested == 3
    assert "messages: hourly" in said(await alice.run("digest"))
    assert "Digest off" in said(await alice.run("digest", {"what": "messages off"}))
    digest = await arrived(fake, CHANNEL, "Digest: 3 notifications")
    assert "SOL alert 0" in digest.text and digest.labels() == {}


async def test_a_summary_of_1000_notifications_fits_one_discord_message(
    live: Relay, fake: FakeDiscord, world: World
) -> None:
    alice = Member(fake, ALICE, MANAGE_CHANNELS)
    assert "Snoozed until" in said(await alice.run("snooze", {"duration": "2h"}))
    chat = ChatRef("discord", str(CHANNEL))
    items = [
        Outgoing(
            chat,
            f"bulk:{i}",
            Message(title=f"**{'Ünïcødé & 🚀 @everyone ' * 12}** #{i}", body=f"{'x_*`' * 300}\nsecond line {i}"),
            kind=("tasks", "accepted", "replies", "followers", "strategies")[i % 5],
        )
        for i in range(1000)
    ]
    assert await live.holding.divert(items, time.time()) == []
    assert "Snooze ended" in said(await alice.run("snooze", {"duration": "off"}))
    summary = await arrived(fake, CHANNEL, "Snooze is over: 1000 notifications held")
    size = embed_size(summary.payload)
    assert len(summary.payload.get("content") or "") <= 2000 and size <= 6000
    assert "tasks 200 · accepted 200 · replies 200 · followers 200 · strategies 200" in summary.text
    assert "@everyone" not in summary.text
    assert len([m for m in fake.channel_messages(CHANNEL) if "Snooze is over" in m.text]) == 1, "one message"
    print(f"discord summary of 1000: {size} embed characters, content {len(summary.payload.get('content') or '')}")
