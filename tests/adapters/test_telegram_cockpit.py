"""The trader's cockpit on Telegram, end to end: the real PTB adapter against the fake Bot API,
the real core, the simulator. Cards render as aligned lines; the Confirm button of /trade
publishes once, only for the user who asked; Refresh edits /positions in place."""

from __future__ import annotations

import asyncio

from aitrader_sim.market_seed import seed_market
from aitrader_sim.world import World
from platform_fakes.telegram_api import FakeTelegram, visible_text
from relay.adapter import Limits
from tests.adapters.test_telegram_e2e import (  # noqa: F401 (fixtures)
    ANN,
    BOB,
    Telegram,
    button,
    group,
    labels,
    tg,
    world,
)

REALTIME = "/api/signals/realtime"


def trades(world: World) -> int:
    return sum(1 for s in world.signals.values() if s.message_type == "operation")


async def test_trade_confirm_in_a_group_only_for_the_asker_and_only_once(
    tg: Telegram, fake: FakeTelegram, world: World, group: int
) -> None:
    world.us_market_open = True
    await tg.linked_agent("ann_bot")
    card = await tg.says(group, ANN, "/trade buy AAPL 3 us-stock 212.5", "Confirm: BUY 3 AAPL")
    assert labels(card) == ["Confirm", "Cancel"]
    html = card.params["text"]
    assert "<pre>" in html  # the order's fields as aligned lines
    assert "Side      BUY\nSymbol    AAPL\nQuantity  3" in visible_text(html)
    message_id = card.result["message_id"]

    # Bob presses: he is told privately, the card stays for Ann, nothing is traded.
    query = fake.press(group, message_id, button(card, "Confirm"), BOB)
    alert = await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
    assert alert.params["show_alert"] in (True, "true") and alert.params["text"] == "Only Ann can confirm this trade."
    assert not fake.calls_to("editMessageText")
    assert world.route_counts[REALTIME] == 0

    # Ann double-clicks: one trade, the card becomes the result and loses its buttons.
    fake.press(group, message_id, button(card, "Confirm"), ANN)
    fake.press(group, message_id, button(card, "Confirm"), ANN)
    edit = await fake.wait_for("editMessageText", lambda c: "Published: BUY 3 AAPL" in visible_text(c.params["text"]))
    assert int(edit.params["message_id"]) == message_id and not edit.params.get("reply_markup")
    await fake.wait_for("answerCallbackQuery", lambda c: len(fake.calls_to("answerCallbackQuery")) >= 3)
    await asyncio.sleep(0)  # let the second press finish its (identical) edit
    assert trades(world) == 1 and world.route_counts[REALTIME] == 1


async def test_positions_refresh_edits_the_card_in_place(tg: Telegram, fake: FakeTelegram, world: World) -> None:
    agent_id = await tg.linked_agent("ann_bot")
    alice = world.create_agent("alice")
    seed_market(world, world.agent(agent_id), {"alice": alice})
    card = await tg.says(42, ANN, "/positions", "Positions: ann_bot")
    text = visible_text(card.params["text"])
    assert "copied from alice" in text and "Total PnL" in text and "Cash" in text
    assert labels(card) == ["Refresh"]
    world.set_price("us-stock", "AAPL", 300.0)
    fake.press(42, card.result["message_id"], button(card, "Refresh"), ANN)
    edit = await fake.wait_for("editMessageText")
    assert int(edit.params["message_id"]) == card.result["message_id"]
    assert "→ 300" in visible_text(edit.params["text"])
    assert len([c for c in fake.sent(42) if "Positions:" in visible_text(c.params["text"])]) == 1


async def test_every_cockpit_card_fits_telegram(tg: Telegram, fake: FakeTelegram, world: World) -> None:
    """Each new command's answer, from a seeded market, is accepted by the fake (4096 UTF-16 units,
    valid HTML) with its buttons' callback data within 64 bytes."""
    agent_id = await tg.linked_agent("ann_bot")
    alice = world.create_agent("alice")
    seed_market(world, world.agent(agent_id), {"alice": alice})
    for line, expect in (
        (f"/trader {alice.id}", "Trader alice"),
        ("/leaderboard 7", "Leaderboard, 7 days"),
        ("/trending", "Trending"),
        ("/points", "Points"),
        ("/intel", "Market overview"),
        ("/intel macro", "Macro:"),
        ("/intel news", "News"),
        ("/intel stock NVDA", "NVDA: buy"),
        (f"/replies {next(iter(world.signals))}", "Replies to signal"),
    ):
        call = await tg.says(42, ANN, line, expect)
        assert call.status == 200
        markup = call.params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            assert all(len(b["callback_data"].encode()) <= 64 for b in row)
    assert Limits  # the renderers' limits are the adapter's own (Limits), checked by the fake
