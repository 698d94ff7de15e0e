"""Positions, prices, trades, leaderboards and market intelligence, as upstream serves them.

Shapes and refusals follow `service/server/routes_trading.py` (positions, price, summary,
profit history, trending), `routes_signals.py` (`POST /api/signals/realtime`) and
`market_intel.py` (the read models). Prices are what the upstream worker would have cached:
the simulator never fetches anything; a price the world does not know is "not available".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aitrader_sim.records import ApiError
from aitrader_sim.timefmt import iso_z

if TYPE_CHECKING:
    from aitrader_sim.records import Agent, Signal

INITIAL_CAPITAL = 100000.0
TRADE_FEE_RATE = 0.001  # fees.py upstream
PRICE_API_INTERVAL = 1.0  # seconds between /api/price calls per agent
MARKETS = ("us-stock", "crypto", "polymarket")
NEWS_CATEGORIES = {
    "equities": ("Equities", "Stocks, ETFs, and company market developments."),
    "macro": ("Macro", "Macro regime, policy, and broad economic context."),
    "crypto": ("Crypto", "Crypto market headlines anchored on BTC and ETH."),
    "commodities": ("Commodities", "Energy, transport, and commodity-linked events."),
}
_ET = ZoneInfo("America/New_York")


@dataclass
class Position:
    id: int
    agent_id: int
    symbol: str
    market: str
    side: str  # "long" or "short"; a short's quantity is stored negative, as upstream
    quantity: float
    entry_price: float
    opened_at: str
    token_id: str | None = None
    outcome: str | None = None
    leader_id: int | None = None


def price_key(market: str, symbol: str, token_id: str | None = None) -> tuple[str, str, str]:
    return (market, symbol.upper() if market == "us-stock" else symbol, token_id or "")


class MarketMixin:
    # State and helpers that World provides.
    agents: dict[int, Agent]
    signals: dict[int, Signal]
    clock: Callable[[], float]

    if TYPE_CHECKING:

        def agent(self, agent_id: int) -> Agent: ...
        def create_signal(
            self,
            agent_id: int,
            message_type: str,
            market: str,
            title: str | None,
            content: str | None,
            symbol: str | None = None,
            *,
            symbols: str | None = None,
            tags: str | None = None,
            side: str | None = None,
            price: float | None = None,
            quantity: float | None = None,
        ) -> int: ...
        def followers_of(self, leader_id: int) -> list[int]: ...

    def init_market(self) -> None:
        self.positions: dict[int, Position] = {}
        # What the upstream price worker cached into positions.current_price, by (market, symbol, token).
        self.prices: dict[tuple[str, str, str], float] = {}
        # Polymarket outcome tokens: (slug, outcome) -> token_id, as `_polymarket_resolve_reference` finds them.
        self.polymarket_tokens: dict[tuple[str, str], str] = {}
        self.profit_history: dict[int, list[tuple[str, float]]] = {}
        self.deposited: dict[int, float] = {}
        self.intel: dict[str, Any] = {}
        self.us_market_open: bool | None = None  # None: the real clock decides (Mon-Fri 9:30-16:00 ET)
        self._price_last: dict[int, float] = {}
        self._next_position_id = 1

    # ---- prices and positions -------------------------------------------------------------

    def set_price(self, market: str, symbol: str, price: float | None, token_id: str | None = None) -> None:
        key = price_key(market, symbol, token_id)
        if price is None:
            self.prices.pop(key, None)
        else:
            self.prices[key] = price

    def add_polymarket_outcome(self, slug: str, outcome: str, token_id: str, price: float) -> None:
        self.polymarket_tokens[(slug, outcome.lower())] = token_id
        self.set_price("polymarket", slug, price, token_id)

    def open_position(
        self,
        agent_id: int,
        symbol: str,
        market: str,
        quantity: float,
        entry_price: float,
        *,
        side: str = "long",
        token_id: str | None = None,
        outcome: str | None = None,
        leader_id: int | None = None,
    ) -> int:
        """Seed a position directly (what selfRegister's `positions` or a copied trade leaves)."""
        pos = Position(
            self._next_position_id,
            agent_id,
            symbol,
            market,
            side,
            -abs(quantity) if side == "short" else abs(quantity),
            entry_price,
            iso_z(self.clock()),
            token_id,
            outcome,
            leader_id,
        )
        self._next_position_id += 1
        self.positions[pos.id] = pos
        return pos.id

    def current_price(self, pos: Position) -> float | None:
        return self.prices.get(price_key(pos.market, pos.symbol, pos.token_id))

    def _position_rows(self, agent_id: int) -> list[Position]:
        rows = [p for p in self.positions.values() if p.agent_id == agent_id]
        rows.sort(key=lambda p: (p.opened_at, p.id), reverse=True)  # ORDER BY opened_at DESC
        return rows

    @staticmethod
    def _pnl(pos: Position, current: float | None) -> float | None:
        if current is None:
            return None
        if pos.side == "long":
            return (current - pos.entry_price) * abs(pos.quantity)
        return (pos.entry_price - current) * abs(pos.quantity)

    @staticmethod
    def _decorate(item: dict[str, Any]) -> dict[str, Any]:
        """`decorate_polymarket_item(fetch_remote=False)`: a display title from the slug."""
        if item.get("market") == "polymarket":
            ref = str(item.get("symbol") or "")
            fallback = ref if ref.startswith("0x") or ref.isdigit() else ref.replace("-", " ")
            outcome = item.get("outcome")
            item["display_title"] = f"{fallback} [{outcome}]" if fallback and outcome else fallback
            item["market_title"] = fallback or ref
        return item

    def my_positions(self, agent: Agent) -> dict[str, Any]:
        """GET /api/positions."""
        positions = []
        for pos in self._position_rows(agent.id):
            current = self.current_price(pos)
            positions.append(
                self._decorate(
                    {
                        "id": pos.id,
                        "symbol": pos.symbol,
                        "market": pos.market,
                        "token_id": pos.token_id,
                        "outcome": pos.outcome,
                        "side": pos.side,
                        "quantity": pos.quantity,
                        "entry_price": pos.entry_price,
                        "current_price": current,
                        "pnl": self._pnl(pos, current),
                        "source": "self" if pos.leader_id is None else f"copied:{pos.leader_id}",
                        "opened_at": pos.opened_at,
                    }
                )
            )
        return {"positions": positions, "cash": agent.cash}

    def agent_positions(self, agent_id: int) -> dict[str, Any]:
        """GET /api/agents/{id}/positions: no 404 upstream; an unknown agent is "Unknown" with 0 cash."""
        agent = self.agents.get(agent_id)
        positions = []
        total = 0.0
        for pos in self._position_rows(agent_id):
            current = self.current_price(pos)
            pnl = self._pnl(pos, current)
            total += pnl or 0.0
            positions.append(
                self._decorate(
                    {
                        "symbol": pos.symbol,
                        "market": pos.market,
                        "token_id": pos.token_id,
                        "outcome": pos.outcome,
                        "side": pos.side,
                        "quantity": pos.quantity,
                        "entry_price": pos.entry_price,
                        "current_price": current,
                        "pnl": pnl,
                    }
                )
            )
        return {
            "positions": positions,
            "total_pnl": total,
            "position_count": len(positions),
            "agent_name": agent.name if agent else "Unknown",
            "cash": agent.cash if agent else 0,
        }

    def agent_summary(self, agent_id: int) -> dict[str, Any]:
        """GET /api/agents/{id}/summary: the one agent lookup that answers 404."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, "Agent not found")
        mine = [s.created_at for s in self.signals.values() if s.agent_id == agent_id]
        return {
            "agent_id": agent.id,
            "agent_name": agent.name,
            "cash": agent.cash,
            "position_count": sum(1 for p in self.positions.values() if p.agent_id == agent_id),
            "recent_activity_at": max(mine, default=None),
        }

    def quote(
        self, agent: Agent, symbol: str, market: str, token_id: str | None, outcome: str | None
    ) -> dict[str, Any]:
        """GET /api/price: 1 request per second per agent, then only cached prices."""
        now = self.clock()
        if now - self._price_last.get(agent.id, 0.0) < PRICE_API_INTERVAL:
            raise ApiError(429, "Rate limit exceeded. Please wait 1 second between requests.")
        self._price_last[agent.id] = now
        normalized = symbol.upper() if market == "us-stock" else symbol
        token = token_id
        if market == "polymarket" and not token and outcome:
            token = self.polymarket_tokens.get((symbol, outcome.strip().lower()))
        price = self.prices.get(price_key(market, normalized, token))
        if price is None and market == "polymarket" and token:
            # An outcome token names one contract whatever slug came with it (price_fetcher resolves it).
            price = next((p for (m, _, t), p in self.prices.items() if m == market and t == token), None)
        if price is None:
            raise ApiError(404, "Price not available")
        return self._decorate(
            {"symbol": normalized, "market": market, "token_id": token_id, "outcome": outcome, "price": price}
        )

    def trending(self, limit: int = 10) -> dict[str, Any]:
        """GET /api/trending: symbols held by the most agents."""
        holders: dict[tuple[str, str, str | None, str | None], set[int]] = {}
        for pos in self.positions.values():
            holders.setdefault((pos.symbol, pos.market, pos.token_id, pos.outcome), set()).add(pos.agent_id)
        ranked = sorted(holders.items(), key=lambda kv: len(kv[1]), reverse=True)[: max(1, limit)]
        return {
            "trending": [
                {
                    "symbol": symbol,
                    "market": market,
                    "token_id": token_id,
                    "outcome": outcome,
                    "holder_count": len(agents),
                    "current_price": self.prices.get(price_key(market, symbol, token_id)),
                }
                for (symbol, market, token_id, outcome), agents in ranked
            ]
        }

    # ---- profit ---------------------------------------------------------------------------

    def profit_of(self, agent_id: int) -> float:
        """Cash plus position value minus (100000 + deposited), as the leaderboard SQL computes it."""
        agent = self.agent(agent_id)
        value = 0.0
        for pos in self.positions.values():
            if pos.agent_id != agent_id:
                continue
            current = self.current_price(pos)
            if current is None:
                value += pos.entry_price * abs(pos.quantity)
            elif pos.side == "long":
                value += current * abs(pos.quantity)
            else:
                value += (2 * pos.entry_price - current) * abs(pos.quantity)
        return agent.cash + value - (INITIAL_CAPITAL + self.deposited.get(agent_id, 0.0))

    def record_profit(self, agent_id: int, profit: float, at: float) -> None:
        self.profit_history.setdefault(agent_id, []).append((iso_z(at), profit))

    def leaderboard(
        self, limit: int = 10, days: int = 30, offset: int = 0, include_history: bool = True
    ) -> dict[str, Any]:
        """GET /api/profit/history: agents by profit percent, each with its history in the window."""
        days = max(1, min(days, 365))
        limit = max(1, min(limit, 50))
        offset = max(0, offset)
        cutoff = iso_z(self.clock() - days * 86400)
        live_at = iso_z(self.clock())
        rows = []
        for agent in self.agents.values():
            profit = self.profit_of(agent.id)
            base = INITIAL_CAPITAL + self.deposited.get(agent.id, 0.0)
            rows.append((agent, profit, profit / base * 100 if base else 0.0, base))
        rows.sort(key=lambda r: (-r[2], r[0].id))
        page = rows[offset : offset + limit]
        out = []
        for agent, profit, percent, base in page:
            history: list[dict[str, Any]] = []
            if include_history:
                history = [
                    {"profit": p, "profit_percent": p / base * 100, "recorded_at": at}
                    for at, p in self.profit_history.get(agent.id, [])
                    if at >= cutoff
                ]
                history.append({"profit": profit, "profit_percent": percent, "recorded_at": live_at})
            out.append(
                {
                    "agent_id": agent.id,
                    "name": agent.name,
                    "deposited": self.deposited.get(agent.id, 0.0),
                    "total_profit": profit,
                    "current_profit": profit,
                    "total_profit_percent": percent,
                    "current_profit_percent": percent,
                    "trade_count": sum(
                        1 for s in self.signals.values() if s.agent_id == agent.id and s.message_type == "operation"
                    ),
                    "recent_strategy_count_7d": 0,
                    "recent_discussion_count_7d": 0,
                    "recent_activity_at": live_at,
                    "history": history,
                }
            )
        return {
            "top_agents": out,
            "total": len(rows),
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(out) < len(rows),
        }

    # ---- trading --------------------------------------------------------------------------

    def market_open(self, market: str) -> bool:
        if market != "us-stock":
            return True  # crypto and polymarket never close; unknown markets are not checked upstream
        if self.us_market_open is not None:
            return self.us_market_open
        now_et = datetime.fromtimestamp(self.clock(), UTC).astimezone(_ET)
        minutes = now_et.hour * 60 + now_et.minute
        return now_et.weekday() < 5 and 570 <= minutes < 960

    def trade(
        self,
        agent: Agent,
        market: str,
        action: str,
        symbol: str,
        price: float,
        quantity: float,
        executed_at: str,
        content: str | None = None,
        token_id: str | None = None,
        outcome: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/signals/realtime, with its refusals in upstream order (all 400s)."""
        act = action.lower()
        if market == "polymarket" and act in ("short", "cover"):
            raise ApiError(
                400, "Polymarket paper trading does not support short/cover. Use buy/sell of outcome tokens instead."
            )
        qty = float(quantity)
        if not math.isfinite(qty) or qty <= 0:
            raise ApiError(400, "Invalid quantity")
        if qty > 1_000_000:
            raise ApiError(400, "Quantity too large")
        if market == "polymarket":
            if executed_at.lower() != "now":
                raise ApiError(400, "Polymarket historical pricing is not supported. Use executed_at='now'.")
            token_id = token_id or (self.polymarket_tokens.get((symbol, outcome.lower())) if outcome else None)
            if not token_id:
                raise ApiError(
                    400,
                    "Polymarket trades require an explicit token_id or outcome that resolves to a single outcome token.",
                )
        if executed_at.lower() != "now":
            raise ApiError(400, "The simulator only takes executed_at='now'.")
        if not self.market_open(market):
            if market == "us-stock":
                now_et = datetime.fromtimestamp(self.clock(), UTC).astimezone(_ET)
                raise ApiError(
                    400,
                    "US market is closed. "
                    f"Current time (ET): {now_et.strftime('%Y-%m-%d %H:%M:%S')}. Trading hours: Mon-Fri 9:30-16:00 ET",
                )
            raise ApiError(400, f"{market} is currently closed")
        if market in ("crypto", "polymarket"):
            # The server prices these itself and ignores the price sent.
            fetched = self.prices.get(price_key(market, symbol, token_id))
            if not fetched:
                raise ApiError(400, f"Unable to fetch current price for {symbol}")
            price = fetched
        if not math.isfinite(price) or price <= 0:
            raise ApiError(400, "Invalid price")
        if price > 10_000_000:
            raise ApiError(400, "Price too large")
        value = price * qty
        if value > 1_000_000_000:
            raise ApiError(400, "Trade value too large")
        fee = value * TRADE_FEE_RATE
        held = self._holding(agent.id, market, symbol, token_id)
        if act == "sell":
            if held is None or held.quantity <= 0:
                raise ApiError(400, "No long position to sell")
            if qty > held.quantity + 1e-12:
                raise ApiError(400, "Insufficient long position quantity")
        elif act == "cover":
            if held is None or held.quantity >= 0:
                raise ApiError(400, "No short position to cover")
            if qty > abs(held.quantity) + 1e-12:
                raise ApiError(400, "Insufficient short position quantity")
        elif act in ("buy", "short"):
            if agent.cash < value + fee:
                raise ApiError(
                    400,
                    f"Insufficient cash. Required: ${value + fee:.2f} (trade: ${value:.2f} + fee: ${fee:.2f}), "
                    f"Available: ${agent.cash:.2f}",
                )
        else:
            raise ApiError(400, f"Invalid action: {action}")

        signal_id = self._book(agent, market, act, symbol, price, qty, content, token_id, outcome, leader=None)
        follower_count = 0
        for follower_id in self.followers_of(agent.id):
            follower = self.agents.get(follower_id)
            if follower is None or follower_id == agent.id:
                continue
            theirs = self._holding(follower_id, market, symbol, token_id)
            if act in ("buy", "short") and follower.cash < value * (1 + TRADE_FEE_RATE):
                continue
            if act == "cover" and theirs is None:
                continue
            if act == "sell" and (theirs is None or theirs.quantity < qty):
                continue
            copy_content = f"[Copied from {agent.name}] {content or ''}"
            self._book(follower, market, act, symbol, price, qty, copy_content, token_id, outcome, leader=agent.id)
            follower_count += 1
        payload: dict[str, Any] = {
            "success": True,
            "signal_id": signal_id,
            "message_type": "operation",
            "market": market,
            "symbol": symbol,
            "price": price,
            "follower_count": follower_count,
            "points_earned": 10,
            "token_id": token_id,
            "outcome": outcome,
        }
        return self._decorate(payload)

    def _holding(self, agent_id: int, market: str, symbol: str, token_id: str | None) -> Position | None:
        for pos in self.positions.values():
            if pos.agent_id != agent_id or pos.market != market:
                continue
            if (market == "polymarket" and pos.token_id == token_id) or (
                market != "polymarket" and pos.symbol == symbol
            ):
                return pos
        return None

    def _book(
        self,
        agent: Agent,
        market: str,
        act: str,
        symbol: str,
        price: float,
        qty: float,
        content: str | None,
        token_id: str | None,
        outcome: str | None,
        *,
        leader: int | None,
    ) -> int:
        """One operation signal, the position change and the cash change (fee included)."""
        signal_id = self.create_signal(
            agent.id, "operation", market, None, content, symbol, side=act, price=price, quantity=qty
        )
        sig = self.signals[signal_id]
        sig.token_id, sig.outcome = token_id, outcome
        value, fee = price * qty, price * qty * TRADE_FEE_RATE
        held = self._holding(agent.id, market, symbol, token_id)
        if act in ("buy", "short"):
            signed = qty if act == "buy" else -qty
            if held is None:
                pid = self.open_position(
                    agent.id,
                    symbol,
                    market,
                    qty,
                    price,
                    side="long" if act == "buy" else "short",
                    token_id=token_id,
                    outcome=outcome,
                    leader_id=leader,
                )
                held = self.positions[pid]
            else:
                total = abs(held.quantity) + qty
                held.entry_price = (held.entry_price * abs(held.quantity) + price * qty) / total
                held.quantity += signed
            agent.cash -= value + fee
        else:
            assert held is not None
            entry = held.entry_price
            held.quantity += -qty if act == "sell" else qty
            if abs(held.quantity) < 1e-12:
                del self.positions[held.id]
            agent.cash += value - fee if act == "sell" else (2 * entry - price) * qty - fee
        return signal_id

    # ---- market intelligence --------------------------------------------------------------

    def intel_macro(self) -> dict[str, Any]:
        return copy.deepcopy(self.intel.get("macro")) or {
            "available": False,
            "verdict": "unavailable",
            "bullish_count": 0,
            "total_count": 0,
            "signals": [],
            "meta": {},
            "source": {},
            "created_at": None,
        }

    def intel_etf(self) -> dict[str, Any]:
        return copy.deepcopy(self.intel.get("etf")) or {
            "available": False,
            "summary": {},
            "etfs": [],
            "created_at": None,
            "is_estimated": True,
        }

    def intel_news(self, category: str | None = None, limit: int = 5) -> dict[str, Any]:
        limit = max(1, min(limit, 12))
        wanted = [category] if category else list(NEWS_CATEGORIES)
        sections: list[dict[str, Any]] = []
        for key in wanted:
            if key not in NEWS_CATEGORIES:
                continue  # an unknown category is skipped, not refused
            label, description = NEWS_CATEGORIES[key]
            snapshot = (self.intel.get("news") or {}).get(key)
            base = {"category": key, "label": label, "label_zh": label, "description": description}
            base["description_zh"] = description
            if not snapshot:
                sections.append(
                    {
                        **base,
                        "items": [],
                        "summary": {"category": key, "item_count": 0, "activity_level": "unavailable"},
                        "created_at": None,
                        "available": False,
                    }
                )
                continue
            sections.append(
                {
                    **base,
                    "items": copy.deepcopy(snapshot["items"][:limit]),
                    "summary": copy.deepcopy(snapshot["summary"]),
                    "created_at": snapshot["created_at"],
                    "available": True,
                }
            )
        return {
            "categories": sections,
            "last_updated_at": max((s["created_at"] for s in sections if s["created_at"]), default=None),
            "total_items": sum(int(s["summary"].get("item_count") or 0) for s in sections),
            "available": any(s["available"] for s in sections),
        }

    def intel_stock(self, symbol: str) -> dict[str, Any]:
        symbol = symbol.strip().upper()
        snapshot = (self.intel.get("stocks") or {}).get(symbol)
        if not snapshot:
            return {"available": False, "symbol": symbol}
        return {"available": True, **copy.deepcopy(snapshot)}

    def intel_stock_history(self, symbol: str, limit: int = 10) -> dict[str, Any]:
        """Up to 30 snapshots, newest first: the seeded history (`intel["stock_history"]`), else the latest."""
        key = symbol.strip().upper()
        rows = copy.deepcopy((self.intel.get("stock_history") or {}).get(key) or [])
        if not rows:
            latest = self.intel_stock(symbol)
            rows = [latest] if latest["available"] else []
        history = [
            {k: row.get(k) for k in ("analysis_id", "signal", "signal_score", "trend_status", "summary", "analysis")}
            | {"created_at": row.get("created_at")}
            for row in rows[: max(1, min(limit, 30))]
        ]
        return {"available": bool(history), "symbol": symbol.strip().upper(), "history": history}

    def intel_featured(self, limit: int = 6) -> dict[str, Any]:
        symbols = list(self.intel.get("stocks") or {})[: max(1, min(limit, 12))]
        return {"available": True, "items": [self.intel_stock(s) for s in symbols]}

    def intel_overview(self) -> dict[str, Any]:
        """`get_market_intel_overview`: a digest of the other four read models."""
        macro, etf = self.intel_macro(), self.intel_etf()
        news = self.intel_news(limit=3)
        stocks = self.intel_featured(4)
        total = news["total_items"]
        status = "elevated" if total >= 20 else "active" if total >= 8 else "calm" if total > 0 else "quiet"
        sources: dict[str, int] = {}
        latest_headline, latest_time = None, None
        for section in news["categories"]:
            source = section["summary"].get("top_source")
            if source:
                sources[source] = sources.get(source, 0) + 1
            for item in section["items"]:
                if item.get("time_published") and (latest_time is None or item["time_published"] > latest_time):
                    latest_time, latest_headline = item["time_published"], item.get("title")
        summary = etf.get("summary") or {}
        meta = macro.get("meta") or {}
        available = [s for s in news["categories"] if s["available"]]
        return {
            "available": bool(available) or bool(macro.get("available")),
            "last_updated_at": max([t for t in (news["last_updated_at"], macro.get("created_at")) if t], default=None),
            "macro_verdict": macro.get("verdict"),
            "macro_bullish_count": macro.get("bullish_count", 0),
            "macro_total_count": macro.get("total_count", 0),
            "macro_summary": meta.get("summary"),
            "macro_summary_zh": meta.get("summary_zh"),
            "etf_direction": summary.get("direction"),
            "etf_summary": summary.get("summary"),
            "etf_summary_zh": summary.get("summary_zh"),
            "etf_tracked_count": summary.get("tracked_count", 0),
            "featured_stock_count": len([i for i in stocks["items"] if i.get("available")]),
            "news_status": status,
            "headline_count": total,
            "active_categories": len(available),
            "top_source": max(sources, key=lambda k: sources[k]) if sources else None,
            "latest_headline": latest_headline,
            "latest_item_time": latest_time,
            "categories": [
                {
                    "category": s["category"],
                    "label": s["label"],
                    "label_zh": s["label_zh"],
                    "activity_level": s["summary"].get("activity_level", "quiet"),
                    "item_count": s["summary"].get("item_count", 0),
                    "top_headline": s["summary"].get("top_headline"),
                    "top_source": s["summary"].get("top_source"),
                    "created_at": s["created_at"],
                }
                for s in news["categories"]
            ],
        }
