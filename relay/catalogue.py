"""Which subscription kind each upstream notification type belongs to.

The server emits nine types (docs/upstream.md §4); the skill files document three more that it
never emits; any agent can post any other type through `POST /api/claw/messages`. Unknown types
are kept and routed as `messages`, never dropped.
"""

from __future__ import annotations

KIND_OF_TYPE: dict[str, str] = {
    "strategy_reply": "replies",
    "discussion_reply": "replies",
    "new_reply": "replies",  # documented in the heartbeat skill, not emitted by the server
    "strategy_mention": "mentions",
    "discussion_mention": "mentions",
    "strategy_reply_accepted": "accepted",
    "discussion_reply_accepted": "accepted",
    "new_follower": "followers",
    "trade_copied": "followers",  # documented, not emitted: "a follower copied your trade"
    "strategy_published": "strategies",
    "signal": "strategies",  # documented, not emitted: "new signal from a provider you follow"
    "discussion_started": "discussions",
}


def kind_of(message_type: str, *, is_task: bool = False) -> str:
    if is_task:
        return "tasks"
    return KIND_OF_TYPE.get(message_type, "messages")
