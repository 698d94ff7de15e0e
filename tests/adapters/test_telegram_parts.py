"""The adapter's pure parts: settings, the error decision table, the button codec."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from adapters.telegram import TelegramSettings
from adapters.telegram.buttons import ButtonStore
from adapters.telegram.failures import to_delivery_error
from relay.errors import ChatGone, ChatMoved, RetryLater, SendUncertain, Undeliverable
from relay.keys import Keys
from relay.models import Action, ChatRef
from relay.services import RedisAdapterServices
from relay.specs import BY_NAME

TOPIC = ChatRef("telegram", "-100", "5")


def _caused(error: Exception, cause: Exception) -> Exception:
    try:
        raise error from cause
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_caused(TimedOut(), httpx.ConnectTimeout("connect")), RetryLater),
        (
            _caused(
                TimedOut("Pool timeout: All connections in the connection pool are occupied."),
                httpx.PoolTimeout("pool"),
            ),
            RetryLater,
        ),
        (_caused(NetworkError("httpx.ConnectError: refused"), httpx.ConnectError("refused")), RetryLater),
        (_caused(TimedOut(), httpx.ReadTimeout("read")), SendUncertain),
        (_caused(TimedOut(), httpx.WriteTimeout("write")), SendUncertain),
        (_caused(NetworkError("httpx.RemoteProtocolError"), httpx.RemoteProtocolError("reset")), SendUncertain),
        (NetworkError("Bad Gateway"), SendUncertain),
        (Forbidden("Forbidden: bot was blocked by the user"), ChatGone),
        (BadRequest("Chat not found"), ChatGone),
        (BadRequest("Message thread not found"), ChatGone),
        (BadRequest("Wrong parameter"), Undeliverable),
        (InvalidToken("Unauthorized"), RetryLater),
    ],
)
def test_each_telegram_error_maps_to_what_a_resend_would_mean(error: Exception, expected: type) -> None:
    assert type(to_delivery_error(error, TOPIC)) is expected


def test_retry_after_and_migration_carry_their_values() -> None:
    later = to_delivery_error(RetryAfter(17), TOPIC)
    assert isinstance(later, RetryLater) and later.seconds == 17
    moved = to_delivery_error(ChatMigrated(-100999), TOPIC)
    assert isinstance(moved, ChatMoved) and moved.new_chat == ChatRef("telegram", "-100999", "5")


def test_settings_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET", "PORT", "TELEGRAM_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    assert TelegramSettings.from_env() is None  # no token: the adapter is off
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("PORT", "9090")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "")
    monkeypatch.setenv("TELEGRAM_API_BASE", "http://127.0.0.1:81/")
    settings = TelegramSettings.from_env()
    assert settings is not None
    assert (settings.port, settings.webhook_url, settings.api_base, settings.global_rate, settings.request_timeout) == (
        9090,
        None,
        "http://127.0.0.1:81",
        30.0,
        10.0,
    )
    generated = settings.webhook_secret.get_secret_value()
    again = TelegramSettings.from_env()
    assert again is not None
    assert len(generated) >= 32 and generated != again.webhook_secret.get_secret_value()  # random each time
    assert "123:abc" not in repr(settings) and generated not in repr(settings)
    with pytest.raises(ValidationError):
        TelegramSettings(bot_token="1:a", webhook_secret="has spaces")


async def test_button_data_round_trips_inline_or_through_redis(redis: Redis, keys: Keys) -> None:
    store = ButtonStore(RedisAdapterServices(redis, keys, "telegram"), BY_NAME)
    paging = Action("Next", "feed", {"keyword": "btc", "page": "3"}, replace=True)
    data = await store.encode(paging, "42")
    assert data.startswith("e|feed||btc||3|") and len(data.encode()) <= 64
    assert await store.decode(data, "42", "Next") == paging
    prompt = Action("Reply", "reply", {"signal_id": "9"}, kind="prompt", text_param="text")
    assert await store.decode(await store.encode(prompt, "42"), "42", "Reply") == prompt
    odd = Action("Go", "feed", {"keyword": "a|b"})  # the separator inside a value: stored, not inline
    stored = await store.encode(odd, "42")
    assert stored.startswith("r|") and await store.decode(stored, "42") == odd
    unknown = Action("X", "not-a-command", {"a": "1"})
    assert (await store.encode(unknown, "42")).startswith("r|")
    assert await store.decode("c|not-a-command||1", "42") is None
    assert await store.decode("garbage", "42") is None
