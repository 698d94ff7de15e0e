"""Discord autocomplete and locales through the real discord.py against the fake gateway and REST.

The fake (platform_fakes/discord_api.py) delivers APPLICATION_COMMAND_AUTOCOMPLETE interactions
(type 4) only for options synced with `autocomplete`, accepts only an
APPLICATION_COMMAND_AUTOCOMPLETE_RESULT (type 8) answer to them, and checks Discord's limits on it
(25 choices, names of 1-100 characters). Suggestions come from Redis: nothing here runs an
AI-Trader that could answer them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from platform_fakes.discord_api import FakeDiscord, FakeInteraction, choice_problems
from relay.app import Relay
from relay.config import RelaySettings
from relay.errors import PermissionMissing
from relay.journal import reference
from relay.models import ChatRef, Command, Message, UserRef
from relay.store import Subscription
from relay.tokens import TokenBox
from tests.adapters.conftest import started_discord_relay

TOKEN = "MTAwAUTOC0000000000000000.GaUtOc.autoc-bot-token-never-real-00000000"
GUILD = 530000000000000001
CHANNEL = 530000000000000100
DM = 630000000000000001
USER = 444444444444444444
ADMINISTRATOR = 1 << 3


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(
        token=TOKEN, guilds={GUILD: [CHANNEL + i for i in range(5)]}, global_limit=None, channel_limit=None
    ) as server:
        server.guild_locales[GUILD] = "zh-CN"  # the server's own language (its "preferred locale")
        yield server


@pytest.fixture
async def live(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, fake: FakeDiscord
) -> AsyncIterator[Relay]:
    async with started_discord_relay(settings, redis, http, box, fake, seed=7, bot_token=TOKEN) as relay:
        yield relay


async def _choices(fake: FakeDiscord, record: FakeInteraction) -> list[dict[str, Any]]:
    await fake.wait_for(lambda: record.choices is not None, timeout=10)
    assert [c["type"] for c in record.callbacks] == [8]
    assert record.choices is not None
    return record.choices


async def test_unsubscribe_offers_this_channels_subscriptions(live: Relay, fake: FakeDiscord) -> None:
    chat = ChatRef("discord", str(CHANNEL))
    ids = [
        await live.store.add_subscription(Subscription(0, "feed", chat, keyword=word, created_by="discord:1"))
        for word in ("btc", "eth", "rate cut")
    ]
    elsewhere = await live.store.add_subscription(
        Subscription(0, "feed", ChatRef("discord", str(CHANNEL + 1)), keyword="doge", created_by="discord:1")
    )
    record = await fake.autocomplete(
        "unsubscribe", "id", "", channel_id=CHANNEL, guild_id=GUILD, user_id=USER, permissions=ADMINISTRATOR
    )
    choices = await _choices(fake, record)
    assert [c["value"] for c in choices] == ids, "integers, this channel's only"
    assert elsewhere not in [c["value"] for c in choices]
    assert any("rate cut" in c["name"] for c in choices)
    typed = await fake.autocomplete(
        "unsubscribe", "id", "eth", channel_id=CHANNEL, guild_id=GUILD, user_id=USER, permissions=ADMINISTRATOR
    )
    assert [c["value"] for c in await _choices(fake, typed)] == [ids[1]], "what was typed narrows the list"


async def test_subscribe_completes_kinds_word_by_word(live: Relay, fake: FakeDiscord) -> None:
    record = await fake.autocomplete("subscribe", "what", "replies men", channel_id=DM, user_id=USER)
    assert [c["value"] for c in await _choices(fake, record)] == ["replies mentions"]
    first = await fake.autocomplete("subscribe", "what", "", channel_id=DM, user_id=USER)
    offered = [c["value"] for c in await _choices(fake, first)]
    assert {"replies", "all", "feed", "trader"} <= set(offered) and len(offered) <= 25


async def test_digest_completes_kinds_then_offers_the_schedules(live: Relay, fake: FakeDiscord) -> None:
    first = await fake.autocomplete("digest", "what", "", channel_id=DM, user_id=USER)
    offered = [c["value"] for c in await _choices(fake, first)]
    assert {"replies", "watches", "all", "off"} <= set(offered) and "hourly" not in offered
    record = await fake.autocomplete("digest", "what", "replies ", channel_id=DM, user_id=USER)
    offered = [c["value"] for c in await _choices(fake, record)]
    assert {"replies hourly", "replies daily 08:00", "replies mentions"} <= set(offered)
    assert "replies replies" not in offered
    record = await fake.autocomplete("digest", "what", "replies d", channel_id=DM, user_id=USER)
    assert [c["value"] for c in await _choices(fake, record)] == ["replies discussions", "replies daily 08:00"]


async def test_replies_offers_the_signals_this_chat_was_shown(live: Relay, fake: FakeDiscord) -> None:
    chat = ChatRef("discord", str(DM))
    for n, signal in enumerate((501, 502, 501, 503)):
        await live.journal.record(chat, f"7:m{n}:{chat.key}", "delivered", signal=signal)
    await live.journal.record(ChatRef("discord", "999"), "7:m9:x", "delivered", signal=777)
    for command in ("replies", "reply"):
        record = await fake.autocomplete(command, "signal_id", "", channel_id=DM, user_id=USER)
        assert [c["value"] for c in await _choices(fake, record)] == [503, 501, 502], "newest first, once each"


async def test_unfollow_answers_from_the_cache_and_never_waits_for_ai_trader(live: Relay, fake: FakeDiscord) -> None:
    user = f"discord:{USER}"
    # Not linked, nothing cached: no upstream call can help, and the answer is an empty list.
    empty = await fake.autocomplete("unfollow", "agent_id", "", channel_id=DM, user_id=USER)
    assert await _choices(fake, empty) == []
    await live.suggestions.remember_following(user, [(42, "alice"), (43, "bob")])
    record = await fake.autocomplete("unfollow", "agent_id", "ali", channel_id=DM, user_id=USER)
    assert await _choices(fake, record) == [{"name": "alice (#42)", "value": 42}]


async def test_labels_follow_the_users_discord_language(live: Relay, fake: FakeDiscord) -> None:
    chat = ChatRef("discord", str(DM + 1))
    await live.journal.record(chat, f"7:m1:{chat.key}", "delivered", signal=601)
    record = await fake.autocomplete("replies", "signal_id", "", channel_id=DM + 1, user_id=USER, locale="zh-CN")
    assert [c["name"] for c in await _choices(fake, record)] == ["信号 601"]
    answered = await fake.interaction("help", channel_id=DM + 1, user_id=USER, locale="zh-CN")
    await fake.wait_for(lambda: answered.answered and all(m.text != "…" for m in answered.messages()), timeout=10)
    assert "命令" in "\n".join(m.text for m in answered.messages())


async def test_the_fake_takes_only_a_valid_type_8_for_an_autocomplete(live: Relay, fake: FakeDiscord) -> None:
    # Interactions the bot never saw, so the callbacks below are the first answers to them.
    fake.interactions[901] = FakeInteraction(901, "tok901", 2, DM, {})
    fake.interactions[902] = FakeInteraction(902, "tok902", 4, DM, {})
    async with httpx.AsyncClient(base_url=fake.api_base) as rest:
        wrong = await rest.post("/interactions/901/tok901/callback", json={"type": 8, "data": {"choices": []}})
        assert wrong.status_code == 400 and wrong.json()["code"] == 40043, "choices answer only an autocomplete"
        wrong = await rest.post("/interactions/902/tok902/callback", json={"type": 4, "data": {"content": "hi"}})
        assert wrong.status_code == 400 and wrong.json()["code"] == 40043, "an autocomplete takes only choices"
        too_many = [{"name": f"c{i}", "value": str(i)} for i in range(26)]
        refused = await rest.post("/interactions/902/tok902/callback", json={"type": 8, "data": {"choices": too_many}})
        assert refused.status_code == 400 and refused.json()["code"] == 50035
        ok = await rest.post("/interactions/902/tok902/callback", json={"type": 8, "data": {"choices": []}})
        assert ok.status_code == 200 and fake.interactions[902].choices == []
    assert choice_problems({"choices": [{"name": "", "value": "1"}]})
    assert choice_problems({"choices": [{"name": "x", "value": "v" * 101}]})
    assert not choice_problems({"choices": [{"name": "ok", "value": 1}]})


async def test_suggestions_are_empty_for_options_without_any(live: Relay) -> None:
    command = Command("feed", {}, ChatRef("discord", "1"), UserRef("discord", "1"), is_private=True)
    assert await live.router.suggest(command, "keyword", "bt") == ()


async def test_synced_commands_carry_chinese_descriptions_and_autocomplete_flags(
    live: Relay, fake: FakeDiscord
) -> None:
    synced = {c["name"]: c for c in fake.commands[None]}
    assert synced["help"]["description"] == "List the commands"
    localized = synced["help"].get("description_localizations") or {}
    assert localized.get("zh-CN") == "列出所有命令" and localized.get("zh-TW") == "列出所有命令"
    assert "fr" not in localized, "no catalogue, no localisation: Discord shows the English"
    assert not synced["help"].get("name_localizations"), "command names stay English"
    option = next(o for o in synced["unsubscribe"]["options"] if o["name"] == "id")
    assert option["autocomplete"] is True and (option.get("description_localizations") or {}).get("zh-CN")
    kind = next(o for o in synced["notify"]["options"] if o["name"] == "kind")
    assert kind["choices"] and not kind.get("autocomplete"), "kinds are fixed choices"


async def test_the_link_form_is_in_the_users_language(live: Relay, fake: FakeDiscord) -> None:
    opened = await fake.interaction("link", channel_id=DM + 2, user_id=USER, locale="zh-CN")
    await fake.wait_for(lambda: opened.modal is not None, timeout=10)
    assert opened.modal is not None and opened.modal["title"] == "绑定你的 AI-Trader 智能体"
    english = await fake.interaction("link", channel_id=DM + 3, user_id=USER + 1, locale="en-GB")
    await fake.wait_for(lambda: english.modal is not None, timeout=10)
    assert english.modal is not None and english.modal["title"] == "Link your AI-Trader agent"


async def test_why_offers_this_chats_newest_references(live: Relay, fake: FakeDiscord) -> None:
    chat = ChatRef("discord", str(DM))
    keys = [f"7:m{n}:{chat.key}" for n in range(3)]
    for n, key in enumerate(keys):
        await live.journal.record(chat, key, "queued", signal=900 + n, params={"sub": 1})
    await live.journal.record(chat, keys[0], "delivered")  # a later step of the first: it moves up
    await live.journal.record(ChatRef("discord", "999"), "7:m9:x", "delivered", signal=777)
    record = await fake.autocomplete("why", "ref", "", channel_id=DM, user_id=USER)
    choices = await _choices(fake, record)
    assert [c["value"] for c in choices] == [reference(keys[0]), reference(keys[2]), reference(keys[1])]
    assert choices[1]["name"] == f"{reference(keys[2])} · signal 902"
    typed = await fake.autocomplete("why", "ref", reference(keys[1])[:3], channel_id=DM, user_id=USER)
    assert reference(keys[1]) in [c["value"] for c in await _choices(fake, typed)]


async def test_a_missing_permission_is_told_in_the_servers_language(live: Relay, fake: FakeDiscord) -> None:
    """No command carries a language when a send is refused: the server's preferred locale does."""
    fake.deny(CHANNEL + 2, "embed_links")
    adapter = live.adapters["discord"]
    with pytest.raises(PermissionMissing):
        await adapter.send(ChatRef("discord", str(CHANNEL + 2)), Message(title="t", body="needs an embed"), key="k1")
    notices = fake.channel_messages(CHANNEL + 2)
    assert len(notices) == 1 and "我在此频道缺少一项权限" in notices[0].text
