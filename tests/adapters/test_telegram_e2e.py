"""End to end through the real core: Telegram users talk to the fake Bot API, the real PTB-based
adapter feeds a real `Relay` (Redis, the AI-Trader simulator over HTTP), and notifications come
back out as sendMessage calls. Nothing here stubs the core.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter
from aitrader_sim.market_seed import seed_market
from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from platform_fakes.telegram_api import Call, FakeTelegram, visible_text
from relay.app import Relay
from relay.config import RelaySettings
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import ChatRef
from relay.redis_values import stream_entries
from relay.services import RedisAdapterServices
from relay.tokens import TokenBox
from tests.adapters.conftest import fast_limiter, telegram_settings
from tests.fakes.relay_process import PlatformRelayProcess

ROOT = Path(__file__).resolve().parents[2]
ANN = FakeTelegram.user(42, "Ann", "ann")
BOB = FakeTelegram.user(43, "Bob")
GROUP = -1001234
KEYBOARD = ["Show replies", "Reply", "Mute this kind"]


@pytest.fixture
def world() -> World:
    """The simulator tells the relay to poll every second (the relay's floor, POLL_MIN_SECONDS=1)."""
    return World(seed=7, poll_interval_seconds=1)


def ref(chat_id: int, thread: int | None = None) -> ChatRef:
    return ChatRef("telegram", str(chat_id), str(thread) if thread else None)


def to_chat(chat_id: int, needle: str = "") -> Callable[[Call], bool]:
    return lambda c: int(c.params["chat_id"]) == chat_id and needle in visible_text(c.params["text"])


def labels(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def button(call: Call, label: str) -> str:
    markup = call.params["reply_markup"]["inline_keyboard"]
    return str(next(b["callback_data"] for row in markup for b in row if b["text"] == label))


def flag(value: Any) -> bool:
    """PTB posts booleans form-encoded ("true"/"false")."""
    return value in (True, "true", "True")


async def eventually(read: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 30) -> None:
    async def loop() -> None:
        while await read() != expected:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


class Telegram:
    """The test's view: users say things in chats of the fake, and read what the bot sends."""

    def __init__(self, fake: FakeTelegram, relay: Relay, world: World) -> None:
        self.fake = fake
        self.relay = relay
        self.world = world

    async def says(
        self,
        chat_id: int,
        user: dict[str, Any],
        text: str,
        expect: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> Call:
        """`user` writes `text` in the chat; returns the bot's answer there containing `expect`."""
        before = {id(c) for c in self.fake.calls}
        self.fake.user_says(chat_id, user, text, thread_id=thread_id, reply_to=reply_to)
        return await self.fake.wait_for(
            "sendMessage", lambda c: id(c) not in before and to_chat(chat_id, expect)(c), 30
        )

    async def linked_agent(self, name: str = "ann_bot", user: dict[str, Any] = ANN) -> int:
        agent = self.world.create_agent(name)
        await self.says(user["id"], user, f"/link {agent.token}", "Linked")
        return agent.id

    async def delivered(self, chat_id: int, needle: str, timeout: float = 30) -> Call:
        return await self.fake.wait_for("sendMessage", to_chat(chat_id, needle), timeout)

    async def poll(self, agent_id: int) -> None:
        """One poll now (heartbeat, persist, fan-out into the outboxes); delivery runs on its own."""
        await self.relay.poller.poll(agent_id)


@pytest.fixture
async def tg(
    fake: FakeTelegram,
    settings: RelaySettings,
    redis: Redis,
    keys: Keys,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
) -> AsyncIterator[Telegram]:
    redactor = Redactor()
    adapter = TelegramAdapter(
        telegram_settings(fake), RedisAdapterServices(redis, keys, "telegram"), redactor, limiter=fast_limiter()
    )
    relay = Relay(settings, redis, http, box, [adapter], redactor=redactor, rng=random.Random(3))
    async with relay:
        assert adapter.is_polling
        yield Telegram(fake, relay, world)


@pytest.fixture
def group(fake: FakeTelegram) -> int:
    fake.add_chat(GROUP, "supergroup", "Traders")
    fake.set_member(GROUP, ANN["id"], "administrator")
    fake.set_member(GROUP, BOB["id"], "member")
    return GROUP


async def test_onboarding_then_a_reply_notification_reaches_every_subscribed_chat_escaped(
    tg: Telegram, fake: FakeTelegram, world: World, group: int
) -> None:
    start = await tg.says(42, ANN, "/start", "AI-Trader relay")
    assert "/link" in visible_text(start.params["text"])

    agent = world.create_agent("ann_bot")
    said = fake.user_says(42, ANN, f"/link {agent.token}")
    linked = await tg.delivered(42, "Linked ann_bot")
    deleted = fake.calls_to("deleteMessage")
    assert [(int(d.params["chat_id"]), int(d.params["message_id"])) for d in deleted] == [(42, said["message_id"])]
    assert deleted[0].at <= linked.at  # the token left the chat before the answer came
    text = visible_text(linked.params["text"])
    assert f"#{agent.id}) in consume mode" in text and "observe:" in text  # the mode is explained
    assert agent.token not in text

    refused = await tg.says(group, BOB, "/subscribe", "Only chat administrators")
    assert "/subscribe" in visible_text(refused.params["text"])
    assert await tg.relay.store.chat_subscriptions(ref(group)) == []
    await tg.says(group, ANN, "/subscribe", "Subscribed")
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    assert {int(c.params["user_id"]) for c in fake.calls_to("getChatMember")} == {ANN["id"], BOB["id"]}

    other = world.create_agent("bob_bot")
    signal_id = world.create_signal(agent.id, "discussion", "crypto", "BTC <breakout> & more", "Looks strong", "BTC")
    world.add_reply(signal_id, other.id, "I <b>agree</b> & raise: 1 < 2")
    await tg.poll(agent.id)
    for chat_id in (42, group):
        call = await tg.delivered(chat_id, "New reply on a discussion")
        html_text, shown = call.params["text"], visible_text(call.params["text"])
        assert call.params["parse_mode"] == "HTML" and call.params["link_preview_options"] == {"is_disabled": True}
        assert "bob_bot replied to your discussion" in shown and "I <b>agree</b> & raise: 1 < 2" in shown
        assert "I &lt;b&gt;agree&lt;/b&gt; &amp; raise: 1 &lt; 2" in html_text  # upstream text is text, not markup
        assert labels(call) == [*KEYBOARD[:2], "Accept", KEYBOARD[2]]  # a reply to ann's own signal
        assert not flag(call.params.get("disable_notification", False))


async def test_buttons_show_replies_post_a_reply_through_force_reply_and_mute_a_kind(
    tg: Telegram, fake: FakeTelegram, world: World, group: int
) -> None:
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    await tg.says(group, ANN, "/subscribe", "Subscribed")
    other = world.create_agent("bob_bot")
    signal_id = world.create_signal(agent_id, "strategy", "crypto", "Grid on ETH", "buy low")
    world.add_reply(signal_id, other.id, "Nice grid")
    await tg.poll(agent_id)
    note = await tg.delivered(42, "New reply on a strategy")
    message_id = note.result["message_id"]

    fake.press(42, message_id, button(note, "Show replies"), ANN)
    replies = await tg.delivered(42, f"Replies to signal {signal_id}")
    assert "bob_bot" in visible_text(replies.params["text"]) and "Nice grid" in visible_text(replies.params["text"])

    fake.press(42, message_id, button(note, "Reply"), ANN)
    prompt = await fake.wait_for("sendMessage", lambda c: "force_reply" in (c.params.get("reply_markup") or {}), 10)
    assert f"/reply {signal_id}" in visible_text(prompt.params["text"])
    await tg.says(
        42, ANN, "Thanks, <i>agreed</i>", f"Reply posted to signal {signal_id}", reply_to=prompt.result["message_id"]
    )
    posted = world.list_replies(signal_id)
    assert [(r["agent_id"], r["content"]) for r in posted] == [
        (other.id, "Nice grid"),
        (agent_id, "Thanks, <i>agreed</i>"),
    ]

    fake.press(42, message_id, button(note, "Mute this kind"), ANN)
    await tg.delivered(42, "Replies are now off")
    answered = {c.params["callback_query_id"] for c in fake.calls_to("answerCallbackQuery")}
    assert len(answered) == 3  # every press was answered

    world.add_reply(signal_id, other.id, "Second thoughts")  # a reply again: muted in chat 42 only
    world.follow(other.id, agent_id)  # a follower: still on in chat 42
    await tg.poll(agent_id)
    await tg.delivered(group, "Second thoughts")
    await tg.delivered(42, "bob_bot started following you")
    # The chat's outbox is sent in upstream order: had the muted reply been queued for chat 42,
    # it would have arrived before the follower notice.
    assert [c for c in fake.sent(42) if "Second thoughts" in visible_text(c.params["text"])] == []
    await eventually(lambda: tg.relay.outbox.pending(ref(42)), 0)  # nothing held back either


async def test_feed_next_button_edits_the_page_in_place(tg: Telegram, fake: FakeTelegram, world: World) -> None:
    author = world.create_agent("quant")
    for i in range(7):
        world.create_signal(author.id, "discussion", "crypto", f"BTC idea {i}", f"idea number {i}", "BTC")
    first = await tg.says(42, ANN, "/feed btc", "Feed: btc")
    assert "1–5 of 7 · page 1" in visible_text(first.params["text"]) and labels(first) == ["Next ▶"]
    fake.press(42, first.result["message_id"], button(first, "Next ▶"), ANN)
    edit = await fake.wait_for("editMessageText", timeout=10)
    assert int(edit.params["message_id"]) == first.result["message_id"]
    page = visible_text(edit.params["text"])
    assert "6–7 of 7 · page 2" in page and "BTC idea 0" in page  # oldest two on page 2
    assert labels(edit) == ["◀ Previous"]
    assert fake.messages[(42, first.result["message_id"])]["text"] == page  # the message itself changed
    assert len([c for c in fake.sent(42) if "Feed: btc" in c.params["text"]]) == 1  # no new message


async def test_a_forum_topic_subscription_delivers_to_its_thread_and_a_silent_kind_does_not_notify(
    tg: Telegram, fake: FakeTelegram, world: World
) -> None:
    forum = -100777
    fake.add_chat(forum, "supergroup", "Desk", is_forum=True)
    fake.set_member(forum, ANN["id"], "administrator")
    agent_id = await tg.linked_agent()
    await tg.says(forum, ANN, "/subscribe", "Subscribed", thread_id=5)
    await tg.says(forum, ANN, "/notify messages silent", "Messages are now silent", thread_id=5)
    assert [s.chat for s in await tg.relay.store.chat_subscriptions(ref(forum, 5))] == [ref(forum, 5)]

    world.push_message(agent_id, "custom_note", "quiet note")
    follower = world.create_agent("fan")
    world.follow(follower.id, agent_id)
    await tg.poll(agent_id)
    quiet = await tg.delivered(forum, "quiet note")
    loud = await tg.delivered(forum, "fan started following you")
    assert int(quiet.params["message_thread_id"]) == 5 and int(loud.params["message_thread_id"]) == 5
    assert flag(quiet.params["disable_notification"]) and not flag(loud.params["disable_notification"])


async def test_a_blocked_chat_loses_its_subscriptions(
    tg: Telegram, fake: FakeTelegram, world: World, redis: Redis, keys: Keys
) -> None:
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    fake.fail_chat(42, "blocked")
    world.push_message(agent_id, "custom_note", "are you there")
    await tg.poll(agent_id)
    forbidden = await fake.wait_for("sendMessage", to_chat(42, "are you there"), 10, status=403)
    assert forbidden.status == 403

    await eventually(lambda: tg.relay.store.chat_subscriptions(ref(42)), [])

    async def dead() -> list[tuple[str, bool]]:
        # The subscriptions go first, then the delivery becomes a dead letter: wait for both.
        return [
            (f["chat"], "chat gone" in f["cause"]) for _, f in stream_entries(await redis.xrange(keys.dead_letters()))
        ]

    await eventually(dead, [(ref(42).key, True)])
    assert len(fake.calls_to("sendMessage", status=403)) == 1  # one refusal, no retries


async def test_a_group_without_the_right_to_post_keeps_its_subscriptions(
    tg: Telegram, fake: FakeTelegram, world: World, redis: Redis, keys: Keys
) -> None:
    """ "not enough rights to send" can be undone by an admin: the chat keeps its configuration and
    its queue, /status says why, nothing is dead-lettered, and delivery resumes later."""
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    fake.fail_chat(42, "no_rights")
    world.push_message(agent_id, "custom_note", "are you there")
    await tg.poll(agent_id)
    await fake.wait_for("sendMessage", to_chat(42, "are you there"), 10, status=400)

    async def noted() -> bool:
        return "permission" in str(await tg.relay.store.chat_error(ref(42)))

    await eventually(noted, True)
    assert len(await tg.relay.store.chat_subscriptions(ref(42))) == 1
    assert await tg.relay.outbox.pending(ref(42)) == 1 and await redis.xrange(keys.dead_letters()) == []
    assert len(fake.calls_to("sendMessage", status=400)) == 1, "retried later, not at once"


async def test_a_migrated_group_takes_its_subscription_and_pending_deliveries_to_the_new_id(
    tg: Telegram, fake: FakeTelegram, world: World
) -> None:
    old, new = -555, -100555
    fake.add_chat(old, "group", "Small group")
    fake.set_member(old, ANN["id"], "creator")
    agent_id = await tg.linked_agent()
    await tg.says(old, ANN, "/subscribe", "Subscribed")
    fake.flood(old, retry_after=30)  # the delivery waits in the old chat's outbox
    world.push_message(agent_id, "custom_note", "before the upgrade")
    await tg.poll(agent_id)
    await fake.wait_for("sendMessage", to_chat(old), 10, status=429)
    assert await tg.relay.outbox.pending(ref(old)) == 1

    fake.migrate(old, new)  # the service message with migrate_to_chat_id arrives as an update
    moved = await tg.delivered(new, "before the upgrade")
    assert moved.status == 200
    assert await tg.relay.store.chat_subscriptions(ref(old)) == []
    assert [s.chat for s in await tg.relay.store.chat_subscriptions(ref(new))] == [ref(new)]
    assert await tg.relay.outbox.pending(ref(old)) == 0
    world.push_message(agent_id, "custom_note", "after the upgrade")
    await tg.poll(agent_id)
    await tg.delivered(new, "after the upgrade")
    assert [c for c in fake.sent(old) if "upgrade" in c.params["text"]] == []


async def test_a_429_in_one_chat_defers_only_that_chat(
    tg: Telegram, fake: FakeTelegram, world: World, group: int
) -> None:
    agent_id = await tg.linked_agent()
    await tg.says(42, ANN, "/subscribe", "Subscribed")
    await tg.says(group, ANN, "/subscribe", "Subscribed")
    fake.flood(42, retry_after=2)
    world.push_messages(agent_id, 3, type="custom_note", content_fmt="burst {i}")
    await tg.poll(agent_id)
    in_group = [await tg.delivered(group, f"burst {i}") for i in range(3)]
    in_dm = [await tg.delivered(42, f"burst {i}") for i in range(3)]
    assert max(c.at for c in in_group) < min(c.at for c in in_dm)  # the group did not wait for chat 42
    bursts = [f"burst {i}" for i in range(3)]
    assert [
        b for c in fake.sent(42) for b in bursts if b in visible_text(c.params["text"])
    ] == bursts  # once each, in order
    # One 429, then the chat waited out retry_after instead of spending requests on more 429s.
    assert len([c for c in fake.calls_to("sendMessage", status=429) if int(c.params["chat_id"]) == 42]) == 1
    assert min(c.at for c in in_dm) - fake.calls_to("sendMessage", status=429)[0].at >= 1.9


# --- the real process ---------------------------------------------------------------------


async def test_the_relay_process_links_subscribes_delivers_and_stops_on_sigterm(
    fake: FakeTelegram, sim: SimulatorServer, world: World, redis_url: str, prefix: str, secret_key: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE=fake.api_base,
        AITRADER_BASE_URL=sim.url,
        REDIS_URL=redis_url,
        RELAY_SECRET_KEY=secret_key,
        RELAY_KEY_PREFIX=prefix,
        POLL_MIN_SECONDS="1",
        POLL_MAX_SECONDS="2",
        AITRADER_TIMEOUT_SECONDS="3",
        LOG_LEVEL="INFO",
    )
    async with PlatformRelayProcess(env) as relay:
        try:
            await fake.wait_for("setMyCommands", timeout=20)  # started; updates sent from now on are polled
            agent = world.create_agent("proc_bot")
            fake.user_says(42, ANN, f"/link {agent.token}")
            await fake.wait_for("sendMessage", to_chat(42, "Linked proc_bot"), 10)
            fake.user_says(42, ANN, "/subscribe")
            await fake.wait_for("sendMessage", to_chat(42, "Subscribed"), 10)
            world.push_message(agent.id, "custom_note", "from the <simulator> & co")
            # The process finds the new agent on its own (scheduler sync, then 1 s polls).
            note = await fake.wait_for("sendMessage", to_chat(42, "from the <simulator> & co"), 20)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; relay stderr tail: {relay.err[-2000:]}") from None
        assert "from the &lt;simulator&gt; &amp; co" in note.params["text"]
        assert labels(note) == ["Mute this kind"]
        code = await relay.terminate()
    # Graceful: status 0 after the relay's own bounded stop (not a wall-clock limit, which a
    # loaded machine stretches).
    assert code == 0 and "relay stopped" in relay.err, relay.err[-2000:]
    assert fake.token not in relay.err  # the token-bearing API URL never reaches the log


# --- the trader's cockpit ----------------------------------------------------------------------
# The trader's cockpit on Telegram, end to end: the real PTB adapter against the fake Bot API,
# the real core, the simulator. Cards render as aligned lines; the Confirm button of /trade
# publishes once, only for the user who asked; Refresh edits /positions in place.

REALTIME = "/api/signals/realtime"


def trades(world: World) -> int:
    return sum(1 for s in world.signals.values() if s.message_type == "operation")


async def test_trade_confirm_in_a_group_only_for_the_asker_and_only_once(
    tg: Telegram, fake: FakeTelegram, world: World, group: int
) -> None:
    world.us_market_open = True
    await tg.linked_agent("ann_bot")
    card = await tg.says(group, ANN, "/trade buy AAPL 3 us-stock 212.5", "Confirm: BUY 3 AAPL")
    assert labels(card) == ["Confirm", "Cancel"]
    html = card.params["text"]
    assert "<pre>" in html  # the order's fields as aligned lines
    assert "Side      BUY\nSymbol    AAPL\nQuantity  3" in visible_text(html)
    message_id = card.result["message_id"]

    # Bob presses: he is told below the card, the card stays for Ann, nothing is traded.
    fake.press(group, message_id, button(card, "Confirm"), BOB)
    await tg.delivered(group, "Only Ann can confirm this trade.")
    assert not fake.calls_to("editMessageText")
    assert world.route_counts[REALTIME] == 0

    # Ann double-clicks: one trade, the card becomes the result and loses its buttons.
    fake.press(group, message_id, button(card, "Confirm"), ANN)
    fake.press(group, message_id, button(card, "Confirm"), ANN)
    edit = await fake.wait_for("editMessageText", lambda c: "Published: BUY 3 AAPL" in visible_text(c.params["text"]))
    assert int(edit.params["message_id"]) == message_id and not edit.params.get("reply_markup")

    def second_press_done(_: Call) -> bool:
        # The other press either re-shows the settled card (an edit Telegram may call "not
        # modified") or, while the first was still at AI-Trader, says so below the card.
        edits = fake.calls_to("editMessageText", status=None)
        busy = [c for c in fake.sent(group) if "being published right now" in visible_text(c.params["text"])]
        return len(edits) >= 2 or bool(busy)

    await fake.wait_for("editMessageText", second_press_done, status=None)
    assert "Published: BUY 3 AAPL" in visible_text(fake.calls_to("editMessageText")[-1].params["text"])
    assert trades(world) == 1 and world.route_counts[REALTIME] == 1


async def test_positions_refresh_edits_the_card_in_place(tg: Telegram, fake: FakeTelegram, world: World) -> None:
    agent_id = await tg.linked_agent("ann_bot")
    alice = world.create_agent("alice")
    seed_market(world, world.agent(agent_id), {"alice": alice})
    card = await tg.says(42, ANN, "/positions", "Positions: ann_bot")
    text = visible_text(card.params["text"])
    assert "copied from alice" in text and "Total PnL" in text and "Cash" in text
    assert labels(card) == ["Refresh"]
    world.set_price("us-stock", "AAPL", 300.0)
    fake.press(42, card.result["message_id"], button(card, "Refresh"), ANN)
    edit = await fake.wait_for("editMessageText")
    assert int(edit.params["message_id"]) == card.result["message_id"]
    assert "→ 300" in visible_text(edit.params["text"])
    assert len([c for c in fake.sent(42) if "Positions:" in visible_text(c.params["text"])]) == 1


async def test_every_cockpit_card_fits_telegram(tg: Telegram, fake: FakeTelegram, world: World) -> None:
    """Each new command's answer, from a seeded market, is accepted by the fake (4096 UTF-16 units,
    valid HTML) with its buttons' callback data within 64 bytes."""
    agent_id = await tg.linked_agent("ann_bot")
    alice = world.create_agent("alice")
    seed_market(world, world.agent(agent_id), {"alice": alice})
    for line, expect in (
        (f"/trader {alice.id}", "Trader alice"),
        ("/leaderboard 7", "Leaderboard, 7 days"),
        ("/trending", "Trending"),
        ("/points", "Points"),
        ("/intel", "Market overview"),
        ("/intel macro", "Macro:"),
        ("/intel news", "News"),
        ("/intel stock NVDA", "NVDA: buy"),
        (f"/replies {next(iter(world.signals))}", "Replies to signal"),
    ):
        call = await tg.says(42, ANN, line, expect)
        assert call.status == 200
        markup = call.params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []):
            assert all(len(b["callback_data"].encode()) <= 64 for b in row)
