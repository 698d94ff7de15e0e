"""A believable market for the demo and the tests: prices, positions, trades, profit history
and one snapshot of each market-intelligence read model, in the upstream shapes.

Deterministic for a given world clock: no randomness here, so tests can name exact numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aitrader_sim.records import Agent
from aitrader_sim.timefmt import iso_z
from aitrader_sim.world import World

PRICES: dict[tuple[str, str], float] = {
    ("us-stock", "AAPL"): 212.40,
    ("us-stock", "NVDA"): 131.25,
    ("us-stock", "TSLA"): 248.10,
    ("us-stock", "MSFT"): 441.80,
    ("us-stock", "SPY"): 560.15,
    ("crypto", "BTC"): 68250.0,
    ("crypto", "ETH"): 3480.5,
    ("crypto", "SOL"): 152.3,
}
POLYMARKET_SLUG = "will-btc-be-above-120k-on-june-30"
POLYMARKET_OUTCOMES = {"Yes": ("71234567890123456789", 0.34), "No": ("71234567890123456790", 0.66)}


def seed_market(world: World, you: Agent, traders: Mapping[str, Agent]) -> None:
    """Prices, positions (own and copied), operation signals, 30 days of profit, intelligence."""
    for (market, symbol), price in PRICES.items():
        world.set_price(market, symbol, price)
    for outcome, (token, price) in POLYMARKET_OUTCOMES.items():
        world.add_polymarket_outcome(POLYMARKET_SLUG, outcome, token, price)

    names = list(traders)
    alice = traders[names[0]]
    bob = traders[names[1]] if len(names) > 1 else alice
    # A few trades on record, with the fields a card shows.
    for agent, market, side, symbol, price, qty in (
        (alice, "crypto", "buy", "BTC", 64100.0, 0.5),
        (alice, "us-stock", "buy", "NVDA", 118.5, 40),
        (bob, "us-stock", "short", "TSLA", 262.0, 15),
        (you, "us-stock", "buy", "AAPL", 198.2, 25),
    ):
        world.create_signal(
            agent.id, "operation", market, None, f"{side} {symbol}", symbol, side=side, price=price, quantity=qty
        )
        world.open_position(agent.id, symbol, market, qty, price, side="long" if side == "buy" else "short")
        agent.cash -= price * qty
    # What following alice copied into your book, and a Polymarket outcome of your own.
    world.open_position(you.id, "BTC", "crypto", 0.1, 64100.0, leader_id=alice.id)
    you.cash -= 6410.0
    token, _ = POLYMARKET_OUTCOMES["Yes"]
    world.open_position(you.id, POLYMARKET_SLUG, "polymarket", 200, 0.41, token_id=token, outcome="Yes")
    you.cash -= 82.0
    world.open_position(you.id, "SOL", "crypto", 30, 161.0)
    you.cash -= 4830.0

    now = world.clock()
    for agent in (you, *traders.values()):
        final = world.profit_of(agent.id)
        for day in range(30, 0, -1):
            # A smooth walk that ends near today's live profit, different per agent.
            wobble = ((day * 37 + agent.id * 11) % 19 - 9) * 55.0
            world.record_profit(agent.id, final * (30 - day) / 30 + wobble, now - day * 86400)
    seed_intel(world)


def seed_intel(world: World) -> None:
    """One snapshot of each read model, as the upstream worker would have stored it."""
    at = iso_z(world.clock() - 600)
    world.intel["macro"] = {
        "available": True,
        "verdict": "bullish",
        "bullish_count": 3,
        "total_count": 5,
        "signals": [
            _signal(
                "btc_trend", "BTC trend", "bullish", 6.4, "%", 7, "BTC momentum remains positive over the last week."
            ),
            _signal("qqq_trend", "QQQ trend", "bullish", 4.1, "%", 20, "Growth equities are trending higher."),
            _signal(
                "qqq_vs_xlp",
                "QQQ vs XLP",
                "bullish",
                2.7,
                "spread_pct",
                20,
                "Growth is outperforming defensive staples.",
            ),
            _signal(
                "safe_haven_pressure",
                "Safe-haven pressure",
                "neutral",
                1.2,
                "%",
                20,
                "Safe-haven demand is present but not dominant.",
            ),
            _signal("macro_news_tone", "Macro news tone", "neutral", 1, None, None, "Macro news flow is mixed."),
        ],
        "meta": {
            "summary": "Risk appetite is leading across the current macro snapshot.",
            "summary_zh": "当前宏观快照整体偏向风险偏好。",
            "defensive_count": 0,
            "latest_prices": {"BTC": 68250.0, "QQQ": 486.2, "XLP": 78.4, "GLD": 214.9, "UUP": 28.7},
        },
        "source": {"alpha_vantage_functions": ["TIME_SERIES_DAILY_ADJUSTED", "DIGITAL_CURRENCY_DAILY"]},
        "created_at": at,
    }
    etfs = [
        ("IBIT", 3.1, 1.6, "inflow"),
        ("FBTC", 2.8, 1.3, "inflow"),
        ("ARKB", 2.2, 1.2, "inflow"),
        ("BITB", -0.4, 0.9, "mixed"),
        ("HODL", 0.6, 1.0, "mixed"),
    ]
    world.intel["etf"] = {
        "available": True,
        "summary": {
            "direction": "inflow",
            "summary": "Estimated BTC ETF flow leans positive.",
            "summary_zh": "估算的 BTC ETF 资金方向整体偏流入。",
            "inflow_count": 3,
            "outflow_count": 0,
            "tracked_count": len(etfs),
            "net_score": 15.82,
            "is_estimated": True,
        },
        "etfs": [
            {
                "symbol": sym,
                "price_change_pct": change,
                "latest_volume": 41_000_000,
                "avg_volume": int(41_000_000 / ratio),
                "volume_ratio": ratio,
                "estimated_flow_score": round(change * ratio, 2),
                "direction": direction,
                "as_of": at[:10],
            }
            for sym, change, ratio, direction in etfs
        ],
        "created_at": at,
        "is_estimated": True,
    }
    headlines = {
        "equities": [
            ("NVDA extends rally as data-centre orders climb", "Reuters", "Bullish"),
            ("Apple guides services revenue higher", "Bloomberg", "Somewhat-Bullish"),
        ],
        "macro": [
            ("Fed holds rates, signals patience on cuts", "Reuters", "Neutral"),
            ("US jobless claims edge lower", "MarketWatch", "Somewhat-Bullish"),
        ],
        "crypto": [
            ("Bitcoin ETFs log third day of inflows", "CoinDesk", "Bullish"),
            ("Ether staking yields slip as demand cools", "The Block", "Neutral"),
        ],
        "commodities": [("Oil steadies after OPEC+ keeps output unchanged", "Reuters", "Neutral")],
    }
    news: dict[str, Any] = {}
    for minutes, (category, rows) in enumerate(headlines.items()):
        items: list[dict[str, Any]] = [
            {
                "title": title,
                "url": f"https://news.example/{category}/{i}",
                "source": source,
                "summary": f"{title}.",
                "banner_image": None,
                "time_published": iso_z(world.clock() - 900 - 60 * (minutes * 3 + i)),
                "overall_sentiment_score": 0.2,
                "overall_sentiment_label": label,
                "ticker_sentiment": [],
                "topics": [],
            }
            for i, (title, source, label) in enumerate(rows)
        ]
        news[category] = {
            "items": items,
            "summary": {
                "category": category,
                "item_count": len(items),
                "activity_level": "calm",
                "top_headline": items[0]["title"],
                "top_source": items[0]["source"],
                "highlight_symbols": [],
                "sentiment_breakdown": {},
                "latest_item_time": items[0]["time_published"],
            },
            "created_at": at,
        }
    world.intel["news"] = news
    world.intel["stocks"] = {
        "NVDA": _stock("NVDA", 131.25, 5.8, 12.4, "buy", 4.5, "bullish", 118.2, 134.0, at),
        "AAPL": _stock("AAPL", 212.40, 1.1, 3.2, "hold", 1.5, "constructive", 201.5, 216.3, at),
    }
    # The worker stores one snapshot per run: 30 daily ones, newest first, ending at the latest.
    history: dict[str, list[dict[str, Any]]] = {}
    for symbol, latest in world.intel["stocks"].items():
        snapshots: list[dict[str, Any]] = [latest]
        for day in range(1, 30):
            price = round(latest["current_price"] * (1 - 0.004 * day + 0.012 * ((day * 7) % 5 - 2) / 2), 2)
            when = iso_z(world.clock() - 600 - day * 86400)
            snapshots.append(_stock(symbol, price, 0.0, 0.0, latest["signal"], 1.0, latest["trend_status"], 0, 0, when))
        history[symbol] = snapshots
    world.intel["stock_history"] = history


def _signal(
    sid: str, label: str, status: str, value: float, unit: str | None, days: int | None, explanation: str
) -> dict[str, Any]:
    row: dict[str, Any] = {"id": sid, "label": label, "label_zh": label, "status": status, "value": value}
    if unit is not None:
        row["unit"] = unit
    if days is not None:
        row["lookback_days"] = days
    row.update({"explanation": explanation, "explanation_zh": explanation, "source": "TIME_SERIES_DAILY_ADJUSTED"})
    return row


def _stock(
    symbol: str,
    price: float,
    r5: float,
    r20: float,
    signal: str,
    score: float,
    trend: str,
    support: float,
    resistance: float,
    at: str,
) -> dict[str, Any]:
    analysis = {
        "symbol": symbol,
        "market": "us-stock",
        "current_price": price,
        "return_5d_pct": r5,
        "return_20d_pct": r20,
        "moving_averages": {"ma5": price * 0.99, "ma10": price * 0.97, "ma20": price * 0.95, "ma60": price * 0.9},
        "support_levels": [support],
        "resistance_levels": [resistance],
        "signal": signal,
        "signal_score": score,
        "trend_status": trend,
        "bullish_factors": ["Price is above the 20-day moving average.", "Short-term momentum is positive."],
        "risk_factors": ["Price is approaching the recent resistance zone."],
        "as_of": at[:10],
    }
    return {
        "symbol": symbol,
        "market": "us-stock",
        "analysis_id": f"{symbol}:{at}",
        "current_price": price,
        "currency": "USD",
        "signal": signal,
        "signal_score": score,
        "trend_status": trend,
        "support_levels": [support],
        "resistance_levels": [resistance],
        "bullish_factors": analysis["bullish_factors"],
        "risk_factors": analysis["risk_factors"],
        "summary": f"{symbol} keeps a constructive setup with trend support.",
        "analysis": analysis,
        "created_at": at,
    }
