"""Who takes updates: the webhook endpoint (secret checked), one poller per token, 409s survived."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter
from platform_fakes.telegram_api import FakeTelegram
from relay.keys import TELEGRAM_POLLER, Keys
from tests.adapters.conftest import AdapterFactory, Recorder

ANN = FakeTelegram.user(42, "Ann")


async def eventually(predicate: Callable[[], object], timeout: float) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


def _update(update_id: int, text: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": 42, "type": "private", "first_name": "Ann"},
            "from": ANN,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


PUBLIC_URL = "https://relay.example:8443/telegram/hook"  # what Telegram is told; it accepts only https


@pytest.fixture
async def hooked(fake: FakeTelegram, make_adapter: AdapterFactory, unused_port: int) -> TelegramAdapter:
    fake.add_chat(42)
    fake.webhook_origin = f"http://127.0.0.1:{unused_port}"  # the TLS proxy in front of $PORT
    return await make_adapter(webhook_url=PUBLIC_URL, webhook_secret="s3cret-Value_1", port=unused_port)


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_webhook_mode_registers_the_secret_and_takes_updates_from_telegram(
    fake: FakeTelegram, hooked: TelegramAdapter, core: Recorder, unused_port: int
) -> None:
    (registered,) = fake.calls_to("setWebhook")
    assert registered.params["url"] == PUBLIC_URL
    assert registered.params["secret_token"] == "s3cret-Value_1"
    assert fake.calls_to("getUpdates", status=None) == []
    fake.user_says(42, ANN, "/status")  # the fake pushes it to the webhook with the header
    cmd = await core.command()
    assert cmd.name == "status" and fake.webhook_deliveries == [200]


async def test_webhook_refuses_a_missing_or_wrong_secret_without_logging_it(
    hooked: TelegramAdapter, core: Recorder, unused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{unused_port}/telegram/hook"
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as http:
        missing = await http.post(url, json=_update(1, "/status"))
        wrong = await http.post(
            url, json=_update(2, "/status"), headers={"X-Telegram-Bot-Api-Secret-Token": "guessed-Secret"}
        )
        near = await http.post(
            url, json=_update(3, "/status"), headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Value_"}
        )
        right = await http.post(
            url, json=_update(4, "/help"), headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Value_1"}
        )
        replayed = await http.post(
            url, json=_update(4, "/help"), headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Value_1"}
        )
    assert (missing.status_code, wrong.status_code, near.status_code) == (403, 403, 403)
    assert (right.status_code, replayed.status_code) == (200, 200)
    await core.command()
    await asyncio.sleep(0.2)
    assert [c.name for c in core.commands] == ["help"]  # refused ones never dispatched; the replay once
    assert "guessed-Secret" not in caplog.text


async def lease_renewed(redis: Redis, key: str, times: int, timeout: float = 30) -> None:
    """Wait until the lease's time to live has gone back up `times` times: each rise is a renewal."""

    async def loop() -> None:
        seen, last = 0, await redis.pttl(key)
        while seen < times:
            await asyncio.sleep(0.05)
            now = await redis.pttl(key)
            seen += now > last
            last = now

    await asyncio.wait_for(loop(), timeout)


async def test_only_one_adapter_per_token_polls_and_the_other_takes_over(
    fake: FakeTelegram, make_adapter: AdapterFactory, redis: Redis, keys: Keys
) -> None:
    first_core, second_core = Recorder(), Recorder()
    # Renewed every second; only a process stalled for two seconds would lose it.
    first = await make_adapter(recorder=first_core, lease_ttl=3.0)
    second = await make_adapter(recorder=second_core, lease_ttl=3.0)
    assert first.is_polling and not second.is_polling
    await lease_renewed(redis, keys.adapter_key(TELEGRAM_POLLER), times=2)  # the second tries each second meanwhile
    assert fake.conflicts_served == 0 and first.is_polling and not second.is_polling
    fake.user_says(42, ANN, "/status")
    await first_core.command()
    await first.stop()  # releases the lease
    await eventually(lambda: second.is_polling, timeout=15)
    fake.user_says(42, ANN, "/help")
    cmd = await second_core.command()
    assert cmd.name == "help" and [c.name for c in first_core.commands] == ["status"]
    assert fake.conflicts_served == 0


async def test_a_409_conflict_is_survived_with_backoff(
    fake: FakeTelegram, make_adapter: AdapterFactory, core: Recorder
) -> None:
    fake.inject_conflicts(2)  # e.g. an old deployment still polling
    adapter = await make_adapter()
    fake.user_says(42, ANN, "/status")
    cmd = await core.command(timeout=10)
    assert cmd.name == "status" and adapter.is_polling
    assert len(fake.calls_to("getUpdates", status=409)) == 2
