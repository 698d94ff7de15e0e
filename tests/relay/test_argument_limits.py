"""Oversized arguments get the command's usage line, never Python's own conversion messages and
never a silently shortened value."""

from __future__ import annotations

import pytest

from tests.conftest import Chat


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("replies", {"signal_id": "9" * 10_000}),
        ("follow", {"agent_id": "9" * 10_000}),
        ("unsubscribe", {"id": "9" * 10_000}),
        ("subscribe", {"what": "trader " + "9" * 10_000}),
        ("send", {"agent_id": "9" * 5_000, "text": "hi"}),
    ],
)
async def test_ten_thousand_digit_ids_get_the_usage_line(dm: Chat, name: str, args: dict[str, str]) -> None:
    text = await dm.text(name, **args)
    assert text.startswith(f"Usage: /{name}"), text
    assert "out of range" in text
    assert "digits" not in text and "int_max_str_digits" not in text


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("feed", {"keyword": "k" * 101}),
        ("discussions", {"keyword": "k" * 101}),
        ("subscribe", {"what": "feed " + "k" * 101}),
    ],
)
async def test_keywords_over_the_limit_get_the_usage_line(dm: Chat, name: str, args: dict[str, str]) -> None:
    text = await dm.text(name, **args)
    assert text.startswith(f"Usage: /{name}"), text
    assert "keyword is longer than 100 characters" in text


async def test_a_keyword_at_the_limit_is_searched_as_typed(dm: Chat) -> None:
    text = await dm.text("feed", keyword="k" * 100)
    assert not text.startswith("Usage:"), text
