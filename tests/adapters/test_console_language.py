"""The terminal chat speaks the terminal's language (LC_ALL, LC_MESSAGES or LANG, read by the
composition root): the core answers in it and the console's own lines are in it too."""

from __future__ import annotations

import asyncio
import io
import random

import httpx
import pytest
from redis.asyncio import Redis

from adapters.console import ConsoleAdapter
from adapters.main import terminal_locale
from relay.app import Relay
from relay.config import RelaySettings
from relay.logs import Redactor
from relay.tokens import TokenBox


async def test_a_chinese_terminal_gets_chinese_and_an_english_one_english(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox
) -> None:
    for locale, help_title, hint in (
        ("zh_CN.UTF-8", "命令", "命令以 / 开头"),
        ("en_US.UTF-8", "Commands", "Commands start with /"),
    ):
        out = io.StringIO()
        console = ConsoleAdapter(asyncio.StreamReader(), out, chat_id=locale, locale=locale)
        relay = Relay(settings, redis, http, box, [console], redactor=Redactor(), rng=random.Random(1))
        await console.start((), relay.router.dispatch, relay.on_chat_change)
        await console.run_line("/help")
        await console.run_line("hello")
        assert help_title in out.getvalue() and hint in out.getvalue(), out.getvalue()[:300]
        await console.stop()


def test_the_terminal_locale_follows_posix_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert terminal_locale() == ""
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert terminal_locale() == "en_US.UTF-8"
    monkeypatch.setenv("LC_MESSAGES", "zh_CN.UTF-8")
    assert terminal_locale() == "zh_CN.UTF-8"
    monkeypatch.setenv("LC_ALL", "C")
    assert terminal_locale() == "C"
