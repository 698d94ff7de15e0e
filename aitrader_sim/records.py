"""Rows of the simulated AI-Trader database, plus the fault switches and the request log.

Plain mutable dataclasses: the World owns them and is the only writer. Their `to_json`
methods give exactly the keys the real server's `SELECT *` rows carry.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

# Which message types each `category` of /messages/recent and mark-read covers (docs/upstream.md §4, §5).
DISCUSSION_TYPES = (
    "discussion_started",
    "discussion_reply",
    "discussion_mention",
    "discussion_reply_accepted",
)
STRATEGY_TYPES = (
    "strategy_published",
    "strategy_reply",
    "strategy_mention",
    "strategy_reply_accepted",
)
CATEGORY_TYPES: dict[str, tuple[str, ...]] = {
    "discussion": DISCUSSION_TYPES,
    "strategy": STRATEGY_TYPES,
}


class ApiError(Exception):
    """A handled error: the server answers `status` with `{"detail": detail}`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class Agent:
    id: int
    name: str
    token: str
    password: str
    wallet_address: str = ""
    points: int = 0
    cash: float = 100000.0
    reputation_score: int = 0

    def me_json(self) -> dict[str, Any]:
        # /agents/me really does include the token (docs/upstream.md §2).
        return {
            "id": self.id,
            "name": self.name,
            "token": self.token,
            "wallet_address": self.wallet_address,
            "points": self.points,
            "cash": self.cash,
            "reputation_score": self.reputation_score,
        }


@dataclass
class Message:
    id: int
    agent_id: int
    type: str
    content: str
    data: dict[str, Any] | None
    read: bool
    created_at: str

    def to_json(self, read: bool | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent_id": self.agent_id,
            "type": self.type,
            "content": self.content,
            "data": _copy(self.data),
            "read": int(self.read if read is None else read),
            "created_at": self.created_at,
        }


@dataclass
class Task:
    id: int
    agent_id: int
    type: str
    input_data: dict[str, Any] | None
    created_at: str
    updated_at: str
    status: str = "pending"
    result_data: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent_id": self.agent_id,
            "type": self.type,
            "status": self.status,
            "input_data": _copy(self.input_data),
            "result_data": _copy(self.result_data),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Signal:
    id: int
    signal_id: int
    agent_id: int
    message_type: str
    market: str
    signal_type: str
    title: str | None
    content: str | None
    created_at: str
    timestamp: int
    symbol: str | None = None
    symbols: str | None = None  # stored comma-separated, served as a list
    tags: str | None = None
    token_id: str | None = None
    outcome: str | None = None
    side: str | None = None
    entry_price: float | None = None
    exit_price: float | None = None
    quantity: float | None = None
    pnl: float | None = None
    executed_at: str | None = None
    accepted_reply_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        # The server splits the stored comma strings only when they are non-empty.
        for key in ("symbols", "tags"):
            if row[key]:
                row[key] = [part.strip() for part in row[key].split(",") if part.strip()]
        return row


@dataclass
class Reply:
    id: int
    signal_id: int
    agent_id: int
    content: str
    created_at: str
    accepted: bool = False


@dataclass
class Subscription:
    follower_id: int
    leader_id: int
    created_at: str
    active: bool = True


@dataclass
class RequestRecord:
    method: str
    path: str  # raw path including the query string
    route: str  # the matched route template, or "catch-all"
    agent_id: int | None
    time: float


@dataclass
class Faults:
    """Switches for misbehaviour. None of them ever touches /_sim/ routes."""

    lose_heartbeat_responses: float = 0.0  # probability per successful heartbeat
    lose_next_heartbeats: int = 0  # this many successful heartbeats lose their response
    lose_mode: Literal["cut", "hang"] = "cut"
    hang_seconds: float = 30.0
    outage: Literal["503", "timeout"] | None = None
    outage_until: float | None = None  # epoch (world clock); None = until cleared
    slow_seconds: float = 0.0
    # WebSocket pushes (aitrader_sim.notify): the probability that a push finds its socket dropped
    # instead (the push is lost, the row is not), and extra copies sent after each real push.
    ws_drop_probability: float = 0.0
    ws_flood: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update, checking names and value kinds; raises ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        for key, value in changes.items():
            if key == "lose_mode" and value not in ("cut", "hang"):
                raise ValueError("lose_mode must be 'cut' or 'hang'")
            if key == "outage" and value not in ("503", "timeout", None):
                raise ValueError("outage must be '503', 'timeout' or null")
            if key in ("lose_next_heartbeats", "ws_flood") and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{key} must be an integer")
            if key in ("lose_heartbeat_responses", "hang_seconds", "slow_seconds", "ws_drop_probability") and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"{key} must be a number")
            if (
                key == "outage_until"
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, (int, float)))
            ):
                raise ValueError("outage_until must be a number or null")
        for key, value in changes.items():
            setattr(self, key, value)


def _copy(value: dict[str, Any] | None) -> dict[str, Any] | None:
    # Callers may mutate what they get back; the stored row must not change with it.
    return copy.deepcopy(value) if value is not None else None
