"""How many heartbeats are in flight at once: as few as keep the polls from waiting.

Each idle connection in httpx's pool costs every request a `poll()` system call, so on a nearby
AI-Trader (a millisecond a call) two calls in flight keep up with 10,000 agents at 30 s and
more only cost CPU. A distant one (150 ms) needs 50 for the same rate (Little's law: calls in
flight = calls per second x seconds per call). The gate starts at the floor and opens one more
slot each time a call waited longer than `slow_wait` for one (a queue of long waiters opens as
many as they are, up to the ceiling); each `window` in which no call waited even a tenth of
that halves what is open above the floor, so a burst's extra connections go idle and httpx
closes them after its keep-alive expiry.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType


class CallGate:
    """An async context manager: `async with gate:` around each call. First come, first served."""

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 2,
        slow_wait: float = 0.5,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = min(max(1, floor), self.ceiling)
        self.limit = self.floor
        self.in_flight = 0
        self._slow_wait = slow_wait
        self._window = window
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._window_start = clock()
        self._window_max_wait = 0.0

    async def __aenter__(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            self._waited(0.0)
            return
        asked = self._clock()
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        try:
            await slot  # the releasing call hands its slot over: in_flight already counts us
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._release()  # handed a slot in the same turn as the cancel: pass it on
            elif slot in self._waiters:
                self._waiters.remove(slot)
            raise
        self._waited(self._clock() - asked)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _waited(self, wait: float) -> None:
        now = self._clock()
        if wait > self._slow_wait and self.limit < self.ceiling:
            self.limit += 1
            self._wake()
        self._window_max_wait = max(self._window_max_wait, wait)
        if now - self._window_start >= self._window:
            if self._window_max_wait < self._slow_wait / 10:
                self.limit = max(self.floor, self.limit // 2)
            self._window_start, self._window_max_wait = now, 0.0

    def _release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            slot = self._waiters.popleft()
            if not slot.done():
                self.in_flight += 1
                slot.set_result(None)
