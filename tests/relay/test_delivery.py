"""Outbox and delivery decisions: per-chat order, retry-after per chat, dead letters, moves."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from relay.app import Relay
from relay.config import RelaySettings
from relay.errors import ChatGone, ChatMoved, RetryLater, SendUncertain, Undeliverable
from relay.holding import parse_quiet
from relay.keys import Keys
from relay.models import ChatRef, Message
from relay.outbox import Outgoing
from relay.redis_values import stream_entries
from relay.store import Subscription
from relay.tokens import TokenBox
from tests.fakes.recording import RecordingAdapter


def note(i: int) -> Message:
    return Message(title=f"n{i}", body=f"body {i}")


async def enqueue(relay: Relay, chat: ChatRef, n: int, start: int = 0) -> None:
    items = [Outgoing(chat, f"k{start + i}:{chat.key}", note(start + i)) for i in range(n)]
    assert await relay.outbox.enqueue(items, now=relay.deliverer._clock()) == n


async def test_each_chat_keeps_its_order_and_a_retry_after_holds_only_that_chat(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    a, b = adapter.chat("a"), adapter.chat("b")
    await enqueue(relay, a, 3)
    await enqueue(relay, b, 3)
    adapter.failures[a.key] = [RetryLater(30)]
    await relay.deliverer.drain(a)
    await relay.deliverer.drain(b)
    assert [s.message.title for s in adapter.to(b)] == ["n0", "n1", "n2"]
    assert adapter.to(a) == []
    # Chat a is due again only after its retry_after; it is not in the due list now.
    due_now = {c.key for c in await relay.outbox.due_chats(relay.deliverer._clock(), 10)}
    assert a.key not in due_now
    later = {c.key for c in await relay.outbox.due_chats(relay.deliverer._clock() + 31, 10)}
    assert a.key in later
    await relay.deliverer.drain(a)
    assert [s.message.title for s in adapter.to(a)] == ["n0", "n1", "n2"]
    assert await relay.outbox.pending(a) == 0


async def test_a_delivered_key_is_never_enqueued_or_sent_again(relay: Relay, adapter: RecordingAdapter) -> None:
    chat = adapter.chat("c")
    await enqueue(relay, chat, 1)
    await relay.deliverer.drain(chat)
    again = await relay.outbox.enqueue([Outgoing(chat, f"k0:{chat.key}", note(0))], now=relay.deliverer._clock())
    assert again == 0
    assert len(adapter.to(chat)) == 1


async def test_an_entry_queued_twice_is_sent_once_whether_its_twin_is_in_the_same_batch_or_a_later_take(
    relay: Relay, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    chat = adapter.chat("twice")
    await enqueue(relay, chat, 1)
    await enqueue(relay, chat, 1)  # not delivered yet, so the enqueue cannot skip it: one take holds both
    await relay.deliverer.drain(chat)
    assert len(adapter.to(chat)) == 1
    await enqueue(relay, chat, 1, start=1)
    # Past the enqueue check (written straight to the stream): the take finds its key delivered.
    await redis.xadd(
        keys.outbox(chat.key), {"key": f"k0:{chat.key}", "chat": chat.key, "m": note(0).to_json(), "s": "0", "t": "0"}
    )
    await relay.deliverer.drain(chat)
    assert [s.message.title for s in adapter.to(chat)] == ["n0", "n1"]
    assert await relay.outbox.pending(chat) == 0
    assert int(await redis.hget(keys.stats(), "duplicates_skipped") or 0) == 2


async def test_undeliverable_goes_to_dead_letters_with_its_cause_and_the_chat_moves_on(
    relay: Relay, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    chat = adapter.chat("d")
    await enqueue(relay, chat, 2)
    adapter.failures[chat.key] = [Undeliverable("400 bad format")]
    await relay.deliverer.drain(chat)
    assert [s.message.title for s in adapter.to(chat)] == ["n1"]
    dead = stream_entries(await redis.xrange(keys.dead_letters()))
    assert len(dead) == 1 and "400 bad format" in dead[0][1]["cause"]
    assert await relay.outbox.dead_count(chat) == 1


async def test_transient_failures_retry_with_backoff_then_dead_letter(relay: Relay, adapter: RecordingAdapter) -> None:
    chat = adapter.chat("e")
    await enqueue(relay, chat, 1)
    adapter.failures[chat.key] = [SendUncertain("read timeout")] * relay.settings.delivery_max_attempts
    for _ in range(relay.settings.delivery_max_attempts):
        await relay.deliverer.drain(chat)
    assert adapter.to(chat) == []
    assert len(adapter.attempts) == relay.settings.delivery_max_attempts
    assert await relay.outbox.dead_count(chat) == 1
    assert await relay.outbox.pending(chat) == 0


async def test_chat_gone_removes_its_subscriptions_and_keeps_what_was_queued_as_dead_letters(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    chat = adapter.chat("f")
    await relay.store.add_subscription(Subscription(0, "feed", chat, keyword="btc"))
    await relay.chat_settings.set_timezone(chat, "Asia/Tokyo")
    await relay.holding.set_quiet(chat, parse_quiet("22:00-07:00"))
    await enqueue(relay, chat, 3)
    adapter.failures[chat.key] = [ChatGone("403 blocked")]
    await relay.deliverer.drain(chat)
    assert await relay.store.chat_subscriptions(chat) == []
    # Found gone by a send, as when the platform says so: its settings go with it.
    assert str(await relay.chat_settings.timezone(chat)) == "UTC"
    assert (await relay.holding.plan(chat)).quiet is None
    assert await relay.outbox.dead_count(chat) == 3
    assert await relay.outbox.pending(chat) == 0
    assert len(adapter.attempts) == 1  # no further sends to a chat that is gone


async def test_chat_moved_carries_subscriptions_and_pending_entries_to_the_new_id(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    old, new = adapter.chat("-1"), adapter.chat("-100")
    await relay.store.add_subscription(Subscription(0, "feed", old, keyword="btc"))
    await relay.store.set_kind_mode(old, "tasks", "silent")
    await relay.chat_settings.set_timezone(old, "Asia/Tokyo")
    await relay.holding.set_quiet(old, parse_quiet("22:00-07:00"))
    await enqueue(relay, old, 2)
    adapter.failures[old.key] = [ChatMoved(new)]
    await relay.deliverer.drain(old)
    await relay.deliverer.drain(new)
    assert [s.message.title for s in adapter.to(new)] == ["n0", "n1"]
    assert [s.keyword for s in await relay.store.chat_subscriptions(new)] == ["btc"]
    assert await relay.store.chat_subscriptions(old) == []
    assert (await relay.store.kind_modes(new)).get("tasks") == "silent"
    assert str(await relay.chat_settings.timezone(new)) == "Asia/Tokyo"
    assert str((await relay.holding.plan(new)).quiet) == "22:00-07:00"


async def test_an_entry_left_pending_by_a_dead_sender_is_reclaimed_and_counted_only_if_its_send_began(
    relay: Relay, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    chat = adapter.chat("g")
    await enqueue(relay, chat, 3)
    await relay.outbox.ensure_group(chat)
    taken = await relay.outbox.take(chat, "dead-process", 2)  # read, never acknowledged
    assert [d.key for d in taken] == [f"k0:{chat.key}", f"k1:{chat.key}"]
    # A sender sends in order: it died during the platform call for k0 and had merely read k1.
    await relay.outbox.mark_in_flight(taken[0])
    assert await redis.hgetall(keys.in_flight()) == {chat.key.encode(): taken[0].key.encode()}
    await relay.deliverer.drain(chat)
    assert [s.message.title for s in adapter.to(chat)] == ["n0", "n1", "n2"]
    assert relay.metrics.uncertain_resends._value.get() == 1  # k0 only: k1 was never sent
    assert await redis.hlen(keys.in_flight()) == 0  # every outcome is known again


async def test_a_send_refused_by_the_platform_clears_its_in_flight_mark_and_a_timeout_keeps_it(
    relay: Relay, adapter: RecordingAdapter, redis: Redis, keys: Keys
) -> None:
    chat = adapter.chat("f")
    await enqueue(relay, chat, 1)
    adapter.failures[chat.key] = [RetryLater(0.01)]
    await relay.deliverer.drain(chat)
    assert adapter.attempts == [chat.key] and not adapter.sent
    assert await redis.hlen(keys.in_flight()) == 0  # refused: certainly not sent
    adapter.failures[chat.key] = [SendUncertain("reset after the request was written")]
    await relay.deliverer.drain(chat)
    assert await redis.hget(keys.in_flight(), chat.key) == f"k0:{chat.key}".encode()  # may have arrived
    await relay.deliverer.drain(chat)
    assert [s.message.title for s in adapter.to(chat)] == ["n0"]
    assert await redis.hlen(keys.in_flight()) == 0


async def test_running_delivery_loop_sends_what_fan_out_enqueues(relay: Relay, adapter: RecordingAdapter) -> None:
    chat = adapter.chat("h")
    await relay.deliverer.start()
    try:
        await enqueue(relay, chat, 5)
        relay.deliverer.wake()
        await adapter.wait_for(5, timeout=10)
    finally:
        await relay.deliverer.stop(2)
    assert [s.message.title for s in adapter.to(chat)] == [f"n{i}" for i in range(5)]


class HangsOnce(RecordingAdapter):
    """A platform call that never returns the first time (a stuck connection, a lost limiter)."""

    hung: bool = False

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        if not self.hung:
            self.hung = True
            await asyncio.Event().wait()
        await super().send(chat, message, key=key, silent=silent)


async def test_a_send_that_never_returns_does_not_hold_its_chat_for_ever(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox
) -> None:
    from relay.logs import Redactor

    adapter = HangsOnce()
    relay = Relay(
        settings.model_copy(update={"delivery_send_timeout_seconds": 0.2}),
        redis,
        http,
        box,
        [adapter],
        redactor=Redactor(),
    )
    chat = adapter.chat("x")
    await enqueue(relay, chat, 2)
    await relay.deliverer.drain(chat)  # the first send times out: it counts as uncertain, retried later
    assert adapter.sent == [] and await relay.outbox.pending(chat) == 2
    await relay.deliverer.drain(chat)
    assert [s.message.title for s in adapter.to(chat)] == ["n0", "n1"]
    assert relay.metrics.uncertain_resends._value.get() == 1


async def test_the_delivery_loop_waits_instead_of_spinning_while_a_chat_is_busy(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    """While one slow drain runs, its chat stays due in Redis; the loop must not poll Redis in a
    tight loop meanwhile (it did: a minute of CPU in a 2.5-minute benchmark)."""
    chat = adapter.chat("slow")
    gate = asyncio.Event()
    original = adapter.send

    async def slow_send(chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        await gate.wait()
        await original(chat, message, key=key, silent=silent)

    adapter.send = slow_send  # type: ignore[method-assign]
    await enqueue(relay, chat, 1)
    calls = 0
    due_chats = relay.outbox.due_chats

    async def counting_due_chats(now: float, limit: int):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await due_chats(now, limit)

    relay.outbox.due_chats = counting_due_chats  # type: ignore[method-assign]
    await relay.deliverer.start()
    try:
        await asyncio.sleep(1.0)
        gate.set()
        await adapter.wait_for(1)
    finally:
        await relay.deliverer.stop(2)
    assert calls <= 12  # about 4 per second at most while waiting; a spinning loop makes thousands


async def test_a_failed_acknowledgement_is_retried_and_never_causes_a_second_send(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    chat = adapter.chat("ack")
    await enqueue(relay, chat, 1)
    real_finish = relay.outbox.finish
    failures = [RedisConnectionError("blip")] * 3

    async def flaky_finish(chat, **kw):  # type: ignore[no-untyped-def]
        # The drain's last round trip carries the acknowledgement of its last send.
        if failures and kw.get("acks"):
            raise failures.pop()
        return await real_finish(chat, **kw)

    relay.outbox.finish = flaky_finish  # type: ignore[method-assign]
    await relay.deliverer.drain(chat)
    assert not failures  # the acknowledgement was retried until it went through
    await relay.deliverer.drain(chat)
    assert len(adapter.to(chat)) == 1
    assert await relay.outbox.pending(chat) == 0


async def test_bot_removed_from_a_forum_drops_its_topic_subscriptions_too(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    from relay.adapter import ChatChange

    group, topic = adapter.chat("-77"), ChatRef("rec", "-77", "5")
    await relay.store.add_subscription(Subscription(0, "feed", group, keyword="a"))
    await relay.store.add_subscription(Subscription(0, "feed", topic, keyword="b"))
    await relay.store.add_subscription(Subscription(0, "feed", adapter.chat("-78"), keyword="c"))
    await relay.on_chat_change(ChatChange(group, "gone"))
    assert await relay.store.chat_subscriptions(group) == []
    assert await relay.store.chat_subscriptions(topic) == []
    assert len(await relay.store.chat_subscriptions(adapter.chat("-78"))) == 1
