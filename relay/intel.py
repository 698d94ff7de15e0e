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
from relay.i18n import ENGLISH, N_, Translator
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

    async def show(self, words: list[str], t: Translator = ENGLISH) -> Message:
        view = (words[0].lower() if words else "overview") or "overview"
        rest = words[1:]
        if view not in VIEWS:
            raise UsageError(N_("{name} must be one of {choices}"), name="view", choices=", ".join(VIEWS))
        if view == "news":
            if len(rest) > 1:
                raise UsageError(N_("news takes at most one category"))
            category = rest[0].lower() if rest else ""
            if category and category not in NEWS_CATEGORIES:
                raise UsageError(
                    N_("{name} must be one of {choices}"), name="category", choices=", ".join(NEWS_CATEGORIES)
                )
            params: dict[str, Any] = {"limit": NEWS_LIMIT}
            if category:
                params["category"] = category
            return news(await self._client.market_intel("news", params), category, t)
        if view == "stock":
            if len(rest) != 1:
                raise UsageError(N_("stock needs one symbol, e.g. /intel stock NVDA"))
            symbol = rest[0].upper()
            if not STOCK_SYMBOL.match(symbol):
                raise UsageError(N_("symbol is a US stock ticker like NVDA or BRK.B"))
            return stock(await self._client.market_intel(f"stocks/{symbol}/latest"), symbol, t)
        if rest:
            raise UsageError(N_("{view} takes no more words"), view=view)
        if view == "macro":
            return macro(await self._client.market_intel("macro-signals"), t)
        if view == "etf":
            return etf(await self._client.market_intel("etf-flows"), t)
        return overview(await self._client.market_intel("overview"), t)


def _txt(value: object, limit: int = 200) -> str:
    return clip(" ".join(parse.text(value, 5000).split()), limit)


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mark(status: object) -> str:
    return _STATUS_MARK.get(_txt(status, 20).lower(), "•")


def _unavailable(title: str, t: Translator) -> Message:
    return Message(
        title=title, body=t.gettext("AI-Trader has no snapshot for this yet (its market-data worker has not run).")
    )


def _as_of(body: Mapping[str, Any], t: Translator, key: str = "created_at") -> str:
    at = parse.timestamp(body.get(key))
    return t.gettext("as of {time}", time=at.strftime("%Y-%m-%d %H:%M UTC")) if at else ""


def _bullish(bullish: int | None, total: int | None, t: Translator) -> str:
    return (
        " " + t.gettext("({bullish}/{total} bullish)", bullish=bullish, total=total)
        if bullish is not None and total
        else ""
    )


def overview(body: Mapping[str, Any], t: Translator = ENGLISH) -> Message:
    if not body.get("available"):
        return _unavailable(t.gettext("Market overview"), t)
    fields = []
    verdict = _txt(body.get("macro_verdict"), 30)
    bullish, total = parse.integer(body.get("macro_bullish_count")), parse.integer(body.get("macro_total_count"))
    if verdict:
        count = _bullish(bullish, total, t)
        fields.append(MessageField(t.gettext("Macro"), f"{_mark(verdict)} {verdict}{count}"))
    direction = _txt(body.get("etf_direction"), 30)
    if direction:
        tracked = parse.integer(body.get("etf_tracked_count"))
        etfs = " " + t.ngettext("({n} ETF)", "({n} ETFs)", tracked) if tracked else ""
        fields.append(MessageField(t.gettext("BTC ETF flow"), f"{_mark(direction)} {direction}{etfs}"))
    status = _txt(body.get("news_status"), 30)
    headlines = parse.integer(body.get("headline_count"))
    if status:
        many = ", " + t.ngettext("{n} headline", "{n} headlines", headlines) if headlines is not None else ""
        fields.append(MessageField(t.gettext("News"), status + many))
    if body.get("latest_headline"):
        fields.append(MessageField(t.gettext("Latest headline"), _txt(body.get("latest_headline"), 200)))
    lines = [_txt(body.get(k), 300) for k in ("macro_summary", "etf_summary") if body.get(k)]
    lines += [
        f"{_txt(row.get('label') or row.get('category'), 30)}: {_txt(row.get('top_headline'), 160)}"
        for row in body.get("categories") or []
        if isinstance(row, dict) and row.get("top_headline")
    ]
    return Message(
        title=t.gettext("Market overview"),
        body="\n".join(lines),
        fields=tuple(fields),
        footer=_as_of(body, t, "last_updated_at") + " · " + t.gettext("/intel macro, etf, news, stock <symbol>"),
    )


def macro(body: Mapping[str, Any], t: Translator = ENGLISH) -> Message:
    if not body.get("available"):
        return _unavailable(t.gettext("Macro signals"), t)
    verdict = _txt(body.get("verdict"), 30)
    bullish, total = parse.integer(body.get("bullish_count")), parse.integer(body.get("total_count"))
    fields = []
    for row in (body.get("signals") or [])[:10]:
        if not isinstance(row, dict):
            continue
        value = parse.number(row.get("value"))
        unit = _txt(row.get("unit"), 12)
        shown = ""
        if value is not None:
            shown = percent(value) if unit in ("%", "spread_pct") else num(value)
        days = parse.integer(row.get("lookback_days"))
        label = _txt(row.get("label") or row.get("id"), 60)
        fields.append(
            MessageField(
                label,
                " ".join(x for x in (_mark(row.get("status")), shown, f"({days}d)" if days else "") if x)
                + f" {_txt(row.get('status'), 20)}",
            )
        )
    meta = _obj(body.get("meta"))
    prices = _obj(meta.get("latest_prices"))
    quoted = [f"{_txt(k, 10)} {num(v)}" for k, v in list(prices.items())[:6] if parse.number(v) is not None]
    count = _bullish(bullish, total, t)
    return Message(
        title=t.gettext("Macro: {verdict}", verdict=f"{_mark(verdict)} {verdict}{count}"),
        body="\n".join(x for x in (_txt(meta.get("summary"), 300), " · ".join(quoted)) if x),
        fields=tuple(fields),
        footer=" · ".join(x for x in (_as_of(body, t), t.gettext("rule-based classification, not advice")) if x),
    )


def etf(body: Mapping[str, Any], t: Translator = ENGLISH) -> Message:
    if not body.get("available"):
        return _unavailable(t.gettext("BTC ETF flows"), t)
    summary = _obj(body.get("summary"))
    direction = _txt(summary.get("direction"), 30)
    net = parse.number(summary.get("net_score"))
    inflow, outflow = parse.integer(summary.get("inflow_count")), parse.integer(summary.get("outflow_count"))
    head = t.gettext("BTC ETF flows: {direction}", direction=f"{_mark(direction)} {direction}")
    if net is not None:
        head += ", " + t.gettext("net score {score}", score=num(net))
    counts = []
    if inflow is not None:
        counts.append(t.gettext("{n} in", n=inflow))
    if outflow is not None:
        counts.append(t.gettext("{n} out", n=outflow))
    lines = []
    for row in (body.get("etfs") or [])[:10]:
        if not isinstance(row, dict):
            continue
        change = parse.number(row.get("price_change_pct"))
        ratio = parse.number(row.get("volume_ratio"))
        parts = [f"{_mark(row.get('direction'))} {_txt(row.get('symbol'), 10)}"]
        if change is not None:
            parts.append(percent(change))
        if ratio is not None:
            parts.append(f"vol x{num(ratio)}")
        lines.append(" ".join(parts))
    estimated = t.gettext("estimated from price and volume") if body.get("is_estimated", True) else ""
    return Message(
        title=head,
        body="\n".join(x for x in (_txt(summary.get("summary"), 300), ", ".join(counts), "\n".join(lines)) if x),
        footer=" · ".join(x for x in (_as_of(body, t), estimated) if x),
    )


def news(body: Mapping[str, Any], category: str, t: Translator = ENGLISH) -> Message:
    title = t.gettext("News: {category}", category=category) if category else t.gettext("News")
    if not body.get("available"):
        return _unavailable(title, t)
    blocks = []
    for section in (body.get("categories") or [])[:4]:
        if not isinstance(section, dict) or not section.get("available"):
            continue
        summary = _obj(section.get("summary"))
        head = (
            f"{_txt(section.get('label') or section.get('category'), 30)} ({_txt(summary.get('activity_level'), 20)})"
        )
        lines = [head]
        for item in (section.get("items") or [])[:NEWS_LIMIT]:
            if not isinstance(item, dict):
                continue
            sentiment = _txt(item.get("overall_sentiment_label"), 20)
            source = _txt(item.get("source"), 40)
            tail = ", ".join(x for x in (source, sentiment) if x)
            lines.append(f"• {_txt(item.get('title'), 160)}" + (f" ({tail})" if tail else ""))
        blocks.append("\n".join(lines))
    total = parse.integer(body.get("total_items"))
    return Message(
        title=title + (": " + t.ngettext("{n} headline", "{n} headlines", total) if total is not None else ""),
        body="\n\n".join(blocks) or t.gettext("No headlines."),
        footer=_as_of(body, t, "last_updated_at"),
    )


def stock(body: Mapping[str, Any], symbol: str, t: Translator = ENGLISH) -> Message:
    if not body.get("available"):
        return Message(
            title=t.gettext("{symbol}: no analysis", symbol=symbol),
            body=t.gettext("AI-Trader has no analysis snapshot for {symbol}.", symbol=symbol),
        )
    analysis = _obj(body.get("analysis"))
    price = parse.number(body.get("current_price"))
    signal = _txt(body.get("signal"), 20)
    fields = []
    if price is not None:
        fields.append(MessageField(t.gettext("Price"), num(price)))
    for days, key in ((5, "return_5d_pct"), (20, "return_20d_pct")):
        value = parse.number(analysis.get(key))
        if value is not None:
            fields.append(MessageField(t.ngettext("{n} day", "{n} days", days), percent(value)))
    score = parse.number(body.get("signal_score"))
    if signal:
        fields.append(MessageField(t.gettext("Signal"), signal + (f" ({num(score)})" if score is not None else "")))
    if body.get("trend_status"):
        fields.append(MessageField(t.gettext("Trend"), _txt(body.get("trend_status"), 30)))
    for label, key in ((N_("Support"), "support_levels"), (N_("Resistance"), "resistance_levels")):
        levels = [num(v) for v in (body.get(key) or [])[:3] if parse.number(v) is not None]
        if levels:
            fields.append(MessageField(t.gettext(label), ", ".join(levels)))
    factors = [f"+ {_txt(f, 120)}" for f in (body.get("bullish_factors") or [])[:3]]
    factors += [f"- {_txt(f, 120)}" for f in (body.get("risk_factors") or [])[:3]]
    name = _txt(body.get("symbol"), 12) or symbol
    return Message(
        title=f"{name}: {signal or t.gettext('analysis')}"
        + (" " + t.gettext("at {price}", price=num(price)) if price else ""),
        body="\n".join(x for x in (_txt(body.get("summary"), 500), "\n".join(factors)) if x),
        fields=tuple(fields),
        footer=_as_of(body, t),
    )
