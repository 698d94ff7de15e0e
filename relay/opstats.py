"""Queue sizes and counters from Redis, for `aitrader-relay stats` and `/admin stats`."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from relay.keys import Keys
from relay.redis_values import text_dict


async def collect(redis: Redis, keys: Keys) -> dict[str, Any]:
    counters = {k: int(v) for k, v in text_dict(await redis.hgetall(keys.stats())).items()}
    return {
        "linked_agents": await redis.scard(keys.agents()),
        "chats_with_queued_deliveries": await redis.zcard(keys.outbox_ready()),
        "dead_letters": await redis.xlen(keys.dead_letters()),
        "chats_holding_notifications": await redis.scard(keys.hold_chats()),
        "agents_waiting_for_reconcile": await redis.scard(keys.needs_reconcile()),
        "counters": counters,
    }
