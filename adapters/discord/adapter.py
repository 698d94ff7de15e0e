"""The Discord `ChatAdapter`: wires discord.py's Client, the command tree, the gateway lease and
the send path together.

discord.py never owns the loop: `login()` gives REST in every process, and `connect()` runs as a
task only in the process holding the gateway lease. Must not contain business rules; everything
the relay decides comes back from `dispatch` as a `Reply`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp
import discord
import yarl
from discord import app_commands

from adapters.discord.actions import ActionCodec, build_view
from adapters.discord.client import ClientHooks, RelayClient
from adapters.discord.commands import DescriptionTranslator, build_commands
from adapters.discord.embeds import RenderedPart, render
from adapters.discord.failures import NOT_CONNECTED_RETRY_S, delivery_error, is_cloudflare_ban
from adapters.discord.gateway import FATAL_CLOSE_CODES, GatewayHolder, GatewayTiming, IdentifyBackoff
from adapters.discord.guards import GlobalPacer, RequestGuard
from adapters.discord.interactions import NO_MENTIONS, InteractionHandler
from adapters.discord.logfilter import GATEWAY_LOGGER, ModalValuesFilter
from adapters.discord.settings import DEFAULT_GATEWAY, DiscordSettings
from relay.adapter import AdapterServices, ChatChange, Dispatch, OnChatChange, Suggest
from relay.errors import (
    ChatGone,
    ConfigError,
    PermissionMissing,
    RetryLater,
    SendUncertain,
    StoreUnavailable,
    Undeliverable,
)
from relay.i18n import N_, Catalogues, language_of
from relay.keys import (
    DISCORD_COMMANDS,
    DISCORD_GATEWAY,
    DISCORD_GUILD_CHANNELS,
    DISCORD_IDENTIFY,
    DISCORD_PERMISSION_NOTICES,
    DISCORD_UNCERTAIN,
)
from relay.logs import Redactor
from relay.models import ChatRef, CommandSpec, Message
from relay.signing import Signer

log = logging.getLogger(__name__)

NONCE_MAX = 25  # Discord's limit for a message nonce
# relay.app.Relay.stop gives each adapter 2 s: the gateway, the answers in flight and the close
# must all fit, or the close is cut off and the next process waits for the gateway lease.
STOP_BUDGET_S = 1.7
_DRAIN_MIN_S = 0.5  # kept for answers in flight while the gateway closes
_CLOSE_S = 0.2
_LOGIN_RETRY_CAP_S = 300.0
# Discord drops an enforce_nonce duplicate only "within the past few minutes" (resources/message.mdx
# #create-message, enforce_nonce). A resend of an uncertain send later than this first looks for
# the message in the channel's recent history; nonces are not kept there, so it compares embeds.
NONCE_TRUST_S = 120.0
RECENT_LOOKUP = 50  # messages of history read before a late resend
FAILED_RETRY_S = 300.0  # sends wait this long while the adapter has failed for good
PERMISSION_NOTICE = N_(
    "I am missing a permission in this channel (Embed Links, or Send Messages in threads), so "
    "notifications are held and retried every few minutes. A server admin can grant it in the channel settings."
)
AdapterState = Literal["starting", "connected", "standby", "failed", "stopped"]


def nonce(key: str, part: int) -> str:
    """A delivery's nonce: with enforce_nonce, Discord returns the existing message for a repeat
    within a few minutes instead of posting twice (docs/guarantees.md D)."""
    digest = hashlib.sha256(f"{key}\x00{part}".encode()).digest()
    return base64.b32encode(digest).decode()[:NONCE_MAX]


class DiscordAdapter:
    """Slash commands, buttons and modals in; embeds out. See the module docstring."""

    platform = "discord"

    def __init__(
        self,
        settings: DiscordSettings,
        services: AdapterServices,
        redactor: Redactor,
        *,
        timing: GatewayTiming | None = None,
    ) -> None:
        if settings.bot_token is None or not settings.enabled:
            raise ConfigError("DISCORD_BOT_TOKEN is not set")
        self._token = settings.bot_token.get_secret_value().strip()
        redactor.add(self._token)
        self._settings = settings
        self._guild_channels = services.store(DISCORD_GUILD_CHANNELS)
        self._command_hashes = services.store(DISCORD_COMMANDS)
        self._uncertain = services.store(DISCORD_UNCERTAIN)
        self._permission_notices = services.store(DISCORD_PERMISSION_NOTICES)  # one notice a day per channel
        self._catalogues = Catalogues.load()
        _apply_urls(settings)
        timing = timing or GatewayTiming()
        self.guard = RequestGuard(services)
        # Every process's REST requests together stay under the configured ceiling.
        self.pacer = GlobalPacer(services, settings.max_requests_per_second, settings.api_base)
        trace = self.guard.trace_config()
        trace.on_request_start.append(self.pacer.on_request_start)
        trace.on_request_end.append(self.pacer.on_request_end)
        self._codec = ActionCodec(services, Signer.derived(self._token, "discord-buttons"))
        self._interactions = InteractionHandler(services, self._codec, self.guard, redactor)
        backoff = IdentifyBackoff(services.store(DISCORD_IDENTIFY), timing)
        hooks = ClientHooks(
            before_identify=self._before_identify,
            on_ready=self._on_ready,
            on_interaction=self._interactions.on_interaction,
            on_guild_remove=self._on_guild_remove,
            on_guild_join=self._on_guild_join,
            on_channel_gone=self._on_channel_gone,
        )
        self._client = RelayClient(hooks, http_trace=trace)
        self._tree = app_commands.CommandTree(self._client)
        for command in build_commands(self._interactions.on_command, self._interactions.complete):
            self._tree.add_command(command)
        self._gateway = GatewayHolder(
            self._client, services.lease(DISCORD_GATEWAY, timing.lease_ttl), backoff, timing, self._sync_commands
        )
        self._log_filter = ModalValuesFilter()
        self._on_chat_change: OnChatChange | None = None
        self._logged_in = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopped = False
        self._login_failure: str | None = None
        self.nonce_trust = NONCE_TRUST_S  # seconds a resend may rely on Discord's nonce memory

    @property
    def holds_gateway(self) -> bool:
        return self._gateway.holding

    @property
    def failure(self) -> str | None:
        """Why the adapter stopped for good (a fatal gateway close, a rejected token), else None."""
        return self._gateway.failure or self._login_failure

    @property
    def state(self) -> AdapterState:
        """For readiness checks: "failed" needs an operator; "standby" is REST only while
        another process holds the gateway; "connected" holds a live gateway session."""
        if self.failure is not None:
            return "failed"
        if self._stopped:
            return "stopped"
        if not self._logged_in.is_set():
            return "starting"
        return "connected" if self._gateway.connected else "standby"

    # --- lifecycle --------------------------------------------------------------------------

    def attach_suggestions(self, suggest: Suggest) -> None:
        """Autocomplete answers come from the core (relay.suggest), never from AI-Trader directly."""
        self._interactions.attach_suggestions(suggest)

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        if self._started:
            return
        self._started = True
        declared = {c.name for c in self._tree.get_commands()}
        if declared != {c.name for c in commands if not c.hidden}:  # /admin is Telegram and console only
            log.warning(
                "discord commands differ from the core's declared=%s core=%s",
                sorted(declared),
                sorted(c.name for c in commands if not c.hidden),
            )
        self._interactions.attach(dispatch)
        self._on_chat_change = on_chat_change
        # Slash-command and option descriptions in each user's client language (names stay English).
        await self._tree.set_translator(DescriptionTranslator(self._catalogues))
        logging.getLogger(GATEWAY_LOGGER).addFilter(self._log_filter)
        try:
            await self._client.login(self._token)
        except discord.LoginFailure as exc:
            raise ConfigError("DISCORD_BOT_TOKEN was rejected by Discord") from exc
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.warning("discord login failed error=%r: retrying in the background", exc)
            self._tasks.append(asyncio.create_task(self._login_then_hold(), name="discord-login"))
            return
        self._logged_in.set()
        log.info("discord logged in application=%s", self._client.application_id)
        self._tasks.append(asyncio.create_task(self._gateway.run(), name="discord-gateway-lease"))

    async def stop(self) -> None:
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        self._interactions.stopping = True
        self._gateway.stop()  # the gateway first: no new events
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_BUDGET_S
        try:
            for task in self._tasks:
                try:
                    await asyncio.wait_for(asyncio.shield(task), max(0.05, deadline - loop.time() - _DRAIN_MIN_S))
                except TimeoutError:
                    log.warning("discord gateway did not stop in time: cancelling")
                    task.cancel()
                except Exception:
                    log.exception("discord background task failed")
            await self._interactions.drain(timeout=max(0.05, deadline - loop.time() - _CLOSE_S))
        finally:
            # Even when the caller's own timeout cancels us: close the session and the gateway.
            await self._client.close()
            logging.getLogger(GATEWAY_LOGGER).removeFilter(self._log_filter)
            log.info("discord adapter stopped")

    async def _login_then_hold(self) -> None:
        delay = 2.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._client.login(self._token)
                break
            except discord.LoginFailure:
                self._login_failure = FATAL_CLOSE_CODES[4004]
                log.error("discord rejected DISCORD_BOT_TOKEN: adapter disabled until restart")
                return
            except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
                delay = min(delay * 2, _LOGIN_RETRY_CAP_S)
                log.warning("discord login failed error=%s retry_in=%.0fs", type(exc).__name__, delay)
        self._logged_in.set()
        await self._gateway.run()

    # --- sending ----------------------------------------------------------------------------

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        if not self._logged_in.is_set() or self._stopped:
            raise RetryLater(NOT_CONNECTED_RETRY_S, "discord not connected")
        if self._client.is_closed():
            # discord.py closed its session after a fatal gateway close: keep every message queued.
            raise RetryLater(FAILED_RETRY_S, f"discord adapter failed: {self.failure or 'client closed'}")
        try:
            channel_id = int(chat.thread_id or chat.chat_id)
        except ValueError:
            raise Undeliverable(f"not a discord channel id: {chat.chat_id!r}") from None
        if await self.guard.is_gone(channel_id):
            raise ChatGone("discord channel refused us before (403/404)")
        if pause := self.guard.pause_for():
            raise RetryLater(pause, "discord sends paused (Cloudflare ban or invalid-request budget)")
        channel = self._client.get_partial_messageable(channel_id)
        parts = render(message)
        uncertain_since = await self._uncertain_since(key)
        late = uncertain_since is not None and time.time() - uncertain_since > self.nonce_trust
        for index, part in enumerate(parts):
            if late and await self._already_posted(channel_id, part):
                log.info("late resend found in history, not posted again channel=%s part=%d", channel_id, index)
                continue
            try:
                view = await build_view(self._codec, part.actions, str(channel_id))
            except StoreUnavailable:
                raise RetryLater(NOT_CONNECTED_RETRY_S, "action store unavailable") from None
            try:
                await asyncio.wait_for(
                    channel.send(
                        embeds=list(part.embeds),
                        # discord.py's "not given" (its overloads take a View, not None); the
                        # request is the same either way: no components.
                        view=view if view is not None else discord.utils.MISSING,
                        nonce=nonce(key, index),
                        allowed_mentions=NO_MENTIONS,
                        silent=silent,
                        **_uploads(part),
                    ),
                    self._settings.send_timeout,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = delivery_error(exc)
                if isinstance(error, ChatGone):
                    await self.guard.mark_gone(channel_id, getattr(exc, "status", 0))
                elif isinstance(error, PermissionMissing):
                    await self._tell_missing_permission(channel_id)
                elif isinstance(error, SendUncertain) or (isinstance(error, RetryLater) and index > 0):
                    # A resend will follow; if it comes after Discord forgot the nonces, it must
                    # look before posting (parts already accepted included).
                    await self._mark_uncertain(key)
                if is_cloudflare_ban(exc):
                    self.guard.hold(
                        error.seconds if isinstance(error, RetryLater) else 600.0, "Cloudflare ban (429 without Via)"
                    )
                if isinstance(error, Undeliverable) and not isinstance(exc, discord.HTTPException):
                    log.exception("discord send failed unexpectedly channel=%s part=%d", channel_id, index)
                else:
                    log.debug("discord send failed channel=%s part=%d error=%s", channel_id, index, error)
                raise error from None

    async def _uncertain_since(self, key: str) -> float | None:
        try:
            raw = await self._uncertain.get(key)
        except StoreUnavailable:
            return None  # cannot tell: rely on the nonce, as before
        return float(raw) if raw else None

    async def _mark_uncertain(self, key: str) -> None:
        try:
            await self._uncertain.put(key, value=repr(time.time()), only_if_absent=True)
        except StoreUnavailable:
            log.warning("uncertain send not recorded; a late resend relies on the nonce alone")

    async def _already_posted(self, channel_id: int, part: RenderedPart) -> bool:
        """Is a message of ours with these embeds among the channel's recent messages?"""
        me = self._client.user.id if self._client.user else None
        want = [_embed_key(e.to_dict()) for e in part.embeds]
        try:
            recent = await self._client.http.logs_from(channel_id, RECENT_LOOKUP)
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.info("history unreadable before a late resend channel=%s error=%s", channel_id, type(exc).__name__)
            return False  # resend: a possible duplicate beats a lost notification
        return any(
            str(m.get("author", {}).get("id")) == str(me) and [_embed_key(e) for e in m.get("embeds") or []] == want
            for m in recent
        )

    async def _tell_missing_permission(self, channel_id: int) -> None:
        """Once a day per channel, a plain-text note (no embed, so Embed Links is not needed)."""
        try:
            if not await self._permission_notices.put(channel_id, value=1, only_if_absent=True):
                return
        except StoreUnavailable:
            return
        log.warning("discord 50013 Missing Permissions channel=%s: kept queued, telling the channel", channel_id)
        # No command carries a language here: the server's own (its "preferred locale") is the guess.
        channel = self._client.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        locale = getattr(getattr(guild, "preferred_locale", None), "value", "")
        text = self._catalogues.translator(language_of(locale)).gettext(PERMISSION_NOTICE)
        try:
            await self._client.get_partial_messageable(channel_id).send(text, allowed_mentions=NO_MENTIONS)
        except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.info("permission notice not posted channel=%s error=%s", channel_id, type(exc).__name__)

    # --- events -----------------------------------------------------------------------------

    async def _before_identify(self, initial: bool) -> None:
        await self._gateway.before_identify(initial)

    def _on_ready(self) -> None:
        log.info("discord gateway ready")
        self._gateway.on_ready()

    async def _on_guild_remove(self, guild: discord.Guild) -> None:
        channels = {c.id for c in guild.channels} | {t.id for t in guild.threads}
        try:
            channels |= {int(c) for c in await self._guild_channels.members(guild.id, "channels")}
            await self._guild_channels.delete((guild.id, "channels"))
        except StoreUnavailable:
            log.warning("guild channels unknown guild=%s", guild.id, exc_info=True)
        log.info("discord bot removed from guild=%s channels=%d", guild.id, len(channels))
        for channel_id in sorted(channels):
            await self._chat_gone(channel_id, "bot removed from the server")

    async def _on_guild_join(self, guild: discord.Guild) -> None:
        await self.guard.clear_gone(*(c.id for c in guild.channels))

    async def _on_channel_gone(self, channel_id: int, reason: str) -> None:
        await self._chat_gone(channel_id, reason)

    async def _chat_gone(self, channel_id: int, reason: str) -> None:
        if self._on_chat_change is None:
            return
        try:
            await self._on_chat_change(ChatChange(ChatRef("discord", str(channel_id)), "gone", reason=reason))
        except Exception:
            log.exception("on_chat_change failed channel=%s", channel_id)

    async def _sync_commands(self) -> None:
        """Upload the command set when it changed (by hash in Redis); guilds sync instantly,
        global commands can take a while to appear."""
        scopes: list[discord.Object | None] = [discord.Object(g) for g in self._settings.guild_ids] or [None]
        for guild in scopes:
            if guild is not None:
                self._tree.copy_global_to(guild=guild)
            payload = [c.to_dict(self._tree) for c in self._tree.get_commands(guild=guild)]
            digest = hashlib.sha256(
                json.dumps([self._client.application_id, payload], sort_keys=True).encode()
            ).hexdigest()
            scope = guild.id if guild else "global"
            try:
                if await self._command_hashes.get(scope) == digest:
                    continue
                await self._tree.sync(guild=guild)
                await self._command_hashes.put(scope, value=digest)
                log.info("discord commands synced scope=%s count=%d", guild.id if guild else "global", len(payload))
            except (discord.HTTPException, aiohttp.ClientError, OSError, StoreUnavailable):
                log.warning("discord command sync failed scope=%s", guild.id if guild else "global", exc_info=True)


def _embed_key(embed: Mapping[str, object]) -> tuple[str, str]:
    return (str(embed.get("title") or ""), str(embed.get("description") or ""))


def _uploads(part: RenderedPart) -> dict[str, Any]:
    # Only a part with a picture is sent as multipart; a text part's request stays as it was.
    return {"files": part.files()} if part.image is not None else {}


def _apply_urls(settings: DiscordSettings) -> None:
    """discord.py reads its REST base and gateway URL from class attributes; they are set here,
    once per construction, from configuration (a proxy in production, a fake server in tests).
    Process-wide by nature: one process talks to one Discord."""
    discord.http.Route.BASE = settings.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url or DEFAULT_GATEWAY)
