"""The console cannot show a picture: it prints the caption and where it saved the file."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from adapters.console import ConsoleAdapter
from relay.models import ChatRef, Image, Message, MessageField
from tests.adapters.test_telegram_images import png


async def test_a_picture_is_saved_and_its_path_printed_under_the_caption(tmp_path: Path) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(asyncio.StreamReader(), out, image_dir=tmp_path)
    data = png()
    message = Message(
        title="Profit: alpha (#7)", fields=(MessageField("Profit now", "+$12.00"),), image=Image(data, "../p r.png")
    )
    await console.send(ChatRef("console", "local"), message, key="k")
    await console.send(ChatRef("console", "local"), message, key="k2")
    text = out.getvalue()
    assert "== Profit: alpha (#7) ==" in text and "Profit now: +$12.00" in text
    paths = [line.split("[image: ", 1)[1].rstrip("]") for line in text.splitlines() if "[image: " in line]
    assert len(paths) == 2 and paths[0] != paths[1], "each picture gets its own file"
    for shown in paths:
        saved = Path(shown)
        assert saved.parent == tmp_path, "a hostile file name cannot leave the image directory"
        assert await asyncio.to_thread(saved.read_bytes) == data
