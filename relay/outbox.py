"""Per-chat delivery queues on Redis streams, and the scripts that change them atomically.

One stream per chat (consumer group `senders`) keeps each chat's order and lets a rate-limited
chat wait without holding up others. A ready set says which chats have work and from when.
Enqueue acknowledges the inbox entry in the same script; ack records the delivery key so a
delivery that re-enters the pipeline is not sent again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from relay import pipelined_scripts
from relay.i18n import ENGLISH, Translator
from relay.keys import DEAD_CAP, DELIVERED_CAP, DELIVERED_TTL, Keys
from relay.models import ChatRef, Message
from relay.redis_values import stream_entries, texts
from relay.script_batches import ScriptBatches

log = logging.getLogger(__name__)

GROUP = "senders"
Also = Callable[[Pipeline], object]  # adds writes to a round trip the outbox makes anyway
ENQUEUE_CHUNK = 500  # deliveries per enqueue call at most (a fan-out batch is split between entries)
BACKLOG_KEY_PREFIX = "backlog:"  # the delivery key the enqueue script gives its notice


def backlog_notice(t: Translator = ENGLISH) -> Message:
    """The notice the enqueue script queues for a chat past its cap. The script knows no language,
    so it queues this English one and the deliverer sends `backlog_notice` in the chat's language."""
    return Message(
        title=t.gettext("Too many notifications for this chat"),
        body=t.gettext(
            "More were queued here than this chat can receive, so the oldest ones waiting were moved to "
            "the dead-letter list instead of being sent. /status shows how many; the operator can replay them."
        ),
    )


BACKLOG_NOTICE = backlog_notice()

# One call per fan-out batch: every inbox entry of the batch with the deliveries it makes.
# KEYS: inbox, ready, delivered, stats, dead stream, dead count, then per item its chat's outbox
#   and its chat's backlog-notice key (every key the script touches is passed in).
# ARGV: now, per-chat cap (0: none), notice JSON, dead cap, number of inbox entries, then per
#   entry (entry id or '', items it makes), then 4 per item (chat, key, message JSON, silent).
# An inbox entry already gone (another process fanned it out) adds nothing. Returns {added,
# entries gone}. Past the cap, the oldest entry of that chat no sender has read yet is
# dead-lettered (never dropped silently), and the chat gets one notice an hour saying so.
_ENQUEUE = """
local now, cap, notice, dead_cap = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local entries = tonumber(ARGV[5])
local nitems = 0
for e = 1, entries do nitems = nitems + tonumber(ARGV[5 + e * 2]) end
local item_base = 6 + entries * 2
local n, gone, item = 0, 0, 0
for e = 1, entries do
  local entry, count = ARGV[4 + e * 2], tonumber(ARGV[5 + e * 2])
  local live = entry == '' or #redis.call('XRANGE', KEYS[1], entry, entry) > 0
  if not live then gone = gone + 1 end
  for _ = 1, count do
    item = item + 1
    local b = item_base + (item - 1) * 4
    local stream, backlog = KEYS[6 + item], KEYS[6 + nitems + item]
    local chat = ARGV[b]
    if live and not redis.call('ZSCORE', KEYS[3], ARGV[b + 1]) then
      redis.call('XADD', stream, '*', 'key', ARGV[b + 1], 'chat', chat, 'm', ARGV[b + 2], 's', ARGV[b + 3], 't', now)
      redis.call('ZADD', KEYS[2], 'NX', now, chat)
      n = n + 1
      if cap > 0 and redis.call('XLEN', stream) > cap then
        local start = '-'
        local pending = redis.pcall('XPENDING', stream, 'senders')
        if type(pending) == 'table' and not pending.err and tonumber(pending[1]) > 0 then start = '(' .. pending[3] end
        -- The oldest unread entry that is not the backlog notice itself (the notice must survive).
        local oldest, f = nil, {}
        for _, x in ipairs(redis.call('XRANGE', stream, start, '+', 'COUNT', 2)) do
          local fe = {}
          for j = 1, #x[2], 2 do fe[x[2][j]] = x[2][j + 1] end
          if string.sub(fe['key'] or '', 1, 8) ~= 'backlog:' then oldest, f = x, fe; break end
        end
        if oldest then
          redis.call('XADD', KEYS[5], 'MAXLEN', '~', dead_cap, '*', 'chat', chat, 'key', f['key'] or '',
            'cause', 'backlog cap: more than ' .. cap .. ' deliveries queued for this chat', 'm', f['m'] or '', 't', now)
          redis.call('HINCRBY', KEYS[6], chat, 1)
          redis.call('HINCRBY', KEYS[4], 'dead', 1)
          redis.call('HINCRBY', KEYS[4], 'backlog_dead', 1)
          redis.call('XDEL', stream, oldest[1])
          if redis.call('SET', backlog, now, 'NX', 'EX', 3600) then
            redis.call('XADD', stream, '*', 'key', 'backlog:' .. chat .. ':' .. now, 'chat', chat, 'm', notice, 's', '1', 't', now)
          end
        end
      end
    end
  end
  if entry ~= '' and live then redis.call('XDEL', KEYS[1], entry) end
end
redis.call('HINCRBY', KEYS[4], 'enqueued', n)
return {n, gone}
"""

# Clears the chat's in-flight mark if it still names this delivery (its outcome is known now).
_CLEAR_IN_FLIGHT = """
local function clear_in_flight(hash, chat, key)
  if redis.call('HGET', hash, chat) == key then redis.call('HDEL', hash, chat) end
end
"""

# Acknowledges accepted deliveries of one chat: each leaves the stream and its key enters the
# dedup set, which keeps the newest keys only, by age and by count (a burst cannot grow it past
# the cap either). `acks(first)` reads triples (entry id, delivery key, counter) from ARGV[first].
_ACKS = (
    _CLEAR_IN_FLIGHT
    + """
local function acks(stream, delivered, stats, inflight, chat, now, ttl, cap, first)
  local n = 0
  for i = first, #ARGV, 3 do
    redis.call('XACK', stream, 'senders', ARGV[i])
    redis.call('XDEL', stream, ARGV[i])
    redis.call('ZADD', delivered, now, ARGV[i + 1])
    redis.call('HINCRBY', stats, ARGV[i + 2], 1)
    clear_in_flight(inflight, chat, ARGV[i + 1])
    n = n + 1
  end
  if n > 0 then
    redis.call('ZREMRANGEBYSCORE', delivered, '-inf', '(' .. (tonumber(now) - tonumber(ttl)))
    local extra = redis.call('ZCARD', delivered) - tonumber(cap)
    if extra > 0 then redis.call('ZREMRANGEBYRANK', delivered, 0, extra - 1) end
  end
  return n
end
"""
)

# One round trip per send: the acknowledgements of the sends before it, then the in-flight mark
# of the send about to start (or the clearing of one whose outcome is known).
# KEYS: outbox, delivered, stats, in-flight ; ARGV: chat, now, max age of a delivered key, max
# delivered keys, key to mark in flight (or ''), key to clear (or ''), then ack triples.
_STEP = (
    _ACKS
    + """
acks(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 7)
if ARGV[6] ~= '' then clear_in_flight(KEYS[4], ARGV[1], ARGV[6]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], ARGV[1], ARGV[5]) end
return 1
"""
)

# A drain's first round trip: the chat's pending entries a dead sender left (claimed by this
# one), then new ones, in order. Entries whose key was delivered already (they entered the
# outbox twice) are acknowledged here and returned apart, by key. Each returned entry says how it was
# read (1: new or read by this sender before; 2: read by another, which may have sent it) and
# whether the in-flight mark names it (its send began and its outcome was never recorded).
# KEYS: outbox, delivered, in-flight, stats ; ARGV: consumer, count, chat.
_TAKE = (
    _CLEAR_IN_FLIGHT
    + """
local stream, consumer, count, chat = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local made = redis.pcall('XGROUP', 'CREATE', stream, 'senders', '0', 'MKSTREAM')
if type(made) == 'table' and made.err and not string.find(made.err, 'BUSYGROUP') then return redis.error_reply(made.err) end
local flight = redis.call('HGET', KEYS[3], chat)
local rows, out, skipped = {}, {}, {}
local pending = redis.call('XPENDING', stream, 'senders', '-', '+', count)
if #pending > 0 then
  local owners = {}
  for _, p in ipairs(pending) do owners[p[1]] = p[2] end
  local claimed = redis.call('XAUTOCLAIM', stream, 'senders', consumer, 0, '0-0', 'COUNT', count)
  for _, e in ipairs(claimed[2]) do
    if type(e) == 'table' and type(e[2]) == 'table' then
      table.insert(rows, {e, owners[e[1]] == consumer and 1 or 2})
    end
  end
end
if #rows < count then
  local fresh = redis.call('XREADGROUP', 'GROUP', 'senders', consumer, 'COUNT', count - #rows, 'STREAMS', stream, '>')
  if type(fresh) == 'table' and fresh[1] then
    for _, e in ipairs(fresh[1][2]) do table.insert(rows, {e, 1}) end
  end
end
for _, r in ipairs(rows) do
  local e, key = r[1], nil
  for j = 1, #e[2], 2 do if e[2][j] == 'key' then key = e[2][j + 1] end end
  if key and redis.call('ZSCORE', KEYS[2], key) then
    redis.call('XACK', stream, 'senders', e[1])
    redis.call('XDEL', stream, e[1])
    redis.call('HINCRBY', KEYS[4], 'duplicates_skipped', 1)
    clear_in_flight(KEYS[3], chat, key)
    table.insert(skipped, key)
  else
    table.insert(out, {e[1], r[2], (key and flight == key) and 1 or 0, e[2]})
  end
end
-- One JSON string, not nested arrays: redis-py parses a reply element by element in Python,
-- about 15 elements per entry, which made the take cost as much as 20 sends (py-spy, issue 11).
return cjson.encode({out, skipped})
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

# Ends a drain: acknowledges its last sends, then forgets the chat (and its stream, group
# included: the next drain recreates them) when its stream is empty, else keeps it due at ARGV[2].
# KEYS: outbox, ready, delivered, stats, in-flight ; ARGV: chat, due, now, max age, max keys, acks.
_FINISH = (
    _ACKS
    + """
acks(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[3], ARGV[4], ARGV[5], 6)
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
)

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
    was_in_flight: bool = False  # when taken, the chat's in-flight mark named it

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


@dataclass(frozen=True, slots=True)
class Ack:
    """A delivery of the chat being drained whose outcome is known, waiting to be recorded with
    the drain's next round trip."""

    entry_id: str
    key: str
    counter: str = "delivered"


class Outbox:
    def __init__(self, redis: Redis, keys: Keys, *, max_per_chat: int = 0) -> None:
        """`max_per_chat`: deliveries one chat's queue may hold before its oldest unread ones are
        dead-lettered (0: no cap)."""
        self._r = redis
        self._k = keys
        self._max_per_chat = max_per_chat
        self._batches = ScriptBatches(redis)
        self._notice = BACKLOG_NOTICE.to_json()
        self._enqueue = redis.register_script(_ENQUEUE)
        self._take = redis.register_script(_TAKE)
        self._step = redis.register_script(_STEP)
        self._dead = redis.register_script(_DEAD)
        self._finish = redis.register_script(_FINISH)
        self._move = redis.register_script(_MOVE)
        self._clear = redis.register_script(_CLEAR_IN_FLIGHT + "clear_in_flight(KEYS[1], ARGV[1], ARGV[2])")

    async def enqueue(self, items: Sequence[Outgoing], *, now: float, inbox: str = "", inbox_entry: str = "") -> int:
        """Adds deliveries (skipping keys already delivered) and, in the same script, removes
        the inbox entry they came from. Returns the number added, -1 if the entry was gone."""
        added, gone = await self.enqueue_batch([(inbox_entry, items)], now=now, inbox=inbox)
        return -1 if gone else added

    async def enqueue_batch(
        self,
        batch: Sequence[tuple[str, Sequence[Outgoing]]],
        *,
        now: float,
        inbox: str = "",
        also: Also | None = None,
    ) -> tuple[int, int]:
        """One script per fan-out batch: each (inbox entry, its deliveries) is added (skipping
        keys already delivered) and its inbox entry removed, atomically. An entry already gone
        adds nothing. A batch past ENQUEUE_CHUNK deliveries is split between entries, so one
        call never holds Redis long. Returns (deliveries added, inbox entries found gone). `also`
        adds writes to the last call's round trip (the journal's events of the fan-out)."""
        added = gone = 0
        chunk: list[tuple[str, Sequence[Outgoing]]] = []
        size = 0
        for entry in batch:
            if chunk and size + len(entry[1]) > ENQUEUE_CHUNK:
                a, g = await self._enqueue_chunk(chunk, now, inbox)
                added, gone, chunk, size = added + a, gone + g, [], 0
            chunk.append(entry)
            size += len(entry[1])
        if chunk:
            a, g = await self._enqueue_chunk(chunk, now, inbox, also)
            added, gone = added + a, gone + g
        elif also is not None:
            pipe = self._r.pipeline(transaction=False)
            also(pipe)
            await pipe.execute(raise_on_error=False)
        return added, gone

    async def _enqueue_chunk(
        self, batch: Sequence[tuple[str, Sequence[Outgoing]]], now: float, inbox: str, also: Also | None = None
    ) -> tuple[int, int]:
        k = self._k
        streams: list[str] = []
        notices: list[str] = []
        entries: list[str | float | int] = []
        items: list[str | float | int] = []
        rendered: dict[int, str] = {}  # fan-out hands every chat of an entry the same Message
        named: dict[str, tuple[str, str]] = {}  # a batch is mostly one agent's few chats
        for entry_id, outgoing in batch:
            entries += [entry_id, len(outgoing)]
            for item in outgoing:
                chat = item.chat.key
                stream, notice = named.get(chat) or named.setdefault(chat, (k.outbox(chat), k.backlog_notice(chat)))
                streams.append(stream)
                notices.append(notice)
                m = rendered.get(id(item.message))
                if m is None:
                    m = rendered[id(item.message)] = item.message.to_json()
                items += [chat, item.key, m, "1" if item.silent else "0"]
        keys = [inbox or k.inbox(0), k.outbox_ready(), k.delivered(), k.stats(), k.dead_letters(), k.chat_dead()]
        args: list[str | float | int] = [now, self._max_per_chat, self._notice, DEAD_CAP, len(batch)]
        result = await self._along(self._enqueue, keys + streams + notices, args + entries + items, also)
        assert isinstance(result, list | tuple)
        return int(result[0]), int(result[1])

    async def ensure_group(self, chat: ChatRef) -> None:
        try:
            await self._r.xgroup_create(self._k.outbox(chat.key), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def take(self, chat: ChatRef, consumer: str, count: int) -> list[Delivery]:
        """Entries for this chat in order (see `take_batch`)."""
        return (await self.take_batch(chat, consumer, count))[0]

    async def take_batch(self, chat: ChatRef, consumer: str, count: int) -> tuple[list[Delivery], list[str]]:
        """Entries for this chat in order, in one round trip: first any left pending by a dead
        sender, then new ones. Entries already delivered are acknowledged instead of returned;
        their keys come second. Call only while holding the chat's lease."""
        k = self._k
        raw = await self._take(
            keys=[k.outbox(chat.key), k.delivered(), k.in_flight(), k.stats()], args=[consumer, count, chat.key]
        )
        # Lua's cjson writes an empty table as {}, not [].
        rows, skipped = (x or [] for x in json.loads(raw))
        out: list[Delivery] = []
        for entry_id, times, flight, flat in rows:
            f = dict(zip(flat[::2], flat[1::2], strict=False))
            out.append(self._delivery(str(entry_id), f, int(times), was_in_flight=int(flight) == 1))
        return out, [str(key) for key in skipped]

    def _delivery(self, entry_id: str, f: dict[str, str], times: int, *, was_in_flight: bool = False) -> Delivery:
        return Delivery(
            entry_id=entry_id,
            chat=ChatRef.from_key(f["chat"]),
            key=f["key"],
            message_json=f["m"],
            silent=f.get("s") == "1",
            enqueued_at=float(f.get("t", "0")),
            times_claimed=times,
            was_in_flight=was_in_flight,
        )

    async def is_delivered(self, key: str) -> bool:
        return await self._r.zscore(self._k.delivered(), key) is not None

    async def step(
        self,
        chat: ChatRef,
        acks: Sequence[Ack],
        *,
        now: float,
        mark: str = "",
        clear: str = "",
        cap: int = DELIVERED_CAP,
        also: Also | None = None,
    ) -> None:
        """One round trip of a drain: record `acks` (deliveries of this chat the platform
        accepted), then set the chat's in-flight mark to `mark` (a send about to start) or clear
        it if it still names `clear` (a send whose outcome is known and was not accepted).
        `also` adds writes to the same round trip (the journal's events of the drain)."""
        k = self._k
        args: list[str | float | int] = [chat.key, now, DELIVERED_TTL, cap, mark, clear]
        for a in acks:
            args += [a.entry_id, a.key, a.counter]
        await self._along(self._step, [k.outbox(chat.key), k.delivered(), k.stats(), k.in_flight()], args, also)

    async def _along(
        self, script: AsyncScript, keys: list[str], args: list[str | float | int], also: Also | None
    ) -> object:
        """The script's result; with `also`'s writes pipelined behind it in the same round trip.
        Without them it shares a round trip with the other chats' scripts of the same loop turn
        (relay.script_batches). On a cluster the writes follow in a round trip of their own:
        redis-py's cluster pipelines refuse scripts ("pipelined function evalsha is blocked"),
        and the writes are other slots'."""
        if self._k.cluster:
            result = await script(keys=keys, args=args)
            if also is not None:
                pipe = self._r.pipeline(transaction=False)
                also(pipe)
                await pipe.execute()
            return result
        if also is None:
            return await self._batches.run(script, keys, args)
        pipe = self._r.pipeline(transaction=False)
        pipelined_scripts.queue(pipe, script, keys, args)
        also(pipe)
        # The script's outcome is what counts: a refused rider (a journal write) is logged, not raised.
        raw, *riders = await pipe.execute(raise_on_error=False)
        first = await pipelined_scripts.outcome(raw, script, keys, args)
        if isinstance(first, Exception):
            raise first
        for refused in (r for r in riders if isinstance(r, Exception)):
            log.warning("outbox: a write riding along was refused (%s)", type(refused).__name__)
        return first

    async def ack(self, d: Delivery, *, now: float, counter: str = "delivered", cap: int = DELIVERED_CAP) -> None:
        await self.step(d.chat, [Ack(d.entry_id, d.key, counter)], now=now, cap=cap)

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

    async def finish(
        self,
        chat: ChatRef,
        *,
        due: float,
        acks: Sequence[Ack] = (),
        now: float = 0.0,
        cap: int = DELIVERED_CAP,
        also: Also | None = None,
    ) -> bool:
        """Records `acks`, then: True when the chat still has entries (it stays due at `due`)."""
        k = self._k
        args: list[str | float | int] = [chat.key, due, now or due, DELIVERED_TTL, cap]
        for a in acks:
            args += [a.entry_id, a.key, a.counter]
        keys = [k.outbox(chat.key), k.outbox_ready(), k.delivered(), k.stats(), k.in_flight()]
        return bool(await self._along(self._finish, keys, args, also))

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

    async def delivered_at(self, key: str) -> float | None:
        """When a platform accepted the delivery `key` (None: not recorded, or trimmed by age)."""
        score = await self._r.zscore(self._k.delivered(), key)
        return float(score) if score is not None else None

    async def position(self, chat: ChatRef, key: str) -> int | None:
        """How many deliveries wait ahead of `key` in the chat's queue; None when it is not there.
        Reads the whole queue (it is capped by MAX_QUEUE_PER_CHAT): for /why, not for delivery."""
        raw = await self._r.xrange(self._k.outbox(chat.key))
        keys = [f.get("key") for _, f in stream_entries(raw)]
        return keys.index(key) if key in keys else None

    async def pending(self, chat: ChatRef) -> int:
        return int(await self._r.xlen(self._k.outbox(chat.key)))

    async def dead_count(self, chat: ChatRef) -> int:
        raw = await self._r.hget(self._k.chat_dead(), chat.key)
        return int(raw) if raw else 0

    async def count(self, counter: str, by: int = 1) -> None:
        """Bump a shared counter in the stats hash (kept across processes and restarts)."""
        await self._r.hincrby(self._k.stats(), counter, by)
