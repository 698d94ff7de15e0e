"""Dead letters for operators: list them, and put them back into their chats' queues.

A replay appends each chosen entry to its chat's outbox in the order the entries were
dead-lettered, and removes it from the dead-letter stream, both in one script per batch: a crash
cannot leave an entry in both places (replayed twice later) or in neither. An entry whose
delivery key was accepted by a platform since (the same notification delivered another way) is
dropped instead of queued, so a replay never sends a duplicate of something delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from relay.i18n import N_
from relay.journal import REPLAYED, Journal, JournalBatch
from relay.keys import Keys
from relay.models import Message
from relay.redis_values import stream_entries

BATCH = 200  # entries per script call: long enough to be quick, short enough not to block Redis

# KEYS: dead stream, dead counts, ready zset, delivered zset, stats, then one outbox per entry;
# ARGV: now, then per entry: entry id, chat, key, message json. Returns {queued, skipped}.
_REPLAY = """
local queued, skipped = 0, 0
for n = 1, #KEYS - 5 do
  local i = 2 + (n - 1) * 4
  local id, chat, key, m, outbox = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], KEYS[5 + n]
  if redis.call('XDEL', KEYS[1], id) == 1 then
    if redis.call('ZSCORE', KEYS[4], key) then
      skipped = skipped + 1
    else
      redis.call('XADD', outbox, '*', 'key', key, 'chat', chat, 'm', m, 's', '0', 't', ARGV[1])
      redis.call('ZADD', KEYS[3], 'NX', ARGV[1], chat)
      queued = queued + 1
    end
    if redis.call('HINCRBY', KEYS[2], chat, -1) <= 0 then redis.call('HDEL', KEYS[2], chat) end
  end
end
redis.call('HINCRBY', KEYS[5], 'replayed', queued)
return {queued, skipped}
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str
    chat: str
    key: str
    cause: str
    message_json: str
    at: float

    @property
    def title(self) -> str:
        try:
            message = Message.from_json(self.message_json)
        except (ValueError, TypeError, KeyError):
            return ""
        return message.title or message.body[:80]


_REPLAYED = N_(
    "the operator replayed the dead letters: queued again (dropped instead if it was delivered since); dead letter {at}"
)


@dataclass(frozen=True, slots=True)
class Replayed:
    queued: int
    skipped: int  # delivered since they were dead-lettered


class DeadLetters:
    def __init__(self, redis: Redis, keys: Keys, *, clock: Callable[[], float], journal: Journal | None = None) -> None:
        self._journal = journal
        self._r = redis
        self._k = keys
        self._clock = clock
        self._replay = redis.register_script(_REPLAY)

    async def count(self) -> int:
        return int(await self._r.xlen(self._k.dead_letters()))

    async def list(self, chat: str | None = None, *, limit: int = 100_000) -> list[DeadLetter]:
        """Oldest first; only `chat`'s when given."""
        out: list[DeadLetter] = []
        start = "-"
        while len(out) < limit:
            raw = await self._r.xrange(self._k.dead_letters(), min=start, max="+", count=1000)
            rows = stream_entries(raw)
            for entry_id, fields in rows:
                letter = _letter(entry_id, fields)
                if chat is None or letter.chat == chat:
                    out.append(letter)
            if len(raw or ()) < 1000 or not rows:
                break
            start = "(" + rows[-1][0]
        return out[:limit]

    async def find(self, chat: str, key: str, *, newest: int = 1000) -> DeadLetter | None:
        """The dead letter of delivery `key` in `chat` among the newest `newest` (for /why)."""
        raw = await self._r.xrevrange(self._k.dead_letters(), count=newest)
        for entry_id, fields in stream_entries(raw):
            if fields.get("key") == key and fields.get("chat") == chat:
                return _letter(entry_id, fields)
        return None

    async def replay(self, chat: str | None = None) -> Replayed:
        """Put `chat`'s dead letters (all, when None) back into their queues, in order."""
        letters = await self.list(chat)
        queued = skipped = 0
        k = self._k
        for i in range(0, len(letters), BATCH):
            batch = letters[i : i + BATCH]
            args: list[str | float] = [self._clock()]
            for d in batch:
                args += [d.entry_id, d.chat, d.key, d.message_json]
            keys = [k.dead_letters(), k.chat_dead(), k.outbox_ready(), k.delivered(), k.stats()]
            q, s = await self._replay(keys=keys + [k.outbox(d.chat) for d in batch], args=args)
            queued += int(q)
            skipped += int(s)
            if self._journal is not None:
                # One write per batch of letters: an operator's replay, not a per-notification cost.
                events = JournalBatch()
                for d in batch:
                    events.chat(d.chat, d.key, REPLAYED, _REPLAYED, at=self._clock(), params={"at": d.entry_id})
                await self._journal.write(events)
        return Replayed(queued, skipped)


def _letter(entry_id: str, f: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        entry_id=entry_id,
        chat=f.get("chat", ""),
        key=f.get("key", ""),
        cause=f.get("cause", ""),
        message_json=f.get("m", "{}"),
        at=float(f.get("t") or 0),
    )
