"""Outbound: TelegramAdapter.send through PTB to the fake, limits, and the error mapping."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter
from adapters.telegram.limiter import SendLimiter, SlidingWindow
from platform_fakes.telegram_api import FakeTelegram, Limits, utf16_len, visible_text
from relay.embedded_redis import connect
from relay.errors import ChatGone, ChatMoved, ConfigError, RetryLater, SendUncertain, Undeliverable
from relay.keys import TELEGRAM_GLOBAL_RATE, Keys
from relay.logs import Redactor
from relay.models import ChatRef, Message, MessageField
from relay.services import RedisAdapterServices
from relay.specs import COMMANDS
from tests.adapters.conftest import AdapterFactory, Recorder, telegram_settings


def chat(chat_id: int, thread: int | None = None) -> ChatRef:
    return ChatRef("telegram", str(chat_id), str(thread) if thread else None)


@pytest.fixture(autouse=True)
def known_chats(fake: FakeTelegram) -> None:
    """The fake, like Telegram, answers "chat not found" for chats the bot never met."""
    for chat_id in (1, 2, 42, 43):
        fake.add_chat(chat_id)


NOTE = Message(
    title="New reply on <BTC> & co",
    body="Looks good 👍 — but 1 < 2",
    fields=(MessageField("Agent", "ann_bot"), MessageField("Signal", "#123")),
    link="https://ai4trade.ai/signals/123?x=1&y=2",
    footer="reply with /reply 123",
)


async def test_a_message_is_sent_as_escaped_html_without_preview(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    await adapter.send(chat(42), NOTE, key="d1")
    (call,) = fake.sent(42)
    assert visible_text(call.params["text"]) == (
        "New reply on <BTC> & co\nLooks good 👍 — but 1 < 2\n\nAgent   ann_bot\nSignal  #123\n\n"
        "https://ai4trade.ai/signals/123?x=1&y=2\nreply with /reply 123"
    )
    assert call.params["text"].startswith("<b>New reply on &lt;BTC&gt; &amp; co</b>")
    assert '<a href="https://ai4trade.ai/signals/123?x=1&amp;y=2">' in call.params["text"]
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert call.params["disable_notification"] in ("false", False)


async def test_silent_and_forum_topic_sends(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    fake.add_chat(-1009, "supergroup", is_forum=True)
    fake.add_topic(-1009, 7)
    await adapter.send(chat(-1009, thread=7), Message(body="quiet"), key="d1", silent=True)
    (call,) = fake.sent(-1009)
    assert call.params["disable_notification"] in ("true", True) and int(call.params["message_thread_id"]) == 7


async def test_a_long_message_goes_out_in_order_in_chunks_telegram_accepts(
    fake: FakeTelegram, adapter: TelegramAdapter
) -> None:
    body = "\n".join(f"line {i}: {'😀' * (i % 7)} <tag> & more" for i in range(600))
    await adapter.send(chat(42), Message(title="Long", body=body), key="d1")
    calls = fake.sent(42)
    assert len(calls) >= 3 and all(c.status == 200 for c in calls)
    texts = [visible_text(c.params["text"]) for c in calls]
    assert all(utf16_len(t) <= 4096 for t in texts)
    assert "".join(texts) == "Long\n" + body
    assert fake.calls_to("sendMessage", status=400) == []


async def test_a_resend_after_a_failed_chunk_starts_at_the_first_chunk_not_accepted(
    fake: FakeTelegram, adapter: TelegramAdapter
) -> None:
    body = "x" * 4000 + "\n" + "y" * 4000 + "\n" + "z" * 100
    fake.fail_chat(42, "server_error", after=1)
    with pytest.raises(SendUncertain):
        await adapter.send(chat(42), Message(body=body), key="d-multi")
    fake.fail_chat(42, None)
    await adapter.send(chat(42), Message(body=body), key="d-multi")
    texts = [c.params["text"][:1] for c in fake.sent(42)]
    assert texts == ["x", "y", "z"]  # "x" was not sent twice
    await adapter.send(chat(42), Message(body=body), key="d-multi")  # already complete: nothing more
    assert len(fake.sent(42)) == 3


async def test_a_429_in_one_chat_does_not_hold_up_another(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    fake.flood(1, retry_after=5)
    with pytest.raises(RetryLater) as caught:
        await adapter.send(chat(1), Message(body="a"), key="a1")
    assert caught.value.seconds == 5
    for i in range(3):
        await adapter.send(chat(2), Message(body=f"b{i}"), key=f"b{i}")
    assert [c.params["text"] for c in fake.sent(2)] == ["b0", "b1", "b2"]
    # While chat 1 serves its retry_after the adapter does not spend requests on it.
    with pytest.raises(RetryLater) as again:
        await adapter.send(chat(1), Message(body="a"), key="a1")
    assert 0 < again.value.seconds <= 5
    assert len(fake.calls_to("sendMessage", status=None)) - len(fake.sent(2)) == 1


@pytest.mark.parametrize("kind", ["blocked", "kicked", "not_found"])
async def test_blocked_kicked_and_missing_chats_are_gone(
    fake: FakeTelegram, adapter: TelegramAdapter, kind: str
) -> None:
    fake.fail_chat(42, kind)
    with pytest.raises(ChatGone):
        await adapter.send(chat(42), Message(body="hi"), key="d1")


async def test_a_migrated_group_is_moved_to_the_new_id_keeping_the_topic(
    fake: FakeTelegram, adapter: TelegramAdapter
) -> None:
    fake.add_chat(-555, "group")
    fake.migrate(-555, -100555)
    with pytest.raises(ChatMoved) as caught:
        await adapter.send(chat(-555, thread=3), Message(body="hi"), key="d1")
    assert caught.value.new_chat == ChatRef("telegram", "-100555", "3")


async def test_html_refused_is_resent_once_as_plain_text(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    fake.reject_html.add(42)
    await adapter.send(chat(42), Message(title="T", body="<b>x</b>"), key="d1")
    refused, plain = fake.calls_to("sendMessage", status=None)
    assert refused.status == 400 and plain.status == 200
    assert "parse_mode" not in plain.params and plain.params["text"] == "T\n<b>x</b>"


async def test_other_bad_requests_are_undeliverable(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    fake.fail_chat(42, "bad_request")
    with pytest.raises(Undeliverable):
        await adapter.send(chat(42), Message(body="hi"), key="d1")
    with pytest.raises(Undeliverable):
        await adapter.send(chat(42), Message(), key="d2")  # empty: nothing Telegram would accept


async def test_5xx_and_read_timeouts_are_uncertain(fake: FakeTelegram, make_adapter: AdapterFactory) -> None:
    adapter = await make_adapter(request_timeout=0.5)
    fake.fail_chat(42, "server_error")
    with pytest.raises(SendUncertain):
        await adapter.send(chat(42), Message(body="hi"), key="d1")
    fake.stall[43] = 1.0
    with pytest.raises(SendUncertain):
        await adapter.send(chat(43), Message(body="hi"), key="d2")


async def test_a_request_that_cannot_connect_is_retried_later(fake: FakeTelegram, redis: Redis, keys: Keys) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = telegram_settings(fake, api_base=f"http://127.0.0.1:{closed_port}")
    adapter = TelegramAdapter(
        settings, RedisAdapterServices(redis, keys, "telegram"), Redactor()
    )  # not started: send needs no getMe
    try:
        with pytest.raises(RetryLater):
            await adapter.send(chat(42), Message(body="hi"), key="d1")
    finally:
        await adapter.stop()


async def test_sends_stay_within_telegrams_per_chat_limit(redis: Redis, keys: Keys) -> None:
    """With Telegram's real per-chat limit on the fake, the adapter's own pacing earns no 429."""
    async with FakeTelegram(limits=Limits()) as fake:  # ~1/s with a burst of 3, like Telegram
        fake.add_chat(42)
        adapter = TelegramAdapter(telegram_settings(fake), RedisAdapterServices(redis, keys, "telegram"), Redactor())
        core = Recorder()
        await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)  # sends wait for a started adapter
        try:
            await asyncio.gather(*(adapter.send(chat(42), Message(body=f"m{i}"), key=f"k{i}") for i in range(5)))
        finally:
            await adapter.stop()
        assert fake.calls_to("sendMessage", status=429) == []
        assert [c.params["text"] for c in fake.sent(42)] == ["m0", "m1", "m2", "m3", "m4"]  # in call order


def test_windows_space_events_per_key() -> None:
    chat_window = SlidingWindow(1, 1.0)
    group_window = SlidingWindow(20, 60.0)
    chat_window.record(42, 10.0)
    assert chat_window.next_free(42, 10.2) == pytest.approx(11.0)
    assert chat_window.next_free(43, 10.2) == 10.2  # another chat is not affected
    for i in range(20):
        group_window.record(-1, 100.0 + i)
    assert group_window.next_free(-1, 119.5) == pytest.approx(160.0)
    group_window.prune(200.0)
    assert group_window.next_free(-1, 200.0) == 200.0


async def test_limiter_penalty_is_per_chat() -> None:
    limiter = SendLimiter()
    limiter.penalize(1, 30)
    assert 29 < limiter.penalized_for(1) <= 30 and limiter.penalized_for(2) == 0


async def test_start_and_stop_are_idempotent(fake: FakeTelegram, make_adapter: AdapterFactory, core: Recorder) -> None:
    adapter = await make_adapter()
    await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
    await adapter.stop()
    await adapter.stop()
    assert len(fake.calls_to("getMe")) == 1


async def test_a_rejected_token_stops_start_with_a_config_error(
    fake: FakeTelegram, make_adapter: AdapterFactory
) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        await make_adapter(bot_token="999:not-the-fakes-token")


async def test_two_processes_on_one_redis_share_the_global_ceiling(redis_url: str, keys: Keys) -> None:
    """Two adapters (as two relay processes: own Redis clients, own PTB) send to 40 chats at once.
    Each alone keeps TELEGRAM_GLOBAL_RATE; only a ceiling shared on Redis keeps the two together
    under it (two in-process ceilings would let twice the rate reach Telegram)."""
    rate = 10
    clients = [connect(redis_url) for _ in range(2)]
    async with FakeTelegram(limits=None) as fake:  # the fake accepts everything; we count what arrives
        for i in range(40):
            fake.add_chat(1000 + i)
        adapters = [
            TelegramAdapter(
                telegram_settings(fake, global_rate=rate), RedisAdapterServices(c, keys, "telegram"), Redactor()
            )
            for c in clients
        ]
        core = Recorder()
        for adapter in adapters:  # sends wait for a started adapter; one of the two polls
            await adapter.start(COMMANDS, core.dispatch, core.on_chat_change)
        start = time.monotonic()  # the fake's clock: it runs in this process
        try:
            await asyncio.gather(
                *(adapters[i % 2].send(chat(1000 + i), Message(body=f"m{i}"), key=f"k{i}") for i in range(40))
            )
        finally:
            for adapter in adapters:
                await adapter.stop()
            for c in clients:
                await c.aclose()
        stamps = sorted(c.at for c in fake.sent())
    assert len(stamps) == 40
    # The shared GCRA (a burst of two) grants the k-th slot no earlier than (k - 1)/rate after the
    # first, which came after `start`; a request reaches the fake no earlier than its slot, however
    # late a loaded machine makes it. So the k-th arrival is at least (k - 1)/rate after `start`
    # (0.05 s for clock precision). Two unshared ceilings would let the k-th arrive after about
    # k/(2 x rate). (Arrivals per second are not bounded: requests held up by load may then arrive together.)
    early = [(k, round(stamp - start, 3)) for k, stamp in enumerate(stamps) if stamp - start < (k - 1) / rate - 0.05]
    assert early == [], f"arrivals earlier than the shared ceiling allows (index, seconds after start): {early}"


async def test_429s_for_several_chats_hold_every_process_and_one_chats_429_holds_only_that_chat(
    redis_url: str, keys: Keys
) -> None:
    """Telegram's 429 does not name the limit it enforces: for one chat it is that chat's, for two
    chats at once the bot's overall ceiling, which every process sharing it must then respect."""
    clients = [connect(redis_url) for _ in range(2)]
    try:
        a, b = (
            SendLimiter(
                global_rate=100, shared=RedisAdapterServices(c, keys, "telegram").rate_budget(TELEGRAM_GLOBAL_RATE, 100)
            )
            for c in clients
        )
        a.penalize(7001, 3.0)
        a.penalize(7001, 3.0)  # the same chat again: still that chat's own limit
        assert a.global_holds == 0 and a.penalized_for(7001) > 0 and a.penalized_for(7002) == 0
        a.penalize(7002, 1.5)
        assert a.global_holds == 1
        deadline = time.monotonic() + 30
        while a._tasks and time.monotonic() < deadline:  # the hold reaches Redis in the background
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await b.wait(7003)  # another process, another chat: its slot comes after the hold
        assert time.monotonic() - started >= 1.5 - 0.1
    finally:
        for c in clients:
            await c.aclose()
