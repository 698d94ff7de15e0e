"""Signals, replies, accepts and follows, with the notifications the real server writes (docs/upstream.md §4).

`create_signal`, `add_reply`, `accept_reply` and `follow` are what tests call directly and
skip the rate limits; the `post_*` methods are what the HTTP routes call and enforce them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aitrader_sim.records import ApiError, Reply, Signal, Subscription

if TYPE_CHECKING:
    from aitrader_sim.ratelimit import ContentRateLimiter
    from aitrader_sim.records import Agent

MENTION_PATTERN = re.compile(r"@([A-Za-z0-9_\-]{2,64})")
MESSAGE_TYPES = ("operation", "strategy", "discussion")
STRATEGY_POINTS, DISCUSSION_POINTS, OPERATION_POINTS = 10, 4, 10
REPLY_POINTS, ACCEPT_POINTS = 2, 3


class SocialMixin:
    # State and helpers that World provides.
    signals: dict[int, Signal]
    replies: dict[int, Reply]
    replies_by_signal: dict[int, list[Reply]]
    subscriptions: dict[tuple[int, int], Subscription]
    rate_limiter: ContentRateLimiter
    clock: Callable[[], float]
    agents: dict[int, Agent]
    agent_ids_by_lower_name: dict[str, list[int]]
    _next_signal_row_id: int
    _next_signal_id: int
    _next_reply_id: int

    if TYPE_CHECKING:  # provided by World

        def agent(self, agent_id: int) -> Agent: ...
        def push_message(self, agent_id: int, type: str, content: str, data: dict[str, Any] | None = None) -> int: ...
        def now_db(self) -> str: ...
        def now_iso(self) -> str: ...

    # ---- signals ----------------------------------------------------------------------

    def signal(self, signal_id: int) -> Signal | None:
        return self.signals.get(signal_id)

    def create_signal(
        self,
        agent_id: int,
        message_type: str,
        market: str,
        title: str | None,
        content: str | None,
        symbol: str | None = None,
        *,
        symbols: str | None = None,
        tags: str | None = None,
        side: str | None = None,
        price: float | None = None,
        quantity: float | None = None,
    ) -> int:
        """Publish a signal and notify followers like the server. Returns its signal_id.

        Strategies have no `symbol` column upstream, so a symbol given for one is stored
        in `symbols` instead. Operations (trades) notify nobody, as upstream.
        """
        if message_type not in MESSAGE_TYPES:
            raise ValueError(f"message_type must be one of {MESSAGE_TYPES}")
        author = self.agent(agent_id)
        if message_type == "strategy" and symbol and not symbols:
            symbols, symbol = symbol, None
        elif message_type == "strategy":
            symbol = None
        now = self.clock()
        sig = Signal(
            id=self._next_signal_row_id,
            signal_id=self._next_signal_id,
            agent_id=agent_id,
            message_type=message_type,
            market=market,
            signal_type="realtime" if message_type == "operation" else message_type,
            title=title,
            content=content,
            created_at=self.now_iso(),
            timestamp=int(now),
            symbol=symbol,
            symbols=symbols,
            tags=tags,
            side=side,
            entry_price=price,
            quantity=quantity,
            executed_at=self.now_iso()[:19] + "Z" if message_type == "operation" else None,
        )
        self._next_signal_row_id += 1
        self._next_signal_id += 1
        self.signals[sig.signal_id] = sig
        author.points += {"strategy": STRATEGY_POINTS, "discussion": DISCUSSION_POINTS}.get(
            message_type, OPERATION_POINTS
        )
        if message_type != "operation":
            self._notify_followers(author, sig)
        return sig.signal_id

    def _notify_followers(self, author: Agent, sig: Signal) -> None:
        leader = author.name
        market_label = sig.market or "market"
        title_part = f'"{sig.title}"' if sig.title else None
        if sig.message_type == "strategy":
            kind = "strategy_published"
            if title_part:
                content = f"{leader} published strategy {title_part} in {market_label}"
            else:
                content = f"{leader} published a new strategy in {market_label}"
        else:
            kind = "discussion_started"
            if title_part:
                content = f"{leader} started discussion {title_part}" + (f" ({sig.symbol})" if sig.symbol else "")
            elif sig.symbol:
                content = f"{leader} started a discussion on {sig.symbol}"
            else:
                content = f"{leader} started a new discussion in {market_label}"
        payload = {
            "signal_id": sig.signal_id,
            "leader_id": author.id,
            "leader_name": leader,
            "message_type": sig.message_type,
            "market": sig.market,
            "title": sig.title,
            "symbol": sig.symbol,
        }
        for follower_id in self.followers_of(author.id):
            if follower_id != author.id:
                self.push_message(follower_id, kind, content, payload)

    def post_strategy(
        self,
        agent_id: int,
        market: str,
        title: str,
        content: str,
        symbols: str | None = None,
        tags: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/signals/strategy (no rate limit upstream)."""
        sid = self.create_signal(agent_id, "strategy", market, title, content, symbols=symbols, tags=tags)
        return {"success": True, "signal_id": sid, "points_earned": STRATEGY_POINTS}

    def post_discussion(
        self,
        agent_id: int,
        market: str,
        title: str,
        content: str,
        symbol: str | None = None,
        tags: str | None = None,
    ) -> dict[str, Any]:
        """POST /api/signals/discussion, with the discussion limits."""
        self.rate_limiter.enforce(
            agent_id,
            "discussion",
            f"{title}\n{content}",
            target_key=f"{market}:{symbol or ''}:{title.strip().lower()}",
        )
        sid = self.create_signal(agent_id, "discussion", market, title, content, symbol, tags=tags)
        return {"success": True, "signal_id": sid, "points_earned": DISCUSSION_POINTS}

    # ---- replies ----------------------------------------------------------------------

    def post_reply(self, agent_id: int, signal_id: int, content: str) -> dict[str, Any]:
        """POST /api/signals/reply. The limit is checked before the lookup, as upstream,
        so even a reply to an unknown signal starts the cooldown."""
        self.rate_limiter.enforce(agent_id, "reply", content, target_key=f"signal:{signal_id}")
        self.add_reply(signal_id, agent_id, content)
        return {"success": True, "points_earned": REPLY_POINTS}

    def add_reply(self, signal_id: int, agent_id: int, content: str) -> int:
        """Store a reply and send the reply and mention notices. Returns the reply id."""
        sig = self.signals.get(signal_id)
        if sig is None:
            raise ApiError(404, "Signal not found")
        replier = self.agent(agent_id)
        reply = Reply(self._next_reply_id, signal_id, agent_id, content, self.now_db())
        self._next_reply_id += 1
        self.replies[reply.id] = reply
        thread = self.replies_by_signal.setdefault(signal_id, [])
        thread.append(reply)
        replier.points += REPLY_POINTS

        author_id = sig.agent_id
        title = sig.title or sig.symbol or f"signal {sig.signal_id}"
        label = f'"{title}"' if sig.title else title
        is_strategy = sig.message_type == "strategy"
        reply_type = "strategy_reply" if is_strategy else "discussion_reply"
        mention_type = "strategy_mention" if is_strategy else "discussion_mention"
        # Deliberately no reply text and no reply_id: clients must fetch /replies (docs/upstream.md §4).
        payload = {
            "signal_id": sig.signal_id,
            "reply_author_id": agent_id,
            "reply_author_name": replier.name,
            "parent_message_type": sig.message_type,
            "market": sig.market,
            "symbol": sig.symbol,
            "title": title,
        }
        if author_id != agent_id:
            self.push_message(
                author_id, reply_type, f"{replier.name} replied to your {sig.message_type} {label}", payload
            )
        participants = {r.agent_id for r in thread} - {agent_id, author_id}
        for participant_id in sorted(participants):
            self.push_message(participant_id, reply_type, f"{replier.name} added a new reply in {label}", payload)

        mentioned = {name.lower() for name in MENTION_PATTERN.findall(content or "")}
        excluded = {agent_id, author_id, *participants}
        targets = sorted({i for name in mentioned for i in self.agent_ids_by_lower_name.get(name, [])})
        for target_id in targets:
            if target_id not in excluded:
                self.push_message(target_id, mention_type, f"{replier.name} mentioned you in {label}", payload)
        return reply.id

    def accept_reply(self, signal_id: int, reply_id: int, by_agent_id: int) -> dict[str, Any]:
        """POST /api/signals/{sid}/replies/{rid}/accept. Repeating it notifies again."""
        sig = self.signals.get(signal_id)
        reply = self.replies.get(reply_id)
        if sig is None or reply is None or reply.signal_id != signal_id:
            raise ApiError(404, "Reply not found")
        if sig.agent_id != by_agent_id:
            raise ApiError(403, "Only the original author can accept a reply")
        for other in self.replies_by_signal.get(signal_id, []):
            other.accepted = False
        reply.accepted = True
        sig.accepted_reply_id = reply_id

        points = 0
        if reply.agent_id != by_agent_id:
            accepter = self.agent(by_agent_id)
            points = ACCEPT_POINTS
            if reply.agent_id in self.agents:
                self.agents[reply.agent_id].points += points
            title = sig.title or sig.symbol or f"signal {signal_id}"
            self.push_message(
                reply.agent_id,
                "strategy_reply_accepted" if sig.message_type == "strategy" else "discussion_reply_accepted",
                f'{accepter.name} accepted your reply on "{title}"',
                {
                    "signal_id": signal_id,
                    "reply_id": reply_id,
                    "reply_author_id": reply.agent_id,
                    "accepted_by_id": by_agent_id,
                    "accepted_by_name": accepter.name,
                    "title": title,
                    "parent_message_type": sig.message_type,
                },
            )
        return {"success": True, "reply_id": reply_id, "points_earned": points}

    # ---- follows ----------------------------------------------------------------------

    def follow(self, follower_id: int, leader_id: int) -> dict[str, Any]:
        """POST /api/signals/follow. The leader's existence is not checked, as upstream."""
        if follower_id == leader_id:
            raise ApiError(400, "Cannot follow yourself")
        follower = self.agent(follower_id)
        sub = self.subscriptions.get((follower_id, leader_id))
        if sub is not None and sub.active:
            return {"message": "Already following"}  # no "success" key upstream either
        if sub is None:
            self.subscriptions[(follower_id, leader_id)] = Subscription(follower_id, leader_id, self.now_db())
        else:
            sub.active = True
            sub.created_at = self.now_db()
        self.push_message(
            leader_id,
            "new_follower",
            f"{follower.name} started following you",
            {"leader_id": leader_id, "follower_id": follower_id, "follower_name": follower.name},
        )
        return {"success": True, "message": "Following"}

    def unfollow(self, follower_id: int, leader_id: int) -> dict[str, Any]:
        sub = self.subscriptions.get((follower_id, leader_id))
        if sub is not None:
            sub.active = False
        return {"success": True}

    def followers_of(self, leader_id: int) -> list[int]:
        return [s.follower_id for s in self.subscriptions.values() if s.leader_id == leader_id and s.active]

    def is_following(self, follower_id: int, leader_id: int) -> bool:
        sub = self.subscriptions.get((follower_id, leader_id))
        return sub is not None and sub.active
