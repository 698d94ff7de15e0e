"""Per-chat delivery queues on Redis streams, and the scripts that change them atomically.

One stream per chat (consumer group `senders`) keeps each chat's order and lets a rate-limited
chat wait without holding up others. A ready set says which chats have work and from when.
Enqueue acknowledges the inbox entry in the same script; ack records the delivery key so a
delivery that re-enters the pipeline is not sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from relay.keys import DEAD_CAP, DELIVERED_CAP, DELIVERED_TTL, Keys
from relay.models import ChatRef, Message
from relay.redis_values import read_streams, stream_entries, text, texts

GROUP = "senders"
BACKLOG_NOTICE = Message(
    title="Too many notifications for this chat",
    body=(
        "More were queued here than this chat can receive, so the oldest ones waiting were moved to "
        "the dead-letter list instead of being sent. /status shows how many; the operator can replay them."
    ),
)

# KEYS: inbox, ready, delivered, stats, dead stream, dead count, then one outbox per item.
# ARGV: inbox entry, now, per-chat cap (0: none), notice JSON, prefix, dead cap, then 4 per item.
# Past the cap, the oldest entry of that chat no sender has read yet is dead-lettered (never
# dropped silently), and the chat gets one notice an hour saying so.
_ENQUEUE = """
if ARGV[1] ~= '' and #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return -1 end
local now, cap, notice, prefix, dead_cap = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local n = 0
for i = 7, #KEYS do
  local b = 7 + (i - 7) * 4
  local chat = ARGV[b]
  if not redis.call('ZSCORE', KEYS[3], ARGV[b + 1]) then
    redis.call('XADD', KEYS[i], '*', 'key', ARGV[b + 1], 'chat', chat, 'm', ARGV[b + 2], 's', ARGV[b + 3], 't', now)
    redis.call('ZADD', KEYS[2], 'NX', now, chat)
    n = n + 1
    if cap > 0 and redis.call('XLEN', KEYS[i]) > cap then
      local start = '-'
      local pending = redis.pcall('XPENDING', KEYS[i], 'senders')
      if type(pending) == 'table' and not pending.err and tonumber(pending[1]) > 0 then start = '(' .. pending[3] end
      -- The oldest unread entry that is not the backlog notice itself (the notice must survive).
      local oldest, f = nil, {}
      for _, e in ipairs(redis.call('XRANGE', KEYS[i], start, '+', 'COUNT', 2)) do
        local fe = {}
        for j = 1, #e[2], 2 do fe[e[2][j]] = e[2][j + 1] end
        if string.sub(fe['key'] or '', 1, 8) ~= 'backlog:' then oldest, f = e, fe; break end
      end
      if oldest then
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', dead_cap, '*', 'chat', chat, 'key', f['key'] or '',
          'cause', 'backlog cap: more than ' .. cap .. ' deliveries queued for this chat', 'm', f['m'] or '', 't', now)
        redis.call('HINCRBY', KEYS[6], chat, 1)
        redis.call('HINCRBY', KEYS[4], 'dead', 1)
        redis.call('HINCRBY', KEYS[4], 'backlog_dead', 1)
        redis.call('XDEL', KEYS[i], oldest[1])
        if redis.call('SET', prefix .. ':backlog:' .. chat, now, 'NX', 'EX', 3600) then
          redis.call('XADD', KEYS[i], '*', 'key', 'backlog:' .. chat .. ':' .. now, 'chat', chat, 'm', notice, 's', '1', 't', now)
        end
      end
    end
  end
end
if ARGV[1] ~= '' then redis.call('XDEL', KEYS[1], ARGV[1]) end
redis.call('HINCRBY', KEYS[4], 'enqueued', n)
return n
"""

# Clears the chat's in-flight mark if it still names this delivery (its outcome is known now).
_CLEAR_IN_FLIGHT = """
local function clear_in_flight(hash, chat, key)
  if redis.call('HGET', hash, chat) == key then redis.call('HDEL', hash, chat) end
end
"""

# KEYS: outbox, delivered, stats, in-flight ; ARGV: entry id, delivery key, now, counter name,
# chat, max age of a delivered key, max delivered keys. The dedup set keeps the newest keys only:
# by age and by count, so a burst cannot grow it past the cap either.
_ACK = (
    _CLEAR_IN_FLIGHT
    + """
redis.call('XACK', KEYS[1], 'senders', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (tonumber(ARGV[3]) - tonumber(ARGV[6])))
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1) end
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
clear_in_flight(KEYS[4], ARGV[5], ARGV[2])
return 1
"""
)

# KEYS: outbox, dead stream, dead count, stats, in-flight ; ARGV: entry id, chat, key, cause, message, now, cap
_DEAD = (
    _CLEAR_IN_FLIGHT
    + """
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'chat', ARGV[2], 'key', ARGV[3], 'cause', ARGV[4], 'm', ARGV[5], 't', ARGV[6])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HINCRBY', KEYS[4], 'dead', 1)
redis.call('XACK', KEYS[1], 'senders', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
clear_in_flight(KEYS[5], ARGV[2], ARGV[3])
return 1
"""
)

# Ends a drain: forget the chat (and its stream, group included: the next drain recreates
# them) when its stream is empty, else keep it due at ARGV[2].
_FINISH = """
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# Moves every entry of a chat's stream to another chat's stream, in order (chat migration).
_MOVE = """
local moved = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = e[2]
  local fields = {}
  for i = 1, #f, 2 do
    if f[i] == 'chat' then table.insert(fields, 'chat'); table.insert(fields, ARGV[2])
    else table.insert(fields, f[i]); table.insert(fields, f[i + 1]) end
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  moved = moved + 1
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if moved > 0 then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2]) end
return moved
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for one chat, as it sits in the outbox."""

    entry_id: str
    chat: ChatRef
    key: str
    message_json: str
    silent: bool
    enqueued_at: float
    times_claimed: int = 1  # >1: an earlier sender may have sent it before dying

    @property
    def message(self) -> Message:
        return Message.from_json(self.message_json)


@dataclass(frozen=True, slots=True)
class Outgoing:
    chat: ChatRef
    key: str
    message: Message
    silent: bool = False
    kind: str = ""  # the notification kind (relay.catalogue), for quiet hours and digests (relay.holding)


class Outbox:
    def __init__(self, redis: Redis, keys: Keys, *, max_per_chat: int = 0) -> None:
        """`max_per_chat`: deliveries one chat's queue may hold before its oldest unread ones are
        dead-lettered (0: no cap)."""
        self._r = redis
        self._k = keys
        self._max_per_chat = max_per_chat
        self._enqueue = redis.register_script(_ENQUEUE)
        self._ack = redis.register_script(_ACK)
        self._dead = redis.register_script(_DEAD)
        self._finish = redis.register_script(_FINISH)
        self._move = redis.register_script(_MOVE)
        self._clear = redis.register_script(_CLEAR_IN_FLIGHT + "clear_in_flight(KEYS[1], ARGV[1], ARGV[2])")

    async def enqueue(self, items: Sequence[Outgoing], *, now: float, inbox: str = "", inbox_entry: str = "") -> int:
        """Adds deliveries (skipping keys already delivered) and, in the same script, removes
        the inbox entry they came from. Returns the number added, -1 if the entry was gone."""
        k = self._k
        keys = [inbox or k.inbox(0), k.outbox_ready(), k.delivered(), k.stats(), k.dead_letters(), k.chat_dead()]
        args: list[str | float] = [inbox_entry, now, self._max_per_chat, BACKLOG_NOTICE.to_json(), k.prefix, DEAD_CAP]
        for item in items:
            keys.append(k.outbox(item.chat.key))
            args += [item.chat.key, item.key, item.message.to_json(), "1" if item.silent else "0"]
        return int(await self._enqueue(keys=keys, args=args))

    async def ensure_group(self, chat: ChatRef) -> None:
        try:
            await self._r.xgroup_create(self._k.outbox(chat.key), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def take(self, chat: ChatRef, consumer: str, count: int) -> list[Delivery]:
        """Entries for this chat in order: first any left pending by a dead sender, then new ones.
        Call only while holding the chat's lease."""
        stream = self._k.outbox(chat.key)
        # Who read each pending entry last: another (dead) sender may have sent it already; an
        # entry this process read and did not send (it stopped at a retry-after) was not sent.
        owners = {
            text(p["message_id"]): text(p["consumer"])
            for p in await self._r.xpending_range(stream, GROUP, min="-", max="+", count=count)
        }
        out: list[Delivery] = []
        if owners:
            claimed = await self._r.xautoclaim(stream, GROUP, consumer, min_idle_time=0, start_id="0-0", count=count)
            entries = stream_entries(claimed[1] if claimed else None)
            out += [self._delivery(eid, f, 1 if owners.get(eid) == consumer else 2) for eid, f in entries]
        if len(out) < count:
            fresh = await self._r.xreadgroup(GROUP, consumer, {stream: ">"}, count=count - len(out))
            for _, rows in read_streams(fresh):
                out += [self._delivery(eid, f, 1) for eid, f in rows]
        return out

    def _delivery(self, entry_id: str, f: dict[str, str], times: int) -> Delivery:
        return Delivery(
            entry_id=entry_id,
            chat=ChatRef.from_key(f["chat"]),
            key=f["key"],
            message_json=f["m"],
            silent=f.get("s") == "1",
            enqueued_at=float(f.get("t", "0")),
            times_claimed=times,
        )

    async def is_delivered(self, key: str) -> bool:
        return await self._r.zscore(self._k.delivered(), key) is not None

    async def ack(self, d: Delivery, *, now: float, counter: str = "delivered", cap: int = DELIVERED_CAP) -> None:
        k = self._k
        await self._ack(
            keys=[k.outbox(d.chat.key), k.delivered(), k.stats(), k.in_flight()],
            args=[d.entry_id, d.key, now, counter, d.chat.key, DELIVERED_TTL, cap],
        )

    async def dead_letter(self, d: Delivery, cause: str, *, now: float) -> None:
        k = self._k
        await self._dead(
            keys=[k.outbox(d.chat.key), k.dead_letters(), k.chat_dead(), k.stats(), k.in_flight()],
            args=[d.entry_id, d.chat.key, d.key, cause[:500], d.message_json, now, DEAD_CAP],
        )

    async def mark_in_flight(self, d: Delivery) -> None:
        """Just before the platform call: this chat's send of `d` has started."""
        await self._r.hset(self._k.in_flight(), d.chat.key, d.key)

    async def clear_in_flight(self, d: Delivery) -> None:
        """The call returned with a known outcome (accepted is cleared by `ack` instead)."""
        await self._clear(keys=[self._k.in_flight()], args=[d.chat.key, d.key])

    async def was_in_flight(self, d: Delivery) -> bool:
        """True when a send of `d` started and its outcome was never recorded (its sender died)."""
        raw = await self._r.hget(self._k.in_flight(), d.chat.key)
        return raw in (d.key, d.key.encode())

    async def finish(self, chat: ChatRef, *, due: float) -> bool:
        """True when the chat still has entries (it stays due at `due`)."""
        return bool(await self._finish(keys=[self._k.outbox(chat.key), self._k.outbox_ready()], args=[chat.key, due]))

    async def defer(self, chat: ChatRef, until: float) -> None:
        await self._r.zadd(self._k.outbox_ready(), {chat.key: until})

    async def move(self, old: ChatRef, new: ChatRef, *, now: float) -> int:
        k = self._k
        return int(
            await self._move(
                keys=[k.outbox(old.key), k.outbox(new.key), k.outbox_ready()], args=[old.key, new.key, now]
            )
        )

    async def due_chats(self, now: float, limit: int) -> list[ChatRef]:
        raw = await self._r.zrangebyscore(self._k.outbox_ready(), "-inf", now, start=0, num=limit)
        return [ChatRef.from_key(x) for x in texts(raw)]

    async def next_due(self) -> float | None:
        first = await self._r.zrange(self._k.outbox_ready(), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def pending(self, chat: ChatRef) -> int:
        return int(await self._r.xlen(self._k.outbox(chat.key)))

    async def dead_count(self, chat: ChatRef) -> int:
        raw = await self._r.hget(self._k.chat_dead(), chat.key)
        return int(raw) if raw else 0

    async def count(self, counter: str, by: int = 1) -> None:
        """Bump a shared counter in the stats hash (kept across processes and restarts)."""
        await self._r.hincrby(self._k.stats(), counter, by)
