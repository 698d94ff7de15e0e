"""The simulated AI-Trader state: agents, inbox messages, tasks, and the request log.

Pure Python with no I/O, deterministic for a given seed and clock. Signals, replies and
follows live in `social.SocialMixin`; feed-style read views in `feed.FeedMixin`.
"""

from __future__ import annotations

import base64
import copy
import heapq
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from aitrader_sim.feed import FeedMixin
from aitrader_sim.market import MarketMixin
from aitrader_sim.ratelimit import ContentRateLimiter
from aitrader_sim.records import (
    CATEGORY_TYPES,
    DISCUSSION_TYPES,
    STRATEGY_TYPES,
    Agent,
    ApiError,
    Faults,
    Message,
    Reply,
    RequestRecord,
    Signal,
    Subscription,
    Task,
)
from aitrader_sim.social import SocialMixin
from aitrader_sim.timefmt import TimestampStyle, db_time, iso_z

HEARTBEAT_MESSAGE_LIMIT = 50
HEARTBEAT_TASK_LIMIT = 10


def newest_first(rows_desc: Iterable[Message], limit: int, monotonic: bool) -> list[Message]:
    """`ORDER BY created_at DESC LIMIT n` the way SQLite answered it on the real server.

    `rows_desc` must yield rows by descending id. SQLite returns rows that share a
    `created_at` in ascending id order, and the cut keeps the lowest ids of the boundary
    second (docs/upstream.md §3), so the sort key is (created_at DESC, id ASC). When created_at never
    decreases with id we only need to read back to the end of the boundary second.
    """
    if limit <= 0:
        return []
    if not monotonic:
        return _desc_order(list(rows_desc))[:limit]
    picked: list[Message] = []
    for row in rows_desc:
        if len(picked) >= limit and row.created_at != picked[-1].created_at:
            break
        picked.append(row)
    return _desc_order(picked)[:limit]


def _desc_order(rows: list[Message]) -> list[Message]:
    # Both timestamp forms are fixed-width, so text order is time order; the sort is
    # stable even with reverse=True, which keeps ascending ids inside one second.
    rows.sort(key=lambda m: m.id)
    rows.sort(key=lambda m: m.created_at, reverse=True)
    return rows


class World(SocialMixin, FeedMixin, MarketMixin):
    """Everything the fake server knows. Methods raise `ApiError` where the server answers 4xx."""

    def __init__(
        self,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        timestamp_style: TimestampStyle = "sqlite",
        poll_interval_seconds: int = 30,
        signal_id_start: int = 1001,
        max_request_log: int = 100_000,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.timestamp_style: TimestampStyle = timestamp_style
        self.recommended_poll_interval_seconds = poll_interval_seconds
        self.faults = Faults()

        self.agents: dict[int, Agent] = {}
        self._agent_by_token: dict[str, int] = {}
        self._agent_by_name: dict[str, int] = {}
        self.agent_ids_by_lower_name: dict[str, list[int]] = {}  # @mention lookup ignores case
        self.messages: dict[int, Message] = {}
        self._inbox: dict[int, dict[int, Message]] = {}
        self._unread: dict[int, dict[int, Message]] = {}
        self._inbox_monotonic: dict[int, bool] = {}
        self.tasks: dict[int, Task] = {}
        self._tasks_by_agent: dict[int, list[Task]] = {}
        self._next_agent_id = 1
        self._next_message_id = 1
        self._next_task_id = 1

        # Social state, used by SocialMixin and FeedMixin. signal_id comes from its own
        # sequence; starting it away from the row ids catches clients that mix the two up.
        self.signals: dict[int, Signal] = {}  # keyed by signal_id
        self.replies: dict[int, Reply] = {}
        self.replies_by_signal: dict[int, list[Reply]] = {}
        self.subscriptions: dict[tuple[int, int], Subscription] = {}
        self.rate_limiter = ContentRateLimiter(clock)
        self._next_signal_row_id = 1
        self._next_signal_id = signal_id_start
        self._next_reply_id = 1
        self.init_market()  # positions, prices, profit history, market intelligence

        # Oracles and statistics for tests and benchmarks.
        self._handed_out: dict[int, list[int]] = {}
        self.heartbeat_counts: Counter[int] = Counter()
        self.lost_heartbeats = 0
        # Heartbeats in flight per agent, and how many started while another one for the same
        # agent was still in flight (two pollers at once: what a relay's lease must prevent).
        self.heartbeats_in_flight: Counter[int] = Counter()
        self.overlapping_heartbeats = 0
        self.requests: deque[RequestRecord] = deque(maxlen=max_request_log)
        self.route_counts: Counter[str] = Counter()
        self.recent_paths: deque[str] = deque(maxlen=10_000)
        # Called with (agent_id, payload) for every row `push_message` inserts: upstream pushes
        # each one to the agent's WebSocket (aitrader_sim.notify).
        self.push_listeners: list[Callable[[int, dict[str, Any]], None]] = []

    # ---- time -------------------------------------------------------------------------

    def now_db(self) -> str:
        return db_time(self.clock(), self.timestamp_style)

    def now_iso(self) -> str:
        return iso_z(self.clock())

    # ---- agents -----------------------------------------------------------------------

    def _new_token(self) -> str:
        # secrets.token_urlsafe(32) shape: 43 url-safe characters, but seeded.
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).rstrip(b"=").decode()

    def create_agent(self, name: str, password: str | None = None) -> Agent:
        name = name.strip()
        if not name:
            raise ApiError(400, "Agent name is required")
        if name in self._agent_by_name:
            raise ApiError(400, "Agent name already exists")
        agent = Agent(
            id=self._next_agent_id,
            name=name,
            token=self._new_token(),
            password=password if password is not None else self._new_token()[:16],
        )
        self._next_agent_id += 1
        self.agents[agent.id] = agent
        self._agent_by_token[agent.token] = agent.id
        self._agent_by_name[name] = agent.id
        self.agent_ids_by_lower_name.setdefault(name.lower(), []).append(agent.id)
        return agent

    def agent(self, agent_id: int) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise ApiError(404, "Agent not found") from None

    def agent_by_token(self, token: str | None) -> Agent | None:
        if not token:
            return None
        agent_id = self._agent_by_token.get(token)
        return self.agents.get(agent_id) if agent_id is not None else None

    def agent_by_name(self, name: str) -> Agent | None:
        agent_id = self._agent_by_name.get(name)
        return self.agents[agent_id] if agent_id is not None else None

    def rotate_token(self, agent_id: int) -> str:
        """What login or wallet recovery does: a new token, and the old one stops working."""
        agent = self.agent(agent_id)
        del self._agent_by_token[agent.token]
        agent.token = self._new_token()
        self._agent_by_token[agent.token] = agent.id
        return agent.token

    def login(self, name: str, password: str) -> dict[str, Any]:
        agent = self.agent_by_name(name)
        if agent is None or agent.password != password:
            raise ApiError(401, "Invalid credentials")
        return {"token": self.rotate_token(agent.id), "agent_id": agent.id, "name": agent.name}

    # ---- inbox ------------------------------------------------------------------------

    def push_message(self, agent_id: int, type: str, content: str, data: dict[str, Any] | None = None) -> int:
        """Insert one agent_messages row. The recipient is not checked, as on SQLite."""
        message = Message(
            id=self._next_message_id,
            agent_id=agent_id,
            type=type,
            content=content,
            # The server stores `json.dumps(data) if data else None`, so {} comes back null.
            data=copy.deepcopy(data) if data else None,
            read=False,
            created_at=self.now_db(),
        )
        self._next_message_id += 1
        self.messages[message.id] = message
        inbox = self._inbox.setdefault(agent_id, {})
        if inbox:
            last = inbox[next(reversed(inbox))]
            if message.created_at < last.created_at:
                self._inbox_monotonic[agent_id] = False
        inbox[message.id] = message
        self._unread.setdefault(agent_id, {})[message.id] = message
        if self.push_listeners:
            # The push carries `data` as given ({} stays {}, unlike the stored row), no id, no time.
            payload = {"type": type, "content": content, "data": copy.deepcopy(data)}
            for listener in self.push_listeners:
                listener(agent_id, payload)
        return message.id

    def push_messages(
        self, agent_id: int, n: int, type: str = "price_alert", content_fmt: str = "message {i}"
    ) -> list[int]:
        """Push `n` messages; `{i}` in `content_fmt` becomes 0..n-1."""
        return [self.push_message(agent_id, type, content_fmt.replace("{i}", str(i))) for i in range(n)]

    def create_task(self, agent_id: int, type: str, input_data: dict[str, Any] | None = None) -> int:
        now = self.now_db()
        task = Task(
            id=self._next_task_id,
            agent_id=agent_id,
            type=type,
            input_data=copy.deepcopy(input_data) if input_data else None,
            created_at=now,
            updated_at=now,
        )
        self._next_task_id += 1
        self.tasks[task.id] = task
        self._tasks_by_agent.setdefault(agent_id, []).append(task)
        return task.id

    def heartbeat(self, agent_id: int) -> dict[str, Any]:
        """One POST /heartbeat: hand out and mark read up to 50 unread, list up to 10 tasks."""
        unread = self._unread.get(agent_id, {})
        unread_before = len(unread)
        batch = newest_first(
            (unread[i] for i in reversed(unread)),
            HEARTBEAT_MESSAGE_LIMIT,
            self._inbox_monotonic.get(agent_id, True),
        )
        for message in batch:
            message.read = True
            del unread[message.id]
        pending = [t for t in self._tasks_by_agent.get(agent_id, []) if t.status == "pending"]
        tasks = heapq.nsmallest(HEARTBEAT_TASK_LIMIT, pending, key=lambda t: (t.created_at, t.id))

        self._handed_out.setdefault(agent_id, []).extend(m.id for m in batch)
        self.heartbeat_counts[agent_id] += 1
        return {
            "agent_id": agent_id,
            "server_time": self.now_iso(),
            "recommended_poll_interval_seconds": self.recommended_poll_interval_seconds,
            # The rows were selected before the UPDATE, so they still say read = 0.
            "messages": [m.to_json(read=False) for m in batch],
            "tasks": [t.to_json() for t in tasks],
            "message_count": len(batch),
            "task_count": len(tasks),
            "unread_count": len(batch),
            "remaining_unread_count": max(0, unread_before - len(batch)),
            "remaining_task_count": max(0, len(pending) - len(tasks)),
            "has_more_messages": unread_before > len(batch),
            "has_more_tasks": len(pending) > len(tasks),
        }

    def recent(self, agent_id: int, category: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """GET /messages/recent: read-only, read rows included, capped at 50."""
        limit = max(1, min(limit, 50))
        inbox = self._inbox.get(agent_id, {})
        types = CATEGORY_TYPES.get(category or "")
        rows = (inbox[i] for i in reversed(inbox))
        if types is not None:
            rows = (m for m in rows if m.type in types)
        picked = newest_first(rows, limit, self._inbox_monotonic.get(agent_id, True))
        return [m.to_json() for m in picked]

    def unread_summary(self, agent_id: int) -> dict[str, Any]:
        counts = Counter(m.type for m in self._unread.get(agent_id, {}).values())
        discussion = sum(counts[t] for t in DISCUSSION_TYPES)
        strategy = sum(counts[t] for t in STRATEGY_TYPES)
        return {
            "discussion_unread": discussion,
            "strategy_unread": strategy,
            # Only the two categories count here; new_follower and custom types do not.
            "total_unread": discussion + strategy,
            "by_type": dict(counts),
        }

    def mark_read(self, agent_id: int, categories: list[str]) -> int:
        """What the web UI does when its Discussions/Strategies page opens."""
        types = {t for c in categories for t in CATEGORY_TYPES.get(c, ())}
        unread = self._unread.get(agent_id, {})
        hit = [m for m in unread.values() if m.type in types]
        for message in hit:
            message.read = True
            del unread[message.id]
        return len(hit)

    # ---- oracles ----------------------------------------------------------------------

    def handed_out(self, agent_id: int) -> list[int]:
        """Every message id any heartbeat returned for this agent, including lost responses."""
        return list(self._handed_out.get(agent_id, []))

    def all_message_ids(self, agent_id: int) -> list[int]:
        return list(self._inbox.get(agent_id, {}))

    def unread_ids(self, agent_id: int) -> list[int]:
        return list(self._unread.get(agent_id, {}))

    # ---- faults and the request log ---------------------------------------------------

    def should_lose_heartbeat(self) -> bool:
        """Decide, once per successful heartbeat, whether its response gets lost."""
        if self.faults.lose_next_heartbeats > 0:
            self.faults.lose_next_heartbeats -= 1
            return True
        p = self.faults.lose_heartbeat_responses
        return p > 0 and self.rng.random() < p

    def outage_active(self) -> str | None:
        faults = self.faults
        if faults.outage is not None and faults.outage_until is not None and self.clock() >= faults.outage_until:
            faults.outage = None
            faults.outage_until = None
        return faults.outage

    def record_request(self, method: str, path: str, route: str, agent_id: int | None) -> None:
        self.requests.append(RequestRecord(method, path, route, agent_id, self.clock()))
        self.route_counts[route] += 1
        self.recent_paths.append(path)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.route_counts),
            "heartbeats": {str(k): v for k, v in self.heartbeat_counts.items()},
            "lost_heartbeat_responses": self.lost_heartbeats,
            "overlapping_heartbeats": self.overlapping_heartbeats,
            "paths": list(self.recent_paths),
            "handed_out": {str(k): list(v) for k, v in self._handed_out.items()},
            "faults": self.faults.to_json(),
        }

    def reset_stats(self) -> None:
        """Clear counters and logs (not the handed-out oracle, which tests rely on)."""
        self.requests.clear()
        self.route_counts.clear()
        self.recent_paths.clear()
        self.heartbeat_counts.clear()
        self.lost_heartbeats = 0
