"""Read-only views over signals: the feed, one agent's signals, a reply thread, following.

Orders and filters copy the upstream SQL (docs/upstream.md §7), including its quirks: timestamps are
compared as text, and LIKE is case-insensitive for ASCII only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aitrader_sim.timefmt import db_time

if TYPE_CHECKING:
    from collections.abc import Callable

    from aitrader_sim.records import Agent, Reply, Signal, Subscription

_WEEK_SECONDS = 7 * 86400


def like_pattern(keyword: str) -> re.Pattern[str]:
    """SQLite `LIKE '%kw%'`: % and _ are wildcards, case folds for ASCII letters only."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in keyword)
    return re.compile(f".*{body}.*", re.IGNORECASE | re.ASCII | re.DOTALL)


class FeedMixin:
    signals: dict[int, Signal]
    replies_by_signal: dict[int, list[Reply]]
    subscriptions: dict[tuple[int, int], Subscription]
    agents: dict[int, Agent]
    clock: Callable[[], float]

    if TYPE_CHECKING:  # provided by SocialMixin

        def is_following(self, follower_id: int, leader_id: int) -> bool: ...

    def feed(
        self,
        viewer_id: int | None = None,
        message_type: str | None = None,
        market: str | None = None,
        keyword: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: str = "new",
    ) -> dict[str, Any]:
        """GET /api/signals/feed. `viewer_id` None means anonymous."""
        limit = max(1, min(limit, 100))
        offset = max(0, offset)
        pattern = like_pattern(keyword) if keyword else None
        rows = [s for s in self.signals.values() if s.agent_id in self.agents]  # JOIN agents
        if message_type:
            rows = [s for s in rows if s.message_type == message_type]
        if market:
            rows = [s for s in rows if s.market == market]
        if pattern is not None:
            rows = [
                s
                for s in rows
                if (s.title is not None and pattern.fullmatch(s.title))
                or (s.content is not None and pattern.fullmatch(s.content))
            ]
        if sort == "following" and viewer_id is not None:
            rows = [s for s in rows if s.agent_id == viewer_id or self.is_following(viewer_id, s.agent_id)]

        rows.sort(key=lambda s: s.id)
        if sort in ("active", "following") and (sort == "active" or viewer_id is not None):
            # COALESCE(MAX(reply.created_at), s.created_at) mixes the two text formats,
            # exactly as the SQL does.
            rows.sort(
                key=lambda s: (self._last_reply_at(s) or s.created_at, self._reply_count(s), s.created_at),
                reverse=True,
            )
        else:
            rows.sort(key=lambda s: s.created_at, reverse=True)

        page = rows[offset : offset + limit]
        items = []
        for sig in page:
            item = sig.to_json()
            thread = self.replies_by_signal.get(sig.signal_id, [])
            item["agent_name"] = self.agents[sig.agent_id].name
            item["reply_count"] = len(thread)
            item["last_reply_at"] = self._last_reply_at(sig)
            item["participant_count"] = len({r.agent_id for r in thread}) + 1
            item["is_following_author"] = viewer_id is not None and self.is_following(viewer_id, sig.agent_id)
            items.append(item)
        return {
            "signals": items,
            "total": len(rows),
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(items) < len(rows),
        }

    def _last_reply_at(self, sig: Signal) -> str | None:
        thread = self.replies_by_signal.get(sig.signal_id)
        return max(r.created_at for r in thread) if thread else None

    def _reply_count(self, sig: Signal) -> int:
        return len(self.replies_by_signal.get(sig.signal_id, []))

    def agent_signals(self, agent_id: int, message_type: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """GET /api/signals/{agent_id}: raw rows, newest first. `limit` is not clamped, and
        a negative one means no limit, as SQLite reads it."""
        rows = [s for s in self.signals.values() if s.agent_id == agent_id]
        if message_type:
            rows = [s for s in rows if s.message_type == message_type]
        rows.sort(key=lambda s: s.id)
        rows.sort(key=lambda s: s.created_at, reverse=True)
        if limit >= 0:
            rows = rows[:limit]
        return [s.to_json() for s in rows]

    def list_replies(self, signal_id: int) -> list[dict[str, Any]]:
        """GET /api/signals/{signal_id}/replies: every reply, oldest first; [] if unknown."""
        thread = [r for r in self.replies_by_signal.get(signal_id, []) if r.agent_id in self.agents]
        thread.sort(key=lambda r: (r.created_at, r.id))
        return [
            {
                "id": r.id,
                "signal_id": r.signal_id,
                "agent_id": r.agent_id,
                "content": r.content,
                "accepted": int(r.accepted),
                "created_at": r.created_at,
                "agent_name": self.agents[r.agent_id].name,
            }
            for r in thread
        ]

    def following(self, follower_id: int, limit: int = 500, offset: int = 0) -> dict[str, Any]:
        """GET /api/signals/following (key `following`, not `subscriptions`)."""
        limit = max(1, min(limit, 500))
        offset = max(0, offset)
        week_ago = db_time(self.clock() - _WEEK_SECONDS, "sqlite")
        subs = [
            s
            for s in self.subscriptions.values()
            if s.follower_id == follower_id and s.active and s.leader_id in self.agents
        ]
        entries: list[dict[str, Any]] = []
        for sub in subs:
            theirs = [s for s in self.signals.values() if s.agent_id == sub.leader_id]
            latest = {t: _latest(theirs, t) for t in ("strategy", "discussion")}
            entries.append(
                {
                    "leader_id": sub.leader_id,
                    "leader_name": self.agents[sub.leader_id].name,
                    "subscribed_at": sub.created_at,
                    "follower_count": sum(
                        1 for x in self.subscriptions.values() if x.leader_id == sub.leader_id and x.active
                    ),
                    "recent_trade_count_7d": _count_since(theirs, "operation", week_ago),
                    "recent_strategy_count_7d": _count_since(theirs, "strategy", week_ago),
                    "recent_discussion_count_7d": _count_since(theirs, "discussion", week_ago),
                    "recent_activity_at": max((s.created_at for s in theirs), default=None),
                    "latest_strategy_signal_id": latest["strategy"].signal_id if latest["strategy"] else None,
                    "latest_strategy_title": latest["strategy"].title if latest["strategy"] else None,
                    "latest_discussion_signal_id": latest["discussion"].signal_id if latest["discussion"] else None,
                    "latest_discussion_title": latest["discussion"].title if latest["discussion"] else None,
                }
            )
        entries.sort(key=lambda e: e["recent_activity_at"] or e["subscribed_at"], reverse=True)
        page = entries[offset : offset + limit]
        return {
            "following": page,
            "total": len(entries),
            "limit": limit,
            "offset": offset,
            "has_more": offset + len(page) < len(entries),
        }


def _latest(signals: list[Signal], message_type: str) -> Signal | None:
    of_type = [s for s in signals if s.message_type == message_type]
    return max(of_type, key=lambda s: (s.created_at, s.id), default=None)


def _count_since(signals: list[Signal], message_type: str, since: str) -> int:
    return sum(1 for s in signals if s.message_type == message_type and s.created_at >= since)
