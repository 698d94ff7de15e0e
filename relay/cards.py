"""Cards for trades, positions, traders, prices and rankings: pure functions to `Message`s.

Numbers first, words second: every card leads with what a trader looks at (side, size, price,
PnL), as short fields so Discord lays them out as a table and Telegram as aligned lines. A value
upstream did not send is left out, never shown as 0. Nothing here performs I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from relay.i18n import ENGLISH, N_, Translator
from relay.models import (
    Action,
    AgentSummary,
    FeedPage,
    Message,
    MessageField,
    Portfolio,
    Position,
    Quote,
    Ranked,
    Signal,
    TradeOrder,
    TradeResult,
    Trend,
)
from relay.render import BODY_LIMIT, FIELD_LIMIT, clip, signal_actions

MAX_POSITIONS = 20  # fields per card; Discord allows 25 and the totals need three
MAX_ROWS = 15


# --- numbers -----------------------------------------------------------------------------------


def num(value: float) -> str:
    """A quantity or price without noise: 25, 0.5, 212.4, 0.3412, 68,250."""
    if value != value or value in (float("inf"), float("-inf")):
        return "?"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.2f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.4f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def money(value: float, *, signed: bool = False) -> str:
    sign = "+" if signed and value > 0 else "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def percent(value: float) -> str:
    return f"{value:+.2f}%"


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


def who(agent_id: int, name: str) -> str:
    return f"{clip(name, 60)} (#{agent_id})" if name else f"#{agent_id}"


# --- signals -----------------------------------------------------------------------------------


def trade_summary(s: Signal) -> str:
    """'BUY 25 AAPL @ 198.20' for an operation, '' when the row carries no trade."""
    if not s.side and s.quantity is None and s.entry_price is None:
        return ""
    parts = [s.side.upper() or "TRADE"]
    if s.quantity is not None:
        parts.append(num(abs(s.quantity)))
    parts.append(clip(s.symbol or "?", 40))
    if s.outcome:
        parts.append(f"[{clip(s.outcome, 30)}]")
    if s.entry_price is not None:
        parts.append(f"@ {num(s.entry_price)}")
    return " ".join(parts)


def signal_fields(s: Signal, t: Translator = ENGLISH) -> list[MessageField]:
    """The stored fields of a signal that a reader needs, each short enough for a table."""
    fields: list[MessageField] = []

    def add(name: str, value: str) -> None:
        if value:
            fields.append(MessageField(t.gettext(name), clip(value, FIELD_LIMIT)))

    if s.message_type == "operation" or s.side:
        add(N_("Side"), s.side.upper())
        add(N_("Symbol"), s.symbol)
        add(N_("Market"), s.market)
        add(N_("Quantity"), num(abs(s.quantity)) if s.quantity is not None else "")
        add(N_("Entry"), num(s.entry_price) if s.entry_price is not None else "")
        add(N_("Exit"), num(s.exit_price) if s.exit_price is not None else "")
        add(N_("PnL"), money(s.pnl, signed=True) if s.pnl is not None else "")
        add(N_("Outcome"), s.outcome)
        add(N_("Token"), s.token_id)
        add(N_("Executed"), when(s.executed_at))
    else:
        add(N_("Market"), s.market)
        add(N_("Symbol"), s.symbol if not s.symbols else "")
        add(N_("Symbols"), ", ".join(s.symbols))
        add(N_("Tags"), ", ".join(s.tags))
    return fields


def signal_line(s: Signal, author: str = "", t: Translator = ENGLISH) -> str:
    """A few lines per signal for lists (feed, a trader's recent signals)."""
    head = f"[{s.signal_id}] {s.message_type or t.gettext('signal')}"
    if s.market:
        head += f" · {s.market}"
    trade = trade_summary(s)
    if trade:
        head += f" · {trade}"
    elif s.symbol:
        head += f" · {clip(s.symbol, 40)}"
    name = s.agent_name or author
    head += " " + t.gettext("by {name}", name=clip(name, 60) if name else f"#{s.agent_id}")
    extra = []
    if s.symbols:
        extra.append(t.gettext("symbols {symbols}", symbols=clip(", ".join(s.symbols), 80)))
    if s.tags:
        extra.append(t.gettext("tags {tags}", tags=clip(", ".join(s.tags), 80)))
    if s.pnl is not None:
        extra.append(t.gettext("PnL {pnl}", pnl=money(s.pnl, signed=True)))
    if s.reply_count is not None:
        extra.append(t.ngettext("{n} reply", "{n} replies", s.reply_count))
    content = clip(" ".join(s.content.split()), 200)
    return "\n".join(x for x in (head, clip(s.title, 120), content, " · ".join(extra)) if x)


def signal_card(s: Signal, *, author: str, footer: str, actions: Sequence[Action], t: Translator = ENGLISH) -> Message:
    kind = s.message_type or t.gettext("signal")
    name = s.agent_name or author or f"#{s.agent_id}"
    trade = trade_summary(s)
    title = f"{name}: {trade}" if trade else t.gettext("New {kind} by {name}", kind=kind, name=name)
    body = "\n".join(x for x in (s.title, s.content) if x)
    return Message(
        title=clip(title, 200),
        body=clip(body, BODY_LIMIT),
        fields=tuple(signal_fields(s, t)),
        footer=footer,
        actions=tuple(actions),
    )


def feed(
    page: FeedPage,
    *,
    keyword: str,
    message_type: str,
    page_no: int,
    per_page: int,
    names: Mapping[int, str],
    t: Translator = ENGLISH,
) -> Message:
    title = t.gettext("Feed: {keyword}", keyword=clip(keyword, 60))
    if not page.signals:
        return Message(title=title, body=t.gettext("Nothing found."))
    lines = [signal_line(s, names.get(s.agent_id, ""), t) for s in page.signals]
    args = {"keyword": keyword, "type": message_type, "page": ""}
    actions = []
    if page_no > 1:
        actions.append(Action(t.gettext("◀ Previous"), "feed", {**args, "page": str(page_no - 1)}, replace=True))
    if page.has_more:
        actions.append(Action(t.gettext("Next ▶"), "feed", {**args, "page": str(page_no + 1)}, replace=True))
    first = (page_no - 1) * per_page + 1
    return Message(
        title=title + (f" ({message_type})" if message_type else ""),
        body="\n\n".join(lines),
        footer=t.gettext(
            "{first}–{last} of {total} · page {page}",
            first=first,
            last=first + len(page.signals) - 1,
            total=page.total,
            page=page_no,
        ),
        actions=tuple(actions),
    )


def signals(
    title: str, items: Sequence[Signal], empty: str, names: Mapping[int, str], t: Translator = ENGLISH
) -> Message:
    if not items:
        return Message(title=title, body=empty)
    return Message(
        title=title, body="\n\n".join(signal_line(s, names.get(s.agent_id, ""), t) for s in items[:MAX_ROWS])
    )


def new_signal(s: Signal, *, watch: str, author: str, t: Translator = ENGLISH) -> Message:
    """A watched feed's or trader's new signal, with every stored trade field."""
    footer = t.gettext("signal {signal_id}", signal_id=s.signal_id) + f" · {watch}"
    return signal_card(s, author=author, footer=footer, actions=signal_actions(s.signal_id, t), t=t)


# --- positions ---------------------------------------------------------------------------------


def position_name(p: Position) -> str:
    label = p.title or p.symbol
    if p.outcome and not p.title:
        label += f" [{p.outcome}]"
    return f"{clip(label, 60)} · {p.market}" if p.market else clip(label, 60)


def position_value(p: Position, leaders: Mapping[int, str], t: Translator = ENGLISH) -> str:
    parts = []
    size = f"{p.side or 'long'} {num(abs(p.quantity))}" if p.quantity is not None else p.side
    if size:
        parts.append(size)
    if p.entry_price is not None:
        moved = f" → {num(p.current_price)}" if p.current_price is not None else " → " + t.gettext("no price")
        parts.append(f"@ {num(p.entry_price)}{moved}")
    parts.append(
        t.gettext("PnL {pnl}", pnl=money(p.pnl, signed=True)) if p.pnl is not None else t.gettext("PnL unknown")
    )
    line = " ".join(parts[:2]) + (", " + parts[2] if len(parts) > 2 else "")
    if p.leader_id is not None:
        line += "\n" + t.gettext("copied from {trader}", trader=who(p.leader_id, leaders.get(p.leader_id, "")))
    return line


def positions(
    title: str,
    book: Portfolio,
    leaders: Mapping[int, str],
    *,
    refresh: Action | None = None,
    as_of: str = "",
    t: Translator = ENGLISH,
) -> Message:
    shown = book.positions[:MAX_POSITIONS]
    fields = [MessageField(position_name(p), position_value(p, leaders, t)) for p in shown]
    known = [p.pnl for p in book.positions if p.pnl is not None]
    if known:
        unknown = len(book.positions) - len(known)
        total = money(sum(known), signed=True) + (
            " " + t.ngettext("({n} without a price)", "({n} without a price)", unknown) if unknown else ""
        )
        fields.append(MessageField(t.gettext("Total PnL"), total))
    if book.cash is not None:
        fields.append(MessageField(t.gettext("Cash"), money(book.cash)))
    copied = sum(1 for p in book.positions if p.leader_id is not None)
    notes = [
        t.gettext("{n} open", n=len(book.positions)) + (", " + t.gettext("{n} copied", n=copied) if copied else "")
    ]
    if len(book.positions) > len(shown):
        notes.append(t.gettext("{n} more not shown", n=len(book.positions) - len(shown)))
    if as_of:
        notes.append(as_of)
    return Message(
        title=clip(title, 200),
        body="" if book.positions else t.gettext("No open positions."),
        fields=tuple(fields),
        footer=" · ".join(notes),
        actions=(refresh,) if refresh else (),
    )


# --- traders, prices, rankings -----------------------------------------------------------------


def trader(
    summary: AgentSummary,
    recent: Sequence[Signal],
    book: Portfolio | None,
    *,
    actions: Sequence[Action],
    t: Translator = ENGLISH,
) -> Message:
    fields = []
    if summary.cash is not None:
        fields.append(MessageField(t.gettext("Cash"), money(summary.cash)))
    if book is not None:
        known = [p.pnl for p in book.positions if p.pnl is not None]
        if known:
            fields.append(MessageField(t.gettext("Open PnL"), money(sum(known), signed=True)))
        fields.append(MessageField(t.gettext("Positions"), str(len(book.positions))))
    elif summary.position_count is not None:
        fields.append(MessageField(t.gettext("Positions"), str(summary.position_count)))
    if summary.recent_activity_at:
        fields.append(MessageField(t.gettext("Last active"), when(summary.recent_activity_at)))
    fields += [MessageField(position_name(p), position_value(p, {}, t)) for p in (book.positions if book else ())[:8]]
    lines = [signal_line(s, summary.name, t) for s in recent[:5]]
    return Message(
        title=t.gettext("Trader {trader}", trader=who(summary.agent_id, summary.name)),
        body="\n\n".join(lines) if lines else t.gettext("No signals yet."),
        fields=tuple(fields),
        footer=t.ngettext("{n} recent signal", "{n} recent signals", len(recent)) if recent else "",
        actions=tuple(actions),
    )


def quote(q: Quote, asked: str, t: Translator = ENGLISH) -> Message:
    name = q.title or (f"{q.symbol} [{q.outcome}]" if q.outcome else q.symbol) or asked
    fields = [MessageField(t.gettext("Price"), num(q.price)), MessageField(t.gettext("Market"), q.market)]
    if q.outcome:
        fields.append(MessageField(t.gettext("Outcome"), clip(q.outcome, 60)))
    if q.token_id:
        fields.append(MessageField(t.gettext("Token"), clip(q.token_id, 100)))
    return Message(title=clip(f"{name}: {num(q.price)}", 200), fields=tuple(fields))


def points(name: str, agent_id: int, pts: float | None, cash: float | None, t: Translator = ENGLISH) -> Message:
    fields = []
    if pts is not None:
        fields.append(MessageField(t.gettext("Points"), num(pts)))
    if cash is not None:
        fields.append(MessageField(t.gettext("Cash"), money(cash)))
    return Message(
        title=f"{who(agent_id, name)}",
        body="" if fields else t.gettext("AI-Trader did not say."),
        fields=tuple(fields),
        footer=t.gettext("1 point buys $1,000 of paper cash on AI-Trader"),
    )


def leaderboard(rows: Sequence[Ranked], days: int, t: Translator = ENGLISH) -> Message:
    title = t.ngettext("Leaderboard, {n} day", "Leaderboard, {n} days", days)
    if not rows:
        return Message(title=title, body=t.gettext("Nobody ranked yet."))
    lines = []
    for i, r in enumerate(rows[:MAX_ROWS], 1):
        parts = [f"{i}. {who(r.agent_id, r.name)}"]
        if r.percent is not None:
            parts.append(percent(r.percent))
        if r.profit is not None:
            parts.append(money(r.profit, signed=True))
        if r.trade_count is not None:
            parts.append(t.ngettext("{n} trade", "{n} trades", r.trade_count))
        lines.append(" · ".join(parts))
    return Message(title=title, body="\n".join(lines), footer=t.gettext("by profit percent"))


def trending(rows: Sequence[Trend], t: Translator = ENGLISH) -> Message:
    if not rows:
        return Message(title=t.gettext("Trending"), body=t.gettext("Nothing held yet."))
    lines = []
    for i, row in enumerate(rows[:MAX_ROWS], 1):
        label = clip(row.symbol, 60) + (f" [{clip(row.outcome, 20)}]" if row.outcome else "")
        parts = [f"{i}. {label} · {row.market}"]
        if row.holders is not None:
            parts.append(t.ngettext("{n} holder", "{n} holders", row.holders))
        if row.price is not None:
            parts.append(num(row.price))
        lines.append(" · ".join(parts))
    return Message(
        title=t.gettext("Trending"), body="\n".join(lines), footer=t.gettext("symbols held by the most agents")
    )


# --- trades --------------------------------------------------------------------------------------


def order_line(order: TradeOrder) -> str:
    label = order.symbol + (f" [{order.outcome}]" if order.outcome else "")
    return f"{order.action.upper()} {num(order.quantity)} {clip(label, 80)} · {order.market}"


def pending_trade(
    order: TradeOrder, *, price_note: str, actions: Sequence[Action], seconds: int, t: Translator = ENGLISH
) -> Message:
    fields = [
        MessageField(t.gettext("Side"), order.action.upper()),
        MessageField(t.gettext("Symbol"), clip(order.symbol, 100)),
        MessageField(t.gettext("Quantity"), num(order.quantity)),
        MessageField(t.gettext("Market"), order.market),
        MessageField(t.gettext("Price"), price_note),
    ]
    if order.outcome:
        fields.append(MessageField(t.gettext("Outcome"), clip(order.outcome, 60)))
    if order.token_id:
        fields.append(MessageField(t.gettext("Token"), clip(order.token_id, 100)))
    return Message(
        title=t.gettext("Confirm: {order}", order=order_line(order)),
        body=t.gettext(
            "Press Confirm within {seconds} s to publish this trade as your agent. Nothing is sent before.",
            seconds=seconds,
        ),
        fields=tuple(fields),
        actions=tuple(actions),
    )


def published_trade(order: TradeOrder, result: TradeResult, t: Translator = ENGLISH) -> Message:
    fields = [
        MessageField(t.gettext("Side"), order.action.upper()),
        MessageField(t.gettext("Quantity"), num(order.quantity)),
    ]
    if result.price is not None:
        fields.append(MessageField(t.gettext("Price"), num(result.price)))
        fields.append(MessageField(t.gettext("Value"), money(result.price * order.quantity)))
    if result.follower_count is not None:
        fields.append(
            MessageField(t.gettext("Copied by"), t.ngettext("{n} follower", "{n} followers", result.follower_count))
        )
    footer = t.gettext("signal {signal_id}", signal_id=result.signal_id) if result.signal_id else ""
    if result.points:
        footer += " · " + t.gettext("+{points} points", points=result.points)
    return Message(
        title=t.gettext("Published: {order}", order=order_line(order)), fields=tuple(fields), footer=footer.strip(" ·")
    )
