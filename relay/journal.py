"""The delivery journal behind /why: what happened to each notification, per chat, kept briefly.

Two streams per subject. An agent's journal says what its polls fetched (which poll, when); a
chat's journal says, per delivery, how it was routed, queued, held, filtered, each send attempt
and how it ended. Each delivery is named in chats by a short reference, a hash of its delivery key
(which names no token), printed in the notification's footer.

Recording is batched: a poll, a fan-out, a drain or a watch check collects its events in a
`JournalBatch` and writes them in one pipeline at its end (or adds them to a pipeline it runs
anyway, `Journal.queue`), never one round trip per event. The journal is a diagnostic: a failed
write is logged and never fails the delivery it describes.

Bound: each chat's journal keeps its newest JOURNAL_CHAT_CAP events and each agent's its newest
JOURNAL_AGENT_CAP, none older than JOURNAL_TTL (trimmed at every write; a journal nobody writes
expires whole after JOURNAL_TTL).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from relay.i18n import Translator
from relay.keys import JOURNAL_AGENT_CAP, JOURNAL_CHAT_CAP, JOURNAL_TTL, Keys
from relay.models import ChatRef, Message
from relay.redis_values import stream_entries

log = logging.getLogger(__name__)

DETAIL_LIMIT = 300
REF_LENGTH = 8  # 40 bits of base32: unique enough among one chat's journal, short to type

# Steps of a journey, in the order they usually happen.
FETCHED = "fetched"  # agent journal: a poll read it from AI-Trader
QUEUED = "queued"  # routed by a subscription into this chat's queue
SKIPPED = "skipped"  # an agent notification this chat's subscription does not take (kind, /notify)
FILTERED = "filtered"  # a watch's filter setting left it out
HELD = "held"  # quiet hours, snooze or a digest kept it back (relay.quiet records these)
RELEASED = "released"  # a held notification was let go (summary, digest, end of snooze)
ATTEMPT = "attempt"  # a send that did not go through (the outcome in the detail)
DELIVERED = "delivered"
DUPLICATE = "duplicate"  # already delivered under the same key: not sent again
DEAD = "dead"  # dead-lettered
REPLAYED = "replayed"  # the operator put the dead letter back in the queue
STEPS = (FETCHED, QUEUED, SKIPPED, FILTERED, HELD, RELEASED, ATTEMPT, DELIVERED, DUPLICATE, DEAD, REPLAYED)

# Appends events to one journal stream, then bounds it (as many as the cap, none older than the
# age, expiry renewed): the end state of one XADD MAXLEN per event, an XTRIM MINID and an EXPIRE.
# KEYS[1] the journal ; ARGV: cap, oldest stream id kept, TTL, then each event's JSON row.
_APPEND = """
for i = 4, #ARGV do redis.call('XADD', KEYS[1], '*', 'j', ARGV[i]) end
redis.call('XTRIM', KEYS[1], 'MAXLEN', ARGV[1])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return #ARGV - 3
"""

_AGENT_ITEM = re.compile(r"^(\d+):([mt]\d+):")
_WATCH_ITEM = re.compile(r"^w(\d+):s(\d+):")


@functools.lru_cache(maxsize=4096)
def reference(delivery_key: str) -> str:
    """The short name of one delivery in its chat: stable (a hash of the key), and revealing
    nothing the key does not (it holds ids only, never a token). Base32 turns each 5 bytes into
    8 characters on their own, so the first 5 bytes give the same 8 characters as the whole
    digest at a fraction of the cost; cached, as fan-out stamps and journals each key twice."""
    digest = hashlib.sha256(delivery_key.encode()).digest()
    return base64.b32encode(digest[: REF_LENGTH * 5 // 8]).decode().lower()


def is_reference(text: str) -> bool:
    return len(text) == REF_LENGTH and all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in text)


def stamp(message: Message, delivery_key: str) -> Message:
    """The message with its reference in the footer, for `/why <reference>`."""
    tag = f"/why {reference(delivery_key)}"
    return dataclasses.replace(message, footer=f"{message.footer} · {tag}" if message.footer else tag)


def source_of(delivery_key: str) -> tuple[int | None, str, int | None]:
    """(agent id, item "m<id>"/"t<id>", watch subscription id) named by a delivery key."""
    m = _AGENT_ITEM.match(delivery_key)
    if m:
        return int(m.group(1)), m.group(2), None
    w = _WATCH_ITEM.match(delivery_key)
    if w:
        return None, f"s{w.group(2)}", int(w.group(1))
    return None, "", None


@dataclass(frozen=True, slots=True)
class Entry:
    """One event of a journey. `item` is "m<message id>", "t<task id>" or "s<signal id>"."""

    step: str
    at: float
    detail: str = ""
    ref: str = ""
    agent: int | None = None
    item: str = ""
    signal: int | None = None
    kind: str = ""
    sub: int | None = None
    # With params, `detail` is an English template marked with N_() (named placeholders), put in
    # the reader's language when shown; without, plain text written as it is.
    params: tuple[tuple[str, str], ...] = ()

    def shown(self, t: Translator) -> str:
        """The detail in the reader's language."""
        if not self.detail:
            return ""
        params = dict(self.params)
        # A param named `<name>_t` is a template of its own (N_()-marked, same params), shown
        # translated as `{name}`: "why it was held" goes inside the routing step's sentence.
        for name in [n for n in params if n.endswith("_t")]:
            params[name[:-2]] = t.gettext(params.pop(name), **params)
        return t.gettext(self.detail, **params) if params else t.gettext(self.detail)

    def fields(self) -> dict[str, str]:
        """One stream field holding the event as a JSON list: a fifth of the arguments of a field
        per value, which is most of what recording costs the relay (redis-py packs each argument)."""
        return {"j": self.row()}

    def row(self) -> str:
        """The event as the JSON list stored in its stream entry's one field, `j`."""
        row = [
            self.step,
            round(self.at, 3),
            self.detail[:DETAIL_LIMIT],
            self.ref,
            self.agent,
            self.item,
            self.signal,
            self.kind,
            self.sub,
            dict(self.params),
        ]
        return json.dumps(row, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> Entry | None:
        """The event, or None for a row this version cannot read (it is skipped, not fatal)."""
        try:
            row = json.loads(f.get("j", ""))
            step, at, detail, ref, agent, item, signal, kind, sub, params = row
            return cls(
                step=str(step),
                at=float(at),
                detail=str(detail),
                ref=str(ref),
                agent=agent if isinstance(agent, int) else None,
                item=str(item),
                signal=signal if isinstance(signal, int) else None,
                kind=str(kind),
                sub=sub if isinstance(sub, int) else None,
                params=tuple((str(k), str(v)) for k, v in params.items()) if isinstance(params, dict) else (),
            )
        except (ValueError, TypeError, AttributeError):
            return None


@dataclass(slots=True)
class JournalBatch:
    """Events collected by one poll, fan-out, drain or watch check, written together."""

    chats: dict[str, list[Entry]] = field(default_factory=dict)
    agents: dict[int, list[Entry]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(map(len, self.chats.values())) + sum(map(len, self.agents.values()))

    def chat(
        self,
        chat: ChatRef | str,
        delivery_key: str,
        step: str,
        detail: str = "",
        *,
        at: float,
        signal: int | None = None,
        kind: str = "",
        params: Mapping[str, object] | None = None,
    ) -> None:
        """One event of the delivery `delivery_key` in `chat`. `detail` is plain text, or with
        `params` an N_()-marked template (translated when /why shows it)."""
        agent, item, sub = source_of(delivery_key)
        if signal is None and item.startswith("s"):
            signal = int(item[1:])
        chat_key = chat if isinstance(chat, str) else chat.key
        entry = Entry(step, at, detail, reference(delivery_key), agent, item, signal, kind, sub, _params(params))
        self.chats.setdefault(chat_key, []).append(entry)

    def fetched(
        self,
        agent_id: int,
        item: str,
        detail: str,
        *,
        at: float,
        signal: int | None = None,
        kind: str = "",
        params: Mapping[str, object] | None = None,
    ) -> None:
        """A poll read `item` ("m<id>" or "t<id>") of the agent from AI-Trader."""
        self.fetched_many(agent_id, [(item, signal, kind)], detail, at=at, params=params)

    def fetched_many(
        self,
        agent_id: int,
        items: Sequence[tuple[str, int | None, str]],
        detail: str,
        *,
        at: float,
        params: Mapping[str, object] | None = None,
    ) -> None:
        """One call's reads, (item, signal, kind) each, as ONE event: a heartbeat hands over up to
        50 rows, and one stream entry for them all costs a fiftieth of one each."""
        if items:
            packed = ";".join(f"{item}:{signal or ''}:{kind}" for item, signal, kind in items)
            entry = Entry(FETCHED, at, detail, "", agent_id, packed, None, "", None, _params(params))
            self.agents.setdefault(agent_id, []).append(entry)

    def clear(self) -> None:
        self.chats.clear()
        self.agents.clear()


def _params(params: Mapping[str, object] | None) -> tuple[tuple[str, str], ...]:
    return tuple((k, str(v)[:DETAIL_LIMIT]) for k, v in params.items()) if params else ()


class Journal:
    def __init__(self, redis: Redis, keys: Keys, *, clock: Callable[[], float] = time.time) -> None:
        self._r = redis
        self._k = keys
        self._clock = clock

    def batch(self) -> JournalBatch:
        return JournalBatch()

    def queue(self, pipe: Pipeline, batch: JournalBatch) -> int:
        """Adds the batch's writes (each bounded: cap, age, expiry) to `pipe`, which the caller
        runs anyway; returns the commands added. Empties the batch."""
        # Stream ids are Redis server time in ms; the age bound is measured on them.
        oldest = f"{int((self._clock() - JOURNAL_TTL) * 1000)}-0"
        n = 0
        targets = [(self._k.journal(c), JOURNAL_CHAT_CAP, es) for c, es in batch.chats.items()]
        targets += [(self._k.agent_journal(a), JOURNAL_AGENT_CAP, es) for a, es in batch.agents.items()]
        for key, cap, entries in targets:
            if self._k.cluster:
                # A cluster pipeline refuses scripts; these commands go to the journal's own slot.
                for e in entries:
                    pipe.xadd(key, e.fields(), maxlen=cap, approximate=False)  # type: ignore[arg-type]
                pipe.xtrim(key, minid=oldest, approximate=False)
                pipe.expire(key, JOURNAL_TTL)
                n += len(entries) + 2
            else:
                # One command per journal instead of three per event plus two: redis-py packs
                # and parses each command of a pipeline on the relay's CPU (py-spy, issue 11).
                # EVAL, not EVALSHA: a Redis that lost its scripts still records the events.
                pipe.eval(_APPEND, 1, key, cap, oldest, JOURNAL_TTL, *(e.row() for e in entries))
                n += 1
        batch.clear()
        return n

    async def write(self, batch: JournalBatch) -> None:
        """One round trip for the whole batch (nothing when it is empty). Never raises RedisError."""
        if not len(batch):
            return
        pipe = self._r.pipeline(transaction=False)
        self.queue(pipe, batch)
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("journal: events not recorded (%s)", type(exc).__name__)

    async def record(
        self,
        chat: ChatRef | str,
        delivery_key: str,
        step: str,
        detail: str = "",
        *,
        signal: int | None = None,
        params: Mapping[str, object] | None = None,
    ) -> None:
        """One event on its own (one round trip): for rare events. Where events come in numbers,
        collect them in a `batch()` and `write` it once."""
        batch = self.batch()
        batch.chat(chat, delivery_key, step, detail, at=self._clock(), signal=signal, params=params)
        await self.write(batch)

    async def chat_events(self, chat: ChatRef) -> list[Entry]:
        """The chat's journal, oldest first."""
        return await self._read(self._k.journal(chat.key))

    async def agent_events(self, agent_id: int) -> list[Entry]:
        """The agent's reads, one Entry per row read (a call's reads are stored together)."""
        out = []
        for e in await self._read(self._k.agent_journal(agent_id)):
            for part in e.item.split(";"):
                item, _, rest = part.partition(":")
                signal, _, kind = rest.partition(":")
                one = dataclasses.replace(e, item=item, signal=int(signal) if signal.isdigit() else None, kind=kind)
                out.append(one)
        return out

    async def _read(self, key: str) -> list[Entry]:
        raw = await self._r.xrange(key)
        return [e for _, f in stream_entries(raw) if (e := Entry.from_fields(f)) is not None]
