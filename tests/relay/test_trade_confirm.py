"""`/trade` and its Confirm button: nothing is published before the asking user confirms within
60 s; one order is published at most once across double clicks, retries and processes (a Redis
SET NX claim); every upstream refusal is one sentence. Time is an injected clock, never a sleep.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.logs import Redactor
from relay.models import Action, Message, Reply, UserRef
from relay.tokens import TokenBox
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter
from tests.relay.test_commands import assert_usage, link, say

REALTIME = "/api/signals/realtime"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def relay(
    settings: RelaySettings,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
    adapter: RecordingAdapter,
    clock: Clock,
    world: World,
) -> Relay:
    world.us_market_open = True
    world.clock = clock  # one clock for both sides: /api/price allows a call per second
    world.set_price("us-stock", "AAPL", 212.4)
    world.set_price("crypto", "BTC", 68250.0)
    return Relay(settings, redis, http, box, [adapter], redactor=Redactor(), clock=clock, rng=random.Random(3))


def buttons(reply: Reply) -> dict[str, Action]:
    return {a.label: a for m in reply.messages for a in m.actions}


async def press(chat: Chat, action: Action) -> Reply:
    return await chat.say(action.command, **action.args)


def text(reply: Reply) -> str:
    return "\n".join(m.plain_text() for m in reply.messages)


async def open_order(dm: Chat, **args: str) -> Reply:
    reply = await dm.say("trade", **args)
    assert set(buttons(reply)) == {"Confirm", "Cancel"}, text(reply)
    return reply


async def test_nothing_is_published_before_confirm_and_confirm_publishes_once(
    relay: Relay, dm: Chat, world: World
) -> None:
    me = await link(dm, world)
    cash = world.agent(me).cash
    pending = await open_order(dm, side="buy", symbol="aapl", quantity="10", market="us-stock", price="212.5")
    card = pending.messages[0]
    assert card.title == "Confirm: BUY 10 AAPL · us-stock"
    assert {f.name: f.value for f in card.fields}["Price"] == "212.5 (yours)"
    assert all(a.replace for a in card.actions)  # the answer replaces the card, removing the buttons
    assert world.route_counts[REALTIME] == 0
    assert world.agent(me).cash == cash

    done = await press(dm, buttons(pending)["Confirm"])
    published = done.messages[0]
    assert published.title == "Published: BUY 10 AAPL · us-stock", text(done)
    [sig] = [s for s in world.signals.values() if s.agent_id == me and s.message_type == "operation"]
    assert (sig.side, sig.symbol, sig.quantity, sig.entry_price) == ("buy", "AAPL", 10, 212.5)
    assert f"signal {sig.signal_id}" in published.footer
    assert world.agent(me).cash == pytest.approx(cash - 2125 - 2.125)

    # A second press (a double click, a retry of the callback) changes nothing and says the same.
    again = await press(dm, buttons(pending)["Confirm"])
    assert again.messages == done.messages
    assert world.route_counts[REALTIME] == 1


async def test_a_burst_of_presses_publishes_once(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    world.faults.slow_seconds = 0.2  # every press arrives while the first is still at AI-Trader
    replies = await asyncio.gather(*(press(dm, buttons(pending)["Confirm"]) for _ in range(8)))
    world.faults.slow_seconds = 0
    assert world.route_counts[REALTIME] == 1
    titles = [r.messages[0].title or r.messages[0].body for r in replies]
    assert titles.count("Published: BUY 1 AAPL · us-stock") >= 1
    assert set(titles) <= {"Published: BUY 1 AAPL · us-stock", "This trade is being published right now."}
    settled = await press(dm, buttons(pending)["Confirm"])
    assert settled.messages[0].title == "Published: BUY 1 AAPL · us-stock"


async def test_two_processes_pressing_together_publish_once(
    relay: Relay,
    dm: Chat,
    world: World,
    settings: RelaySettings,
    redis: Redis,
    sim: SimulatorServer,
    box: TokenBox,
    clock: Clock,
) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="AAPL", quantity="2", market="us-stock", price="212")
    confirm = buttons(pending)["Confirm"]
    async with httpx.AsyncClient(base_url=sim.url, timeout=httpx.Timeout(3.0)) as other_http:
        other = Relay(settings, redis, other_http, box, [RecordingAdapter()], redactor=Redactor(), clock=clock)
        other_dm = Chat(other, dm.chat, dm.user)
        world.faults.slow_seconds = 0.2
        results = await asyncio.gather(
            *(press(c, confirm) for c in (dm, other_dm, dm, other_dm)),
        )
        world.faults.slow_seconds = 0
    assert world.route_counts[REALTIME] == 1
    assert sum(1 for s in world.signals.values() if s.message_type == "operation") == 1
    assert any(r.messages[0].title.startswith("Published") for r in results)


async def test_only_the_user_who_asked_can_confirm(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    mallory = Chat(relay, dm.chat, UserRef("rec", "666", "mallory"), private=False)
    for label in ("Confirm", "Cancel"):
        refused = await press(mallory, buttons(pending)[label])
        assert refused.private  # never replaces the card everyone sees
        assert text(refused).startswith("Only ann can"), text(refused)
    assert world.route_counts[REALTIME] == 0
    done = await press(dm, buttons(pending)["Confirm"])
    assert done.messages[0].title.startswith("Published")


async def test_a_confirm_after_60_seconds_publishes_nothing(relay: Relay, dm: Chat, world: World, clock: Clock) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    clock.now += 60.5
    for _ in range(2):
        late = text(await press(dm, buttons(pending)["Confirm"]))
        assert "not confirmed within 60 s" in late and "nothing was published" in late
    assert world.route_counts[REALTIME] == 0
    # Within the window it would have gone through: the boundary is the clock, not the key's TTL.
    fresh = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    clock.now += 59.5
    assert (await press(dm, buttons(fresh)["Confirm"])).messages[0].title.startswith("Published")


async def test_cancel_then_confirm_publishes_nothing(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    cancelled = await press(dm, buttons(pending)["Cancel"])
    assert cancelled.messages[0].title == "Cancelled: BUY 1 AAPL · us-stock"
    after = await press(dm, buttons(pending)["Confirm"])
    assert after.messages == cancelled.messages
    assert world.route_counts[REALTIME] == 0


@pytest.mark.parametrize(
    ("setup", "args", "says"),
    [
        ("closed", {"quantity": "1", "price": "212"}, "US market is closed."),
        ("", {"quantity": "900", "price": "212"}, "Insufficient cash. Required: $190,990.80"[:23]),
        ("", {"quantity": "1", "price": "20000000"}, "Price too large"),
        ("", {"quantity": "2000000", "price": "1"}, "Quantity too large"),
    ],
)
async def test_upstream_refusals_come_back_as_one_sentence(
    relay: Relay, dm: Chat, world: World, setup: str, args: dict[str, str], says: str
) -> None:
    await link(dm, world)
    if setup == "closed":
        world.us_market_open = False
    pending = await open_order(dm, side="buy", symbol="AAPL", market="us-stock", **args)
    answer = await press(dm, buttons(pending)["Confirm"])
    [message] = answer.messages
    assert message.title == f"Not published: BUY {args['quantity']} AAPL · us-stock".replace(
        "2000000", "2,000,000"
    ) or message.title.startswith("Not published"), message.title
    assert message.body.startswith("AI-Trader refused the trade: ") and says in message.body, message.body
    assert "\n" not in message.body
    assert not [s for s in world.signals.values() if s.message_type == "operation"]
    # The refusal is how this order ended: pressing again does not try again.
    assert (await press(dm, buttons(pending)["Confirm"])).messages == answer.messages
    assert world.route_counts[REALTIME] == 1


async def test_selling_what_you_do_not_hold_is_refused(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="sell", symbol="AAPL", quantity="1", market="us-stock", price="212")
    assert "No long position to sell" in text(await press(dm, buttons(pending)["Confirm"]))


async def test_an_outage_at_confirm_time_can_be_retried_and_still_publishes_once(
    relay: Relay, dm: Chat, world: World
) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    world.faults.outage = "503"
    down = await press(dm, buttons(pending)["Confirm"])
    assert "not answering" in text(down) and "Press Confirm again" in text(down)
    world.faults.outage = None
    up = await press(dm, buttons(pending)["Confirm"])
    assert up.messages[0].title.startswith("Published")
    assert sum(1 for s in world.signals.values() if s.message_type == "operation") == 1


async def test_crypto_is_priced_by_ai_trader(relay: Relay, dm: Chat, world: World, clock: Clock) -> None:
    await link(dm, world)
    pending = await open_order(dm, side="buy", symbol="btc", quantity="0.1", market="crypto")
    assert {f.name: f.value for f in pending.messages[0].fields}[
        "Price"
    ] == "market, priced by AI-Trader (about 68,250)"
    world.set_price("crypto", "BTC", 69000.0)  # the server prices at execution time
    done = await press(dm, buttons(pending)["Confirm"])
    assert {f.name: f.value for f in done.messages[0].fields}["Price"] == "69,000"


async def test_a_stock_without_price_or_quote_asks_for_a_price(
    relay: Relay, dm: Chat, world: World, clock: Clock
) -> None:
    await link(dm, world)
    text_ = await say(dm, "trade", side="buy", symbol="ZZZZ", quantity="1")
    assert_usage(text_, "trade")
    assert "no current price for ZZZZ" in text_
    # With a cached quote the order is priced from it.
    clock.now += 1.5
    quoted = await open_order(dm, side="buy", symbol="AAPL", quantity="1")
    assert {f.name: f.value for f in quoted.messages[0].fields}["Price"] == "market, about 212.4"


async def test_trade_bad_input_is_a_usage_line_without_an_order(
    relay: Relay, dm: Chat, world: World, redis: Redis
) -> None:
    assert "link your agent first" in await say(dm, "trade", side="buy", symbol="AAPL", quantity="1", price="1")
    await link(dm, world)
    cases = [
        ({"side": "hold", "symbol": "AAPL", "quantity": "1"}, "side must be one of"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "abc"}, "quantity must be a number"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "0"}, "greater than 0"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "-3"}, "greater than 0"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "nan"}, "greater than 0"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "inf"}, "greater than 0"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "1", "market": "forex"}, "market must be one of"),
        ({"side": "buy", "symbol": "AAPL", "quantity": "1", "market": "us-stock", "price": "free"}, "price must be"),
        ({"side": "buy", "symbol": "../me", "quantity": "1"}, "symbol is letters"),
        ({"side": "short", "symbol": "slug:Yes", "quantity": "1", "market": "polymarket"}, "buy or sell"),
        ({"side": "buy", "symbol": "slug", "quantity": "1", "market": "polymarket"}, "Polymarket symbol"),
    ]
    before = len(world.requests)
    for args, reason in cases:
        answer = await say(dm, "trade", **args)
        assert_usage(answer, "trade")
        assert reason in answer, (args, answer)
    assert len(world.requests) == before
    assert [k async for k in redis.scan_iter(match=f"{relay.keys.prefix}:trade:*")] == []


async def test_confirm_with_a_made_up_id(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    assert "not confirmed within 60 s" in await say(dm, "confirm", id="abcdefghijkl")
    assert_usage(await say(dm, "confirm", id="../../x"), "confirm")
    assert world.route_counts[REALTIME] == 0


def test_the_trade_card_fits_every_renderer() -> None:
    from relay import cards
    from relay.models import TradeOrder

    card = cards.pending_trade(
        TradeOrder("buy", "X" * 64, 1e9, "polymarket", 0.5, "9" * 100, "O" * 40),
        price_note="market",
        actions=(),
        seconds=60,
    )
    assert isinstance(card, Message) and all(len(f.value) <= 100 for f in card.fields)


async def test_trade_and_name_keys_are_declared_families_within_their_bounds(
    relay: Relay, dm: Chat, world: World, redis: Redis, prefix: str, clock: Clock
) -> None:
    from tests.relay.test_key_families import _check_bounds

    await link(dm, world)
    done = await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")
    await press(dm, buttons(done)["Confirm"])
    await open_order(dm, side="buy", symbol="AAPL", quantity="1", market="us-stock", price="212")  # left pending
    await say(dm, "trader", agent_id="1")
    await say(dm, "send", agent_id="999", text="x")  # an unknown id is remembered briefly
    seen = await _check_bounds(redis, prefix)
    assert {"trade:{order}", "trade:{order}:claim", "trade:{order}:done", "name:{agent}"} <= seen
