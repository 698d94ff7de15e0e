"""/why and watch filters through the real Telegram adapter (PTB against the fake Bot API) and
the real core: the reference printed in a delivered notification, typed back as `/why <ref>`,
answers with the journey in that chat; a feed watch's filter leaves a signal out and /why says
which setting did."""

from __future__ import annotations

import re

from aitrader_sim.world import World
from platform_fakes.telegram_api import visible_text
from relay.models import ChatRef
from tests.adapters import test_telegram_e2e as e2e
from tests.adapters.test_telegram_e2e import ANN, Telegram, eventually

REF = re.compile(r"/why_([a-z2-7]{8})\b")  # one command word, so that a tap sends the reference too


# The end-to-end module's fixtures: the relay with the real Telegram adapter, and its simulator world.
tg = e2e.tg
world = e2e.world


async def journeyed(tg: Telegram, ref: str) -> bool:
    events = await tg.relay.journal.chat_events(ChatRef("telegram", "42"))
    return any(e.ref == ref and e.step == "delivered" for e in events)


async def test_why_with_the_reference_from_a_notification_tells_its_journey(tg: Telegram, world: World) -> None:
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    world.push_message(agent_id, "discussion_mention", "carol mentioned you in BTC talk", {"signal_id": 31})
    await tg.poll(agent_id)
    shown = visible_text((await tg.delivered(42, "carol mentioned you")).params["text"])
    found = REF.search(shown)
    assert found, shown
    token = world.agent(agent_id).token
    assert token not in shown

    # The delivery is journaled with the drain's next write to Redis, moments after the send.
    await eventually(lambda: journeyed(tg, found.group(1)), True)
    # Tapped in the footer: Telegram sends the command word alone, reference included.
    answer = visible_text((await tg.says(42, ANN, f"/why_{found.group(1)}", "Delivered")).params["text"])
    assert "signal 31" in answer and "heartbeat call 1" in answer
    assert "routed by subscription #" in answer and "accepted by telegram (attempt 1)" in answer
    assert token not in answer
    typed = visible_text((await tg.says(42, ANN, f"/why {found.group(1)}", "Delivered")).params["text"])
    assert typed == answer, "typed with a space, the same journey"
    # The signal id works too, and an unknown reference says so in one answer.
    await tg.says(42, ANN, "/why 31", "accepted by telegram")
    unknown = visible_text(
        (await tg.says(42, ANN, "/why zzzzzzzz", "Nothing known here about zzzzzzzz")).params["text"]
    )
    assert "newest 1,000 events" in unknown


async def test_a_feed_watch_filter_leaves_a_signal_out_and_why_names_the_setting(tg: Telegram, world: World) -> None:
    await tg.says(42, ANN, '/subscribe feed btc symbol=BTC -"rate cut"', 'symbol=BTC -"rate cut"')
    listing = visible_text((await tg.says(42, ANN, "/subscriptions", "feed")).params["text"])
    assert 'feed “btc” symbol=BTC -"rate cut"' in listing
    [sub] = await tg.relay.store.chat_subscriptions(ChatRef("telegram", "42"))
    poster = world.create_agent("poster")
    kept = world.create_signal(poster.id, "discussion", "crypto", "BTC breakout", "btc strong", "BTC")
    cut = world.create_signal(poster.id, "discussion", "crypto", "BTC and the Rate Cut", "btc macro", "BTC")
    assert await tg.relay.watcher.check(sub) == 1
    await tg.delivered(42, "BTC breakout")
    answer = visible_text((await tg.says(42, ANN, f"/why {cut}", "Filtered out")).params["text"])
    assert '-rate cut (the signal mentions "rate cut")' in answer
    assert kept != cut
    bad = visible_text((await tg.says(42, ANN, "/subscribe feed btc market=forex", "market must be")).params["text"])
    assert len(bad.splitlines()) == 1
