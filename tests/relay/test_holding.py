"""Quiet hours, snooze and digests through the core: what is held, what still arrives, one summary
when the hold ends and one digest per period, however many processes check. Two `Relay`s on one
Redis stand for two processes; time is a clock the test moves (never a sleep to a real HH:MM)."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import datetime

import httpx
import pytest
from redis.asyncio import Redis

from aitrader_sim.world import World
from relay.app import Relay
from relay.chat_settings import ChatSettings
from relay.config import RelaySettings
from relay.faults import FaultPoints
from relay.health import Health
from relay.holding import Holding, Schedule, parse_digest, parse_duration, parse_quiet
from relay.journal import reference
from relay.leases import Leases
from relay.logs import Redactor
from relay.models import Message, UserRef
from relay.outbox import Outbox, Outgoing
from relay.redis_values import text
from relay.tokens import TokenBox
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter


class Clock:
    def __init__(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, iso: str) -> None:
        self.now = datetime.fromisoformat(iso).timestamp()


def relays(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, clock: Clock, n: int
) -> tuple[list[Relay], list[RecordingAdapter]]:
    sinks = [RecordingAdapter() for _ in range(n)]
    built = [
        Relay(settings, redis, http, box, [sink], redactor=Redactor(), clock=clock, rng=random.Random(i))
        for i, sink in enumerate(sinks)
    ]
    return built, sinks


async def linked(relay: Relay, sink: RecordingAdapter, world: World, name: str = "ann") -> tuple[Chat, int]:
    agent = world.create_agent(name)
    chat = Chat(relay, sink.chat(name), UserRef("rec", name, name))
    await chat.text("link", token=agent.token)
    await chat.text("subscribe", what="all")
    return chat, agent.id


async def deliver(rs: list[Relay]) -> None:
    for r in rs:
        await r.deliverer.drain_due(math.inf)


def test_arguments_are_checked() -> None:
    assert str(parse_quiet("22:00 - 7:00")) == "22:00-07:00"
    # As phones and Chinese input methods type them.
    for typed in ("22：00-07：00", "22:00–07:00", "22:00—07:00", "22：00～07：00", "22:00~07:00"):
        assert str(parse_quiet(typed)) == "22:00-07:00", typed
    for bad in ("22:00", "22-07", "25:00-07:00", "22:00-22:00", "22:00-07:60", ""):
        with pytest.raises(ValueError):
            parse_quiet(bad)
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("1d") == 86400
    for bad in ("0m", "30s", "8d", "2", "h", "", "-2h", "1h 30m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_digest(["Replies", "mentions", "hourly"]) == (("replies", "mentions"), Schedule("hourly"))
    assert parse_digest(["followers", "daily", "8:05"]) == (("followers",), Schedule("daily 08:05"))
    assert parse_digest(["off"])[1] is None and "tasks" in parse_digest(["off"])[0]
    for words in (["hourly"], ["replies"], ["gossip", "hourly"], ["replies", "daily", "25:00"]):
        with pytest.raises(ValueError):
            parse_digest(words)


async def test_bad_input_gets_one_usage_line(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    (relay,), _ = relays(settings, redis, http, box, Clock("2026-11-30T12:00:00+00:00"), 1)
    sink = relay.adapters["rec"]
    assert isinstance(sink, RecordingAdapter)
    dm = Chat(relay, sink.chat("1"), UserRef("rec", "1", "ann"))
    for name, args in (
        ("snooze", {"duration": "forever"}),
        ("snooze", {"duration": "9d"}),
        ("quiet", {"hours": "22-7"}),
        ("digest", {"what": "replies weekly"}),
        ("held", {"page": "0"}),
        ("held", {"batch": "abc"}),  # not a batch id at all: usage, not "that summary is gone"
    ):
        text = await dm.text(name, **args)
        assert text.startswith(f"Usage: /{name}") and "\n" not in text, text
    assert "No quiet hours" in await dm.text("quiet")
    assert "Not snoozed" in await dm.text("snooze")
    assert "No digests" in await dm.text("digest")


async def test_quiet_hours_hold_then_one_summary_for_two_processes(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    clock = Clock("2026-11-30T22:30:00+01:00")  # 22:30 in Berlin
    rs, sinks = relays(settings, redis, http, box, clock, 2)
    dm, agent_id = await linked(rs[0], sinks[0], world)
    assert "now Europe/Berlin; daily briefs, quiet hours and digests follow it" in await dm.text(
        "timezone", zone="Europe/Berlin"
    )
    assert "held and sent as one summary at 07:00" in await dm.text("quiet", hours="22:00-07:00")
    assert "silent" in await dm.text("notify", kind="followers", mode="silent")
    bob = world.create_agent("bob")
    world.follow(bob.id, agent_id)  # followers: silent, so delivered without sound, not held
    for i in range(3):
        world.push_message(agent_id, "price_alert", f"BTC alert {i}")
    world.create_task(agent_id, "rebalance")
    await rs[1].poller.poll(agent_id)  # the other process routes it: the setting is shared
    await deliver(rs)
    sent = [s for sink in sinks for s in sink.sent]
    assert [(s.message.title, s.silent) for s in sent] == [("New follower", True)], sent
    status = await dm.text("status")
    assert "Quiet hours: 22:00-07:00 (now)" in status and "Europe/Berlin" in status
    assert "Held here: 4 held, 0 for digests" in status
    assert (await dm.text("held")).startswith("4 notifications are held now"), "not 'nothing was held'"
    health = Health(redis, rs[0].keys, {}, rs[0].metrics.registry, poll_max_seconds=10, max_queue_age=900)
    assert (await health.snapshot()).held == 4

    clock.set("2026-12-01T06:59:00+01:00")
    assert await rs[0].holding.check() == {}, "still quiet"
    clock.set("2026-12-01T07:00:20+01:00")
    outcomes = await asyncio.gather(rs[0].holding.check(), rs[1].holding.check())
    assert sorted(k for o in outcomes for k in o) == ["summary"]
    assert await rs[1].holding.check() == {}, "sent once"
    await deliver(rs)
    summaries = [s for sink in sinks for s in sink.sent][1:]
    assert len(summaries) == 1 and not summaries[0].silent
    text = summaries[0].message.plain_text()
    assert text.startswith("Quiet hours are over: 4 notifications held")
    assert "tasks 1 · messages 3" in text
    assert text.index("tasks:") < text.index("messages:"), "the task first: it asks for an action"
    assert (await health.snapshot()).held == 0

    # /why tells a held notification's journey: why it was held, and the summary it went out in.
    batch = summaries[0].message.actions[0].args["batch"] if summaries[0].message.actions else ""
    plan = await rs[0].holding.plan(dm.chat)
    held_items = await rs[0].holding.batch(dm.chat, batch or plan.last_batch)
    journey = await dm.text("why", ref=reference(held_items[0].key))
    assert "held by quiet hours 22:00-07:00 until 07:00 Europe/Berlin" in journey, journey
    assert "sent in the end-of-quiet-hours summary" in journey, journey
    # The summary itself carries its reference, and /why follows it to its delivery.
    ref = summaries[0].message.footer.rsplit("/why ", 1)[1]
    journey = await dm.text("why", ref=ref)
    assert (
        "the end-of-quiet-hours summary (/held " in journey
        and "): 4 held" in journey
        and "delivered" in journey.lower()
    )

    # After the quiet hours everything arrives one by one again.
    world.push_message(agent_id, "price_alert", "BTC after")
    await rs[0].poller.poll(agent_id)
    await deliver(rs)
    assert [s for sink in sinks for s in sink.sent][-1].message.title == "Message (price_alert)"


async def test_snooze_holds_everything_and_its_end_is_announced_once(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    clock = Clock("2026-11-30T12:00:00+00:00")
    (relay,), (sink,) = relays(settings, redis, http, box, clock, 1)
    dm, agent_id = await linked(relay, sink, world)
    await dm.text("notify", kind="messages", mode="silent")
    assert "Snoozed until 14:00 UTC" in await dm.text("snooze", duration="2h")
    assert "Snoozed: until 14:00 UTC" in await dm.text("status")
    world.push_message(agent_id, "price_alert", "held even though silent")
    await relay.poller.poll(agent_id)
    await deliver([relay])
    assert sink.sent == []
    clock.set("2026-11-30T14:00:05+00:00")
    assert await relay.holding.check() == {"summary": 1}
    assert await relay.holding.check() == {}
    await deliver([relay])
    assert [s.message.title for s in sink.sent] == ["Snooze is over: 1 notification held"]

    # A snooze ended early by hand, with nothing held, still says so, once.
    await dm.text("snooze", duration="30m")
    assert "Snooze ended" in await dm.text("snooze", duration="off")
    await deliver([relay])
    assert sink.sent[-1].message.title == "Snooze is over; nothing arrived meanwhile"
    assert "not snoozed" in await dm.text("snooze", duration="off")
    assert await relay.holding.check() == {}


async def test_a_snooze_ended_inside_quiet_hours_leaves_the_summary_to_the_quiet_hours(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    # Found in the demo: /snooze off at 22:53 inside 22:00-07:00 answered "Anything held comes now"
    # (nothing came: the quiet hours still held it), and at 07:00 the summary said "Snooze is over".
    clock = Clock("2026-11-30T22:30:00+00:00")
    (relay,), (sink,) = relays(settings, redis, http, box, clock, 1)
    dm, agent_id = await linked(relay, sink, world)
    await dm.text("quiet", hours="22:00-07:00")
    await dm.text("snooze", duration="1h")
    world.push_message(agent_id, "price_alert", "held")
    await relay.poller.poll(agent_id)
    reply = await dm.text("snooze", duration="off")
    assert reply == "Snooze ended, but these are quiet hours: what is held comes as one summary at 07:00 UTC.", reply
    await deliver([relay])
    assert sink.sent == []
    clock.set("2026-12-01T07:00:05+00:00")
    assert await relay.holding.check() == {"summary": 1}
    await deliver([relay])
    assert [s.message.title for s in sink.sent] == ["Quiet hours are over: 1 notification held"]

    # The same when the quiet hours are then ended by hand (as tried in the demo).
    clock.set("2026-12-01T22:10:00+00:00")
    await dm.text("snooze", duration="1h")
    world.push_message(agent_id, "price_alert", "held by hand")
    await relay.poller.poll(agent_id)
    await dm.text("snooze", duration="off")
    await dm.text("quiet", hours="off")
    await deliver([relay])
    assert sink.sent[-1].message.title == "Quiet hours are over: 1 notification held"
    await dm.text("quiet", hours="22:00-07:00")

    # A snooze running out inside quiet hours: the same, at their end or ended by hand.
    clock.set("2026-12-02T22:10:00+00:00")
    await dm.text("snooze", duration="30m")
    world.push_message(agent_id, "price_alert", "held while snoozed")
    await relay.poller.poll(agent_id)
    clock.set("2026-12-02T23:00:00+00:00")
    await dm.text("quiet", hours="off")
    await deliver([relay])
    assert sink.sent[-1].message.title == "Quiet hours are over: 1 notification held"
    await dm.text("quiet", hours="22:00-07:00")
    clock.set("2026-12-03T22:10:00+00:00")
    await dm.text("snooze", duration="30m")
    world.push_message(agent_id, "price_alert", "held again")
    await relay.poller.poll(agent_id)
    clock.set("2026-12-03T23:00:00+00:00")
    assert await relay.holding.check() == {}, "still quiet"
    clock.set("2026-12-04T07:00:05+00:00")
    assert await relay.holding.check() == {"summary": 1}
    await deliver([relay])
    assert sink.sent[-1].message.title == "Quiet hours are over: 1 notification held"


async def test_digest_once_per_period_across_processes_and_nothing_for_an_empty_one(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    clock = Clock("2026-11-30T10:40:00+00:00")
    rs, sinks = relays(settings, redis, http, box, clock, 3)
    dm, agent_id = await linked(rs[0], sinks[0], world)
    reply = await dm.text("digest", what="messages tasks hourly")
    assert "one hourly digest (next at 11:00 UTC)" in reply
    assert "messages, tasks: hourly" in await dm.text("digest")
    for i in range(5):
        world.push_message(agent_id, "price_alert", f"alert {i}")
    bob = world.create_agent("bob")
    world.follow(bob.id, agent_id)  # not in the digest: arrives now
    await rs[2].poller.poll(agent_id)
    await deliver(rs)
    assert [s.message.title for sink in sinks for s in sink.sent] == ["New follower"]
    assert "0 held, 5 for digests" in await dm.text("status")

    clock.set("2026-11-30T11:00:10+00:00")
    outcomes = await asyncio.gather(*(r.holding.check() for r in rs))
    assert sorted(k for o in outcomes for k in o) == ["digest"]
    await deliver(rs)
    digests = [s for sink in sinks for s in sink.sent][1:]
    assert len(digests) == 1
    assert digests[0].message.title == "Hourly digest: 5 notifications"
    assert digests[0].message.actions == (), "five fit: no button"

    clock.set("2026-11-30T12:00:10+00:00")  # nothing arrived in this hour: nothing is sent
    assert [await r.holding.check() for r in rs] == [{}, {}, {}]
    world.push_message(agent_id, "price_alert", "late one")
    await rs[1].poller.poll(agent_id)
    clock.set("2026-11-30T12:59:59+00:00")
    assert await rs[0].holding.check() == {}
    clock.set("2026-11-30T13:00:00+00:00")
    assert await rs[0].holding.check() == {"digest": 1}

    # Turned off, what was collected comes at once and the kind arrives one by one again.
    world.push_message(agent_id, "price_alert", "collected")
    await rs[1].poller.poll(agent_id)
    assert "Digest off" in await dm.text("digest", what="off")
    await deliver(rs)
    titles = [s.message.title for sink in sinks for s in sink.sent]
    assert titles.count("Digest: 1 notification") == 1 and len(titles) == 4, titles


async def test_a_release_claimed_by_a_process_that_died_is_sent_once_by_another(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    clock = Clock("2026-11-30T12:00:00+00:00")
    rs, sinks = relays(settings, redis, http, box, clock, 2)
    dm, agent_id = await linked(rs[0], sinks[0], world)
    await dm.text("snooze", duration="1h")
    for i in range(12):
        world.push_message(agent_id, "price_alert", f"alert {i}")
    await rs[0].poller.poll(agent_id)
    clock.set("2026-11-30T13:00:01+00:00")

    # A process claims the batch and stops at the fault point before queuing the summary; it is
    # cancelled there (tests/faults kills a real process at the same point).
    dying = Holding(
        redis,
        rs[0].keys,
        ChatSettings(redis, rs[0].keys),
        Outbox(redis, rs[0].keys),
        Leases(redis),
        clock=clock,
        faults=FaultPoints("after_hold_release"),
    )
    task = asyncio.create_task(dying.check_chat(dm.chat))
    hold_key = rs[0].keys.hold(dm.chat.key)
    for _ in range(400):
        if any(text(f).startswith("pending:") for f in await redis.hkeys(hold_key)):
            break
        await asyncio.sleep(0.025)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert any(text(f).startswith("pending:") for f in await redis.hkeys(hold_key))
    assert await redis.xlen(rs[0].keys.held(dm.chat.key)) == 0, "claimed: moved out of the held stream"
    assert await rs[1].holding.check() == {"recovered": 1}
    assert await rs[1].holding.check() == {}
    await deliver(rs)
    sent = [s for sink in sinks for s in sink.sent]
    assert [s.message.title for s in sent] == ["Snooze is over: 12 notifications held"]
    summary = sent[0].message
    assert summary.actions and summary.actions[0].command == "held"
    batch = summary.actions[0].args["batch"]
    first = (await dm.say("held", batch=batch)).messages[0]
    assert first.title == "Held notifications 1-10 of 12" and first.body.count("\n") == 9
    assert [a.label for a in first.actions] == ["Next"]
    second = (await dm.say("held", **first.actions[0].args)).messages[0]
    assert second.title == "Held notifications 11-12 of 12" and [a.label for a in second.actions] == ["Previous"]
    assert (await dm.say("held")).messages[0].title == first.title, "the last batch by default"
    assert (await dm.say("held", batch="2")).messages[0].title == second.title, "/held 2: page 2 of the last"


async def test_a_chinese_chat_gets_its_summary_and_replies_in_chinese(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    clock = Clock("2026-11-30T12:00:00+00:00")
    (relay,), (sink,) = relays(settings, redis, http, box, clock, 1)
    dm, agent_id = await linked(relay, sink, world)
    await dm.text("language", language="zh")
    assert "已暂停通知至 13:00 UTC" in await dm.text("snooze", duration="1h")
    assert "时长须在 1 分钟到 7 天之间" in await dm.text("snooze", duration="9d")
    for i in range(7):
        world.push_message(agent_id, "price_alert", f"alert {i}")
    await relay.poller.poll(agent_id)
    clock.set("2026-11-30T13:00:01+00:00")
    assert await relay.holding.check() == {"summary": 1}
    await deliver([relay])
    [summary] = [s.message for s in sink.sent]
    assert summary.title == "暂停结束：暂存了 7 条通知"
    # /why tells a held notification's journey in Chinese too (it was English inside Chinese lines).
    batch = summary.actions[0].args["batch"]
    held_items = await relay.holding.batch(dm.chat, batch)
    journey = await dm.text("why", ref=reference(held_items[0].key))
    assert "因 /snooze 暂存至 13:00 UTC，届时以一条汇总发送" in journey, journey
    assert f"已随暂停结束时的汇总发送（/held {batch}）" in journey, journey
    assert "held by" not in journey and "sent in" not in journey, journey
    journey = await dm.text("why", ref=summary.footer.rsplit("/why ", 1)[1].split()[0])
    assert f"暂停结束时的汇总（/held {batch}）：暂存了 7 条" in journey, journey
    assert "最重要的：" in summary.body and summary.footer.startswith("还有 2 条：/held ")
    assert [a.label for a in summary.actions] == ["显示全部 7 条"]


async def test_a_daily_digest_at_local_time_and_the_held_gauge(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    clock = Clock("2026-11-30T20:00:00+00:00")  # 05:00 on 1 Dec in Tokyo
    (relay,), (sink,) = relays(settings, redis, http, box, clock, 1)
    dm, agent_id = await linked(relay, sink, world)
    await dm.text("timezone", zone="Asia/Tokyo")
    reply = await dm.text("digest", what="messages daily 08:00")
    assert reply == "messages now come as one daily digest at 08:00 Asia/Tokyo; a day with none sends nothing.", reply
    for i in range(2):
        world.push_message(agent_id, "price_alert", f"overnight {i}")
    await relay.poller.poll(agent_id)
    health = Health(redis, relay.keys, {}, relay.metrics.registry, poll_max_seconds=10, max_queue_age=900)
    health.update_gauges(await health.snapshot())
    assert relay.metrics.registry.get_sample_value("relay_held_backlog") == 2
    clock.set("2026-11-30T22:59:00+00:00")  # 07:59 in Tokyo
    assert await relay.holding.check() == {}
    clock.set("2026-11-30T23:00:30+00:00")  # 08:00:30
    assert await relay.holding.check() == {"digest": 1}
    clock.set("2026-12-01T01:00:00+00:00")
    assert await relay.holding.check() == {}, "once a day"
    await deliver([relay])
    assert [s.message.title for s in sink.sent] == ["Daily digest (08:00): 2 notifications"]
    health.update_gauges(await health.snapshot())
    assert relay.metrics.registry.get_sample_value("relay_held_backlog") == 0


async def test_a_notification_routed_twice_is_held_and_summarised_once(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    """A fan-out retried after a crash, or a response recovered through `recent`, routes the same
    delivery key again: the outbox drops the twin at take, and holding must not keep it twice."""
    clock = Clock("2026-11-30T23:00:00+00:00")
    (relay,), (sink,) = relays(settings, redis, http, box, clock, 1)
    dm, _ = await linked(relay, sink, world)
    await dm.text("quiet", hours="22:00-07:00")
    first = [Outgoing(dm.chat, f"1:m{i}:{dm.chat.key}", Message(title=f"n{i}"), kind="messages") for i in range(3)]
    again = [*first[1:], Outgoing(dm.chat, f"1:m9:{dm.chat.key}", Message(title="n9"), kind="messages")]
    assert (await relay.holding.route(first, clock())).queued == []
    routed = await relay.holding.route(again, clock())
    assert routed.queued == [] and set(routed.held) == {o.key for o in again}, "a twin counts as held"
    assert (await relay.holding.plan(dm.chat)).held == 4

    clock.set("2026-12-01T07:00:10+00:00")
    assert list(await relay.holding.check()) == ["summary"]
    await deliver([relay])
    (summary,) = sink.sent
    assert summary.message.plain_text().startswith("Quiet hours are over: 4 notifications held")
    assert await redis.scard(relay.keys.held_keys(dm.chat.key)) == 0, "released keys leave the set"


async def test_a_summary_queued_by_a_process_that_died_before_clearing_its_claim_is_not_sent_twice(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    # The window after the summary is enqueued and before `pending:<batch>` is deleted: the next
    # check sends the batch again under the same delivery key, which the outbox takes once.
    clock = Clock("2026-11-30T12:00:00+00:00")
    rs, sinks = relays(settings, redis, http, box, clock, 2)
    dm, agent_id = await linked(rs[0], sinks[0], world)
    await dm.text("snooze", duration="1h")
    for i in range(3):
        world.push_message(agent_id, "price_alert", f"alert {i}")
    await rs[0].poller.poll(agent_id)
    clock.set("2026-11-30T13:00:01+00:00")
    assert await rs[0].holding.check() == {"summary": 1}
    batch = (await rs[0].holding.plan(dm.chat)).last_batch

    async def claim_left_behind() -> None:
        await redis.hset(rs[0].keys.hold(dm.chat.key), f"pending:{batch}", "0|snooze")
        await redis.sadd(rs[0].keys.hold_chats(), dm.chat.key)

    await claim_left_behind()  # before the first summary was delivered
    assert await rs[1].holding.check() == {"recovered": 1}
    await deliver(rs)
    await claim_left_behind()  # and after
    assert await rs[1].holding.check() == {"recovered": 1}
    await deliver(rs)
    sent = [s.message.title for sink in sinks for s in sink.sent]
    assert sent == ["Snooze is over: 3 notifications held"], sent
