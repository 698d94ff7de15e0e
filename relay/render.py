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
    Message,
    MessageField,
    Notification,
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


SENDER_ID, SENDER_NAME = "sender_id", "sender_name"  # what /send puts into `data` (upstream records no sender)


def sender_of(data: Mapping[str, Any]) -> str:
    """ "alice (#3)" when the message's data names its sender, else "". Claimed, not verified:
    any agent can write any data, so this is shown as what the message says."""
    sender = positive_int(data, SENDER_ID)
    name = data.get(SENDER_NAME)
    name = clip(name, 80) if isinstance(name, str) and name.strip() else ""
    if sender:
        return f"{name} (#{sender})" if name else f"#{sender}"
    return name


def notification(
    n: Notification, *, is_task: bool = False, reply: SignalReply | None = None, can_accept: bool = False
) -> Message:
    """One notification as a message; `reply` is the fetched reply text for reply/mention types.
    `can_accept`: the linked agent owns the signal, so the reply gets an Accept button."""
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
        sender = sender_of(data)
        if sender:
            title = f"Message from {sender}" if n.kind == "message" else f"{title} from {sender}"
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
            extra = [(k, v) for k, v in data.items() if k not in ("market", "symbol", SENDER_ID, SENDER_NAME)][:10]
            fields += [MessageField(clip(str(k), 60), clip(_value(v), FIELD_LIMIT)) for k, v in extra]
    when = _when(n.created_at)
    actions: list[Action] = []
    signal_id = positive_int(data, "signal_id")
    if signal_id and not is_task:
        actions += signal_actions(signal_id)
        footer += f" · signal {signal_id}"
        if reply is not None and can_accept and not reply.accepted:
            accept = {"signal_id": str(signal_id), "reply_id": str(reply.reply_id)}
            actions.append(Action("Accept", "accept", accept))
            footer += f" · reply {reply.reply_id}"
    actions.append(Action("Mute this kind", "notify", {"kind": kind, "mode": "off"}))
    return Message(
        title=title,
        body=clip(body, BODY_LIMIT),
        fields=tuple(fields[:20]),
        footer=f"{footer} · {when}" if when else footer,
        actions=tuple(actions),
    )


def no_signal(signal_id: int) -> str:
    """What /replies and /reply both say about a signal AI-Trader does not know."""
    return f"No signal {signal_id} on AI-Trader. Check the id: /feed finds signals."


def replies(signal_id: int, items: Sequence[SignalReply]) -> Message:
    if not items:
        # Upstream answers an unknown signal with an empty list too, so say both.
        return Message(
            title=f"Replies to signal {signal_id}",
            body=f"No replies yet, or {no_signal(signal_id)[0].lower()}{no_signal(signal_id)[1:]}",
        )
    shown = items[-20:]
    lines = [
        f"{'✅ ' if r.accepted else ''}reply {r.reply_id} · {clip(r.agent_name or str(r.agent_id), 60)}"
        f" ({_when(r.created_at)}):\n{clip(r.content, 600)}"
        for r in shown
    ]
    more = f"{len(items) - len(shown)} earlier replies not shown · " if len(items) > len(shown) else ""
    return Message(
        title=f"Replies to signal {signal_id}",
        body="\n\n".join(lines),
        footer=f"{more}{len(items)} replies",
        actions=(Action("Reply", "reply", {"signal_id": str(signal_id)}, kind="prompt", text_param="text"),),
    )
