"""Sends outbox entries through the adapters and decides what each outcome means.

Each chat is drained by one sender at a time (a lease), in order. An entry is acknowledged only
after the platform accepted it. RetryLater defers that chat alone; ChatGone and ChatMoved are
handed to the relay's `on_chat_change`, as the adapters hand the same news outside a send (so a
chat found gone by a send loses its settings, quiet hours and briefs too); a gone chat's queue
becomes dead letters. Permanent failures go to the dead-letter stream with their cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from redis.exceptions import RedisError
from tenacity import stop_after_delay, wait_random_exponential

from relay.adapter import ChatAdapter, ChatChange, OnChatChange
from relay.backoff import full_jitter
from relay.chat_settings import ChatSettings
from relay.errors import (
    ChatGone,
    ChatMoved,
    DeliveryError,
    PermissionMissing,
    RetryLater,
    SendUncertain,
    Undeliverable,
)
from relay.faults import FaultPoints
from relay.i18n import N_, Catalogues
from relay.journal import ATTEMPT, DEAD, DELIVERED, DUPLICATE, Journal, JournalBatch
from relay.keys import Keys
from relay.leases import Leases
from relay.metrics import Metrics
from relay.models import ChatRef
from relay.outbox import BACKLOG_KEY_PREFIX, Ack, Also, Delivery, Outbox, backlog_notice
from relay.retrying import retried
from relay.store import Store

log = logging.getLogger(__name__)

_SENT_BEFORE = N_("delivered earlier under the same key: not sent again")
LEASE_MS = 9_000  # kept alive while draining; a dead sender's chats move on within 9 s
BATCH = 20  # entries per turn; then the chat goes back in line so busy chats cannot starve others


class Deliverer:
    def __init__(
        self,
        outbox: Outbox,
        store: Store,
        leases: Leases,
        keys: Keys,
        adapters: Mapping[str, ChatAdapter],
        metrics: Metrics,
        *,
        concurrency: int = 64,
        max_attempts: int = 5,
        send_timeout: float = 120.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        faults: FaultPoints | None = None,
        redact: Callable[[str], str] = lambda text: text,
        journal: Journal | None = None,
        on_chat_change: OnChatChange,
        chat_settings: ChatSettings | None = None,
        catalogues: Catalogues | None = None,
    ) -> None:
        self._chat_settings = chat_settings  # for the backlog notice, queued without a language
        self._catalogues = catalogues
        self._journal = journal
        self._on_chat_change = on_chat_change
        # Journal events of each drain under way (one drain per chat at a time), written at its end.
        self._journeys: dict[str, JournalBatch] = {}
        self._faults = faults or FaultPoints()
        self._redact = redact
        self._outbox = outbox
        self._store = store
        self._leases = leases
        self._keys = keys
        self._adapters = adapters
        self._metrics = metrics
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._send_timeout = send_timeout
        self._clock = clock
        self._rng = rng or random.Random()
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._not_before: dict[str, float] = {}
        self._sent_unacked: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None

    def describe(self) -> str:
        """One line on the loop's state, for a stalled benchmark or a debugging operator."""
        runner = self._runner
        state = "not started" if runner is None else ("running" if not runner.done() else "ENDED")
        if runner is not None and runner.done() and not runner.cancelled() and runner.exception():
            state += f" ({type(runner.exception()).__name__}: {runner.exception()})"
        busy = {k: ("done" if t.done() else "running") for k, t in list(self._busy.items())[:10]}
        return f"deliverer: loop {state}; drains {len(self._busy)} {busy}; not before {dict(list(self._not_before.items())[:10])}"

    def wake(self) -> None:
        """New work was enqueued in this process: look now instead of at the next tick."""
        self._wake.set()

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, grace: float) -> None:
        """Stop taking chats; let in-flight sends finish within `grace` seconds."""
        self._stopping = True
        self._wake.set()
        deadline = time.monotonic() + grace
        if self._runner:
            await asyncio.wait({self._runner}, timeout=min(1.0, grace))
        busy = set(self._busy.values())
        if busy:
            # A send under way gets what is left of the grace, whatever its own timeout.
            _, late = await asyncio.wait(busy, timeout=max(0.0, deadline - time.monotonic()))
            for task in late:
                # Its entry stays pending and its in-flight mark set: the next sender resends it,
                # counted as a send whose outcome is unknown.
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=0.5)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                started, waiting = await self._tick()
            except RedisError as exc:
                log.warning("delivery: redis unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1 + self._rng.random())
                continue
            if started:
                continue  # more due chats may fit in the free slots
            self._wake.clear()
            # Due chats that are all being drained already: wait for a drain to end (it wakes
            # us) rather than spinning on a ready set whose scores stay in the past meanwhile.
            timeout = 0.25 if waiting else await self._idle_wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _idle_wait(self) -> float:
        nxt = await self._outbox.next_due()
        if nxt is None:
            return 0.25
        return min(0.25, max(0.01, nxt - self._clock()))

    async def _tick(self) -> tuple[int, bool]:
        """Start drains for due chats; returns (drains started, due chats left waiting)."""
        free = self._concurrency - len(self._busy)
        if free <= 0:
            return 0, True
        now = self._clock()
        started = 0
        waiting = False
        for chat in await self._outbox.due_chats(now, limit=free + len(self._busy)):
            if self._stopping or len(self._busy) >= self._concurrency:
                waiting = True
                break
            if chat.key in self._busy or self._not_before.get(chat.key, 0) > now:
                waiting = True
                continue
            task = asyncio.create_task(self._drain_guarded(chat), name=f"drain {chat.key}")
            self._busy[chat.key] = task
            task.add_done_callback(functools.partial(self._done, chat.key))
            started += 1
        return started, waiting

    def _done(self, key: str, _task: asyncio.Task[None]) -> None:
        self._busy.pop(key, None)
        self._wake.set()

    async def _drain_guarded(self, chat: ChatRef) -> None:
        try:
            if await self.drain(chat):
                self._not_before.pop(chat.key, None)
            else:
                # Another process drains this chat now; look again shortly, not in a tight loop.
                self._not_before[chat.key] = self._clock() + 0.5
        except RedisError as exc:
            log.warning("delivery: redis error while draining chat=%s (%s)", chat.key, type(exc).__name__)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery: unexpected error chat=%s", chat.key)

    async def drain_due(self, until: float | None = None, *, rounds: int = 100) -> int:
        """Drain, in the calling task, every chat due by `until` (default now; `math.inf`: all
        queued work), and again while any chat is still due by then (a chat that got a retry-after
        earlier than `until` is drained again). For tests and tools that drive delivery without the
        background loop. A chat whose lease another process holds is skipped; `rounds` bounds a
        chat that keeps failing. Returns the number of drains run."""
        drained = 0
        skipped: set[str] = set()
        for _ in range(rounds):
            limit = self._concurrency * 16 + len(skipped)
            now = self._clock() if until is None else until
            chats = [c for c in await self._outbox.due_chats(now, limit=limit) if c.key not in skipped]
            if not chats:
                break
            for chat in chats:
                if await self.drain(chat):
                    drained += 1
                else:
                    skipped.add(chat.key)
        return drained

    async def drain(self, chat: ChatRef) -> bool:
        """Send this chat's due entries in order, while holding its lease. False: someone else
        holds the lease.

        Round trips: one take (pending, new, already-delivered filter), one per send (the
        acknowledgements of the sends before it and its own in-flight mark), one finish (the last
        acknowledgements and the ready set). A send's acknowledgement is thus recorded before the
        next send starts, so at most one send per chat has an outcome Redis does not know."""
        async with self._leases.hold(self._keys.chat_lease(chat.key), LEASE_MS) as held:
            if not held:
                return False
            try:
                entries, duplicates = await self._outbox.take_batch(chat, self._leases.owner, BATCH)
                for key in duplicates:
                    # It entered the outbox twice: the take acknowledged it without sending.
                    self._note_key(chat, key, DUPLICATE, _SENT_BEFORE)
                due = self._clock()
                acks: list[Ack] = []
                for d in entries:
                    if self._stopping:
                        break
                    outcome = await self._deliver(d, acks)
                    if outcome is not None:
                        due = outcome
                        break
                also = self._also(chat)
                await self._record(
                    acks, lambda: self._outbox.finish(chat, due=due, acks=acks, now=self._clock(), also=also)
                )
            finally:
                journeys = self._journeys.pop(chat.key, None)
                if journeys is not None and self._journal is not None:
                    await self._journal.write(journeys)
        return True

    def _also(self, chat: ChatRef) -> Also | None:
        """The chat's journal events so far, to ride along with the drain's last round trip (so
        /why shows a send once its batch is done, for no round trip of its own)."""
        journeys = self._journeys.get(chat.key)
        journal = self._journal
        if journal is None or not journeys:
            return None
        return lambda pipe: journal.queue(pipe, journeys)

    def _note(self, d: Delivery, step: str, detail: str, /, **params: object) -> None:
        """One event of `d`'s journey, written with the drain's last round trip."""
        self._note_key(d.chat, d.key, step, detail, **params)

    def _note_key(self, chat: ChatRef, key: str, step: str, detail: str, /, **params: object) -> None:
        if self._journal is not None:
            batch = self._journeys.setdefault(chat.key, JournalBatch())
            batch.chat(chat, key, step, detail, at=self._clock(), params=params)

    async def _deliver(self, d: Delivery, acks: list[Ack]) -> float | None:
        """Send one entry. Returns None to continue with the chat, or when to try the chat again.
        An accepted send is appended to `acks`, recorded with the drain's next round trip."""
        now = self._clock()
        if d.key in self._sent_unacked:
            # Sent already by this process; its acknowledgement failed earlier.
            self._note(d, DUPLICATE, _SENT_BEFORE)
            acks.append(Ack(d.entry_id, d.key, "duplicates_skipped"))
            return None
        adapter = self._adapters.get(d.chat.platform)
        if adapter is None:
            await self._dead(d, f"no adapter for platform {d.chat.platform!r} in this relay")
            return None
        if d.times_claimed > 1 and d.was_in_flight:
            # An earlier sender started sending this entry and died before its outcome was
            # recorded: it may have arrived. Entries it only took are not counted.
            self._metrics.uncertain_resends.inc()
            await self._outbox.count("uncertain_resends")
        # Marked before the platform call and cleared once its outcome is known, so whoever
        # reclaims the entry after a crash knows whether this send may have happened.
        await self._step(d, acks, mark=d.key)
        try:
            # A send that never returns would hold its chat (and its lease) for ever. A timeout
            # context, not wait_for: no task per send (py-spy: wait_for was 7 % of delivery).
            message = d.message
            if d.key.startswith(BACKLOG_KEY_PREFIX) and self._chat_settings and self._catalogues:
                message = backlog_notice(self._catalogues.translator(await self._chat_settings.language(d.chat)))
            async with asyncio.timeout(self._send_timeout):
                await adapter.send(d.chat, message, key=d.key, silent=d.silent)
        except TimeoutError:
            return await self._transient(d, SendUncertain(f"no answer within {self._send_timeout:.0f}s"))
        except RetryLater as exc:
            await self._step(d, acks, clear=d.key)
            self._note(
                d,
                ATTEMPT,
                N_("not sent: {platform} asked to wait {seconds} s ({why})"),
                platform=d.chat.platform,
                seconds=f"{exc.seconds:.0f}",
                why=self._redact(str(exc)),
            )
            self._metrics.retry_later.labels(d.chat.platform).inc()
            if isinstance(exc, PermissionMissing):
                # Not gone: an admin can grant the right. /status says why nothing arrives meanwhile.
                await self._store.set_chat_error(
                    d.chat, N_("the bot lacks a permission here, retrying: {detail}"), str(exc)
                )
            return now + max(0.05, exc.seconds)
        except ChatMoved as exc:
            await self._step(d, acks, clear=d.key)  # the sends before it stay with the old id
            self._note(d, ATTEMPT, N_("not sent: the chat moved to {to}; queued there"), to=exc.new_chat.key)
            await self._move(d.chat, exc.new_chat)
            return now
        except ChatGone as exc:
            await self._step(d, acks)  # delivered ones are not dead letters
            await self._chat_gone(d, str(exc))
            return now
        except Undeliverable as exc:
            await self._dead(d, f"undeliverable: {exc}")
            return None
        except (SendUncertain, DeliveryError, Exception) as exc:
            if not isinstance(exc, DeliveryError):
                log.exception("delivery: adapter raised an unexpected error chat=%s", d.chat.key)
                await self._step(d, acks)
            elif not isinstance(exc, SendUncertain):
                await self._step(d, acks, clear=d.key)  # the platform refused it: not sent
            return await self._transient(d, exc)
        failed = self._attempts.pop(d.key, 0)
        await self._faults.reached("after_send")
        self._note(d, DELIVERED, N_("accepted by {platform} (attempt {n})"), platform=d.chat.platform, n=failed + 1)
        self._sent_unacked.add(d.key)
        acks.append(Ack(d.entry_id, d.key))
        self._metrics.delivered.labels(d.chat.platform).inc()
        self._metrics.delivery_latency.observe(max(0.0, self._clock() - d.enqueued_at))
        return None

    async def _step(self, d: Delivery, acks: list[Ack], *, mark: str = "", clear: str = "") -> None:
        """Record `acks` and set or clear the chat's in-flight mark, in one round trip. The
        journal's events wait for the drain's last round trip (at most BATCH sends later): riding
        here made every send's round trip a pipeline, which redis-py packs and parses at several
        times a lone script's CPU (py-spy: 10 % of the relay's CPU, issue 11)."""
        if not acks:
            if mark or clear:
                await self._outbox.step(d.chat, (), now=self._clock(), mark=mark, clear=clear)
            return
        await self._record(acks, lambda: self._outbox.step(d.chat, acks, now=self._clock(), mark=mark, clear=clear))
        acks.clear()

    async def _record(self, acks: list[Ack], call: Callable[[], Awaitable[object]]) -> None:
        """Run a call that acknowledges deliveries the platform accepted. Redis may be briefly
        unavailable: retry, and remember the keys meanwhile so this process never sends them a
        second time (`_sent_unacked`)."""
        if not acks:
            await call()
            return
        await retried(call, retry_on=RedisError, stop=stop_after_delay(30), wait=wait_random_exponential(0.1, 3))
        for a in acks:
            self._sent_unacked.discard(a.key)

    async def _transient(self, d: Delivery, exc: BaseException) -> float | None:
        attempts = self._attempts.get(d.key, 0) + 1
        self._attempts[d.key] = attempts
        if attempts >= self._max_attempts:
            self._attempts.pop(d.key, None)
            await self._dead(d, f"gave up after {attempts} attempts: {type(exc).__name__}: {exc}")
            return None
        if isinstance(exc, SendUncertain):
            self._metrics.uncertain_resends.inc()
            await self._outbox.count("uncertain_resends")
        wait = full_jitter(attempts, base=1.0, cap=60.0, rng=self._rng)
        self._note(
            d,
            ATTEMPT,
            N_("attempt {n} failed: {cause}; next try in {seconds} s"),
            n=attempts,
            cause=self._redact(_cause(exc)),
            seconds=f"{wait:.1f}",
        )
        log.info("delivery: transient failure chat=%s attempt=%d (%s)", d.chat.key, attempts, type(exc).__name__)
        return self._clock() + wait

    async def _dead(self, d: Delivery, cause: str) -> None:
        # Platform errors can quote URLs or payloads; the cause is stored and shown in /status.
        cause = self._redact(cause)
        log.warning("delivery: dead letter chat=%s cause=%s", d.chat.key, cause)
        self._note(d, DEAD, cause)  # the platform's or our own words, as dead-letters list shows them
        self._metrics.dead_letters.labels(d.chat.platform).inc()
        await self._outbox.dead_letter(d, cause, now=self._clock())
        await self._store.set_chat_error(d.chat, N_("a notification could not be delivered: {detail}"), cause)

    async def _chat_gone(self, d: Delivery, reason: str) -> None:
        log.warning("delivery: chat gone chat=%s reason=%s", d.chat.key, reason)
        await self._on_chat_change(ChatChange(d.chat, "gone", reason=reason))
        # What is still queued for this chat can never be delivered: keep it as dead letters.
        await self._dead(d, f"chat gone: {reason}")
        for rest in await self._outbox.take(d.chat, self._leases.owner, 1000):
            await self._dead(rest, f"chat gone: {reason}")

    async def _move(self, old: ChatRef, new: ChatRef) -> None:
        log.info("delivery: chat moved old=%s new=%s", old.key, new.key)
        await self._on_chat_change(ChatChange(old, "moved", new_chat=new))  # moves the queue too
        self._wake.set()


def _cause(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
