"""Security review findings (issue 13) on Telegram, through the real python-telegram-bot against the
fake Bot API (platform_fakes/telegram_api.py). Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import io
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from adapters.telegram import TelegramAdapter
from aitrader_sim.world import World
from platform_fakes.telegram_api import Call, FakeTelegram
from relay.app import Relay
from relay.config import RelaySettings
from relay.keys import Keys
from relay.logs import Redactor, configure
from relay.models import Action, Message, Reply
from relay.services import RedisAdapterServices
from relay.tokens import TokenBox
from tests.adapters.conftest import AdapterFactory, Recorder, fast_limiter, telegram_settings

ANN = FakeTelegram.user(42, "Ann", "ann")
BOB = FakeTelegram.user(43, "Bob")
GROUP = -1001234
CHANNEL = -1009876


def sent_to(chat_id: int, needle: str = "") -> Callable[[Call], bool]:
    return lambda c: int(c.params["chat_id"]) == chat_id and needle in c.params["text"]


def deleted(fake: FakeTelegram) -> list[tuple[int, int]]:
    return [(int(c.params["chat_id"]), int(c.params["message_id"])) for c in fake.calls_to("deleteMessage")]


@pytest.fixture
def group(fake: FakeTelegram) -> int:
    fake.add_chat(GROUP, "supergroup", "Traders")
    fake.can_delete[GROUP] = True  # the bot is an administrator allowed to delete messages
    fake.set_member(GROUP, ANN["id"], "administrator")
    fake.set_member(GROUP, BOB["id"], "member")
    return GROUP


# --- the agent token never reaches a log line, at DEBUG for every logger -------------------------


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    names = ("httpx", "httpcore", "telegram", "telegram.ext", "apscheduler", "uvicorn", "redis")
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names})
    buffer = io.StringIO()
    yield buffer
    for handler in root.handlers:
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


async def test_agent_tokens_never_reach_debug_logs_in_private_in_a_group_or_after_a_restart(
    captured: io.StringIO,
    fake: FakeTelegram,
    group: int,
    settings: RelaySettings,
    redis: Redis,
    keys: Keys,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
) -> None:
    redactor = configure("DEBUG", stream=captured)
    for name in ("httpx", "httpcore", "telegram", "telegram.ext", "apscheduler", "uvicorn", "redis"):
        logging.getLogger(name).setLevel(logging.DEBUG)  # every library logger open, as with LOG_LEVEL=DEBUG
    private, in_group, edited, restarted = (world.create_agent(n) for n in ("p", "g", "e", "r"))
    # Linked by an earlier run: this process never sees its /link, only the stored record.
    await Relay(settings, redis, http, box, [], redactor=Redactor()).store.link(
        "telegram:7", restarted.id, "r", restarted.token, "consume"
    )
    redactor = configure("DEBUG", stream=captured)
    adapter = TelegramAdapter(
        telegram_settings(fake), RedisAdapterServices(redis, keys, "telegram"), redactor, limiter=fast_limiter()
    )
    relay = Relay(settings, redis, http, box, [adapter], redactor=redactor, rng=random.Random(3))
    async with relay:
        fake.user_says(42, ANN, f"/link {private.token}")
        await fake.wait_for("sendMessage", sent_to(42, "Linked"), 10)
        fake.user_says(group, BOB, f"/link {in_group.token} observe")
        await fake.wait_for("sendMessage", sent_to(group, "private chat"), 10)
        said = fake.user_says(group, BOB, "hello all")
        fake.user_edits(group, said["message_id"], f"/link {edited.token}")
        await fake.wait_for("deleteMessage", lambda c: int(c.params["message_id"]) == said["message_id"], 10)
        await relay.poller.poll(restarted.id)
        logging.getLogger("diagnostics").debug("stored record %s", restarted.token)
    output = captured.getvalue()
    assert "getUpdates" in output and "/link ***" in output  # the library did log the updates, masked
    for agent in (private, in_group, edited, restarted):
        assert output.count(agent.token) == 0, agent.name


# --- edited messages and a mistyped /link --------------------------------------------------------


async def test_an_edited_link_through_the_core_is_deleted_and_other_edits_are_ignored(
    fake: FakeTelegram, group: int, make_adapter: AdapterFactory
) -> None:
    core = Recorder()
    core.replies["link"] = Reply.text("refused", delete_command=True)
    await make_adapter(recorder=core)
    said = fake.user_says(group, BOB, "hi")
    fake.user_edits(group, said["message_id"], "/send 12 hello")  # not re-run on edit
    fake.user_edits(group, said["message_id"], "/link AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    await fake.wait_for("deleteMessage")
    assert deleted(fake) == [(group, said["message_id"])]
    assert [c.name for c in core.commands] == ["link"]


async def test_a_mistyped_link_mode_in_private_still_deletes_the_token_message(
    fake: FakeTelegram,
    settings: RelaySettings,
    redis: Redis,
    keys: Keys,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
) -> None:
    agent = world.create_agent("ann")
    adapter = TelegramAdapter(
        telegram_settings(fake),
        RedisAdapterServices(redis, keys, "telegram"),
        configure("INFO"),
        limiter=fast_limiter(),
    )
    async with Relay(settings, redis, http, box, [adapter], redactor=configure("INFO")):
        said = fake.user_says(42, ANN, f"/link {agent.token} consme")
        await fake.wait_for("sendMessage", sent_to(42, "Usage: /link"), 10)
        assert deleted(fake) == [(42, said["message_id"])]


# --- signed buttons --------------------------------------------------------------------------------

NOTIFICATION = Reply(
    (
        Message(
            title="New reply",
            body="bob replied",
            actions=(
                Action("Show replies", "replies", {"signal_id": "5"}),
                Action("Reply", "reply", {"signal_id": "5"}, kind="prompt", text_param="text"),
            ),
        ),
    )
)
FEED_PAGE = Reply(
    (
        Message(
            title="Feed: btc",
            body="1. BTC",
            actions=(Action("Next", "feed", {"keyword": "btc", "page": "2"}, replace=True),),
        ),
    )
)


async def _bot_message(fake: FakeTelegram, core: Recorder, chat_id: int, user: dict[str, object], cmd: str) -> Call:
    before = len(fake.sent(chat_id))
    fake.user_says(chat_id, user, f"/{cmd}")
    await fake.wait_for("sendMessage", lambda c: len(fake.sent(chat_id)) > before)
    return fake.sent(chat_id)[-1]


async def test_a_forged_or_copied_button_from_a_plain_group_member_is_refused(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    core.replies["status"] = NOTIFICATION
    core.replies["feed"] = FEED_PAGE
    note = await _bot_message(fake, core, group, ANN, "status")
    page = await _bot_message(fake, core, group, ANN, "feed")
    next_data = page.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    attempts = [
        (note.result["message_id"], "e|feed||btc"),  # the unsigned "replace" flag of the old format
        (note.result["message_id"], "e|feed||btc|x" + "A" * 11),  # a made-up signature
        (note.result["message_id"], next_data),  # a real feed page's button pressed on a notification
    ]
    for message_id, data in attempts:
        fake.press(group, message_id, data, BOB)
    await fake.wait_for("answerCallbackQuery", lambda c: len(fake.calls_to("answerCallbackQuery")) >= 3)
    answers = fake.calls_to("answerCallbackQuery")
    assert all("expired" in a.params.get("text", "") for a in answers)
    assert fake.calls_to("editMessageText", status=None) == []
    assert [c.name for c in core.commands] == ["status", "feed"]
    assert fake.messages[(group, note.result["message_id"])]["text"].startswith("New reply")


async def test_a_button_signed_for_another_chat_is_refused_and_the_real_one_still_pages(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    core.replies["feed"] = FEED_PAGE
    mine = await _bot_message(fake, core, 42, ANN, "feed")
    theirs = await _bot_message(fake, core, group, ANN, "feed")
    foreign = mine.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    # Bob cannot make Telegram show another chat's data on this message; the fake lets him try.
    fake.messages[(group, theirs.result["message_id"])]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] = (
        foreign
    )
    fake.press(group, theirs.result["message_id"], foreign, BOB)
    refused = await fake.wait_for("answerCallbackQuery")
    assert "expired" in refused.params.get("text", "")
    good = mine.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    fake.press(42, mine.result["message_id"], good, ANN)
    await fake.wait_for("editMessageText", status=None)  # the same page again: "not modified" is fine
    assert [c.name for c in core.commands] == ["feed", "feed", "feed"]


# --- a Reply prompt belongs to whoever pressed Reply ------------------------------------------


async def test_only_the_presser_can_answer_a_reply_prompt(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder, group: int
) -> None:
    core.replies["status"] = NOTIFICATION
    note = await _bot_message(fake, core, group, ANN, "status")
    reply_data = note.params["reply_markup"]["inline_keyboard"][0][1]["callback_data"]
    fake.press(group, note.result["message_id"], reply_data, ANN)
    prompt = await fake.wait_for("sendMessage", lambda c: "force_reply" in (c.params.get("reply_markup") or {}))
    fake.user_says(group, BOB, "bob's words", reply_to=prompt.result["message_id"])
    fake.user_says(group, ANN, "ann's words", reply_to=prompt.result["message_id"])
    cmd = await core.command(1)
    assert (cmd.name, cmd.user.user_id, cmd.args["text"]) == ("reply", "42", "ann's words")
    await asyncio.sleep(0)
    assert [c.name for c in core.commands] == ["status", "reply"]


# --- channels ---------------------------------------------------------------------------------------


async def test_commands_posted_in_a_channel_are_received_and_answered_there(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    fake.add_chat(CHANNEL, "channel", "Signals")
    fake.channel_posts(CHANNEL, "/subscribe feed btc")
    cmd = await core.command()
    assert (cmd.name, cmd.chat.chat_id, cmd.is_private) == ("subscribe", str(CHANNEL), False)
    assert cmd.user.is_chat_admin and cmd.user.user_id == str(CHANNEL)
    await fake.wait_for("sendMessage", sent_to(CHANNEL, "ok subscribe"))


async def test_a_feed_watch_made_in_a_channel_delivers_there(
    fake: FakeTelegram,
    settings: RelaySettings,
    redis: Redis,
    keys: Keys,
    http: httpx.AsyncClient,
    box: TokenBox,
    world: World,
) -> None:
    fake.add_chat(CHANNEL, "channel", "Signals")
    redactor = configure("INFO")
    adapter = TelegramAdapter(
        telegram_settings(fake), RedisAdapterServices(redis, keys, "telegram"), redactor, limiter=fast_limiter()
    )
    relay = Relay(settings, redis, http, box, [adapter], redactor=redactor)
    async with relay:
        fake.channel_posts(CHANNEL, "/subscribe feed btc")
        await fake.wait_for("sendMessage", sent_to(CHANNEL, "Watching the feed"), 10)
        author = world.create_agent("trader")
        world.create_signal(author.id, "strategy", "crypto", "BTC grid", "buy low", "BTC")
        for sub in await relay.store.watches():
            await relay.watcher.check(sub)
        await fake.wait_for("sendMessage", sent_to(CHANNEL, "BTC grid"), 10)


# --- webhook bodies -----------------------------------------------------------------------------------


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_webhook_bodies_are_capped_and_anything_unparseable_is_a_400(
    fake: FakeTelegram, make_adapter: AdapterFactory, core: Recorder, unused_port: int
) -> None:
    fake.webhook_origin = f"http://127.0.0.1:{unused_port}"  # the TLS proxy in front of $PORT
    await make_adapter(webhook_url="https://relay.example/hook", webhook_secret="s3cret-Value_1", port=unused_port)
    url = f"http://127.0.0.1:{unused_port}/hook"
    secret = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Value_1"}

    async def chunked(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 65536):
            yield b" " * 65536

    # A declared 10 MB body is refused from its headers: the answer comes before any body is sent.
    reader, writer = await asyncio.open_connection("127.0.0.1", unused_port)
    writer.write(
        b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Telegram-Bot-Api-Secret-Token: s3cret-Value_1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
    )
    try:
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert status_line.split()[1] == b"413"
    async with httpx.AsyncClient() as client:
        streamed = await client.post(url, content=chunked(4 << 20), headers=secret)  # no Content-Length
        nested = await client.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=secret)
        nested_obj = await client.post(url, content=b'{"a":' * 50_000 + b"1" + b"}" * 50_000, headers=secret)
        garbage = await client.post(url, content=b"\xff\xfe not json", headers=secret)
        a_list = await client.post(url, content=b"[1, 2]", headers=secret)
    assert streamed.status_code == 413
    assert [r.status_code for r in (nested, nested_obj, garbage, a_list)] == [400, 400, 400, 400]
    fake.user_says(42, ANN, "/status")  # and the endpoint still works
    assert (await core.command()).name == "status"
