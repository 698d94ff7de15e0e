"""Quiet hours and snooze through the real Telegram adapter and the real core: notifications are
held, the end of the hold brings ONE summary with an inline *Show all* button, the button pages
through the held notifications (editing in place), and a summary of 1,000 stays one message
within the Bot API's 4,096 characters (the fake refuses longer, as Telegram does)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from adapters.telegram.markup import utf16_len
from aitrader_sim.world import World
from platform_fakes.telegram_api import FakeTelegram, visible_text
from relay.keys import Keys
from relay.models import Message
from relay.outbox import Outgoing
from tests.adapters import test_telegram_e2e as e2e
from tests.adapters.test_telegram_e2e import ANN, Telegram, button, flag, labels, ref

# The end-to-end module's fixtures: the relay with the real Telegram adapter, and its simulator world.
tg = e2e.tg
world = e2e.world


def around_now() -> str:
    """Quiet hours from an hour ago to an hour from now (UTC, the chat's default zone)."""
    now = datetime.now(UTC)
    return f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"


async def test_quiet_hours_hold_then_one_summary_with_a_button_that_pages_the_rest(
    tg: Telegram, fake: FakeTelegram, world: World
) -> None:
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    await tg.says(42, ANN, f"/quiet {around_now()}", "held and sent as one summary")
    await tg.says(42, ANN, "/notify followers silent", "Followers are now silent")
    for i in range(11):
        world.push_message(agent_id, "price_alert", f"BTC <alert> {i}")
    world.create_task(agent_id, "rebalance")
    fan = world.create_agent("fan")
    world.follow(fan.id, agent_id)
    await tg.poll(agent_id)
    follower = await tg.delivered(42, "fan started following you")
    assert flag(follower.params.get("disable_notification")), "a silent kind arrives without sound, not held"
    plan = await tg.relay.holding.plan(ref(42))
    assert plan.held == 12
    status = await tg.says(42, ANN, "/status", "Quiet hours")
    assert "12 held" in visible_text(status.params["text"])
    assert [c for c in fake.sent(42) if "BTC" in visible_text(c.params["text"])] == [], "nothing held was sent"

    await tg.says(42, ANN, "/quiet off", "Quiet hours are off")
    summary = await tg.delivered(42, "Quiet hours are over: 12 notifications held")
    text = visible_text(summary.params["text"])
    assert "tasks 1 · messages 11" in text and "Most important:" in text
    assert "BTC <alert> 10" in text, "upstream text shown as text"
    assert not flag(summary.params.get("disable_notification", False))
    assert labels(summary) == ["Show all 12"]
    assert len([c for c in fake.sent(42) if "Quiet hours are over" in visible_text(c.params["text"])]) == 1

    fake.press(42, summary.result["message_id"], button(summary, "Show all 12"), ANN)
    first = await tg.delivered(42, "Held notifications 1-10 of 12")
    assert labels(first) == ["Next"]
    fake.press(42, first.result["message_id"], button(first, "Next"), ANN)
    edit = await fake.wait_for("editMessageText", timeout=30)
    assert "Held notifications 11-12 of 12" in visible_text(edit.params["text"])
    assert int(edit.params["message_id"]) == first.result["message_id"]


async def test_a_summary_of_1000_notifications_is_one_message_within_4096(
    tg: Telegram, fake: FakeTelegram, world: World
) -> None:
    await tg.says(42, ANN, "/snooze 2h", "Snoozed until")
    chat = ref(42)
    # Worst-case notifications: long titles and bodies full of characters HTML must escape.
    items = [
        Outgoing(
            chat,
            f"bulk:{i}",
            Message(title=f"<b>{'Ünïcødé & 🚀 ' * 20}</b> #{i}", body=f"{'x<&>' * 300}\nsecond line {i}"),
            kind=("tasks", "mentions", "replies", "messages", "watches")[i % 5],
        )
        for i in range(1000)
    ]
    assert await tg.relay.holding.divert(items, time.time()) == [], "all 1,000 held"
    await tg.says(42, ANN, "/snooze off", "Snooze ended")
    summary = await tg.delivered(42, "Snooze is over: 1000 notifications held")
    shown = visible_text(summary.params["text"])
    assert utf16_len(shown) <= 4096 and "tasks 200 · mentions 200 · messages 200 · replies 200 · watches 200" in shown
    assert len([c for c in fake.sent(42) if "Snooze is over" in visible_text(c.params["text"])]) == 1, "one message"
    print(f"telegram summary of 1000: {utf16_len(shown)} UTF-16 units shown, {len(summary.params['text'])} chars HTML")


async def test_timezone_and_an_hourly_digest_through_telegram_sent_once_for_its_period(
    tg: Telegram, fake: FakeTelegram, world: World, redis: Redis, keys: Keys
) -> None:
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    await tg.says(42, ANN, "/timezone Asia/Shanghai", "now Asia/Shanghai")
    await tg.says(42, ANN, "/digest messages hourly", "messages now come as one hourly digest")
    for i in range(3):
        world.push_message(agent_id, "price_alert", f"ETH <alert> {i}")
    fan = world.create_agent("fan")
    world.follow(fan.id, agent_id)
    await tg.poll(agent_id)
    await tg.delivered(42, "fan started following you")
    assert (await tg.relay.holding.plan(ref(42))).digested == 3
    status = await tg.says(42, ANN, "/status", "Digests")
    assert "messages: hourly" in visible_text(status.params["text"]) and "Asia/Shanghai" in visible_text(
        status.params["text"]
    )
    # The hour ended: the last digest of this schedule was sent two hours ago.
    await redis.hset(keys.hold(ref(42).key), "done:hourly", repr(time.time() - 7200))
    await tg.relay.holding.check()  # or the relay's own scheduled check, whichever comes first
    assert await tg.relay.holding.check() == {}, "once for the period"
    digest = await tg.delivered(42, "Hourly digest: 3 notifications")
    assert "ETH <alert> 0" in visible_text(digest.params["text"])
    assert len([c for c in fake.sent(42) if "Hourly digest" in visible_text(c.params["text"])]) == 1
