"""Every command through `Router.dispatch`, against the simulator over HTTP and a real Redis.

Each command gets its happy path and its bad input. Replies are read as the plain text a chat
would show; every one must be at least one line and never leak a traceback.
"""

from __future__ import annotations

import math

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from relay.errors import RateLimited, TokenRejected, Undeliverable
from relay.models import Command, Message, Reply, UserRef
from relay.outbox import Outgoing
from relay.specs import BY_NAME, COMMANDS
from relay.words import parse_words, split_command
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter

HOSTILE_IDS = ("../1", "1/../../claw/agents/me", "١٢", "99999999999999999999999", "-1", "0")


# --- helpers ---------------------------------------------------------------------------------


def check(text: str) -> str:
    assert text.strip(), "a reply must have at least one line"
    assert "Traceback" not in text
    assert "Something went wrong on our side" not in text, text
    return text


async def say(chat: Chat, name: str, **args: str) -> str:
    return check(await chat.text(name, **args))


async def reply_of(chat: Chat, name: str, **args: str) -> Reply:
    reply = await chat.say(name, **args)
    check("\n".join(m.plain_text() for m in reply.messages))
    return reply


def assert_usage(text: str, command: str) -> None:
    assert text.startswith(f"Usage: /{command}"), text
    assert "\n" not in text, f"usage must be one line: {text!r}"


async def link(dm: Chat, world: World, name: str = "ann", mode: str = "consume") -> int:
    agent = world.create_agent(name)
    text = await say(dm, "link", token=agent.token, mode=mode)
    assert f"#{agent.id}" in text
    return agent.id


def group(relay: Relay, adapter: RecordingAdapter, *, admin: bool, chat_id: str = "-5", user_id: str = "100") -> Chat:
    return Chat(relay, adapter.chat(chat_id), UserRef("rec", user_id, "ann", is_chat_admin=admin), private=False)


# --- start, help, unknown, extra arguments ---------------------------------------------------


async def test_start_explains_linking_and_subscribing(dm: Chat) -> None:
    text = await say(dm, "start")
    assert "/link" in text and "/subscribe" in text and "/help" in text


async def test_help_lists_every_command_with_its_usage(dm: Chat) -> None:
    text = await say(dm, "help")
    for spec in COMMANDS:
        assert spec.usage in text, spec.name
        assert spec.summary in text
    assert "replies" in text and "tasks" in text  # the kinds footer


async def test_unknown_command_names_it_and_points_to_help(dm: Chat) -> None:
    text = await say(dm, "frobnicate")
    assert "Unknown command /frobnicate" in text and "/help" in text


async def test_extra_arguments_are_a_usage_error(dm: Chat, world: World) -> None:
    before = len(world.requests)
    text = await say(dm, "follow", agent_id="2", _extra="3 4")
    assert_usage(text, "follow")
    assert "too many arguments" in text
    assert len(world.requests) == before


async def test_missing_required_argument_names_it(dm: Chat) -> None:
    text = await say(dm, "replies")
    assert_usage(text, "replies")
    assert "signal_id is missing" in text


# --- link / unlink -----------------------------------------------------------------------------


async def test_link_checks_the_token_and_explains_both_modes(relay: Relay, dm: Chat, world: World) -> None:
    agent = world.create_agent("ann")
    reply = await reply_of(dm, "link", token=agent.token)
    text = "\n".join(m.plain_text() for m in reply.messages)
    assert f"Linked ann (#{agent.id}) in consume mode" in text
    assert "consume:" in text and "observe:" in text  # what each mode costs the agent
    assert reply.private and reply.delete_command  # the token should not stay in the chat
    assert world.route_counts["/api/claw/agents/me"] == 1
    stored = await relay.store.agent(agent.id)
    assert stored is not None and stored.token == agent.token and stored.mode == "consume"
    assert await relay.store.agent_ids() == [agent.id]


async def test_link_in_observe_mode_is_stored_as_observe(relay: Relay, dm: Chat, world: World) -> None:
    agent_id = await link(dm, world, mode="observe")
    stored = await relay.store.agent(agent_id)
    assert stored is not None and stored.mode == "observe"
    assert "observe mode" in await say(dm, "status")


async def test_link_with_an_unknown_token_says_so_and_stores_nothing(relay: Relay, dm: Chat, world: World) -> None:
    text = await say(dm, "link", token="Q" * 43)
    assert text == TokenRejected.sentence
    assert world.route_counts["/api/claw/agents/me"] == 1
    assert await relay.store.agent_ids() == []
    assert await relay.store.linked_agent_id(dm.user.key) is None


async def test_link_with_a_malformed_token_is_a_usage_line_without_a_request(
    relay: Relay, dm: Chat, world: World
) -> None:
    for token in (
        "short",
        "has space in it 1234567890",
        "semi;colon;1234567890abc",
        "x" * 300,
        "../../claw/agents/me?x=1",
    ):
        text = await say(dm, "link", token=token)
        assert_usage(text, "link")
        assert "does not look like an AI-Trader agent token" in text
    assert len(world.requests) == 0
    assert await relay.store.agent_ids() == []


async def test_link_with_a_bad_mode_is_a_usage_line(relay: Relay, dm: Chat, world: World) -> None:
    agent = world.create_agent("ann")
    text = await say(dm, "link", token=agent.token, mode="sometimes")
    assert_usage(text, "link")
    assert "consume, observe" in text
    assert await relay.store.agent_ids() == []


async def test_link_in_a_group_is_refused_deleted_and_not_stored(
    relay: Relay, adapter: RecordingAdapter, world: World
) -> None:
    agent = world.create_agent("ann")
    for admin in (True, False):
        reply = await reply_of(group(relay, adapter, admin=admin), "link", token=agent.token)
        assert reply.delete_command
        assert "private chat" in reply.messages[0].plain_text()
    assert world.route_counts["/api/claw/agents/me"] == 0
    assert await relay.store.agent_ids() == []
    assert await relay.store.linked_agent_id("rec:100") is None


async def test_link_in_a_group_with_a_bad_mode_still_deletes_the_token_message(
    relay: Relay, adapter: RecordingAdapter, world: World
) -> None:
    agent = world.create_agent("ann")
    reply = await group(relay, adapter, admin=True).say("link", token=agent.token, mode="bogus")
    assert reply.delete_command


async def test_a_mistyped_relink_does_not_pause_the_working_link(relay: Relay, dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    assert await say(dm, "link", token="Z" * 43) == TokenRejected.sentence
    stored = await relay.store.agent(agent_id)
    assert stored is not None and stored.state == "active", stored
    assert "paused" not in await say(dm, "status")


async def test_unlink_removes_the_agent_and_its_routes(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    agent_id = await link(dm, world)
    admin = group(relay, adapter, admin=True)
    assert "Subscribed" in await say(dm, "subscribe", what="all")
    assert "Subscribed" in await say(admin, "subscribe", what="replies")
    assert len(await relay.store.agent_subscriptions(agent_id)) == 2
    text = await say(dm, "unlink")
    assert f"Unlinked agent #{agent_id}" in text
    assert agent_id not in await relay.store.agent_ids()
    assert await relay.store.chat_subscriptions(dm.chat) == []
    assert await relay.store.chat_subscriptions(admin.chat) == []
    assert await relay.store.agent_subscriptions(agent_id) == []
    assert await relay.store.agent(agent_id) is None
    assert "None yet" in await say(dm, "subscriptions")
    assert "No agent is linked" in await say(dm, "unlink")


# --- subscribe / unsubscribe / subscriptions -----------------------------------------------------


async def test_subscribe_all_and_specific_kinds(relay: Relay, dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    text = await say(dm, "subscribe")
    assert "all kinds" in text
    text = await say(dm, "subscribe", what="Replies mentions")
    assert "mentions, replies" in text
    subs = await relay.store.chat_subscriptions(dm.chat)
    # Subscribing again replaces the chat's route for the agent instead of adding a second one.
    assert len(subs) == 1
    assert subs[0].kind == "agent" and subs[0].agent_id == agent_id
    assert subs[0].kinds == frozenset({"replies", "mentions"})


async def test_subscribe_unknown_kind_is_a_usage_line(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    text = await say(dm, "subscribe", what="replies gossip")
    assert_usage(text, "subscribe")
    assert "unknown kind gossip" in text
    assert await relay.store.chat_subscriptions(dm.chat) == []


async def test_subscribe_needs_a_linked_agent(relay: Relay, dm: Chat) -> None:
    text = await say(dm, "subscribe", what="all")
    assert "link your agent first" in text
    assert await relay.store.chat_subscriptions(dm.chat) == []


async def test_feed_watch_posts_only_signals_newer_than_the_watch(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    poster = world.create_agent("poster")
    old = [world.create_signal(poster.id, "discussion", "crypto", f"BTC idea {i}", "old news") for i in range(3)]
    text = await say(dm, "subscribe", what="feed btc")
    assert "Watching the feed for “btc”" in text and "nothing old" in text
    sub = (await relay.store.chat_subscriptions(dm.chat))[0]
    assert sub.kind == "feed" and sub.keyword == "btc"
    assert await relay.watcher.check(sub) == 0  # the old posts were baselined
    fresh = world.create_signal(poster.id, "strategy", "crypto", "BTC breakout", "new plan")
    world.create_signal(poster.id, "strategy", "crypto", "ETH range", "unrelated")
    assert await relay.watcher.check(sub) == 1
    assert await relay.watcher.check(sub) == 0  # seen once, posted once
    await relay.deliverer.drain(dm.chat)
    sent = adapter.to(dm.chat)
    assert len(sent) == 1
    assert f"signal {fresh}" in sent[0].message.footer
    assert "BTC breakout" in sent[0].message.body
    assert not any(f"signal {i} " in s.message.footer for s in sent for i in old)


async def test_feed_watch_with_a_type_filters_by_type(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    poster = world.create_agent("poster")
    text = await say(dm, "subscribe", what="feed btc strategy")
    assert "(strategy)" in text
    sub = (await relay.store.chat_subscriptions(dm.chat))[0]
    assert sub.message_type == "strategy"
    await relay.watcher.check(sub)
    world.create_signal(poster.id, "discussion", "crypto", "BTC chat", "talk")
    strategy = world.create_signal(poster.id, "strategy", "crypto", "BTC plan", "plan")
    assert await relay.watcher.check(sub) == 1
    await relay.deliverer.drain(dm.chat)
    assert [f"signal {strategy}" in s.message.footer for s in adapter.to(dm.chat)] == [True]


async def test_feed_watch_bad_arguments_are_usage_lines(relay: Relay, dm: Chat) -> None:
    for what in ("feed", "feed btc gossip", "feed btc strategy extra"):
        assert_usage(await say(dm, "subscribe", what=what), "subscribe")
    assert await relay.store.chat_subscriptions(dm.chat) == []


async def test_trader_watch_posts_that_traders_new_signals(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    trader = world.create_agent("trader")
    other = world.create_agent("other")
    world.create_signal(trader.id, "discussion", "crypto", "old", "old")
    text = await say(dm, "subscribe", what=f"trader {trader.id}")
    assert f"Watching trader trader (#{trader.id})" in text
    sub = (await relay.store.chat_subscriptions(dm.chat))[0]
    assert sub.kind == "trader" and sub.trader_id == trader.id
    assert await relay.watcher.check(sub) == 0
    new = world.create_signal(trader.id, "operation", "crypto", None, "bought", "BTC")
    world.create_signal(other.id, "operation", "crypto", None, "sold", "BTC")
    assert await relay.watcher.check(sub) == 1
    await relay.deliverer.drain(dm.chat)
    assert [s.message.footer.startswith(f"signal {new}") for s in adapter.to(dm.chat)] == [True]


async def test_trader_watch_bad_id_is_a_usage_line_without_a_request(relay: Relay, dm: Chat, world: World) -> None:
    for what in ("trader", "trader 1 2", *(f"trader {bad}" for bad in HOSTILE_IDS)):
        assert_usage(await say(dm, "subscribe", what=what), "subscribe")
    assert len(world.requests) == 0
    assert await relay.store.chat_subscriptions(dm.chat) == []


async def test_subscriptions_lists_ids_and_unsubscribe_removes_only_own(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    agent_id = await link(dm, world)
    await say(dm, "subscribe", what="replies")
    await say(dm, "subscribe", what="feed btc discussion")
    admin = group(relay, adapter, admin=True)
    trader = world.create_agent("trader")
    await say(admin, "subscribe", what=f"trader {trader.id}")
    mine = await relay.store.chat_subscriptions(dm.chat)
    theirs = await relay.store.chat_subscriptions(admin.chat)
    listing = await say(dm, "subscriptions")
    assert f"#{mine[0].sub_id} agent #{agent_id}: replies" in listing
    assert f"#{mine[1].sub_id} feed “btc” (discussion)" in listing
    assert f"#{theirs[0].sub_id}" not in listing

    refused = await say(dm, "unsubscribe", id=str(theirs[0].sub_id))
    assert f"no subscription #{theirs[0].sub_id}" in refused
    assert await relay.store.subscription(theirs[0].sub_id) is not None

    assert f"Removed subscription #{mine[1].sub_id}" in await say(dm, "unsubscribe", id=f"#{mine[1].sub_id}")
    assert [s.sub_id for s in await relay.store.chat_subscriptions(dm.chat)] == [mine[0].sub_id]
    assert mine[1].sub_id not in [s.sub_id for s in await relay.store.watches()]


async def test_unsubscribe_non_number_is_a_usage_line(dm: Chat) -> None:
    for bad in ("abc", "1.5", "#", *HOSTILE_IDS):
        assert_usage(await say(dm, "unsubscribe", id=bad), "unsubscribe")


# --- notify ------------------------------------------------------------------------------------


async def test_notify_silent_and_off_change_delivery(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    agent_id = await link(dm, world)
    await say(dm, "subscribe", what="all")
    assert "Replies are now silent" in await say(dm, "notify", kind="replies", mode="silent")
    assert "Followers are now off" in await say(dm, "notify", kind="followers", mode="off")
    listing = await say(dm, "notify")
    assert "replies: silent" in listing and "followers: off" in listing and "mentions: on" in listing
    assert "replies: silent" in await say(dm, "subscriptions")

    bob = world.create_agent("bob")
    sid = world.create_signal(agent_id, "discussion", "crypto", "My take", "thoughts")
    world.add_reply(sid, bob.id, "agreed")  # discussion_reply -> replies (silent)
    world.follow(bob.id, agent_id)  # new_follower -> followers (off)
    world.push_message(agent_id, "price_alert", "BTC up")  # custom -> messages (on)
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    sent = adapter.to(dm.chat)
    by_title = {s.message.title: s.silent for s in sent}
    assert by_title == {"New reply on a discussion": True, "Message (price_alert)": False}


async def test_notify_bad_arguments_are_usage_lines(dm: Chat) -> None:
    assert_usage(await say(dm, "notify", kind="gossip", mode="on"), "notify")
    assert_usage(await say(dm, "notify", kind="replies", mode="loud"), "notify")


# --- group permissions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [("subscribe", {"what": "feed btc"}), ("unsubscribe", {"id": "1"}), ("notify", {"kind": "replies", "mode": "off"})],
)
async def test_group_admin_commands_are_refused_to_non_admins(
    relay: Relay, adapter: RecordingAdapter, name: str, args: dict[str, str]
) -> None:
    admin = group(relay, adapter, admin=True)
    member = group(relay, adapter, admin=False, user_id="200")
    assert "Watching" in await say(admin, "subscribe", what="feed eth")  # sub #1 exists in the group
    subs_before = await relay.store.chat_subscriptions(admin.chat)
    text = await say(member, name, **args)
    assert text == f"Only chat administrators can use /{name} here."
    assert await relay.store.chat_subscriptions(admin.chat) == subs_before
    assert await relay.store.kind_modes(admin.chat) == {}
    allowed = await say(admin, name, **args)
    assert "Only chat administrators" not in allowed
    assert allowed.split()[0] in ("Watching", "Removed", "Replies")


async def test_private_chat_needs_no_admin_flag(relay: Relay, dm: Chat) -> None:
    assert not dm.user.is_chat_admin
    assert "Replies are now off" in await say(dm, "notify", kind="replies", mode="off")
    assert await relay.store.kind_modes(dm.chat) == {"replies": "off"}


async def test_group_members_can_still_read(relay: Relay, adapter: RecordingAdapter) -> None:
    member = group(relay, adapter, admin=False, user_id="200")
    assert "None yet" in await say(member, "subscriptions")
    assert "Commands" in await say(member, "help")


# --- feed ----------------------------------------------------------------------------------------


async def test_feed_shows_matching_signals_and_pages_with_replacing_buttons(dm: Chat, world: World) -> None:
    poster = world.create_agent("poster")
    ids = [world.create_signal(poster.id, "strategy", "crypto", f"BTC plan {i}", f"body {i}") for i in range(12)]
    world.create_signal(poster.id, "strategy", "crypto", "ETH plan", "nothing to see")

    first = await reply_of(dm, "feed", keyword="btc")
    msg = first.messages[0]
    assert msg.title == "Feed: btc"
    assert f"[{ids[-1]}]" in msg.body and "ETH plan" not in msg.body
    assert "1–5 of 12" in msg.footer
    assert [(a.label, a.args["page"], a.replace) for a in msg.actions] == [("Next ▶", "2", True)]
    assert all(a.command == "feed" and a.args["keyword"] == "btc" for a in msg.actions)

    middle = (await reply_of(dm, "feed", keyword="btc", page="2")).messages[0]
    assert [(a.label, a.args["page"], a.replace) for a in middle.actions] == [
        ("◀ Previous", "1", True),
        ("Next ▶", "3", True),
    ]
    assert "6–10 of 12" in middle.footer

    last = (await reply_of(dm, "feed", keyword="btc", page="3")).messages[0]
    assert [(a.label, a.args["page"]) for a in last.actions] == [("◀ Previous", "2")]
    assert f"[{ids[0]}]" in last.body


async def test_feed_type_filter_and_empty_result(dm: Chat, world: World) -> None:
    poster = world.create_agent("poster")
    world.create_signal(poster.id, "strategy", "crypto", "BTC plan", "x")
    disc = world.create_signal(poster.id, "discussion", "crypto", "BTC talk", "y")
    text = await say(dm, "feed", keyword="btc", type="discussion")
    assert f"[{disc}] discussion" in text and "BTC plan" not in text
    assert "Nothing found." in await say(dm, "feed", keyword="no-such-word")


async def test_feed_bad_page_is_a_usage_line_without_a_request(dm: Chat, world: World) -> None:
    for page in ("0", "abc", "-1", "1001", "١", "2.5"):
        text = await say(dm, "feed", keyword="btc", page=page)
        assert_usage(text, "feed")
        assert "page must be a number from 1 to 1000" in text
    assert len(world.requests) == 0


async def test_feed_bad_type_is_a_usage_line(dm: Chat) -> None:
    text = await say(dm, "feed", keyword="btc", type="rumour")
    assert_usage(text, "feed")
    assert "operation, strategy, discussion" in text


# --- replies / reply -------------------------------------------------------------------------------


async def test_replies_shows_the_reply_texts(dm: Chat, world: World) -> None:
    author, bob = world.create_agent("author"), world.create_agent("bob")
    sid = world.create_signal(author.id, "discussion", "crypto", "Topic", "?")
    world.add_reply(sid, bob.id, "I think it goes up")
    text = await say(dm, "replies", signal_id=str(sid))
    assert f"Replies to signal {sid}" in text
    assert "bob" in text and "I think it goes up" in text
    assert "No replies yet" in await say(dm, "replies", signal_id="424242")


async def test_replies_hostile_ids_never_reach_upstream(dm: Chat, world: World) -> None:
    for bad in HOSTILE_IDS:
        assert_usage(await say(dm, "replies", signal_id=bad), "replies")
    assert len(world.requests) == 0
    assert sum(world.route_counts.values()) == 0
    # The same path with a good id does reach the server, so the counters are live.
    await say(dm, "replies", signal_id="12")
    assert world.route_counts["/api/signals/{signal_id}/replies"] == 1


async def test_reply_posts_and_the_second_one_is_rate_limited(dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    author = world.create_agent("author")
    sid = world.create_signal(author.id, "discussion", "crypto", "Topic", "?")
    text = await say(dm, "reply", signal_id=str(sid), text="first thoughts")
    assert f"Reply posted to signal {sid}" in text
    thread = world.replies_by_signal[sid]
    assert [(r.agent_id, r.content) for r in thread] == [(agent_id, "first thoughts")]
    again = await say(dm, "reply", signal_id=str(sid), text="second thoughts")
    assert again.startswith("AI-Trader says to slow down") and "try again in" in again
    assert again == RateLimited(retry_after=20).sentence or "try again in 1" in again
    assert len(world.replies_by_signal[sid]) == 1


async def test_reply_too_long_or_empty_is_a_usage_line(dm: Chat, world: World) -> None:
    await link(dm, world)
    before = len(world.requests)
    long = await say(dm, "reply", signal_id="1001", text="x" * 10_000)
    assert_usage(long, "reply")
    assert "longer than 2000" in long
    assert_usage(await say(dm, "reply", signal_id="1001", text="\x00\x01 "), "reply")
    assert len(world.requests) == before


async def test_reply_hostile_signal_id_is_a_usage_line(dm: Chat, world: World) -> None:
    await link(dm, world)
    before = len(world.requests)
    for bad in HOSTILE_IDS:
        assert_usage(await say(dm, "reply", signal_id=bad, text="hi"), "reply")
    assert len(world.requests) == before


async def test_reply_without_a_link_asks_to_link(dm: Chat, world: World) -> None:
    text = await say(dm, "reply", signal_id="1001", text="hello")
    assert "link your agent first" in text
    assert world.route_counts["/api/signals/reply"] == 0


# --- send / task -------------------------------------------------------------------------------------


async def test_send_puts_the_message_in_the_target_inbox(dm: Chat, world: World) -> None:
    await link(dm, world)
    target = world.create_agent("target")
    text = await say(dm, "send", agent_id=str(target.id), text="hello there\nsecond line")
    assert f"Message sent to target (#{target.id})" in text
    [mid] = world.all_message_ids(target.id)
    row = world.messages[mid]
    assert (row.type, row.content) == ("message", "hello there\nsecond line")
    assert f"#{mid}" in text


async def test_send_bad_input(dm: Chat, world: World) -> None:
    assert "link your agent first" in await say(dm, "send", agent_id="2", text="hi")
    await link(dm, world)
    before = len(world.requests)
    assert_usage(await say(dm, "send", agent_id="../2", text="hi"), "send")
    assert_usage(await say(dm, "send", agent_id="2", text="y" * 2001), "send")
    assert len(world.requests) == before


async def test_task_with_a_json_object_is_created(dm: Chat, world: World) -> None:
    await link(dm, world)
    target = world.create_agent("target")
    text = await say(dm, "task", agent_id=str(target.id), type="analyze_symbol", json='{"symbol": "BTC", "depth": 2}')
    assert f"Task analyze_symbol created for target (#{target.id})" in text
    [task] = [t for t in world.tasks.values() if t.agent_id == target.id]
    assert task.type == "analyze_symbol" and task.input_data == {"symbol": "BTC", "depth": 2}
    assert f"task #{task.id}" in text
    await say(dm, "task", agent_id=str(target.id), type="ping")
    assert [t.input_data for t in world.tasks.values() if t.type == "ping"] == [None]


async def test_task_bad_input_is_a_usage_line(dm: Chat, world: World) -> None:
    await link(dm, world)
    target = world.create_agent("target")
    cases = [
        (str(target.id), "analyze", "{not json", "not valid JSON"),
        (str(target.id), "analyze", "[1, 2]", "must be an object"),
        (str(target.id), "analyze", '"text"', "must be an object"),
        (str(target.id), "analyze", "{" + '"k": 1,' * 800 + '"z": 0}', "longer than 4000"),
        (str(target.id), "bad type", "", "type is letters"),
        (str(target.id), "a/../b", "", "type is letters"),
        (str(target.id), "x" * 65, "", "type is letters"),
        ("../1", "analyze", "", "agent_id must be a number"),
    ]
    before = len(world.requests)
    for agent_id, task_type, raw, reason in cases:
        text = await say(dm, "task", agent_id=agent_id, type=task_type, json=raw)
        assert_usage(text, "task")
        assert reason in text
    assert world.tasks == {}
    assert len(world.requests) == before


# --- discussions / follow --------------------------------------------------------------------------


async def test_discussions_falls_back_to_the_agents_own_posts(dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    other = world.create_agent("other")
    mine = world.create_signal(agent_id, "discussion", "crypto", "My BTC thread", "mine")
    plan = world.create_signal(agent_id, "strategy", "crypto", "My ETH plan", "mine too")
    trade = world.create_signal(agent_id, "operation", "crypto", None, "a trade", "BTC")
    theirs = world.create_signal(other.id, "discussion", "crypto", "Their BTC thread", "theirs")
    catch_all = world.route_counts["catch-all"]
    text = await say(dm, "discussions")
    assert world.route_counts["catch-all"] == catch_all + 1  # the documented path was tried first
    assert f"[{mine}]" in text and f"[{plan}]" in text
    assert f"[{theirs}]" not in text and "Their BTC thread" not in text
    assert f"[{trade}]" not in text  # trades are not discussions
    filtered = await say(dm, "discussions", keyword="eth")
    assert f"[{plan}]" in filtered and f"[{mine}]" not in filtered
    assert "Nothing found." in await say(dm, "discussions", keyword="nothing-like-this")


async def test_follow_unfollow_following(dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    leader = world.create_agent("leader")
    assert "Not following anyone." in await say(dm, "following")
    assert f"Now following leader (#{leader.id})." in await say(dm, "follow", agent_id=str(leader.id))
    assert world.is_following(agent_id, leader.id)
    assert f"Already following leader (#{leader.id})." in await say(dm, "follow", agent_id=str(leader.id))
    listing = await say(dm, "following")
    assert f"{leader.id} leader" in listing
    assert f"No longer following trader #{leader.id}." in await say(dm, "unfollow", agent_id=str(leader.id))
    assert not world.is_following(agent_id, leader.id)
    assert "Not following anyone." in await say(dm, "following")


async def test_follow_bad_input(dm: Chat, world: World) -> None:
    assert "link your agent first" in await say(dm, "following")
    agent_id = await link(dm, world)
    before = len(world.requests)
    for bad in HOSTILE_IDS:
        assert_usage(await say(dm, "follow", agent_id=bad), "follow")
        assert_usage(await say(dm, "unfollow", agent_id=bad), "unfollow")
    assert len(world.requests) == before
    # The server's own refusal comes back as one sentence.
    assert "Cannot follow yourself" in await say(dm, "follow", agent_id=str(agent_id))


# --- status ----------------------------------------------------------------------------------------


async def test_status_before_linking(dm: Chat) -> None:
    text = await say(dm, "status")
    assert "not linked" in text and "Queued deliveries here: 0" in text


async def test_status_shows_agent_mode_queue_and_dead_letters(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    await link(dm, world)
    await say(dm, "subscribe", what="all")
    # One delivery fails for good (dead letter), two stay queued.
    adapter.failures[dm.chat.key] = [Undeliverable("message too long")]
    await relay.outbox.enqueue([Outgoing(dm.chat, "k1", Message(body="a"))], now=0)
    await relay.deliverer.drain(dm.chat)
    await relay.outbox.enqueue([Outgoing(dm.chat, f"k{i}", Message(body="b")) for i in (2, 3)], now=0)
    reply = await reply_of(dm, "status")
    assert reply.private
    fields = {f.name: f.value for f in reply.messages[0].fields}
    assert (
        fields["Your agent"].startswith("ann (#")
        and "consume mode" in fields["Your agent"]
        and "active" in fields["Your agent"]
    )
    assert fields["Subscriptions here"] == "1"
    assert fields["Queued deliveries here"] == "2"
    assert fields["Dead-lettered here"] == "1"
    assert "message too long" in fields["Last error here"]


async def test_status_after_a_poll_shows_its_time(relay: Relay, dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    assert "Subscribed" in await say(dm, "subscribe", what="all")
    assert "Last successful poll: never" in await say(dm, "status")
    await relay.poller.poll(agent_id)
    assert "UTC" in (await say(dm, "status")).split("Last successful poll: ")[1].splitlines()[0]


@pytest.mark.parametrize("mode", ["consume", "observe"])
async def test_an_agent_no_chat_subscribes_to_is_not_polled_and_its_notifications_wait(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World, mode: str
) -> None:
    # The demo's first poll once came between /link and /subscribe: the heartbeat marked the
    # waiting notifications read upstream and fan-out had no chat for them.
    agent_id = await link(dm, world, mode=mode)
    waiting = world.push_messages(agent_id, 3, type="note", content_fmt="waiting {i}")
    assert "no chat subscribes to this agent" in await say(dm, "status")
    await relay.poller.poll(agent_id)
    assert world.heartbeat_counts[agent_id] == 0
    assert world.handed_out(agent_id) == []  # unread upstream still
    due = await relay.redis.zscore(relay.keys.poll_due(), str(agent_id))
    assert "Subscribed" in await say(dm, "subscribe", what="all")
    now_due = await relay.redis.zscore(relay.keys.poll_due(), str(agent_id))
    assert due is not None and now_due is not None and now_due < due  # due at once
    assert "no chat subscribes" not in await say(dm, "status")
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain(dm.chat)
    bodies = [d.message.body for d in adapter.to(dm.chat)]
    assert [b for b in bodies if "waiting" in b] == [f"waiting {i}" for i in range(3)], bodies
    if mode == "consume":
        assert sorted(world.handed_out(agent_id)) == sorted(waiting)


# --- every command, every reply ----------------------------------------------------------------------


async def test_every_command_with_garbage_answers_one_readable_reply(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    garbage = "\u202e<b>@everyone</b>\x00" + "💥" * 50
    for spec in COMMANDS:
        args = {p.name: garbage for p in spec.params}
        reply = await relay.router.dispatch(Command(spec.name, args, dm.chat, dm.user, is_private=True))
        assert reply.messages, spec.name
        check("\n".join(m.plain_text() for m in reply.messages))


# --- wording a new user meets (issue 12 §5) ----------------------------------------------------------


@pytest.mark.parametrize("bad", ["-1", "-42", "0", "000"])
async def test_zero_and_negative_ids_must_be_positive(dm: Chat, world: World, bad: str) -> None:
    for name, args in (
        ("replies", {"signal_id": bad}),
        ("follow", {"agent_id": bad}),
        ("unsubscribe", {"id": bad}),
    ):
        text = await say(dm, name, **args)
        assert_usage(text, name)
        assert "must be a positive number" in text, text
    assert len(world.requests) == 0


async def test_not_linked_is_a_plain_sentence_not_a_usage_line(dm: Chat, world: World) -> None:
    for name, args in (
        ("reply", {"signal_id": "1", "text": "hi"}),
        ("following", {}),
        ("subscribe", {"what": "replies"}),
        ("positions", {}),
    ):
        text = await say(dm, name, **args)
        assert not text.startswith("Usage:"), text
        assert "link your agent first with /link" in text and "\n" not in text
    assert len(world.requests) == 0


async def test_notify_with_only_a_kind_shows_its_setting(relay: Relay, dm: Chat) -> None:
    assert await say(dm, "notify", kind="replies") == (
        "Replies are on in this chat. Change with /notify replies on|silent|off."
    )
    await say(dm, "notify", kind="followers", mode="silent")
    text = await say(dm, "notify", kind="Followers")
    assert text.startswith("Followers are silent in this chat.")
    assert await relay.store.kind_modes(dm.chat) == {"followers": "silent"}  # looking changed nothing


async def test_a_bare_slash_gets_the_help_hint(dm: Chat) -> None:
    text = await say(dm, "")
    assert "/help" in text and "Unknown command" not in text


async def test_replies_and_reply_say_the_same_about_an_unknown_signal(dm: Chat, world: World) -> None:
    await link(dm, world)
    listing = await say(dm, "replies", signal_id="424242")
    answer = await say(dm, "reply", signal_id="424242", text="hello?")
    same = "o signal 424242 on AI-Trader. Check the id: /feed finds signals."  # "No"/"no" mid-sentence
    assert same in listing and same in answer, (listing, answer)
    assert world.route_counts["/api/signals/reply"] == 1  # upstream was asked, and said 404


# --- changing subscriptions is explicit (issue 12 §3) -----------------------------------------------


async def test_resubscribing_says_what_it_replaced(relay: Relay, dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    await say(dm, "subscribe", what="all")
    text = await say(dm, "subscribe", what="replies mentions")
    assert "was: all kinds, now: mentions, replies" in text, text
    subs = await relay.store.chat_subscriptions(dm.chat)
    assert [(s.agent_id, s.kinds) for s in subs] == [(agent_id, frozenset({"replies", "mentions"}))]
    assert "was: mentions, replies, now: all kinds" in await say(dm, "subscribe")


async def test_resubscribing_the_same_kinds_changes_nothing(relay: Relay, dm: Chat, world: World) -> None:
    await link(dm, world)
    await say(dm, "subscribe", what="replies")
    before = await relay.store.chat_subscriptions(dm.chat)
    text = await say(dm, "subscribe", what="Replies")
    assert f"Already subscribed #{before[0].sub_id}" in text and "Nothing changed" in text
    assert await relay.store.chat_subscriptions(dm.chat) == before  # same id, not removed and re-added


async def test_subscriptions_show_the_kinds_that_actually_arrive(relay: Relay, dm: Chat, world: World) -> None:
    agent_id = await link(dm, world)
    await say(dm, "subscribe", what="all")
    await say(dm, "notify", kind="tasks", mode="off")
    await say(dm, "notify", kind="replies", mode="silent")
    listing = await say(dm, "subscriptions")
    line = next(x for x in listing.splitlines() if f"agent #{agent_id}" in x)
    delivered = line.split("delivered here: ", 1)[1]
    assert "tasks" not in delivered and "replies (silent)" in delivered and "mentions" in delivered
    for kind in ("followers", "strategies", "discussions", "messages"):
        assert kind in delivered, (kind, line)
    await say(dm, "subscribe", what="tasks")
    listing = await say(dm, "subscriptions")
    assert "tasks → delivered here: nothing (its kinds are off here: /notify)" in listing, listing


# --- /feed arguments as typed on a text platform (issue 12 §3) ---------------------------------------


async def typed(chat: Chat, line: str) -> str:
    """A typed command line, split by the core as Telegram and the console do, then dispatched."""
    name, rest = split_command(line)
    return check(await chat.text(name, **parse_words(BY_NAME[name], rest)))


async def test_feed_keyword_and_page_without_a_type(dm: Chat, world: World) -> None:
    poster = world.create_agent("poster")
    ids = [world.create_signal(poster.id, "strategy", "crypto", f"BTC plan {i}", f"body {i}") for i in range(7)]
    text = await typed(dm, "/feed btc 2")
    assert "6–7 of 7" in text, text
    assert f"[{ids[0]}]" in text and f"[{ids[-1]}]" not in text
    assert "Usage" not in text


async def test_feed_quoted_phrase_is_one_keyword(dm: Chat, world: World) -> None:
    poster = world.create_agent("poster")
    cut = world.create_signal(poster.id, "discussion", "macro", "Fed rate cut odds", "?")
    world.create_signal(poster.id, "discussion", "macro", "Rate hike, then a cut", "?")
    for line in ('/feed "rate cut"', "/feed “rate cut” discussion 1"):
        text = await typed(dm, line)
        assert "Feed: rate cut" in text and f"[{cut}]" in text, (line, text)
        assert "Rate hike" not in text
    # Discord hands the option over as typed, quotes included: the same search.
    assert f"[{cut}]" in await say(dm, "feed", keyword='"rate cut"')


async def test_feed_watch_takes_a_quoted_phrase(relay: Relay, dm: Chat) -> None:
    text = await say(dm, "subscribe", what='feed "rate cut" discussion')
    assert "Watching the feed for “rate cut” (discussion)" in text, text
    sub = (await relay.store.chat_subscriptions(dm.chat))[0]
    assert (sub.keyword, sub.message_type) == ("rate cut", "discussion")


async def test_the_last_error_here_is_said_in_the_language_of_whoever_asks(
    relay: Relay, dm: Chat, adapter: RecordingAdapter, world: World
) -> None:
    """The sentence is stored as its msgid and translated when /status is asked; the platform's
    own words (the detail) stay as they came."""
    await link(dm, world)
    adapter.failures[dm.chat.key] = [Undeliverable("message too long")]
    await relay.outbox.enqueue([Outgoing(dm.chat, "k1", Message(body="a"))], now=0)
    await relay.deliverer.drain(dm.chat)
    await say(dm, "language", language="zh")
    reply = await reply_of(dm, "status")
    fields = {f.name: f.value for f in reply.messages[0].fields}
    (error,) = [v for n, v in fields.items() if "message too long" in v]
    assert error.startswith("有一条通知无法送达：undeliverable: message too long"), error


async def test_a_paused_agent_is_explained_in_the_chats_language(relay: Relay, dm: Chat, world: World) -> None:
    """The pause reason is stored as its msgid (it is also a log line) and said in /status's language."""
    agent_id = await link(dm, world)
    await say(dm, "subscribe", what="all")
    world.rotate_token(agent_id)
    await relay.poller.poll(agent_id)
    stored = await relay.store.agent(agent_id)
    assert stored is not None and stored.state != "active", stored
    assert "AI-Trader rejected the token" in await say(dm, "status")
    await say(dm, "language", language="zh")
    status = await dm.text("status")
    assert "AI-Trader 拒绝了该令牌" in status and "rejected" not in status, status
