"""`/admin` for the operators named in OWNER_IDS, in a private chat with the bot.

Anyone else, and an owner in a group, gets exactly the reply an unknown command gets: the
command's existence is not revealed. OWNER_IDS lists `platform:user_id` pairs, the same form as
`UserRef.key`, so an id on one platform never grants anything on another.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from relay.deadletters import DeadLetters
from relay.models import Command, Message, MessageField, Reply

log = logging.getLogger(__name__)

SHOWN = 10  # dead letters listed in a chat (the CLI lists them all)


def parse_owner_ids(text: str) -> frozenset[str]:
    """'telegram:1, discord:2' -> {'telegram:1', 'discord:2'}; entries without a platform are
    ignored (an id alone could match a different person on another platform)."""
    out = set()
    for part in text.replace(" ", "").split(","):
        platform, _, user = part.partition(":")
        if platform and user:
            out.add(f"{platform.lower()}:{user}")
    return frozenset(out)


def normalize_chat(text: str) -> str:
    """'telegram:42' (as an operator types it) -> 'telegram:42:' (`ChatRef.key`, no thread)."""
    return text + ":" if text.count(":") == 1 else text


class Admin:
    def __init__(
        self,
        owners: frozenset[str],
        dead_letters: DeadLetters,
        stats: Callable[[], Awaitable[dict[str, Any]]],
        on_replayed: Callable[[], None] = lambda: None,
    ) -> None:
        self._owners = owners
        self._dead = dead_letters
        self._stats = stats
        self._on_replayed = on_replayed

    def allowed(self, command: Command) -> bool:
        return command.is_private and command.user.key in self._owners

    async def handle(self, command: Command) -> Reply:
        words = command.args.get("what", "").split()
        verb = words[0].lower() if words else ""
        log.info("admin: %s by %s", verb or "(none)", command.user.key)
        if verb == "stats":
            stats = await self._stats()
            counters = stats.pop("counters", {})
            fields = [MessageField(k.replace("_", " "), str(v)) for k, v in stats.items()]
            fields += [MessageField(k, str(v)) for k, v in sorted(counters.items())]
            return Reply((Message(title="Relay stats", fields=tuple(fields)),), private=True)
        if verb == "deadletters":
            letters = await self._dead.list()
            lines = [f"{d.chat} {d.cause[:120]} — {d.title[:80]}" for d in letters[-SHOWN:]]
            body = "\n".join(lines) or "None."
            footer = f"{len(letters)} in all; the newest {min(SHOWN, len(letters))} shown. /admin replay [chat|all]"
            return Reply((Message(title="Dead letters", body=body, footer=footer),), private=True)
        if verb == "replay" and len(words) == 2:
            chat = None if words[1].lower() == "all" else normalize_chat(words[1])
            done = await self._dead.replay(chat)
            if done.queued:
                self._on_replayed()
            text = f"Replayed {done.queued} dead letter(s) into their chats' queues"
            if done.skipped:
                text += f"; {done.skipped} dropped because they were delivered since"
            return Reply.text(text + ".", private=True)
        return Reply.text("Usage: /admin stats | /admin deadletters | /admin replay <chat|all>", private=True)
