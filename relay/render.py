"""Pure functions that turn upstream values into platform-neutral `Message`s.

Everything upstream is untrusted text: it goes into `Message` fields as plain strings and each
adapter escapes it for its platform. Nothing here performs I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from relay.catalogue import kind_of
from relay.models import (
    Action,
    FeedPage,
    Message,
    MessageField,
    Notification,
    Signal,
    SignalReply,
)

BODY_LIMIT = 3000  # one notification = one send keeps the platform budget predictable
FIELD_LIMIT = 300

_TITLES = {
    "new_follower": "New follower",
    "strategy_published": "New strategy",
    "discussion_started": "New discussion",
    "strategy_reply": "New reply on a strategy",
    "discussion_reply": "New reply on a discussion",
    "strategy_mention": "You were mentioned in a strategy",
    "discussion_mention": "You were mentioned in a discussion",
    "strategy_reply_accepted": "Your reply was accepted",
    "discussion_reply_accepted": "Your reply was accepted",
    "new_reply": "New reply",
    "trade_copied": "Trade copied",
    "signal": "New signal",
}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


def positive_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def signal_actions(signal_id: int) -> tuple[Action, ...]:
    return (
        Action("Show replies", "replies", {"signal_id": str(signal_id)}),
        Action("Reply", "reply", {"signal_id": str(signal_id)}, kind="prompt", text_param="text"),
    )


def notification(n: Notification, *, is_task: bool = False, reply: SignalReply | None = None) -> Message:
    """One notification as a message; `reply` is the fetched reply text for reply/mention types."""
    kind = kind_of(n.kind, is_task=is_task)
    data = n.data
    fields: list[MessageField] = []
    if is_task:
        title = "New task"
        body = f"Task type: {n.content}"
        task_input = data.get("input")
        if task_input:
            fields.append(MessageField("Input", clip(_value(task_input), 1000)))
        footer = f"task #{n.message_id}"
    else:
        title = _TITLES.get(n.kind, f"Message ({clip(n.kind, 60)})")
        body = n.content
        footer = f"#{n.message_id}"
        for label, key in (("Market", "market"), ("Symbol", "symbol")):
            if data.get(key):
                fields.append(MessageField(label, clip(_value(data[key]), FIELD_LIMIT)))
        if reply is not None:
            fields.append(
                MessageField(f"Reply by {clip(reply.agent_name or str(reply.agent_id), 80)}", clip(reply.content, 1000))
            )
        if n.kind == "trade_copied" and isinstance(data.get("trade"), Mapping):
            trade = data["trade"]
            fields += [
                MessageField(k.capitalize(), clip(_value(trade[k]), FIELD_LIMIT))
                for k in ("symbol", "side", "quantity", "price")
                if k in trade
            ]
        if n.kind not in _TITLES:
            # Unknown types come from any agent: show their data so nothing they sent is hidden.
            extra = [(k, v) for k, v in data.items() if k not in ("market", "symbol")][:10]
            fields += [MessageField(clip(str(k), 60), clip(_value(v), FIELD_LIMIT)) for k, v in extra]
    when = _when(n.created_at)
    actions: list[Action] = []
    signal_id = positive_int(data, "signal_id")
    if signal_id and not is_task:
        actions += signal_actions(signal_id)
        footer += f" · signal {signal_id}"
    actions.append(Action("Mute this kind", "notify", {"kind": kind, "mode": "off"}))
    return Message(
        title=title,
        body=clip(body, BODY_LIMIT),
        fields=tuple(fields[:20]),
        footer=f"{footer} · {when}" if when else footer,
        actions=tuple(actions),
    )


def feed(page: FeedPage, *, keyword: str, message_type: str, page_no: int, per_page: int) -> Message:
    if not page.signals:
        return Message(title=f"Feed: {clip(keyword, 60)}", body="Nothing found.")
    lines = [_signal_line(s) for s in page.signals]
    args = {"keyword": keyword, "type": message_type, "page": ""}
    actions = []
    if page_no > 1:
        actions.append(Action("◀ Previous", "feed", {**args, "page": str(page_no - 1)}, replace=True))
    if page.has_more:
        actions.append(Action("Next ▶", "feed", {**args, "page": str(page_no + 1)}, replace=True))
    first = (page_no - 1) * per_page + 1
    return Message(
        title=f"Feed: {clip(keyword, 60)}" + (f" ({message_type})" if message_type else ""),
        body="\n\n".join(lines),
        footer=f"{first}–{first + len(page.signals) - 1} of {page.total} · page {page_no}",
        actions=tuple(actions),
    )


def _signal_line(s: Signal) -> str:
    head = f"[{s.signal_id}] {s.message_type or 'signal'}"
    if s.market:
        head += f" · {s.market}"
    if s.symbol:
        head += f" · {s.symbol}"
    who = f"by {clip(s.agent_name or str(s.agent_id), 60)}"
    title = clip(s.title, 120)
    content = clip(" ".join(s.content.split()), 200)
    return "\n".join(x for x in (f"{head} {who}", title, content, f"{s.reply_count} replies") if x)


def signals(title: str, items: Sequence[Signal], empty: str) -> Message:
    if not items:
        return Message(title=title, body=empty)
    return Message(title=title, body="\n\n".join(_signal_line(s) for s in items[:15]))


def new_signal(s: Signal, *, watch: str) -> Message:
    return Message(
        title=f"New {s.message_type or 'signal'} by {clip(s.agent_name or str(s.agent_id), 80)}",
        body=clip("\n".join(x for x in (s.title, s.content) if x), BODY_LIMIT),
        fields=tuple(
            MessageField(k, clip(v, FIELD_LIMIT)) for k, v in (("Market", s.market), ("Symbol", s.symbol)) if v
        ),
        footer=f"signal {s.signal_id} · {watch}",
        actions=signal_actions(s.signal_id),
    )


def replies(signal_id: int, items: Sequence[SignalReply]) -> Message:
    if not items:
        return Message(title=f"Replies to signal {signal_id}", body="No replies yet.")
    shown = items[-20:]
    lines = [
        f"{'✅ ' if r.accepted else ''}{clip(r.agent_name or str(r.agent_id), 60)} ({_when(r.created_at)}):\n{clip(r.content, 600)}"
        for r in shown
    ]
    more = f"{len(items) - len(shown)} earlier replies not shown · " if len(items) > len(shown) else ""
    return Message(
        title=f"Replies to signal {signal_id}",
        body="\n\n".join(lines),
        footer=f"{more}{len(items)} replies",
        actions=(Action("Reply", "reply", {"signal_id": str(signal_id)}, kind="prompt", text_param="text"),),
    )
