"""The bot token never reaches a log line, at DEBUG for every logger, through commands, sends and errors."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter
from platform_fakes.telegram_api import FakeTelegram
from relay.errors import DeliveryError
from relay.keys import Keys
from relay.logs import configure
from relay.models import ChatRef, Command, Message, Reply
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from tests.adapters.conftest import Recorder, fast_limiter, telegram_settings

CANARY = "123456789:CANARY_" + "aB3-_" * 5 + "xYz0"  # Telegram's shape: digits, colon, 35 url-safe chars


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    buffer = io.StringIO()
    yield buffer
    for handler in root.handlers:
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


class Noisy(Recorder):
    async def dispatch(self, command: Command) -> Reply:
        if command.name == "status":
            raise RuntimeError(f"core bug while handling {command.chat.key}")
        return await super().dispatch(command)


async def test_the_token_never_appears_in_logs(captured: io.StringIO, redis: Redis, keys: Keys) -> None:
    redactor = configure("DEBUG", stream=captured)
    for name in ("httpx", "httpcore"):  # configure quiets them; open them up to prove the filter holds
        logging.getLogger(name).setLevel(logging.DEBUG)
    core = Noisy()
    async with FakeTelegram(token=CANARY, limits=None) as fake:
        adapter = TelegramAdapter(
            telegram_settings(fake), RedisAdapterServices(redis, keys, "telegram"), redactor, limiter=fast_limiter()
        )
        await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
        try:
            user = fake.user(42, "Ann")
            fake.user_says(42, user, "/feed btc")
            fake.user_says(42, user, "/status")  # dispatch raises: logged with a traceback
            await core.command()
            await fake.wait_for("sendMessage", lambda c: "went wrong" in c.params["text"])
            await adapter.send(ChatRef("telegram", "42"), Message(body="hello"), key="k1")
            fake.fail_chat(7, "blocked")
            fake.fail_chat(8, "server_error")
            fake.flood(9, retry_after=3)
            for chat_id in (7, 8, 9):
                with pytest.raises(DeliveryError):
                    await adapter.send(ChatRef("telegram", str(chat_id)), Message(body="x"), key=f"k{chat_id}")
        finally:
            await adapter.stop()
        # A token Telegram rejects: PTB's errors for it must not carry the token either.
        stranger = TelegramAdapter(
            telegram_settings(fake, bot_token=CANARY.replace("CANARY", "CANARZ")),
            RedisAdapterServices(redis, keys, "telegram"),
            redactor,
        )
        with pytest.raises(DeliveryError):
            await stranger.send(ChatRef("telegram", "42"), Message(body="x"), key="k2")
        await stranger.stop()
    output = captured.getvalue()
    assert "sendMessage" in output and "Traceback" in output and "/bot***/" in output  # URLs were logged, masked
    assert "CANARY" not in output and "CANARZ" not in output
