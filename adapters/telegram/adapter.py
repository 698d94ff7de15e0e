"""TelegramAdapter: the relay's `ChatAdapter` for Telegram, built on python-telegram-bot 22.

It wires PTB's Application (never owning the loop), decides who polls getUpdates (one process per
bot token, by a Redis lease) or serves the webhook, and delegates: inbound updates to `Inbound`,
sends to `Sender`. No business logic here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from telegram import Update
from telegram.error import Conflict, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    ChatMemberHandler,
    ExtBot,
    MessageHandler,
    TypeHandler,
    filters,
)

from adapters.http_front import SharedHttp
from adapters.telegram.buttons import ButtonStore
from adapters.telegram.inbound import Inbound
from adapters.telegram.limiter import SendLimiter
from adapters.telegram.markup import MAX_TEXT
from adapters.telegram.menus import menus
from adapters.telegram.reachability import Reachability, WatchedRequest
from adapters.telegram.sender import Sender
from adapters.telegram.settings import TelegramSettings
from adapters.telegram.startup import until_reachable
from adapters.telegram.webhook import WebhookServer
from relay.adapter import AdapterServices, Dispatch, OnChatChange
from relay.errors import RetryLater, StoreUnavailable
from relay.i18n import Catalogues
from relay.keys import TELEGRAM_GLOBAL_RATE, TELEGRAM_POLLER
from relay.logs import Redactor
from relay.models import ChatRef, CommandSpec, Message
from relay.signing import Signer

# What ApplicationBuilder builds here: default context types, and no JobQueue (job_queue(None)).
_Bot = ExtBot[None]
_Dict = dict[Any, Any]
PtbApplication = Application[_Bot, CallbackContext[_Bot, _Dict, _Dict, _Dict], _Dict, _Dict, _Dict, None]

log = logging.getLogger(__name__)

# Edited messages: an edit that turns a message into "/link <token>" must be seen to be deleted.
# Channel posts: commands posted in a channel (feed and trader watches there).
ALLOWED_UPDATES = (
    Update.MESSAGE,
    Update.EDITED_MESSAGE,
    Update.CHANNEL_POST,
    Update.EDITED_CHANNEL_POST,
    Update.CALLBACK_QUERY,
    Update.MY_CHAT_MEMBER,
)
POLL_TIMEOUT = 10  # seconds of getUpdates long polling
POOL_TIMEOUT = 1.0  # seconds to wait for a free connection; a pool timeout is "not sent"
STOP_POLLING_SECONDS = 2.0  # for the last getUpdates at shutdown (it only confirms an offset)
CONCURRENT_UPDATES = 64  # one slow command (or a chat's rate limit) must not hold up the others
_CONFLICT_LOG_EVERY = 60.0
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")  # Bot API BotCommand.command


class TelegramAdapter:
    """Long polling by default; webhook mode when `settings.webhook_url` is set."""

    platform = "telegram"

    def __init__(
        self,
        settings: TelegramSettings,
        services: AdapterServices,
        redactor: Redactor,
        *,
        limiter: SendLimiter | None = None,
        lease_ttl: float = 30.0,
        http: SharedHttp | None = None,
    ) -> None:
        self._http = http
        token = settings.bot_token.get_secret_value()
        # Register before PTB builds anything: the Bot logs its token-bearing URL at DEBUG.
        redactor.add(token, settings.webhook_secret.get_secret_value())
        self._settings = settings
        self._services = services
        self._lease_ttl = lease_ttl
        self._lease = services.lease(TELEGRAM_POLLER, lease_ttl)
        self._reachability = Reachability()
        self._app = self._build(settings, token, self._reachability)
        # Button data is signed with a key only this bot's processes can derive (from its token).
        self._buttons = ButtonStore(services, signer=Signer.derived(token, "telegram-buttons"))
        if limiter is None:
            # The global ceiling belongs to the bot token: shared by every process on this Redis.
            # A burst of two, as for Discord: a late waiter does not lose its slot (Telegram's
            # overall limit tolerates short bursts; the fake models it as a bucket of 30).
            shared = services.rate_budget(TELEGRAM_GLOBAL_RATE, settings.global_rate, burst=2)
            limiter = SendLimiter(settings.global_rate, shared=shared)
        self._sender = Sender(self._app.bot, limiter, self._buttons, services, MAX_TEXT)
        self._catalogues = Catalogues.load()
        self._webhook: WebhookServer | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._polling = False
        self._started = False
        self._stopped = False
        self._updates_stopped = False
        self._last_conflict_log = 0.0

    @staticmethod
    def _build(settings: TelegramSettings, token: str, reachability: Reachability) -> PtbApplication:
        timeout = settings.request_timeout
        timeouts = {"connect_timeout": timeout, "read_timeout": timeout, "write_timeout": timeout}
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(settings.api_base + "/bot")
            .base_file_url(settings.api_base + "/file/bot")
            .job_queue(None)  # one scheduler per process, and it is not PTB's
            .concurrent_updates(CONCURRENT_UPDATES)
            # PTB's own pool sizes (256 for calls, 1 for getUpdates, which adds the long-poll
            # timeout to the read timeout itself); a pool timeout is "not sent".
            .request(WatchedRequest(reachability, connection_pool_size=256, pool_timeout=POOL_TIMEOUT, **timeouts))
            .get_updates_request(
                WatchedRequest(reachability, connection_pool_size=1, pool_timeout=POOL_TIMEOUT, **timeouts)
            )
        )
        if settings.webhook_url:
            builder = builder.updater(None)  # updates arrive through our own endpoint
        return builder.build()

    @property
    def state(self) -> str:
        """For readiness checks: "unreachable" while the Bot API's last answer was a failure (at
        start or later), else "starting" until PTB runs, then "connected"."""
        if self._stopped:
            return "stopped"
        if self._reachability.failing:
            return "unreachable"
        return "connected" if self._app.running else "starting"

    @property
    def is_polling(self) -> bool:
        """True while this process holds the poller lease and runs getUpdates."""
        return self._polling

    @property
    def webhook_port(self) -> int | None:
        return self._webhook.port if self._webhook else None

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        """Register the commands, then take updates (poll under the lease, or serve the webhook)."""
        if self._started:
            return
        self._started = True
        specs = {spec.name: spec for spec in commands}
        self._buttons.specs = specs
        inbound = Inbound(
            self._sender, self._buttons, self._services, specs, dispatch, on_chat_change, self._catalogues
        )
        app = self._app
        app.add_handler(TypeHandler(Update, inbound.drop_replays), group=-1)
        app.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST, inbound.on_message)
        )
        app.add_handler(MessageHandler(filters.UpdateType.EDITED, inbound.on_edited))
        app.add_handler(CallbackQueryHandler(inbound.on_callback))
        app.add_handler(ChatMemberHandler(inbound.on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
        app.add_error_handler(inbound.on_error)

        async def reach() -> None:
            await app.initialize()  # getMe
            for menu in menus(commands, self._catalogues):
                await app.bot.set_my_commands(menu.commands, scope=menu.scope, language_code=menu.language_code)

        await until_reachable(reach)
        await app.start()
        if self._settings.webhook_url:
            await self._start_webhook()
        else:
            await self._lease_tick()
            self._lease_task = asyncio.create_task(self._lease_loop(), name="telegram-poller-lease")
        log.info("telegram adapter started mode=%s", "webhook" if self._settings.webhook_url else "polling")

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        """Deliver one message (split into several when longer than 4096 UTF-16 units)."""
        if self._started and not self._app.running and not self._stopped:
            # Still waiting for the Bot API at start: keep the chat's queue, without using up
            # the delivery's attempts (it would be dead-lettered after a long outage otherwise).
            raise RetryLater(5.0, "telegram not connected yet")
        await self._sender.send(chat, message, key=key, silent=silent)

    async def stop_updates(self) -> None:
        """Stop the lease loop and getUpdates and give the poller lease back, so another process
        answers commands at once; the lease goes back even when this is cancelled. Idempotent."""
        if self._updates_stopped:
            return
        self._updates_stopped = True
        try:
            if self._lease_task is not None:
                self._lease_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._lease_task
            await self._stop_polling("shutdown")
        finally:
            with contextlib.suppress(StoreUnavailable):
                await self._lease.release()

    async def stop(self) -> None:
        """Stop taking updates (lease loop, polling, webhook), then stop and close PTB. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.stop_updates()
        if self._webhook is not None:
            await self._webhook.stop()
        if self._app.running:
            await self._app.stop()
        await self._app.shutdown()
        log.info("telegram adapter stopped")

    # --- webhook -------------------------------------------------------------------------

    async def _start_webhook(self) -> None:
        url = self._settings.webhook_url or ""
        secret = self._settings.webhook_secret.get_secret_value()
        shared = self._http
        self._webhook = WebhookServer(
            self._app.bot,
            self._app.update_queue,
            secret,
            urlsplit(url).path,
            shared.port if shared else self._settings.port,
            router=shared.router if shared else None,
        )
        await self._webhook.start()
        await self._app.bot.set_webhook(url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES))

    # --- polling under a lease ---------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ttl / 3)
            await self._lease_tick()

    async def _lease_tick(self) -> None:
        """Keep polling while we hold the lease; take it over when it is free."""
        try:
            if self._polling:
                if not await self._lease.renew():
                    await self._stop_polling("lease lost")
            elif await self._lease.acquire():
                await self._start_polling()
        except StoreUnavailable as exc:
            # The lease is for efficiency only: keep doing what we do until Redis answers again.
            log.warning("poller lease unavailable error=%s", exc)
        except TelegramError as exc:
            log.warning("polling did not start, will retry error=%s", type(exc).__name__)

    async def _start_polling(self) -> None:
        updater = self._app.updater
        if updater is None or updater.running:
            return
        await updater.start_polling(
            timeout=POLL_TIMEOUT,
            allowed_updates=list(ALLOWED_UPDATES),
            drop_pending_updates=False,
            error_callback=self._on_poll_error,
        )
        self._polling = True
        log.info("polling getUpdates (holding the poller lease)")

    async def _stop_polling(self, why: str) -> None:
        updater = self._app.updater
        was_polling = self._polling
        self._polling = False
        try:
            if updater is not None and updater.running:
                # PTB ends the long poll at once, then calls getUpdates once more to confirm the
                # offset. A Bot API that does not answer that quickly has stopped answering: give
                # up on it rather than wait out the request timeout (PTB would then log a
                # traceback). The updates may come again; replays are dropped by update id.
                try:
                    await asyncio.wait_for(updater.stop(), timeout=STOP_POLLING_SECONDS)
                except TimeoutError:
                    log.warning(
                        "getUpdates did not confirm the last updates within %.0fs; they may be fetched again",
                        STOP_POLLING_SECONDS,
                    )
        finally:
            if was_polling:
                log.info("stopped polling reason=%s", why)
                with contextlib.suppress(StoreUnavailable):
                    await self._lease.release()

    def _on_poll_error(self, exc: TelegramError) -> None:
        """PTB's retry loop calls this and then backs off (1 s growing to 30 s); it never stops polling."""
        if isinstance(exc, Conflict):
            now = time.monotonic()
            if now - self._last_conflict_log >= _CONFLICT_LOG_EVERY:
                self._last_conflict_log = now
                log.warning("getUpdates conflict: another poller or a webhook uses this token; backing off")
            return
        log.warning("getUpdates failed error=%s", type(exc).__name__)
