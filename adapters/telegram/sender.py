"""The outbound path: rendered chunks to one chat, under the rate limits, errors mapped.

Everything that calls sendMessage/editMessageText goes through here, commands' replies included,
so they share one set of limits. It raises only `relay.errors.DeliveryError`s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import weakref
from collections.abc import Sequence

from telegram import Bot, ForceReply, InlineKeyboardMarkup, InputFile, LinkPreviewOptions
from telegram import Message as TgMessage
from telegram.constants import ParseMode
from telegram.error import RetryAfter, TelegramError

from adapters.telegram.buttons import ButtonStore
from adapters.telegram.failures import is_not_modified, is_parse_error, retry_after_seconds, to_delivery_error
from adapters.telegram.limiter import SendLimiter
from adapters.telegram.markup import MAX_TEXT, Chunk, Span, render, render_spans
from relay.adapter import AdapterServices
from relay.errors import (
    ChatGone,
    ChatMoved,
    DeliveryError,
    PermissionMissing,
    RetryLater,
    StoreUnavailable,
    Undeliverable,
)
from relay.keys import TELEGRAM_CHUNKS
from relay.models import ChatRef, Image, Message

log = logging.getLogger(__name__)

# sendPhoto: "Photo caption ..., 0-1024 characters after entities parsing" (core.telegram.org/bots/api#sendphoto)
CAPTION_MAX = 1024
NOT_STORED_RETRY = 5.0  # seconds: Redis hiccup while storing long button data
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # relayed URLs are not fetched or previewed (docs/architecture.md)
_GONE_LOG_CAP = 10_000
ReplyMarkup = InlineKeyboardMarkup | ForceReply


class Sender:
    """Sends and edits messages in Telegram chats; one send per chat at a time, in call order."""

    def __init__(
        self,
        bot: Bot,
        limiter: SendLimiter,
        buttons: ButtonStore,
        services: AdapterServices,
        max_text: int = MAX_TEXT,
    ) -> None:
        self.bot = bot
        self._limiter = limiter
        self._buttons = buttons
        self._progress_of = services.store(TELEGRAM_CHUNKS)
        self._max_text = max_text
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._gone_logged: dict[str, None] = {}

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> list[int]:
        """Send every chunk of `message` in order; the buttons go under the last chunk.

        A message longer than 4096 units goes out as several messages. Telegram has no idempotency
        key, so progress is kept in Redis under the delivery `key`: when a later chunk fails and the
        core resends the same key, the resend starts at the first chunk not yet accepted. Only a
        chunk whose outcome was uncertain (SendUncertain) can therefore show up twice.
        """
        if message.image is not None:
            return await self._send_with_image(chat, message, message.image, key=key, silent=silent)
        chunks = self._chunks(message)
        markup = await self._keyboard(message, chat)
        progress_key = key if len(chunks) > 1 else None
        done = await self._progress(progress_key)
        ids: list[int] = []
        for i, chunk in enumerate(chunks):
            if i < done:
                continue
            last = i == len(chunks) - 1
            sent = await self.post(chat, chunk, markup if last else None, silent=silent)
            ids.append(sent.message_id)
            if progress_key:
                await self._save_progress(progress_key, i + 1)
        return ids

    async def _send_with_image(
        self, chat: ChatRef, message: Message, image: Image, *, key: str, silent: bool
    ) -> list[int]:
        """sendPhoto with the text as its caption. A text longer than a caption allows goes
        after the photo as ordinary messages (the buttons under the last), the photo keeping the
        title; progress is kept under `key` like chunks, so a resend does not repeat the photo."""
        text_only = dataclasses.replace(message, image=None)
        caption = [c for c in render(text_only, CAPTION_MAX) if c.text.strip()]
        markup = await self._keyboard(message, chat)
        if len(caption) <= 1:
            sent = await self.post_photo(chat, image, caption[0] if caption else None, markup, silent=silent)
            return [sent.message_id]
        progress_key = key
        ids: list[int] = []
        if await self._progress(progress_key) < 1:
            head = render(Message(title=message.title), CAPTION_MAX)
            sent = await self.post_photo(chat, image, head[0] if head else None, None, silent=silent)
            ids.append(sent.message_id)
            await self._save_progress(progress_key, 1)
        rest = dataclasses.replace(text_only, title="")
        return ids + await self.send(chat, rest, key=f"{key}:text", silent=silent)

    async def post_photo(
        self, chat: ChatRef, image: Image, caption: Chunk | None, markup: ReplyMarkup | None, *, silent: bool = False
    ) -> TgMessage:
        """One sendPhoto (multipart upload) under the limits; HTML caption, plain on a parse error."""
        chat_id = self._chat_id(chat)
        thread_id = int(chat.thread_id) if chat.thread_id else None
        variants = ((caption.html, ParseMode.HTML), (caption.text, None)) if caption else ((None, None),)
        async with self._lock(chat_id):
            for text, parse_mode in variants:
                await self._ready(chat_id)
                try:
                    return await self.bot.send_photo(
                        chat_id,
                        InputFile(image.data, filename=image.filename),
                        caption=text,
                        parse_mode=parse_mode,
                        disable_notification=silent,
                        message_thread_id=thread_id,
                        reply_markup=markup,
                    )
                except TelegramError as exc:
                    if parse_mode and is_parse_error(exc):
                        log.warning("html caption rejected, resending as plain text chat=%s", chat.key)
                        continue
                    raise self._note(chat, chat_id, exc) from None
                except Exception as exc:
                    log.exception("photo send failed unexpectedly chat=%s", chat.key)
                    raise Undeliverable(f"unexpected {type(exc).__name__}") from None
        raise Undeliverable("caption rejected as HTML and as plain text")

    async def edit(self, chat: ChatRef, message_id: int, message: Message) -> bool:
        """Replace a message's text and buttons in place (paging). False when it cannot be edited
        (too long for one message, deleted, too old): the caller then sends a new message."""
        if message.image is not None:
            return False  # a text message cannot become a photo: the caller sends anew
        chunks = self._chunks(message)
        if len(chunks) != 1:
            return False
        markup = await self._keyboard(message, chat)
        chat_id = self._chat_id(chat)
        async with self._lock(chat_id):
            await self._ready(chat_id)
            try:
                await self.bot.edit_message_text(
                    chunks[0].html,
                    chat_id=chat_id,
                    message_id=message_id,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=_NO_PREVIEW,
                    reply_markup=markup,
                )
            except TelegramError as exc:
                if is_not_modified(exc):
                    return True
                self._note(chat, chat_id, exc)
                log.info("edit failed, sending anew chat=%s error=%s", chat.key, type(exc).__name__)
                return False
        return True

    async def post_spans(self, chat: ChatRef, spans: Sequence[Span], markup: ReplyMarkup | None) -> TgMessage:
        """Send short adapter-made text (prompts); it must fit in one message."""
        chunks = render_spans(spans, self._max_text)
        if len(chunks) != 1:
            raise Undeliverable("prompt does not fit one message")
        return await self.post(chat, chunks[0], markup)

    async def post(self, chat: ChatRef, chunk: Chunk, markup: ReplyMarkup | None, *, silent: bool = False) -> TgMessage:
        """One sendMessage under the limits; on "can't parse entities" once more as plain text."""
        chat_id = self._chat_id(chat)
        thread_id = int(chat.thread_id) if chat.thread_id else None
        async with self._lock(chat_id):
            for text, parse_mode in ((chunk.html, ParseMode.HTML), (chunk.text, None)):
                await self._ready(chat_id)
                try:
                    return await self.bot.send_message(
                        chat_id,
                        text,
                        parse_mode=parse_mode,
                        link_preview_options=_NO_PREVIEW,
                        disable_notification=silent,
                        message_thread_id=thread_id,
                        reply_markup=markup,
                    )
                except TelegramError as exc:
                    if parse_mode and is_parse_error(exc):
                        # Our escaping should make this impossible; plain text still reaches the reader.
                        log.warning("html rejected, resending as plain text chat=%s", chat.key)
                        continue
                    raise self._note(chat, chat_id, exc) from None
                except Exception as exc:  # a bug must still surface as a DeliveryError
                    log.exception("send failed unexpectedly chat=%s", chat.key)
                    raise Undeliverable(f"unexpected {type(exc).__name__}") from None
        raise Undeliverable("rejected as HTML and as plain text")

    async def delete(self, chat_id: int, message_id: int) -> bool:
        """deleteMessage; False when the bot may not (no rights, too old, already gone)."""
        try:
            return bool(await self.bot.delete_message(chat_id, message_id))
        except TelegramError as exc:
            log.info("could not delete command message chat=%s error=%s", chat_id, type(exc).__name__)
            return False

    def _chunks(self, message: Message) -> list[Chunk]:
        # Telegram refuses an empty or all-whitespace text, so such a chunk is not sent.
        chunks = [c for c in render(message, self._max_text) if c.text.strip()]
        if not chunks:
            raise Undeliverable("empty message")
        return chunks

    @staticmethod
    def _chat_id(chat: ChatRef) -> int:
        try:
            return int(chat.chat_id)
        except ValueError:
            raise Undeliverable(f"not a Telegram chat id: {chat.chat_id!r}") from None

    def _lock(self, chat_id: int) -> asyncio.Lock:
        # Weak values: a chat's lock lives only while someone is sending to it.
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[chat_id] = lock
        return lock

    async def _ready(self, chat_id: int) -> None:
        left = self._limiter.penalized_for(chat_id)
        if left > 0:
            # Still inside Telegram's retry_after for this chat: a request now would only earn another 429.
            raise RetryLater(left, "chat is serving a telegram retry_after")
        await self._limiter.wait(chat_id)

    def _note(self, chat: ChatRef, chat_id: int, exc: TelegramError) -> DeliveryError:
        """Map the error and keep what this process should remember about the chat."""
        error = to_delivery_error(exc, chat)
        if isinstance(exc, RetryAfter):
            self._limiter.penalize(chat_id, retry_after_seconds(exc))
        elif isinstance(error, ChatGone):
            if self._first_time(chat):
                log.warning("chat gone chat=%s reason=%s", chat.key, error)
        elif isinstance(error, PermissionMissing):
            if self._first_time(chat):
                log.warning("bot lacks the right to post chat=%s reason=%s: kept, retrying later", chat.key, error)
        elif isinstance(error, ChatMoved):
            log.info("chat moved chat=%s new=%s", chat.key, error.new_chat.key)
        else:
            log.debug("send failed chat=%s error=%s mapped=%s", chat.key, type(exc).__name__, type(error).__name__)
        return error

    def _first_time(self, chat: ChatRef) -> bool:
        """True once per chat (bounded): a chat's lasting refusal is logged once, not per retry."""
        if chat.key in self._gone_logged:
            return False
        if len(self._gone_logged) >= _GONE_LOG_CAP:
            self._gone_logged.pop(next(iter(self._gone_logged)))
        self._gone_logged[chat.key] = None
        return True

    async def _keyboard(self, message: Message, chat: ChatRef) -> InlineKeyboardMarkup | None:
        try:
            # Signed for the chat (not the topic): a button is pressed on a message of the chat.
            return await self._buttons.keyboard(message.actions, str(self._chat_id(chat)))
        except StoreUnavailable as exc:
            raise RetryLater(NOT_STORED_RETRY, f"could not store button data: {exc}") from None

    async def _progress(self, key: str | None) -> int:
        if key is None:
            return 0
        try:
            raw = await self._progress_of.get(key)
        except StoreUnavailable:
            log.warning("chunk progress unreadable, sending every chunk")
            return 0
        return int(raw) if raw else 0

    async def _save_progress(self, key: str, done: int) -> None:
        try:
            await self._progress_of.put(key, value=done)
        except StoreUnavailable:
            log.warning("chunk progress not saved; a resend may repeat chunks")
