"""`Relay`: builds the core services from injected clients and runs them in order.

Start: scheduler jobs, delivery, then each adapter with `router.dispatch`. Stop (SIGTERM): no new
polls, in-flight polls persist, in-flight sends finish or stay pending for the next process,
then adapters close. Nothing here knows which platforms exist.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis

from relay import opstats
from relay.adapter import Autocompletes, ChatAdapter, ChatChange, TakesUpdates
from relay.admin import Admin, parse_owner_ids
from relay.aitrader import COMMAND_CONNECTIONS, AITraderClient
from relay.charts.renderer import ChartRenderer
from relay.charts.service import ChartService
from relay.chat_settings import ChatSettings
from relay.commandlimit import CommandLimiter, Rate
from relay.commands import Commands, describe_subscription
from relay.config import RelaySettings
from relay.daily_brief import DailyBriefs
from relay.deadletters import DeadLetters
from relay.delivery import Deliverer
from relay.doorbell import Doorbell, DoorbellSettings, socket_budget
from relay.errors import TokenRejected
from relay.fanout import FanOut
from relay.faults import FaultPoints
from relay.holding import Holding
from relay.i18n import Catalogues
from relay.inbox import Inbox
from relay.intel import Intel
from relay.intel_brief import brief_composer
from relay.journal import Journal
from relay.leases import Leases
from relay.logs import Redactor
from relay.metrics import Metrics
from relay.models import Message
from relay.names import AgentDirectory
from relay.outbox import Outbox, Outgoing
from relay.poller import Poller, PollSettings
from relay.router import Router
from relay.specs import ADMIN, COMMANDS
from relay.store import LinkedAgent, Store
from relay.suggest import Suggestions
from relay.tokens import TokenBox, fingerprint
from relay.trades import TradeDesk
from relay.watcher import Watcher
from relay.why import Why

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        settings: RelaySettings,
        redis: Redis,
        http: httpx.AsyncClient,
        box: TokenBox,
        adapters: Sequence[ChatAdapter],
        *,
        redactor: Redactor,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.keys = settings.keys()
        self.metrics = metrics or Metrics()
        self.adapters = {a.platform: a for a in adapters}
        self._redactor = redactor
        self._clock = clock
        rng = rng or random.Random()
        faults = FaultPoints(settings.relay_fault_pause)
        k = self.keys
        self.client = AITraderClient(http)
        self.store = Store(
            redis,
            k,
            box,
            max_per_chat=settings.max_subscriptions_per_chat,
            max_watches_per_user=settings.max_watches_per_user,
        )
        self.inbox = Inbox(redis, k)
        self.outbox = Outbox(redis, k, max_per_chat=settings.max_queue_per_chat)
        self.leases = Leases(redis)
        self.chat_settings = ChatSettings(redis, k)
        self.journal = Journal(redis, k, clock=clock)
        self.catalogues = Catalogues.load()
        self.deliverer = Deliverer(
            self.outbox,
            self.store,
            self.leases,
            k,
            self.adapters,
            self.metrics,
            concurrency=settings.delivery_concurrency,
            max_attempts=settings.delivery_max_attempts,
            send_timeout=settings.delivery_send_timeout_seconds,
            clock=clock,
            rng=rng,
            faults=faults,
            redact=redactor.redact,
            journal=self.journal,
            on_chat_change=self.on_chat_change,
            chat_settings=self.chat_settings,
            catalogues=self.catalogues,
        )
        self.holding = Holding(
            redis,
            k,
            self.chat_settings,
            self.outbox,
            self.leases,
            self.metrics,
            on_enqueued=self.deliverer.wake,
            clock=clock,
            faults=faults,
            journal=self.journal,
            catalogues=self.catalogues,
        )
        self.fanout = FanOut(
            self.inbox,
            self.outbox,
            self.store,
            self.client,
            k,
            self.metrics,
            on_enqueued=self.deliverer.wake,
            clock=clock,
            holding=self.holding,
            journal=self.journal,
            chat_settings=self.chat_settings,
            catalogues=self.catalogues,
        )
        # The poller's own client on the same pool: its calls leave COMMAND_CONNECTIONS free.
        poll_calls = max(1, settings.aitrader_connections - COMMAND_CONNECTIONS)
        self.poller = Poller(
            redis,
            k,
            AITraderClient(http, max_calls=poll_calls),
            self.store,
            self.inbox,
            self.fanout,
            self.leases,
            self.metrics,
            PollSettings(
                settings.poll_min_seconds,
                settings.poll_max_seconds,
                settings.drain_max_calls,
                concurrency=settings.poll_concurrency,
            ),
            on_revoked=self._tell_revoked,
            clock=clock,
            rng=rng,
            faults=faults,
            journal=self.journal,
        )
        # Off, or with no socket allowed, nothing is opened: polling alone, as before.
        self.doorbell: Doorbell | None = None
        sockets = socket_budget(settings.doorbell_max_sockets) if settings.doorbell else 0
        if settings.doorbell and sockets < settings.doorbell_max_sockets:
            log.warning(
                "doorbell: at most %d sockets, not DOORBELL_MAX_SOCKETS=%d: the open-file limit (ulimit -n) "
                "leaves no more beside Redis and HTTP connections",
                sockets,
                settings.doorbell_max_sockets,
            )
        if sockets > 0:
            self.doorbell = Doorbell(
                self.store,
                self.leases,
                k,
                self.poller.poll_now,
                settings.base_url,
                self.metrics,
                DoorbellSettings(max_sockets=sockets),
                rng=rng,
            )
        self.names = AgentDirectory(redis, k, self.client)
        self.watcher = Watcher(
            redis,
            k,
            self.client,
            self.store,
            self.outbox,
            self.leases,
            interval=settings.feed_poll_seconds,
            names=self.names,
            on_enqueued=self.deliverer.wake,
            clock=clock,
            holding=self.holding,
            journal=self.journal,
            chat_settings=self.chat_settings,
            catalogues=self.catalogues,
        )
        self.briefs = DailyBriefs(
            redis,
            k,
            self.chat_settings,
            self.outbox,
            brief_composer(Intel(self.client).show),
            on_enqueued=self.deliverer.wake,
            clock=clock,
            catalogues=self.catalogues,
            journal=self.journal,
        )
        self.renderer = ChartRenderer(workers=settings.chart_workers)
        self.charts = ChartService(self.client, self.renderer, cache_seconds=settings.chart_cache_seconds, clock=clock)
        self.trades = TradeDesk(redis, k, self.client, clock=clock)
        self.suggestions = Suggestions(
            redis, k, self.store, self.client, journal=self.journal, briefs=self.briefs, describe=describe_subscription
        )
        self.dead_letters = DeadLetters(redis, k, clock=clock, journal=self.journal)
        self.commands = Commands(
            self.store,
            self.client,
            self.poller,
            self.watcher,
            self.outbox,
            names=self.names,
            desk=self.trades,
            register_secret=redactor.add,
            forget_secret=redactor.discard,
            clock=clock,
            charts=self.charts,
            chat_settings=self.chat_settings,
            briefs=self.briefs,
            holding=self.holding,
            why=Why(self.journal, self.store, clock=clock, outbox=self.outbox, dead_letters=self.dead_letters),
            catalogues=self.catalogues,
            suggestions=self.suggestions,
        )
        owners = parse_owner_ids(settings.owner_ids)
        admin = None
        if owners:
            admin = Admin(owners, self.dead_letters, lambda: opstats.collect(redis, k), self.deliverer.wake)
        strict = {
            "link": Rate(settings.link_rate_per_10_minutes, 600),
            "feed": Rate(settings.feed_rate_per_minute, 60),
        }
        limiter = CommandLimiter(redis, k, general=Rate(settings.command_rate_per_minute, 60), strict=strict)
        self.router = Router(
            self.commands,
            admin,
            limiter=limiter,
            chat_settings=self.chat_settings,
            catalogues=self.catalogues,
            suggestions=self.suggestions,
        )
        # /admin reaches the router only where an adapter knows the name (Telegram's text commands).
        self._specs = (*COMMANDS, ADMIN) if owners else COMMANDS
        self._scheduler: AsyncIOScheduler | None = None
        self._stopped = asyncio.Event()
        self._stopping = False

    async def mask_stored_tokens(self) -> int:
        """Registers every linked agent's token with the log filter, so a token this process did not
        link itself (another process, an earlier run) is masked too. Returns how many."""
        count = 0
        for agent_id in await self.store.agent_ids():
            agent = await self.store.agent(agent_id)
            if agent is not None and agent.token:
                self._redactor.add(agent.token)
                count += 1
        return count

    async def start(self) -> None:
        await self.mask_stored_tokens()
        self._scheduler = AsyncIOScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
        )
        self.poller.start(self._scheduler)
        self.watcher.start(self._scheduler)
        self.briefs.start(self._scheduler)
        self.holding.start(self._scheduler)
        self._scheduler.start()
        if self.doorbell is not None:
            self.doorbell.start()
        await self.deliverer.start()
        try:
            for adapter in self.adapters.values():
                if isinstance(adapter, Autocompletes):
                    adapter.attach_suggestions(self.router.suggest)
                await adapter.start(self._specs, self.router.dispatch, self.on_chat_change)
        except BaseException:
            await self.stop()  # a platform that refuses to start must not leave polling running
            raise
        log.info("relay started adapters=%s", ",".join(self.adapters) or "none")

    async def warm_charts(self) -> None:
        """Start the chart workers ahead of the first /chart (each spawn imports matplotlib, about
        a second). Optional: without it the first chart pays that second."""
        try:
            await self.renderer.warm()
        except Exception:
            log.warning("chart workers did not start; the first /chart will try again", exc_info=True)

    async def stop(self) -> None:
        """Idempotent: a second SIGTERM changes nothing."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.settings.shutdown_grace_seconds
        started = time.monotonic()
        deadline = started + grace
        # Everything happens inside the grace, a platform that stopped answering included: the
        # adapters keep the last slice of it to close their connections.
        close_at = deadline - min(1.0, grace / 4)
        # Taking updates stops first (a command arriving now could not be answered in time) and
        # runs beside the rest; sends under way get what is left of the grace, and no new one
        # starts meanwhile.
        updates = [
            asyncio.create_task(self._stop_updates(a, close_at), name=f"stop updates {a.platform}")
            for a in self.adapters.values()
            if isinstance(a, TakesUpdates)
        ]
        # Chart workers may still be starting (a spawned worker imports its drawing library):
        # let them finish beside the rest rather than after it.
        charts = asyncio.create_task(
            self.renderer.close(timeout=max(0.0, close_at - time.monotonic())), name="stop chart workers"
        )
        await asyncio.gather(self._stop_polling(grace / 2), self.deliverer.stop(max(0.0, close_at - time.monotonic())))
        _, late = await asyncio.wait({charts, *updates}, timeout=max(0.0, close_at - time.monotonic()))
        if charts in late:  # only if killing them did not free them either
            log.warning("relay: chart workers still busy at the end of the grace")
        for adapter in self.adapters.values():
            try:
                await asyncio.wait_for(adapter.stop(), timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("relay: adapter %s did not close within the grace; exiting anyway", adapter.platform)
            except Exception as exc:
                log.warning(
                    "relay: adapter %s did not stop cleanly (%s: %s)", adapter.platform, type(exc).__name__, exc
                )
        self._stopped.set()
        log.info("relay stopped in %.2fs (grace %.0fs)", time.monotonic() - started, grace)

    async def _stop_polling(self, grace: float) -> None:
        # The poller first: shutting the scheduler down cancels the jobs still running, and a
        # poll cancelled between the heartbeat and its persist leaves work for a reconcile.
        # The doorbell before both: no push may start a poll once stopping has begun.
        if self.doorbell is not None:
            await self.doorbell.stop(timeout=grace / 2)
        await self.poller.stop(grace)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)

    @staticmethod
    async def _stop_updates(adapter: TakesUpdates, until: float) -> None:
        try:
            await asyncio.wait_for(adapter.stop_updates(), timeout=max(0.1, until - time.monotonic()))
        except TimeoutError:
            log.warning("relay: %s kept taking updates past the grace; closing it anyway", adapter.platform)
        except Exception as exc:
            log.warning("relay: %s did not stop taking updates (%s: %s)", adapter.platform, type(exc).__name__, exc)

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def on_chat_change(self, change: ChatChange) -> None:
        if change.change == "gone":
            dropped = await self.store.drop_chat(change.chat)
            await self.chat_settings.drop(change.chat)
            await self.briefs.drop_chat(change.chat)
            await self.holding.drop_chat(change.chat)
            if change.chat.thread_id is None:
                # The bot left the whole chat: its forum topics are gone with it.
                for topic in await self.store.topics_of(change.chat):
                    dropped += await self.store.drop_chat(topic)
            log.info("relay: chat gone chat=%s subscriptions_removed=%d", change.chat.key, dropped)
        elif change.change == "moved" and change.new_chat is not None:
            await self.store.move_chat(change.chat, change.new_chat)
            await self.chat_settings.move(change.chat, change.new_chat)
            await self.briefs.move_chat(change.chat, change.new_chat)
            await self.holding.move_chat(change.chat, change.new_chat)
            await self.outbox.move(change.chat, change.new_chat, now=self._clock())
            self.deliverer.wake()

    async def _tell_revoked(self, agent: LinkedAgent, reason: str) -> None:
        """Each chat routed to the agent hears once that its token stopped working."""
        fp = fingerprint(agent.token or "undecryptable")
        chats = {s.chat.key: s.chat for s in await self.store.agent_subscriptions(agent.agent_id)}
        items = []
        for key, chat in chats.items():
            t = self.catalogues.translator(await self.chat_settings.language(chat))
            notice = Message(
                title=t.gettext(
                    "Notifications for {name} (#{agent_id}) are paused",
                    name=agent.name or t.gettext("agent"),
                    agent_id=agent.agent_id,
                ),
                body=f"{t.gettext(reason)}. {t.gettext(TokenRejected.sentence)}",
            )
            items.append(Outgoing(chat, f"{agent.agent_id}:revoked:{fp}:{key}", notice))
        if items:
            await self.outbox.enqueue(items, now=self._clock())
            self.deliverer.wake()
