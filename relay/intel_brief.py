"""Composes the daily brief's text from AI-Trader's market-intelligence read models.

Shapes from the upstream server (service/server/market_intel.py): every view carries
`available`; with no background worker upstream everything answers `available: false`, and
the brief then says so instead of showing empty numbers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from relay import parse
from relay.aitrader import AITraderClient
from relay.models import Message

_VIEWS = {
    "overview": ("/api/market-intel/overview", None),
    "macro": ("/api/market-intel/macro-signals", None),
    "etf": ("/api/market-intel/etf-flows", None),
    "news": ("/api/market-intel/news", {"limit": 3}),
}


def brief_composer(client: AITraderClient) -> Callable[[Sequence[str]], Awaitable[Message]]:
    async def compose(sections: Sequence[str]) -> Message:
        parts = []
        for section in sections:
            path, params = _VIEWS[section]
            body = await client.read(path, None, params)
            parts.append(_FORMAT[section](body) if body.get("available") else f"{section.capitalize()}: not available.")
        return Message(body="\n\n".join(parts), footer="From AI-Trader market intelligence")

    return compose


def _t(value: object, limit: int = 200) -> str:
    return parse.text(value, limit).strip()


def _overview(b: dict[str, Any]) -> str:
    lines = [
        f"Macro: {_t(b.get('macro_verdict'), 30) or 'unknown'} "
        f"({parse.integer(b.get('macro_bullish_count')) or 0}/{parse.integer(b.get('macro_total_count')) or 0} bullish)"
    ]
    if b.get("macro_summary"):
        lines.append(_t(b.get("macro_summary")))
    if b.get("etf_direction"):
        lines.append(f"BTC ETF flows: {_t(b.get('etf_direction'), 30)}")
    lines.append(
        f"News: {_t(b.get('news_status'), 20) or 'quiet'}, {parse.integer(b.get('headline_count')) or 0} headlines"
    )
    if b.get("latest_headline"):
        lines.append(f"Latest: {_t(b.get('latest_headline'))}")
    return "\n".join(lines)


def _macro(b: dict[str, Any]) -> str:
    lines = [f"Macro verdict: {_t(b.get('verdict'), 30)}"]
    for s in (b.get("signals") or [])[:6]:
        if isinstance(s, dict):
            value = parse.number(s.get("value"))
            shown = f" {value:+.2f}%" if value is not None and s.get("unit") != "spread_pct" else ""
            lines.append(f"- {_t(s.get('label'), 40)}: {_t(s.get('status'), 20)}{shown}")
    return "\n".join(lines)


def _etf(b: dict[str, Any]) -> str:
    summary = b.get("summary") if isinstance(b.get("summary"), dict) else {}
    assert isinstance(summary, dict)
    return f"BTC ETF flows: {_t(summary.get('direction'), 30)}. {_t(summary.get('summary'))}".strip()


def _news(b: dict[str, Any]) -> str:
    lines = []
    for cat in b.get("categories") or []:
        if not isinstance(cat, dict) or not cat.get("available"):
            continue
        items = [i for i in cat.get("items") or [] if isinstance(i, dict)]
        if items:
            lines.append(f"{_t(cat.get('label'), 30)}: {_t(items[0].get('title'))}")
    return "News\n" + "\n".join(lines) if lines else "News: no headlines."


_FORMAT: dict[str, Callable[[dict[str, Any]], str]] = {
    "overview": _overview,
    "macro": _macro,
    "etf": _etf,
    "news": _news,
}
