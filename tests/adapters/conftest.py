"""Fixtures for adapter tests: the fake Telegram Bot API, a recording dispatch, adapter factory.

Redis comes from tests/conftest.py (`redis`, `keys`: a real server and a fresh key prefix per test).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from adapters.discord import DiscordAdapter, DiscordSettings, GatewayTiming
from adapters.telegram import TelegramAdapter, TelegramSettings
from adapters.telegram.limiter import SendLimiter
from platform_fakes.discord_api import FakeDiscord
from platform_fakes.telegram_api import FakeTelegram, Limits
from relay.adapter import ChatChange
from relay.app import Relay
from relay.config import RelaySettings
from relay.keys import Keys
from relay.logs import Redactor
from relay.models import Command, Reply
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from relay.tokens import TokenBox

# Discord gateway timing for tests: leases and identify retries in fractions of a second, so a
# takeover or reconnect settles within a test's wait instead of the production minutes.
FAST_GATEWAY = GatewayTiming(
    lease_ttl=2.0,
    renew_every=0.2,
    retry_every=0.2,
    identify_base=0.5,
    identify_cap=2.0,
    stable_after=30.0,
    max_hook_wait=2.0,
)


class Recorder:
    """A stub core: records Commands and ChatChanges, answers with canned Replies."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.changes: list[ChatChange] = []
        self.replies: dict[str, Reply] = {}
        self._event = asyncio.Event()

    async def dispatch(self, command: Command) -> Reply:
        self.commands.append(command)
        self._event.set()
        return self.replies.get(command.name, Reply.text(f"ok {command.name}"))

    async def on_chat_change(self, change: ChatChange) -> None:
        self.changes.append(change)
        self._event.set()

    async def wait(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        async def loop() -> Any:
            while not (result := predicate()):
                self._event.clear()
                await self._event.wait()
            return result

        return await asyncio.wait_for(loop(), timeout)

    async def command(self, index: int = 0, timeout: float = 30.0) -> Command:
        await self.wait(lambda: len(self.commands) > index, timeout)
        return self.commands[index]


# Telegram's limits at 1/20 of their periods: tests meet the same 429s production does, quickly.
TIME_SCALE = 0.05


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API with Telegram's flood limits on (per chat, per group, global), scaled by
    TIME_SCALE; `fast_limiter` paces the adapter to the same scale."""
    async with FakeTelegram(limits=Limits().scaled(TIME_SCALE)) as server:
        yield server


def fast_limiter() -> SendLimiter:
    """Telegram's limit shapes at 1/20 of the periods, for tests that are not about pacing."""
    return SendLimiter(global_rate=500, per_chat=(1, 0.05), per_group=(20, 3.0))


@pytest.fixture
def core() -> Recorder:
    return Recorder()


AdapterFactory = Callable[..., Awaitable[TelegramAdapter]]


def telegram_settings(fake: FakeTelegram, **overrides: Any) -> TelegramSettings:
    values: dict[str, Any] = {
        "bot_token": fake.token,
        "api_base": fake.api_base,
        "port": 0,
        "webhook_url": None,
        "request_timeout": 5.0,
        **overrides,
    }
    return TelegramSettings(**values)


@pytest.fixture
async def make_adapter(fake: FakeTelegram, redis: Redis, keys: Keys, core: Recorder) -> AsyncIterator[AdapterFactory]:
    """Builds and starts adapters against the fake; stops them all after the test."""
    started: list[TelegramAdapter] = []

    async def make(
        *,
        start: bool = True,
        recorder: Recorder | None = None,
        redactor: Redactor | None = None,
        limiter: SendLimiter | None = None,
        lease_ttl: float = 30.0,
        **overrides: Any,
    ) -> TelegramAdapter:
        adapter = TelegramAdapter(
            telegram_settings(fake, **overrides),
            RedisAdapterServices(redis, keys, "telegram"),
            redactor or Redactor(),
            limiter=limiter or fast_limiter(),
            lease_ttl=lease_ttl,
        )
        started.append(adapter)
        if start:
            rec = recorder or core
            await adapter.start(COMMANDS, rec.dispatch, rec.on_chat_change)
        return adapter

    yield make
    for adapter in reversed(started):
        await adapter.stop()


@pytest.fixture
async def adapter(make_adapter: AdapterFactory) -> TelegramAdapter:
    return await make_adapter()


@contextlib.asynccontextmanager
async def started_discord_relay(
    settings: RelaySettings,
    redis: Redis,
    http: httpx.AsyncClient,
    box: TokenBox,
    fake: FakeDiscord,
    *,
    seed: int,
    **discord: Any,
) -> AsyncIterator[Relay]:
    """A started Relay whose only adapter is the real DiscordAdapter on the fake, once the fake has
    its gateway session and the synced commands. `discord` overrides DiscordSettings fields."""
    redactor = Redactor()
    values: dict[str, Any] = {
        "api_base": fake.api_base,
        "gateway_url": fake.gateway_url,
        "max_requests_per_second": 50,
        **discord,
    }
    adapter = DiscordAdapter(
        DiscordSettings(**values),
        RedisAdapterServices(redis, Keys(settings.relay_key_prefix), "discord"),
        redactor,
        timing=FAST_GATEWAY,
    )
    relay = Relay(settings, redis, http, box, [adapter], redactor=redactor, rng=random.Random(seed))
    async with relay:
        await fake.wait_for(lambda: fake.active_session is not None and fake.commands, timeout=10)
        yield relay
