"""Values that cross a module boundary: chats, users, commands, replies, notifications.

Frozen, slotted dataclasses with no I/O. Upstream JSON is parsed into these once, in
`relay.aitrader`; adapters build `ChatRef`, `UserRef` and `Command` from platform events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class ChatRef:
    """The only way the core names a chat. `platform` is the adapter's label."""

    platform: str
    chat_id: str
    thread_id: str | None = None

    @property
    def key(self) -> str:
        """A stable string for Redis keys; the thread is part of it (a forum topic is its own chat)."""
        return f"{self.platform}:{self.chat_id}:{self.thread_id or ''}"

    @classmethod
    def from_key(cls, key: str) -> ChatRef:
        platform, chat_id, thread_id = key.split(":", 2)
        return cls(platform, chat_id, thread_id or None)


@dataclass(frozen=True, slots=True)
class UserRef:
    """Who sent a command. The adapter decides `is_chat_admin` from platform permissions."""

    platform: str
    user_id: str
    display: str = ""
    is_chat_admin: bool = False

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class Param:
    """One command parameter. `rest` takes the remainder of the line (free text)."""

    name: str
    description: str
    required: bool = True
    rest: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command as declared once in `relay.commands`; adapters register from these."""

    name: str
    summary: str
    params: tuple[Param, ...] = ()
    admin_in_groups: bool = False
    private_only: bool = False
    hidden: bool = False  # not in /help or a platform's command menu (the operators' /admin)

    @property
    def usage(self) -> str:
        parts = [f"/{self.name}"]
        for p in self.params:
            label = f"{p.name}…" if p.rest else p.name
            if p.choices:
                label = "|".join(p.choices)
            parts.append(f"<{label}>" if p.required else f"[{label}]")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Command:
    """What an adapter hands the core: a command name, its named raw arguments, and who/where.

    Arguments are raw strings; the router validates them. Telegram and the console split the
    typed line with `relay.router.parse_words`; Discord passes its options by name.
    """

    name: str
    args: Mapping[str, str]
    chat: ChatRef
    user: UserRef
    is_private: bool
    # The user's language as their platform reports it (Telegram `language_code`, Discord's
    # interaction locale), raw; "" when unknown (the console).
    locale: str = ""
    # The language the reply is written in ("en", "zh"), decided by the router from the chat's
    # `/language` setting and `locale`; handlers read it, adapters leave it empty.
    language: str = ""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One choice offered while a user types an argument (Discord autocomplete)."""

    label: str  # what the user sees, in their language
    value: str  # what the argument receives


ActionKind = Literal["command", "prompt"]


@dataclass(frozen=True, slots=True)
class Action:
    """A button under a message. Pressing it runs `command` with `args` as the presser.

    kind "prompt" means the adapter must first ask the user for free text (Telegram ForceReply,
    Discord modal) and pass it as the last argument named `text_param`.
    """

    label: str
    command: str
    args: Mapping[str, str] = field(default_factory=dict)
    kind: ActionKind = "command"
    text_param: str = ""
    replace: bool = False  # the command's reply replaces the message carrying the button (paging)


@dataclass(frozen=True, slots=True)
class MessageField:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Image:
    """A picture attached to a message: encoded bytes (PNG) and the file name platforms show.

    The message's text is the picture's caption. Platforms cap captions (Telegram: 1024
    characters), so an adapter puts what fits beside the picture and sends the rest after it;
    a text-only platform shows the caption and where the picture went."""

    data: bytes = field(repr=False)
    filename: str
    mime: str = "image/png"


@dataclass(frozen=True, slots=True)
class Message:
    """Platform-neutral rendered message. Every string is plain text, never markup:
    adapters escape it for their platform."""

    title: str = ""
    body: str = ""
    fields: tuple[MessageField, ...] = ()
    link: str = ""
    footer: str = ""
    actions: tuple[Action, ...] = ()
    image: Image | None = None

    def to_json(self) -> str:
        # Built by hand, not with dataclasses.asdict: asdict deep-copies through every field and
        # was two thirds of this call, once per queued delivery (py-spy, issue 11). Same shape.
        d: dict[str, Any] = {
            "title": self.title,
            "body": self.body,
            "fields": [{"name": f.name, "value": f.value} for f in self.fields],
            "link": self.link,
            "footer": self.footer,
            "actions": [
                {
                    "label": a.label,
                    "command": a.command,
                    "args": dict(a.args),
                    "kind": a.kind,
                    "text_param": a.text_param,
                    "replace": a.replace,
                }
                for a in self.actions
            ],
            "image": None,
        }
        if self.image is not None:
            # Queued messages are JSON in Redis: the picture travels as base64.
            d["image"] = {
                "data": base64.b64encode(self.image.data).decode(),
                "filename": self.image.filename,
                "mime": self.image.mime,
            }
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Message:
        d = json.loads(raw)
        return cls(
            title=d.get("title", ""),
            body=d.get("body", ""),
            fields=tuple(MessageField(f["name"], f["value"]) for f in d.get("fields", ())),
            link=d.get("link", ""),
            footer=d.get("footer", ""),
            actions=tuple(
                Action(
                    a["label"],
                    a["command"],
                    dict(a.get("args") or {}),
                    a.get("kind", "command"),
                    a.get("text_param", ""),
                    bool(a.get("replace", False)),
                )
                for a in d.get("actions", ())
            ),
            image=_image(d.get("image")),
        )

    def plain_text(self) -> str:
        """The message as plain lines, for consoles and logs."""
        lines = [s for s in (self.title, self.body) if s]
        lines += [f"{f.name}: {f.value}" for f in self.fields]
        lines += [s for s in (self.link, self.footer) if s]
        return "\n".join(lines)


def _image(raw: Any) -> Image | None:
    if not isinstance(raw, dict):
        return None
    return Image(base64.b64decode(raw["data"]), str(raw["filename"]), str(raw.get("mime") or "image/png"))


@dataclass(frozen=True, slots=True)
class Reply:
    """What `dispatch` returns. `private`: Discord ephemeral, or Telegram only in a private chat.
    `delete_command`: the command message carried a secret and should be deleted if possible."""

    messages: tuple[Message, ...]
    private: bool = False
    delete_command: bool = False

    @classmethod
    def text(cls, text: str, *, private: bool = False, delete_command: bool = False) -> Reply:
        return cls((Message(body=text),), private=private, delete_command=delete_command)


# --- upstream (AI-Trader) values -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notification:
    """One row of an agent's inbox, from the heartbeat or `messages/recent`.

    `kind` stays the raw upstream type: anyone can post any type, so unknown ones are kept."""

    agent_id: int
    message_id: int
    kind: str
    content: str
    data: Mapping[str, Any]
    created_at: datetime | None
    read: bool | None = None  # only `messages/recent` tells; the heartbeat always says 0


@dataclass(frozen=True, slots=True)
class Task:
    agent_id: int
    task_id: int
    type: str
    status: str
    input: Mapping[str, Any]
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    notifications: tuple[Notification, ...]
    tasks: tuple[Task, ...]
    has_more_messages: bool
    remaining_unread: int
    remaining_tasks: int
    poll_interval_seconds: float | None
    unparsable: int = 0  # rows without a usable id: counted and logged, never silently dropped


@dataclass(frozen=True, slots=True)
class Agent:
    """`agents/me` without its `token` field, which never leaves the client."""

    agent_id: int
    name: str
    points: float | None = None
    cash: float | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """One row of the `signals` table. Trade fields are set for operations, `symbols` and `tags`
    for strategies; None (or empty) where upstream stored nothing. `reply_count` is None where
    the response does not carry it (`GET /api/signals/{agent_id}`): unknown, not zero."""

    signal_id: int
    agent_id: int
    agent_name: str
    message_type: str
    market: str
    symbol: str
    title: str
    content: str
    created_at: datetime | None
    reply_count: int | None = None
    side: str = ""
    entry_price: float | None = None
    exit_price: float | None = None
    quantity: float | None = None
    pnl: float | None = None
    executed_at: datetime | None = None
    token_id: str = ""
    outcome: str = ""
    symbols: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedPage:
    signals: tuple[Signal, ...]
    total: int
    offset: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class SignalReply:
    reply_id: int
    signal_id: int
    agent_id: int
    agent_name: str
    content: str
    accepted: bool
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Followed:
    leader_id: int
    leader_name: str


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """`GET /api/agents/{id}/summary`: the one lookup that says whether an agent exists."""

    agent_id: int
    name: str
    cash: float | None = None
    position_count: int | None = None
    recent_activity_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. `quantity` is signed upstream (a short is negative); `leader_id` is set
    when the position was copied from a followed trader (`source: "copied:<id>"`)."""

    symbol: str
    market: str
    side: str
    quantity: float | None
    entry_price: float | None
    current_price: float | None
    pnl: float | None
    leader_id: int | None = None
    token_id: str = ""
    outcome: str = ""
    title: str = ""  # Polymarket's display title
    opened_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Portfolio:
    positions: tuple[Position, ...]
    cash: float | None
    agent_name: str = ""


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    market: str
    price: float
    token_id: str = ""
    outcome: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class ProfitPoint:
    at: datetime | None
    profit: float
    percent: float | None = None


@dataclass(frozen=True, slots=True)
class Ranked:
    """One row of the leaderboard (`GET /api/profit/history`), with its profit history."""

    agent_id: int
    name: str
    profit: float | None
    percent: float | None
    trade_count: int | None
    history: tuple[ProfitPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class Trend:
    symbol: str
    market: str
    holders: int | None
    price: float | None
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class TradeOrder:
    """What `/trade` asks AI-Trader to publish (`POST /api/signals/realtime`)."""

    action: str  # buy, sell, short, cover
    symbol: str
    quantity: float
    market: str
    price: float
    token_id: str = ""
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class TradeResult:
    signal_id: int | None
    symbol: str
    market: str
    price: float | None
    follower_count: int | None
    points: int | None
