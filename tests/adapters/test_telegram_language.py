"""A Telegram chat's language through the real python-telegram-bot and the strict fake: each
command answered in its sender's `language_code`, notifications in the language the chat last
spoke, and a group's `/language` winning over its members' own."""

from __future__ import annotations

from platform_fakes.telegram_api import FakeTelegram
from tests.adapters import test_telegram_e2e as e2e
from tests.adapters.test_telegram_e2e import Telegram

# The end-to-end module's fixtures: a started relay with the Telegram adapter, and its simulator.
tg = e2e.tg
world = e2e.world

LI = FakeTelegram.user(52, "Li", "li", language_code="zh-hans")
ANN = FakeTelegram.user(53, "Ann", "ann2", language_code="en")
CHAT = -1005555


async def test_each_user_is_answered_in_their_telegram_language(tg: Telegram, fake: FakeTelegram) -> None:
    fake.add_chat(LI["id"])
    fake.add_chat(ANN["id"])
    await tg.says(LI["id"], LI, "/help", "列出所有命令")
    await tg.says(ANN["id"], ANN, "/help", "List the commands")
    await tg.says(LI["id"], LI, "/frobnicate", "未知命令 /frobnicate")  # the adapter's own answer, too
    answer = await tg.says(LI["id"], LI, "/replies -4", "用法")
    assert "/replies" in answer.params["text"]


async def test_notifications_follow_the_chat_and_a_groups_setting_wins(tg: Telegram, fake: FakeTelegram) -> None:
    fake.add_chat(LI["id"])
    fake.add_chat(CHAT, "supergroup", "交易")
    fake.set_member(CHAT, LI["id"], "administrator")
    fake.set_member(CHAT, ANN["id"], "member")
    agent = tg.world.create_agent("li_bot")
    await tg.says(LI["id"], LI, f"/link {agent.token}", "已绑定")
    await tg.says(CHAT, LI, "/subscribe", "已订阅")
    await tg.says(CHAT, ANN, "/help", "List the commands")  # Ann's English; the group now "speaks" English
    await tg.says(CHAT, LI, "/language zh", "简体中文")
    await tg.says(CHAT, ANN, "/help", "列出所有命令")  # the group's setting wins over Ann's client
    tg.world.push_message(agent.id, "new_follower", "someone follows you")
    await tg.poll(agent.id)
    await tg.delivered(CHAT, "新关注者")
