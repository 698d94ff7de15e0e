"""Telegram's send limits: per chat, per group, and a global ceiling per bot token.

It only waits (or refuses while a chat serves a 429 penalty); it never sends. One chat waiting for
its slot or its retry_after never holds up another chat (unlike PTB's AIORateLimiter, which pauses
every request on any 429).

Where each limit lives:
- The global ceiling (TELEGRAM_GLOBAL_RATE) belongs to the bot token, so K relay processes must
  share it: it is a rate budget on Redis (`AdapterServices.rate_budget`), and K processes together
  stay under it. Within a process one waiter at a time asks Redis (a FIFO queue in front), so
  a hundred chats waiting here cost one Redis call per slot, not a hundred.
- Per chat (~1/s) and per group (20/min) stay in-process. A chat's outbox is drained by one
  process at a time (the core's chat lease), so that process sees every notification send to
  the chat while it drains. What it cannot see: a command reply sent by the process that took the
  update, or the sends of the previous drain when the lease moves to another process between
  batches. Those rare overlaps can earn a 429 for that one chat; its retry_after then defers the
  chat in the shared ready set, which every process respects.
- If Redis does not answer, the global ceiling falls back to this process's own reservations
  (each process then keeps the ceiling alone) rather than stopping sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from relay.adapter import RateBudget
from relay.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Bot API FAQ / PTB constants.FloodLimit: ~1 msg/s per chat, 20 msgs/min per group, ~30/s overall.
PER_CHAT = (1, 1.0)
# One second of slack on the minute: our clock starts before the request reaches Telegram, and a
# group 429 costs far more than the second (measured with bench/telegram_send.py against the fake).
PER_GROUP = (20, 61.0)
GLOBAL_429_WINDOW = 1.0  # 429s for two chats within this many seconds: the overall ceiling was hit
_PRUNE_EVERY = 1024


class SlidingWindow:
    """At most `count` events per `period` seconds for each key (exact, by remembered times)."""

    def __init__(self, count: int, period: float) -> None:
        self.count = count
        self.period = period
        self._times: dict[object, deque[float]] = {}

    def next_free(self, key: object, now: float) -> float:
        """The earliest time an event for `key` fits in the window."""
        times = self._times.get(key)
        if not times or len(times) < self.count:
            return now
        return max(now, times[-self.count] + self.period)

    def record(self, key: object, at: float) -> None:
        times = self._times.setdefault(key, deque(maxlen=self.count))
        times.append(at)

    def prune(self, now: float) -> None:
        """Forget keys whose events have all left the window (bounds memory to active chats)."""
        stale = [k for k, t in self._times.items() if not t or t[-1] <= now - self.period]
        for key in stale:
            del self._times[key]


class Reservations:
    """A global rate: each caller reserves the next slot in arrival order (FIFO, no thundering herd)."""

    def __init__(self, rate: float) -> None:
        self._window = SlidingWindow(max(1, int(rate)), max(1, int(rate)) / rate)

    def reserve(self, now: float) -> float:
        at = self._window.next_free(None, now)
        self._window.record(None, at)
        return at


class SendLimiter:
    """Waits until a send to `chat_id` fits every limit, then records it.

    Callers serialize sends per chat themselves (the adapter holds a per-chat lock around
    wait-then-send), so the per-chat and per-group windows need no lock of their own.
    """

    def __init__(
        self,
        global_rate: float = 30.0,
        per_chat: tuple[int, float] = PER_CHAT,
        per_group: tuple[int, float] = PER_GROUP,
        clock: Callable[[], float] = time.monotonic,
        shared: RateBudget | None = None,
    ) -> None:
        self._chat = SlidingWindow(*per_chat)
        self._group = SlidingWindow(*per_group)
        self._global = Reservations(global_rate)
        self._shared = shared
        self._shared_queue = asyncio.Lock()  # FIFO: waiters of this process ask Redis one at a time
        self._shared_down = False
        self._penalty: dict[int, float] = {}
        self._clock = clock
        self._calls = 0
        self._recent_429s: deque[tuple[float, int]] = deque(maxlen=64)
        self._held_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.global_holds = 0  # times 429s for several chats held every send (tests, benchmarks)

    def penalized_for(self, chat_id: int) -> float:
        """Seconds left of a 429 penalty for this chat (0 when none)."""
        until = self._penalty.get(chat_id)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._penalty[chat_id]
            return 0.0
        return left

    def penalize(self, chat_id: int, seconds: float) -> None:
        """Remember Telegram's retry_after so this process does not spend requests on 429s.

        Telegram's 429 does not say which limit it enforces. One chat's 429 is taken as that
        chat's; 429s for two chats or more within GLOBAL_429_WINDOW seconds as the bot's overall
        ceiling: then every process holds its sends for the retry_after (`RateBudget.hold`)."""
        now = self._clock()
        self._penalty[chat_id] = max(self._penalty.get(chat_id, 0.0), now + seconds)
        recent = self._recent_429s
        recent.append((now, chat_id))
        while recent and recent[0][0] < now - GLOBAL_429_WINDOW:
            recent.popleft()
        if len({c for _, c in recent}) >= 2:
            recent.clear()
            self.hold_all(seconds)

    def hold_all(self, seconds: float) -> None:
        """Hold every send of this process, and of every process sharing the ceiling, for `seconds`."""
        self._held_until = max(self._held_until, self._clock() + seconds)
        self.global_holds += 1
        log.warning("telegram overall flood limit: holding every send seconds=%.1f", seconds)
        if self._shared is not None:
            task = asyncio.get_running_loop().create_task(self._hold_shared(self._shared, seconds))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hold_shared(self, shared: RateBudget, seconds: float) -> None:
        try:
            await shared.hold(seconds)
        except StoreUnavailable as exc:
            log.info("shared send rate unavailable: the hold applies to this process only error=%s", exc)

    async def wait(self, chat_id: int) -> None:
        """Sleep until this chat, its group window and the global ceiling all allow one send."""
        self._maybe_prune()
        is_group = chat_id < 0  # groups, supergroups and channels have negative ids
        while True:
            now = self._clock()
            ready = self._chat.next_free(chat_id, now)
            if is_group:
                ready = max(ready, self._group.next_free(chat_id, now))
            if ready <= now:
                break
            await asyncio.sleep(ready - now)
        while (held := self._held_until - self._clock()) > 0:
            await asyncio.sleep(held)
        if not await self._shared_slot():
            slot = self._global.reserve(self._clock())
            delay = slot - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
        now = self._clock()
        self._chat.record(chat_id, now)
        if is_group:
            self._group.record(chat_id, now)

    async def _shared_slot(self) -> bool:
        """Wait for a slot of the ceiling shared on Redis; False: no shared limiter, or Redis failed."""
        if self._shared is None:
            return False
        async with self._shared_queue:
            try:
                await self._shared.acquire()
            except StoreUnavailable as exc:
                if not self._shared_down:
                    log.warning("shared send rate unavailable, pacing this process alone error=%s", exc)
                self._shared_down = True
                return False
        if self._shared_down:
            log.info("shared send rate available again")
            self._shared_down = False
        return True

    def _maybe_prune(self) -> None:
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            now = self._clock()
            self._chat.prune(now)
            self._group.prune(now)
            for chat_id in [c for c, until in self._penalty.items() if until <= now]:
                del self._penalty[chat_id]
