"""One harness per adapter, so tests/contract/ runs the same cases against each.

Each harness starts the real adapter (console; Telegram through python-telegram-bot against the
fake Bot API; Discord through discord.py against the fake gateway and REST) with a recording core,
and exposes what a user in one chat sees and does. A harness says which platform behaviours its
platform has at all (the console cannot be rate limited, has no message to edit, and no chat that
can go away); a case the platform lacks is skipped with that reason, never passed silently.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from adapters.console import ConsoleAdapter
from adapters.discord import DiscordAdapter, DiscordSettings
from adapters.telegram import TelegramAdapter
from platform_fakes.discord_api import FakeDiscord
from platform_fakes.telegram_api import FakeTelegram, visible_text
from relay.adapter import ChatAdapter
from relay.keys import Keys, family_of
from relay.logs import Redactor
from relay.models import ChatRef
from relay.redis_values import text
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from tests.adapters.conftest import FAST_GATEWAY as FAST
from tests.adapters.conftest import Recorder, fast_limiter, telegram_settings
from tests.adapters.test_discord import TOKEN

GUILD, CHANNEL = 500000000000000001, 500000000000000011
TG_CHAT = 42
TG_USER = FakeTelegram.user(42, "Ann", "ann")


@dataclass
class Harness:
    name: str
    adapter: ChatAdapter
    chat: ChatRef
    core: Recorder
    can_edit: bool = True
    can_go: bool = True
    can_be_limited: bool = True
    max_text: int = 0  # one platform message's text, 0: unlimited
    stopped: bool = field(default=False)

    async def texts(self) -> list[str]:
        """The messages the chat shows, in order, as the reader sees them."""
        raise NotImplementedError

    async def press(self, label: str) -> None:
        """The user presses the button `label` on the newest message that has it."""
        raise NotImplementedError

    async def shown_after_press(self, text: str) -> bool:
        """`text` replaced the pressed message in place (True) rather than arriving as a new one."""
        raise NotImplementedError

    def make_gone(self) -> None:
        raise NotImplementedError

    def rate_limit(self, seconds: int) -> None:
        raise NotImplementedError

    def limited_at(self) -> list[float]:
        """Monotonic times of the platform's 429 answers for this chat."""
        raise NotImplementedError

    def accepted_at(self) -> list[float]:
        """Monotonic times the platform accepted (or at least received) sends for this chat."""
        raise NotImplementedError

    async def still_taking_events(self) -> bool:
        """Whether the adapter still fetches or receives platform events after stop."""
        raise NotImplementedError


async def assert_keys_declared(redis: Redis, prefix: str) -> None:
    """Every key the adapter left belongs to a family declared in relay/keys.py, within its TTL."""
    async for raw in redis.scan_iter(match=f"{prefix}:*", count=1000):
        key = text(raw)
        family = family_of(prefix, key)
        assert family is not None, f"undeclared key {key}"
        if family.ttl is not None:
            ttl = await redis.ttl(key)
            assert 0 < ttl <= family.ttl or ttl == -2, f"{key}: ttl {ttl}, declared at most {family.ttl}"


# --- console ------------------------------------------------------------------------------------


class ConsoleHarness(Harness):
    reader: asyncio.StreamReader
    out: io.StringIO

    async def texts(self) -> list[str]:
        return [block for block in self.out.getvalue().split("\n\n") if block.strip()]

    async def press(self, label: str) -> None:
        # A terminal has no buttons: it shows each as "label: /command args", and typing that
        # line is the press.
        for block in reversed(await self.texts()):
            for hint in block.split("→", 1)[-1].split(" · "):
                name, sep, line = hint.strip().partition(": ")
                if sep and name == label:
                    self.reader.feed_data((line + "\n").encode())
                    return
        raise AssertionError(f"no button {label!r} shown")

    async def still_taking_events(self) -> bool:
        before = len(self.core.commands)
        self.reader.feed_data(b"/help\n")
        await asyncio.sleep(0.2)  # nothing to wait for: the point is that nothing happens
        return len(self.core.commands) > before


@pytest.fixture
async def console_harness() -> AsyncIterator[Harness]:
    reader = asyncio.StreamReader()
    out = io.StringIO()
    adapter = ConsoleAdapter(reader, out)
    core = Recorder()
    await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
    harness = ConsoleHarness("console", adapter, adapter.chat, core, can_edit=False, can_go=False, can_be_limited=False)
    harness.reader, harness.out = reader, out
    yield harness
    await adapter.stop()


# --- Telegram -----------------------------------------------------------------------------------


class TelegramHarness(Harness):
    fake: FakeTelegram
    pressed: int = 0

    async def texts(self) -> list[str]:
        return [visible_text(c.params["text"]) for c in self.fake.sent(TG_CHAT)]

    async def press(self, label: str) -> None:
        for call in reversed(self.fake.sent(TG_CHAT)):
            for row in (call.params.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        self.pressed = call.result["message_id"]
                        self.fake.press(TG_CHAT, self.pressed, button["callback_data"], TG_USER)
                        return
        raise AssertionError(f"no button {label!r} sent")

    async def shown_after_press(self, text: str) -> bool:
        edit = await self.fake.wait_for("editMessageText", lambda c: text in visible_text(c.params["text"]))
        return int(edit.params["message_id"]) == self.pressed and not any(text in t for t in await self.texts())

    def make_gone(self) -> None:
        self.fake.fail_chat(TG_CHAT, "blocked")  # 403 Forbidden: bot was blocked by the user

    def rate_limit(self, seconds: int) -> None:
        self.fake.flood(TG_CHAT, retry_after=seconds)

    def limited_at(self) -> list[float]:
        return [c.at for c in self.fake.calls_to("sendMessage", status=429) if int(c.params["chat_id"]) == TG_CHAT]

    def accepted_at(self) -> list[float]:
        return [c.at for c in self.fake.sent(TG_CHAT)]

    async def still_taking_events(self) -> bool:
        before = len(self.fake.calls_to("getUpdates", status=None))
        await asyncio.sleep(0.5)  # long polling would have called again within this
        return len(self.fake.calls_to("getUpdates", status=None)) > before


@pytest.fixture
async def telegram_harness(redis: Redis, keys: Keys, prefix: str) -> AsyncIterator[Harness]:
    async with FakeTelegram(limits=None) as fake:
        fake.add_chat(TG_CHAT)
        adapter = TelegramAdapter(
            telegram_settings(fake), RedisAdapterServices(redis, keys, "telegram"), Redactor(), limiter=fast_limiter()
        )
        core = Recorder()
        await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
        harness = TelegramHarness("telegram", adapter, ChatRef("telegram", str(TG_CHAT)), core, max_text=4096)
        harness.fake = fake
        try:
            yield harness
        finally:
            await adapter.stop()
        await assert_keys_declared(redis, prefix)


# --- Discord ------------------------------------------------------------------------------------


class DiscordHarness(Harness):
    fake: FakeDiscord
    pressed: int = 0

    async def texts(self) -> list[str]:
        return [m.text for m in self.fake.channel_messages(CHANNEL)]

    async def press(self, label: str) -> None:
        for message in reversed(self.fake.channel_messages(CHANNEL)):
            for custom_id, shown in message.labels().items():
                if shown == label:
                    self.pressed = message.id
                    await self.fake.press(message.id, custom_id, guild_id=GUILD)
                    return
        raise AssertionError(f"no button {label!r} sent")

    async def shown_after_press(self, text: str) -> bool:
        await self.fake.wait_for(lambda: text in self.fake.messages[self.pressed].text)
        return not any(text in m.text for m in self.fake.public_messages() if m.id != self.pressed)

    def make_gone(self) -> None:
        self.fake.refuse(CHANNEL, 404)  # 10003 Unknown Channel

    def rate_limit(self, seconds: int) -> None:
        self.fake.shared_limit(CHANNEL, seconds)  # 429, X-RateLimit-Scope: shared

    def limited_at(self) -> list[float]:
        return [c.at for c in self.fake.rate_limited if f"/channels/{CHANNEL}/messages" in c.path]

    def accepted_at(self) -> list[float]:
        return [c.arrived for c in self.fake.calls_to("POST", f"/channels/{CHANNEL}/messages") if c.status == 200]

    async def still_taking_events(self) -> bool:
        return self.fake.active_session is not None


@pytest.fixture
async def discord_harness(redis: Redis, keys: Keys, prefix: str) -> AsyncIterator[Harness]:
    async with FakeDiscord(token=TOKEN, guilds={GUILD: [CHANNEL]}, global_limit=None, channel_limit=None) as fake:
        settings = DiscordSettings(
            bot_token=TOKEN,
            api_base=fake.api_base,
            gateway_url=fake.gateway_url,
            max_requests_per_second=50,
            send_timeout=10.0,
        )
        adapter = DiscordAdapter(settings, RedisAdapterServices(redis, keys, "discord"), Redactor(), timing=FAST)
        core = Recorder()
        await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
        await fake.wait_for(lambda: fake.active_session is not None and fake.commands, timeout=10)
        # Discord counts a message's embeds together: 6,000 characters at most (resources/message#embed-limits).
        harness = DiscordHarness("discord", adapter, ChatRef("discord", str(CHANNEL)), core, max_text=6000)
        harness.fake = fake
        try:
            yield harness
        finally:
            await adapter.stop()
        await assert_keys_declared(redis, prefix)


@pytest.fixture(params=["console", "telegram", "discord"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """The same case against each adapter."""
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value
