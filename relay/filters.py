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
from relay.i18n import N_
from relay.models import Signal
from relay.specs import FEED_TYPES, MARKETS

MAX_EXCLUDES = 10
WORD_LIMIT = 100
_SYMBOL = re.compile(r"^[A-Za-z0-9._:/\-]{1,64}$")
# The syntax, not prose: the same in every language, put into translated usage lines.
USAGE = f'market={"|".join(MARKETS)} symbol=<symbol> type={"|".join(FEED_TYPES)} -word -"two words"'


@dataclass(frozen=True, slots=True)
class Rejection:
    """Which setting left a signal out, as an N_() template and its values (shown by /why)."""

    template: str
    params: dict[str, str]


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

    def rejects(self, s: Signal) -> Rejection | None:
        """The setting that leaves `s` out (None when it passes)."""
        if self.market and s.market.casefold() != self.market:
            return Rejection(
                N_("left out by watch #{sub}: market={want} (this signal is in {got})"),
                {"want": self.market, "got": s.market or "-"},
            )
        if self.message_type and s.message_type.casefold() != self.message_type:
            return Rejection(
                N_("left out by watch #{sub}: type={want} (this signal is a {got})"),
                {"want": self.message_type, "got": s.message_type or "-"},
            )
        if self.symbol:
            symbols = {x.casefold() for x in (s.symbol, *s.symbols) if x}
            if self.symbol.casefold() not in symbols:
                return Rejection(
                    N_("left out by watch #{sub}: symbol={want} (this signal is about {got})"),
                    {"want": self.symbol, "got": ", ".join(sorted(symbols)).upper() or "-"},
                )
        if self.exclude:
            text = "\n".join((s.title, s.content, s.symbol, *s.symbols, *s.tags)).casefold()
            for word in self.exclude:
                if word.casefold() in text:
                    return Rejection(
                        N_('left out by watch #{sub}: -{want} (the signal mentions "{want}")'), {"want": word}
                    )
        return None


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
                raise UsageError(
                    N_("an exclusion is 1 to {limit} characters; filters: {filters}"), limit=WORD_LIMIT, filters=USAGE
                )
            if excluded.casefold() not in (w.casefold() for w in exclude):
                exclude.append(excluded)
            continue
        name, eq, value = word.partition("=")
        if not eq:
            rest.append(word)
            continue
        name, value = name.strip().lower(), value.strip()
        if name not in ("market", "symbol", "type"):
            raise UsageError(N_("unknown filter {name}=; filters: {filters}"), name=name[:20], filters=USAGE)
        if name in found:
            raise UsageError(N_("{name}= is given twice; filters: {filters}"), name=name, filters=USAGE)
        found[name] = _checked(name, value)
    if len(exclude) > MAX_EXCLUDES:
        raise UsageError(N_("at most {limit} exclusions; filters: {filters}"), limit=MAX_EXCLUDES, filters=USAGE)
    return rest, WatchFilter(found.get("market", ""), found.get("symbol", ""), found.get("type", ""), tuple(exclude))


def _checked(name: str, value: str) -> str:
    if name in ("market", "type"):
        allowed = MARKETS if name == "market" else FEED_TYPES
        if value.lower() not in allowed:
            raise UsageError(N_("{name} must be one of {choices}"), name=name, choices=", ".join(allowed))
        return value.lower()
    if not _SYMBOL.match(value):
        raise UsageError(N_("symbol is letters, digits and . _ : / - (at most 64), e.g. symbol=BTC"))
    return value
