"""Images through the real discord.py to the fake Discord: a multipart upload whose file the
embed shows through `attachment://`, for channel sends and for slash-command answers, and the
fake's upload limits (10 MiB per file by default, 413 code 40005 beyond)."""

from __future__ import annotations

import pytest

from adapters.discord import DiscordAdapter
from platform_fakes import uploads
from platform_fakes.discord_api import FakeDiscord, StoredMessage
from relay.errors import Undeliverable
from relay.models import ChatRef, Image, Message, MessageField, Reply
from tests.adapters import test_discord as base
from tests.adapters.conftest import Recorder
from tests.adapters.test_telegram_images import png

# The Discord fixtures of test_discord.py: a started adapter on a fake with one guild.
dfake, make, adapter = base.dfake, base.make, base.adapter
CHANNEL, GUILD, answered = base.CHANNEL, base.GUILD, base.answered

CHART = Image(png(), "price-NVDA.png")


def shown_image(message: StoredMessage) -> bytes:
    """The bytes a reader sees in the message's first embed: its image URL must name an upload."""
    embed = message.payload["embeds"][0]
    name = embed["image"]["url"].removeprefix("attachment://")
    (attachment,) = [a for a in message.payload["attachments"] if a.get("filename") == name]
    data: bytes = attachment["data"]
    return data


async def test_a_picture_is_uploaded_and_shown_in_the_embed(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    message = Message(title="NVDA price (us-stock)", fields=(MessageField("Last", "$123.45"),), image=CHART)
    await adapter.send(ChatRef("discord", str(CHANNEL)), message, key="img1")
    [stored] = dfake.channel_messages(CHANNEL)
    assert shown_image(stored) == CHART.data
    assert "NVDA price" in stored.text and "$123.45" in stored.text
    assert stored.to_json()["attachments"][0]["filename"] == "price-NVDA.png"
    assert "data" not in stored.to_json()["attachments"][0], "the wire shape carries no bytes"


async def test_a_text_message_is_still_sent_without_an_upload(adapter: DiscordAdapter, dfake: FakeDiscord) -> None:
    await adapter.send(ChatRef("discord", str(CHANNEL)), Message(title="plain"), key="t1")
    [stored] = dfake.channel_messages(CHANNEL)
    assert not stored.payload.get("attachments") and "image" not in stored.payload["embeds"][0]


async def test_a_slash_command_answer_carries_the_picture(
    adapter: DiscordAdapter, dfake: FakeDiscord, core: Recorder
) -> None:
    core.replies["chart"] = Reply((Message(title="Profit: Alpha (#7)", image=CHART),))
    done = await answered(
        dfake, await dfake.interaction("chart", {"what": "profit"}, channel_id=CHANNEL, guild_id=GUILD)
    )
    [shown] = done.messages()
    assert shown_image(shown) == CHART.data and not shown.ephemeral


@pytest.mark.parametrize("limit", [uploads.DISCORD_FILE_MAX, uploads.DISCORD_FILE_MAX_BOOSTED])
async def test_a_file_over_the_upload_limit_is_refused_with_413(
    make: base.Make, dfake: FakeDiscord, limit: int
) -> None:
    # Tens of MB through multipart and back in one process: a loaded machine can take longer than
    # the default 5 s per send, which would make it "uncertain" instead of refused.
    adapter = await make(send_timeout=60.0)
    await dfake.wait_for(lambda: dfake.active_session is not None and dfake.commands)
    dfake.upload_limit = limit
    fits = Image(png(padding=limit - 1000), "fits.png")
    await adapter.send(ChatRef("discord", str(CHANNEL)), Message(title="fits", image=fits), key=f"ok{limit}")
    too_big = Image(png(padding=limit), "big.png")
    with pytest.raises(Undeliverable, match="413"):
        await adapter.send(ChatRef("discord", str(CHANNEL)), Message(title="big", image=too_big), key=f"no{limit}")
    assert [m.payload["embeds"][0]["title"] for m in dfake.channel_messages(CHANNEL)] == ["fits"]
