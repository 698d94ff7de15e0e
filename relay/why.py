"""`/why <reference | signal id>`: the journey of a notification in this chat, from the journal.

A reference names one delivery (relay.journal.reference, printed in each notification's footer);
a signal id may name several (replies to one signal): the newest few are shown. When this chat's
journal knows nothing, the answer says why that can be: what the caller's agent fetched and where
it would have had to be routed, a paused agent, observe mode and tasks, or the journal's bound.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from relay import journal as j
from relay.deadletters import DeadLetters
from relay.errors import UsageError
from relay.i18n import N_, Translator
from relay.journal import Entry, Journal
from relay.keys import JOURNAL_CHAT_CAP, JOURNAL_TTL
from relay.models import ChatRef, Command, Message, Reply
from relay.outbox import Outbox
from relay.store import LinkedAgent, Store

MAX_JOURNEYS = 3  # a signal id can name many deliveries (every reply to it): the newest few
MAX_LINES = 24

_LABEL = {
    j.FETCHED: N_("fetched"),
    j.QUEUED: N_("queued"),
    j.SKIPPED: N_("not routed here"),
    j.FILTERED: N_("filtered"),
    j.HELD: N_("held"),
    j.RELEASED: N_("released"),
    j.ATTEMPT: "",  # its detail says which attempt and how it ended
    j.DELIVERED: N_("delivered"),
    j.DUPLICATE: N_("not sent again"),
    j.DEAD: N_("dead-lettered"),
    j.REPLAYED: N_("replayed"),
}
USAGE = N_("give the reference at the end of a notification (/why k7q2mx4p) or a signal id (/why 1234)")


@dataclass(frozen=True, slots=True)
class Journey:
    ref: str
    events: tuple[Entry, ...]  # this chat's, oldest first
    fetched: tuple[Entry, ...]  # the agent journal's reads of the same item
    ahead: int | None = None  # still queued here: how many wait ahead of it

    def delivery_key(self, chat: ChatRef) -> str:
        """The delivery key, where the journal's ids name it (agent notifications, watches)."""
        first = self.events[0]
        if first.agent is not None and first.item:
            return f"{first.agent}:{first.item}:{chat.key}"
        if first.sub is not None and first.item:
            return f"w{first.sub}:{first.item}:{chat.key}"
        return ""

    @property
    def open(self) -> bool:
        """Its journey has no end written yet (it may be queued, or ended where no journal writes)."""
        return self.events[-1].step in (j.QUEUED, j.ATTEMPT, j.REPLAYED)

    @property
    def signal(self) -> int | None:
        """Only routing knows the signal and the kind: the first event that says."""
        return next((e.signal for e in self.events if e.signal), None)

    @property
    def kind(self) -> str:
        return next((e.kind for e in self.events if e.kind), "")

    def outcome(self, t: Translator, what: str) -> str:
        final = {e.step for e in self.events}
        last = self.events[-1]
        if j.DELIVERED in final or j.DUPLICATE in final:
            at = next(e.at for e in reversed(self.events) if e.step in (j.DELIVERED, j.DUPLICATE))
            return t.gettext("Delivered {when}: {what}", when=_when(at), what=what)
        if last.step == j.DEAD:
            return t.gettext("Dead-lettered: {what}", what=what)
        if last.step == j.HELD:
            return t.gettext("Held: {what}", what=what)
        if last.step == j.FILTERED:
            return t.gettext("Filtered out: {what}", what=what)
        if last.step == j.SKIPPED:
            return t.gettext("Never reached this chat: {what}", what=what)
        return t.gettext("Queued, not delivered yet: {what}", what=what)


class Why:
    def __init__(
        self,
        journal: Journal,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        outbox: Outbox | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self._journal = journal
        self._store = store
        self._clock = clock
        self._outbox = outbox
        self._dead = dead_letters

    async def answer(self, command: Command, t: Translator) -> Reply:
        raw = command.args.get("ref", "").strip().lstrip("#").lower()
        ref = raw if j.is_reference(raw) else ""
        signal = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63 else None
        if not ref and signal is None:
            raise UsageError(USAGE)
        events = await self._journal.chat_events(command.chat)
        chosen = [e for e in events if e.ref == ref] if ref else []
        if not chosen and signal is not None:
            # Only routing knows the signal; later steps of the same delivery share its reference.
            refs = {e.ref for e in events if e.signal == signal}
            chosen = [e for e in events if e.ref in refs]
        if chosen:
            journeys = [await self._located(command.chat, j_) for j_ in await self._journeys(chosen)]
            return Reply(tuple([self._journey(command.chat, j_, t) for j_ in journeys]))
        return Reply((await self._never(command, raw, signal, t),))

    async def _journeys(self, chosen: list[Entry]) -> list[Journey]:
        by_ref: dict[str, list[Entry]] = {}
        for e in chosen:
            by_ref.setdefault(e.ref, []).append(e)
        newest = sorted(by_ref.values(), key=lambda es: es[-1].at)[-MAX_JOURNEYS:]
        out = []
        for es in newest:
            # A poll writes its routing events when it ends, so a quick delivery can be written
            # before them: the order is the time each step happened.
            es.sort(key=lambda e: e.at)
            first = es[0]
            fetched: tuple[Entry, ...] = ()
            if first.agent is not None and first.item:
                reads = await self._journal.agent_events(first.agent)
                fetched = tuple(e for e in reads if e.item == first.item)
            out.append(Journey(first.ref, tuple(es), fetched))
        return out

    async def _located(self, chat: ChatRef, journey: Journey) -> Journey:
        """A journey without an end in the journal: where the delivery is now. Still queued (and
        behind how many), accepted (a journal write was lost), or dead-lettered where no journal
        writes: the queue's cap moves its oldest to the dead letters inside the enqueue script."""
        key = journey.delivery_key(chat)
        if not journey.open or not key or self._outbox is None:
            return journey
        ahead = await self._outbox.position(chat, key)
        if ahead is not None:
            return dataclasses.replace(journey, ahead=ahead)
        at = await self._outbox.delivered_at(key)
        if at is not None:
            seen = Entry(j.DELIVERED, at, N_("accepted by the platform (its journal entry was lost)"))
            return dataclasses.replace(journey, events=(*journey.events, seen))
        letter = await self._dead.find(chat.key, key) if self._dead is not None else None
        if letter is not None:
            return dataclasses.replace(journey, events=(*journey.events, Entry(j.DEAD, letter.at, letter.cause)))
        return journey

    def _journey(self, chat: ChatRef, journey: Journey, t: Translator) -> Message:
        # Reconcile and heartbeat can both read a row: the first read stored it, later ones add nothing.
        lines = [
            _line(e.at, t.gettext("fetched") if i == 0 else t.gettext("read again (already stored)"), e.shown(t), t)
            for i, e in enumerate(journey.fetched)
        ]
        for e in journey.events:
            label = _LABEL.get(e.step, e.step)
            lines.append(_line(e.at, t.gettext(label) if label else "", e.shown(t), t))
        if len(lines) > MAX_LINES:
            more = t.ngettext("… {n} more line …", "… {n} more lines …", len(lines) - MAX_LINES + 1)
            lines = [*lines[:4], more, *lines[-(MAX_LINES - 5) :]]
        if journey.ahead is not None:
            lines.append(
                t.ngettext(
                    "Now in this chat's queue, {n} delivery ahead of it.",
                    "Now in this chat's queue, {n} deliveries ahead of it.",
                    journey.ahead,
                )
            )
        if journey.events[-1].step == j.DEAD:
            lines.append(
                t.gettext(
                    "To send it again, the operator runs `aitrader-relay dead-letters replay --chat {chat}` "
                    "(or /admin replay {chat} in a private chat with the bot).",
                    chat=chat.key,
                )
            )
        first = journey.events[0]
        if journey.signal:
            what = t.gettext("signal {signal}", signal=journey.signal)
        else:
            what = first.item or t.gettext("notification")
        return Message(
            title=journey.outcome(t, what),
            body="\n".join(lines),
            footer=f"/why {journey.ref} · {journey.kind}" if journey.kind else f"/why {journey.ref}",
        )

    async def _never(self, command: Command, raw: str, signal: int | None, t: Translator) -> Message:
        """Nothing in this chat's journal: say what can be known about why."""
        reasons: list[str] = []
        agent = await self._store.agent_for_user(command.user.key)
        if agent is not None and agent.state != "active":
            reasons.append(
                t.gettext(
                    "Your agent #{agent} is paused ({reason}): nothing is fetched for it until you /link it "
                    "again with its current token.",
                    agent=agent.agent_id,
                    reason=t.gettext(agent.paused_reason)
                    if agent.paused_reason
                    else t.gettext("AI-Trader rejected its token"),
                )
            )
        if agent is not None and signal is not None:
            reasons += await self._fetched_elsewhere(command.chat, agent, signal, t)
        if agent is not None and agent.mode == "observe":
            reasons.append(
                t.gettext(
                    "Your agent is linked in observe mode, which reads messages/recent only and cannot see "
                    "tasks: tasks reach a chat only in consume mode (/link <token> consume)."
                )
            )
        # With no reason but the journal's silence it may be a typo, not a notification that missed.
        title = (
            t.gettext("Never reached this chat: {what}", what=raw)
            if reasons
            else t.gettext("Nothing known here about {what}", what=raw)
        )
        reasons.append(
            t.gettext(
                "This chat's journal has nothing for {what}: not a reference of a notification here, or older "
                "than the journal keeps (the newest {cap} events of a chat, at most {days} days).",
                what=raw,
                cap=f"{JOURNAL_CHAT_CAP:,}",
                days=JOURNAL_TTL // 86400,
            )
        )
        return Message(title=title, body="\n".join(reasons))

    async def _fetched_elsewhere(self, chat: ChatRef, agent: LinkedAgent, signal: int, t: Translator) -> list[str]:
        reads = [e for e in await self._journal.agent_events(agent.agent_id) if e.signal == signal]
        if not reads:
            return []
        read = reads[-1]
        kind = read.kind or "messages"
        seen = {"agent": agent.agent_id, "item": read.item, "signal": signal, "kind": kind, "when": _when(read.at)}
        subs = [
            s for s in await self._store.chat_subscriptions(chat) if s.kind == "agent" and s.agent_id == agent.agent_id
        ]
        if not subs:
            text = N_(
                "Your agent #{agent} fetched {item} about signal {signal} ({kind}) {when}, but this chat has no "
                "subscription to that agent: /subscribe {kind} here."
            )
            return [t.gettext(text, **seen)]
        if not any(not s.kinds or kind in s.kinds for s in subs):
            taken = ", ".join(sorted({k for s in subs for k in s.kinds}))
            text = N_(
                "Your agent #{agent} fetched {item} about signal {signal} ({kind}) {when}, but no subscription "
                "here takes {kind} (they take {taken}): /subscribe {kind} …"
            )
            return [t.gettext(text, taken=taken, **seen)]
        if (await self._store.kind_modes(chat)).get(kind) == "off":
            text = N_(
                "Your agent #{agent} fetched {item} about signal {signal} ({kind}) {when}, but {kind} are off in "
                "this chat: /notify {kind} on."
            )
            return [t.gettext(text, **seen)]
        text = N_(
            "Your agent #{agent} fetched {item} about signal {signal} ({kind}) {when}; it has not been routed "
            "yet (it waits in the agent's inbox for the next fan-out)."
        )
        return [t.gettext(text, **seen)]


def _line(at: float, label: str, detail: str, t: Translator) -> str:
    if label and detail:
        return f"{_when(at)} " + t.gettext("{label}: {detail}", label=label, detail=detail)
    return f"{_when(at)} {label or detail}"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
