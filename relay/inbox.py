"""The durable inbox: what the heartbeat handed us, stored before anything else.

The heartbeat marks messages read upstream in the same request, so its response is the only
copy. One Lua call per batch adds each new id to the agent's dedup set and the row to the agent's
inbox stream; a retried or overlapping persist (reconcile, two pollers) therefore adds nothing
twice. Tasks come back on every heartbeat while pending and are deduplicated by task id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from relay import parse
from relay.keys import SEEN_CAP, TASKS_CAP, Keys
from relay.models import Notification, Task
from relay.redis_values import stream_entries

# ARGV[1] = how many ids to keep (a value, not a key: KEYS name only keys, which Redis Cluster routes by);
# then id, row pairs.
_PERSIST = """
local window = tonumber(ARGV[1])
local inserted = 0
for i = 2, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'k', 'm', 'id', ARGV[i], 'n', ARGV[i + 1])
    inserted = inserted + 1
  end
end
local size = redis.call('ZCARD', KEYS[1])
if size > window then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - window - 1) end
redis.call('HINCRBY', KEYS[3], 'persisted', inserted)
redis.call('HINCRBY', KEYS[3], 'duplicates_skipped', (#ARGV - 1) / 2 - inserted)
return inserted
"""

# ARGV[1] = 1 when the poll listed every pending task (fewer than 10): then a known task that is
# absent has left `pending` and its dedup entry can go. ARGV[2] = now. ARGV[3] caps the hash: past
# it, the longest-known ids go first (an agent with thousands of pending tasks never lists them
# all). Then id, row pairs.
_PERSIST_TASKS = """
local complete = ARGV[1] == '1'
local present = {}
local inserted = 0
for i = 4, #ARGV, 2 do
  present[ARGV[i]] = true
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[2]) == 1 then
    redis.call('XADD', KEYS[2], '*', 'k', 't', 'id', ARGV[i], 'n', ARGV[i + 1])
    inserted = inserted + 1
  end
end
if complete then
  for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
    if not present[id] then redis.call('HDEL', KEYS[1], id) end
  end
end
local extra = redis.call('HLEN', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then
  local all = redis.call('HGETALL', KEYS[1])
  local ids = {}
  for i = 1, #all, 2 do
    if not present[all[i]] then table.insert(ids, {tonumber(all[i + 1]), all[i]}) end
  end
  table.sort(ids, function(a, b) return a[1] < b[1] end)
  for i = 1, math.min(extra, #ids) do redis.call('HDEL', KEYS[1], ids[i][2]) end
end
return inserted
"""

# After a heartbeat that handed out every unread row: the largest id stored so far, kept on the
# agent's record as the floor a later lost response cannot reach below (relay.recovery).
_SETTLE = """
local top = redis.call('ZRANGE', KEYS[1], -1, -1)
if top[1] and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSET', KEYS[2], 'settled_id', top[1]) end
return top[1]
"""

# Marks ids as seen without delivering them (baseline at link time).
_BASELINE = """
for i = 1, #ARGV do redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i]) end
return #ARGV
"""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    entry_id: str
    is_task: bool  # kept apart from the row's type: any agent can send a message typed "task"
    notification: Notification


class Inbox:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys
        self._persist = redis.register_script(_PERSIST)
        self._persist_tasks = redis.register_script(_PERSIST_TASKS)
        self._baseline = redis.register_script(_BASELINE)
        self._settle = redis.register_script(_SETTLE)

    async def persist(self, agent_id: int, notifications: Sequence[Notification]) -> int:
        """Stores rows not seen before; returns how many were new."""
        if not notifications:
            return 0
        args: list[str | int] = [SEEN_CAP]
        # Encode everything before the script runs: Redis does not roll back a half-run script.
        for n in sorted(notifications, key=lambda n: n.message_id):
            args += [n.message_id, parse.notification_to_json(n)]
        k = self._k
        return int(await self._persist(keys=[k.seen(agent_id), k.inbox(agent_id), k.stats()], args=args))

    async def persist_tasks(self, agent_id: int, tasks: Sequence[Task], *, complete: bool, now: float) -> int:
        if not tasks and not complete:
            return 0
        args: list[str | int | float] = ["1" if complete else "0", now, TASKS_CAP]
        for t in tasks:
            args += [t.task_id, parse.notification_to_json(parse.task_to_notification(t))]
        return int(await self._persist_tasks(keys=[self._k.tasks_seen(agent_id), self._k.inbox(agent_id)], args=args))

    async def baseline(self, agent_id: int, message_ids: Iterable[int]) -> None:
        ids = list(message_ids)
        if ids:
            await self._baseline(keys=[self._k.seen(agent_id)], args=ids)

    async def unseen(self, agent_id: int, message_ids: Sequence[int]) -> list[int]:
        if not message_ids:
            return []
        scores = await self._r.zmscore(self._k.seen(agent_id), [str(m) for m in message_ids])
        return [m for m, s in zip(message_ids, scores, strict=True) if s is None]

    async def entries(self, agent_id: int, count: int = 500) -> list[InboxEntry]:
        """Inbox entries awaiting fan-out, in stream order."""
        raw = await self._r.xrange(self._k.inbox(agent_id), count=count)
        out = []
        for entry_id, fields in stream_entries(raw):
            n = parse.notification(json.loads(fields["n"]), agent_id)
            if n is not None:
                out.append(InboxEntry(entry_id, fields.get("k") == "t", n))
        return out

    async def settle(self, agent_id: int) -> None:
        """Record that everything unread upstream until now has been handed to us and stored."""
        await self._settle(keys=[self._k.seen(agent_id), self._k.agent(agent_id)])

    async def settled_id(self, agent_id: int) -> int | None:
        raw = await self._r.hget(self._k.agent(agent_id), "settled_id")
        return int(raw) if raw else None

    async def backlog(self, agent_id: int) -> int:
        """Entries persisted and not yet fanned out."""
        return int(await self._r.xlen(self._k.inbox(agent_id)))

    async def mark_for_reconcile(self, agent_id: int) -> None:
        await self._r.sadd(self._k.needs_reconcile(), agent_id)

    async def reconciled(self, agent_id: int) -> None:
        await self._r.srem(self._k.needs_reconcile(), agent_id)

    async def needs_reconcile(self, agent_id: int) -> bool:
        return bool(await self._r.sismember(self._k.needs_reconcile(), str(agent_id)))
