"""/chart through the core against the simulator: the numbers in the caption come from the
upstream shapes (leaderboard history, positions, market-intel snapshots), the picture is a real
PNG drawn in a worker process, bad input gets one usage line, identical requests draw once."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest

from aitrader_sim.timefmt import iso_z
from aitrader_sim.world import World
from relay.app import Relay
from relay.models import Message, Reply, UserRef
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

DAY = 86400.0


@pytest.fixture
async def charting(relay: Relay) -> AsyncIterator[Relay]:
    yield relay
    await relay.renderer.close()  # the fixture's relay is never started, so never stopped


def only(reply: Reply) -> Message:
    assert len(reply.messages) == 1, reply
    return reply.messages[0]


def fields(message: Message) -> dict[str, str]:
    return {f.name: f.value for f in message.fields}


def png_size(message: Message) -> tuple[int, int]:
    assert message.image is not None and message.image.data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", message.image.data[16:24])
    return int(width), int(height)


def walk(world: World, agent_id: int, values: list[float], step: float = DAY) -> None:
    now = world.clock()
    for i, value in enumerate(values):
        world.record_profit(agent_id, value, now - (len(values) - i) * step)


def snapshots(world: World, symbol: str, prices: list[float]) -> None:
    """Daily market-intel snapshots as the upstream worker stores them (newest first), oldest price first."""
    now, rows = world.clock(), []
    for i, price in enumerate(prices):
        at = iso_z(now - (len(prices) - 1 - i) * DAY)
        analysis = {"current_price": price, "moving_averages": {"ma20": 101.5}, "support_levels": [97.0]}
        rows.append(
            {"analysis_id": f"{symbol}:{at}", "signal": "hold", "trend_status": "constructive"}
            | {"signal_score": 1.0, "summary": "", "analysis": analysis, "created_at": at}
        )
    world.intel.setdefault("stock_history", {})[symbol] = rows[::-1]


async def test_profit_chart_of_the_linked_agent_with_the_key_numbers_in_the_caption(
    charting: Relay, world: World, dm: Chat
) -> None:
    me = world.create_agent("alpha")
    world.create_agent("beta")
    walk(world, me.id, [100.0, -250.0, 400.0, 300.0])
    await dm.text("link", token=me.token)
    message = only(await dm.say("chart", what="profit"))
    assert message.title == f"Profit: alpha (#{me.id})"
    caption = fields(message)
    assert caption["Profit now"] == "+$0.00 (+0.00%)", "the live point: nothing traded yet"
    assert caption["High / low"] == "+$400.00 / -$250.00"
    assert caption["Max drawdown"] == "$400.00", "from the 400 peak to the live 0 (deeper than 100 -> -250)"
    assert caption["Change over 30 d"] == "-$100.00"
    assert caption["Leaderboard rank"].startswith("#")
    assert png_size(message) == (1200, 675)
    assert message.image is not None and message.image.filename == f"profit-{me.id}-30d.png"


async def test_days_limit_the_window_and_another_trader_can_be_charted(charting: Relay, world: World, dm: Chat) -> None:
    trader = world.create_agent("gamma")
    walk(world, trader.id, [1000.0] * 20 + [50.0, 60.0])  # the 1000s are older than 3 days
    message = only(await dm.say("chart", what="profit", option=str(trader.id), days="3"))
    assert fields(message)["High / low"].startswith("+$60.00"), "only the last 3 days count"
    assert "Change over 3 d" in fields(message)


async def test_an_agent_not_on_the_leaderboard_gets_a_sentence_not_a_chart(
    charting: Relay, world: World, dm: Chat
) -> None:
    world.create_agent("someone")
    message = only(await dm.say("chart", what="profit", option="999999"))
    assert message.image is None and "No profit history for agent #999999" in message.plain_text()


async def test_positions_chart_totals_the_pnl_and_marks_copied_positions(
    charting: Relay, world: World, dm: Chat
) -> None:
    me, leader = world.create_agent("trader"), world.create_agent("leader")
    world.set_price("crypto", "BTC", 70000.0)
    world.set_price("us-stock", "NVDA", 100.0)
    world.open_position(me.id, "BTC", "crypto", 0.5, 60000.0)  # +5,000
    world.open_position(me.id, "NVDA", "us-stock", 10, 110.0, side="short")  # +100
    world.open_position(me.id, "BTC", "crypto", 0.1, 72000.0, leader_id=leader.id)  # -200
    await dm.text("link", token=me.token)
    message = only(await dm.say("chart", what="positions"))
    caption = fields(message)
    assert caption["Total PnL"] == "+$4,900.00 over 3 priced positions"
    assert caption["Best"] == "BTC long +$5,000.00"
    assert caption["Worst"] == f"BTC long copied #{leader.id} -$200.00"
    png_size(message)


async def test_no_positions_is_said_without_a_picture(charting: Relay, world: World, dm: Chat) -> None:
    me = world.create_agent("empty")
    await dm.text("link", token=me.token)
    message = only(await dm.say("chart", what="positions"))
    assert message.image is None and "No open positions." in message.plain_text()


async def test_price_chart_of_a_us_stock_from_market_intelligence_snapshots(
    charting: Relay, world: World, dm: Chat
) -> None:
    snapshots(world, "NVDA", [100.0, 104.0, 98.0, 110.0])
    message = only(await dm.say("chart", what="nvda"))
    caption = fields(message)
    assert message.title == "NVDA price (us-stock)"
    assert caption["Last"].startswith("$110.00") and caption["High / low"] == "$110.00 / $98.00"
    assert caption["Change over 4 snapshots"] == "+10.00%"
    png_size(message)


async def test_crypto_has_no_price_history_upstream_and_says_so(charting: Relay, dm: Chat) -> None:
    message = only(await dm.say("chart", what="BTC", option="crypto"))
    assert message.image is None and "only for the US stocks" in message.plain_text()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"what": "profit", "days": "0"}, "days must be a number from 1 to 365"),
        ({"what": "profit", "days": "366"}, "days must be a number from 1 to 365"),
        ({"what": "profit", "option": "abc"}, "agent_id must be a number"),
        ({"what": "positions", "option": "7"}, "takes no arguments"),
        ({"what": "NVDA", "option": "forex"}, "market must be one of us-stock, crypto, polymarket"),
        ({"what": "NVDA", "days": "5"}, "days goes only with /chart profit"),
        ({"what": "../../x"}, "symbol is 1-10 letters"),
    ],
)
async def test_bad_input_gets_one_usage_line(charting: Relay, dm: Chat, args: dict[str, str], reason: str) -> None:
    answer = await dm.text("chart", **args)
    assert answer.startswith("Usage: /chart") and reason in answer and "\n" not in answer
    assert charting.renderer.rendered == 0


async def test_charts_of_your_agent_need_a_link(charting: Relay, adapter: RecordingAdapter) -> None:
    stranger = Chat(charting, adapter.chat("77"), UserRef("rec", "77", "nobody"))
    assert "link your agent first" in await stranger.text("chart", what="positions")


async def test_identical_requests_are_drawn_once(charting: Relay, world: World, dm: Chat) -> None:
    trader = world.create_agent("delta")
    walk(world, trader.id, [1.0, 2.0, 3.0])
    first = only(await dm.say("chart", what="profit", option=str(trader.id)))
    again = only(await dm.say("chart", what="profit", option=str(trader.id)))
    assert first.image == again.image and charting.renderer.rendered == 1
    only(await dm.say("chart", what="profit", option=str(trader.id), days="7"))
    assert charting.renderer.rendered == 2


async def test_an_upstream_outage_is_one_sentence(charting: Relay, world: World, dm: Chat) -> None:
    world.faults.outage = "503"
    answer = await dm.text("chart", what="profit", option="1")
    assert "AI-Trader" in answer and "\n" not in answer and charting.renderer.rendered == 0
