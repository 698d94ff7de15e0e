"""/chart: gathers the numbers, writes the caption, has the picture drawn, caches the result.

The caption carries the key numbers, so a chart makes sense without the picture (console,
notifications read aloud, a picture that failed to load). Identical requests within the cache
time share one upstream read and one drawing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime

from relay.aitrader import AITraderClient
from relay.charts import upstream
from relay.charts.renderer import ChartRenderer, ShortCache
from relay.charts.specs import BarChart, ChartSpec, Level, LineChart
from relay.errors import UsageError
from relay.i18n import ENGLISH, N_, Translator
from relay.models import Image, Message, MessageField, Position

DEFAULT_DAYS = 30
# Charts gathered at once (upstream reads, parsing, captions). A burst of 50 /chart otherwise puts
# 100 requests into the HTTP pool's queue and 50 handlers into the loop's ready queue at once,
# and every poll due meanwhile waits behind them (bench/charts.py measured it); the rest wait here.
GATHER_CONCURRENCY = 4
MAX_BARS = 12  # more positions than this: the largest by |PnL|, the rest summed up in the caption


class ChartService:
    def __init__(
        self,
        client: AITraderClient,
        renderer: ChartRenderer,
        *,
        cache_seconds: float = 60.0,
        concurrency: int = GATHER_CONCURRENCY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.renderer = renderer
        self.cache: ShortCache[Message] = ShortCache(ttl=cache_seconds)
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)

    async def _cached(self, key: Hashable, build: Callable[[], Awaitable[Message]]) -> Message:
        async def bounded() -> Message:
            async with self._slots:
                return await build()

        return await self.cache.get(key, bounded)

    async def _picture(self, spec: ChartSpec, filename: str) -> Image:
        return Image(await self.renderer.render(spec), filename)

    # --- profit ----------------------------------------------------------------------------
    # The caption is in the asker's language, so it is part of the cache key; the picture's own
    # words stay English (the headless renderer's font has no CJK glyphs).
    async def profit(self, agent_id: int, days: int, t: Translator = ENGLISH) -> Message:
        return await self._cached(("profit", agent_id, days, t.language), lambda: self._profit(agent_id, days, t))

    async def _profit(self, agent_id: int, days: int, t: Translator) -> Message:
        curve = await upstream.profit_curve(self._client, agent_id, days)
        if curve is None:
            return Message(
                body=t.gettext(
                    "No profit history for agent #{agent_id}: AI-Trader keeps it only for the top {top} of its leaderboard.",
                    agent_id=agent_id,
                    top=upstream.LEADERBOARD_PAGE * upstream.LEADERBOARD_PAGES,
                )
            )
        name = curve.name or f"agent #{agent_id}"
        values = [v for _, v in curve.points]
        fields = [
            MessageField(
                t.gettext("Profit now"),
                _signed(curve.profit) + (f" ({curve.percent:+.2f}%)" if curve.percent is not None else ""),
            )
        ]
        if len(values) >= 2:
            fields += [
                MessageField(t.gettext("Change over {days} d", days=days), _signed(values[-1] - values[0])),
                MessageField(t.gettext("High / low"), f"{_signed(max(values))} / {_signed(min(values))}"),
                MessageField(t.gettext("Max drawdown"), _money(_drawdown(values))),
            ]
        fields.append(MessageField(t.gettext("Leaderboard rank"), f"#{curve.rank + 1}"))
        title = t.gettext("Profit: {name} (#{agent_id})", name=name, agent_id=agent_id)
        if len(curve.points) < 2:
            return Message(title=title, body=t.gettext("Not enough history to draw yet."), fields=tuple(fields))
        span = t.ngettext(
            "{first} to {last} UTC, {n} point",
            "{first} to {last} UTC, {n} points",
            len(values),
            first=_day(curve.points[0][0]),
            last=_day(curve.points[-1][0]),
        )
        spec = LineChart(
            title=_clip(f"Profit: {name}", 40),
            subtitle=f"last {days} days · now {_signed(curve.profit, compact=True)}"
            + (f" ({curve.percent:+.1f}%)" if curve.percent is not None else ""),
            times=tuple(t for t, _ in curve.points),
            values=tuple(values),
            fill_to=0.0,
        )
        image = await self._picture(spec, f"profit-{agent_id}-{days}d.png")
        return Message(title=title, fields=tuple(fields), footer=span, image=image)

    # --- price -----------------------------------------------------------------------------
    async def price(self, symbol: str, market: str, t: Translator = ENGLISH) -> Message:
        if market != "us-stock":
            return Message(
                body=t.gettext(
                    "AI-Trader keeps price history only for the US stocks its market-intelligence worker "
                    "analyses, not for {market}. /price {symbol} {market} shows the current price.",
                    market=market,
                    symbol=symbol,
                )
            )
        key_symbol = symbol.strip().upper()
        if not upstream.US_STOCK_SYMBOL.match(key_symbol):
            raise UsageError(N_("symbol is 1-10 letters, digits, '.' or '-', starting with a letter"))
        return await self._cached(("price", key_symbol, t.language), lambda: self._price(key_symbol, t))

    async def _price(self, symbol: str, t: Translator) -> Message:
        history = await upstream.stock_history(self._client, symbol)
        if history is None:
            return Message(
                body=t.gettext(
                    "AI-Trader has no price history for {symbol}: its market-intelligence worker does not follow it.",
                    symbol=symbol,
                )
            )
        prices = [p for _, p in history.points]
        first, last = prices[0], prices[-1]
        change = (last / first - 1) * 100 if first else 0.0
        fields = [
            MessageField(t.gettext("Last"), f"${last:,.2f} ({_day(history.points[-1][0])})"),
            MessageField(
                t.ngettext("Change over {n} snapshot", "Change over {n} snapshots", len(prices)), f"{change:+.2f}%"
            ),
            MessageField(t.gettext("High / low"), f"${max(prices):,.2f} / ${min(prices):,.2f}"),
        ]
        if history.return_5d is not None and history.return_20d is not None:
            fields.append(
                MessageField(t.gettext("5 d / 20 d"), f"{history.return_5d:+.2f}% / {history.return_20d:+.2f}%")
            )
        if history.signal:
            fields.append(
                MessageField(
                    t.gettext("Signal"), f"{history.signal} ({history.trend})" if history.trend else history.signal
                )
            )
        levels = tuple(
            Level(label, value)
            for label, value in (
                ("MA20", history.ma20),
                ("support", history.support),
                ("resistance", history.resistance),
            )
            if value is not None
        )
        level_text = ", ".join(f"{lv.label} ${lv.value:,.2f}" for lv in levels)
        if level_text:
            fields.append(MessageField(t.gettext("Levels"), level_text))
        title = t.gettext("{symbol} price (us-stock)", symbol=symbol)
        if len(prices) < 2:
            return Message(
                title=title, body=t.gettext("Only one snapshot so far; nothing to draw."), fields=tuple(fields)
            )
        spec = LineChart(
            title=symbol,
            subtitle=f"us-stock · last ${last:,.2f} · {change:+.2f}% over {len(prices)} snapshots",
            times=tuple(t for t, _ in history.points),
            values=tuple(prices),
            levels=levels,
        )
        image = await self._picture(spec, f"price-{symbol}.png")
        return Message(
            title=title,
            fields=tuple(fields),
            footer=t.gettext("Snapshots of AI-Trader's market intelligence"),
            image=image,
        )

    # --- positions -------------------------------------------------------------------------
    async def positions(self, agent_id: int, agent_name: str, token: str, t: Translator = ENGLISH) -> Message:
        return await self._cached(
            ("positions", agent_id, t.language), lambda: self._positions(agent_id, agent_name, token, t)
        )

    async def _positions(self, agent_id: int, agent_name: str, token: str, t: Translator) -> Message:
        portfolio = await self._client.positions(token)
        rows, cash = portfolio.positions, portfolio.cash
        title = t.gettext(
            "Open positions: {name} (#{agent_id})", name=agent_name or t.gettext("your agent"), agent_id=agent_id
        )
        cash_field = [MessageField(t.gettext("Cash"), _money(cash))] if cash is not None else []
        if not rows:
            return Message(title=title, body=t.gettext("No open positions."), fields=tuple(cash_field))
        priced = [p for p in rows if p.pnl is not None]
        unpriced = len(rows) - len(priced)
        total = sum(p.pnl or 0.0 for p in priced)
        over = t.ngettext("over {n} priced position", "over {n} priced positions", len(priced))
        fields = [MessageField(t.gettext("Total PnL"), f"{_signed(total)} {over}"), *cash_field]
        if priced:
            best = max(priced, key=lambda p: p.pnl or 0.0)
            worst = min(priced, key=lambda p: p.pnl or 0.0)
            fields.append(MessageField(t.gettext("Best"), f"{_label(best, one_line=True)} {_signed(best.pnl or 0.0)}"))
            if worst is not best:
                fields.append(
                    MessageField(t.gettext("Worst"), f"{_label(worst, one_line=True)} {_signed(worst.pnl or 0.0)}")
                )
        if unpriced:
            fields.append(MessageField(t.gettext("Without a current price"), str(unpriced)))
        if not priced:
            return Message(title=title, body=t.gettext("No position has a current price yet."), fields=tuple(fields))
        largest = sorted(priced, key=lambda p: abs(p.pnl or 0.0), reverse=True)
        shown, rest = largest[:MAX_BARS], largest[MAX_BARS:]
        if rest:
            smaller = t.ngettext("{n} smaller position", "{n} smaller positions", len(rest))
            fields.append(
                MessageField(t.gettext("Not drawn"), f"{smaller}, {_signed(sum(p.pnl or 0.0 for p in rest))}")
            )
        spec = BarChart(
            title="Open positions",
            subtitle=_clip(f"{agent_name or 'agent'} · PnL per position · total {_signed(total, compact=True)}", 60),
            labels=tuple(_label(p) for p in shown),
            values=tuple(p.pnl or 0.0 for p in shown),
        )
        image = await self._picture(spec, f"positions-{agent_id}.png")
        return Message(title=title, fields=tuple(fields), image=image)


def parse_days(raw: str) -> int:
    if not raw:
        return DEFAULT_DAYS
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 365:
        raise UsageError(N_("days must be a number from 1 to 365"))
    return int(raw)


def _label(p: Position, *, one_line: bool = False) -> str:
    name = _clip(p.title or p.symbol, 14) + (f" {_clip(p.outcome, 10)}" if p.outcome else "")
    label = f"{name} {p.side}".strip()
    if p.leader_id is not None:
        label += (" " if one_line else "\n") + f"copied #{p.leader_id}"
    return label


def _drawdown(values: list[float]) -> float:
    peak, worst = values[0], 0.0
    for v in values:
        peak = max(peak, v)
        worst = max(worst, peak - v)
    return worst


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def _signed(value: float, *, compact: bool = False) -> str:
    sign = "+" if value >= 0 else "-"
    if compact and abs(value) >= 1000:
        return f"{sign}${abs(value) / 1000:,.1f}k"
    return f"{sign}${abs(value):,.2f}"


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
