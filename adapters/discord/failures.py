"""Maps what discord.py and aiohttp raise during a send to the core's `DeliveryError`s.

The one place that decides whether a failed send is safe to repeat. Sends carry a nonce, so
"uncertain" outcomes are resent by the core and deduplicated by Discord. Must not log or retry.
"""

from __future__ import annotations

import asyncio

import aiohttp
import discord

from relay.errors import ChatGone, DeliveryError, PermissionMissing, RetryLater, SendUncertain, Undeliverable

# A 401 means the bot token was reset or revoked: nothing will work until an operator fixes it.
TOKEN_REJECTED_RETRY_S = 300.0
# A 429 without Discord's "Via" header comes from Cloudflare: the IP is temporarily banned.
CLOUDFLARE_BAN_RETRY_S = 600.0
NOT_CONNECTED_RETRY_S = 5.0
# 50013 Missing Permissions (no Send Messages / Embed Links): an admin can fix it, so the channel
# keeps its subscriptions and is tried again this often (each try costs one invalid request).
MISSING_PERMISSIONS_RETRY_S = 600.0
MISSING_PERMISSIONS = 50013  # topics/opcodes-and-status-codes; 50001 Missing Access is "cannot see the channel"


def is_cloudflare_ban(exc: BaseException) -> bool:
    """discord.py raises a plain HTTPException for a 429 without Discord's Via header (its own
    rate-limit 429s are waited out or raised as RateLimited)."""
    return isinstance(exc, discord.HTTPException) and not isinstance(exc, discord.RateLimited) and exc.status == 429


def delivery_error(exc: BaseException) -> DeliveryError:
    """The core's reading of one failed send."""
    if isinstance(exc, discord.Forbidden) and exc.code == MISSING_PERMISSIONS:
        return PermissionMissing(MISSING_PERMISSIONS_RETRY_S, "discord 50013 Missing Permissions")
    if isinstance(exc, (discord.Forbidden, discord.NotFound)):
        return ChatGone(f"discord {exc.status} {exc.text[:100]}")
    if isinstance(exc, discord.RateLimited):
        # Only raised when a wait exceeds the client's max_ratelimit_timeout.
        return RetryLater(exc.retry_after, "discord rate limit longer than we wait in-process")
    if isinstance(exc, discord.DiscordServerError):
        # 5xx after discord.py's own retries: the message may have been created.
        return SendUncertain(f"discord {exc.status} after retries")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 401:
            return RetryLater(TOKEN_REJECTED_RETRY_S, "discord rejected the bot token")
        if is_cloudflare_ban(exc):
            return RetryLater(CLOUDFLARE_BAN_RETRY_S, "discord 429 without Via: Cloudflare ban")
        if exc.status >= 500:
            return SendUncertain(f"discord {exc.status}")
        return Undeliverable(f"discord {exc.status} code={exc.code} {exc.text[:200]}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The TCP/TLS connection was never made, so the request never left.
        return RetryLater(NOT_CONNECTED_RETRY_S, f"discord unreachable: {type(exc).__name__}")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ClientError, OSError)):
        return SendUncertain(f"no answer from discord: {type(exc).__name__}")
    return Undeliverable(f"unexpected {type(exc).__name__}")
