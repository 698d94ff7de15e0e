"""Inbound: Telegram updates through the real PTB Application to `dispatch`, and the replies back."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter
from platform_fakes.telegram_api import ANONYMOUS_ADMIN, SERVICE_USER, FakeTelegram
from relay.keys import TELEGRAM_BUTTONS, Keys
from relay.models import Action, Command, Message, Reply
from relay.specs import COMMANDS
from tests.adapters.conftest import AdapterFactory, Recorder

ANN = FakeTelegram.user(42, "Ann", "ann")
BOB = FakeTelegram.user(43, "Bob")
GROUP = -1001234


async def test_a_command_is_parsed_dispatched_and_answered_in_the_same_chat(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.user_says(42, ANN, "/feed@relay_test_bot btc strategy 2")
    cmd = await core.command()
    assert (cmd.name, dict(cmd.args)) == ("feed", {"keyword": "btc", "type": "strategy", "page": "2"})
    assert cmd.chat.key == "telegram:42:" and cmd.is_private
    assert (cmd.user.user_id, cmd.user.display) == ("42", "Ann")
    call = await fake.wait_for("sendMessage")
    assert int(call.params["chat_id"]) == 42 and call.params["text"] == "ok feed"
    assert call.params["parse_mode"] == "HTML" and call.params["link_preview_options"] == {"is_disabled": True}


async def test_rest_parameters_keep_the_whole_line(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.user_says(42, ANN, "/reply 123 I  disagree,\nstrongly")
    cmd = await core.command()
    assert dict(cmd.args) == {"signal_id": "123", "text": "I  disagree,\nstrongly"}


async def test_set_my_commands_registers_every_spec_with_one_line(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    # The default menu (also a channel's) leaves out /link, which only works in a private chat;
    # tests/adapters/test_telegram_menus.py checks every scope and language.
    assert [c["command"] for c in fake.commands] == [spec.name for spec in COMMANDS if not spec.private_only]
    assert all(c["description"] and "\n" not in c["description"] for c in fake.commands)


async def test_unknown_commands_get_a_pointer_to_help_but_other_bots_commands_are_ignored(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.add_chat(GROUP, "supergroup")
    fake.user_says(42, ANN, "/frobnicate now")
    call = await fake.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == 42)
    assert call.params["text"] == "Unknown command /frobnicate. Send /help for the list."
    fake.user_says(GROUP, ANN, "/feed@other_bot btc")
    fake.user_says(GROUP, ANN, "/frobnicate")  # unaddressed in a group: may be another bot's
    fake.user_says(GROUP, ANN, "/frobnicate@relay_test_bot")
    await fake.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == GROUP)
    fake.user_says(GROUP, ANN, "/help")
    await core.command()
    await fake.wait_for("sendMessage", lambda c: c.params["text"] == "ok help")
    assert [c.name for c in core.commands] == ["help"]
    assert [c.params["text"] for c in fake.sent(GROUP)] == [
        "Unknown command /frobnicate. Send /help for the list.",
        "ok help",
    ]


async def test_edited_messages_are_not_commands(fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder) -> None:
    fake.user_says(42, ANN, "/unlink", edited=True)
    fake.user_says(42, ANN, "/status")
    await core.command()
    await fake.wait_for("sendMessage")
    assert [c.name for c in core.commands] == ["status"]


async def test_forum_topics_are_chats_of_their_own_but_reply_threads_are_not(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.add_chat(GROUP, "supergroup", is_forum=True)
    fake.user_says(GROUP, ANN, "/subscriptions", thread_id=7)
    cmd = await core.command()
    assert cmd.chat.key == f"telegram:{GROUP}:7" and not cmd.is_private
    call = await fake.wait_for("sendMessage")
    assert int(call.params["message_thread_id"]) == 7


async def test_updates_seen_before_are_not_dispatched_twice(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, redis: Redis, keys: Keys
) -> None:
    await redis.set(keys.command_seen("telegram", "1"), 1)  # as if another process handled update 1
    fake.user_says(42, ANN, "/status")  # update 1
    fake.user_says(42, ANN, "/help")  # update 2
    await core.command()
    await fake.wait_for("sendMessage")
    assert [c.name for c in core.commands] == ["help"]


@pytest.fixture
async def group(fake: FakeTelegram) -> int:
    fake.add_chat(GROUP, "supergroup", "Traders")
    fake.set_member(GROUP, 42, "administrator")
    fake.set_member(GROUP, 43, "member")
    fake.set_member(GROUP, 44, "creator")
    return GROUP


async def test_admin_role_comes_from_get_chat_member_and_is_cached(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    for user in (ANN, BOB, FakeTelegram.user(44)):
        fake.user_says(group, user, "/subscribe kinds replies")
    await core.wait(lambda: len(core.commands) == 3)
    fake.user_says(group, ANN, "/notify replies off")
    await core.wait(lambda: len(core.commands) == 4)
    admin = {c.user.user_id: c.user.is_chat_admin for c in core.commands}
    assert admin == {"42": True, "43": False, "44": True}
    assert sorted(int(c.params["user_id"]) for c in fake.calls_to("getChatMember")) == [
        42,
        43,
        44,
    ]  # Ann's second: cached


async def test_anonymous_admins_count_and_linked_channels_do_not(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    channel = fake.add_chat(-100777, "channel", "Linked channel")
    fake.user_says(group, ANONYMOUS_ADMIN, "/unsubscribe 3", sender_chat=fake.chat(group))
    await core.command(0)
    fake.user_says(group, SERVICE_USER, "/unsubscribe 4", sender_chat=channel)
    await core.command(1)
    anonymous, linked = core.commands
    assert anonymous.user.is_chat_admin and anonymous.user.display == "Traders"
    assert not linked.user.is_chat_admin
    assert fake.calls_to("getChatMember") == []


async def test_role_is_only_looked_up_for_admin_commands(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    fake.user_says(group, ANN, "/feed btc")
    cmd = await core.command()
    assert not cmd.user.is_chat_admin and fake.calls_to("getChatMember") == []


async def test_a_secret_command_is_deleted_before_the_answer(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    core.replies["link"] = Reply.text(
        "Link in a private chat with me; log in again to rotate that token.", delete_command=True
    )
    fake.can_delete[group] = True
    said = fake.user_says(group, ANN, "/link abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    call = await fake.wait_for("sendMessage")
    deleted = fake.calls_to("deleteMessage")
    assert [(int(d.params["chat_id"]), int(d.params["message_id"])) for d in deleted] == [(group, said["message_id"])]
    assert deleted[0].at <= call.at


async def test_a_failed_delete_does_not_stop_the_answer(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    core.replies["link"] = Reply.text("Not here.", delete_command=True)
    fake.user_says(group, ANN, "/link sometoken")
    call = await fake.wait_for("sendMessage")
    assert call.params["text"] == "Not here."
    assert [d.status for d in fake.calls_to("deleteMessage", status=None)] == [400]


FEED_PAGE = Message(
    title="Feed: btc",
    body="1. BTC breakout",
    actions=(
        Action("Next", "feed", {"keyword": "btc", "page": "2"}, replace=True),
        Action("Reply", "reply", {"signal_id": "123"}, kind="prompt", text_param="text"),
    ),
)


async def _feed_message(fake: FakeTelegram, core: Recorder, chat_id: int, user: dict[str, Any]) -> dict[str, Any]:
    core.replies["feed"] = Reply((FEED_PAGE,))
    fake.user_says(chat_id, user, "/feed btc")
    call = await fake.wait_for("sendMessage", lambda c: "Feed: btc" in c.params["text"])
    message: dict[str, Any] = call.result
    return message


async def test_buttons_carry_the_command_and_next_edits_the_page_in_place(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    sent = await _feed_message(fake, core, 42, ANN)
    keyboard = sent["reply_markup"]["inline_keyboard"]
    labels = [b["text"] for row in keyboard for b in row]
    assert labels == ["Next", "Reply"]
    next_data = keyboard[0][0]["callback_data"]
    assert len(next_data.encode()) <= 64
    core.replies["feed"] = Reply((Message(title="Feed: btc", body="2. ETH range", actions=FEED_PAGE.actions[:1]),))
    query_id = fake.press(42, sent["message_id"], next_data, BOB)
    edit = await fake.wait_for("editMessageText")
    assert int(edit.params["message_id"]) == sent["message_id"] and "2. ETH range" in edit.params["text"]
    cmd = core.commands[-1]
    assert (cmd.name, dict(cmd.args), cmd.user.user_id) == ("feed", {"keyword": "btc", "page": "2"}, "43")
    answer = await fake.wait_for("answerCallbackQuery")
    assert answer.params["callback_query_id"] == query_id
    assert len(fake.sent(42)) == 1  # edited, not sent anew


async def test_a_prompt_button_asks_with_force_reply_and_the_answer_becomes_the_command(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    sent = await _feed_message(fake, core, 42, ANN)
    reply_data = sent["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    fake.press(42, sent["message_id"], reply_data, ANN)
    prompt = await fake.wait_for("sendMessage", lambda c: "force_reply" in (c.params.get("reply_markup") or {}))
    assert "/reply 123" in prompt.params["text"] and "your reply" in prompt.params["text"]
    await fake.wait_for("answerCallbackQuery")
    fake.user_says(42, ANN, "Great call, <b>thanks</b>", reply_to=prompt.result["message_id"])
    cmd = await core.command(1)
    assert (cmd.name, dict(cmd.args)) == ("reply", {"signal_id": "123", "text": "Great call, <b>thanks</b>"})
    # The prompt is used once: a second answer to it is just chat.
    fake.user_says(42, ANN, "and again", reply_to=prompt.result["message_id"])
    fake.user_says(42, ANN, "/status")
    await core.command(2)
    assert [c.name for c in core.commands] == ["feed", "reply", "status"]


async def test_in_a_group_the_prompt_mentions_the_presser(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    sent = await _feed_message(fake, core, group, ANN)
    fake.press(group, sent["message_id"], sent["reply_markup"]["inline_keyboard"][0][1]["callback_data"], BOB)
    prompt = await fake.wait_for("sendMessage", lambda c: "force_reply" in (c.params.get("reply_markup") or {}))
    assert '<a href="tg://user?id=43">Bob</a>' in prompt.params["text"]
    assert prompt.params["reply_markup"]["selective"] is True


async def test_long_button_data_is_stored_in_redis_for_a_week(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, redis: Redis, keys: Keys
) -> None:
    keyword = "a-very-long-search-phrase-that-does-not-fit-in-callback-data"
    core.replies["feed"] = Reply(
        (Message(body="page", actions=(Action("Next", "feed", {"keyword": keyword, "page": "2"}),)),)
    )
    fake.user_says(42, ANN, "/feed x")
    call = await fake.wait_for("sendMessage")
    data = call.result["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert keyword not in data and len(data.encode()) <= 64
    stored = [k async for k in redis.scan_iter(match=keys.adapter_key(TELEGRAM_BUTTONS, "*"))]
    assert len(stored) == 1 and 6 * 86400 < await redis.ttl(stored[0]) <= 7 * 86400
    fake.press(42, call.result["message_id"], data, ANN)
    cmd = await core.command(1)
    assert dict(cmd.args) == {"keyword": keyword, "page": "2"}


async def test_every_press_is_answered_even_when_the_button_expired_or_dispatch_fails(
    fake: FakeTelegram, make_adapter: AdapterFactory, core: Recorder
) -> None:
    class Broken(Recorder):
        async def dispatch(self, command: Command) -> Reply:
            if command.name == "follow":
                raise RuntimeError("core bug")
            return await super().dispatch(command)

    broken = Broken()
    broken.replies["feed"] = Reply((Message(body="x", actions=(Action("Follow", "follow", {"agent_id": "9"}),)),))
    await make_adapter(recorder=broken)
    fake.user_says(42, ANN, "/feed x")
    call = await fake.wait_for("sendMessage")
    fake.press(42, call.result["message_id"], "r|no-such-id", ANN)
    expired = await fake.wait_for("answerCallbackQuery")
    assert "expired" in expired.params.get("text", "")
    fake.press(
        42, call.result["message_id"], call.result["reply_markup"]["inline_keyboard"][0][0]["callback_data"], ANN
    )
    await fake.wait_for("answerCallbackQuery", lambda c: c is not expired)
    assert len(fake.calls_to("answerCallbackQuery")) == 2
    assert [c.name for c in broken.commands] == ["feed"]
    failed = await fake.wait_for("sendMessage", lambda c: "went wrong" in c.params["text"])
    assert int(failed.params["chat_id"]) == 42


async def test_bot_removed_and_group_migration_become_chat_changes(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.add_chat(-555, "group", "Old group")
    fake.bot_removed(42, ANN, status="kicked")
    fake.migrate(-555, -100555)
    await core.wait(lambda: len(core.changes) == 2)
    gone, moved = sorted(core.changes, key=lambda c: c.change)
    assert (gone.chat.key, gone.change) == ("telegram:42:", "gone") and "blocked" in gone.reason
    assert moved.new_chat is not None
    assert (moved.chat.key, moved.change, moved.new_chat.key) == ("telegram:-555:", "moved", "telegram:-100555:")


async def test_a_bare_slash_in_a_private_chat_gets_the_help_hint(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.user_says(42, ANN, "/")
    call = await fake.wait_for("sendMessage", lambda c: int(c.params["chat_id"]) == 42)
    assert "/help" in call.params["text"] and "Unknown command" not in call.params["text"]
    assert core.commands == []  # answered by the adapter with the core's hint, nothing dispatched
