"""/timezone and `/subscribe intel daily` through the core's router, and the zone parsing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from relay.app import Relay
from relay.chat_settings import ChatSettings, parse_timezone
from relay.keys import Keys
from relay.models import ChatRef, UserRef
from tests.conftest import Chat


def test_iana_names_are_accepted_in_any_case_and_nothing_else_is() -> None:
    assert parse_timezone("Europe/Berlin").key == "Europe/Berlin"
    assert parse_timezone("america/new_york").key == "America/New_York"
    assert parse_timezone("utc").key == "UTC"
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe/Berlin\x00", "", "x" * 65, "CET;rm"):
        with pytest.raises(ValueError):
            parse_timezone(bad)


async def test_a_chat_is_utc_until_set_and_settings_follow_a_moved_chat(redis: Redis, keys: Keys) -> None:
    settings = ChatSettings(redis, keys)
    old, new = ChatRef("telegram", "-1"), ChatRef("telegram", "-1001")
    assert (await settings.timezone(old)).key == "UTC"
    await settings.set_timezone(old, "asia/tokyo")
    assert (await settings.timezone(old)).key == "Asia/Tokyo"
    await settings.move(old, new)
    assert (await settings.timezone(new)).key == "Asia/Tokyo" and (await settings.timezone(old)).key == "UTC"
    await settings.drop(new)
    assert (await settings.timezone(new)).key == "UTC"


async def test_timezone_command_shows_sets_and_refuses_unknown_zones(dm: Chat) -> None:
    assert "time zone is UTC" in await dm.text("timezone")
    assert "now Europe/Berlin" in await dm.text("timezone", zone="europe/berlin")
    assert "time zone is Europe/Berlin" in await dm.text("timezone")
    answer = await dm.text("timezone", zone="Narnia/Cair_Paravel")
    assert answer.startswith("Usage: /timezone") and "unknown time zone" in answer
    assert "time zone is Europe/Berlin" in await dm.text("timezone"), "a bad name changes nothing"


async def test_in_a_group_only_admins_change_the_time_zone(relay: Relay, adapter) -> None:  # type: ignore[no-untyped-def]
    group = adapter.chat("-55")
    member = Chat(relay, group, UserRef("rec", "7", "member"), private=False)
    admin = Chat(relay, group, UserRef("rec", "8", "admin", is_chat_admin=True), private=False)
    assert "Only chat administrators" in await member.text("timezone", zone="Asia/Tokyo")
    assert "now Asia/Tokyo" in await admin.text("timezone", zone="Asia/Tokyo")


async def test_daily_brief_subscription_lists_and_unsubscribes_like_the_others(dm: Chat, relay: Relay) -> None:
    await dm.text("timezone", zone="Europe/Berlin")
    answer = await dm.text("subscribe", what="intel daily 07:45 macro news")
    assert "daily market brief (macro, news) at 07:45 Europe/Berlin" in answer
    listed = await dm.text("subscriptions")
    brief = await relay.briefs.of_chat(dm.chat)
    assert brief is not None and f"#{brief.sub_id} daily intel brief at 07:45 (macro, news) Europe/Berlin" in listed
    assert "Removed the daily brief" in await dm.text("unsubscribe", id=str(brief.sub_id))
    assert await relay.briefs.of_chat(dm.chat) is None


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        ("intel", "intel daily <HH:MM>"),
        ("intel weekly 08:00", "intel daily <HH:MM>"),
        ("intel daily 8am", "HH:MM"),
        ("intel daily 25:00", "HH:MM"),
        ("intel daily 08:00 weather", "unknown section weather"),
    ],
)
async def test_daily_brief_bad_input_gets_one_usage_line_and_stores_nothing(
    dm: Chat, relay: Relay, what: str, reason: str
) -> None:
    answer = await dm.text("subscribe", what=what)
    assert answer.startswith("Usage: /subscribe") and reason in answer and "\n" not in answer
    assert await relay.briefs.all() == []
