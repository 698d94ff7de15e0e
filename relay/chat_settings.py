"""Per-chat preferences that are not subscriptions: for now the chat's time zone.

Anything that speaks of a chat's local time (the daily brief, later quiet hours) reads it here.
Names are IANA zones ("Europe/Berlin"), checked with `zoneinfo`; the default is UTC.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from redis.asyncio import Redis

from relay.keys import Keys
from relay.models import ChatRef

DEFAULT_TIMEZONE = "UTC"
_MAX_NAME = 64


def parse_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA name, matched case-insensitively ("europe/berlin" works); raises
    ValueError with a short reason otherwise. Paths and odd characters never reach zoneinfo."""
    name = name.strip()
    if not name or len(name) > _MAX_NAME or not all(c.isalnum() or c in "/_+-" for c in name):
        raise ValueError("not an IANA time zone name like Europe/Berlin or America/New_York")
    if name.upper() == "UTC":
        return ZoneInfo("UTC")
    canonical = _by_folded().get(name.casefold())
    if canonical is None:
        raise ValueError(f"unknown time zone {name}; use an IANA name like Europe/Berlin")
    try:
        return ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name}") from None


_FOLDED: dict[str, str] = {}


def _by_folded() -> dict[str, str]:
    # Built once: available_timezones() walks the tz database on every call.
    if not _FOLDED:
        _FOLDED.update({z.casefold(): z for z in available_timezones()})
    return _FOLDED


class ChatSettings:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys

    async def timezone(self, chat: ChatRef) -> ZoneInfo:
        raw = await self._r.hget(self._k.chat_settings(chat.key), "tz")
        if raw:
            try:
                return parse_timezone(raw.decode() if isinstance(raw, bytes) else str(raw))
            except ValueError:
                pass  # a zone removed from the tz database since it was set: fall back to UTC
        return ZoneInfo(DEFAULT_TIMEZONE)

    async def set_timezone(self, chat: ChatRef, name: str) -> ZoneInfo:
        zone = parse_timezone(name)
        await self._r.hset(self._k.chat_settings(chat.key), "tz", zone.key)
        return zone

    async def drop(self, chat: ChatRef) -> None:
        await self._r.delete(self._k.chat_settings(chat.key))

    async def move(self, old: ChatRef, new: ChatRef) -> None:
        raw = await self._r.hgetall(self._k.chat_settings(old.key))
        settings = {_text(k): _text(v) for k, v in raw.items()}
        if settings:
            await self._r.hset(self._k.chat_settings(new.key), mapping=settings)  # type: ignore[arg-type]
            await self._r.delete(self._k.chat_settings(old.key))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
