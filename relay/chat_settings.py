"""Per-chat preferences that are not subscriptions: the chat's time zone and language.

Anything that speaks of a chat's local time (the daily brief, later quiet hours) reads it here.
Names are IANA zones ("Europe/Berlin"), checked with `zoneinfo`; the default is UTC.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from redis.asyncio import Redis

from relay.errors import BadValue
from relay.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, language_of
from relay.keys import Keys
from relay.models import ChatRef, Command

DEFAULT_TIMEZONE = "UTC"
_MAX_NAME = 64


def parse_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA name, matched case-insensitively ("europe/berlin" works); raises
    ValueError with a short reason otherwise. Paths and odd characters never reach zoneinfo."""
    name = name.strip()
    if not name or len(name) > _MAX_NAME or not all(c.isalnum() or c in "/_+-" for c in name):
        raise BadValue(N_("not an IANA time zone name like Europe/Berlin or America/New_York"))
    if name.upper() == "UTC":
        return ZoneInfo("UTC")
    canonical = _by_folded().get(name.casefold())
    if canonical is None:
        raise BadValue(N_("unknown time zone {name}; use an IANA name like Europe/Berlin"), name=name)
    try:
        return ZoneInfo(canonical)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadValue(N_("unknown time zone {name}; use an IANA name like Europe/Berlin"), name=name) from None


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

    # --- language -----------------------------------------------------------------------------
    # A chat's language: its `/language` setting when one was made (in a group it wins over each
    # member's own language), else the language of whoever last sent a command there (in a
    # private chat, the user), else English. Queued notifications have no sender, so the one last
    # seen is remembered ("seen_lang").

    async def language_for(self, command: Command) -> str:
        """The language to answer this command in; remembers the sender's for later notifications."""
        key = self._k.chat_settings(command.chat.key)
        chosen, seen = (_opt(v) for v in await self._r.hmget(key, ["lang", "seen_lang"]))
        spoken = language_of(command.locale)
        if spoken is not None and spoken != seen:
            await self._r.hset(key, "seen_lang", spoken)
        if chosen in LANGUAGES:
            return chosen
        return spoken or (seen if seen in LANGUAGES else DEFAULT_LANGUAGE)

    async def language(self, chat: ChatRef) -> str:
        """The language for a message nobody asked for (notifications, briefs, notices)."""
        chosen, seen = (_opt(v) for v in await self._r.hmget(self._k.chat_settings(chat.key), ["lang", "seen_lang"]))
        for lang in (chosen, seen):
            if lang in LANGUAGES:
                return lang
        return DEFAULT_LANGUAGE

    async def chosen_language(self, chat: ChatRef) -> str | None:
        """The `/language` setting, or None when the chat follows its users."""
        raw = _opt(await self._r.hget(self._k.chat_settings(chat.key), "lang"))
        return raw if raw in LANGUAGES else None

    async def set_language(self, chat: ChatRef, language: str | None) -> None:
        """Sets the chat's language, or with None lets it follow its users again."""
        key = self._k.chat_settings(chat.key)
        if language is None:
            await self._r.hdel(key, "lang")
        elif language in LANGUAGES:
            await self._r.hset(key, "lang", language)
        else:
            raise ValueError(f"unsupported language {language}")

    async def drop(self, chat: ChatRef) -> None:
        await self._r.delete(self._k.chat_settings(chat.key))

    async def move(self, old: ChatRef, new: ChatRef) -> None:
        raw = await self._r.hgetall(self._k.chat_settings(old.key))
        settings = {_text(k): _text(v) for k, v in raw.items()}
        if settings:
            await self._r.hset(self._k.chat_settings(new.key), mapping=settings)  # type: ignore[arg-type]
            await self._r.delete(self._k.chat_settings(old.key))


def _opt(value: bytes | str | None) -> str | None:
    return None if value is None else _text(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
