"""Telegram's command menus: one per scope (private chats, groups, group administrators, default)
and per language, set with the real python-telegram-bot against the strict fake, which refuses
what the Bot API refuses (platform_fakes/telegram_api.py, `_api_setMyCommands`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram import Bot, BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from telegram.error import BadRequest

from adapters.telegram import TelegramAdapter
from platform_fakes.telegram_api import FakeTelegram
from relay.specs import COMMANDS


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(fake.token, base_url=fake.api_base + "/bot") as bare:
        yield bare


def _names(menu: list[dict[str, str]] | None) -> list[str]:
    assert menu is not None, "menu not set"
    return [c["command"] for c in menu]


async def test_each_scope_gets_the_commands_its_users_may_run(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    private, group, admins = (fake.menu(s) for s in ("all_private_chats", "all_group_chats", "all_chat_administrators"))
    admin_only = {s.name for s in COMMANDS if s.admin_in_groups}
    assert admin_only >= {"subscribe", "notify", "language"}
    assert _names(private) == [s.name for s in COMMANDS], "a private chat offers everything"
    assert "link" not in _names(group) and "link" not in _names(admins), "/link works only in private"
    assert not admin_only & set(_names(group)), "members are not offered the administrators' commands"
    assert admin_only <= set(_names(admins)) and set(_names(group)) < set(_names(admins))
    assert "feed" in _names(group) and "help" in _names(group)
    assert _names(fake.menu("default")) == _names(admins)


async def test_chinese_users_get_the_same_menus_with_chinese_descriptions(
    fake: FakeTelegram, adapter: TelegramAdapter
) -> None:
    for scope in ("default", "all_private_chats", "all_group_chats", "all_chat_administrators"):
        english, chinese = fake.menu(scope), fake.menu(scope, "zh")
        assert _names(chinese) == _names(english), "command names stay English"
        assert english is not None and chinese is not None
        for en, zh in zip(english, chinese, strict=True):
            assert 1 <= len(zh["description"]) <= 256 and "\n" not in zh["description"]
            assert zh["description"] != en["description"], en
    help_zh = next(c for c in fake.menu("all_private_chats", "zh") or [] if c["command"] == "help")
    assert help_zh["description"] == "列出所有命令"


async def test_the_fake_refuses_what_the_bot_api_refuses(bot: Bot, fake: FakeTelegram) -> None:
    ok = [BotCommand("help", "List the commands")]
    assert await bot.set_my_commands(ok, scope=BotCommandScopeAllPrivateChats(), language_code="zh")
    assert await bot.set_my_commands(ok, scope=BotCommandScopeChat(42))
    assert fake.menu("all_private_chats", "zh") == [{"command": "help", "description": "List the commands"}]
    refused = [
        ([BotCommand("Help", "x")], {}, "BOT_COMMAND_INVALID"),  # uppercase
        ([BotCommand("a" * 33, "x")], {}, "BOT_COMMAND_INVALID"),
        ([BotCommand("help", "")], {}, "BOT_COMMAND_DESCRIPTION_INVALID"),
        ([BotCommand("help", "x" * 257)], {}, "BOT_COMMAND_DESCRIPTION_INVALID"),
        ([BotCommand(f"c{i}", "x") for i in range(101)], {}, "BOT_COMMANDS_TOO_MUCH"),
        (ok, {"language_code": "zh-hans"}, "language code"),
    ]
    for commands, extra, words in refused:
        with pytest.raises(BadRequest, match="(?i)" + words):
            await bot.set_my_commands(commands, **extra)  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match=r"(?i)botcommandscope"):  # a chat scope without its chat_id
        await bot.do_api_request("setMyCommands", {"commands": ok, "scope": {"type": "chat"}})
