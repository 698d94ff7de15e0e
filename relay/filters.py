"""Filters of feed and trader watches: `market=`, `symbol=`, `type=` and `-word` exclusions.

Which fields carry what, from the public server (HKUDS/AI-Trader `service/server`, the `signals`
table; ../shared/research/aitrader-api.md §6): every row has `market` and `message_type`;
operations and discussions carry one `symbol` (null for strategies), strategies a `symbols` list
split from a comma string. A filter is checked against exactly those fields, case-insensitively;
an exclusion against the text a card shows (title, content, symbols, tags).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.errors import UsageError
from relay.models import Signal
from relay.specs import FEED_TYPES, MARKETS

MAX_EXCLUDES = 10
WORD_LIMIT = 100
_SYMBOL = re.compile(r"^[A-Za-z0-9._:/\-]{1,64}$")
USAGE = (
    f"filters are market={'|'.join(MARKETS)}, symbol=<symbol>, type={'|'.join(FEED_TYPES)} "
    'and -word (or -"two words") to leave out'
)


@dataclass(frozen=True, slots=True)
class WatchFilter:
    market: str = ""
    symbol: str = ""
    message_type: str = ""
    exclude: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.market or self.symbol or self.message_type or self.exclude)

    def describe(self) -> str:
        """As the user would type it: `market=crypto symbol=BTC -scam`."""
        parts = [f"{name}={value}" for name, value in self._settings() if value]
        parts += [f'-"{w}"' if " " in w else f"-{w}" for w in self.exclude]
        return " ".join(parts)

    def _settings(self) -> tuple[tuple[str, str], ...]:
        return (("market", self.market), ("symbol", self.symbol), ("type", self.message_type))

    def rejects(self, s: Signal) -> str:
        """The setting that leaves `s` out, said for /why ("" when it passes)."""
        if self.market and s.market.casefold() != self.market:
            return f"market={self.market} (this signal is in {s.market or 'no market'})"
        if self.message_type and s.message_type.casefold() != self.message_type:
            return f"type={self.message_type} (this signal is a {s.message_type or 'signal of no type'})"
        if self.symbol:
            symbols = {x.casefold() for x in (s.symbol, *s.symbols) if x}
            if self.symbol.casefold() not in symbols:
                shown = ", ".join(sorted(symbols)).upper() or "no symbol"
                return f"symbol={self.symbol} (this signal is about {shown})"
        if self.exclude:
            text = "\n".join((s.title, s.content, s.symbol, *s.symbols, *s.tags)).casefold()
            for word in self.exclude:
                if word.casefold() in text:
                    return f'-{word} (the signal mentions "{word}")'
        return ""


def split_filters(words: list[str]) -> tuple[list[str], WatchFilter]:
    """Separates `name=value` settings and `-word` exclusions from the other words (kept in
    order). Raises UsageError, in one line, on a bad or repeated setting."""
    rest: list[str] = []
    found: dict[str, str] = {}
    exclude: list[str] = []
    for word in words:
        if word.startswith("-") and len(word) > 1:
            excluded = word[1:].strip()
            if not excluded or len(excluded) > WORD_LIMIT:
                raise UsageError(f"an exclusion is 1 to {WORD_LIMIT} characters; {USAGE}")
            if excluded.casefold() not in (w.casefold() for w in exclude):
                exclude.append(excluded)
            continue
        name, eq, value = word.partition("=")
        if not eq:
            rest.append(word)
            continue
        name, value = name.strip().lower(), value.strip()
        if name not in ("market", "symbol", "type"):
            raise UsageError(f"unknown filter {name[:20]}=; {USAGE}")
        if name in found:
            raise UsageError(f"{name}= is given twice; {USAGE}")
        found[name] = _checked(name, value)
    if len(exclude) > MAX_EXCLUDES:
        raise UsageError(f"at most {MAX_EXCLUDES} exclusions; {USAGE}")
    return rest, WatchFilter(found.get("market", ""), found.get("symbol", ""), found.get("type", ""), tuple(exclude))


def _checked(name: str, value: str) -> str:
    if name == "market":
        if value.lower() not in MARKETS:
            raise UsageError(f"market must be one of {', '.join(MARKETS)}")
        return value.lower()
    if name == "type":
        if value.lower() not in FEED_TYPES:
            raise UsageError(f"type must be one of {', '.join(FEED_TYPES)}")
        return value.lower()
    if not _SYMBOL.match(value):
        raise UsageError("symbol is letters, digits and . _ : / - (at most 64), e.g. symbol=BTC")
    return value
