"""`/intel`: AI-Trader's market-intelligence read models as chat messages, numbers first.

Upstream (`market_intel.py`) only serves snapshots its worker stored; with no snapshot every
view answers `available: false`, which is said plainly instead of showing empty numbers. Every
value is untrusted text from upstream and goes through `parse` before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay import parse
from relay.aitrader import AITraderClient
from relay.cards import num, percent
from relay.errors import UsageError
from relay.models import Message, MessageField
from relay.render import clip

VIEWS: tuple[str, ...] = ("overview", "macro", "etf", "news", "stock")
NEWS_CATEGORIES: tuple[str, ...] = ("equities", "macro", "crypto", "commodities")
NEWS_LIMIT = 5
# market_intel.py's US_STOCK_SYMBOL_RE: anything else has no snapshot, and must not reach a URL path.
STOCK_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
_STATUS_MARK = {"bullish": "▲", "defensive": "▼", "neutral": "•", "inflow": "▲", "outflow": "▼", "mixed": "•"}


class Intel:
    def __init__(self, client: AITraderClient) -> None:
        self._client = client

    async def show(self, words: list[str]) -> Message:
        view = (words[0].lower() if words else "overview") or "overview"
        rest = words[1:]
        if view not in VIEWS:
            raise UsageError(f"view must be one of {', '.join(VIEWS)}")
        if view == "news":
            if len(rest) > 1:
                raise UsageError("news takes at most one category")
            category = rest[0].lower() if rest else ""
            if category and category not in NEWS_CATEGORIES:
                raise UsageError(f"category must be one of {', '.join(NEWS_CATEGORIES)}")
            params: dict[str, Any] = {"limit": NEWS_LIMIT}
            if category:
                params["category"] = category
            return news(await self._client.market_intel("news", params), category)
        if view == "stock":
            if len(rest) != 1:
                raise UsageError("stock needs one symbol, e.g. /intel stock NVDA")
            symbol = rest[0].upper()
            if not STOCK_SYMBOL.match(symbol):
                raise UsageError("symbol is a US stock ticker like NVDA or BRK.B")
            return stock(await self._client.market_intel(f"stocks/{symbol}/latest"), symbol)
        if rest:
            raise UsageError(f"{view} takes no more words")
        if view == "macro":
            return macro(await self._client.market_intel("macro-signals"))
        if view == "etf":
            return etf(await self._client.market_intel("etf-flows"))
        return overview(await self._client.market_intel("overview"))


def _t(value: object, limit: int = 200) -> str:
    return clip(" ".join(parse.text(value, 5000).split()), limit)


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mark(status: object) -> str:
    return _STATUS_MARK.get(_t(status, 20).lower(), "•")


def _unavailable(title: str) -> Message:
    return Message(title=title, body="AI-Trader has no snapshot for this yet (its market-data worker has not run).")


def _as_of(body: Mapping[str, Any], key: str = "created_at") -> str:
    at = parse.timestamp(body.get(key))
    return "as of " + at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


def overview(body: Mapping[str, Any]) -> Message:
    if not body.get("available"):
        return _unavailable("Market overview")
    fields = []
    verdict = _t(body.get("macro_verdict"), 30)
    bullish, total = parse.integer(body.get("macro_bullish_count")), parse.integer(body.get("macro_total_count"))
    if verdict:
        count = f" ({bullish}/{total} bullish)" if bullish is not None and total else ""
        fields.append(MessageField("Macro", f"{_mark(verdict)} {verdict}{count}"))
    direction = _t(body.get("etf_direction"), 30)
    if direction:
        tracked = parse.integer(body.get("etf_tracked_count"))
        fields.append(
            MessageField("BTC ETF flow", f"{_mark(direction)} {direction}" + (f" ({tracked} ETFs)" if tracked else ""))
        )
    status = _t(body.get("news_status"), 30)
    headlines = parse.integer(body.get("headline_count"))
    if status:
        fields.append(MessageField("News", status + (f", {headlines} headlines" if headlines is not None else "")))
    if body.get("latest_headline"):
        fields.append(MessageField("Latest headline", _t(body.get("latest_headline"), 200)))
    lines = [_t(body.get(k), 300) for k in ("macro_summary", "etf_summary") if body.get(k)]
    lines += [
        f"{_t(row.get('label') or row.get('category'), 30)}: {_t(row.get('top_headline'), 160)}"
        for row in body.get("categories") or []
        if isinstance(row, dict) and row.get("top_headline")
    ]
    return Message(
        title="Market overview",
        body="\n".join(lines),
        fields=tuple(fields),
        footer=_as_of(body, "last_updated_at") + " · /intel macro, etf, news, stock <symbol>",
    )


def macro(body: Mapping[str, Any]) -> Message:
    if not body.get("available"):
        return _unavailable("Macro signals")
    verdict = _t(body.get("verdict"), 30)
    bullish, total = parse.integer(body.get("bullish_count")), parse.integer(body.get("total_count"))
    fields = []
    for row in (body.get("signals") or [])[:10]:
        if not isinstance(row, dict):
            continue
        value = parse.number(row.get("value"))
        unit = _t(row.get("unit"), 12)
        shown = ""
        if value is not None:
            shown = percent(value) if unit in ("%", "spread_pct") else num(value)
        days = parse.integer(row.get("lookback_days"))
        label = _t(row.get("label") or row.get("id"), 60)
        fields.append(
            MessageField(
                label,
                " ".join(x for x in (_mark(row.get("status")), shown, f"({days}d)" if days else "") if x)
                + f" {_t(row.get('status'), 20)}",
            )
        )
    meta = _obj(body.get("meta"))
    prices = _obj(meta.get("latest_prices"))
    quoted = [f"{_t(k, 10)} {num(v)}" for k, v in list(prices.items())[:6] if parse.number(v) is not None]
    count = f" ({bullish}/{total} bullish)" if bullish is not None and total else ""
    return Message(
        title=f"Macro: {_mark(verdict)} {verdict}{count}",
        body="\n".join(x for x in (_t(meta.get("summary"), 300), " · ".join(quoted)) if x),
        fields=tuple(fields),
        footer=" · ".join(x for x in (_as_of(body), "rule-based classification, not advice") if x),
    )


def etf(body: Mapping[str, Any]) -> Message:
    if not body.get("available"):
        return _unavailable("BTC ETF flows")
    summary = _obj(body.get("summary"))
    direction = _t(summary.get("direction"), 30)
    net = parse.number(summary.get("net_score"))
    inflow, outflow = parse.integer(summary.get("inflow_count")), parse.integer(summary.get("outflow_count"))
    head = f"BTC ETF flows: {_mark(direction)} {direction}" + (f", net score {num(net)}" if net is not None else "")
    counts = []
    if inflow is not None:
        counts.append(f"{inflow} in")
    if outflow is not None:
        counts.append(f"{outflow} out")
    lines = []
    for row in (body.get("etfs") or [])[:10]:
        if not isinstance(row, dict):
            continue
        change = parse.number(row.get("price_change_pct"))
        ratio = parse.number(row.get("volume_ratio"))
        parts = [f"{_mark(row.get('direction'))} {_t(row.get('symbol'), 10)}"]
        if change is not None:
            parts.append(percent(change))
        if ratio is not None:
            parts.append(f"vol x{num(ratio)}")
        lines.append(" ".join(parts))
    estimated = "estimated from price and volume" if body.get("is_estimated", True) else ""
    return Message(
        title=head,
        body="\n".join(x for x in (_t(summary.get("summary"), 300), ", ".join(counts), "\n".join(lines)) if x),
        footer=" · ".join(x for x in (_as_of(body), estimated) if x),
    )


def news(body: Mapping[str, Any], category: str) -> Message:
    title = f"News: {category}" if category else "News"
    if not body.get("available"):
        return _unavailable(title)
    blocks = []
    for section in (body.get("categories") or [])[:4]:
        if not isinstance(section, dict) or not section.get("available"):
            continue
        summary = _obj(section.get("summary"))
        head = f"{_t(section.get('label') or section.get('category'), 30)} ({_t(summary.get('activity_level'), 20)})"
        lines = [head]
        for item in (section.get("items") or [])[:NEWS_LIMIT]:
            if not isinstance(item, dict):
                continue
            sentiment = _t(item.get("overall_sentiment_label"), 20)
            source = _t(item.get("source"), 40)
            tail = ", ".join(x for x in (source, sentiment) if x)
            lines.append(f"• {_t(item.get('title'), 160)}" + (f" ({tail})" if tail else ""))
        blocks.append("\n".join(lines))
    total = parse.integer(body.get("total_items"))
    return Message(
        title=title + (f": {total} headlines" if total is not None else ""),
        body="\n\n".join(blocks) or "No headlines.",
        footer=_as_of(body, "last_updated_at"),
    )


def stock(body: Mapping[str, Any], symbol: str) -> Message:
    if not body.get("available"):
        return Message(title=f"{symbol}: no analysis", body=f"AI-Trader has no analysis snapshot for {symbol}.")
    analysis = _obj(body.get("analysis"))
    price = parse.number(body.get("current_price"))
    signal = _t(body.get("signal"), 20)
    fields = []
    if price is not None:
        fields.append(MessageField("Price", num(price)))
    for label, key in (("5 days", "return_5d_pct"), ("20 days", "return_20d_pct")):
        value = parse.number(analysis.get(key))
        if value is not None:
            fields.append(MessageField(label, percent(value)))
    score = parse.number(body.get("signal_score"))
    if signal:
        fields.append(MessageField("Signal", signal + (f" ({num(score)})" if score is not None else "")))
    if body.get("trend_status"):
        fields.append(MessageField("Trend", _t(body.get("trend_status"), 30)))
    for label, key in (("Support", "support_levels"), ("Resistance", "resistance_levels")):
        levels = [num(v) for v in (body.get(key) or [])[:3] if parse.number(v) is not None]
        if levels:
            fields.append(MessageField(label, ", ".join(levels)))
    factors = [f"+ {_t(f, 120)}" for f in (body.get("bullish_factors") or [])[:3]]
    factors += [f"- {_t(f, 120)}" for f in (body.get("risk_factors") or [])[:3]]
    return Message(
        title=f"{_t(body.get('symbol'), 12) or symbol}: {signal or 'analysis'}"
        + (f" at {num(price)}" if price else ""),
        body="\n".join(x for x in (_t(body.get("summary"), 500), "\n".join(factors)) if x),
        fields=tuple(fields),
        footer=_as_of(body),
    )
