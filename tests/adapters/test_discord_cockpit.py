"""The trader's cockpit on Discord, end to end: the real discord.py adapter against the fake
Discord, the real core, the simulator. Cards are embed field tables; Confirm publishes once and
only for the user who asked, whose answer replaces the card; anyone else is told privately."""

from __future__ import annotations

from aitrader_sim.world import World
from platform_fakes.discord_api import FakeDiscord
from relay.app import Relay
from tests.adapters.test_discord_e2e import (  # noqa: F401 (fixtures)
    ALICE,
    BOB,
    CHANNEL,
    MANAGE_CHANNELS,
    Member,
    fake,
    link_and_subscribe,
    live,
    said,
    world,
)

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
