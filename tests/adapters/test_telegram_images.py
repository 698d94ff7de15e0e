"""Images through the real PTB to the fake Bot API: sendPhoto as a multipart upload, the text as
its caption within Telegram's 1024 characters, the rest after it, and the fake's size rules."""

from __future__ import annotations

import struct
import zlib

import pytest
from telegram import InputFile
from telegram.error import BadRequest

from adapters.telegram import TelegramAdapter
from platform_fakes import uploads
from platform_fakes.telegram_api import Call, FakeTelegram, utf16_len, visible_text
from relay.errors import Undeliverable
from relay.models import Action, ChatRef, Image, Message, MessageField, Reply
from tests.adapters.conftest import Recorder

ANN = FakeTelegram.user(42, "Ann", "ann")


def png(width: int = 40, height: int = 20, padding: int = 0) -> bytes:
    """A real (tiny) PNG; `padding` bytes of an ancillary chunk make it as large as needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00" * width * 3 for _ in range(height))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw))
    if padding:
        body += chunk(b"tEXt", b"pad\x00" + b"x" * padding)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


CHART = Image(png(), "profit-7-30d.png")


@pytest.fixture(autouse=True)
def known_chats(fake: FakeTelegram) -> None:
    """The fake, like Telegram, answers "chat not found" for chats the bot never met."""
    for chat_id in (42, 43):
        fake.add_chat(chat_id)


def chat(chat_id: int) -> ChatRef:
    return ChatRef("telegram", str(chat_id))


def uploaded(call: Call) -> uploads.Upload:
    files: dict[str, uploads.Upload] = call.params["_files"]
    return files.get("photo") or files[str(call.params["photo"]).removeprefix("attach://")]


async def test_a_picture_goes_out_as_a_photo_with_the_text_as_caption_and_buttons(
    fake: FakeTelegram, adapter: TelegramAdapter
) -> None:
    message = Message(
        title="Profit: <Alpha> (#7)",
        fields=(MessageField("Profit now", "+$2,345.67 (+2.35%)"),),
        footer="2026-10-31 to 2026-11-30 UTC",
        actions=(Action("Refresh", "chart", {"what": "profit"}),),
        image=CHART,
    )
    await adapter.send(chat(42), message, key="img1")
    (call,) = fake.calls_to("sendPhoto")
    assert uploaded(call).data == CHART.data and uploaded(call).filename == "profit-7-30d.png"
    assert visible_text(call.params["caption"]).startswith("Profit: <Alpha> (#7)")
    assert "+$2,345.67 (+2.35%)" in visible_text(call.params["caption"])
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["text"] == "Refresh"
    assert not fake.sent(42), "a caption that fits needs no text message"
    stored = fake.messages[(42, call.result["message_id"])]
    assert stored["photo"][0]["width"] == 40 and "text" not in stored


async def test_text_longer_than_a_caption_follows_the_photo_and_keeps_the_buttons(
    fake: FakeTelegram, adapter: TelegramAdapter
) -> None:
    long_body = "\n".join(f"line {i}: " + "é" * 60 for i in range(40))  # ~2,800 characters
    message = Message(
        title="Positions", body=long_body, actions=(Action("Refresh", "chart", {"what": "positions"}),), image=CHART
    )
    await adapter.send(chat(42), message, key="img2")
    (photo,) = fake.calls_to("sendPhoto")
    assert visible_text(photo.params["caption"]) == "Positions" and "reply_markup" not in photo.params
    texts = fake.sent(42)
    assert texts and "".join(visible_text(c.params["text"]) for c in texts).replace("\n", "") == long_body.replace(
        "\n", ""
    )
    assert "reply_markup" in texts[-1].params
    # A resend of the same delivery (the core retries after a failure) does not repeat the photo.
    await adapter.send(chat(42), message, key="img2")
    assert len(fake.calls_to("sendPhoto")) == 1


async def test_a_command_reply_with_a_picture_is_a_photo_in_that_chat(
    fake: FakeTelegram, adapter: TelegramAdapter, core: Recorder
) -> None:
    core.replies["chart"] = Reply((Message(title="NVDA price (us-stock)", image=CHART),))
    fake.user_says(42, ANN, "/chart NVDA")
    call = await fake.wait_for("sendPhoto")
    assert int(call.params["chat_id"]) == 42 and uploaded(call).data == CHART.data


async def test_the_fake_refuses_what_telegram_refuses(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    bot = adapter._sender.bot
    with pytest.raises(BadRequest, match="caption is too long"):
        await bot.send_photo(42, InputFile(CHART.data, filename="a.png"), caption="x" * 1025)
    with pytest.raises(BadRequest, match=r"(?i)photo_invalid_dimensions"):
        await bot.send_photo(42, InputFile(png(2100, 100), filename="wide.png"))  # ratio 21 > 20
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(42, InputFile(b"GIF89a not a png", filename="x.png"))
    ok = await bot.send_photo(42, InputFile(CHART.data, filename="a.png"), caption="é" * 1024)
    assert ok.photo and utf16_len(ok.caption or "") == 1024


async def test_a_photo_over_10_mb_is_undeliverable_not_retried(fake: FakeTelegram, adapter: TelegramAdapter) -> None:
    big = Image(png(padding=uploads.TELEGRAM_PHOTO_MAX), "big.png")
    with pytest.raises(Undeliverable):
        await adapter.send(chat(42), Message(title="too big", image=big), key="img3")
    (refused,) = fake.calls_to("sendPhoto", status=400)
    assert refused.result is None and len(fake.calls_to("sendPhoto")) == 0
