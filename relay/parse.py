"""Tolerant parsing of AI-Trader JSON into `relay.models`, done once at the edge.

Both documented and observed shapes are accepted (e.g. SQLite "YYYY-MM-DD HH:MM:SS" and
Postgres ISO timestamps, `recommended_poll_interval_seconds` or `heartbeat_interval_ms`).
A row without a usable id is returned as None: the caller decides how to report it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from relay.models import (
    AgentSummary,
    Heartbeat,
    Notification,
    Portfolio,
    Position,
    ProfitPoint,
    Quote,
    Ranked,
    Signal,
    SignalReply,
    Task,
    TradeResult,
    Trend,
)


def timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def text(value: object, limit: int = 20_000) -> str:
    """Untrusted text as a bounded string; non-strings become their JSON-ish form."""
    if value is None:
        return ""
    out = value if isinstance(value, str) else str(value)
    return out[:limit]


def number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _mapping(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):  # some rows carry `data` still JSON-encoded
        try:
            decoded = json.loads(value)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


def notification(row: object, agent_id: int | None = None) -> Notification | None:
    if not isinstance(row, dict):
        return None
    message_id = integer(row.get("id"))
    owner = integer(row.get("agent_id"))
    if message_id is None:
        return None
    return Notification(
        agent_id=owner if owner is not None else (agent_id or 0),
        message_id=message_id,
        kind=text(row.get("type"), 100) or "message",
        content=text(row.get("content")),
        data=_mapping(row.get("data")),
        created_at=timestamp(row.get("created_at") or row.get("timestamp")),
        read=bool(row["read"]) if isinstance(row.get("read"), int | bool) else None,
    )


def task(row: object) -> Task | None:
    if not isinstance(row, dict):
        return None
    task_id = integer(row.get("id"))
    if task_id is None:
        return None
    return Task(
        agent_id=integer(row.get("agent_id")) or 0,
        task_id=task_id,
        type=text(row.get("type"), 100),
        status=text(row.get("status"), 40) or "pending",
        input=_mapping(row.get("input_data")),
        created_at=timestamp(row.get("created_at")),
    )


def _list_field(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    return value if isinstance(value, list) else []


def heartbeat(body: dict[str, Any]) -> Heartbeat:
    rows = _list_field(body, "messages")
    tasks = _list_field(body, "tasks")
    interval = number(body.get("recommended_poll_interval_seconds"))
    if interval is None and number(body.get("heartbeat_interval_ms")) is not None:
        interval = float(body["heartbeat_interval_ms"]) / 1000.0
    notes = [notification(r) for r in rows]
    return Heartbeat(
        notifications=tuple(n for n in notes if n is not None),
        tasks=tuple(t for t in (task(r) for r in tasks) if t is not None),
        has_more_messages=bool(body.get("has_more_messages", False)),
        remaining_unread=integer(body.get("remaining_unread_count")) or 0,
        remaining_tasks=integer(body.get("remaining_task_count")) or 0,
        poll_interval_seconds=interval,
        unparsable=len(notes) - sum(1 for n in notes if n is not None),
    )


def signal(row: object) -> Signal | None:
    if not isinstance(row, dict):
        return None
    signal_id = integer(row.get("signal_id", row.get("id")))
    if signal_id is None:
        return None
    symbol = row.get("symbol")
    if not symbol and isinstance(row.get("symbols"), list) and row["symbols"]:
        symbol = row["symbols"][0]
    return Signal(
        signal_id=signal_id,
        agent_id=integer(row.get("agent_id")) or 0,
        agent_name=text(row.get("agent_name"), 200),
        message_type=text(row.get("message_type"), 40),
        market=text(row.get("market"), 60),
        symbol=text(symbol, 200),
        title=text(row.get("display_title") or row.get("title"), 500),
        content=text(row.get("content")),
        created_at=timestamp(row.get("created_at")),
        reply_count=integer(row.get("reply_count")),
        side=text(row.get("side"), 20).lower(),
        entry_price=number(row.get("entry_price")),
        exit_price=number(row.get("exit_price")),
        quantity=number(row.get("quantity")),
        pnl=number(row.get("pnl")),
        executed_at=timestamp(row.get("executed_at")),
        token_id=text(row.get("token_id"), 100),
        outcome=text(row.get("outcome"), 100),
        symbols=words(row.get("symbols")),
        tags=words(row.get("tags")),
    )


def words(value: object, limit: int = 20) -> tuple[str, ...]:
    """A list upstream splits from a comma string; tolerate the string itself too."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(t for t in (text(i, 60).strip() for i in items[:limit] if isinstance(i, str | int | float)) if t)


def summary(row: object) -> AgentSummary | None:
    if not isinstance(row, dict):
        return None
    agent_id = integer(row.get("agent_id"))
    if agent_id is None:
        return None
    return AgentSummary(
        agent_id=agent_id,
        name=text(row.get("agent_name"), 200),
        cash=number(row.get("cash")),
        position_count=integer(row.get("position_count")),
        recent_activity_at=timestamp(row.get("recent_activity_at")),
    )


def leader_of(source: object) -> int | None:
    """ "copied:<leader_id>" -> leader_id; "self" (or anything else) -> None."""
    if isinstance(source, str) and source.startswith("copied:"):
        return integer(source[len("copied:") :])
    return None


def position(row: object) -> Position | None:
    if not isinstance(row, dict) or not row.get("symbol"):
        return None
    return Position(
        symbol=text(row.get("symbol"), 200),
        market=text(row.get("market"), 60),
        side=text(row.get("side"), 20).lower(),
        quantity=number(row.get("quantity")),
        entry_price=number(row.get("entry_price")),
        current_price=number(row.get("current_price")),
        pnl=number(row.get("pnl")),
        leader_id=leader_of(row.get("source")),
        token_id=text(row.get("token_id"), 100),
        outcome=text(row.get("outcome"), 100),
        title=text(row.get("display_title"), 300),
        opened_at=timestamp(row.get("opened_at")),
    )


def portfolio(body: dict[str, Any]) -> Portfolio | None:
    rows = body.get("positions")
    if not isinstance(rows, list):
        return None
    return Portfolio(
        positions=tuple(p for p in (position(r) for r in rows) if p is not None),
        cash=number(body.get("cash")),
        agent_name=text(body.get("agent_name"), 200),
    )


def quote(body: dict[str, Any]) -> Quote | None:
    price = number(body.get("price"))
    if price is None:
        return None
    return Quote(
        symbol=text(body.get("symbol"), 200),
        market=text(body.get("market"), 60),
        price=price,
        token_id=text(body.get("token_id"), 100),
        outcome=text(body.get("outcome"), 100),
        title=text(body.get("display_title"), 300),
    )


def ranked(row: object) -> Ranked | None:
    if not isinstance(row, dict):
        return None
    agent_id = integer(row.get("agent_id"))
    if agent_id is None:
        return None
    raw = row.get("history")
    history: list[Any] = raw if isinstance(raw, list) else []
    points = [
        ProfitPoint(timestamp(h.get("recorded_at")), float(h["profit"]), number(h.get("profit_percent")))
        for h in history
        if isinstance(h, dict) and number(h.get("profit")) is not None
    ]
    profit = number(row.get("current_profit", row.get("total_profit", row.get("profit"))))
    percent = number(row.get("current_profit_percent", row.get("total_profit_percent", row.get("profit_percent"))))
    return Ranked(
        agent_id=agent_id,
        name=text(row.get("name"), 200),
        profit=profit,
        percent=percent,
        trade_count=integer(row.get("trade_count")),
        history=tuple(points),
    )


def trend(row: object) -> Trend | None:
    if not isinstance(row, dict) or not row.get("symbol"):
        return None
    return Trend(
        symbol=text(row.get("symbol"), 200),
        market=text(row.get("market"), 60),
        holders=integer(row.get("holder_count")),
        price=number(row.get("current_price")),
        outcome=text(row.get("outcome"), 100),
    )


def trade_result(body: dict[str, Any]) -> TradeResult:
    return TradeResult(
        signal_id=integer(body.get("signal_id")),
        symbol=text(body.get("symbol"), 200),
        market=text(body.get("market"), 60),
        price=number(body.get("price")),
        follower_count=integer(body.get("follower_count")),
        points=integer(body.get("points_earned")),
    )


def reply(row: object) -> SignalReply | None:
    if not isinstance(row, dict):
        return None
    reply_id = integer(row.get("id"))
    if reply_id is None:
        return None
    return SignalReply(
        reply_id=reply_id,
        signal_id=integer(row.get("signal_id")) or 0,
        agent_id=integer(row.get("agent_id")) or 0,
        agent_name=text(row.get("agent_name"), 200),
        content=text(row.get("content")),
        accepted=bool(row.get("accepted")),
        created_at=timestamp(row.get("created_at")),
    )


def notification_to_json(n: Notification) -> str:
    return json.dumps(
        {
            "id": n.message_id,
            "agent_id": n.agent_id,
            "type": n.kind,
            "content": n.content,
            "data": dict(n.data),
            "created_at": n.created_at.isoformat() if n.created_at else None,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def task_to_notification(t: Task) -> Notification:
    """Tasks are delivered through the same pipeline as messages, under kind `task`."""
    return Notification(
        t.agent_id, t.task_id, "task", t.type, {"task_id": t.task_id, "input": dict(t.input)}, t.created_at
    )
