"""The discord.py `Client` the adapter drives: forwards the few gateway events the relay needs.

A subclass rather than `@client.event`, so handlers are plain injected callables and the
IDENTIFY hook can apply the shared backoff. Must not decide anything: it only forwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord


@dataclass(frozen=True, slots=True)
class ClientHooks:
    before_identify: Callable[[bool], Awaitable[None]]
    on_ready: Callable[[], None]
    on_interaction: Callable[[discord.Interaction], Awaitable[None]]
    on_guild_remove: Callable[[discord.Guild], Awaitable[None]]
    on_guild_join: Callable[[discord.Guild], Awaitable[None]]
    on_channel_gone: Callable[[int, str], Awaitable[None]]


def intents() -> discord.Intents:
    # GUILDS brings GUILD_CREATE/DELETE and CHANNEL/THREAD deletes; nothing privileged is needed,
    # since commands arrive as interactions rather than message content.
    return discord.Intents(guilds=True)


class RelayClient(discord.Client):
    def __init__(self, hooks: ClientHooks, *, http_trace: aiohttp.TraceConfig, **options: Any) -> None:
        super().__init__(
            intents=intents(),
            http_trace=http_trace,
            # Rate-limit waits longer than this raise discord.RateLimited (-> RetryLater) instead
            # of holding a sender for minutes. 30 s is the smallest value discord.py accepts.
            max_ratelimit_timeout=30.0,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            **options,
        )
        # Not `_hooks`: discord.Client keeps its own private hook table under that name (the one
        # its gateway reads for before_identify); the relay reaches discord.py only through the
        # public overridable methods below.
        self._relay = hooks

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self._relay.before_identify(initial)

    async def on_connect(self) -> None:
        # Dispatched when READY is parsed; on_ready would wait for every guild first.
        self._relay.on_ready()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self._relay.on_interaction(interaction)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # discord.py dispatches this only when the bot left or was removed, not for outages.
        await self._relay.on_guild_remove(guild)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._relay.on_guild_join(guild)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self._relay.on_channel_gone(channel.id, "channel deleted")

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        await self._relay.on_channel_gone(payload.thread_id, "thread deleted")
