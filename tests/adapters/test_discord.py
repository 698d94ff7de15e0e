"""The Discord adapter end to end: the real discord.py inside DiscordAdapter against the fake
Discord on loopback, a real Redis, and a stub core (`core`, from tests/adapters/conftest.py)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.discord import DiscordAdapter, DiscordSettings, GatewayTiming
from adapters.discord.guards import GlobalPacer, paced_rate
from platform_fakes.discord_api import (
    EPHEMERAL,
    SUPPRESS_NOTIFICATIONS,
    FakeDiscord,
    FakeInteraction,
)
from relay.embedded_redis import connect
from relay.errors import ChatGone, ConfigError, RetryLater, SendUncertain, Undeliverable
from relay.keys import DISCORD_BUTTONS, DISCORD_COMMANDS, DISCORD_GATEWAY, DISCORD_IDENTIFY, Keys
from relay.logs import Redactor, configure
from relay.models import Action, ChatRef, Command, Message, MessageField, Reply
from relay.redis_values import text_or_empty
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from tests.adapters.conftest import FAST_GATEWAY as FAST
from tests.adapters.conftest import Recorder

# Shaped like a real bot token (base64 id . timestamp . hmac), obviously fake.
TOKEN = "MTAwCANARY0000000000000000.GcAnRy.canary-bot-token-never-in-logs-000000"
GUILD, CHANNEL, OTHER = 500000000000000001, 500000000000000011, 500000000000000012
DM_CHANNEL = 600000000000000001
MANAGE_CHANNELS, ADMINISTRATOR = 1 << 4, 1 << 3
Make = Callable[..., Awaitable[DiscordAdapter]]


def new_fake(**limits: Any) -> FakeDiscord:
    limits = {"global_limit": None, "channel_limit": None, **limits}
    return FakeDiscord(token=TOKEN, guilds={GUILD: [CHANNEL, OTHER]}, **limits)


@pytest.fixture
async def dfake() -> AsyncIterator[FakeDiscord]:
    async with new_fake() as fake:
        yield fake


@pytest.fixture
async def make(dfake: FakeDiscord, redis: Redis, keys: Keys, core: Recorder) -> AsyncIterator[Make]:
    made: list[DiscordAdapter] = []

    async def build(
        *,
        fake: FakeDiscord | None = None,
        redactor: Redactor | None = None,
        start: bool = True,
        timing: GatewayTiming = FAST,
        token: str = TOKEN,
        **overrides: Any,
    ) -> DiscordAdapter:
        fake = fake or dfake
        values = {
            "bot_token": token,
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "max_requests_per_second": 50,
            "send_timeout": 5.0,
            **overrides,
        }
        adapter = DiscordAdapter(
            DiscordSettings(**values),
            RedisAdapterServices(redis, keys, "discord"),
            redactor or Redactor(),
            timing=timing,
        )
        made.append(adapter)
        if start:
            await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
        return adapter

    yield build
    for adapter in reversed(made):
        await adapter.stop()


@pytest.fixture
async def adapter(make: Make, dfake: FakeDiscord) -> DiscordAdapter:
    built = await make()
    await dfake.wait_for(lambda: dfake.active_session is not None and dfake.commands)
    return built


async def answered(fake: FakeDiscord, interaction: FakeInteraction) -> FakeInteraction:
    # "…" is the placeholder that settles a deferral whose visibility turned out wrong.
    await fake.wait_for(lambda: interaction.answered and all(m.text != "…" for m in interaction.messages()))
    return interaction


def sample_options(definition: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in definition.get("options", []):
        if option.get("choices"):
            values[option["name"]] = option["choices"][-1]["value"]
        else:
            kind = option["type"]  # 4 INTEGER, 10 NUMBER (a float), else STRING
            values[option["name"]] = 42 if kind == 4 else 2.5 if kind == 10 else f"{option['name']} value"
    return values


# --- commands ---------------------------------------------------------------------------------


async def test_every_command_reaches_the_core_with_its_options_by_name(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    definitions = {c["name"]: c for c in dfake.commands[None]}
    assert set(definitions) == {c.name for c in COMMANDS}
    for name, definition in definitions.items():
        if name == "link":
            continue
        options = sample_options(definition)
        before = len(core.commands)
        interaction = await answered(
            dfake,
            await dfake.interaction(name, options, channel_id=CHANNEL, guild_id=GUILD, permissions=MANAGE_CHANNELS),
        )
        command = core.commands[before]
        assert command.name == name
        assert dict(command.args) == {k: str(v) for k, v in options.items()}
        assert command.chat == ChatRef("discord", str(CHANNEL))
        assert command.user.user_id == "111111111111111111" and command.user.is_chat_admin
        assert command.is_private is False
        assert interaction.callbacks[0]["type"] == 5, "deferred before dispatch"
        assert [m.text for m in interaction.messages()] == [f"ok {name}"]
    assert all(
        c.body is None or c.body.get("allowed_mentions") == {"parse": []}
        for c in dfake.calls
        if c.method in ("POST", "PATCH") and "/webhooks/" in c.path
    )


async def test_commands_sync_once_and_only_when_changed(
    make: Make, dfake: FakeDiscord, redis: Redis, keys: Keys
) -> None:
    first = await make()
    await dfake.wait_for(lambda: dfake.sync_calls)
    await first.stop()
    second = await make()
    await dfake.wait_for(lambda: dfake.active_session is not None)
    assert dfake.sync_calls == [None], "same command set: no second upload"
    await second.stop()
    await redis.delete(keys.adapter_key(DISCORD_COMMANDS, "global"))  # as if the set had changed
    await make()
    await dfake.wait_for(lambda: len(dfake.sync_calls) == 2)


async def test_guild_ids_sync_to_those_guilds(make: Make, dfake: FakeDiscord) -> None:
    await make(guild_ids=(GUILD,))
    await dfake.wait_for(lambda: dfake.sync_calls)
    assert dfake.sync_calls == [GUILD] and GUILD in dfake.commands


async def test_dm_commands_are_private_and_their_user_is_admin(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    await answered(dfake, await dfake.interaction("subscriptions", channel_id=DM_CHANNEL))
    command = core.commands[-1]
    assert command.is_private and command.user.is_chat_admin
    assert command.chat == ChatRef("discord", str(DM_CHANNEL))


@pytest.mark.parametrize(("permissions", "admin"), [(0, False), (MANAGE_CHANNELS, True), (ADMINISTRATOR, True)])
async def test_chat_admin_comes_from_the_channel_permissions_not_the_command_default(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder, permissions: int, admin: bool
) -> None:
    subscribe = next(c for c in dfake.commands[None] if c["name"] == "subscribe")
    assert str(subscribe["default_member_permissions"]) == str(MANAGE_CHANNELS)
    # A guild admin may have opened the command to everyone: it still arrives, and the flag says who.
    await answered(
        dfake,
        await dfake.interaction(
            "subscribe", {"what": "all"}, channel_id=CHANNEL, guild_id=GUILD, permissions=permissions
        ),
    )
    assert core.commands[-1].user.is_chat_admin is admin


async def test_personal_replies_are_ephemeral_and_public_ones_are_not(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    core.replies["status"] = Reply.text("status for you only", private=True)
    core.replies["feed"] = Reply.text("you may not do that here", private=True)
    core.replies["following"] = Reply.text("everyone sees this")
    for name, options in (("status", {}), ("feed", {"keyword": "btc"}), ("following", {})):
        await answered(dfake, await dfake.interaction(name, options, channel_id=CHANNEL, guild_id=GUILD))
    await dfake.wait_for(lambda: not any(m.text == "…" for m in dfake.public_messages()))
    public = [m.text for m in dfake.public_messages()]
    assert public == ["everyone sees this"]
    private = [m.text for m in dfake.messages.values() if m.ephemeral and not m.deleted]
    assert sorted(private) == ["status for you only", "you may not do that here"]


async def test_link_asks_for_the_token_in_a_modal_and_answers_privately(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    agent_token = "agent-token-3x4mpl3-Zz9"
    core.replies["link"] = Reply.text("Linked agent 7", private=False)
    opened = await answered(dfake, await dfake.interaction("link", channel_id=CHANNEL, guild_id=GUILD))
    assert opened.callbacks[0]["type"] == 9 and not core.commands
    submitted = await answered(
        dfake, await dfake.submit_modal(opened, {"token": agent_token, "mode": "observe"}, guild_id=GUILD)
    )
    command = core.commands[-1]
    assert command.name == "link" and dict(command.args) == {"token": agent_token, "mode": "observe"}
    assert command.is_private, "only the bot saw the token"
    assert [m.ephemeral for m in submitted.messages()] == [True]
    assert all(agent_token not in m.text for m in dfake.messages.values())
    assert all(agent_token not in json.dumps(c.body) for c in dfake.calls)


# --- sending ----------------------------------------------------------------------------------


async def test_send_posts_an_embed_with_nonce_and_no_mentions(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    await adapter.send(
        ChatRef("discord", str(CHANNEL)),
        Message(title="Hi @everyone", body="<@&123456789012345678>"),
        key="d1",
        silent=True,
    )
    [message] = dfake.channel_messages(CHANNEL)
    body = message.payload
    assert body["allowed_mentions"] == {"parse": []}
    assert body["enforce_nonce"] is True and 1 <= len(body["nonce"]) <= 25
    assert body["flags"] & SUPPRESS_NOTIFICATIONS
    assert "@everyone" not in message.text and "<@&" not in message.text
    assert not body.get("content"), "text lives in embeds, so no link previews are fetched"


async def test_a_long_message_becomes_several_valid_messages(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    await adapter.send(
        ChatRef("discord", str(CHANNEL)),
        Message(title="Long", body="word " * 6000, fields=tuple(MessageField(f"f{i}", "v" * 900) for i in range(30))),
        key="long",
    )
    messages = dfake.channel_messages(CHANNEL)
    assert len(messages) >= 8
    assert len({m.payload["nonce"] for m in messages}) == len(messages)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from("*_~`|>#-[]()<@&!\n")), max_size=3000),
    extra=st.sampled_from(["@everyone", "@here", "<@&123456789012345678>", "<@123>", "https://x.io/a_b", ""]),
)
async def test_any_text_is_accepted_by_discord_and_can_never_ping(
    adapter: DiscordAdapter, dfake: FakeDiscord, text: str, extra: str
) -> None:
    before = len(dfake.calls)
    await adapter.send(
        ChatRef("discord", str(OTHER)),
        Message(
            title=extra + text[:300],
            body=text + extra,
            fields=(MessageField(extra or "f", text[:2000]),),
            footer=text[:100],
        ),
        key=f"p{len(dfake.calls)}",
    )
    posts = [c for c in dfake.calls[before:] if c.method == "POST"]
    assert posts and all(c.status == 200 for c in posts), "the fake validates every Discord limit"
    assert all(c.body["allowed_mentions"] == {"parse": []} for c in posts)


async def test_a_lost_response_is_uncertain_and_the_resend_is_deduplicated(
    adapter: DiscordAdapter, dfake: FakeDiscord
) -> None:
    chat = ChatRef("discord", str(CHANNEL))
    dfake.drop_next_response(CHANNEL)
    with pytest.raises(SendUncertain):
        await adapter.send(chat, Message(body="once only"), key="dup-1")
    assert len(dfake.channel_messages(CHANNEL)) == 1, "the message was created before the response was lost"
    await adapter.send(chat, Message(body="once only"), key="dup-1")
    assert len(dfake.channel_messages(CHANNEL)) == 1
    assert len(dfake.calls_to("POST", f"/channels/{CHANNEL}/messages")) == 2
    await adapter.send(chat, Message(body="once only"), key="dup-2")
    assert len(dfake.channel_messages(CHANNEL)) == 2, "a new delivery key is a new message"


@pytest.mark.parametrize("status", [403, 404])
async def test_refused_channels_are_gone_and_get_no_more_requests(
    adapter: DiscordAdapter, dfake: FakeDiscord, status: int
) -> None:
    dfake.refuse(CHANNEL, status)
    chat = ChatRef("discord", str(CHANNEL))
    with pytest.raises(ChatGone):
        await adapter.send(chat, Message(body="x"), key="g1")
    with pytest.raises(ChatGone):
        await adapter.send(chat, Message(body="x"), key="g2")
    assert len(dfake.calls_to("POST", f"/channels/{CHANNEL}/messages")) == 1
    if status == 403:
        assert adapter.guard.invalid[403] == 1, "403s count against the invalid-request budget"
    await answered(dfake, await dfake.interaction("status", channel_id=CHANNEL, guild_id=GUILD))
    dfake.accept(CHANNEL)
    await adapter.send(chat, Message(body="back"), key="g3")  # an interaction there showed it is reachable again
    assert [m.text for m in dfake.channel_messages(CHANNEL)] == ["back"]


async def test_server_errors_are_uncertain_and_bad_requests_undeliverable(
    adapter: DiscordAdapter, dfake: FakeDiscord
) -> None:
    chat = ChatRef("discord", str(CHANNEL))
    dfake.fail_next(CHANNEL, 503)
    with pytest.raises(SendUncertain):
        await adapter.send(chat, Message(body="x"), key="e1")
    dfake.fail_next(CHANNEL, 400)
    with pytest.raises(Undeliverable):
        await adapter.send(chat, Message(body="x"), key="e2")
    with pytest.raises(Undeliverable):
        await adapter.send(ChatRef("discord", "not-a-number"), Message(body="x"), key="e3")


async def test_the_bucket_headers_are_honoured_without_a_single_429(make: Make, redis: Redis) -> None:
    async with new_fake(channel_limit=(5, 1.0), global_limit=50) as fake:
        adapter = await make(fake=fake)
        for i in range(12):
            await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body=f"m{i}"), key=f"b{i}")
        assert [m.text for m in fake.channel_messages(CHANNEL)] == [f"m{i}" for i in range(12)]
        assert fake.rate_limited == []


async def test_a_per_route_429_is_waited_out_and_the_message_sent_once(make: Make) -> None:
    async with new_fake(channel_limit=(5, 0.8)) as fake:
        adapter = await make(fake=fake)
        fake.exhaust_bucket(CHANNEL)  # another process used the bucket
        started = time.monotonic()
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body="after the wait"), key="r1")
        [limited] = fake.rate_limited
        assert limited.at - started < 0.5 and time.monotonic() - started >= 0.7
        assert [m.text for m in fake.channel_messages(CHANNEL)] == ["after the wait"]
        assert adapter.guard.invalid[429] == 1


async def test_a_global_429_holds_every_request_until_it_ends(make: Make) -> None:
    async with new_fake(global_limit=50) as fake:
        adapter = await make(fake=fake)
        await fake.wait_for(lambda: fake.active_session is not None)
        fake.block_globally(0.8)
        blocked_until = time.monotonic() + 0.8
        chats = [CHANNEL, OTHER, CHANNEL + 100, CHANNEL + 101, CHANNEL + 102]
        await asyncio.gather(
            *(adapter.send(ChatRef("discord", str(c)), Message(body=str(c)), key=f"G{c}") for c in chats)
        )
        created = fake.channel_messages()
        assert sorted(m.channel_id for m in created) == sorted(chats)
        assert all(m.created_at >= time.time() - (time.monotonic() - blocked_until) - 0.05 for m in created)
        limited = [c for c in fake.rate_limited if c.path.endswith("/messages")]
        assert 1 <= len(limited) <= len(chats), "each request hit the global limit at most once"
        assert len(fake.calls_to("POST", "/messages")) == len(chats) + len(limited)


# --- pacing -----------------------------------------------------------------------------------


async def test_two_processes_together_stay_under_the_bot_wide_ceiling(
    redis_url: str, keys: Keys, core: Recorder
) -> None:
    # Low enough that even a loaded machine could send faster: then two unshared pacers (twice
    # the rate) would show, whatever the load.
    ceiling = 5
    clients = [connect(redis_url) for _ in range(2)]  # two processes: own connections, one Redis
    channels = [CHANNEL + 1000 + i for i in range(10)]
    async with new_fake() as fake:  # no 429s: the ceiling is measured, not enforced, here
        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "max_requests_per_second": ceiling,
            "send_timeout": 20.0,
        }
        adapters = [
            DiscordAdapter(DiscordSettings(**values), RedisAdapterServices(c, keys, "discord"), Redactor(), timing=FAST)
            for c in clients
        ]
        start = time.monotonic()  # the fake's clock (it runs in this process), before any paced login
        try:
            for adapter in adapters:
                await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
            await asyncio.gather(
                *(
                    adapter.send(ChatRef("discord", str(c)), Message(body=f"{n} to {c}"), key=f"{n}:{c}")
                    for n, adapter in enumerate(adapters)
                    for c in channels
                )
            )
        finally:
            for adapter in adapters:
                await adapter.stop()
            for client in clients:
                await client.aclose()
    assert len(fake.channel_messages()) == 2 * len(channels)
    # The shared budget (a burst of two) grants the k-th slot no earlier than (k - 1)/rate after
    # the first, which came after `start`, and no request reaches the fake before its slot, however
    # late a loaded machine makes it: so the k-th counted arrival is at least (k - 1)/rate after
    # `start` (0.05 s for clock precision). Two unshared pacers would let the k-th arrive after
    # about k/(2 x rate). Requests per second at the fake are not asserted: requests held up by
    # load arrive bunched.
    rate = paced_rate(ceiling)
    arrivals = sorted(c.arrived for c in fake.calls if c.counts_globally)
    early = [(k, round(t - start, 3)) for k, t in enumerate(arrivals) if t - start < (k - 1) / rate - 0.05]
    assert early == [], f"arrivals earlier than the shared budget allows (index, seconds after start): {early}"
    counted = [c for c in fake.calls if c.counts_globally]
    assert sum(a.pacer.paced for a in adapters) == len(counted), "every counted request took a slot, logins included"


async def test_a_global_429_holds_the_shared_budget_so_another_process_does_not_earn_one_too(
    redis_url: str, keys: Keys, core: Recorder
) -> None:
    # discord.py waits out a global 429 in its own process only; without the shared hold the
    # other process would send into the block and get a 429 of its own.
    clients = [connect(redis_url) for _ in range(2)]
    async with new_fake() as fake:
        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "api_base": fake.api_base,
            "gateway_url": fake.gateway_url,
            "send_timeout": 30.0,
        }
        adapters = [
            DiscordAdapter(DiscordSettings(**values), RedisAdapterServices(c, keys, "discord"), Redactor(), timing=FAST)
            for c in clients
        ]
        try:
            for adapter in adapters:
                await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
            fake.block_globally(1.5)
            first = asyncio.create_task(
                adapters[0].send(ChatRef("discord", str(CHANNEL + 1)), Message(body="a"), key="a")
            )
            deadline = time.monotonic() + 30
            while not adapters[0].pacer.global_429s and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert adapters[0].pacer.global_429s == 1
            await adapters[1].send(ChatRef("discord", str(CHANNEL + 2)), Message(body="b"), key="b")
            await first
        finally:
            for adapter in adapters:
                await adapter.stop()
            for client in clients:
                await client.aclose()
    assert len(fake.channel_messages()) == 2
    assert len(fake.rate_limited) == 1, [c.path for c in fake.rate_limited]


async def test_interaction_answers_do_not_wait_for_the_delivery_budget(
    adapter: DiscordAdapter, dfake: FakeDiscord
) -> None:
    before = adapter.pacer.paced
    interaction = await answered(dfake, await dfake.interaction("help", channel_id=CHANNEL, guild_id=GUILD))
    assert interaction.messages()
    assert adapter.pacer.paced == before
    assert dfake.calls_to("POST", "/interactions/") and dfake.calls_to("PATCH", "/webhooks/")
    assert adapter.pacer.is_paced(yarl.URL(f"{dfake.api_base}/channels/1/messages"))
    assert not adapter.pacer.is_paced(yarl.URL(dfake.gateway_url))
    assert not adapter.pacer.is_paced(yarl.URL(f"{dfake.api_base}/webhooks/1/tok/messages/@original"))


async def test_pacing_falls_back_to_this_process_when_redis_is_down(keys: Keys) -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    pacer = GlobalPacer(
        RedisAdapterServices(dead, keys, "discord"), 10.0, "http://127.0.0.1:1/api/v10", retry_shared_s=0.25
    )
    start = time.monotonic()
    for _ in range(6):
        await pacer.wait()
    elapsed = time.monotonic() - start
    assert pacer.paced == 6, "requests still go out"
    # Six slots of the local pacer span at least five intervals; a busy machine only adds to it.
    assert elapsed >= 5 / paced_rate(10.0) - 0.01, "still spaced"
    # Asked again once 0.25 s have passed since the last failure, not for every request: at most
    # once per 0.25 s of however long the run took (a loaded machine stretches it), and at least
    # twice, since six slots take longer than 0.25 s.
    assert 2 <= pacer.shared_failures <= 1 + elapsed / 0.25, (pacer.shared_failures, elapsed)
    await dead.aclose()


# --- buttons ----------------------------------------------------------------------------------


async def test_buttons_run_commands_prompt_for_text_and_page_in_place(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder, redis: Redis, keys: Keys
) -> None:
    long_args = {"signal_id": "9", "keyword": "k" * 150}
    actions = (
        Action("Show replies", "replies", {"signal_id": "9"}),
        Action("Mute this kind", "notify", {"kind": "replies", "mode": "off"}),
        Action("Reply", "reply", {"signal_id": "9"}, kind="prompt", text_param="text"),
        Action("Next", "feed", long_args, replace=True),
    )
    await adapter.send(
        ChatRef("discord", str(CHANNEL)), Message(title="Signal 9", body="body", actions=actions), key="btn"
    )
    [message] = dfake.channel_messages(CHANNEL)
    ids = message.custom_ids()
    assert len(ids) == 4 and all(len(i) <= 100 for i in ids)
    stored = [k async for k in redis.scan_iter(match=keys.adapter_key(DISCORD_BUTTONS, "*"))]
    assert len(stored) == 1 and 6 * 86400 < await redis.ttl(stored[0]) <= 7 * 86400

    await answered(dfake, await dfake.press(message.id, ids[0], guild_id=GUILD, user_id=222))
    assert (core.commands[-1].name, dict(core.commands[-1].args), core.commands[-1].user.user_id) == (
        "replies",
        {"signal_id": "9"},
        "222",
    )
    await answered(dfake, await dfake.press(message.id, ids[1], guild_id=GUILD, permissions=MANAGE_CHANNELS))
    assert dict(core.commands[-1].args) == {"kind": "replies", "mode": "off"} and core.commands[-1].user.is_chat_admin

    opened = await answered(dfake, await dfake.press(message.id, ids[2], guild_id=GUILD))
    assert opened.callbacks[0]["type"] == 9 and opened.modal is not None and opened.modal["title"] == "Reply"
    await answered(dfake, await dfake.submit_modal(opened, {"text": "great call"}, guild_id=GUILD))
    assert (core.commands[-1].name, dict(core.commands[-1].args)) == ("reply", {"signal_id": "9", "text": "great call"})

    core.replies["feed"] = Reply((Message(title="Page 2", body="more"),))
    public_before = len(dfake.public_messages())
    paged = await answered(dfake, await dfake.press(message.id, ids[3], guild_id=GUILD))
    assert paged.callbacks[0]["type"] == 6
    assert dict(core.commands[-1].args) == long_args
    await dfake.wait_for(lambda: "Page 2" in dfake.messages[message.id].text)
    assert dfake.messages[message.id].payload["components"] == [], "the new page has no buttons"
    assert len(dfake.public_messages()) == public_before, "paging edits, it does not post"


async def test_an_expired_button_says_so_privately(
    adapter: DiscordAdapter, dfake: FakeDiscord, redis: Redis, keys: Keys, core: Recorder
) -> None:
    await adapter.send(
        ChatRef("discord", str(CHANNEL)),
        Message(body="x", actions=(Action("Next", "feed", {"keyword": "k" * 200}),)),
        key="exp",
    )
    [message] = dfake.channel_messages(CHANNEL)
    async for key in redis.scan_iter(match=keys.adapter_key(DISCORD_BUTTONS, "*")):
        await redis.delete(key)
    pressed = await answered(dfake, await dfake.press(message.id, message.custom_ids()[0], guild_id=GUILD))
    assert pressed.callbacks[0]["type"] == 4 and pressed.callbacks[0]["data"]["flags"] & EPHEMERAL
    assert not core.commands


# Issue 13: Discord sends a component's custom_id back as the client gives it; the fake checks that it
# is on the message, so this test reaches past that check (`_interact`) to play a modified client.
SIGNED_PAGE = Message(
    title="Feed", body="1. BTC", actions=(Action("Next", "feed", {"keyword": "btc", "page": "2"}, replace=True),)
)
SIGNED_NOTE = Message(
    title="New reply", body="bob replied", actions=(Action("Show replies", "replies", {"signal_id": "5"}),)
)


async def test_forged_or_copied_custom_ids_are_refused(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    await adapter.send(ChatRef("discord", str(CHANNEL)), SIGNED_PAGE, key="page")
    await adapter.send(ChatRef("discord", str(OTHER)), SIGNED_NOTE, key="note")
    [page] = dfake.channel_messages(CHANNEL)
    [note] = dfake.channel_messages(OTHER)
    unsigned = "rb0:j" + json.dumps(["feed", {"keyword": "btc"}, "command", "", 1], separators=(",", ":"))
    for custom_id in (
        unsigned,
        unsigned + ".AAAAAAAAAAA",
        page.custom_ids()[0],
    ):  # forged, bad signature, other channel
        data = {"custom_id": custom_id, "component_type": 2}
        pressed = await answered(dfake, await dfake._interact(3, data, OTHER, 222, GUILD, 0, message=note))
        assert pressed.callbacks[0]["type"] == 4 and pressed.callbacks[0]["data"]["flags"] & EPHEMERAL
        assert "expired" in pressed.callbacks[0]["data"]["content"]
    assert core.commands == []
    # The real button still works where it was sent.
    await answered(dfake, await dfake.press(page.id, page.custom_ids()[0], guild_id=GUILD, user_id=222))
    assert core.commands[-1].name == "feed"


# --- gateway ----------------------------------------------------------------------------------


async def test_only_one_process_holds_the_gateway_and_the_other_takes_over(make: Make, dfake: FakeDiscord) -> None:
    first, second = await make(), await make()
    await dfake.wait_for(lambda: dfake.identifies)
    await asyncio.sleep(0.6)  # several lease polls by the second adapter
    assert len(dfake.identifies) == 1 and [first.holds_gateway, second.holds_gateway].count(True) == 1
    await second.send(ChatRef("discord", str(CHANNEL)), Message(body="rest"), key="s")
    await first.send(ChatRef("discord", str(CHANNEL)), Message(body="rest"), key="f")
    assert len(dfake.channel_messages(CHANNEL)) == 2, "both deliver over REST"
    holder, other = (first, second) if first.holds_gateway else (second, first)
    await holder.stop()
    await dfake.wait_for(lambda: len(dfake.identifies) == 2, timeout=8)
    assert other.holds_gateway
    assert sum(1 for s in dfake.sessions if not s.ws.closed and s.identified) == 1


async def test_identify_backoff_is_persisted_for_the_next_process(
    make: Make, dfake: FakeDiscord, redis: Redis, keys: Keys
) -> None:
    last = time.time()
    await redis.set(keys.adapter_key(DISCORD_IDENTIFY), json.dumps({"last": last, "streak": 2}))
    await make()
    await dfake.wait_for(lambda: dfake.identifies, timeout=8)
    assert dfake.identifies[0] - last >= 1.0, "streak 2 waits base * 2"
    assert json.loads(text_or_empty(await redis.get(keys.adapter_key(DISCORD_IDENTIFY))))["streak"] == 3
    assert 0 < await redis.ttl(keys.adapter_key(DISCORD_IDENTIFY)) <= 24 * 3600, "the record expires"


async def test_removal_from_a_server_and_deleted_channels_are_reported(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    await answered(dfake, await dfake.interaction("status", channel_id=CHANNEL + 5, guild_id=GUILD))
    await dfake.dispatch("GUILD_DELETE", {"id": str(GUILD), "unavailable": True})  # an outage: nothing gone
    await dfake.dispatch("CHANNEL_DELETE", {"id": str(OTHER), "guild_id": str(GUILD), "type": 0})
    await core.wait(lambda: core.changes)
    await dfake.dispatch("GUILD_DELETE", {"id": str(GUILD)})
    await core.wait(lambda: len(core.changes) >= 3)
    gone = [(c.chat.chat_id, c.change) for c in core.changes]
    assert gone[0] == (str(OTHER), "gone")
    assert sorted(gone[1:]) == sorted([(str(CHANNEL), "gone"), (str(CHANNEL + 5), "gone")])


async def test_a_rejected_token_is_a_config_error(make: Make) -> None:
    with pytest.raises(ConfigError):
        await make(token="MTAwCANARY.wrong.token-0000000000000000000000")


async def test_stop_is_idempotent_and_later_sends_retry(adapter: DiscordAdapter) -> None:
    await adapter.stop()
    await adapter.stop()
    with pytest.raises(RetryLater):
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body="x"), key="late")


async def test_stop_fits_the_cores_budget_with_an_answer_still_in_flight(
    make: Make, dfake: FakeDiscord, redis: Redis, keys: Keys, core: Recorder
) -> None:
    release = asyncio.Event()

    async def stuck(command: Command) -> Reply:  # a core call that outlives the shutdown (e.g. a slow AI-Trader)
        await release.wait()
        return Reply.text("late")

    adapter = await make(start=False)
    await adapter.start(COMMANDS, stuck, core.on_chat_change)
    await dfake.wait_for(lambda: dfake.active_session is not None and dfake.commands)
    pending = await dfake.interaction("feed", {"keyword": "x"}, channel_id=CHANNEL, guild_id=GUILD)
    await dfake.wait_for(lambda: pending.callbacks)
    try:
        await asyncio.wait_for(adapter.stop(), 2.0)  # what Relay.stop allows each adapter
    finally:
        release.set()
    assert adapter._client.is_closed(), "the HTTP session and gateway were closed, not abandoned"
    assert not await redis.exists(keys.adapter_key(DISCORD_GATEWAY)), "the next process can take the gateway now"


# --- secrets ----------------------------------------------------------------------------------


async def test_the_bot_token_and_linked_tokens_never_reach_the_logs(
    make: Make, dfake: FakeDiscord, core: Recorder
) -> None:
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure(logging.DEBUG, stream=buffer)
    agent_token = "agent-CANARY-token-7f3a9b1c2d"
    try:
        adapter = await make(redactor=Redactor())
        await dfake.wait_for(lambda: dfake.active_session is not None)
        await answered(dfake, await dfake.interaction("feed", {"keyword": "x"}, channel_id=CHANNEL, guild_id=GUILD))
        opened = await answered(dfake, await dfake.interaction("link", channel_id=CHANNEL, guild_id=GUILD))
        await answered(dfake, await dfake.submit_modal(opened, {"token": agent_token}, guild_id=GUILD))
        opened = await answered(dfake, await dfake.interaction("link", channel_id=DM_CHANNEL))
        await answered(dfake, await dfake.submit_modal(opened, {"token": agent_token + "-dm", "mode": "observe"}))
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body="hello"), key="c1")
        dfake.refuse(OTHER, 403)
        with pytest.raises(ChatGone):
            await adapter.send(ChatRef("discord", str(OTHER)), Message(body="x"), key="c2")
        await adapter.stop()
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_relay_handler", False)]:
            root.removeHandler(handler)
        root.setLevel(level)
    logs = buffer.getvalue()
    assert "WebSocket Event" in logs and "INTERACTION_CREATE" in logs, "DEBUG logging really was on"
    # Both modal submissions were logged by discord.py, with what was typed masked.
    submissions = [
        line
        for line in logs.splitlines()
        if "WebSocket Event" in line and "'custom_id': 'rl'" in line and "'type': 5" in line
    ]
    assert len(submissions) == 2 and all("'value': '***'" in line for line in submissions)
    assert TOKEN not in logs
    assert agent_token not in logs
    assert "MTAwCANARY" not in logs
