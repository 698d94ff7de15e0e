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
from relay.i18n import ENGLISH, N_, Translator
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
    "new_follower": N_("New follower"),
    "strategy_published": N_("New strategy"),
    "discussion_started": N_("New discussion"),
    "strategy_reply": N_("New reply on a strategy"),
    "discussion_reply": N_("New reply on a discussion"),
    "strategy_mention": N_("You were mentioned in a strategy"),
    "discussion_mention": N_("You were mentioned in a discussion"),
    "strategy_reply_accepted": N_("Your reply was accepted"),
    "discussion_reply_accepted": N_("Your reply was accepted"),
    "new_reply": N_("New reply"),
    "trade_copied": N_("Trade copied"),
    "signal": N_("New signal"),
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


def signal_actions(signal_id: int, t: Translator = ENGLISH) -> tuple[Action, ...]:
    return (
        Action(t.gettext("Show replies"), "replies", {"signal_id": str(signal_id)}),
        Action(t.gettext("Reply"), "reply", {"signal_id": str(signal_id)}, kind="prompt", text_param="text"),
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
    n: Notification,
    *,
    is_task: bool = False,
    reply: SignalReply | None = None,
    can_accept: bool = False,
    t: Translator = ENGLISH,
) -> Message:
    """One notification as a message; `reply` is the fetched reply text for reply/mention types.
    `can_accept`: the linked agent owns the signal, so the reply gets an Accept button."""
    kind = kind_of(n.kind, is_task=is_task)
    data = n.data
    fields: list[MessageField] = []
    if is_task:
        title = t.gettext("New task")
        body = t.gettext("Task type: {type}", type=n.content)
        task_input = data.get("input")
        if task_input:
            fields.append(MessageField(t.gettext("Input"), clip(_value(task_input), 1000)))
        footer = t.gettext("task #{task_id}", task_id=n.message_id)
    else:
        known = _TITLES.get(n.kind)
        title = t.gettext(known) if known else t.gettext("Message ({kind})", kind=clip(n.kind, 60))
        sender = sender_of(data)
        if sender:
            title = (
                t.gettext("Message from {sender}", sender=sender)
                if n.kind == "message"
                else t.gettext("{title} from {sender}", title=title, sender=sender)
            )
        body = n.content
        footer = f"#{n.message_id}"
        for label, key in ((N_("Market"), "market"), (N_("Symbol"), "symbol")):
            if data.get(key):
                fields.append(MessageField(t.gettext(label), clip(_value(data[key]), FIELD_LIMIT)))
        if reply is not None:
            fields.append(
                MessageField(
                    t.gettext("Reply by {name}", name=clip(reply.agent_name or str(reply.agent_id), 80)),
                    clip(reply.content, 1000),
                )
            )
        if n.kind == "trade_copied" and isinstance(data.get("trade"), Mapping):
            trade = data["trade"]
            labels = {"symbol": N_("Symbol"), "side": N_("Side"), "quantity": N_("Quantity"), "price": N_("Price")}
            fields += [
                MessageField(t.gettext(labels[k]), clip(_value(trade[k]), FIELD_LIMIT))
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
        actions += signal_actions(signal_id, t)
        footer += " · " + t.gettext("signal {signal_id}", signal_id=signal_id)
        if reply is not None and can_accept and not reply.accepted:
            accept = {"signal_id": str(signal_id), "reply_id": str(reply.reply_id)}
            actions.append(Action(t.gettext("Accept"), "accept", accept))
            footer += " · " + t.gettext("reply {reply_id}", reply_id=reply.reply_id)
    actions.append(Action(t.gettext("Mute this kind"), "notify", {"kind": kind, "mode": "off"}))
    return Message(
        title=title,
        body=clip(body, BODY_LIMIT),
        fields=tuple(fields[:20]),
        footer=f"{footer} · {when}" if when else footer,
        actions=tuple(actions),
    )


def no_signal(signal_id: int, t: Translator = ENGLISH) -> str:
    """What /replies and /reply both say about a signal AI-Trader does not know."""
    return t.gettext("No signal {signal_id} on AI-Trader. Check the id: /feed finds signals.", signal_id=signal_id)


def replies(signal_id: int, items: Sequence[SignalReply], t: Translator = ENGLISH) -> Message:
    title = t.gettext("Replies to signal {signal_id}", signal_id=signal_id)
    if not items:
        # Upstream answers an unknown signal with an empty list too, so say both.
        return Message(
            title=title,
            body=t.gettext(
                "No replies yet, or no signal {signal_id} on AI-Trader. Check the id: /feed finds signals.",
                signal_id=signal_id,
            ),
        )
    shown = items[-20:]
    lines = [
        ("✅ " if r.accepted else "")
        + t.gettext(
            "reply {reply_id} · {name} ({when}):",
            reply_id=r.reply_id,
            name=clip(r.agent_name or str(r.agent_id), 60),
            when=_when(r.created_at),
        )
        + f"\n{clip(r.content, 600)}"
        for r in shown
    ]
    hidden = len(items) - len(shown)
    more = t.ngettext("{n} earlier reply not shown", "{n} earlier replies not shown", hidden) + " · " if hidden else ""
    return Message(
        title=title,
        body="\n\n".join(lines),
        footer=more + t.ngettext("{n} reply", "{n} replies", len(items)),
        actions=(Action(t.gettext("Reply"), "reply", {"signal_id": str(signal_id)}, kind="prompt", text_param="text"),),
    )
