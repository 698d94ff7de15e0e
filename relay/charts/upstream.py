"""The AI-Trader reads behind /chart, parsed into plain values (every field is untrusted).

Shapes are the upstream server's (service/server/routes_trading.py, market_intel.py):
- profit history exists only inside the leaderboard, `GET /api/profit/history`, whose rows carry
  `history: [{profit, profit_percent, recorded_at}]` (the last point is the live value);
- price history exists only for the US stocks the market-intel worker analyses:
  `GET /api/market-intel/stocks/{symbol}/history` (at most 30 snapshots, newest first);
Open positions come from `AITraderClient.positions` (`GET /api/positions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from relay import parse
from relay.aitrader import AITraderClient, checked_id
from relay.errors import UnexpectedResponse

LEADERBOARD_PAGE = 50  # the server's maximum `limit`
LEADERBOARD_PAGES = 10  # how far down the leaderboard an agent is looked for (500 agents)
STOCK_HISTORY_MAX = 30  # the server clamps `limit` to 1..30
# The server's own pattern for a US stock symbol (market_intel.US_STOCK_SYMBOL_RE).
US_STOCK_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
MARKETS = ("us-stock", "crypto", "polymarket")


@dataclass(frozen=True, slots=True)
class ProfitCurve:
    agent_id: int
    name: str
    profit: float
    percent: float | None
    points: tuple[tuple[float, float], ...]  # (epoch seconds, profit), oldest first
    rank: int


@dataclass(frozen=True, slots=True)
class PriceHistory:
    symbol: str
    points: tuple[tuple[float, float], ...]  # (epoch seconds, price), oldest first
    signal: str = ""
    trend: str = ""
    ma20: float | None = None
    support: float | None = None
    resistance: float | None = None
    return_5d: float | None = None
    return_20d: float | None = None


async def profit_curve(client: AITraderClient, agent_id: int, days: int) -> ProfitCurve | None:
    """The agent's profit history over `days`, or None when it is not on the first
    `LEADERBOARD_PAGES` pages of the leaderboard (the only place upstream keeps it)."""
    checked_id(agent_id, "agent_id")
    for _attempt in range(2):
        rank = await _leaderboard_rank(client, agent_id, days)
        if rank is None:
            return None
        body = await client.read(
            "/api/profit/history", params={"limit": 1, "offset": rank, "days": days, "include_history": "true"}
        )
        rows = _rows(body, "top_agents")
        row = rows[0] if rows else None
        if isinstance(row, dict) and parse.integer(row.get("agent_id")) == agent_id:
            return _curve(agent_id, row, rank)
        # The ranking moved between the two reads: look again once.
    return None


async def _leaderboard_rank(client: AITraderClient, agent_id: int, days: int) -> int | None:
    for page in range(LEADERBOARD_PAGES):
        offset = page * LEADERBOARD_PAGE
        body = await client.read(
            "/api/profit/history",
            params={"limit": LEADERBOARD_PAGE, "offset": offset, "days": days, "include_history": "false"},
        )
        rows = _rows(body, "top_agents")
        for i, row in enumerate(rows):
            if isinstance(row, dict) and parse.integer(row.get("agent_id")) == agent_id:
                return offset + i
        if not rows or body.get("has_more") is False:
            return None
    return None


def _curve(agent_id: int, row: dict[str, Any], rank: int) -> ProfitCurve:
    points = []
    for point in row.get("history") or ():
        if not isinstance(point, dict):
            continue
        at = parse.timestamp(point.get("recorded_at"))
        value = parse.number(point.get("profit"))
        if at is not None and value is not None:
            points.append((at.timestamp(), value))
    points.sort()
    profit = parse.number(row.get("total_profit", row.get("current_profit")))
    percent = parse.number(row.get("total_profit_percent", row.get("current_profit_percent")))
    if profit is None:
        profit = points[-1][1] if points else 0.0
    return ProfitCurve(agent_id, parse.text(row.get("name"), 100), profit, percent, tuple(points), rank)


async def stock_history(client: AITraderClient, symbol: str) -> PriceHistory | None:
    """Snapshots of a US stock's analysis as a price series; None when upstream has none."""
    symbol = symbol.strip().upper()
    if not US_STOCK_SYMBOL.match(symbol):
        raise ValueError("symbol is 1-10 letters, digits, '.' or '-', starting with a letter")
    body = await client.read(
        f"/api/market-intel/stocks/{quote(symbol, safe='')}/history", params={"limit": STOCK_HISTORY_MAX}
    )
    if "history" not in body and "available" not in body:
        raise UnexpectedResponse("stock history answered without history")
    if not body.get("available"):
        return None
    latest: dict[str, Any] = {}
    points = []
    for snap in body.get("history") or ():
        if not isinstance(snap, dict):
            continue
        raw = snap.get("analysis")
        analysis: dict[str, Any] = raw if isinstance(raw, dict) else {}
        at = parse.timestamp(snap.get("created_at"))
        price = parse.number(analysis.get("current_price"))
        if at is None or price is None:
            continue
        points.append((at.timestamp(), price))
        if not latest or at.timestamp() >= latest["_at"]:
            latest = {
                **analysis,
                "_at": at.timestamp(),
                "_signal": snap.get("signal"),
                "_trend": snap.get("trend_status"),
            }
    if not points:
        return None
    points.sort()
    raw_averages = latest.get("moving_averages")
    averages: dict[str, Any] = raw_averages if isinstance(raw_averages, dict) else {}
    return PriceHistory(
        symbol=symbol,
        points=tuple(points),
        signal=parse.text(latest.get("_signal") or latest.get("signal"), 20),
        trend=parse.text(latest.get("_trend") or latest.get("trend_status"), 30),
        ma20=parse.number(averages.get("ma20")),
        support=_first(latest.get("support_levels")),
        resistance=_first(latest.get("resistance_levels")),
        return_5d=parse.number(latest.get("return_5d_pct")),
        return_20d=parse.number(latest.get("return_20d_pct")),
    )


def _rows(body: dict[str, Any], key: str) -> list[Any]:
    rows = body.get(key)
    if not isinstance(rows, list):
        raise UnexpectedResponse(f"answer without a `{key}` list")
    return rows


def _first(value: object) -> float | None:
    if isinstance(value, list) and value:
        return parse.number(value[0])
    return None
