"""Discord's refusals, as the strict fake gives them, met by the real discord.py and the adapter.

Each test names the behaviour of platform_fakes/discord_api.py it relies on (documented there
with its source in Discord's developer docs) and fails against the lenient fake or adapter of
before: the nested Invalid Form Body, 50006, 5x5 component rows, 50013 versus 50001, interaction
deadlines, bucket headers on every route, shared and global scopes, the Cloudflare ban, the
gateway lifecycle, and Discord's few-minute nonce memory.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord.http import Route
from redis.asyncio import Redis

from adapters.discord import DiscordAdapter, DiscordSettings
from platform_fakes.discord_api import FakeDiscord
from relay.errors import ChatGone, PermissionMissing, RetryLater, SendUncertain
from relay.keys import Keys
from relay.logs import Redactor, configure
from relay.models import ChatRef, Message
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from tests.adapters.conftest import FAST_GATEWAY as FAST
from tests.adapters.conftest import Recorder
from tests.adapters.test_discord import CHANNEL, GUILD, OTHER, TOKEN, Make, answered, new_fake


@pytest.fixture
async def dfake() -> AsyncIterator[FakeDiscord]:
    async with new_fake() as fake:
        yield fake


@pytest.fixture
async def make(dfake: FakeDiscord, redis: Redis, keys: Keys, core: Any) -> AsyncIterator[Make]:
    made: list[DiscordAdapter] = []

    async def build(*, fake: FakeDiscord | None = None, start: bool = True) -> DiscordAdapter:
        fake = fake or dfake
        settings = DiscordSettings(
            bot_token=TOKEN,
            api_base=fake.api_base,
            gateway_url=fake.gateway_url,
            max_requests_per_second=50,
            send_timeout=5.0,
        )
        adapter = DiscordAdapter(settings, RedisAdapterServices(redis, keys, "discord"), Redactor(), timing=FAST)
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


async def _client(fake: FakeDiscord) -> discord.Client:
    """A bare discord.py client logged in over REST: what the fake answers, unfiltered by the adapter."""
    client = discord.Client(intents=discord.Intents.none())
    await client.login(TOKEN)
    return client


@pytest.fixture
async def client(dfake: FakeDiscord, make: Make) -> AsyncIterator[discord.Client]:
    # `make` first: it points discord.py's Route.BASE at the fake (process-wide class attribute).
    await make(start=False)
    bare = await _client(dfake)
    yield bare
    await bare.close()


# --- message validation -----------------------------------------------------------------------


async def test_invalid_form_body_reaches_discord_py_as_nested_errors(client: discord.Client) -> None:
    """50035 in reference.mdx#error-messages shape; the old list made discord.py raise AttributeError."""
    channel = client.get_partial_messageable(CHANNEL)
    with pytest.raises(discord.HTTPException) as caught:
        await channel.send(embed=discord.Embed(title="t", description="x" * 4097))
    assert caught.value.status == 400 and caught.value.code == 50035
    assert "In embeds.0.description: Must be 4096 or fewer in length." in caught.value.text


async def test_an_empty_message_is_50006(client: discord.Client) -> None:
    with pytest.raises(discord.HTTPException) as caught:
        await client.http.request(Route("POST", "/channels/{channel_id}/messages", channel_id=CHANNEL), json={})
    assert caught.value.code == 50006 and caught.value.text == "Cannot send an empty message"


async def test_component_rows_are_at_most_five_by_five(client: discord.Client, dfake: FakeDiscord) -> None:
    button = {"type": 2, "style": 1, "label": "b", "custom_id": "c"}
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=CHANNEL)
    six_rows = [{"type": 1, "components": [dict(button, custom_id=f"r{i}")]} for i in range(6)]
    with pytest.raises(discord.HTTPException) as caught:
        await client.http.request(route, json={"content": "x", "components": six_rows})
    assert caught.value.code == 50035 and "In components: Must be 5 or fewer in length." in caught.value.text
    six_wide = [{"type": 1, "components": [dict(button, custom_id=f"b{i}") for i in range(6)]}]
    with pytest.raises(discord.HTTPException) as caught:
        await client.http.request(route, json={"content": "x", "components": six_wide})
    assert "In components.0.components" in caught.value.text
    assert dfake.channel_messages(CHANNEL) == []


# --- permissions ------------------------------------------------------------------------------


async def test_missing_permissions_keeps_the_channel_and_tells_it_once(
    adapter: DiscordAdapter, dfake: FakeDiscord
) -> None:
    """50013 (no Embed Links) is fixable: not "gone", one plain-text notice, retried later."""
    dfake.deny(CHANNEL, "embed_links")
    chat = ChatRef("discord", str(CHANNEL))
    for key in ("p1", "p2"):
        with pytest.raises(PermissionMissing) as caught:
            await adapter.send(chat, Message(title="t", body="needs an embed"), key=key)
        assert caught.value.seconds >= 60
    notices = dfake.channel_messages(CHANNEL)
    assert len(notices) == 1 and "missing a permission" in notices[0].text, "told once, in plain text"
    assert not notices[0].payload.get("embeds")
    assert len(dfake.calls_to("POST", f"/channels/{CHANNEL}/messages")) == 3, "the second send still tried"
    dfake.accept(CHANNEL)  # an admin granted Embed Links
    await adapter.send(chat, Message(title="t", body="now it fits"), key="p3")
    assert "now it fits" in dfake.channel_messages(CHANNEL)[-1].text


async def test_missing_access_is_still_gone(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    """50001 Missing Access (the bot cannot see the channel) stays distinct from 50013."""
    dfake.refuse(CHANNEL, 403)
    with pytest.raises(ChatGone):
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body="x"), key="a1")
    assert dfake.channel_messages(CHANNEL) == []


# --- interactions -----------------------------------------------------------------------------


class _Bare(discord.Client):
    """A discord.py client whose interaction handling the test scripts."""

    def __init__(self, handler: Any) -> None:
        super().__init__(intents=discord.Intents(guilds=True))
        self.handler = handler
        self.outcome: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        try:
            self.outcome.set_result(await self.handler(interaction))
        except Exception as exc:
            self.outcome.set_exception(exc)


async def _run_bare(fake: FakeDiscord, make: Make, handler: Any) -> Any:
    await make(fake=fake, start=False)
    bare = _Bare(handler)
    await bare.login(TOKEN)
    task = asyncio.create_task(bare.connect(reconnect=False))
    try:
        await fake.wait_for(lambda: fake.active_session is not None)
        fake.commands[None] = [{"id": "1", "name": "status", "type": 1, "options": []}]
        await fake.interaction("status", channel_id=CHANNEL, guild_id=GUILD)
        return await asyncio.wait_for(bare.outcome, 10)
    finally:
        await bare.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_first_response_after_the_deadline_is_unknown_interaction(make: Make) -> None:
    async def late(interaction: discord.Interaction) -> Any:
        await asyncio.sleep(0.5)
        with pytest.raises(discord.NotFound) as caught:
            await interaction.response.send_message("too late")
        return caught.value.code

    async with new_fake(interaction_deadline=0.3) as fake:
        assert await _run_bare(fake, make, late) == 10062
        [record] = fake.interactions.values()
        assert not record.callbacks


async def test_a_refused_callback_does_not_acknowledge(make: Make) -> None:
    async def retry(interaction: discord.Interaction) -> Any:
        with pytest.raises(discord.HTTPException):
            await interaction.response.send_message(embed=discord.Embed(description="x" * 5000))
        await interaction.response.send_message("fits")  # not 40060: nothing was acknowledged
        return True

    async with new_fake() as fake:
        assert await _run_bare(fake, make, retry)
        [record] = fake.interactions.values()
        assert [m.text for m in record.messages()] == ["fits"]


async def test_modal_limits(make: Make) -> None:
    async def modal(interaction: discord.Interaction) -> Any:
        too_long = discord.ui.Modal(title="t" * 46, custom_id="m")
        too_long.add_item(discord.ui.TextInput(label="l", custom_id="f"))
        with pytest.raises(discord.HTTPException) as caught:
            await interaction.response.send_modal(too_long)
        return caught.value.text

    async with new_fake() as fake:
        assert "In data.title: Must be between 1 and 45 in length." in await _run_bare(fake, make, modal)


async def test_follow_ups_end_with_the_interaction_token(make: Make) -> None:
    async def slow(interaction: discord.Interaction) -> Any:
        await interaction.response.defer()
        await asyncio.sleep(0.5)
        with pytest.raises(discord.HTTPException) as caught:
            await interaction.followup.send("after the token expired")
        return caught.value.status, caught.value.code

    async with new_fake(token_lifetime=0.3) as fake:
        assert await _run_bare(fake, make, slow) == (401, 50027)


async def test_the_adapter_answers_within_the_deadline_while_the_core_is_slow(make: Make, core: Recorder) -> None:
    release = asyncio.Event()
    answer = core.dispatch

    async def slow(command: Any) -> Any:
        await release.wait()  # the core takes longer than Discord's deadline
        return await answer(command)

    core.dispatch = slow  # type: ignore[method-assign]  # the test's own recorder, slowed; bound at start
    async with new_fake(interaction_deadline=0.5) as fake:
        await make(fake=fake)
        await fake.wait_for(lambda: fake.active_session is not None and fake.commands)
        interaction = await fake.interaction("status", channel_id=CHANNEL, guild_id=GUILD)
        await fake.wait_for(lambda: interaction.callbacks)
        assert interaction.callbacks[0]["type"] == 5, "deferred before the core answered"
        release.set()
        await answered(fake, interaction)


# --- rate limits ------------------------------------------------------------------------------


async def test_edits_have_their_own_bucket_which_discord_py_honours(make: Make) -> None:
    async with new_fake(route_limit=(2, 0.4)) as fake:
        await make(fake=fake, start=False)
        bare = await _client(fake)
        try:
            message = await bare.get_partial_messageable(CHANNEL).send("v0")
            for i in range(1, 6):
                await message.edit(content=f"v{i}")
        finally:
            await bare.close()
        assert fake.channel_messages(CHANNEL)[0].payload["content"] == "v5"
        assert fake.rate_limited == [], "discord.py waited on the edit bucket's headers"
        patches = fake.calls_to("PATCH", f"/channels/{CHANNEL}/messages/")
        assert len(patches) == 5 and patches[2].arrived - patches[0].arrived >= 0.3, "the bucket was applied"


async def test_a_shared_429_is_waited_out_and_not_counted_as_invalid(make: Make) -> None:
    async with new_fake() as fake:
        adapter = await make(fake=fake)
        fake.shared_limit(CHANNEL, 0.3)
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body="after"), key="s1")
        [limited] = fake.rate_limited
        assert limited.status == 429
        assert [m.text for m in fake.channel_messages(CHANNEL)] == ["after"]
        assert adapter.guard.invalid[429] == 0, 'scope "shared" does not count toward the Cloudflare limit'


async def test_the_global_limit_is_a_sliding_second(make: Make) -> None:
    """50 requests just before a wall-clock second boundary leave no room just after it."""
    async with new_fake(global_limit=50) as fake:
        await make(fake=fake, start=False)
        bare = await _client(fake)
        try:
            while time.monotonic() % 1.0 < 0.6:  # start late in a second, so the batch straddles the boundary
                await asyncio.sleep(0.01)
            route = Route("GET", "/channels/{channel_id}", channel_id=CHANNEL)
            await asyncio.gather(*(bare.http.request(route) for _ in range(50)))
            while time.monotonic() % 1.0 > 0.6:
                await asyncio.sleep(0.005)
            await bare.http.request(route)
        finally:
            await bare.close()
        assert any(c.path == f"/channels/{CHANNEL}" for c in fake.rate_limited), "a fixed window would allow it"


async def test_a_cloudflare_ban_pauses_every_send(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    dfake.cloudflare_ban(5.0)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(body="x"), key="c1")
    assert caught.value.seconds >= 300, "a ban is long"
    before = len(dfake.calls)
    with pytest.raises(RetryLater):
        await adapter.send(ChatRef("discord", str(OTHER)), Message(body="y"), key="c2")
    assert len(dfake.calls) == before, "no request to another channel during the ban"


# --- gateway lifecycle ------------------------------------------------------------------------


async def test_reconnect_opcode_resumes_without_identifying(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    await dfake.request_reconnect()
    await dfake.wait_for(lambda: dfake.resumes == 1 and dfake.active_session is not None, timeout=10)
    assert len(dfake.identifies) == 1 and dfake.session_start_remaining == 999
    await answered(dfake, await dfake.interaction("status", channel_id=CHANNEL, guild_id=GUILD))


async def test_invalid_session_identifies_again_and_spends_budget(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    await dfake.invalidate_session(resumable=False)
    await dfake.wait_for(lambda: len(dfake.identifies) == 2 and dfake.active_session is not None, timeout=15)
    assert dfake.resumes == 0 and dfake.session_start_remaining == 998
    _shards, _url, limit = await adapter._client.http.get_bot_gateway()
    assert limit["remaining"] == 998, "GET /gateway/bot reports the spent IDENTIFYs"
    await answered(dfake, await dfake.interaction("status", channel_id=CHANNEL, guild_id=GUILD))


async def test_a_resume_of_a_forgotten_session_is_refused(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    dfake._sessions_by_id.clear()  # Discord no longer knows the session (it expired)
    await dfake.close_session(4000)  # resumable close: discord.py tries RESUME first
    await dfake.wait_for(lambda: len(dfake.identifies) == 2 and dfake.active_session is not None, timeout=15)
    assert dfake.resumes == 0, "the RESUME was answered with opcode 9"


@pytest.mark.parametrize("code", [4004, 4014])
async def test_a_fatal_close_stops_cleanly_with_one_error(make: Make, dfake: FakeDiscord, code: int) -> None:
    buffer = io.StringIO()
    configure(logging.INFO, stream=buffer)
    adapter = await make()
    await dfake.wait_for(lambda: dfake.active_session is not None and dfake.commands)
    assert adapter.state == "connected"
    dfake.refuse_identify(code)
    dfake._sessions_by_id.clear()
    await dfake.close_session(4000)  # RESUME refused -> IDENTIFY -> fatal close
    await dfake.wait_for(lambda: adapter.state == "failed", timeout=15)
    assert f"gateway close {code}" in (adapter.failure or "")
    identifies = len(dfake.identifies)
    chat = ChatRef("discord", str(CHANNEL))
    if code == 4004:  # discord.py closed its HTTP session: keep the messages, never dead-letter them
        with pytest.raises(RetryLater):
            await adapter.send(chat, Message(body="kept"), key="f1")
    else:  # 4014: REST still works, only the gateway is gone
        await adapter.send(chat, Message(body="still sent"), key="f1")
    await adapter.stop()
    assert len(dfake.identifies) == identifies, "no reconnect loop after a fatal close"
    errors = [line for line in buffer.getvalue().splitlines() if "failed for good" in line]
    assert len(errors) == 1, buffer.getvalue()


# --- nonce memory -----------------------------------------------------------------------------


async def test_a_late_resend_looks_in_the_channel_before_posting(make: Make, redis: Redis, keys: Keys) -> None:
    """Discord forgets an enforce_nonce after a few minutes: a resend later than that must not
    post the message again when the lost attempt had created it."""
    async with new_fake(nonce_window=0.3) as fake:
        adapter = await make(fake=fake)
        adapter.nonce_trust = 0.2
        chat = ChatRef("discord", str(CHANNEL))
        fake.drop_next_response(CHANNEL)
        with pytest.raises(SendUncertain):
            await adapter.send(chat, Message(title="t", body="exactly once"), key="n1")
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:  # past both windows
            await asyncio.sleep(0.05)
        await adapter.send(chat, Message(title="t", body="exactly once"), key="n1")
        assert [m.text for m in fake.channel_messages(CHANNEL)] == ["t\nexactly once"]
        assert fake.calls_to("GET", f"/channels/{CHANNEL}/messages"), "it read the history"
        await adapter.send(chat, Message(title="t", body="exactly once"), key="n2")
        assert len(fake.channel_messages(CHANNEL)) == 2, "a new key posts without looking"
        assert len(fake.calls_to("GET", f"/channels/{CHANNEL}/messages")) == 1
