"""Feed and trader watch filters (market=, symbol=, type=, -word): parsed, stored with the
subscription, shown by /subscriptions, applied by the watcher, and journaled for /why when they
leave a signal out. Against the simulator's feed over HTTP and a real Redis."""

from __future__ import annotations

import math

from aitrader_sim.world import World
from relay.app import Relay
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter


async def posted_signals(relay: Relay, dm: Chat, adapter: RecordingAdapter) -> list[int]:
    await relay.deliverer.drain_due(math.inf)
    return [int(s.key.split(":s", 1)[1].split(":", 1)[0]) for s in adapter.to(dm.chat)]


async def test_feed_watch_filters_by_symbol_and_exclusion_and_says_why(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    poster = world.create_agent("poster")
    text = await dm.text("subscribe", what='feed btc market=crypto symbol=BTC -scam -"rate cut"')
    assert 'Watching the feed for “btc” market=crypto symbol=BTC -scam -"rate cut" as #' in text, text
    [sub] = await relay.store.chat_subscriptions(dm.chat)
    assert (sub.market, sub.symbol, sub.exclude) == ("crypto", "BTC", ("scam", "rate cut"))
    listing = await dm.text("subscriptions")
    assert f'#{sub.sub_id} feed “btc” market=crypto symbol=BTC -scam -"rate cut"' in listing

    good = world.create_signal(poster.id, "discussion", "crypto", "BTC breakout", "btc to the moon", "BTC")
    other_symbol = world.create_signal(poster.id, "discussion", "crypto", "ETH vs btc", "eth wins", "ETH")
    scam = world.create_signal(poster.id, "discussion", "crypto", "BTC giveaway", "btc SCAM here", "BTC")
    phrase = world.create_signal(poster.id, "discussion", "crypto", "BTC and the rate cut", "btc macro", "BTC")
    stock = world.create_signal(poster.id, "discussion", "us-stock", "btc miners", "btc stocks", "BTC")
    assert await relay.watcher.check(sub) == 1
    assert await posted_signals(relay, dm, adapter) == [good]

    why = await dm.text("why", ref=str(other_symbol))
    assert why.startswith(f"Filtered out: signal {other_symbol}"), why
    assert f"left out by watch #{sub.sub_id}: symbol=BTC (this signal is about ETH)" in why
    assert '-scam (the signal mentions "scam")' in await dm.text("why", ref=str(scam))
    assert '-rate cut (the signal mentions "rate cut")' in await dm.text("why", ref=str(phrase))
    # market= goes upstream as the feed's own parameter: a us-stock signal never comes back.
    assert "Nothing known here about" in await dm.text("why", ref=str(stock))
    assert (await dm.text("why", ref=str(good))).startswith("Delivered")


async def test_trader_watch_filters_by_type_and_symbol_among_a_strategys_symbols(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    trader = world.create_agent("trader")
    text = await dm.text("subscribe", what=f"trader {trader.id} type=strategy symbol=nvda")
    assert f"Watching trader trader (#{trader.id}), only symbol=nvda type=strategy as #" in text, text
    [sub] = await relay.store.chat_subscriptions(dm.chat)
    assert f"#{sub.sub_id} trader {trader.id} symbol=nvda type=strategy" in await dm.text("subscriptions")

    chips = world.create_signal(trader.id, "strategy", "us-stock", "Chips", "long chips", symbols="NVDA,AMD")
    talk = world.create_signal(trader.id, "discussion", "us-stock", "NVDA talk", "nvda", "NVDA")
    cars = world.create_signal(trader.id, "strategy", "us-stock", "Cars", "long cars", symbols="TSLA")
    assert await relay.watcher.check(sub) == 1
    assert await posted_signals(relay, dm, adapter) == [chips]
    assert "type=strategy (this signal is a discussion)" in await dm.text("why", ref=str(talk))
    assert "symbol=nvda (this signal is about TSLA)" in await dm.text("why", ref=str(cars))


async def test_feed_watch_without_a_keyword_needs_a_filter(relay: Relay, world: World, dm: Chat) -> None:
    text = await dm.text("subscribe", what="feed market=polymarket")
    assert "Watching the whole feed market=polymarket as #" in text, text
    [sub] = await relay.store.chat_subscriptions(dm.chat)
    assert (sub.keyword, sub.market) == ("", "polymarket")


async def test_bad_filters_get_one_usage_line_and_store_nothing(relay: Relay, dm: Chat) -> None:
    trader = "7"
    cases = {
        "feed btc market=forex": "market must be one of us-stock, crypto, polymarket",
        "feed btc type=gossip": "type must be one of operation, strategy, discussion",
        "feed btc colour=red": "unknown filter colour=",
        "feed btc symbol=BTC symbol=ETH": "symbol= is given twice",
        "feed btc symbol=<b>": "symbol is letters, digits",
        "feed btc strategy type=discussion": "two types given (strategy, type=discussion)",
        "feed btc " + " ".join(f"-w{i}" for i in range(11)): "at most 10 exclusions",
        f"trader {trader} market=mars": "market must be one of",
        f"trader {trader} extra words": "trader needs one agent id",
        "trader -3 market=crypto": "agent_id must be a positive number",  # a negative id, not an exclusion
    }
    for what, expected in cases.items():
        text = await dm.text("subscribe", what=what)
        assert text.startswith("Usage"), (what, text)
        assert expected in text, (what, text)
        assert len(text.splitlines()) == 1, (what, text)
    assert await relay.store.chat_subscriptions(dm.chat) == []
