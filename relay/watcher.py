"""Watches the public feed (by keyword) and single traders, and posts their new signals.

Dedup is by `signal_id` per watch. The first look only records what is there: starting a watch
posts nothing old. Feed pagination is by offset, so new posts shift pages; the newest page is
read each time and anything unseen on it is new.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay import cards
from relay.aitrader import AITraderClient
from relay.chat_settings import ChatSettings
from relay.errors import UpstreamError
from relay.holding import WATCHES, Holding, Routed
from relay.i18n import N_, Catalogues
from relay.journal import FILTERED, HELD, QUEUED, Journal, JournalBatch, stamp
from relay.keys import WATCH_SEEN_CAP, Keys
from relay.leases import Leases
from relay.models import Signal
from relay.names import AgentDirectory
from relay.outbox import Outbox, Outgoing
from relay.store import Store, Subscription

log = logging.getLogger(__name__)

PAGE = 50
SEEN_WINDOW = WATCH_SEEN_CAP


class Watcher:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        client: AITraderClient,
        store: Store,
        outbox: Outbox,
        leases: Leases,
        *,
        interval: float,
        names: AgentDirectory | None = None,
        on_enqueued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        holding: Holding | None = None,
        journal: Journal | None = None,
        chat_settings: ChatSettings | None = None,
        catalogues: Catalogues | None = None,
    ) -> None:
        self._chat_settings = chat_settings  # the watching chat's language for the cards
        self._catalogues = catalogues or Catalogues.load()
        self._holding = holding
        self._journal = journal
        self._r = redis
        self._k = keys
        self._client = client
        self._store = store
        self._outbox = outbox
        self._leases = leases
        self._interval = interval
        self._names = names
        self._on_enqueued = on_enqueued
        self._clock = clock

    def start(self, scheduler: AsyncIOScheduler) -> None:
        scheduler.add_job(
            self.check_all, "interval", seconds=self._interval, id="watches", jitter=min(5.0, self._interval / 4)
        )

    async def check_all(self) -> None:
        try:
            watches = await self._store.watches()
        except RedisError as exc:
            log.warning("watcher: redis unavailable (%s)", type(exc).__name__)
            return
        for sub in watches:
            lease = self._k.watch_lease(sub.sub_id)
            if not await self._leases.acquire(lease, int(self._interval * 1000)):
                continue  # another process checks this one now
            try:
                await self.check(sub)
            except UpstreamError as exc:
                log.info("watcher: upstream error sub=%s (%s)", sub.sub_id, type(exc).__name__)
            finally:
                await self._leases.release(lease)

    async def baseline(self, sub: Subscription) -> int:
        """Record what the watch would show now, so only later signals are posted."""
        signals = await self._fetch(sub)
        ids = [s.signal_id for s in signals]
        if ids:
            await self._r.zadd(self._k.watch_seen(sub.sub_id), {str(i): i for i in ids})
        else:
            await self._r.zadd(self._k.watch_seen(sub.sub_id), {"0": 0})  # marks "baselined"
        return len(ids)

    async def check(self, sub: Subscription) -> int:
        seen_key = self._k.watch_seen(sub.sub_id)
        if not await self._r.exists(seen_key):
            await self.baseline(sub)
            return 0
        signals = await self._fetch(sub)
        if not signals:
            return 0
        scores = await self._r.zmscore(seen_key, [str(s.signal_id) for s in signals])
        new = sorted((s for s, score in zip(signals, scores, strict=True) if score is None), key=lambda s: s.signal_id)
        if not new:
            return 0
        lang = await self._chat_settings.language(sub.chat) if self._chat_settings is not None else None
        t = self._catalogues.translator(lang)
        if sub.kind != "feed":
            what = t.gettext("trader {trader_id}", trader_id=sub.trader_id)
        else:
            what = t.gettext("feed “{keyword}”", keyword=sub.keyword) if sub.keyword else t.gettext("feed")
        label = t.gettext("watch #{sub_id}: {what}", sub_id=sub.sub_id, what=what)
        journal = JournalBatch()
        now = self._clock()
        posted = []
        for s in new:
            key = _delivery_key(sub, s)
            rejected = sub.filter.rejects(s)
            if rejected is not None:
                params = {"sub": sub.sub_id, **rejected.params}
                journal.chat(sub.chat, key, FILTERED, rejected.template, at=now, params=params)
            else:
                posted.append(s)
        # A trader's own signals come without the author's name: it is looked up (and cached).
        authors = {}
        if self._names is not None and posted:
            authors = await self._names.names(s.agent_id for s in posted if not s.agent_name)
        items = [
            Outgoing(
                sub.chat,
                _delivery_key(sub, s),
                stamp(cards.new_signal(s, watch=label, author=authors.get(s.agent_id, ""), t=t), _delivery_key(sub, s)),
                kind=WATCHES,
            )
            for s in posted
        ]
        routed = await self._holding.route(items, now) if self._holding is not None else Routed(items, {})
        queued = routed.queued
        for item in items:
            if item.key in routed.held:
                template, because = routed.held[item.key]
                held = {"sub": sub.sub_id, "held_t": template, **because}
                journal.chat(sub.chat, item.key, HELD, N_("a new signal in watch #{sub}; {held}"), at=now, params=held)
            else:
                new_in = N_("a new signal in watch #{sub}; queued")
                journal.chat(sub.chat, item.key, QUEUED, new_in, at=now, params={"sub": sub.sub_id})
        if queued:
            await self._outbox.enqueue(queued, now=now)
        # Marked seen only after the deliveries are queued: a crash in between re-posts, never loses.
        await self._r.zadd(seen_key, {str(s.signal_id): s.signal_id for s in new})
        size = await self._r.zcard(seen_key)
        if size > SEEN_WINDOW:
            await self._r.zremrangebyrank(seen_key, 0, size - SEEN_WINDOW - 1)
        if self._journal is not None:
            await self._journal.write(journal)
        if queued:
            self._on_enqueued()
        return len(items)

    async def _fetch(self, sub: Subscription) -> tuple[Signal, ...]:
        if sub.kind == "trader" and sub.trader_id:
            return await self._client.agent_signals(sub.trader_id, limit=PAGE)
        # Keyword, type and market narrow the page upstream (the server's feed takes them); the
        # other filters are applied to what comes back.
        page = await self._client.feed(
            keyword=sub.keyword or None,
            message_type=sub.message_type or None,
            market=sub.market or None,
            limit=PAGE,
            sort="new",
        )
        return page.signals


def _delivery_key(sub: Subscription, s: Signal) -> str:
    return f"w{sub.sub_id}:s{s.signal_id}:{sub.chat.key}"
