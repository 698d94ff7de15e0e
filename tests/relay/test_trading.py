"""The trader's cockpit through `Router.dispatch`, against the simulator over HTTP and a real Redis:
signal cards with trade fields, names instead of numbers, unknown ids, accepting replies, and
every new command's happy path and bad input. The Confirm flow of /trade is in test_trade_confirm.py.
"""

from __future__ import annotations

import math

from aitrader_sim.market_seed import POLYMARKET_OUTCOMES, POLYMARKET_SLUG, seed_intel, seed_market
from aitrader_sim.world import World
from relay.app import Relay
from relay.models import Reply, UserRef
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter
from tests.relay.test_commands import HOSTILE_IDS, assert_usage, link, reply_of, say


def fields_of(reply: Reply) -> dict[str, str]:
    return {f.name: f.value for m in reply.messages for f in m.fields}


def seeded(world: World, you_id: int) -> tuple[int, int]:
    """alice and bob trade; you hold own, copied and Polymarket positions (aitrader_sim.market_seed)."""
    alice, bob = world.create_agent("alice"), world.create_agent("bob")
    seed_market(world, world.agent(you_id), {"alice": alice, "bob": bob})
    return alice.id, bob.id


# --- cards: trade fields, names, unknown counts ------------------------------------------------


async def test_a_watched_traders_trade_arrives_with_its_fields_and_name(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    trader = world.create_agent("trader")
    await say(dm, "subscribe", what=f"trader {trader.id}")
    sub = (await relay.store.chat_subscriptions(dm.chat))[0]
    await relay.watcher.check(sub)
    sid = world.create_signal(
        trader.id, "operation", "us-stock", None, "adding", "AAPL", side="buy", price=198.25, quantity=25
    )
    world.signals[sid].pnl = -12.5
    assert await relay.watcher.check(sub) == 1
    await relay.deliverer.drain(dm.chat)
    [sent] = adapter.to(dm.chat)
    card = sent.message
    # /api/signals/{agent_id} carries no author name: it was resolved through the summary.
    assert card.title == "trader: BUY 25 AAPL @ 198.25", card.title
    fields = {f.name: f.value for f in card.fields}
    assert fields["Side"] == "BUY" and fields["Quantity"] == "25" and fields["Entry"] == "198.25"
    assert fields["Market"] == "us-stock" and fields["PnL"] == "-$12.50" and "UTC" in fields["Executed"]
    assert "Exit" not in fields  # not stored upstream, so not shown as 0
    assert all(len(f.value) <= 40 for f in card.fields)  # short: a table on Discord


async def test_a_watched_strategy_shows_its_symbols_and_tags(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    trader = world.create_agent("trader")
    await say(dm, "subscribe", what=f"trader {trader.id}")
    sub = (await relay.store.chat_subscriptions(dm.chat))[0]
    await relay.watcher.check(sub)
    world.create_signal(trader.id, "strategy", "crypto", "Rotation", "plan", symbols="BTC,ETH", tags="swing,macro")
    await relay.watcher.check(sub)
    await relay.deliverer.drain(dm.chat)
    fields = {f.name: f.value for f in adapter.to(dm.chat)[0].message.fields}
    assert fields == {"Market": "crypto", "Symbols": "BTC, ETH", "Tags": "swing, macro"}


async def test_feed_lines_summarise_trades_and_discussions_show_no_invented_counts(dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    poster = world.create_agent("poster")
    world.create_signal(
        poster.id, "operation", "crypto", None, "btc dip buy", "BTC", side="buy", price=64100.0, quantity=0.5
    )
    feed = await say(dm, "feed", keyword="btc")
    assert "BUY 0.5 BTC @ 64,100 by poster" in feed
    assert "0 replies" in feed  # the feed does count replies: a real zero
    world.create_signal(agent_id, "discussion", "crypto", "My thread", "mine")
    mine = await say(dm, "discussions")
    # The fallback (/api/signals/{agent_id}) counts nothing and names nobody.
    assert "replies" not in mine and "by ann" in mine and "by #" not in mine


async def test_names_are_cached_for_a_while(relay: Relay, world: World) -> None:
    agent = world.create_agent("carol")
    assert await relay.names.name(agent.id) == "carol"
    assert await relay.names.name(agent.id) == "carol"
    assert world.route_counts["/api/agents/{agent_id}/summary"] == 1
    assert await relay.names.name(424242) == ""
    assert await relay.names.name(424242) == ""
    assert world.route_counts["/api/agents/{agent_id}/summary"] == 2  # an unknown id is remembered too


# --- /send sender, unknown ids -------------------------------------------------------------------


async def test_send_carries_its_sender_and_the_receiver_sees_who_it_is_from(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    await link(dm, world)
    bob = world.create_agent("bob")
    bob_chat = Chat(relay, adapter.chat("200"), UserRef("rec", "200", "bob"))
    await say(bob_chat, "link", token=bob.token)
    await say(bob_chat, "subscribe", what="messages")
    await say(dm, "send", agent_id=str(bob.id), text="lunch?")
    [mid] = world.all_message_ids(bob.id)
    assert world.messages[mid].data == {"sender_id": 1, "sender_name": "ann"}
    await relay.poller.poll(bob.id)
    await relay.deliverer.drain_due(math.inf)
    [note] = adapter.to(bob_chat.chat)
    assert note.message.title == "Message from ann (#1)"
    assert note.message.body == "lunch?"
    assert not note.message.fields  # the sender keys are not repeated as raw data


async def test_unknown_agent_ids_are_refused_before_anything_is_written(dm: Chat, world: World) -> None:
    await link(dm, world)
    for name, args in (
        ("send", {"agent_id": "99", "text": "hi"}),
        ("task", {"agent_id": "99", "type": "ping"}),
        ("follow", {"agent_id": "99"}),
        ("subscribe", {"what": "trader 99"}),
        ("trader", {"agent_id": "99"}),
    ):
        text = await say(dm, name, **args)
        assert "no agent #99" in text, (name, text)
    for route in ("/api/claw/messages", "/api/claw/tasks", "/api/signals/follow"):
        assert world.route_counts[route] == 0, route
    assert world.messages == {} and world.subscriptions == {}


# --- accepting replies ---------------------------------------------------------------------------


async def test_a_reply_to_my_signal_has_an_accept_button_that_accepts_it(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    me = await link(dm, world)
    await say(dm, "subscribe", what="replies accepted")
    bob, carol = world.create_agent("bob"), world.create_agent("carol")
    mine = world.create_signal(me, "discussion", "crypto", "My take", "?")
    theirs = world.create_signal(carol.id, "discussion", "crypto", "Carol's take", "?")
    world.add_reply(theirs, me, "I chime in")  # makes me a participant of carol's thread
    reply_id = world.add_reply(mine, bob.id, "agreed")
    world.add_reply(theirs, bob.id, "me too")  # a participant notice: not mine to accept
    await relay.poller.poll(me)
    await relay.deliverer.drain_due(math.inf)
    by_signal = {s.message.footer.split(" · ")[1]: s.message for s in adapter.to(dm.chat)}
    own, other = by_signal[f"signal {mine}"], by_signal[f"signal {theirs}"]
    [accept] = [a for a in own.actions if a.label == "Accept"]
    assert (accept.command, dict(accept.args)) == ("accept", {"signal_id": str(mine), "reply_id": str(reply_id)})
    assert not [a for a in other.actions if a.label == "Accept"]
    text = await say(dm, accept.command, **accept.args)
    assert f"Accepted reply {reply_id} on signal {mine}" in text
    assert world.replies[reply_id].accepted


async def test_accept_refusals_and_bad_input(dm: Chat, world: World) -> None:
    assert "link your agent first" in await say(dm, "accept", signal_id="1", reply_id="1")
    await link(dm, world)
    bob = world.create_agent("bob")
    theirs = world.create_signal(bob.id, "discussion", "crypto", "Bob's", "?")
    rid = world.add_reply(theirs, bob.id, "self")
    assert "Only the original author can accept a reply" in await say(
        dm, "accept", signal_id=str(theirs), reply_id=str(rid)
    )
    assert "Reply not found" in await say(dm, "accept", signal_id=str(theirs), reply_id="999")
    before = len(world.requests)
    for bad in HOSTILE_IDS:
        assert_usage(await say(dm, "accept", signal_id=bad, reply_id="1"), "accept")
        assert_usage(await say(dm, "accept", signal_id="1", reply_id=bad), "accept")
    assert len(world.requests) == before


async def test_replies_show_reply_ids(dm: Chat, world: World) -> None:
    author, bob = world.create_agent("author"), world.create_agent("bob")
    sid = world.create_signal(author.id, "discussion", "crypto", "Topic", "?")
    rid = world.add_reply(sid, bob.id, "hello")
    assert f"reply {rid} · bob" in await say(dm, "replies", signal_id=str(sid))


# --- /positions, /trader -------------------------------------------------------------------------


async def test_positions_show_own_and_copied_with_pnl_total_cash_and_refresh(dm: Chat, world: World) -> None:
    assert "link your agent first" in await say(dm, "positions")
    me = await link(dm, world)
    seeded(world, me)
    reply = await reply_of(dm, "positions")
    msg = reply.messages[0]
    fields = fields_of(reply)
    assert msg.title == f"Positions: ann (#{me})"
    assert fields["AAPL · us-stock"] == "long 25 @ 198.2 → 212.4, PnL +$355.00"
    assert fields["BTC · crypto"].endswith("copied from alice (#2)")
    assert "PnL +$415.00" in fields["BTC · crypto"]
    assert fields["Total PnL"] == "+$495.00"  # 355 + 415 - 14 - 261
    assert fields["Cash"] == f"${world.agent(me).cash:,.2f}"
    assert "4 open, 1 copied" in msg.footer
    [refresh] = msg.actions
    assert (refresh.label, refresh.command, refresh.replace) == ("Refresh", "positions", True)
    # Refresh shows the new state.
    world.set_price("us-stock", "AAPL", 222.4)
    again = fields_of(await reply_of(dm, "positions"))
    assert again["AAPL · us-stock"].endswith("PnL +$605.00")


async def test_positions_without_a_price_say_so_instead_of_zero(dm: Chat, world: World) -> None:
    me = await link(dm, world)
    world.open_position(me, "ZZZZ", "us-stock", 3, 10.0)
    fields = fields_of(await reply_of(dm, "positions"))
    assert fields["ZZZZ · us-stock"] == "long 3 @ 10 → no price, PnL unknown"
    assert "Total PnL" not in fields
    assert "No open positions." not in await say(dm, "positions")


async def test_trader_shows_summary_signals_positions_and_buttons(dm: Chat, world: World) -> None:
    me = world.create_agent("me")
    alice_id, _ = seeded(world, me.id)
    reply = await reply_of(dm, "trader", agent_id=str(alice_id))
    msg = reply.messages[0]
    assert msg.title == f"Trader alice (#{alice_id})"
    assert "BUY 40 NVDA @ 118.5" in msg.body and "BUY 0.5 BTC @ 64,100" in msg.body
    fields = {f.name: f.value for f in msg.fields}
    assert fields["Positions"] == "2" and fields["Open PnL"].startswith("+$")
    assert [(a.label, a.command, dict(a.args)) for a in msg.actions] == [
        ("Follow", "follow", {"agent_id": str(alice_id)}),
        ("Unfollow", "unfollow", {"agent_id": str(alice_id)}),
        ("Watch", "subscribe", {"what": f"trader {alice_id}"}),
    ]
    for bad in HOSTILE_IDS:
        assert_usage(await say(dm, "trader", agent_id=bad), "trader")


# --- /price, /points, /leaderboard, /trending ----------------------------------------------------


async def test_price_for_stocks_crypto_and_polymarket(relay: Relay, dm: Chat, world: World) -> None:
    assert "link your agent first" in await say(dm, "price", symbol="AAPL")
    clock = [1000.0]
    world.clock = lambda: clock[0]
    seed_intel(world)
    await link(dm, world)
    world.set_price("us-stock", "AAPL", 212.4)
    world.set_price("crypto", "BTC", 68250.0)
    token, price = POLYMARKET_OUTCOMES["Yes"]
    world.add_polymarket_outcome(POLYMARKET_SLUG, "Yes", token, price)
    assert (await reply_of(dm, "price", symbol="aapl")).messages[0].title == "AAPL: 212.4"
    assert "slow down" in await say(dm, "price", symbol="BTC", market="crypto")  # 1 call per second upstream
    clock[0] += 1.5
    assert (await reply_of(dm, "price", symbol="BTC", market="crypto")).messages[0].title == "BTC: 68,250"
    clock[0] += 1.5
    by_outcome = await reply_of(dm, "price", symbol=f"{POLYMARKET_SLUG}:Yes", market="polymarket")
    assert fields_of(by_outcome)["Price"] == "0.34" and fields_of(by_outcome)["Outcome"] == "Yes"
    clock[0] += 1.5
    by_token = await reply_of(dm, "price", symbol=token, market="polymarket")
    assert fields_of(by_token)["Token"] == token
    clock[0] += 1.5
    assert "no current price for NOPE" in await say(dm, "price", symbol="NOPE")


async def test_price_bad_input_is_a_usage_line(dm: Chat, world: World) -> None:
    await link(dm, world)
    before = len(world.requests)
    assert_usage(await say(dm, "price", symbol="AAPL", market="forex"), "price")
    assert_usage(await say(dm, "price", symbol="../me", market="crypto"), "price")
    assert_usage(await say(dm, "price", symbol="no-outcome", market="polymarket"), "price")
    assert len(world.requests) == before


async def test_points_leaderboard_trending(dm: Chat, world: World) -> None:
    me = await link(dm, world)
    seeded(world, me)
    world.agent(me).points = 42
    fields = fields_of(await reply_of(dm, "points"))
    assert fields == {"Points": "42", "Cash": f"${world.agent(me).cash:,.2f}"}
    board = await say(dm, "leaderboard", days="7")
    assert "Leaderboard, 7 days" in board and "1. " in board and "%" in board and "trades" in board
    assert world.requests[-1].path.startswith("/api/profit/history?days=7")
    for bad in ("0", "366", "x", "-1"):
        assert_usage(await say(dm, "leaderboard", days=bad), "leaderboard")
    trending = await say(dm, "trending")
    assert "1. BTC · crypto · 2 holders · 68,250" in trending


# --- /post ---------------------------------------------------------------------------------------


async def test_post_strategy_and_discussion(dm: Chat, world: World) -> None:
    me = await link(dm, world)
    text = await say(dm, "post", kind="strategy", text="crypto BTC breakout | Long above 70k, stop 66k.")
    [sig] = [s for s in world.signals.values() if s.agent_id == me]
    assert (sig.message_type, sig.market, sig.title, sig.content) == (
        "strategy",
        "crypto",
        "BTC breakout",
        "Long above 70k, stop 66k.",
    )
    assert f"Published strategy as signal {sig.signal_id}" in text
    await say(dm, "post", kind="discussion", text="Rates | Who expects a cut?")
    disc = next(s for s in world.signals.values() if s.message_type == "discussion")
    assert (disc.market, disc.title) == ("general", "Rates")
    # The server's own discussion limit comes back as one sentence.
    again = await say(dm, "post", kind="discussion", text="Rates again | still?")
    assert again.startswith("AI-Trader says to slow down")


async def test_post_bad_input(dm: Chat, world: World) -> None:
    await link(dm, world)
    before = len(world.requests)
    for text in ("no separator here", "| only text", "title |", "x" * 201 + " | y"):
        assert_usage(await say(dm, "post", kind="strategy", text=text), "post")
    assert_usage(await say(dm, "post", kind="poem", text="a | b"), "post")
    assert len(world.requests) == before


# --- /intel --------------------------------------------------------------------------------------


async def test_intel_views_lead_with_the_numbers(dm: Chat, world: World) -> None:
    assert "no snapshot" in await say(dm, "intel")  # upstream without its worker: available false
    seed_intel(world)
    overview = await reply_of(dm, "intel")
    fields = fields_of(overview)
    assert fields["Macro"] == "▲ bullish (3/5 bullish)" and fields["BTC ETF flow"] == "▲ inflow (5 ETFs)"
    assert "Risk appetite is leading" in overview.messages[0].body
    macro = await reply_of(dm, "intel", what="macro")
    assert macro.messages[0].title == "Macro: ▲ bullish (3/5 bullish)"
    assert fields_of(macro)["BTC trend"] == "▲ +6.40% (7d) bullish"
    etf = await say(dm, "intel", what="etf")
    assert "BTC ETF flows: ▲ inflow, net score 15.82" in etf and "▲ IBIT +3.10% vol x1.6" in etf
    news = await say(dm, "intel", what="news crypto")
    assert "News: crypto: 2 headlines" in news and "Bitcoin ETFs log third day of inflows (CoinDesk, Bullish)" in news
    stock = await reply_of(dm, "intel", what="stock nvda")
    assert stock.messages[0].title == "NVDA: buy at 131.25"
    assert fields_of(stock)["5 days"] == "+5.80%"
    assert "no analysis snapshot for TSLA" in await say(dm, "intel", what="stock TSLA")


async def test_intel_bad_input_is_a_usage_line(dm: Chat, world: World) -> None:
    before = len(world.requests)
    for what in ("weather", "news gossip", "stock", "stock ../me", "stock A B", "macro extra"):
        assert_usage(await say(dm, "intel", what=what), "intel")
    assert len(world.requests) == before
