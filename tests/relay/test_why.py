"""/why and the journal behind it: each notification's journey in a chat, the "never reached this
chat" answers, and the journal's bound. Real Redis, the simulator over HTTP, the recording adapter."""

from __future__ import annotations

import math
import re
import time

import httpx
from redis.asyncio import Redis

from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.errors import DeliveryError, Undeliverable
from relay.journal import DELIVERED, Entry, JournalBatch, reference
from relay.keys import JOURNAL_AGENT_CAP, JOURNAL_CHAT_CAP, JOURNAL_TTL, Keys
from relay.logs import Redactor
from relay.models import ChatRef, UserRef
from relay.tokens import TokenBox
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

REF = re.compile(r"/why ([a-z2-7]{8})\b")


async def linked(world: World, dm: Chat, name: str = "ann", subscribe: str = "all") -> int:
    agent = world.create_agent(name)
    assert f"#{agent.id}" in await dm.text("link", token=agent.token)
    if subscribe:
        await dm.text("subscribe", what=subscribe)
    return agent.id


def ref_of(footer: str) -> str:
    found = REF.search(footer)
    assert found, footer
    return found.group(1)


async def test_a_delivered_notification_carries_its_reference_and_why_tells_its_journey(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm)
    adapter.failures[dm.chat.key] = [DeliveryError("platform hiccup")]
    world.push_message(agent_id, "discussion_mention", "bob mentioned you", {"signal_id": 4242})
    # As after a heartbeat answer lost with the process: the poll reconciles first (all views).
    await relay.inbox.mark_for_reconcile(agent_id)
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    [sent] = adapter.to(dm.chat)
    ref = ref_of(sent.message.footer)
    assert ref == reference(sent.key)  # a hash of the delivery key: stable, and no token in it

    answer = await dm.text("why", ref=ref)
    lines = answer.splitlines()
    assert lines[0].startswith("Delivered ") and "signal 4242" in lines[0]
    steps = [line.split(" UTC ", 1)[1].split(":")[0] for line in lines[1:] if " UTC " in line]
    # The reconcile stores it from messages/recent; the heartbeat hands it out again.
    assert steps == ["fetched", "read again (already stored)", "queued", "attempt 1 failed", "delivered"], answer
    assert "heartbeat call 1" in answer and "routed by subscription #" in answer
    assert "attempt 1 failed: DeliveryError: platform hiccup" in answer
    assert "accepted by rec (attempt 2)" in answer
    # The signal id finds the same journey.
    assert (await dm.text("why", ref="4242")).splitlines()[1:] == lines[1:]


async def test_the_start_up_check_stores_only_rows_read_upstream_and_the_heartbeat_the_unread(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    """A process's first poll of an agent reads `recent` once: a row read upstream that Redis
    never stored (an answer lost with Redis's last second of writes) is recovered there; a row
    still unread is left to the heartbeat, so it is stored and journaled once."""
    agent_id = await linked(world, dm)
    [lost] = world.push_messages(agent_id, 1, type="custom_note", content_fmt="lost {i}")
    world.heartbeat(agent_id)  # read upstream; its answer never reached Redis
    [unread] = world.push_messages(agent_id, 1, type="custom_note", content_fmt="unread {i}")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert sorted(s.message.body for s in adapter.to(dm.chat)) == ["lost 0", "unread 0"]

    def steps(answer: str) -> list[str]:
        return [line.split(" UTC ", 1)[1] for line in answer.splitlines()[1:] if " UTC " in line]

    recovered = steps(await dm.text("why", ref=reference(f"{agent_id}:m{lost}:{dm.chat.key}")))
    assert recovered[0].startswith("fetched: recovered through messages/recent"), recovered
    handed = steps(await dm.text("why", ref=reference(f"{agent_id}:m{unread}:{dm.chat.key}")))
    assert [s.split(":")[0] for s in handed] == ["fetched", "queued", "delivered"], handed
    assert handed[0].startswith("fetched: heartbeat call 1"), handed


async def test_dead_letter_journey_says_the_cause_and_how_to_replay(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm)
    adapter.failures[dm.chat.key] = [Undeliverable("message is too long")]
    world.push_message(agent_id, "custom_note", "hello")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert adapter.to(dm.chat) == []
    [dead] = await relay.dead_letters.list()
    answer = await dm.text("why", ref=reference(dead.key))
    assert answer.startswith("Dead-lettered")
    assert "undeliverable: message is too long" in answer
    assert f"aitrader-relay dead-letters replay --chat {dm.chat.key}" in answer
    # The operator replays it; the next drain delivers it, and its journey says so.
    assert (await relay.dead_letters.replay(dm.chat.key)).queued == 1
    await relay.deliverer.drain_due(math.inf)
    assert len(adapter.to(dm.chat)) == 1
    answer = await dm.text("why", ref=reference(dead.key))
    steps = [line.split(" UTC ", 1)[1].split(":")[0] for line in answer.splitlines()[1:] if " UTC " in line]
    assert steps[-3:] == ["dead-lettered", "replayed", "delivered"], answer
    assert answer.startswith("Delivered")


async def test_a_kind_turned_off_is_journaled_as_never_reaching_the_chat(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm)
    await dm.text("notify", kind="mentions", mode="off")
    world.push_message(agent_id, "strategy_mention", "bob mentioned you", {"signal_id": 77})
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert adapter.to(dm.chat) == []
    answer = await dm.text("why", ref="77")
    assert answer.startswith("Never reached this chat: signal 77")
    assert "mentions are off in this chat (/notify mentions on)" in answer


async def test_never_reached_answers_name_the_reason(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm, subscribe="")
    # A group subscribes to the agent (an agent no chat subscribes to is not polled at all).
    admins_group = Chat(relay, adapter.chat("-5"), UserRef("rec", "100", "ann", is_chat_admin=True), private=False)
    await admins_group.text("subscribe", what="followers")
    world.push_message(agent_id, "strategy_reply", "carol replied", {"signal_id": 900})
    await relay.poller.poll(agent_id)
    # Fetched, but no route here: this chat has no subscription to the agent.
    answer = await dm.text("why", ref="900")
    assert "fetched m" in answer and "about signal 900 (replies)" in answer
    assert "no subscription to that agent: /subscribe replies here" in answer
    # A subscription for other kinds only.
    await dm.text("subscribe", what="followers")
    answer = await dm.text("why", ref="900")
    assert "no subscription here takes replies (they take followers)" in answer
    # An unknown reference.
    answer = await dm.text("why", ref="abcdefgh")
    assert answer.startswith("Nothing known here about abcdefgh"), "maybe a typo: not 'never reached'"
    assert f"newest {JOURNAL_CHAT_CAP:,} events of a chat, at most {JOURNAL_TTL // 86400} days" in answer
    # A rejected token pauses the agent: said before anything else.
    world.rotate_token(agent_id)
    await relay.poller.poll(agent_id)
    answer = await dm.text("why", ref="901")
    assert f"Your agent #{agent_id} is paused (AI-Trader rejected the token)" in answer
    assert "/link it again" in answer


async def test_observe_mode_says_tasks_are_not_seen(relay: Relay, world: World, dm: Chat) -> None:
    agent = world.create_agent("obs")
    await dm.text("link", token=agent.token, mode="observe")
    answer = await dm.text("why", ref="12345")
    assert "observe mode" in answer and "cannot see tasks" in answer


async def test_why_usage_is_one_line(dm: Chat) -> None:
    for bad in ("x", "-5", "abc!defg", "toolongreference"):
        answer = await dm.text("why", ref=bad)
        assert answer.startswith("Usage"), answer
        assert len(answer.splitlines()) == 1


async def test_another_chat_does_not_see_this_chats_journey(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm)
    world.push_message(agent_id, "custom_note", "hello")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    ref = ref_of(adapter.to(dm.chat)[0].message.footer)
    other = Chat(relay, adapter.chat("555"), UserRef("rec", "555", "eve"))
    answer = await other.text("why", ref=ref)
    assert answer.startswith(f"Nothing known here about {ref}")
    assert "fetched" not in answer


async def test_journal_bound_per_chat_and_agent_and_age(relay: Relay, redis: Redis, keys: Keys) -> None:
    chat = ChatRef("rec", "bound")
    batch = JournalBatch()
    now = 1_700_000_000.0
    for i in range(JOURNAL_CHAT_CAP + 150):
        batch.chat(chat, f"1:m{i}:{chat.key}", DELIVERED, "ok", at=now)
    for i in range(JOURNAL_AGENT_CAP + 150):
        batch.fetched(1, f"m{i}", "heartbeat call 1", at=now)
    await relay.journal.write(batch)
    assert await redis.xlen(keys.journal(chat.key)) == JOURNAL_CHAT_CAP
    assert await redis.xlen(keys.agent_journal(1)) == JOURNAL_AGENT_CAP
    newest = await relay.journal.chat_events(chat)
    assert newest[0].item == "m150" and newest[-1].item == f"m{JOURNAL_CHAT_CAP + 149}"  # the oldest went
    ttl = await redis.ttl(keys.journal(chat.key))
    assert 0 < ttl <= JOURNAL_TTL

    # Age: events older than JOURNAL_TTL (stream ids are Redis server time) go at the next write.
    old_key = keys.journal("rec:aged:")
    week_ago_ms = int((time.time() - JOURNAL_TTL - 60) * 1000)
    for i in range(3):
        old = Entry(DELIVERED, 1.0, "old", item=f"m{i}")
        await redis.xadd(old_key, old.fields(), id=f"{week_ago_ms}-{i}")  # type: ignore[arg-type]
    fresh = JournalBatch()
    fresh.chat("rec:aged:", "1:m999999:rec:aged:", DELIVERED, "late", at=now)
    await relay.journal.write(fresh)
    assert [e.item for e in await relay.journal.chat_events(ChatRef.from_key("rec:aged:"))] == ["m999999"]


async def test_steps_written_out_of_order_are_told_in_the_order_they_happened(relay: Relay, dm: Chat) -> None:
    """A poll writes its routing events when it ends; a quick drain can write the delivery first."""
    key = f"9:m5:{dm.chat.key}"
    drain = JournalBatch()
    drain.chat(dm.chat, key, DELIVERED, "accepted by rec (attempt 1)", at=1_000_002.0)
    await relay.journal.write(drain)
    poll = JournalBatch()
    poll.chat(
        dm.chat,
        key,
        "queued",
        "routed by subscription #3 (replies) and queued",
        at=1_000_001.0,
        signal=64,
        kind="replies",
    )
    await relay.journal.write(poll)
    answer = await dm.text("why", ref=reference(key))
    lines = answer.splitlines()
    assert lines[0].startswith("Delivered") and lines[0].endswith("signal 64"), answer
    assert "queued: routed" in lines[1] and "delivered: accepted" in lines[2]
    assert lines[-1].endswith("· replies")


async def test_the_journey_is_told_in_the_chats_language(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm)
    adapter.failures[dm.chat.key] = [DeliveryError("platform hiccup")]
    world.push_message(agent_id, "discussion_mention", "bob mentioned you", {"signal_id": 515})
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    await dm.text("language", language="zh")
    answer = await dm.text("why", ref="515")
    assert answer.startswith("已于 ") and "送达：信号 515" in answer.splitlines()[0], answer
    assert "第 1 次尝试失败：DeliveryError: platform hiccup" in answer  # the platform's words stay as they were
    assert "已被 rec 接收（第 2 次尝试）" in answer and "由订阅 #" in answer
    assert "此聊天中没有关于 abcdefgh 的记录" in await dm.text("why", ref="abcdefgh")


async def test_a_queued_notification_says_how_many_wait_ahead_of_it(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(world, dm)
    ids = world.push_messages(agent_id, 3, type="custom_note", content_fmt="n {i}")
    await relay.poller.poll(agent_id)  # queued, not drained
    answer = await dm.text("why", ref=reference(f"{agent_id}:m{ids[2]}:{dm.chat.key}"))
    assert answer.startswith("Queued, not delivered yet"), answer
    assert "Now in this chat's queue, 2 deliveries ahead of it." in answer
    first = await dm.text("why", ref=reference(f"{agent_id}:m{ids[0]}:{dm.chat.key}"))
    assert "Now in this chat's queue, 0 deliveries ahead of it." in first


async def test_a_notification_the_queue_cap_dead_lettered_says_so(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, world: World
) -> None:
    """The per-chat cap dead-letters the oldest inside the enqueue script, where no journal
    writes: /why finds it among the dead letters."""
    adapter = RecordingAdapter()
    capped = Relay(
        settings.model_copy(update={"max_queue_per_chat": 2}), redis, http, box, [adapter], redactor=Redactor()
    )
    dm = Chat(capped, adapter.chat("100"), UserRef("rec", "100", "ann"))
    agent_id = await linked(world, dm)
    ids = world.push_messages(agent_id, 4, type="custom_note", content_fmt="n {i}")
    await capped.poller.poll(agent_id)
    answer = await dm.text("why", ref=reference(f"{agent_id}:m{ids[0]}:{dm.chat.key}"))
    assert answer.startswith("Dead-lettered"), answer
    assert "backlog cap: more than 2 deliveries queued for this chat" in answer
    assert f"dead-letters replay --chat {dm.chat.key}" in answer


async def test_riding_writes_cost_no_round_trip_and_survive_a_script_flush(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter, redis: Redis
) -> None:
    """The journal rides on the fan-out's and the drain's scripts in one pipeline each: no SCRIPT
    EXISTS round trip before them (redis-py asks it for scripts it knows a pipeline runs), and a
    Redis that lost its scripts still runs them, once."""
    agent_id = await linked(world, dm)

    async def calls(name: str) -> int:
        stats = await redis.info("commandstats")
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    world.push_messages(agent_id, 3, type="custom_note", content_fmt="n {i}")
    exists_before = await calls("script|exists")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert await calls("script|exists") == exists_before
    assert len(adapter.to(dm.chat)) == 3

    await redis.script_flush()
    ids = world.push_messages(agent_id, 2, type="custom_note", content_fmt="m {i}")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert len(adapter.to(dm.chat)) == 5  # each once
    answer = await dm.text("why", ref=reference(f"{agent_id}:m{ids[1]}:{dm.chat.key}"))
    assert answer.startswith("Delivered") and "routed by subscription #" in answer, answer
