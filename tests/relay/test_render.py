"""Rendering notifications into platform-neutral messages, alone and through the pipeline."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aitrader_sim.world import World
from relay import render
from relay.app import Relay
from relay.catalogue import KIND_OF_TYPE, kind_of
from relay.models import Message, Notification, SignalReply
from relay.specs import BY_NAME, KINDS
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

# What the server writes (docs/upstream.md §4) and what the skill files document (never emitted).
# type -> (title, kind bucket, content, data)
TypeCase = tuple[str, str, str, dict[str, Any]]
SERVER_TYPES: dict[str, TypeCase] = {
    "new_follower": (
        "New follower",
        "followers",
        "bob started following you",
        {"leader_id": 1, "follower_id": 2, "follower_name": "bob"},
    ),
    "strategy_published": (
        "New strategy",
        "strategies",
        'alice published strategy "Grid" in crypto',
        {"signal_id": 1001, "market": "crypto"},
    ),
    "discussion_started": (
        "New discussion",
        "discussions",
        'alice started discussion "BTC?" (BTC)',
        {"signal_id": 1002, "symbol": "BTC"},
    ),
    "strategy_reply": (
        "New reply on a strategy",
        "replies",
        'bob replied to your strategy "Grid"',
        {"signal_id": 1001},
    ),
    "discussion_reply": (
        "New reply on a discussion",
        "replies",
        'bob replied to your discussion "BTC?"',
        {"signal_id": 1002},
    ),
    "strategy_mention": (
        "You were mentioned in a strategy",
        "mentions",
        'bob mentioned you in "Grid"',
        {"signal_id": 1001},
    ),
    "discussion_mention": (
        "You were mentioned in a discussion",
        "mentions",
        'bob mentioned you in "BTC?"',
        {"signal_id": 1002},
    ),
    "strategy_reply_accepted": (
        "Your reply was accepted",
        "accepted",
        'alice accepted your reply on "Grid"',
        {"signal_id": 1001, "reply_id": 3},
    ),
    "discussion_reply_accepted": (
        "Your reply was accepted",
        "accepted",
        'alice accepted your reply on "BTC?"',
        {"signal_id": 1002, "reply_id": 4},
    ),
}
DOCUMENTED_TYPES: dict[str, TypeCase] = {
    "new_reply": ("New reply", "replies", "Someone replied to your signal", {"signal_id": 7}),
    "trade_copied": (
        "Trade copied",
        "followers",
        "bob copied your trade",
        {"trade": {"symbol": "AAPL", "side": "buy", "quantity": 3, "price": 191.5}},
    ),
    "signal": ("New signal", "strategies", "New signal from alice", {"signal_id": 8, "symbol": "NVDA"}),
}


def note(kind: str, content: str = "hello", data: dict[str, Any] | None = None, message_id: int = 17) -> Notification:
    return Notification(agent_id=1, message_id=message_id, kind=kind, content=content, data=data or {}, created_at=AT)


def all_text(m: Message) -> str:
    return m.plain_text()


# --- every type ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [*SERVER_TYPES, *DOCUMENTED_TYPES])
def test_each_known_type_has_a_readable_title_and_keeps_its_content(kind: str) -> None:
    title, bucket, content, data = {**SERVER_TYPES, **DOCUMENTED_TYPES}[kind]
    m = render.notification(note(kind, content, data))
    assert m.title == title
    assert m.body == content
    assert m.footer.startswith("#17") and "2026-03-04 05:06 UTC" in m.footer
    assert kind_of(kind) == bucket
    mute = m.actions[-1]
    assert (mute.command, dict(mute.args)) == ("notify", {"kind": bucket, "mode": "off"})
    signal_id = data.get("signal_id")
    if signal_id:
        assert f"signal {signal_id}" in m.footer
        assert [(a.command, a.args.get("signal_id")) for a in m.actions[:2]] == [
            ("replies", str(signal_id)),
            ("reply", str(signal_id)),
        ]
        assert m.actions[1].kind == "prompt" and m.actions[1].text_param == "text"
    else:
        assert [a.command for a in m.actions] == ["notify"]


def test_market_and_symbol_become_fields() -> None:
    m = render.notification(note("discussion_started", "x", {"signal_id": 5, "market": "crypto", "symbol": "BTC"}))
    assert [(f.name, f.value) for f in m.fields] == [("Market", "crypto"), ("Symbol", "BTC")]


def test_trade_copied_shows_the_trade() -> None:
    m = render.notification(note("trade_copied", "bob copied your trade", DOCUMENTED_TYPES["trade_copied"][3]))
    assert [(f.name, f.value) for f in m.fields] == [
        ("Symbol", "AAPL"),
        ("Side", "buy"),
        ("Quantity", "3"),
        ("Price", "191.5"),
    ]


def test_unknown_type_keeps_its_content_and_data() -> None:
    data = {"symbol": "NVDA", "change_pct": 4.2, "levels": [1, 2], "note": "watch the open", "signal_id": "12"}
    m = render.notification(note("price_alert", "NVDA moved +4.2%", data))
    assert m.title == "Message (price_alert)"
    assert m.body == "NVDA moved +4.2%"
    shown = {f.name: f.value for f in m.fields}
    assert shown == {
        "Symbol": "NVDA",
        "change_pct": "4.2",
        "levels": "[1, 2]",
        "note": "watch the open",
        "signal_id": "12",
    }
    assert kind_of("price_alert") == "messages"
    assert m.actions[-1].args == {"kind": "messages", "mode": "off"}
    assert "signal 12" in m.footer  # a digit string is still a usable signal id


def test_task_renders_as_a_task() -> None:
    m = render.notification(
        note("analyze_symbol", "analyze_symbol", {"task_id": 4, "input": {"symbol": "AAPL"}}, 4), is_task=True
    )
    assert m.title == "New task"
    assert "analyze_symbol" in m.body
    assert [(f.name, f.value) for f in m.fields] == [("Input", '{"symbol": "AAPL"}')]
    assert m.footer.startswith("task #4")
    assert [a.command for a in m.actions] == ["notify"] and m.actions[0].args["kind"] == "tasks"


def test_a_fetched_reply_is_shown_with_its_author() -> None:
    reply = SignalReply(3, 1001, 2, "bob", "I think it breaks out", False, AT)
    m = render.notification(note("strategy_reply", "bob replied", {"signal_id": 1001}), reply=reply)
    assert ("Reply by bob", "I think it breaks out") in [(f.name, f.value) for f in m.fields]


def test_catalogue_maps_types_to_kinds() -> None:
    assert set(KIND_OF_TYPE.values()) <= set(KINDS)
    assert {t: kind_of(t) for t in SERVER_TYPES} == {t: v[1] for t, v in SERVER_TYPES.items()}
    for unknown in ("price_alert", "", "STRATEGY_REPLY", "signal_broadcast", "copy_trade_signal"):
        assert kind_of(unknown) == "messages"
    assert kind_of("strategy_reply", is_task=True) == "tasks"


# --- hostile text ------------------------------------------------------------------------------------

HOSTILE = '<b>bold</b> <a href="javascript:alert(1)">x</a> **md** __u__ `code` [l](http://evil) @everyone @here <@&123> </code>&amp;'


def test_hostile_text_stays_plain_and_unchanged() -> None:
    data = {"market": HOSTILE, "symbol": "<i>", "signal_id": 5, "title": HOSTILE}
    m = render.notification(note("strategy_published", HOSTILE, data))
    assert m.body == HOSTILE  # not escaped, not stripped: each adapter escapes for its platform
    assert ("Market", HOSTILE) in [(f.name, f.value) for f in m.fields]
    # The JSON the outbox stores brings back exactly the same text.
    assert Message.from_json(m.to_json()) == m


def test_long_text_is_clipped() -> None:
    huge = "A" * 50_000
    data = {"market": huge, "symbol": huge, huge: huge}
    m = render.notification(note(huge, huge, data))
    assert len(m.body) == render.BODY_LIMIT and m.body.endswith("…")
    assert len(m.title) <= len("Message ()") + 60
    for f in m.fields:
        assert len(f.value) <= render.FIELD_LIMIT and len(f.name) <= 60
    reply = SignalReply(3, 1, 2, huge, huge, False, AT)
    r = render.notification(note("strategy_reply", "x", {"signal_id": 1}), reply=reply)
    by = next(f for f in r.fields if f.name.startswith("Reply by"))
    assert len(by.value) <= 1000 and len(by.name) <= len("Reply by ") + 80


def test_unknown_type_shows_at_most_ten_data_fields() -> None:
    data = {f"k{i}": i for i in range(40)}
    m = render.notification(note("custom", "x", data))
    assert [f.name for f in m.fields] == [f"k{i}" for i in range(10)]


def test_replies_listing_clips_and_marks_the_accepted_one() -> None:
    items = [
        SignalReply(i, 9, i, f"agent{i}", ("long " * 500) if i == 1 else f"text {i}", i == 2, AT) for i in range(1, 26)
    ]
    m = render.replies(9, items)
    assert "agent1" not in m.body.split("\n\n")[0]  # only the last 20 are shown
    assert "5 earlier replies not shown" in m.footer and "25 replies" in m.footer
    assert "✅" not in m.body  # reply 2 (the accepted one) is among the hidden
    shown = render.replies(9, items[:3])
    assert "✅ reply 2 · agent2" in shown.body
    assert max(len(block) for block in shown.body.split("\n\n")) < 700


# --- through the pipeline: reply and mention text is fetched -------------------------------------------


async def linked(dm: Chat, world: World, name: str = "ann") -> int:
    agent = world.create_agent(name)
    assert f"#{agent.id}" in await dm.text("link", token=agent.token)
    assert "Subscribed" in await dm.text("subscribe", what="all")
    return agent.id


async def test_reply_and_mention_notifications_carry_the_reply_text(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    ann = await linked(dm, world)
    bob, carol = world.create_agent("bob"), world.create_agent("carol")
    mine = world.create_signal(ann, "strategy", "crypto", "Grid on SOL", "plan")
    theirs = world.create_signal(bob.id, "discussion", "crypto", "BTC?", "q", "BTC")
    world.add_reply(mine, bob.id, "Nice grid, what spacing?")
    world.add_reply(theirs, carol.id, "@ann you called this one")
    accepted = world.add_reply(theirs, ann, "Watching 70k")
    world.accept_reply(theirs, accepted, bob.id)
    replies_before = world.route_counts["/api/signals/{signal_id}/replies"]
    await relay.poller.poll(ann)
    await relay.deliverer.drain_due(math.inf)
    got = {s.message.title: s.message for s in adapter.to(dm.chat)}
    assert set(got) == {"New reply on a strategy", "You were mentioned in a discussion", "Your reply was accepted"}
    reply_fields = {f.name: f.value for f in got["New reply on a strategy"].fields}
    assert reply_fields["Reply by bob"] == "Nice grid, what spacing?"
    mention_fields = {f.name: f.value for f in got["You were mentioned in a discussion"].fields}
    assert mention_fields["Reply by carol"] == "@ann you called this one"
    assert mention_fields["Symbol"] == "BTC"
    assert not any(f.name.startswith("Reply by") for f in got["Your reply was accepted"].fields)
    assert "accepted your reply" in got["Your reply was accepted"].body
    # One fetch per signal that needs reply text, not one per notification or chat.
    assert world.route_counts["/api/signals/{signal_id}/replies"] - replies_before == 2


class _Clock:
    def __init__(self) -> None:
        self.t = 1_767_225_600.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world_clock() -> _Clock:
    return _Clock()


@pytest.fixture
def world(world_clock: _Clock) -> World:
    # Overrides the shared fixture: the same World, on a clock this module can move.
    return World(seed=7, clock=world_clock)


async def test_two_replies_by_one_author_each_show_their_own_text(
    relay: Relay, world: World, world_clock: _Clock, dm: Chat, adapter: RecordingAdapter
) -> None:
    ann = await linked(dm, world)
    bob = world.create_agent("bob")
    mine = world.create_signal(ann, "strategy", "crypto", "Grid on SOL", "plan")
    world.add_reply(mine, bob.id, "first: what spacing?")
    world_clock.t += 60
    world.add_reply(mine, bob.id, "second: never mind, found it")
    await relay.poller.poll(ann)
    await relay.deliverer.drain_due(math.inf)
    texts = [f.value for s in adapter.to(dm.chat) for f in s.message.fields if f.name == "Reply by bob"]
    assert texts == ["first: what spacing?", "second: never mind, found it"]


# --- never raises -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
types = st.sampled_from([*SERVER_TYPES, *DOCUMENTED_TYPES, "task", ""]) | st.text(max_size=80)
times = st.none() | st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=types,
    content=st.text(max_size=4000),
    data=st.dictionaries(
        st.sampled_from(["signal_id", "market", "symbol", "trade", "input", "reply_author_id"]) | st.text(max_size=20),
        json_values,
        max_size=12,
    ),
    is_task=st.booleans(),
    message_id=st.integers(min_value=0, max_value=2**63),
    at=times,
    with_reply=st.booleans(),
)
def test_render_notification_never_raises(
    kind: str, content: str, data: dict[str, Any], is_task: bool, message_id: int, at: datetime | None, with_reply: bool
) -> None:
    n = Notification(1, message_id, kind, content, data, at)
    reply = SignalReply(1, 1, 1, content[:50], content, False, at) if with_reply else None
    m = render.notification(n, is_task=is_task, reply=reply)
    assert m.title and len(m.body) <= render.BODY_LIMIT and len(m.fields) <= 20
    assert all(len(f.value) <= 1000 for f in m.fields)
    assert all(a.command in BY_NAME for a in m.actions)
    assert m.actions[-1].args["kind"] in KINDS
    assert Message.from_json(m.to_json()) == m
