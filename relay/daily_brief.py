"""The daily market brief: `/subscribe intel daily <HH:MM> [sections]`, at the chat's local time.

Every process checks every `CHECK_SECONDS` which briefs are due; a brief is handled by the one
process that wins `SET NX` on its (chat, local date) claim, so however many processes run it is
sent once a day. A process that was down catches up on start: a brief less than `max_late`
(2 hours) late is sent, an older one is skipped with a log line (a market brief from this
morning is news from this morning; at night it only confuses).

The text comes from an injected `compose(sections)`: the same formatting as `/intel`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis

from relay.chat_settings import ChatSettings
from relay.errors import BadValue
from relay.i18n import ENGLISH, N_, Catalogues, Translator
from relay.journal import QUEUED, Journal, stamp
from relay.keys import BRIEF_CLAIM_TTL, Keys
from relay.models import ChatRef, Message
from relay.outbox import Outbox, Outgoing

log = logging.getLogger(__name__)

SECTIONS: tuple[str, ...] = ("overview", "macro", "etf", "news")
DEFAULT_SECTIONS: tuple[str, ...] = ("overview",)
CHECK_SECONDS = 30.0
MAX_LATE_SECONDS = 2 * 3600.0
CLAIM_TTL = BRIEF_CLAIM_TTL
# A claim taken and not yet turned into a queued message: if its process dies while composing,
# another one may take the brief over after this long (still only while it is < 2 h late).
SENDING_TTL = 300

Compose = Callable[[Sequence[str], Translator], Awaitable[Message]]  # sections, the chat's language


@dataclass(frozen=True, slots=True)
class Brief:
    sub_id: int
    chat: ChatRef
    at: clock_time  # local time of day in the chat's time zone
    sections: tuple[str, ...]
    created_at: float
    created_by: str = ""

    def describe(self, t: Translator = ENGLISH) -> str:
        return t.gettext(
            "#{sub_id} daily intel brief at {at} ({sections})",
            sub_id=self.sub_id,
            at=f"{self.at:%H:%M}",
            sections=", ".join(self.sections),
        )


def parse_time(raw: str) -> clock_time:
    """HH:MM on a 24-hour clock; raises ValueError."""
    hours, sep, minutes = raw.strip().partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2 or not 1 <= len(hours) <= 2:
        raise BadValue(N_("time is HH:MM on a 24-hour clock, like 08:30"))
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise BadValue(N_("time is HH:MM on a 24-hour clock, like 08:30"))
    return clock_time(h, m)


def parse_sections(words: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(w.lower() for w in words))
    unknown = [w for w in chosen if w not in SECTIONS]
    if unknown:
        raise BadValue(
            N_("unknown section {section}; sections are {sections}"),
            section=unknown[0][:20],
            sections=", ".join(SECTIONS),
        )
    return chosen or DEFAULT_SECTIONS


class DailyBriefs:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: ChatSettings,
        outbox: Outbox,
        compose: Compose,
        *,
        on_enqueued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        max_late: float = MAX_LATE_SECONDS,
        check_seconds: float = CHECK_SECONDS,
        catalogues: Catalogues | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._journal = journal
        self._catalogues = catalogues or Catalogues.load()
        self._r = redis
        self._k = keys
        self._settings = settings
        self._outbox = outbox
        self._compose = compose
        self._on_enqueued = on_enqueued
        self._clock = clock
        self._max_late = max_late
        self._check_seconds = check_seconds

    # --- subscriptions ---------------------------------------------------------------------
    async def add(self, chat: ChatRef, at: clock_time, sections: Sequence[str], created_by: str) -> Brief:
        """One brief per chat: a new one replaces the old (and takes a new id)."""
        sub_id = int(await self._r.incr(self._k.sub_seq()))  # shared with subscriptions: one id space
        brief = Brief(sub_id, chat, at, tuple(sections), self._clock(), created_by)
        record = {
            "id": sub_id,
            "time": f"{at:%H:%M}",
            "sections": list(brief.sections),
            "created_at": brief.created_at,
            "created_by": created_by,
        }
        await self._r.hset(self._k.briefs(), chat.key, json.dumps(record))
        return brief

    async def of_chat(self, chat: ChatRef) -> Brief | None:
        raw = await self._r.hget(self._k.briefs(), chat.key)
        return _brief(chat.key, raw) if raw else None

    async def all(self) -> list[Brief]:
        rows = await self._r.hgetall(self._k.briefs())
        briefs = [_brief(k.decode() if isinstance(k, bytes) else k, v) for k, v in rows.items()]
        return [b for b in briefs if b is not None]

    async def remove(self, chat: ChatRef, sub_id: int) -> bool:
        brief = await self.of_chat(chat)
        if brief is None or brief.sub_id != sub_id:
            return False
        await self._r.hdel(self._k.briefs(), chat.key)
        return True

    async def drop_chat(self, chat: ChatRef) -> None:
        await self._r.hdel(self._k.briefs(), chat.key)

    async def move_chat(self, old: ChatRef, new: ChatRef) -> None:
        raw = await self._r.hget(self._k.briefs(), old.key)
        if raw:
            await self._r.hset(self._k.briefs(), new.key, raw)
            await self._r.hdel(self._k.briefs(), old.key)

    # --- sending ---------------------------------------------------------------------------
    def start(self, scheduler: AsyncIOScheduler) -> None:
        # First run right away: briefs missed while the relay was down are caught up on start.
        scheduler.add_job(
            self.check,
            "interval",
            seconds=self._check_seconds,
            id="daily-briefs",
            next_run_time=datetime.now().astimezone(),
            jitter=min(5.0, self._check_seconds / 6),
        )

    async def check(self) -> dict[str, int]:
        """Handles every due brief once; returns counts by outcome (for tests and logs)."""
        counts: dict[str, int] = {}
        for brief in await self.all():
            try:
                outcome = await self.check_one(brief)
            except Exception:
                log.exception("daily brief check failed chat=%s", brief.chat.key)
                outcome = "error"
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    async def check_one(self, brief: Brief) -> str:
        now = self._clock()
        zone = await self._settings.timezone(brief.chat)
        today = datetime.fromtimestamp(now, zone).date()
        outcome = "not-due"  # what happened to today's brief, unless yesterday's was acted on now
        # Yesterday too: a 23:30 brief missed until 00:10 is 40 minutes late, not tomorrow's.
        for day in (today - timedelta(days=1), today):
            due = datetime.combine(day, brief.at, tzinfo=zone).timestamp()
            if due > now or due < brief.created_at:
                continue  # not yet, or before the subscription existed
            handled = await self._handle(brief, day, now - due, now)
            if day == today or handled != "done-elsewhere":
                outcome = handled
        return outcome

    async def _handle(self, brief: Brief, day: date, late: float, now: float) -> str:
        claim = self._k.brief_claim(brief.chat.key, day.isoformat())
        if late > self._max_late:
            if await self._r.set(claim, "skipped", nx=True, ex=CLAIM_TTL):
                log.warning(
                    "daily brief skipped chat=%s date=%s late_by=%.0fs (more than %.0fs late)",
                    brief.chat.key,
                    day,
                    late,
                    self._max_late,
                )
                return "skipped"
            return "done-elsewhere"
        if not await self._r.set(claim, "sending", nx=True, ex=SENDING_TTL):
            return "done-elsewhere"
        t = self._catalogues.translator(await self._settings.language(brief.chat))
        try:
            message = await self._compose(brief.sections, t)
        except Exception as exc:
            # Release the claim: the next check (here or elsewhere) tries again while still in time.
            await self._r.delete(claim)
            log.warning("daily brief not composed chat=%s date=%s error=%s", brief.chat.key, day, type(exc).__name__)
            return "retry"
        titled = Message(
            # English weekday and month names; other languages get the ISO date.
            title=t.gettext("Daily market brief, {date}", date=f"{day:%a %d %b}" if t.language == "en" else str(day)),
            body=_join(message),
            fields=message.fields,
            link=message.link,
            footer=message.footer,
        )
        key = f"brief:{brief.sub_id}:{day.isoformat()}"
        await self._outbox.enqueue([Outgoing(brief.chat, key, stamp(titled, key))], now=now)
        await self._r.set(claim, "sent", ex=CLAIM_TTL)
        if self._journal is not None:
            # One a day per chat: its own round trip costs nothing worth batching.
            queued = N_("the daily brief #{sub} of {date}, queued")
            await self._journal.record(brief.chat, key, QUEUED, queued, params={"sub": brief.sub_id, "date": day})
        self._on_enqueued()
        log.info("daily brief queued chat=%s date=%s late_by=%.0fs", brief.chat.key, day, late)
        return "sent"


def _join(message: Message) -> str:
    return "\n".join(s for s in (message.title, message.body) if s)


def _brief(chat_key: str, raw: Any) -> Brief | None:
    try:
        d = json.loads(raw)
        return Brief(
            sub_id=int(d["id"]),
            chat=ChatRef.from_key(chat_key),
            at=parse_time(str(d["time"])),
            sections=tuple(str(s) for s in d.get("sections") or DEFAULT_SECTIONS),
            created_at=float(d.get("created_at") or 0),
            created_by=str(d.get("created_by") or ""),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("daily brief record unreadable chat=%s", chat_key)
        return None
