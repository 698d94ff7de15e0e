"""The daily brief: due at the chat's local time, queued once per chat and local date however many
processes check at once, caught up on start when less than 2 hours late, skipped (with a log
line) when later. Two DailyBriefs on one Redis stand for two relay processes; time is a clock
the test moves."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from datetime import time as clock_time

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.market_seed import seed_intel
from aitrader_sim.world import World
from relay.app import Relay
from relay.chat_settings import ChatSettings
from relay.config import RelaySettings
from relay.daily_brief import DailyBriefs, parse_sections, parse_time
from relay.i18n import Translator
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef, Message, UserRef
from relay.outbox import Outbox
from relay.tokens import TokenBox
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

CHAT = ChatRef("rec", "brief-chat")


class Clock:
    def __init__(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).timestamp()


class Composer:
    def __init__(self, *, fail: int = 0, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail
        self.delay = delay

    async def __call__(self, sections: Sequence[str], t: Translator) -> Message:
        self.calls.append(tuple(sections))
        await asyncio.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("upstream down")
        return Message(title="Market overview", body=f"sections: {', '.join(sections)}")


def process(redis: Redis, keys: Keys, clock: Clock, composer: Composer) -> DailyBriefs:
    """What one relay process builds: its own objects over the shared Redis."""
    return DailyBriefs(redis, keys, ChatSettings(redis, keys), Outbox(redis, keys), composer, clock=clock)


async def queued(redis: Redis, keys: Keys, chat: ChatRef = CHAT) -> list[Message]:
    entries = await redis.xrange(keys.outbox(chat.key)) or []
    return [Message.from_json(fields[b"m"]) for _id, fields in entries if fields]


def test_times_and_sections_are_checked() -> None:
    assert parse_time("8:05") == clock_time(8, 5) and parse_time("23:59") == clock_time(23, 59)
    for bad in ("24:00", "12:60", "1205", "12:5", "ab:cd", "", "-1:30"):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert parse_sections([]) == ("overview",)
    assert parse_sections(["MACRO", "news", "macro"]) == ("macro", "news")
    with pytest.raises(ValueError, match="unknown section"):
        parse_sections(["weather"])


async def test_two_processes_checking_at_once_queue_the_brief_once(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T06:00:00+00:00")
    slow = Composer(delay=0.05)  # both processes are inside the check at the same time
    a, b = process(redis, keys, clock, slow), process(redis, keys, clock, slow)
    await ChatSettings(redis, keys).set_timezone(CHAT, "Europe/Berlin")  # UTC+1 in winter
    await a.add(CHAT, clock_time(8, 0), ["overview", "macro"], "rec:1")
    clock.set("2026-11-30T06:59:00+00:00")  # 07:59 in Berlin: not yet
    assert list(await asyncio.gather(a.check(), b.check())) == [{"not-due": 1}, {"not-due": 1}]
    clock.set("2026-11-30T07:00:20+00:00")  # 08:00:20 in Berlin
    outcomes = await asyncio.gather(a.check(), b.check(), a.check(), b.check())
    assert sorted(k for o in outcomes for k in o) == ["done-elsewhere"] * 3 + ["sent"]
    [brief] = await queued(redis, keys)
    assert brief.title == "Daily market brief, Mon 30 Nov" and "overview, macro" in brief.body
    assert slow.calls == [("overview", "macro")], "composed once, not once per process"
    clock.set("2026-11-30T15:00:00+00:00")
    await asyncio.gather(a.check(), b.check())
    assert len(await queued(redis, keys)) == 1, "later the same day: nothing more"
    clock.set("2026-12-01T07:00:05+00:00")  # the next morning
    await asyncio.gather(a.check(), b.check())
    assert [m.title for m in await queued(redis, keys)] == [
        "Daily market brief, Mon 30 Nov",
        "Daily market brief, Tue 01 Dec",
    ]


async def test_a_brief_missed_while_down_is_sent_on_start_if_under_two_hours_late(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T05:00:00+00:00")
    first = process(redis, keys, clock, Composer())
    await first.add(CHAT, clock_time(7, 30), [], "rec:1")
    # The relay was down from 07:00 to 09:10: the 07:30 brief is 1 h 40 min late at the restart.
    clock.set("2026-11-30T09:10:00+00:00")
    restarted = process(redis, keys, clock, Composer())
    assert await restarted.check() == {"sent": 1}
    assert len(await queued(redis, keys)) == 1


async def test_a_brief_more_than_two_hours_late_is_skipped_with_a_log_line(
    redis: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock("2026-11-30T05:00:00+00:00")
    composer = Composer()
    first = process(redis, keys, clock, composer)
    await first.add(CHAT, clock_time(7, 30), [], "rec:1")
    clock.set("2026-11-30T09:31:00+00:00")  # 2 h 1 min late
    restarted = process(redis, keys, clock, composer)
    with caplog.at_level(logging.WARNING, logger="relay.daily_brief"):
        assert await restarted.check() == {"skipped": 1}
        assert await restarted.check() == {"done-elsewhere": 1}, "logged once, not at every check"
    assert await queued(redis, keys) == [] and composer.calls == []
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "date=2026-11-30" in skipped[0] and CHAT.key in skipped[0]


async def test_a_brief_due_just_before_midnight_is_still_caught_up_after_it(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T20:00:00+00:00")
    briefs = process(redis, keys, clock, Composer())
    await briefs.add(CHAT, clock_time(23, 30), [], "rec:1")
    clock.set("2026-12-01T00:40:00+00:00")  # 70 minutes late, already the next date
    assert await briefs.check() == {"sent": 1}
    [brief] = await queued(redis, keys)
    assert brief.title == "Daily market brief, Mon 30 Nov"


async def test_a_subscription_made_after_todays_time_starts_tomorrow(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T09:00:00+00:00")
    briefs = process(redis, keys, clock, Composer())
    await briefs.add(CHAT, clock_time(8, 30), [], "rec:1")  # 30 minutes ago
    assert await briefs.check() == {"not-due": 1}
    assert await queued(redis, keys) == []


async def test_an_upstream_failure_releases_the_claim_and_a_later_check_sends(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T07:00:00+00:00")
    composer = Composer(fail=1)
    a, b = process(redis, keys, clock, composer), process(redis, keys, clock, composer)
    await a.add(CHAT, clock_time(7, 30), [], "rec:1")
    clock.set("2026-11-30T07:30:10+00:00")
    assert await a.check() == {"retry": 1}
    clock.set("2026-11-30T07:30:40+00:00")
    assert await b.check() == {"sent": 1}, "the other process takes it over on its next check"
    assert len(await queued(redis, keys)) == 1


async def test_unsubscribing_and_a_gone_chat_remove_the_brief(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T05:00:00+00:00")
    briefs = process(redis, keys, clock, Composer())
    brief = await briefs.add(CHAT, clock_time(7, 0), [], "rec:1")
    assert not await briefs.remove(ChatRef("rec", "other"), brief.sub_id), "only from its own chat"
    assert not await briefs.remove(CHAT, brief.sub_id + 1)
    assert await briefs.remove(CHAT, brief.sub_id) and await briefs.all() == []
    await briefs.add(CHAT, clock_time(7, 0), [], "rec:1")
    await briefs.drop_chat(CHAT)
    clock.set("2026-11-30T07:00:10+00:00")
    assert await briefs.check() == {} and await queued(redis, keys) == []


async def test_a_utc_default_and_a_new_time_zone_move_the_due_time(redis: Redis, keys: Keys) -> None:
    clock = Clock("2026-11-30T00:00:00+00:00")
    briefs = process(redis, keys, clock, Composer())
    await briefs.add(CHAT, clock_time(9, 0), [], "rec:1")
    clock.set("2026-11-30T09:00:30+00:00")
    assert await briefs.check() == {"sent": 1}, "UTC by default"
    await ChatSettings(redis, keys).set_timezone(CHAT, "America/New_York")  # UTC-5 in winter
    clock.set("2026-12-01T09:00:30+00:00")
    assert await briefs.check() == {"not-due": 1}
    clock.set("2026-12-01T14:00:30+00:00")
    assert await briefs.check() == {"sent": 1}
    assert datetime.fromtimestamp(clock.now, UTC).hour == 14


async def test_two_relays_on_one_redis_deliver_one_brief_with_the_intel_views(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    seed_intel(world)
    clock = Clock("2026-11-30T06:00:00+00:00")
    sinks = [RecordingAdapter(), RecordingAdapter()]
    relays = [
        Relay(settings, redis, http, box, [sink], redactor=Redactor(), clock=clock, rng=random.Random(i))
        for i, sink in enumerate(sinks)
    ]
    chat = sinks[0].chat("brief")
    admin = Chat(relays[0], chat, UserRef("rec", "1", "ann"))
    assert "now Asia/Tokyo" in await admin.text("timezone", zone="Asia/Tokyo")  # UTC+9
    assert "at 08:00 Asia/Tokyo" in await admin.text("subscribe", what="intel daily 08:00 overview macro")
    clock.set("2026-11-30T23:00:30+00:00")  # 08:00:30 on 1 Dec in Tokyo
    outcomes = await asyncio.gather(*(r.briefs.check() for r in relays))
    assert sorted(k for o in outcomes for k in o) == ["done-elsewhere", "sent"]
    for r in relays:
        await r.deliverer.drain_due(math.inf)
    delivered = [s for sink in sinks for s in sink.sent]
    assert len(delivered) == 1 and delivered[0].chat == chat
    text = delivered[0].message.plain_text()
    assert text.startswith("Daily market brief, Tue 01 Dec")
    assert "Market overview" in text and "Macro" in text and "bullish" in text
    # Like every notification, the brief carries its /why reference, and its journey is told.
    ref = delivered[0].message.footer.rsplit("/why ", 1)[1]
    journey = await admin.text("why", ref=ref)
    assert journey.startswith("Delivered") and "the daily brief #" in journey and "2026-12-01, queued" in journey
    for r in relays:
        await r.renderer.close()
