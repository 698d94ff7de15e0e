"""How often one user may run commands, shared by every relay process through Redis.

Each command costs upstream calls (/link checks the token, /feed searches) or Redis writes, and a
chat user is a stranger. One general budget covers every command; /link and /feed also spend a
stricter one of their own. A refused command reaches nothing: no handler, no upstream call. The
user hears "slow down" at most once a minute; further refusals in that minute are silent (a
refused /link is still deleted, since the message holds a token).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from relay.i18n import ENGLISH, Translator
from relay.keys import Keys
from relay.models import Command, Reply
from relay.ratelimit import GCRA_SCRIPT

log = logging.getLogger(__name__)

NOTICE_EVERY = 60  # seconds between two "slow down" replies to one user


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` commands per `seconds`, in a burst or spread out."""

    count: int
    seconds: float

    @property
    def interval_ms(self) -> float:
        return self.seconds * 1000.0 / self.count

    @property
    def tolerance_ms(self) -> float:
        return self.interval_ms * (self.count - 1)


GENERAL = Rate(20, 60)
STRICT: Mapping[str, Rate] = {"link": Rate(5, 600), "feed": Rate(10, 60)}


class CommandLimiter:
    def __init__(
        self, redis: Redis, keys: Keys, *, general: Rate = GENERAL, strict: Mapping[str, Rate] = STRICT
    ) -> None:
        self._r = redis
        self._k = keys
        self._general = general
        self._strict = dict(strict)
        self._gcra = redis.register_script(GCRA_SCRIPT)

    async def refusal(self, command: Command, t: Translator = ENGLISH, *, deletes: bool = False) -> Reply | None:
        """None when the command may run; otherwise the reply to give instead (possibly empty).
        `deletes`: the command's message holds a secret and is deleted even when refused."""
        user = command.user.key
        wait = 0.0
        rate = self._strict.get(command.name)
        if rate is not None:
            # The strict budget first: a refused /link must not also spend the general budget.
            wait = await self._take(self._k.command_rate(user, command.name), rate)
        if wait <= 0:
            wait = await self._take(self._k.command_rate(user, "all"), self._general)
        if wait <= 0:
            return None
        log.info("commands: rate limited user=%s command=%s wait=%.0fs", user, command.name, wait)
        if await self._r.set(self._k.command_slow_notice(user), 1, nx=True, ex=NOTICE_EVERY):
            text = t.gettext(
                "Slow down: too many commands. Try /{name} again in {seconds} s.",
                name=command.name,
                seconds=max(1, round(wait)),
            )
            return Reply.text(text, private=True, delete_command=deletes)
        return Reply((), private=True, delete_command=deletes)

    async def _take(self, key: str, rate: Rate) -> float:
        wait_ms = await self._gcra(keys=[key], args=[rate.interval_ms, rate.tolerance_ms])
        return float(wait_ms) / 1000.0
