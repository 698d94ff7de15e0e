"""Maps python-telegram-bot errors from a send to the relay's `DeliveryError`s.

One decision table, no I/O: whether a failed request may have reached Telegram decides between
RetryLater (surely not sent) and SendUncertain (maybe sent). See docs/guarantees.md (4 and D).
"""

from __future__ import annotations

import datetime as dt
import warnings

import httpx
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from relay.errors import (
    ChatGone,
    ChatMoved,
    DeliveryError,
    PermissionMissing,
    RetryLater,
    SendUncertain,
    Undeliverable,
)
from relay.models import ChatRef

# Errors raised before any byte left: the request can be repeated without risk of a duplicate.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
NOT_SENT_RETRY = 2.0  # seconds: a connect failure is usually brief
BAD_TOKEN_RETRY = 60.0  # the operator has to fix the token; keep the messages meanwhile

# BadRequest descriptions that mean "this chat (or topic) no longer takes our messages".
_GONE = ("chat not found", "message thread not found")
# "not enough rights to send text messages to the chat" (a group restricting members, slow mode,
# a channel where the bot lost Post Messages) and "have no rights to send a message": the chat is
# still there and an admin can give the right back, so its subscriptions must stay.
_NO_RIGHTS = ("not enough rights", "have no rights to send")
NO_RIGHTS_RETRY = 600.0


def retry_after_seconds(exc: RetryAfter) -> float:
    """retry_after as float seconds, whether PTB gives int or timedelta (it is migrating, v22.2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def is_parse_error(exc: TelegramError) -> bool:
    return isinstance(exc, BadRequest) and "can't parse entities" in exc.message.lower()


def is_not_modified(exc: TelegramError) -> bool:
    return isinstance(exc, BadRequest) and "message is not modified" in exc.message.lower()


def to_delivery_error(exc: Exception, chat: ChatRef) -> DeliveryError:
    """The DeliveryError the core should see for `exc` raised by a send to `chat`."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, RetryAfter):
        return RetryLater(retry_after_seconds(exc), "telegram flood control (429)")
    if isinstance(exc, ChatMigrated):
        return ChatMoved(ChatRef(chat.platform, str(exc.new_chat_id), chat.thread_id))
    if isinstance(exc, (BadRequest, Forbidden)) and any(m in exc.message.lower() for m in _NO_RIGHTS):
        return PermissionMissing(NO_RIGHTS_RETRY, exc.message)
    if isinstance(exc, Forbidden):
        return ChatGone(f"forbidden: {exc.message}")
    if isinstance(exc, BadRequest):
        text = exc.message.lower()
        if any(marker in text for marker in _GONE):
            return ChatGone(exc.message)
        return Undeliverable(exc.message)
    if isinstance(exc, InvalidToken):
        return RetryLater(BAD_TOKEN_RETRY, "telegram rejected the bot token")
    if isinstance(exc, (TimedOut, NetworkError)):
        # PTB keeps the httpx error on __cause__; without one it was an HTTP 5xx/502 answer,
        # which Telegram may give after it accepted the message.
        if isinstance(exc.__cause__, _NOT_SENT) or "pool timeout" in exc.message.lower():
            return RetryLater(NOT_SENT_RETRY, f"not sent: {type(exc.__cause__).__name__}")
        return SendUncertain(f"may have been sent: {type(exc.__cause__ or exc).__name__}")
    if isinstance(exc, TelegramError):
        return Undeliverable(f"{type(exc).__name__}: {exc.message}")
    return Undeliverable(f"unexpected {type(exc).__name__}")
