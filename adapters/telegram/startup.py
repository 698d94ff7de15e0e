"""Reaching the Bot API at start: retried with capped, jittered backoff while it is unreachable.

DNS failures, refused connections, timeouts and 5xx answers (python-telegram-bot raises them all
as `NetworkError`) are an outage, not a configuration error: the relay waits for Telegram, one log
line per attempt, as the Discord adapter does for its login. A token Telegram rejects (401/404:
`InvalidToken`) will not start working by waiting, so it ends the start at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from telegram.error import InvalidToken, NetworkError

from relay.backoff import full_jitter
from relay.errors import ConfigError

log = logging.getLogger(__name__)

BASE = 1.0  # seconds: the first retry waits up to 2 s ...
CAP = 60.0  # ... and no retry waits more than a minute


async def until_reachable(
    step: Callable[[], Awaitable[None]],
    *,
    base: float = BASE,
    cap: float = CAP,
    rng: random.Random | None = None,
    on_attempt: Callable[[int, str], None] | None = None,
) -> None:
    """Run `step` until it succeeds; retry on network errors and 5xx, stop on a rejected token."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            await step()
            if attempt:
                log.info("telegram: Bot API reachable again after %d failed attempts", attempt)
            return
        except InvalidToken:
            raise ConfigError("TELEGRAM_BOT_TOKEN: rejected by Telegram (401)") from None
        except NetworkError as exc:  # includes TimedOut; 5xx answers arrive as NetworkError too
            attempt += 1
            wait = max(0.1, full_jitter(attempt, base=base, cap=cap, rng=rng))
            reason = f"{type(exc).__name__}: {exc.message}"[:200]
            if on_attempt is not None:
                on_attempt(attempt, reason)
            log.warning("telegram: Bot API unreachable (%s); attempt %d, retrying in %.1f s", reason, attempt, wait)
            await asyncio.sleep(wait)
