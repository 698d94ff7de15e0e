"""Polls each linked agent: reconcile if needed, drain the heartbeat, persist, fan out.

When: a due-time queue shared by every process (a Redis sorted set, agent -> next due time,
relay.keys.poll_due). One APScheduler job per process ticks a few times a second and claims the
agents that are due, as many as it has free poll slots, in one script that also moves each claimed
agent's due time a lease-time ahead: no other process claims it meanwhile, and if the claimer dies
the agent comes due again within seconds. A finished poll writes the next due time (the server's
interval, or a backoff after an error). Who: a Redis lease per agent, so a poll that does not come
from a claim (a doorbell push, a test) still never overlaps another process's poll of the agent.

The destructive heartbeat is called only after Redis has accepted the "reconcile me" mark, so a
response lost to a timeout, a crash or a Redis error is recovered through `messages/recent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import stop_after_delay, wait_random_exponential

from relay import parse, render
from relay.aitrader import AITraderClient
from relay.backoff import full_jitter
from relay.catalogue import kind_of
from relay.errors import OutcomeUnknown, TokenRejected, UpstreamError, UpstreamUnavailable
from relay.fanout import FanOut
from relay.faults import FaultPoints
from relay.i18n import N_
from relay.inbox import Inbox, InboxEntry
from relay.journal import Journal, JournalBatch
from relay.keys import INBOX_CAP, REVOKED_TTL, Keys
from relay.leases import Leases
from relay.metrics import Metrics
from relay.models import Notification
from relay.poll_rounds import Begun, Ended, Ending, PollRounds
from relay.recovery import PAGE, Gap, gap_after_loss
from relay.redis_values import text
from relay.retrying import retried
from relay.store import LinkedAgent, Store
from relay.tokens import fingerprint

log = logging.getLogger(__name__)

RECENT_VIEWS = (None, "discussion", "strategy")  # each view returns at most 50 rows
LEASE_MS = 9_000  # kept alive while polling; a dead poller's agents move on within 9 s
SYNC_SECONDS = 5.0
TICK_SECONDS = 0.25  # how often a process claims due agents: the most a due poll waits for a claim
OUTAGE_STREAK = 3  # consecutive polls (any agents) that found AI-Trader unavailable
PERSIST_PATIENCE = 30.0  # seconds a heartbeat response is held in memory while Redis recovers

# KEYS[1] the due queue. ARGV: now (ms), the claimed agents' new due time (now + lease), how many.
# Returns agent id, due time pairs. One key: it stays one call on a Redis Cluster too.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], due[i]) end
return due
"""

# KEYS[1] the due queue. ARGV[1] now (ms): every agent due later is due now (an outage is over).
_ALL_DUE = """
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
for _, id in ipairs(later) do redis.call('ZADD', KEYS[1], ARGV[1], id) end
return #later
"""

OnRevoked = Callable[[LinkedAgent, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PollSettings:
    min_interval: float = 30.0
    max_interval: float = 300.0
    drain_max_calls: int = 10
    backoff_base: float = 5.0
    concurrency: int = 32


@dataclass(slots=True)
class _Drain:
    """The "reconcile me" mark as this poll knows it."""

    marked: bool  # set, by this poll or by its begin script
    backlog: int  # inbox entries, as begin counted them plus what this poll read
    only_end: bool = True  # nothing but the end script stores entries (fan-out can start from memory)

    def recovered(self, stored: int) -> None:
        """Rows stored outside the end script (reconcile, observe): fan-out reads the inbox."""
        self.backlog += stored
        self.only_end = self.only_end and not stored

    outstanding: bool = False  # a heartbeat was sent and its answer is neither in memory nor stored
    # AI-Trader answered the `recent` read right after a heartbeat whose answer broke off: that
    # failure was one connection's, not an outage's.
    answered_after_loss: bool = False


class _LeaseKeeper:
    """Renews a poll's lease every third of its time while the poll runs; nothing for a quick
    poll (a timer, not a task per poll). A dead process stops renewing: its lease runs out."""

    def __init__(self, leases: Leases, key: str, held: Callable[[], bool]) -> None:
        self._leases = leases
        self._key = key
        self._held = held  # False once the end script released the lease (fan-out may still run)
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(LEASE_MS / 3000, self._fire)

    def _fire(self) -> None:
        self._task = self._loop.create_task(self._renew(), name=f"lease {self._key}")

    async def _renew(self) -> None:
        if not self._held():
            return
        try:
            if not await self._leases.renew(self._key, LEASE_MS):
                log.warning("lease lost key=%s", self._key)
                return
        except RedisError as exc:
            log.warning("lease renewal failed key=%s (%s)", self._key, type(exc).__name__)
        self._handle = self._loop.call_later(LEASE_MS / 3000, self._fire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._task is not None:
            self._task.cancel()


class Poller:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        client: AITraderClient,
        store: Store,
        inbox: Inbox,
        fanout: FanOut,
        leases: Leases,
        metrics: Metrics,
        settings: PollSettings,
        *,
        on_revoked: OnRevoked,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        faults: FaultPoints | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._journal = journal
        self._faults = faults or FaultPoints()
        self._r = redis
        self._k = keys
        self._client = client
        self._store = store
        self._inbox = inbox
        self._fanout = fanout
        self._leases = leases
        self._metrics = metrics
        self._s = settings
        self._on_revoked = on_revoked
        self._clock = clock
        self._rng = rng or random.Random()
        self._scheduler: AsyncIOScheduler | None = None
        self._due = keys.poll_due()
        self._rounds = PollRounds(redis, keys, leases.owner)
        self._claim = redis.register_script(_CLAIM)
        self._all_due = redis.register_script(_ALL_DUE)
        self._intervals: dict[int, float] = {}  # the server's interval, per agent this process polled
        self._reconciled_here: set[int] = set()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._polling: set[int] = set()  # agents with a poll running in this process
        self._claims: set[asyncio.Task[int]] = set()
        self._claiming = False
        self._claim_failing = False
        self._backlog = False  # the last claim filled every free slot: more may be due
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, scheduler: AsyncIOScheduler) -> None:
        """Add the poller's two jobs to the process's scheduler (started by the caller)."""
        self._scheduler = scheduler
        scheduler.add_job(self.sync, "interval", seconds=SYNC_SECONDS, id="sync", next_run_time=_now_dt())
        # One job whatever the number of agents. A firing while the last claim still waits on Redis
        # returns at once (`_claiming`): with max_instances=1 APScheduler would log a warning for it.
        scheduler.add_job(
            self.claim_due, "interval", seconds=TICK_SECONDS, id="claim", next_run_time=_now_dt(), max_instances=2
        )

    async def stop(self, grace: float) -> None:
        """No new polls; in-flight ones finish persisting (they make no further heartbeat call)."""
        self._stopping = True
        if self._in_flight:
            _, late = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in late:
                # Its reconcile mark stays set: the next poller reads `recent` for this agent.
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1)

    async def sync(self) -> None:
        """Match the due queue to the linked agents (linking adds to both; this mends what an older
        version, a restore or a race left). The queue is read before the agents: an agent linked
        in between is then in both reads or only in the second, where adding it again is a no-op."""
        if self._stopping:
            return
        try:
            queued = {int(text(x)) for x in await self._r.zrange(self._due, 0, -1)}
            linked = set(await self._store.agent_ids())
            missing, gone = linked - queued, queued - linked
            if missing or gone:
                now_ms = self._now_ms()
                spread = min(self._s.min_interval, 5.0) * 1000
                async with self._r.pipeline(transaction=False) as pipe:
                    if missing:
                        pipe.zadd(
                            self._due, {str(a): now_ms + int(self._rng.uniform(0, spread)) for a in missing}, nx=True
                        )
                    if gone:
                        pipe.zrem(self._due, *gone)
                    await pipe.execute()
        except RedisError as exc:
            log.warning("poller: cannot read linked agents (%s)", type(exc).__name__)
            return
        for agent_id in set(self._intervals) - linked:
            del self._intervals[agent_id]
        self._metrics.agents.set(len(linked))

    async def claim_due(self) -> int:
        """Claim due agents, as many as there are free poll slots, and start their polls; returns
        how many. Called by the scheduler's tick, and at once when a poll ends while more are due."""
        if self._stopping or self._claiming:
            return 0
        free = self._s.concurrency - len(self._polling)
        if free <= 0:
            self._backlog = True
            return 0
        self._claiming = True
        claimed: list[int] = []
        try:
            now_ms = self._now_ms()
            hold = now_ms + LEASE_MS
            raw = await self._claim(keys=[self._due], args=[now_ms, hold, free])
            # Their slots are taken now, and their polls begin in one round trip for the claim.
            claimed = [a for a in (int(raw[i]) for i in range(0, len(raw), 2)) if a not in self._polling]
            self._polling.update(claimed)
            begins = await self._rounds.begin_many(claimed, LEASE_MS)
        except RedisError as exc:
            # A claimed agent comes due again a lease time on; one whose lease or mark was set
            # meanwhile finds them as after a crash (the lease runs out, the mark reconciles).
            self._polling.difference_update(claimed)
            if not self._claim_failing:
                log.warning("poller: cannot claim due agents (%s); polling waits for Redis", type(exc).__name__)
            self._claim_failing = True
            return 0
        finally:
            self._claiming = False
        if self._claim_failing:
            log.info("poller: claiming due agents again")
            self._claim_failing = False
        self._backlog = len(raw) // 2 >= free
        for i in range(0, len(raw), 2):
            due_ms = float(raw[i + 1])
            if due_ms > 0:  # 0: linked just now, due at once
                self._metrics.poll_lateness.observe(max(0.0, (now_ms - due_ms) / 1000))
        for agent_id, begun in zip(claimed, begins, strict=True):
            if isinstance(begun, Exception):
                self._polling.discard(agent_id)
                log.warning("poller: cannot begin a poll agent=%s (%s)", agent_id, type(begun).__name__)
                continue
            task = asyncio.create_task(self._run(agent_id, hold, begun), name=f"poll {agent_id}")
            self._in_flight.add(task)
        return len(raw) // 2

    async def make_due(self, agent_id: int) -> bool:
        """Make a queued agent due now in every process's view; False when it is not queued
        (not linked). A poll running meanwhile keeps it due: it runs again after that one ends."""
        return bool(await self._r.zadd(self._due, {str(agent_id): self._now_ms()}, xx=True, lt=True, ch=True))

    async def poll_now(self, agent_id: int) -> bool:
        """The doorbell rang (relay.doorbell): poll this agent now, not at its due time, and return
        once the poll is done. False when it was not polled: a poll of it runs already, here or
        (its lease) elsewhere. The poll's end sets its next due time as any poll's does."""
        if self._stopping or agent_id in self._polling:
            return False
        self._polling.add(agent_id)
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        return await self._guarded(agent_id, None, task)

    async def wait_idle(self) -> None:
        """Return once this process has no poll or claim running (tests, benchmarks)."""
        while self._in_flight or self._claims:
            await asyncio.wait({*self._in_flight, *self._claims})

    async def _run(self, agent_id: int, hold: int, begun: Begun) -> None:
        await self._guarded(agent_id, hold, asyncio.current_task(), begun)

    async def _guarded(
        self, agent_id: int, hold: int | None, task: asyncio.Task[Any] | None, begun: Begun | None = None
    ) -> bool:
        """One poll with its failures logged, not raised; the caller has put the agent in
        `_polling` (and its task in `_in_flight`), which this takes out when done."""
        try:
            return await self._poll_claimed(agent_id, hold, begun=begun)
        except RedisError as exc:
            log.warning("poller: redis unavailable agent=%s (%s); not polling", agent_id, type(exc).__name__)
        except asyncio.CancelledError:
            log.info("poller: poll cancelled at shutdown agent=%s", agent_id)
        except Exception:
            log.exception("poller: unexpected error agent=%s", agent_id)
        finally:
            self._polling.discard(agent_id)
            if task is not None:
                self._in_flight.discard(task)
            # More were due than slots: refill once a few slots are free rather than waiting for the
            # tick (which would cap polls at slots per tick), and not per poll (a claim per poll).
            if (
                self._backlog
                and not self._stopping
                and self._s.concurrency - len(self._polling) >= max(1, self._s.concurrency // 8)
            ):
                self._refill()
        return False

    def _refill(self) -> None:
        if self._claiming:
            return
        task = asyncio.create_task(self.claim_due(), name="poll claim")
        # Held until done (the loop keeps only weak references to tasks).
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    # --- one poll ------------------------------------------------------------------------
    async def poll_if_due(self, agent_id: int) -> bool:
        """Poll the agent if its due time has come (or it is not queued yet); False when not due
        or another process holds its lease. The scheduler's path is `claim_due`."""
        due = await self._r.zscore(self._due, str(agent_id))
        if due is not None and due > self._now_ms():
            return False
        return await self._poll_claimed(agent_id, None)

    async def _poll_claimed(
        self, agent_id: int, hold: int | None, *, gate: bool = True, begun: Begun | None = None
    ) -> bool:
        """Begin (lease, record, mark: one round trip, or `begun` by the claim), poll, end (one
        round trip). False when another process holds the agent's lease, or the outage gate kept
        this poll back."""
        if begun is None:
            begun = await self._rounds.begin(agent_id, LEASE_MS)
        if not begun.held:
            return False
        if not begun.record:
            return True  # unlinked meanwhile (the script released the lease)
        # A poll that ends before its heartbeat (the outage gate) clears only a mark its own begin
        # set: one left by an earlier lost answer still waits for its `recent` read. Clearing it
        # here lost that answer's rows without a report (the long lost-responses run: 184-332).
        ending = Ending(hold=hold, clear_mark=begun.marked and not begun.was_marked)
        keeper = _LeaseKeeper(self._leases, self._k.poll_lease(agent_id), lambda: ending.release)
        try:
            # AI-Trader looks down for everyone: one probe per interval across all processes,
            # instead of every agent's own backoff hammering it (and lagging after recovery).
            if (
                gate
                and begun.streak >= OUTAGE_STREAK
                and not await self._r.set(
                    self._k.upstream_probe(), self._leases.owner, nx=True, px=int(self._s.min_interval * 1000)
                )
            ):
                ending.next_due = self._clock() + self._s.min_interval
                await self._end(agent_id, ending)
                return False
            await self._poll_agent(agent_id, begun, ending)
            return True
        finally:
            keeper.stop()
            if ending.release:  # `end` did not run (an error on the way): let go here
                with contextlib.suppress(RedisError):
                    await self._leases.release(self._k.poll_lease(agent_id))

    async def poll(self, agent_id: int) -> None:
        """One full cycle for an agent now, whatever its due time: waits (up to a lease time)
        for a poll of it already running elsewhere to end, as that one holds its lease."""
        deadline = time.monotonic() + LEASE_MS / 1000
        while not await self._poll_claimed(agent_id, None, gate=False) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _end(self, agent_id: int, ending: Ending) -> Ended:
        ended = await self._rounds.end(agent_id, ending, now=time.time())
        ending.release = False
        return ended

    async def _poll_agent(self, agent_id: int, begun: Begun, ending: Ending) -> None:
        started = self._clock()
        agent = self._store.linked_agent(agent_id, begun.record)
        assert agent is not None
        if agent.state != "active":
            # Paused until /link brings a new token (which makes it due at once).
            ending.next_due = started + self._s.max_interval
            await self._end(agent_id, ending)
            return
        if agent.token is None:
            await self._revoked(agent, N_("the stored token cannot be decrypted (was RELAY_SECRET_KEY changed?)"))
            ending.next_due = started + self._s.max_interval
            await self._end(agent_id, ending)
            return
        if not begun.listeners:
            # No chat subscribes to this agent: a heartbeat would mark its notifications read
            # upstream for nobody (the demo lost its seeded ones when the first poll came between
            # /link and /subscribe), and in observe mode they would count as seen. They wait
            # unread upstream; a /subscribe makes the agent due at once.
            ending.next_due = started + self._intervals.get(agent_id, self._s.min_interval)
            ending.outcome = "idle"
            await self._end(agent_id, ending)
            return
        # What this poll fetched and routed, for /why: written once, at the end of the poll.
        journal = JournalBatch()
        try:
            await self._poll(agent, begun, ending, journal, started)
        finally:
            if self._journal is not None:
                await self._journal.write(journal)

    async def _poll(
        self, agent: LinkedAgent, begun: Begun, ending: Ending, journal: JournalBatch, started: float
    ) -> None:
        agent_id = agent.agent_id
        interval = self._intervals.get(agent_id, self._s.min_interval)
        drain = _Drain(marked=begun.marked, backlog=begun.backlog, only_end=not begun.backlog)
        try:
            if agent.mode == "observe":
                drain.recovered(await self._observe(agent, journal))
            else:
                if begun.was_marked:
                    drain.recovered(await self.reconcile(agent, journal=journal))
                    drain.marked = False  # reconcile cleared the mark: the heartbeat sets it again
                elif agent_id not in self._reconciled_here:
                    # Start-up: a clean stop leaves no mark, but a Redis that lost its last second
                    # of writes may have lost one too. One view is enough for that; a marked
                    # agent gets all three.
                    drain.recovered(await self._start_up_check(agent, journal))
                interval = await self._drain(agent, journal, drain, ending) or interval
        except TokenRejected:
            self._metrics.polls.labels(agent.mode, "token_rejected").inc()
            await self._revoked(agent, N_("AI-Trader rejected the token"))
            ending.clear_mark = drain.marked and not drain.outstanding
            ending.next_due = started + self._s.max_interval
            await self._end(agent_id, ending)
            return
        except UpstreamError as exc:
            self._metrics.polls.labels(agent.mode, "upstream_error").inc()
            self._metrics.upstream_errors.labels(type(exc).__name__).inc()
            fails = begun.fails + 1
            wait = full_jitter(fails, base=self._s.backoff_base, cap=self._s.max_interval, rng=self._rng)
            # A lost answer keeps its mark (reconcile did not prove it recovered): the next poll reads `recent`.
            ending.clear_mark = drain.marked and not drain.outstanding
            ending.next_due = self._clock() + wait
            ending.outcome, ending.error = "error", exc.sentence
            ending.fails, ending.fails_ttl = fails, int(self._s.max_interval * 4)
            # Counted toward the outage gate only when nothing showed AI-Trader answering: cut
            # answers that `recent` recovered at once tripped the gate, which then held polls back
            # until backlogs passed the page `recent` can show (the long lost-responses run lost
            # 202-225 rows at full rate, all reported; 39-81 since, which is what a page allows).
            ending.outage_failure = isinstance(exc, UpstreamUnavailable) and not drain.answered_after_loss
            await self._end(agent_id, ending)
            log.info(
                "poller: upstream error agent=%s fails=%d wait=%.1fs (%s)", agent_id, fails, wait, type(exc).__name__
            )
            if drain.backlog:
                await self._fanout.fan_out(agent_id, journal)  # leftovers from an earlier cycle still go out
            return
        self._metrics.polls.labels(agent.mode, "ok").inc()
        ending.clear_mark = drain.marked and not drain.outstanding
        ending.next_due = started + interval
        ending.outcome = "ok"
        ending.fails = 0 if begun.fails else None

        # The response is the only copy of these messages: keep retrying while Redis
        # recovers rather than drop it (`recent` reaches back only 50 rows).
        async def end() -> Ended:
            return await self._end(agent_id, ending)

        ended = await retried(
            end, retry_on=RedisError, stop=stop_after_delay(PERSIST_PATIENCE), wait=wait_random_exponential(0.1, 3)
        )
        new = sum(1 for a in ended.added if not a.is_task)
        self._metrics.persisted.inc(new)
        if ended.cleared_streak >= OUTAGE_STREAK:
            await self._outage_over()
        await self._faults.reached("after_persist")
        # Recovered rows (reconcile) or an earlier answer of this drain are in the inbox too: read it.
        if ended.added and drain.only_end:
            await self._fanout.fan_out(agent_id, journal, self._in_memory(agent_id, ended))
        elif ended.added or drain.backlog:
            await self._fanout.fan_out(agent_id, journal)

    def _fetched(
        self,
        journal: JournalBatch,
        agent_id: int,
        rows: Sequence[Notification],
        how: str,
        call: dict[str, int] | None = None,
    ) -> None:
        """Journal what a call read (new or not: a row read twice shows both reads)."""
        if self._journal is None:
            return
        now = self._clock()
        params = {"process": self._leases.owner[:6], **(call or {})}
        reads = [(f"m{n.message_id}", render.positive_int(n.data, "signal_id"), kind_of(n.kind)) for n in rows]
        journal.fetched_many(agent_id, reads, how, at=now, params=params)

    async def _drain(self, agent: LinkedAgent, journal: JournalBatch, drain: _Drain, ending: Ending) -> float | None:
        """Heartbeat until nothing more is waiting (bounded); returns the server's interval. The
        last answer is left in `ending`, for the end script to store; earlier ones (a busy inbox)
        are stored as they come."""
        assert agent.token is not None
        interval = None
        for call in range(self._s.drain_max_calls):
            if self._stopping:
                break
            if drain.backlog >= INBOX_CAP:
                # Fan-out is not keeping up (or keeps failing): leave the rest upstream, where
                # it waits unread, rather than grow the inbox without bound.
                log.warning("poller: inbox backlog at its cap, not polling agent=%s", agent.agent_id)
                break
            if ending.rows or ending.tasks is not None:
                await self._store_answer(agent.agent_id, ending)  # the last call's, before the next call
                drain.marked = drain.only_end = False
            # Marked before the destructive read (the begin script's mark, on a first call);
            # cleared only once its answer is stored.
            if not drain.marked:
                await self._inbox.mark_for_reconcile(agent.agent_id)
                drain.marked = True
            drain.outstanding = True
            try:
                beat = await self._client.heartbeat(agent.token)
            except TokenRejected:
                drain.outstanding = False  # refused before anything was read
                raise
            except OutcomeUnknown:
                # The server may have marked rows read and lost the answer: read `recent` now,
                # while they are still among the newest 50, not one interval later.
                with contextlib.suppress(UpstreamError):
                    drain.recovered(await self.reconcile(agent, journal=journal))
                    drain.marked = drain.outstanding = False
                    drain.answered_after_loss = True
                raise
            await self._faults.reached("after_heartbeat")
            self._fetched(
                journal,
                agent.agent_id,
                beat.notifications,
                N_("heartbeat call {call} of a poll by process {process}"),
                {"call": call + 1},
            )
            # Pending tasks come back on every heartbeat: they are journaled when fanned out, once.
            ending.rows = beat.notifications
            if call == 0:
                ending.tasks, ending.tasks_complete = beat.tasks, beat.remaining_tasks == 0
            drain.outstanding = False  # in memory now; stored by `end` or before the next call
            drain.backlog += len(beat.notifications)
            if beat.unparsable:
                log.warning("poller: %d heartbeat rows without an id agent=%s", beat.unparsable, agent.agent_id)
            if beat.poll_interval_seconds:
                interval = min(max(beat.poll_interval_seconds, self._s.min_interval), self._s.max_interval)
                self._intervals[agent.agent_id] = interval
            # Never loop on has_more_tasks: it stays true for ever past 10 pending tasks.
            if not beat.has_more_messages:
                ending.settle = True  # every unread row is in this answer or stored already
                break
        return interval

    @staticmethod
    def _in_memory(agent_id: int, ended: Ended) -> list[InboxEntry]:
        """The entries the end script added, as `Inbox.entries` would read them back."""
        out = []
        for a in ended.added:
            n = parse.notification(json.loads(a.row), agent_id)
            if n is not None:
                out.append(InboxEntry(a.entry_id, a.is_task, n))
        return out

    async def _store_answer(self, agent_id: int, ending: Ending) -> None:
        """Store an answer held in `ending` now, in a drain of several calls (clears the mark)."""
        rows, tasks, complete = ending.rows, ending.tasks, ending.tasks_complete

        async def persist() -> int:
            stored = await self._inbox.persist(agent_id, rows)
            if tasks is not None:
                await self._inbox.persist_tasks(agent_id, tasks, complete=complete, now=self._clock())
            await self._inbox.reconciled(agent_id)
            return stored

        new = await retried(
            persist, retry_on=RedisError, stop=stop_after_delay(PERSIST_PATIENCE), wait=wait_random_exponential(0.1, 3)
        )
        self._metrics.persisted.inc(new)
        ending.rows, ending.tasks = (), None

    async def reconcile(
        self,
        agent: LinkedAgent,
        views: tuple[str | None, ...] = RECENT_VIEWS,
        *,
        after_loss: bool = True,
        journal: JournalBatch | None = None,
    ) -> int:
        """Insert what `messages/recent` shows and the dedup set lacks (read-only upstream).

        After a possibly lost response (`after_loss`), the unfiltered page must also prove that
        nothing of it is missing (relay.recovery); when it cannot, the possible loss is counted
        and reported instead of silently clearing the mark."""
        assert agent.token is not None
        recovered = 0
        gap: Gap | None = None
        settled = await self._inbox.settled_id(agent.agent_id) if after_loss else None
        for view in views:
            rows = await self._client.recent(agent.token, category=view, limit=PAGE)
            recovered += await self._store_unseen(
                agent.agent_id, rows, journal, N_("recovered through messages/recent by process {process}")
            )
            if after_loss and view is None:
                gap = gap_after_loss(rows, settled)
        if gap is not None:
            await self._report_loss(agent, gap)
        await self._inbox.reconciled(agent.agent_id)
        return self._reconciled(agent.agent_id, recovered)

    async def _start_up_check(self, agent: LinkedAgent, journal: JournalBatch) -> int:
        """The start-up reconcile: store what `messages/recent` shows as read upstream and the
        dedup set lacks (a lost mark's answer can only hold rows the server marked read). Rows
        still unread come with this poll's heartbeat, under the mark its begin script set, which
        stays: storing them here too made each agent's first poll store its backlog twice and
        fan out by reading the inbox back, and clearing the mark cost a round trip to set it again."""
        assert agent.token is not None
        rows = await self._client.recent(agent.token, category=RECENT_VIEWS[0], limit=PAGE)
        read = tuple(n for n in rows if n.read is not False)
        how = N_("recovered through messages/recent by process {process}")
        recovered = await self._store_unseen(agent.agent_id, read, journal, how) if read else 0
        return self._reconciled(agent.agent_id, recovered)

    def _reconciled(self, agent_id: int, recovered: int) -> int:
        """This process has read `recent` for the agent; `recovered` rows were stored from it."""
        self._reconciled_here.add(agent_id)
        if recovered:
            self._metrics.reconciled.inc(recovered)
            log.info("poller: recovered %d notifications through recent agent=%s", recovered, agent_id)
        return recovered

    async def _report_loss(self, agent: LinkedAgent, gap: Gap) -> None:
        text = gap.describe()
        self._metrics.possible_losses.inc()
        log.warning(
            "poller: possible loss agent=%s %s: a heartbeat answer was lost and messages/recent cannot show "
            "all of it (more than %d messages in one second)",
            agent.agent_id,
            text,
            PAGE,
        )
        await self._store.record_possible_loss(
            agent.agent_id,
            low=gap.low,
            high=gap.high,
            boundary=gap.boundary.isoformat() if gap.boundary else "",
            text=text,
            now=self._clock(),
        )

    async def _observe(self, agent: LinkedAgent, journal: JournalBatch) -> int:
        """Observe mode reads only `messages/recent`, so the agent's own heartbeat loses nothing.
        Returns how many rows were new."""
        assert agent.token is not None
        rows = await self._client.recent(agent.token, limit=50)
        how = N_("read through messages/recent (observe mode) by process {process}")
        new = await self._store_unseen(agent.agent_id, rows, journal, how)
        if new and len(rows) >= 50:
            for view in RECENT_VIEWS[1:]:  # a busy inbox: the per-category views reach further back
                new += await self._store_unseen(
                    agent.agent_id, await self._client.recent(agent.token, category=view, limit=50), journal, how
                )
        self._metrics.persisted.inc(new)
        return new

    async def _store_unseen(
        self, agent_id: int, rows: tuple[Notification, ...], journal: JournalBatch | None = None, how: str = ""
    ) -> int:
        unseen = set(await self._inbox.unseen(agent_id, [n.message_id for n in rows]))
        fresh = [n for n in rows if n.message_id in unseen]
        if journal is not None:
            self._fetched(journal, agent_id, fresh, how)
        return await self._inbox.persist(agent_id, fresh)

    async def baseline(self, agent_id: int, token: str, mode: str) -> None:
        """At link time: what the agent has already read (or, observing, everything shown now)
        is history, not news. Consume mode keeps unread rows: its heartbeat will hand them over."""
        for view in RECENT_VIEWS:
            rows = await self._client.recent(token, category=view, limit=50)
            await self._inbox.baseline(agent_id, [n.message_id for n in rows if mode == "observe" or n.read])

    # --- bookkeeping ---------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _outage_over(self) -> None:
        # The outage is over: every agent is due now, not after its backoff (the claims'
        # poll slots pace the catch-up).
        log.info("poller: AI-Trader answers again; resuming every agent")
        await self._all_due(keys=[self._due], args=[self._now_ms()])
        async with self._r.pipeline(transaction=False) as pipe:
            for other in await self._store.agent_ids():
                pipe.delete(self._k.backoff(other))
            await pipe.execute()

    async def _revoked(self, agent: LinkedAgent, reason: str) -> None:
        await self._store.pause_agent(agent.agent_id, reason)
        await self._store.record_poll(agent.agent_id, ok=False, error=reason)
        fp = fingerprint(agent.token or "undecryptable")
        if await self._r.set(self._k.revoked_notice(agent.agent_id, fp), "1", nx=True, ex=REVOKED_TTL):
            log.warning("poller: token rejected, agent paused agent=%s", agent.agent_id)
            await self._on_revoked(agent, reason)


def _now_dt(offset: float = 0.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset)
