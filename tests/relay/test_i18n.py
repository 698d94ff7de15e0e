"""Translations: every user-facing string has its Simplified Chinese entry, plural forms are right
in both languages, and a chat's language follows its users unless `/language` sets it.

The first tests read the code (tests/i18n_catalogue.py: an AST scan of the translation calls and
of the places where bare English would reach a chat) and the catalogue; a string added without a
Chinese entry, or English typed straight into a reply, fails here with the file and line.
"""

from __future__ import annotations

import tomllib

import pytest
from redis.asyncio import Redis

from relay import cards, render
from relay.app import Relay
from relay.chat_settings import ChatSettings
from relay.i18n import ENGLISH, LANGUAGES, Catalogues, language_of
from relay.keys import Keys
from relay.models import ChatRef, Command, SignalReply, UserRef
from tests.conftest import Chat
from tests.i18n_catalogue import PO, ROOT, extract, hard_coded, placeholders, read_catalogue

# Where English still reaches a chat on purpose or for a stated reason (file: why). Keep it short.
KNOWN_ENGLISH: dict[str, str] = {}
# Modules whose user-facing text is not yet behind translation calls (shrinks to nothing).
NOT_YET: frozenset[str] = frozenset()


def _translated(message: object) -> bool:
    string = getattr(message, "string", "")
    return all(string) if isinstance(string, tuple) else bool(string)


def test_every_string_in_the_code_has_a_chinese_entry() -> None:
    catalogue = read_catalogue()
    missing = sorted(
        {f"{f.where}: {f.msgid!r}" for f in extract() if (m := catalogue.get(f.msgid)) is None or not _translated(m)}
    )
    assert not missing, (
        "strings without a Chinese entry (python scripts/i18n.py update, then fill in relay/locale/zh_Hans/"
        "LC_MESSAGES/relay.po):\n" + "\n".join(missing)
    )


def test_plural_strings_are_plural_entries() -> None:
    catalogue = read_catalogue()
    wrong = [f.msgid for f in extract() if f.plural and not isinstance(catalogue.get(f.msgid).id, tuple)]  # type: ignore[union-attr]
    assert not wrong, f"ngettext strings stored as singular entries: {wrong}"


def test_translations_keep_every_placeholder_and_none_is_fuzzy() -> None:
    catalogue = read_catalogue()
    broken = []
    for m in catalogue:
        if not m.id:
            continue
        ids = tuple(m.id) if isinstance(m.id, tuple | list) else (m.id,)
        strings = tuple(m.string) if isinstance(m.string, tuple | list) else (m.string,)
        wanted = set().union(*(placeholders(i) for i in ids))
        broken += [f"{ids[0]!r} -> {s!r}" for s in strings if s and placeholders(s) != wanted]
        if m.fuzzy:
            broken.append(f"fuzzy: {ids[0]!r}")
    assert not broken, "\n".join(broken)


def test_no_english_is_hard_coded_where_a_chat_would_see_it() -> None:
    problems = [
        p for p in hard_coded() if p.split(":", 1)[0] not in KNOWN_ENGLISH and p.split(":", 1)[0] not in NOT_YET
    ]
    assert not problems, "bare English on its way to a chat (wrap it in t.gettext / N_):\n" + "\n".join(problems)


def test_the_scan_catches_what_it_should() -> None:
    """The scan itself: each way English slips past the catalogue is reported, translated text is not."""
    bad = """
Reply.text(f"Removed {x}.")
raise UsageError("page is wrong")
Message(title="Status", body=t.gettext("ok"), footer=t.gettext(f"{n} replies"))
MessageField(t.gettext("Cash"), "unknown")
Action("Refresh", "positions")
CommandSpec("help", "List the commands")
discord.ui.Modal(title="Link your agent")
class Gone(UsageError):
    def __init__(self) -> None:
        super().__init__("no such thing")
class Shown(UpstreamError):
    sentence = "AI-Trader fell over."
Reply.text(t.gettext("fine"))
Action(t.gettext("Refresh"), "positions")
CommandSpec("help", N_("List the commands"))
"""
    found = [p.split(": ", 1)[1] for p in hard_coded([("relay/example.py", bad)])]
    assert sorted(found) == sorted(
        [
            "f'Removed {x}.'",
            "'page is wrong'",
            "'Status'",
            "f-string in gettext(): use named placeholders",
            "'unknown'",
            "'Refresh'",
            "'List the commands'",
            "'Link your agent'",
            "'no such thing'",
            "sentence = 'AI-Trader fell over.'",
        ]
    ), found
    assert hard_coded([("relay/admin.py", bad)]) == [], "operator-only modules are not scanned"


def test_catalogues_are_package_data_and_babel_a_dependency() -> None:
    """`pip install .` from a clean checkout must carry the .po (the relay compiles it at start)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]["relay"]
    assert "locale/*/LC_MESSAGES/*.po" in data
    assert PO.is_file() and PO.relative_to(ROOT / "relay").match("locale/*/LC_MESSAGES/*.po")
    assert any(d.lower().startswith("babel") for d in project["project"]["dependencies"])


# --- the translator --------------------------------------------------------------------------------


def test_plural_forms_in_both_languages() -> None:
    catalogues = Catalogues.load()
    en, zh = catalogues.translator("en"), catalogues.translator("zh")
    assert en.ngettext("{n} reply", "{n} replies", 1) == "1 reply"
    assert en.ngettext("{n} reply", "{n} replies", 2) == "2 replies"
    assert en.ngettext("{n} reply", "{n} replies", 0) == "0 replies"
    assert zh.ngettext("{n} reply", "{n} replies", 1) == "1 条回复"
    assert zh.ngettext("{n} reply", "{n} replies", 7) == "7 条回复"
    one = SignalReply(
        reply_id=5, signal_id=9, agent_id=3, agent_name="bob", content="hi", created_at=None, accepted=False
    )
    assert render.replies(9, [one], en).footer == "1 reply"
    assert render.replies(9, [one, one], en).footer == "2 replies"
    assert render.replies(9, [one, one], zh).footer == "2 条回复"


def test_platform_locales_map_to_our_languages() -> None:
    assert language_of("zh-hans") == language_of("zh-CN") == language_of("zh-TW") == language_of("zh") == "zh"
    assert language_of("en-US") == language_of("en") == "en"
    assert language_of("pt-br") is None and language_of("") is None and language_of(None) is None


def test_unknown_language_is_english_and_a_bad_translation_falls_back() -> None:
    catalogues = Catalogues.load()
    assert catalogues.translator("fr") is catalogues.translator("en")
    assert ENGLISH.gettext("Removed subscription #{sub_id}.", sub_id=4) == "Removed subscription #4."
    assert set(catalogues.languages) == set(LANGUAGES)


def test_specs_descriptions_are_translated_in_help() -> None:
    zh = Catalogues.load().translator("zh")
    assert zh.gettext("List the commands") != "List the commands"
    assert cards.leaderboard([], 1, zh).title != cards.leaderboard([], 1, ENGLISH).title


# --- a chat's language ------------------------------------------------------------------------------


async def test_private_chat_answers_in_the_users_language(relay: Relay, adapter) -> None:  # type: ignore[no-untyped-def]
    chinese = Chat(relay, adapter.chat("301"), UserRef("rec", "301", "li"), locale="zh-hans")
    english = Chat(relay, adapter.chat("302"), UserRef("rec", "302", "ann"), locale="en")
    assert "命令" in await chinese.text("help")
    assert "List the commands" in await english.text("help")
    assert "/link" in await chinese.text("help"), "command names stay English"
    # A wrong argument: the usage line in Chinese, the command itself unchanged.
    answer = await chinese.text("replies", signal_id="-3")
    assert "/replies" in answer and "正数" in answer


async def test_language_command_overrides_and_auto_returns_to_the_users(relay: Relay, adapter) -> None:  # type: ignore[no-untyped-def]
    dm = Chat(relay, adapter.chat("303"), UserRef("rec", "303", "ann"), locale="en-US")
    assert "简体中文" in await dm.text("language", language="zh")
    assert "命令" in await dm.text("help"), "the chat's setting wins over the user's English client"
    assert "中文" in await dm.text("language")
    assert "own language" in await dm.text("language", language="auto")
    assert "List the commands" in await dm.text("help")
    bad = await dm.text("language", language="fr")
    assert bad.startswith("Usage: /language")


async def test_in_a_group_the_chat_setting_wins_and_only_admins_set_it(relay: Relay, adapter) -> None:  # type: ignore[no-untyped-def]
    group = adapter.chat("-77")
    admin = Chat(relay, group, UserRef("rec", "1", "admin", is_chat_admin=True), private=False, locale="zh-CN")
    member = Chat(relay, group, UserRef("rec", "2", "member"), private=False, locale="en-GB")
    assert "Only chat administrators" in await member.text("language", language="zh")
    assert "List the commands" in await member.text("help"), "no setting: each user's own language"
    await admin.text("language", language="zh")
    assert "命令" in await member.text("help"), "the group's setting wins over the member's English"


async def test_notifications_follow_the_last_command_language(redis: Redis, keys: Keys) -> None:
    settings = ChatSettings(redis, keys)
    chat = ChatRef("telegram", "-5")
    user = UserRef("telegram", "9")
    assert await settings.language(chat) == "en"
    await settings.language_for(Command("help", {}, chat, user, is_private=False, locale="zh-hans"))
    assert await settings.language(chat) == "zh"
    await settings.language_for(Command("help", {}, chat, user, is_private=False, locale="pt-br"))
    assert await settings.language(chat) == "zh", "an unsupported locale changes nothing"
    await settings.set_language(chat, "en")
    assert await settings.language(chat) == "en"
    await settings.drop(chat)
    assert await settings.language(chat) == "en" and await settings.chosen_language(chat) is None
    with pytest.raises(ValueError):
        await settings.set_language(chat, "fr")


async def test_notifications_are_rendered_in_each_chats_language(relay: Relay, world, adapter) -> None:  # type: ignore[no-untyped-def]
    """One notification routed to an English and a Chinese chat: one rendering per language."""
    import math

    agent = world.create_agent("ann")
    english = Chat(relay, adapter.chat("401"), UserRef("rec", "401", "ann"), locale="en")
    chinese = Chat(relay, adapter.chat("-402"), UserRef("rec", "401", "ann", is_chat_admin=True), private=False)
    await english.text("link", token=agent.token)
    await english.text("subscribe", what="all")
    await chinese.text("language", language="zh")
    await chinese.text("subscribe", what="all")
    world.push_messages(agent.id, 1, type="new_follower", content_fmt="bob follows you")
    await relay.poller.poll(agent.id)
    await relay.deliverer.drain_due(math.inf)
    titles = {s.chat.chat_id: s.message.title for s in adapter.sent if s.message.body == "bob follows you"}
    assert titles == {"401": "New follower", "-402": "新关注者"}
    mute = {s.chat.chat_id: s.message.actions[-1].label for s in adapter.sent if s.message.body == "bob follows you"}
    assert mute == {"401": "Mute this kind", "-402": "静音此类型"}, "buttons too"


async def test_the_backlog_notice_goes_out_in_the_chats_language(relay: Relay, adapter) -> None:  # type: ignore[no-untyped-def]
    """The enqueue script queues the notice in English (it knows no language); the deliverer
    sends it in the chat's."""
    import math

    from relay.outbox import BACKLOG_NOTICE, Outgoing

    chat = adapter.chat("-501")
    await relay.chat_settings.set_language(chat, "zh")
    await relay.outbox.enqueue([Outgoing(chat, f"backlog:{chat.key}:1", BACKLOG_NOTICE)], now=relay.deliverer._clock())
    await relay.deliverer.drain_due(math.inf)
    sent = [s.message.title for s in adapter.sent if s.chat == chat]
    assert sent == ["此聊天的通知过多"]
