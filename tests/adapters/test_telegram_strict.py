"""Telegram's refusals, as the strict fake gives them, met by the real python-telegram-bot and the adapter.

Each test names the behaviour of platform_fakes/telegram_api.py it relies on (documented there
with its source in the Bot API page or the Bots FAQ) and fails against the lenient fake or the
adapter of before: callback_data of 1-64 bytes, callback queries that expire, chats and topics
that must exist, getChatMember closed to a bot that is not an administrator, allowed_updates
honoured and remembered, setWebhook's https and ports, webhook redelivery after a non-2xx answer,
and flood limits on every send method, on in the shared fixture.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, RetryAfter

from adapters.telegram import TelegramAdapter, TelegramSettings
from adapters.telegram.adapter import ALLOWED_UPDATES
from platform_fakes.telegram_api import FakeTelegram
from relay.errors import ChatGone, PermissionMissing
from relay.models import Action, ChatRef, Message, Reply
from tests.adapters.conftest import AdapterFactory, Recorder
from tests.cli import cli
from tests.relay.test_config import one_line

ANN = FakeTelegram.user(42, "Ann")
BOB = FakeTelegram.user(43, "Bob")
GROUP = -1001234


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A bare PTB Bot on the fake: what the fake answers, unfiltered by the adapter."""
    async with Bot(fake.token, base_url=fake.api_base + "/bot") as bare:
        yield bare


@pytest.fixture(autouse=True)
def chats(fake: FakeTelegram) -> None:
    fake.add_chat(42)
    fake.add_chat(43)
    fake.add_chat(GROUP, "supergroup", "Traders")


async def _with_button(fake: FakeTelegram, core: Recorder, data_action: Action) -> dict[str, Any]:
    core.replies["feed"] = Reply((Message(body="page 1", actions=(data_action,)),))
    fake.user_says(42, ANN, "/feed btc")
    call = await fake.wait_for("sendMessage", lambda c: "page 1" in c.params["text"])
    assert isinstance(call.result, dict)
    return call.result


# --- buttons ----------------------------------------------------------------------------------


async def test_callback_data_over_64_bytes_is_button_data_invalid(bot: Bot, fake: FakeTelegram) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="é" * 33)]])  # 66 bytes
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(42, "x", reply_markup=too_long)
    fits = InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data="é" * 32)]])  # 64 bytes
    await bot.send_message(42, "x", reply_markup=fits)
    assert len(fake.sent(42)) == 1


async def test_a_late_answer_to_a_callback_query_is_refused(bot: Bot, fake: FakeTelegram) -> None:
    fake.callback_window = 0.2
    sent = await bot.send_message(42, "x", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("b", "d")]]))
    query = fake.press(42, sent.message_id, "d", ANN)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # past the window
        await asyncio.sleep(0.05)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query)


async def test_a_press_is_answered_before_the_core_works(fake: FakeTelegram, make_adapter: AdapterFactory) -> None:
    """The answer comes first; a slow core (AI-Trader, a rate limit) no longer leaves the button spinning."""
    release = asyncio.Event()

    class Slow(Recorder):
        async def dispatch(self, command):  # type: ignore[no-untyped-def]
            if command.name == "follow":
                await release.wait()
            return await super().dispatch(command)

    slow = Slow()
    await make_adapter(recorder=slow)
    fake.callback_window = 0.5
    sent = await _with_button(fake, slow, Action("Follow", "follow", {"agent_id": "9"}))
    data = sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    fake.press(42, sent["message_id"], data, ANN)
    answered = await fake.wait_for("answerCallbackQuery", status=None)
    assert answered.status == 200, "answered within the window although the core has not answered"
    assert [c.name for c in slow.commands] == ["feed"]
    release.set()
    await slow.command(1)
    await fake.wait_for("sendMessage", lambda c: "ok follow" in c.params["text"])


# --- chats, topics, members ---------------------------------------------------------------------


async def test_unknown_chats_and_topics_are_refused(bot: Bot, fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(777, "x")
    fake.add_chat(-1009, "supergroup", is_forum=True)
    fake.add_topic(-1009, 7)
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(-1009, "x", message_thread_id=8)
    await bot.send_message(-1009, "x", message_thread_id=7)
    with pytest.raises(ChatGone):  # a deleted topic takes its subscriptions with it
        await adapter.send(ChatRef("telegram", "-1009", "8"), Message(body="x"), key="t1")


async def test_get_chat_member_needs_an_admin_bot_where_members_are_hidden(
    bot: Bot, fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.chats[GROUP]["has_hidden_members"] = True
    fake.set_member(GROUP, ANN["id"], "administrator")
    with pytest.raises(BadRequest, match=r"(?i)member list is inaccessible"):
        await bot.get_chat_member(GROUP, ANN["id"])
    fake.user_says(GROUP, ANN, "/subscribe")
    refused = await core.command(0)
    assert not refused.user.is_chat_admin, "unknown counts as not an administrator"
    fake.bot_admin.add(GROUP)  # a failed lookup is not cached: the next command asks again
    fake.user_says(GROUP, ANN, "/subscribe")
    allowed = await core.command(1)
    assert allowed.user.is_chat_admin


async def test_not_enough_rights_is_a_permission_to_wait_for(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    fake.fail_chat(GROUP, "no_rights")
    with pytest.raises(PermissionMissing) as caught:
        await adapter.send(ChatRef("telegram", str(GROUP)), Message(body="x"), key="r1")
    assert caught.value.seconds >= 60


# --- updates ----------------------------------------------------------------------------------


async def test_allowed_updates_are_honoured_and_remembered(bot: Bot, fake: FakeTelegram) -> None:
    await bot.get_updates(timeout=0, allowed_updates=["message"])
    assert fake.inject({"edited_message": {"message_id": 1}}) == 0, "a type the bot did not ask for is not created"
    await bot.get_updates(timeout=0)  # "If not specified, the previous setting will be used."
    assert fake.allowed_updates == ["message"]
    assert fake.inject({"callback_query": {"id": "1"}}) == 0
    fake.user_says(42, ANN, "hello")
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "hello"


async def test_the_adapter_asks_only_for_what_it_handles(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    await asyncio.wait_for(_until(lambda: fake.allowed_updates is not None), 5)  # the first getUpdates
    assert fake.allowed_updates == list(ALLOWED_UPDATES)
    assert fake.inject({"message_reaction": {"chat": fake.chats[42]}}) == 0, "not asked for: never created"


async def test_set_webhook_takes_only_https_on_telegrams_ports(bot: Bot, fake: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match=r"(?i)https url must be provided"):
        await bot.set_webhook("http://relay.example/hook")
    with pytest.raises(BadRequest, match=r"(?i)ports 80, 88, 443 or 8443"):
        await bot.set_webhook("https://relay.example:8080/hook")
    assert await bot.set_webhook("https://relay.example:88/hook")


@pytest.mark.parametrize(
    ("url", "words"),
    [("http://relay.example/hook", "https"), ("https://relay.example:8080/hook", "8080")],
)
def test_a_webhook_url_telegram_would_refuse_fails_at_configuration(url: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TELEGRAM_WEBHOOK_URL"):
        TelegramSettings(bot_token="123:abc", webhook_url=url)
    done = cli(tmp_path, "run", TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_WEBHOOK_URL=url)
    line = one_line(done.stderr)
    assert done.returncode == 2 and "TELEGRAM_WEBHOOK_URL" in line and words in line


async def test_a_webhook_update_refused_with_a_non_2xx_is_delivered_again(
    fake: FakeTelegram, make_adapter: AdapterFactory, core: Recorder, unused_port: int
) -> None:
    fake.webhook_retry = 0.05
    fake.webhook_origin = f"http://127.0.0.1:{unused_port}"
    await make_adapter(
        webhook_url="https://relay.example/telegram/hook", webhook_secret="right-Secret", port=unused_port
    )
    fake.webhook_secret = "stale-Secret"  # e.g. a deploy that changed the secret: the relay answers 403
    fake.user_says(42, ANN, "/status")
    await asyncio.wait_for(_until(lambda: fake.webhook_deliveries.count(403) >= 2), 5)
    assert core.commands == []
    fake.webhook_secret = "right-Secret"
    cmd = await core.command()
    assert cmd.name == "status" and fake.webhook_deliveries[-1] == 200
    assert fake._updates == [], "delivered once accepted"


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.02)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- flood limits -------------------------------------------------------------------------------


async def test_the_shared_fixture_has_telegrams_flood_limits_on(bot: Bot, fake: FakeTelegram) -> None:
    """Per chat: a burst of 3, then about one a second (scaled): six at once meet a 429."""
    results = await asyncio.gather(*(bot.send_message(42, f"m{i}") for i in range(6)), return_exceptions=True)
    assert any(isinstance(r, RetryAfter) for r in results), results
    assert len(fake.sent(42)) >= 3
    await bot.send_message(43, "another chat is not held up")


async def test_every_send_method_counts_against_the_limits(bot: Bot, fake: FakeTelegram) -> None:
    sent = await bot.send_message(42, "original")
    fake.flood(42, retry_after=1)  # the chat is serving a retry_after
    with pytest.raises(RetryAfter):  # copyMessage posts a message too (FAQ: limits are per message sent)
        await bot.copy_message(42, 42, sent.message_id)
