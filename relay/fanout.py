"""Turns an agent's inbox entries into one delivery per subscribed chat, oldest first.

Runs after a heartbeat drain has finished (the heartbeat hands out the newest batch first), so
entries are sorted by upstream id before anything is enqueued. Reply and mention payloads carry
no reply text: it is fetched once per signal here, not once per chat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relay import render
from relay.aitrader import AITraderClient
from relay.catalogue import kind_of
from relay.chat_settings import ChatSettings
from relay.errors import UpstreamError
from relay.holding import Holding
from relay.i18n import DEFAULT_LANGUAGE, N_, Catalogues
from relay.inbox import Inbox, InboxEntry
from relay.journal import HELD, QUEUED, SKIPPED, Journal, JournalBatch, stamp
from relay.keys import Keys
from relay.metrics import Metrics
from relay.models import Message, Notification, SignalReply
from relay.outbox import Also, Outbox, Outgoing
from relay.store import Store, Subscription

log = logging.getLogger(__name__)

_NEEDS_REPLY_TEXT = {"strategy_reply", "discussion_reply", "strategy_mention", "discussion_mention", "new_reply"}
# Replies to a signal reach its author and its other participants; only the author may accept.
_ACCEPTABLE = {"strategy_reply", "discussion_reply", "new_reply"}
OWNED_LOOKUP = 200  # the agent's newest signals searched for ownership; older ones keep /accept


def delivery_key(n: Notification, *, is_task: bool, chat_key: str) -> str:
    return f"{n.agent_id}:{'t' if is_task else 'm'}{n.message_id}:{chat_key}"


@dataclass(frozen=True, slots=True)
class _Routed:
    entry: InboxEntry
    kind: str
    items: list[Outgoing]
    targets: dict[str, tuple[Subscription, bool]]
    passed: dict[str, tuple[Subscription, str]]


class FanOut:
    def __init__(
        self,
        inbox: Inbox,
        outbox: Outbox,
        store: Store,
        client: AITraderClient,
        keys: Keys,
        metrics: Metrics,
        *,
        on_enqueued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        holding: Holding | None = None,
        journal: Journal | None = None,
        chat_settings: ChatSettings | None = None,
        catalogues: Catalogues | None = None,
    ) -> None:
        # Each chat gets the notification in its language (relay.chat_settings): rendered once per
        # language in the batch, not once per chat.
        self._chat_settings = chat_settings
        self._catalogues = catalogues or Catalogues.load()
        self._holding = holding
        self._journal = journal
        self._inbox = inbox
        self._outbox = outbox
        self._store = store
        self._client = client
        self._keys = keys
        self._metrics = metrics
        self._on_enqueued = on_enqueued
        self._clock = clock

    async def fan_out(
        self, agent_id: int, journal: JournalBatch | None = None, stored: Sequence[InboxEntry] | None = None
    ) -> int:
        """Enqueue every inbox entry of the agent; returns deliveries added. Journal events so far
        (those already in `journal`, the poll's, and the fan-out's own) ride on the enqueue; what
        is left is written by the poll (or here, without a poll's batch) at the end.
        `stored`: the entries the caller has just stored, when they are all the inbox holds: fanned
        out from memory, without reading them back (an entry another process fanned out meanwhile
        is skipped by the enqueue script, as on the read path)."""
        batch = journal if journal is not None else JournalBatch()
        try:
            return await self._fan_out(agent_id, batch, stored)
        finally:
            if journal is None and self._journal is not None:
                await self._journal.write(batch)

    async def _fan_out(self, agent_id: int, batch: JournalBatch, stored: Sequence[InboxEntry] | None) -> int:
        total = 0
        while True:
            if stored is not None:
                entries, stored, last = list(stored), None, True
            else:
                entries, last = await self._inbox.entries(agent_id), False
            if not entries:
                return total
            entries.sort(key=lambda e: (e.is_task, e.notification.message_id))
            subs = await self._store.agent_subscriptions(agent_id)
            modes = {s.chat.key: await self._store.kind_modes(s.chat) for s in subs}
            langs = (
                {s.chat.key: await self._chat_settings.language(s.chat) for s in subs}
                if self._chat_settings is not None
                else {}
            )
            replies: dict[int, tuple[SignalReply, ...] | None] = {}
            owned: dict[int, frozenset[int]] = {}
            routed = [await self._one(agent_id, entry, subs, modes, replies, owned, langs) for entry in entries]
            held: dict[str, tuple[str, dict[str, str]]] = {}
            kept: set[int] | None = None
            if self._holding is not None:
                # Quiet hours, snooze and digests take their share here (why at routing time:
                # relay.holding), for the whole batch at once; what is held is not enqueued.
                every = [i for r in routed for i in r.items]
                diverted = await self._holding.route(every, self._clock())
                kept = {id(i) for i in diverted.queued}
                held = diverted.held
            if self._journal is not None:
                for r in routed:
                    self._note(batch, r.entry, r.kind, r.targets, r.passed, held)
            work = [(r.entry.entry_id, [i for i in r.items if kept is None or id(i) in kept]) for r in routed]
            # One script for the whole batch: every delivery added and every inbox entry removed at once.
            # The journal's events so far (the poll's reads, this batch's routing) ride along with it.
            also = self._riding(batch)
            added, _ = await self._outbox.enqueue_batch(
                work, now=self._clock(), inbox=self._keys.inbox(agent_id), also=also
            )
            if added > 0:
                self._metrics.enqueued.inc(added)
                total += added
                self._on_enqueued()
            if last:
                return total

    def _riding(self, batch: JournalBatch) -> Also | None:
        """The batch's events as writes to ride on a round trip the fan-out makes anyway."""
        journal = self._journal
        if journal is None or not len(batch):
            return None
        return lambda pipe: journal.queue(pipe, batch)

    async def _one(
        self,
        agent_id: int,
        entry: InboxEntry,
        subs: list[Subscription],
        modes: dict[str, dict[str, str]],
        replies: dict[int, tuple[SignalReply, ...] | None],
        owned: dict[int, frozenset[int]],
        langs: dict[str, str] | None = None,
    ) -> _Routed:
        """Where one inbox entry goes: the deliveries it makes and the chats it passed by."""
        n = entry.notification
        kind = kind_of(n.kind, is_task=entry.is_task)
        targets: dict[str, tuple[Subscription, bool]] = {}
        passed: dict[str, tuple[Subscription, str]] = {}  # chats a route of this agent did not take it to
        for sub in subs:
            if sub.kinds and kind not in sub.kinds:
                passed.setdefault(sub.chat.key, (sub, N_("subscription #{sub} does not take {kind}")))
                continue
            mode = modes.get(sub.chat.key, {}).get(kind, "on")
            if mode == "off":
                passed.setdefault(sub.chat.key, (sub, N_("{kind} are off in this chat (/notify {kind} on)")))
                continue
            # Two routes of one agent into one chat deliver once; "on" wins over "silent".
            silent = mode == "silent"
            if sub.chat.key in targets:
                silent = silent and targets[sub.chat.key][1]
            targets[sub.chat.key] = (sub, silent)
        items: list[Outgoing] = []
        if targets:
            reply = await self._reply_for(n, replies)
            can_accept = reply is not None and n.kind in _ACCEPTABLE and await self._owns(agent_id, reply, owned)
            rendered: dict[str, Message] = {}
            for chat_key, (sub, silent) in targets.items():
                lang = (langs or {}).get(chat_key, DEFAULT_LANGUAGE)
                if lang not in rendered:
                    t = self._catalogues.translator(lang)
                    rendered[lang] = render.notification(
                        n, is_task=entry.is_task, reply=reply, can_accept=can_accept, t=t
                    )
                key = delivery_key(n, is_task=entry.is_task, chat_key=chat_key)
                items.append(Outgoing(sub.chat, key, stamp(rendered[lang], key), silent, kind))
        return _Routed(entry, kind, items, targets, passed)

    def _note(
        self,
        batch: JournalBatch,
        entry: InboxEntry,
        kind: str,
        targets: dict[str, tuple[Subscription, bool]],
        passed: dict[str, tuple[Subscription, str]],
        held: dict[str, tuple[str, dict[str, str]]],
    ) -> None:
        n = entry.notification
        now = self._clock()
        signal = render.positive_int(n.data, "signal_id")
        stored = _entry_time(entry.entry_id)
        for chat_key, (sub, silent) in targets.items():
            key = delivery_key(n, is_task=entry.is_task, chat_key=chat_key)
            params = {"stored": _hms(stored) if stored else "?", "sub": sub.sub_id, "kind": kind}
            if key in held:
                # relay.holding keeps it back: quiet hours, a snooze or a digest of this kind.
                how = N_("stored {stored}; routed by subscription #{sub} ({kind}); {held}")
                batch.chat(
                    chat_key,
                    key,
                    HELD,
                    how,
                    at=now,
                    signal=signal,
                    kind=kind,
                    params={**params, "held_t": held[key][0], **held[key][1]},
                )
            else:
                how = (
                    N_("stored {stored}; routed by subscription #{sub} ({kind}, silent)")
                    if silent
                    else N_("stored {stored}; routed by subscription #{sub} ({kind})")
                )
                batch.chat(chat_key, key, QUEUED, how, at=now, signal=signal, kind=kind, params=params)
        for chat_key, (sub, why) in passed.items():
            if chat_key not in targets:
                key = delivery_key(n, is_task=entry.is_task, chat_key=chat_key)
                params = {"sub": sub.sub_id, "kind": kind}
                batch.chat(chat_key, key, SKIPPED, why, at=now, signal=signal, kind=kind, params=params)

    async def _owns(self, agent_id: int, reply: SignalReply, cache: dict[int, frozenset[int]]) -> bool:
        """Whether the agent authored the replied-to signal: the notice itself cannot say (any agent
        can post one), so the agent's own signals are asked, once per fan-out."""
        if agent_id not in cache:
            try:
                mine = await self._client.agent_signals(agent_id, limit=OWNED_LOOKUP)
            except UpstreamError as exc:
                log.info("fanout: own signals unavailable agent=%s (%s)", agent_id, type(exc).__name__)
                mine = ()
            cache[agent_id] = frozenset(s.signal_id for s in mine)
        return reply.signal_id in cache[agent_id]

    async def _reply_for(self, n: Notification, cache: dict[int, tuple[SignalReply, ...] | None]) -> SignalReply | None:
        if n.kind not in _NEEDS_REPLY_TEXT:
            return None
        signal_id = render.positive_int(n.data, "signal_id")
        author = render.positive_int(n.data, "reply_author_id")
        if not signal_id:
            return None
        if signal_id not in cache:
            try:
                cache[signal_id] = await self._client.replies(signal_id)
            except UpstreamError as exc:
                # The notification still goes out, without the reply text, rather than waiting.
                log.info("fanout: reply text unavailable signal=%s (%s)", signal_id, type(exc).__name__)
                cache[signal_id] = None
        found = cache[signal_id] or ()
        reply_id = render.positive_int(n.data, "reply_id")
        if reply_id:
            return next((r for r in found if r.reply_id == reply_id), None)
        mine = [r for r in found if author and r.agent_id == author]
        # The payload names no reply: take the author's newest reply not newer than the notice.
        before = [r for r in mine if r.created_at and n.created_at and r.created_at <= n.created_at]
        return (before or mine)[-1] if (before or mine) else None


def _entry_time(entry_id: str) -> float | None:
    """When Redis stored an inbox entry: its stream id is the server time in milliseconds."""
    ms, _, _ = entry_id.partition("-")
    return int(ms) / 1000 if ms.isdigit() else None


def _hms(epoch: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch))
