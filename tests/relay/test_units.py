"""Unit tests for pieces the pipeline tests cover only end to end: word splitting, fan-out's merge
of several routes into one chat, its reply lookup, enqueue idempotence and reconcile marks.

Real Redis throughout (the `relay` fixture: built, not started); the simulator answers the few
upstream reads fan-out makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from relay.models import ChatRef, CommandSpec, Message, Notification, Param
from relay.outbox import Outgoing
from relay.specs import BY_NAME
from relay.store import Subscription
from relay.words import parse_words, split_command
from tests.fakes.recording import RecordingAdapter

# --- word splitting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/Feed@MyBot btc  strategy", ("feed", "btc  strategy")),
        ("  /help  ", ("help", "")),
        ("/reply 5 two\nlines", ("reply", "5 two\nlines")),
        ("feed btc", ("", "feed btc")),  # not a command: the line comes back untouched
        ("/", ("", "")),
    ],
)
def test_split_command(line: str, expected: tuple[str, str]) -> None:
    assert split_command(line) == expected


def test_words_fill_parameters_in_order_and_rest_keeps_the_line() -> None:
    reply = BY_NAME["reply"]  # signal_id, then the text (rest of the line)
    assert parse_words(reply, "42   nice\tcall\nsecond line ") == {"signal_id": "42", "text": "nice\tcall\nsecond line"}
    assert parse_words(reply, "42") == {"signal_id": "42"}
    assert parse_words(reply, "") == {}


def test_a_number_never_names_a_choice_so_a_signed_one_is_a_page() -> None:
    feed = BY_NAME["feed"]  # keyword, type (choices), page
    assert parse_words(feed, "btc 2") == {"keyword": "btc", "page": "2"}
    assert parse_words(feed, "btc -1") == {"keyword": "btc", "page": "-1"}  # a bad page, not a bad type
    assert parse_words(feed, "btc strategy 3") == {"keyword": "btc", "type": "strategy", "page": "3"}


def test_words_beyond_the_last_parameter_are_kept_as_extra() -> None:
    spec = CommandSpec("x", "test", (Param("a", "first"), Param("b", "second")))
    assert parse_words(spec, "1 2 3  4") == {"a": "1", "b": "2", "_extra": "3  4"}
    assert parse_words(spec, "\t1\n2") == {"a": "1", "b": "2"}


# --- fan-out: several routes into one chat --------------------------------------------------------


def note(agent_id: int, message_id: int, kind: str = "custom_note", **data: object) -> Notification:
    return Notification(agent_id, message_id, kind, f"content {message_id}", data, datetime.now(UTC))


async def route(relay: Relay, chat: ChatRef, agent_id: int, *kinds: str) -> None:
    await relay.store.add_subscription(Subscription(0, "agent", chat, agent_id=agent_id, kinds=frozenset(kinds)))


async def test_two_routes_into_one_chat_deliver_once_in_the_chats_mode(relay: Relay, adapter: RecordingAdapter) -> None:
    loud, quiet, muted = adapter.chat("loud"), adapter.chat("quiet"), adapter.chat("muted")
    for chat in (loud, quiet, muted):
        await route(relay, chat, 7)  # every kind
        await route(relay, chat, 7, "messages")  # and messages again
    await relay.store.set_kind_mode(quiet, "messages", "silent")
    await relay.store.set_kind_mode(muted, "messages", "off")
    await relay.inbox.persist(7, [note(7, 1)])
    assert await relay.fanout.fan_out(7) == 2
    await relay.deliverer.drain_due(float("inf"))
    sent = {s.chat.chat_id: (s.silent, s.key) for s in adapter.sent}
    assert sent == {"loud": (False, "7:m1:rec:loud:"), "quiet": (True, "7:m1:rec:quiet:")}


async def test_a_route_limited_to_other_kinds_gets_nothing(relay: Relay, adapter: RecordingAdapter) -> None:
    await route(relay, adapter.chat("a"), 8, "followers")
    await route(relay, adapter.chat("b"), 8, "messages")
    await relay.inbox.persist(8, [note(8, 3)])
    await relay.fanout.fan_out(8)
    await relay.deliverer.drain_due(float("inf"))
    assert [s.chat.chat_id for s in adapter.sent] == ["b"]


async def test_fan_out_goes_oldest_first_whatever_the_persist_order(relay: Relay, adapter: RecordingAdapter) -> None:
    await route(relay, adapter.chat("c"), 9)
    await relay.inbox.persist(9, [note(9, 30), note(9, 10)])
    await relay.inbox.persist(9, [note(9, 20)])
    await relay.fanout.fan_out(9)
    await relay.deliverer.drain_due(float("inf"))
    assert [s.key.split(":")[1] for s in adapter.sent] == ["m10", "m20", "m30"]


# --- fan-out: which reply a reply notification shows ----------------------------------------------


async def test_the_reply_shown_is_the_named_one_else_the_authors_newest(
    relay: Relay, adapter: RecordingAdapter, world: World
) -> None:
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    signal = world.create_signal(ann.id, "discussion", "crypto", "BTC idea", "thoughts")
    first = world.add_reply(signal, bob.id, "first from bob")
    world.add_reply(signal, ann.id, "ann answers")
    world.add_reply(signal, bob.id, "later from bob")
    await route(relay, adapter.chat("r"), ann.id)
    named = note(ann.id, 1, "discussion_reply", signal_id=signal, reply_id=first, reply_author_id=bob.id)
    # Without a reply id, and older than every reply: bob's newest reply, never ann's.
    unnamed = Notification(
        ann.id,
        2,
        "discussion_reply",
        "bob replied",
        {"signal_id": signal, "reply_author_id": bob.id},
        datetime.now(UTC) - timedelta(days=1),
    )
    await relay.inbox.persist(ann.id, [named, unnamed])
    requests_before = len(world.requests)
    await relay.fanout.fan_out(ann.id)
    await relay.deliverer.drain_due(float("inf"))
    bodies = [s.message.plain_text() for s in adapter.sent]
    assert "first from bob" in bodies[0] and "later from bob" not in bodies[0]
    assert "later from bob" in bodies[1] and "ann answers" not in bodies[1]
    replies_reads = [r for r in list(world.requests)[requests_before:] if "replies" in r.path]
    assert len(replies_reads) == 1, "the replies of one signal are read once per fan-out"


# --- enqueue idempotence ---------------------------------------------------------------------------


async def test_enqueue_from_an_inbox_entry_happens_once(relay: Relay, adapter: RecordingAdapter) -> None:
    await relay.inbox.persist(11, [note(11, 5)])
    [entry] = await relay.inbox.entries(11)
    chat = adapter.chat("e")
    item = Outgoing(chat, "11:m5:rec:e:", Message(body="x"))
    inbox = relay.keys.inbox(11)
    assert await relay.outbox.enqueue([item], now=1.0, inbox=inbox, inbox_entry=entry.entry_id) == 1
    # A second fan-out of the same entry (another process, a retry) finds it gone and adds nothing.
    assert await relay.outbox.enqueue([item], now=2.0, inbox=inbox, inbox_entry=entry.entry_id) == -1
    assert await relay.outbox.pending(chat) == 1
    assert await relay.inbox.entries(11) == []


async def test_one_batch_enqueue_covers_many_inbox_entries_and_skips_those_already_gone(
    relay: Relay, adapter: RecordingAdapter
) -> None:
    await relay.inbox.persist(12, [note(12, i) for i in (1, 2, 3)])
    first, second, third = await relay.inbox.entries(12)
    a, b = adapter.chat("ba"), adapter.chat("bb")
    inbox = relay.keys.inbox(12)
    # Another process fanned out the second entry already.
    assert (
        await relay.outbox.enqueue(
            [Outgoing(a, "k2a", Message(body="2"))], now=1.0, inbox=inbox, inbox_entry=second.entry_id
        )
        == 1
    )
    batch = [
        (first.entry_id, [Outgoing(a, "k1a", Message(body="1")), Outgoing(b, "k1b", Message(body="1"))]),
        (second.entry_id, [Outgoing(a, "k2a", Message(body="2")), Outgoing(b, "k2b", Message(body="2"))]),
        (third.entry_id, [Outgoing(b, "k3b", Message(body="3"))]),
    ]
    assert await relay.outbox.enqueue_batch(batch, now=2.0, inbox=inbox) == (3, 1)
    assert await relay.inbox.entries(12) == []
    await relay.deliverer.drain_due(float("inf"))
    assert [s.key for s in adapter.to(a)] == ["k2a", "k1a"]
    assert [s.key for s in adapter.to(b)] == ["k1b", "k3b"]


async def test_a_delivered_key_is_not_enqueued_again(relay: Relay, adapter: RecordingAdapter) -> None:
    chat = adapter.chat("d")
    item = Outgoing(chat, "k-once", Message(body="x"))
    assert await relay.outbox.enqueue([item], now=1.0) == 1
    await relay.deliverer.drain_due(float("inf"))
    assert await relay.outbox.enqueue([item, Outgoing(chat, "k-new", Message(body="y"))], now=2.0) == 1
    await relay.deliverer.drain_due(float("inf"))
    assert [s.key for s in adapter.sent] == ["k-once", "k-new"]


# --- reconcile marks -------------------------------------------------------------------------------


async def test_reconcile_marks_are_per_agent_and_cleared_once(relay: Relay) -> None:
    assert not await relay.inbox.needs_reconcile(1)
    await relay.inbox.mark_for_reconcile(1)
    await relay.inbox.mark_for_reconcile(1)  # marking twice is one mark
    assert await relay.inbox.needs_reconcile(1)
    assert not await relay.inbox.needs_reconcile(2)
    assert await relay.redis.scard(relay.keys.needs_reconcile()) == 1
    await relay.inbox.reconciled(1)
    assert not await relay.inbox.needs_reconcile(1)
