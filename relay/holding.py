"""When a chat hears about things: quiet hours, snooze and digests (`/quiet`, `/snooze`, `/digest`).

Holding happens at ROUTING time (`divert`, called by the fan-out and the watcher just before they
enqueue), not when a sender takes an entry from the outbox. The outbox means "send this now": one
FIFO stream per chat, a backlog cap that dead-letters past 500 entries, a due-time ready set and a
readiness check on the age of its oldest entry. A night of held notifications parked there would
block everything behind it (silent kinds, digests, the daily brief), trip the cap and /readyz, and
a sender does not know an entry's kind. So held entries live in streams of their own, per chat:

- `held:{chat}`: held by quiet hours or a snooze, released as ONE summary when neither applies;
- `digest:{chat}`: kinds collected for a digest, released once per period of their schedule.

A release moves the entries (RENAME, or XADD+XDEL for one schedule's digest) into a batch stream
in the same Lua script that claims it, so however many processes check, one gets the entries.
The claim is recorded in the chat's hold hash as `pending:<batch>` before anything is composed;
the summary is enqueued under a delivery key named for the batch (`hold:<batch>:<chat>`), and only
then is the pending mark removed. A process killed in between leaves the mark, and whoever next
checks the chat under its lease sends that batch: at most one copy is delivered, because a
delivery key sent once is never sent again (the outbox's dedup). The batch stream stays 7 days
for the summary's *Show all* button (`/held`).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis

from relay.chat_settings import ChatSettings
from relay.errors import BadValue
from relay.faults import FaultPoints
from relay.i18n import ENGLISH, N_, Catalogues, Translator
from relay.journal import QUEUED, RELEASED, Journal, JournalBatch, stamp
from relay.keys import HOLD_BATCH_TTL, HOLD_CAP, Keys
from relay.leases import Leases
from relay.metrics import Metrics
from relay.models import Action, ChatRef, Message
from relay.outbox import Outbox, Outgoing
from relay.redis_values import stream_entries, text, text_dict
from relay.render import clip
from relay.specs import KINDS

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0
LEASE_MS = 9_000  # one process checks a chat at a time; a dead one's chat moves on within 9 s
TOP_ITEMS = 5  # the "most important" lines of a summary
LINE_MAX = 150  # characters per listed notification
PAGE = 10  # notifications per /held page
MIN_SNOOZE = 60
MAX_SNOOZE = 7 * 86400
WATCHES = "watches"  # the kind of a feed or trader watch's signal
DIGEST_KINDS: tuple[str, ...] = (*KINDS, WATCHES)
# Which notifications a summary lists first: what asks for an action before what informs.
IMPORTANCE: tuple[str, ...] = (
    "tasks",
    "accepted",
    "mentions",
    "messages",
    "replies",
    "followers",
    "strategies",
    "discussions",
    WATCHES,
)

_DURATION = re.compile(r"^(?:(\d{1,3})d)?(?:(\d{1,4})h)?(?:(\d{1,6})m)?$")


# --- parsing ------------------------------------------------------------------------------------


def parse_clock(raw: str) -> clock_time:
    # A Chinese input method types the full-width colon: 22：00 means 22:00.
    hours, sep, minutes = raw.strip().replace("\uff1a", ":").partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2 or not 1 <= len(hours) <= 2:
        raise BadValue(N_("times are HH:MM on a 24-hour clock, like 22:00-07:00"))
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise BadValue(N_("times are HH:MM on a 24-hour clock, like 22:00-07:00"))
    return clock_time(h, m)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: clock_time
    end: clock_time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def active(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # across midnight

    def next_end(self, local: datetime) -> datetime:
        end = datetime.combine(local.date(), self.end, tzinfo=local.tzinfo)
        return end if end > local else datetime.combine(local.date() + timedelta(days=1), self.end, local.tzinfo)


# Dashes and tildes phones and Chinese input methods type for a range: 22:00–07:00, 22：00～07：00.
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\uff0d~\uff5e", "-"))


def parse_quiet(raw: str) -> QuietHours:
    """ "22:00-07:00" (spaces around the dash allowed); raises BadValue with a short reason."""
    start, sep, end = "".join(raw.split()).translate(_DASHES).partition("-")
    if not sep:
        raise BadValue(N_("give the hours as HH:MM-HH:MM, like 22:00-07:00"))
    quiet = QuietHours(parse_clock(start), parse_clock(end))
    if quiet.start == quiet.end:
        raise BadValue(N_("start and end are the same time"))
    return quiet


def parse_duration(raw: str) -> int:
    """Seconds from "30m", "2h", "1h30m", "1d"; 1 minute to 7 days. Raises BadValue."""
    m = _DURATION.match(raw.strip().lower())
    if not raw.strip() or m is None or not any(m.groups()):
        raise BadValue(N_("a duration like 30m, 2h or 1h30m"))
    days, hours, minutes = (int(g or 0) for g in m.groups())
    seconds = days * 86400 + hours * 3600 + minutes * 60
    if not MIN_SNOOZE <= seconds <= MAX_SNOOZE:
        raise BadValue(N_("a duration from 1 minute to 7 days"))
    return seconds


@dataclass(frozen=True, slots=True)
class Schedule:
    """A digest's period: every hour, or daily at a local time. `code` is how it is stored."""

    code: str  # "hourly" | "daily HH:MM"

    @property
    def at(self) -> clock_time | None:
        return parse_clock(self.code[6:]) if self.code.startswith("daily ") else None

    def label(self, t: Translator = ENGLISH) -> str:
        at = self.at
        return t.gettext("hourly") if at is None else t.gettext("daily at {at}", at=f"{at:%H:%M}")

    def last_boundary(self, now: float, zone: ZoneInfo) -> float:
        """The latest period end at or before `now`, in the chat's zone."""
        local = datetime.fromtimestamp(now, zone)
        at = self.at
        if at is None:
            return local.replace(minute=0, second=0, microsecond=0).timestamp()
        today = datetime.combine(local.date(), at, tzinfo=zone)
        return (today if today <= local else datetime.combine(local.date() - timedelta(days=1), at, zone)).timestamp()

    def next_boundary(self, now: float, zone: ZoneInfo) -> datetime:
        local = datetime.fromtimestamp(now, zone)
        at = self.at
        if at is None:
            return local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        today = datetime.combine(local.date(), at, tzinfo=zone)
        return today if today > local else datetime.combine(local.date() + timedelta(days=1), at, zone)


def parse_digest(words: Sequence[str]) -> tuple[tuple[str, ...], Schedule | None]:
    """`<kind…> hourly | daily HH:MM | off` -> (kinds, schedule or None for off). "off" alone
    means every kind; "all" names every kind. Raises BadValue."""
    low = [w.lower() for w in words]
    if not low:
        raise BadValue(N_("<kinds…> hourly | daily HH:MM | off"))
    if low[-1] == "hourly":
        named, schedule = low[:-1], Schedule("hourly")
    elif low[-1] == "off":
        named, schedule = low[:-1] or ["all"], None
    elif len(low) >= 2 and low[-2] == "daily":
        named, schedule = low[:-2], Schedule(f"daily {parse_clock(low[-1]):%H:%M}")
    else:
        raise BadValue(N_("end with hourly, daily HH:MM or off"))
    if not named:
        raise BadValue(N_("name the kinds to collect: {kinds} or all"), kinds=", ".join(DIGEST_KINDS))
    unknown = [k for k in named if k != "all" and k not in DIGEST_KINDS]
    if unknown:
        raise BadValue(
            N_("unknown kind {kind}; kinds are {kinds} or all"), kind=unknown[0][:30], kinds=", ".join(DIGEST_KINDS)
        )
    kinds = DIGEST_KINDS if "all" in named else tuple(dict.fromkeys(named))
    return kinds, schedule


# --- per-chat plan --------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    """A chat's holding settings and state as read at one moment."""

    zone: ZoneInfo
    quiet: QuietHours | None = None
    snooze_until: float | None = None
    digests: dict[str, Schedule] = field(default_factory=dict)  # kind -> schedule
    done: dict[str, float] = field(default_factory=dict)  # schedule code -> last period sent
    pending: dict[str, str] = field(default_factory=dict)  # batch -> "silent|reason"
    last_batch: str = ""
    held: int = 0
    digested: int = 0

    def quiet_now(self, now: float) -> bool:
        return self.quiet is not None and self.quiet.active(datetime.fromtimestamp(now, self.zone))

    def snoozed(self, now: float) -> bool:
        return self.snooze_until is not None and self.snooze_until > now

    def holding(self, now: float) -> bool:
        return self.quiet_now(now) or self.snoozed(now)

    def hold_until(self, now: float) -> float:
        """When what is held now may be released: the later of the snooze's and the quiet hours' end."""
        ends = [self.snooze_until or 0.0]
        if self.quiet is not None and self.quiet_now(now):
            ends.append(self.quiet.next_end(datetime.fromtimestamp(now, self.zone)).timestamp())
        return max(ends)

    def configured(self) -> bool:
        return self.quiet is not None or self.snooze_until is not None or bool(self.digests)


def _due(plan: Plan, now: float) -> bool:
    """Whether a check of this chat has anything to do (the same conditions `_check_held` acts
    on, read without the lease; `_check_held` decides again under it)."""
    if plan.pending or not plan.configured():
        return True
    if not plan.holding(now) and (plan.held or plan.snooze_until is not None):
        return True
    if plan.digested and not plan.digests:
        return True
    return any(plan.done.get(s.code, 0.0) < s.last_boundary(now, plan.zone) for s in plan.digests.values())


def _release_reason(plan: Plan, *, ended: bool) -> str:
    """What the summary says ended: a snooze that ran out (or was ended by hand) inside quiet
    hours released nothing; the quiet hours' end did, so that summary is theirs."""
    if not ended or plan.snooze_until is None:
        return "quiet"
    return "quiet" if plan.quiet_now(plan.snooze_until) else "snooze"


@dataclass(frozen=True, slots=True)
class Routed:
    queued: list[Outgoing]  # to enqueue now
    held: dict[str, tuple[str, dict[str, str]]]  # delivery key -> why it was kept back: template, params


def _held_because(target: str, tag: str, plan: Plan, now: float) -> tuple[str, dict[str, str]]:
    """Why it was kept back, as a journal template and its params (shown in the reader's language)."""
    if target == "d":
        at = Schedule(tag).at
        if at is None:
            return N_("collected for this chat's hourly digest (/digest)"), {}
        return N_("collected for this chat's daily digest at {at} (/digest)"), {"at": f"{at:%H:%M}"}
    until = datetime.fromtimestamp(plan.hold_until(now), plan.zone)
    when = f"{until:%H:%M} {plan.zone.key}"
    if tag == "snooze":
        return N_("held by /snooze until {until}, to be sent in one summary"), {"until": when}
    return N_("held by quiet hours {hours} until {until}, to be sent in one summary"), {
        "hours": str(plan.quiet),
        "until": when,
    }


@dataclass(frozen=True, slots=True)
class HeldItem:
    key: str
    kind: str
    message: Message


# --- scripts ------------------------------------------------------------------------------------

# KEYS: hold hash, held stream, digest stream, held keys ; ARGV: now, hold-until, cap, then 6 per item:
# target (h|d), delivery key, message JSON, kind, tag (quiet|snooze, or the digest schedule), silent.
# Returns the 1-based positions NOT stored: a stream at its cap (they are sent now instead, never
# dropped), or a held item whose hold window was already released (a process that decided to hold
# just as another released: it is sent now rather than starting a second summary). An item whose
# delivery key is held already (a retried fan-out, a response recovered through `recent`) counts
# as held and is not stored twice: the outbox drops such twins at take; a summary has no take.
_HOLD = """
local now, untl, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local released = tonumber(redis.call('HGET', KEYS[1], 'released') or '0')
local refused, i = {}, 0
for b = 4, #ARGV, 6 do
  i = i + 1
  local stream = KEYS[3]
  if ARGV[b] == 'h' then stream = KEYS[2] end
  if redis.call('SISMEMBER', KEYS[4], ARGV[b + 1]) == 1 then
    -- held already
  elseif (ARGV[b] == 'h' and untl <= released) or redis.call('XLEN', stream) >= cap then
    table.insert(refused, i)
  else
    redis.call('XADD', stream, '*', 'key', ARGV[b + 1], 'm', ARGV[b + 2], 'kind', ARGV[b + 3],
      'tag', ARGV[b + 4], 's', ARGV[b + 5], 't', now)
    redis.call('SADD', KEYS[4], ARGV[b + 1])
  end
end
return refused
"""

# Ends a quiet period or a snooze. KEYS: hold hash, held stream, batch stream, held keys ;
# ARGV: now, batch.
# Returns {held entries, 1 if a snooze ended} or 0 when there is nothing to release (or a snooze
# set meanwhile still runs). Claims the batch (`pending:<batch>`) in the same step.
_RELEASE_HELD = """
local now = tonumber(ARGV[1])
local s = redis.call('HGET', KEYS[1], 'snooze')
if s and tonumber(s) > now then return 0 end
local ended = 0
if s then redis.call('HDEL', KEYS[1], 'snooze'); ended = 1 end
local n = redis.call('XLEN', KEYS[2])
if n == 0 and ended == 0 then return 0 end
redis.call('HSET', KEYS[1], 'released', ARGV[1])
if n > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
    for j = 1, #e[2], 2 do
      if e[2][j] == 'key' then redis.call('SREM', KEYS[4], e[2][j + 1]) end
    end
  end
  redis.call('RENAME', KEYS[2], KEYS[3])
end
local reason = 'quiet'
if ended == 1 then reason = 'snooze' end
redis.call('HSET', KEYS[1], 'pending:' .. ARGV[2], '0|' .. reason)
return {n, ended}
"""

# Sends one period of one digest schedule, once. KEYS: hold hash, digest stream, batch stream, held keys ;
# ARGV: schedule code, period end, batch, silent (0|1), then every schedule still configured.
# Entries of that schedule, and orphans of a schedule no longer configured, move to the batch.
_RELEASE_DIGEST = """
local sched, period = ARGV[1], tonumber(ARGV[2])
local done = tonumber(redis.call('HGET', KEYS[1], 'done:' .. sched) or '0')
if done >= period then return 0 end
redis.call('HSET', KEYS[1], 'done:' .. sched, ARGV[2])
local configured = {}
for i = 5, #ARGV do configured[ARGV[i]] = true end
local moved = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
  local f = {}
  for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
  if f['tag'] == sched or not configured[f['tag'] or ''] then
    redis.call('XADD', KEYS[3], '*', unpack(e[2]))
    redis.call('XDEL', KEYS[2], e[1])
    if f['key'] then redis.call('SREM', KEYS[4], f['key']) end
    moved = moved + 1
  end
end
if moved == 0 then return 0 end
if redis.call('XLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'pending:' .. ARGV[3], ARGV[4] .. '|digest ' .. sched)
return moved
"""

# Forgets a chat that holds nothing and has no settings left, unless that changed meanwhile.
# KEYS: hold hash, held stream, digest stream, chats set ; ARGV: chat
_FORGET = """
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if f == 'quiet' or f == 'snooze' or string.sub(f, 1, 2) == 'd:' or string.sub(f, 1, 8) == 'pending:' then
    return 0
  end
end
redis.call('SREM', KEYS[4], ARGV[1])
return 1
"""


class Holding:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: ChatSettings,
        outbox: Outbox,
        leases: Leases,
        metrics: Metrics | None = None,
        *,
        on_enqueued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        check_seconds: float = CHECK_SECONDS,
        faults: FaultPoints | None = None,
        cap: int = HOLD_CAP,
        journal: Journal | None = None,
        catalogues: Catalogues | None = None,
    ) -> None:
        self._journal = journal
        self._catalogues = catalogues
        self._r = redis
        self._k = keys
        self._settings = settings
        self._outbox = outbox
        self._leases = leases
        self._metrics = metrics
        self._on_enqueued = on_enqueued
        self._clock = clock
        self._check_seconds = check_seconds
        self._faults = faults or FaultPoints()
        self._cap = cap
        self._hold = redis.register_script(_HOLD)
        self._release_held = redis.register_script(_RELEASE_HELD)
        self._release_digest = redis.register_script(_RELEASE_DIGEST)
        self._forget = redis.register_script(_FORGET)

    # --- settings -----------------------------------------------------------------------
    async def plan(self, chat: ChatRef) -> Plan:
        k = self._k
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.hold(chat.key))
            pipe.xlen(k.held(chat.key))
            pipe.xlen(k.digest(chat.key))
            raw, held, digested = await pipe.execute()
        plan = Plan(await self._settings.timezone(chat), held=int(held), digested=int(digested))
        for name, value in text_dict(raw).items():
            try:
                if name == "quiet":
                    plan.quiet = parse_quiet(value)
                elif name == "snooze":
                    plan.snooze_until = float(value)
                elif name.startswith("d:"):
                    plan.digests[name[2:]] = Schedule(value)
                elif name.startswith("done:"):
                    plan.done[name[5:]] = float(value)
                elif name.startswith("pending:"):
                    plan.pending[name[8:]] = value
                elif name == "last":
                    plan.last_batch = value
            except ValueError:
                log.warning("holding: unreadable setting chat=%s field=%s", chat.key, name)
        return plan

    async def _configure(self, chat: ChatRef, mapping: dict[str, str], remove: Sequence[str] = ()) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            if mapping:
                pipe.hset(self._k.hold(chat.key), mapping=mapping)  # type: ignore[arg-type]
            if remove:
                pipe.hdel(self._k.hold(chat.key), *remove)
            pipe.sadd(self._k.hold_chats(), chat.key)
            await pipe.execute()

    async def set_quiet(self, chat: ChatRef, quiet: QuietHours | None) -> None:
        if quiet is None:
            plan, now = await self.plan(chat), self._clock()
            remove = ["quiet"]
            if plan.snooze_until is not None and plan.snooze_until <= now and plan.quiet_now(plan.snooze_until):
                remove.append("snooze")  # it ran out inside these quiet hours: their end is what releases
            await self._configure(chat, {}, remove)
        else:
            await self._configure(chat, {"quiet": str(quiet)})

    async def set_snooze(self, chat: ChatRef, until: float | None) -> None:
        if until is None:
            now = self._clock()
            if (await self.plan(chat)).quiet_now(now):
                # Quiet hours still hold everything: the summary at their end is theirs, not a snooze's.
                await self._configure(chat, {}, ["snooze"])
                return
            # Ended now: the next check (run right away by the command) sends what was held.
            await self._configure(chat, {"snooze": str(now)})
        else:
            await self._configure(chat, {"snooze": repr(until)})

    async def set_digest(self, chat: ChatRef, kinds: Sequence[str], schedule: Schedule | None) -> None:
        if schedule is None:
            await self._configure(chat, {}, [f"d:{k}" for k in kinds])
            return
        # The first period starts now: a schedule set at 10:40 sends its first hourly digest at
        # 11:00, with what arrived since 10:40 (not a 10:00 digest of nothing).
        now = self._clock()
        mapping = {f"d:{k}": schedule.code for k in kinds}
        plan = await self.plan(chat)
        if schedule.code not in plan.done:
            mapping[f"done:{schedule.code}"] = repr(schedule.last_boundary(now, plan.zone))
        await self._configure(chat, mapping)

    async def drop_chat(self, chat: ChatRef) -> None:
        k = self._k
        plan = await self.plan(chat)
        batches = [k.hold_batch(chat.key, b) for b in (*plan.pending, plan.last_batch) if b]
        await self._r.delete(k.hold(chat.key), k.held(chat.key), k.digest(chat.key), k.held_keys(chat.key), *batches)
        await self._r.srem(k.hold_chats(), chat.key)

    async def move_chat(self, old: ChatRef, new: ChatRef) -> None:
        """A chat that moved (a Telegram group upgraded to a supergroup) keeps its settings and
        what it holds. Batches already released stay behind (their summaries went to the old id)."""
        k = self._k
        if not await self._r.sismember(k.hold_chats(), old.key):
            return
        raw = text_dict(await self._r.hgetall(k.hold(old.key)))
        keep = {f: v for f, v in raw.items() if not f.startswith("pending:") and f != "last"}
        async with self._r.pipeline(transaction=True) as pipe:
            if keep:
                pipe.hset(k.hold(new.key), mapping=keep)  # type: ignore[arg-type]
            pipe.sadd(k.hold_chats(), new.key)
            await pipe.execute()
        moving = (
            (k.held(old.key), k.held(new.key)),
            (k.digest(old.key), k.digest(new.key)),
            (k.held_keys(old.key), k.held_keys(new.key)),
        )
        for src, dst in moving:
            if await self._r.exists(src):
                await self._r.rename(src, dst)
        # Claimed batches of the old chat are sent (to its new id) before the old hash goes.
        for batch, meta in ((b, m) for f, m in raw.items() if f.startswith("pending:") for b in [f[8:]]):
            if await self._r.exists(k.hold_batch(old.key, batch)):
                await self._r.rename(k.hold_batch(old.key, batch), k.hold_batch(new.key, batch))
            await self._r.hset(k.hold(new.key), f"pending:{batch}", meta)
        await self._r.delete(k.hold(old.key))
        await self._r.srem(k.hold_chats(), old.key)

    # --- routing --------------------------------------------------------------------------
    async def divert(self, items: Sequence[Outgoing], now: float) -> list[Outgoing]:
        """Holds or collects what the chats' settings say; returns what is to be enqueued now."""
        return (await self.route(items, now)).queued

    async def route(self, items: Sequence[Outgoing], now: float) -> Routed:
        """Holds or collects what the chats' settings say; returns what is to be enqueued now and,
        for the journal, why each other item was kept back. Costs one SMISMEMBER when no chat of
        `items` holds anything."""
        if not items:
            return Routed([], {})
        chats = list(dict.fromkeys(i.chat.key for i in items))
        member = await self._r.smismember(self._k.hold_chats(), chats)
        holding = {c for c, m in zip(chats, member, strict=True) if m}
        if not holding:
            return Routed(list(items), {})
        out: list[Outgoing] = []
        why: dict[str, tuple[str, dict[str, str]]] = {}
        by_chat: dict[str, list[tuple[Outgoing, str, str]]] = {}
        plans: dict[str, Plan] = {}
        for item in items:
            if item.chat.key not in holding:
                out.append(item)
                continue
            plan = plans.get(item.chat.key)
            if plan is None:
                plan = plans[item.chat.key] = await self.plan(item.chat)
            schedule = plan.digests.get(item.kind)
            if schedule is not None:
                by_chat.setdefault(item.chat.key, []).append((item, "d", schedule.code))
            elif plan.snoozed(now):
                by_chat.setdefault(item.chat.key, []).append((item, "h", "snooze"))
            elif plan.quiet_now(now) and not item.silent:
                # A kind set silent (/notify) is delivered without sound instead of held.
                by_chat.setdefault(item.chat.key, []).append((item, "h", "quiet"))
            else:
                out.append(item)
        for chat_key, held in by_chat.items():
            plan = plans[chat_key]
            args: list[str | float] = [now, plan.hold_until(now), self._cap]
            for item, target, tag in held:
                args += [target, item.key, item.message.to_json(), item.kind, tag, "1" if item.silent else "0"]
            k = self._k
            refused = await self._hold(
                keys=[k.hold(chat_key), k.held(chat_key), k.digest(chat_key), k.held_keys(chat_key)], args=args
            )
            refused_at = {int(i) - 1 for i in refused}
            for i, (item, target, tag) in enumerate(held):
                if i in refused_at:
                    # Sent now rather than lost: at the cap, or its hold window ended meanwhile.
                    out.append(item)
                    continue
                why[item.key] = _held_because(target, tag, plan, now)
                if self._metrics is not None:
                    self._metrics.held.labels("digest" if target == "d" else tag).inc()
        return Routed(out, why)

    # --- releasing ------------------------------------------------------------------------
    def start(self, scheduler: AsyncIOScheduler) -> None:
        # First run right away: what came due while the relay was down is sent on start.
        scheduler.add_job(
            self.check,
            "interval",
            seconds=self._check_seconds,
            id="holding",
            next_run_time=datetime.now().astimezone(),
            jitter=min(5.0, self._check_seconds / 6),
        )

    async def check(self) -> dict[str, int]:
        """Every chat that holds or collects anything, once; returns batches sent by outcome."""
        counts: dict[str, int] = {}
        for chat_key in sorted(text(c) for c in await self._r.smembers(self._k.hold_chats())):
            try:
                for outcome in await self.check_chat(ChatRef.from_key(chat_key)):
                    counts[outcome] = counts.get(outcome, 0) + 1
            except Exception:
                log.exception("holding: check failed chat=%s", chat_key)
                counts["error"] = counts.get("error", 0) + 1
        return counts

    async def check_chat(self, chat: ChatRef) -> list[str]:
        """Under the chat's lease: send batches a dead process claimed, end quiet hours or a
        snooze, and send each digest whose period ended. Returns what was sent."""
        # Most chats have nothing due at most checks: decided from one read, without the lease.
        if not _due(await self.plan(chat), self._clock()):
            return []
        async with self._leases.hold(self._k.hold_lease(chat.key), LEASE_MS) as held:
            if not held:
                return []
            return await self._check_held(chat)

    async def _check_held(self, chat: ChatRef) -> list[str]:
        k = self._k
        now = self._clock()
        plan = await self.plan(chat)
        sent: list[str] = []
        for batch, meta in plan.pending.items():  # claimed by a process that died before sending
            flag, _, reason = meta.partition("|")
            await self._send(chat, batch, reason, flag == "1")
            sent.append("recovered")
        if not plan.holding(now) and (plan.held or plan.snooze_until is not None):
            # Unique even for two releases in one millisecond (a snooze ended by hand right after one).
            batch = f"h{int(now * 1000)}{secrets.token_hex(3)}"
            got = await self._release_held(
                keys=[k.hold(chat.key), k.held(chat.key), k.hold_batch(chat.key, batch), k.held_keys(chat.key)],
                args=[repr(now), batch],
            )
            if got:
                await self._faults.reached("after_hold_release")
                await self._send(chat, batch, _release_reason(plan, ended=bool(int(got[1]))), False)
                sent.append("summary")
        schedules = {s.code: s for s in plan.digests.values()}
        if plan.digested and not schedules:
            schedules = {"off": Schedule("off")}  # collected for a digest since turned off: send now
        for code, schedule in schedules.items():
            period = now if code == "off" else schedule.last_boundary(now, plan.zone)
            if plan.done.get(code, 0.0) >= period:
                continue
            batch = f"d{int(period)}{_suffix(schedule)}"
            silent = plan.holding(now)  # a digest due in quiet hours or a snooze comes without sound
            moved = await self._release_digest(
                keys=[k.hold(chat.key), k.digest(chat.key), k.hold_batch(chat.key, batch), k.held_keys(chat.key)],
                args=[code, repr(period), batch, "1" if silent else "0", *schedules],
            )
            if moved:
                await self._faults.reached("after_hold_release")
                await self._send(chat, batch, f"digest {code}", silent)
                sent.append("digest")
        if not plan.configured():
            await self._forget(
                keys=[k.hold(chat.key), k.held(chat.key), k.digest(chat.key), k.hold_chats()], args=[chat.key]
            )
        return sent

    async def _send(self, chat: ChatRef, batch: str, reason: str, silent: bool) -> None:
        k = self._k
        items = await self.batch(chat, batch)
        t = ENGLISH
        if self._catalogues is not None:
            t = self._catalogues.translator(await self._settings.language(chat))
        key = f"hold:{batch}:{chat.key}"
        # The summary is a notification too: its footer names it for /why, like every other.
        message = stamp(summary(items, reason, batch, t), key)
        await self._outbox.enqueue([Outgoing(chat, key, message, silent)], now=self._clock())
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.expire(k.hold_batch(chat.key, batch), HOLD_BATCH_TTL)
            pipe.hset(k.hold(chat.key), "last", batch)
            pipe.hdel(k.hold(chat.key), f"pending:{batch}")
            await pipe.execute()
        if self._journal is not None:
            events = JournalBatch()
            what = N_("the end-of-snooze summary") if reason == "snooze" else N_("the end-of-quiet-hours summary")
            if reason.startswith("digest"):
                what = N_("a digest")
            params = {"what_t": what, "batch": batch, "n": len(items)}
            for item in items:
                sent_in = N_("sent in {what} (/held {batch})")
                events.chat(chat, item.key, RELEASED, sent_in, at=self._clock(), kind=item.kind, params=params)
            of = N_("{what} (/held {batch}): {n} held")
            events.chat(chat, key, QUEUED, of, at=self._clock(), params=params)
            await self._journal.write(events)
        if self._metrics is not None:
            self._metrics.released.labels(reason.split(" ")[0]).inc()
        log.info("holding: %s sent chat=%s batch=%s notifications=%d", reason, chat.key, batch, len(items))
        self._on_enqueued()

    async def batch(self, chat: ChatRef, batch: str) -> list[HeldItem]:
        """The notifications of a released batch, oldest first, each once (a notification routed
        twice, after a crash between holding it and acknowledging its inbox entry, is listed once)."""
        raw = await self._r.xrange(self._k.hold_batch(chat.key, batch))
        seen: set[str] = set()
        items = []
        for _, f in stream_entries(raw):
            key = f.get("key", "")
            if key in seen:
                continue
            seen.add(key)
            try:
                items.append(HeldItem(key, f.get("kind", ""), Message.from_json(f.get("m", "{}"))))
            except (ValueError, KeyError, TypeError):
                log.warning("holding: unreadable held entry chat=%s batch=%s", chat.key, batch)
        return items


def _suffix(schedule: Schedule) -> str:
    """Batch ids of two schedules never meet, even for the same period end."""
    if schedule.code == "off":
        return "x" + secrets.token_hex(3)
    at = schedule.at
    return "h" if at is None else f"{at:%H%M}"


# --- rendering ------------------------------------------------------------------------------------


def _line(item: HeldItem, t: Translator) -> str:
    m = item.message
    first = next((s.strip() for s in m.body.splitlines() if s.strip()), "")
    text = " — ".join(s for s in (" ".join(m.title.split()), first) if s) or t.gettext("(no text)")
    return clip(f"• {item.kind or 'other'}: {text}", LINE_MAX)


def _rank(kind: str) -> int:
    return IMPORTANCE.index(kind) if kind in IMPORTANCE else len(IMPORTANCE)


def _title(reason: str, n: int, t: Translator) -> str:
    if reason == "snooze":
        if not n:
            return t.gettext("Snooze is over; nothing arrived meanwhile")
        return t.ngettext("Snooze is over: {n} notification held", "Snooze is over: {n} notifications held", n)
    if reason == "quiet":
        return t.ngettext(
            "Quiet hours are over: {n} notification held", "Quiet hours are over: {n} notifications held", n
        )
    code = reason.removeprefix("digest ")
    if code == "off":
        return t.ngettext("Digest: {n} notification", "Digest: {n} notifications", n)
    schedule = Schedule(code)
    if schedule.at is None:
        return t.ngettext("Hourly digest: {n} notification", "Hourly digest: {n} notifications", n)
    return t.ngettext(
        "Daily digest ({at}): {n} notification", "Daily digest ({at}): {n} notifications", n, at=f"{schedule.at:%H:%M}"
    )


def summary(items: Sequence[HeldItem], reason: str, batch: str, t: Translator = ENGLISH) -> Message:
    """One message however many notifications: counts per kind, the TOP_ITEMS most important
    (by IMPORTANCE, newest first within a kind), and a button for the rest. Its size is bounded
    by construction (about 1,000 characters at most), within every platform's single message."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind or "other"] = counts.get(item.kind or "other", 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (_rank(kv[0]), kv[0]))
    top = sorted(enumerate(items), key=lambda p: (_rank(p[1].kind), -p[0]))[:TOP_ITEMS]
    lines = [" · ".join(f"{kind} {n}" for kind, n in ordered)] if items else []
    if top:
        lines.append("")
        if len(items) > len(top):
            lines.append(t.gettext("Most important:"))
        lines += [_line(item, t) for _, item in top]
    rest = len(items) - len(top)
    actions: tuple[Action, ...] = ()
    footer = ""
    if rest > 0:
        actions = (Action(t.gettext("Show all {n}", n=len(items)), "held", {"batch": batch}),)
        footer = t.ngettext("{n} more: /held {batch}", "{n} more: /held {batch}", rest, batch=batch)
    return Message(title=_title(reason, len(items), t), body="\n".join(lines), footer=footer, actions=actions)


def page(items: Sequence[HeldItem], batch: str, page_no: int, t: Translator = ENGLISH) -> Message:
    """One page of a released batch, oldest first, with Previous/Next buttons."""
    pages = max(1, (len(items) + PAGE - 1) // PAGE)
    page_no = min(max(1, page_no), pages)
    chunk = items[(page_no - 1) * PAGE : page_no * PAGE]
    first = (page_no - 1) * PAGE + 1
    actions = []
    if page_no > 1:
        actions.append(Action(t.gettext("Previous"), "held", {"batch": batch, "page": str(page_no - 1)}, replace=True))
    if page_no < pages:
        actions.append(Action(t.gettext("Next"), "held", {"batch": batch, "page": str(page_no + 1)}, replace=True))
    footer = t.gettext("page {page} of {pages}", page=page_no, pages=pages)
    if page_no < pages:
        footer += f" · /held {batch} {page_no + 1}"
    return Message(
        title=t.gettext(
            "Held notifications {first}-{last} of {total}", first=first, last=first + len(chunk) - 1, total=len(items)
        ),
        body="\n".join(_line(i, t) for i in chunk),
        footer=footer,
        actions=tuple(actions),
    )
