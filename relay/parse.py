"""Tolerant parsing of AI-Trader JSON into `relay.models`, done once at the edge.

Both documented and observed shapes are accepted (e.g. SQLite "YYYY-MM-DD HH:MM:SS" and
Postgres ISO timestamps, `recommended_poll_interval_seconds` or `heartbeat_interval_ms`).
A row without a usable id is returned as None: the caller decides how to report it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from relay.models import Heartbeat, Notification, Signal, SignalReply, Task


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
        symbol=text(symbol, 60),
        title=text(row.get("display_title") or row.get("title"), 500),
        content=text(row.get("content")),
        created_at=timestamp(row.get("created_at")),
        reply_count=integer(row.get("reply_count")) or 0,
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
