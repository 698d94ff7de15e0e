"""Whether the Bot API answered the last request: what /readyz reports after start-up.

PTB's polling loop retries failed getUpdates calls for ever, so a Telegram outage after start
never stops the Application; without this, readiness stayed "connected" through one. The
request object is PTB's documented extension point (`ApplicationBuilder.request`,
`get_updates_request`), so nothing inside PTB is patched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from telegram.error import NetworkError
from telegram.request import BaseRequest, HTTPXRequest, RequestData

if TYPE_CHECKING:
    from telegram._utils.types import ODVInput  # the type PTB's own signature uses

log = logging.getLogger(__name__)


class Reachability:
    """The outcome of the most recent request to the Bot API, shared by the bot's requests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.failing_since: float | None = None

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def answered(self) -> None:
        if self.failing_since is not None:
            log.info("telegram: Bot API answering again after %.0f s", self._clock() - self.failing_since)
            self.failing_since = None

    def failed(self, reason: str) -> None:
        if self.failing_since is None:
            self.failing_since = self._clock()
            log.warning("telegram: Bot API not answering (%s); /readyz reports it until it does", reason)


class WatchedRequest(HTTPXRequest):
    """HTTPXRequest that tells a `Reachability` whether Telegram answered.

    Any answer below 500 counts: 4xx (a blocked chat, a 429) comes from Telegram itself. A 5xx
    or a transport failure (refused, timed out) is what an outage looks like from here.
    """

    def __init__(self, reachability: Reachability, **options: float | int | None) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._reachability = reachability

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        try:
            status, payload = await super().do_request(
                url,
                method,
                request_data,
                read_timeout=read_timeout,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
        except NetworkError as exc:  # TimedOut is one; both mean no answer reached us
            self._reachability.failed(type(exc).__name__)
            raise
        if status >= 500:
            self._reachability.failed(f"HTTP {status}")
        else:
            self._reachability.answered()
        return status, payload
