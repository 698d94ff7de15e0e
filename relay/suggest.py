"""Suggestions for a command argument while the user types it (Discord's autocomplete).

Discord drops an autocomplete answer that comes later than 3 s after the keystroke, and sends one
interaction per keystroke, so every answer here comes from Redis: this chat's subscriptions, the
signals this chat was recently shown (the `/why` journal), and the traders the user's agent
follows, cached for five minutes. Only a cache miss of that last list asks AI-Trader, within
`budget` seconds; a slower answer still fills the cache for the next keystroke, never this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from relay.aitrader import AITraderClient
from relay.daily_brief import DailyBriefs
from relay.errors import UpstreamError
from relay.holding import DIGEST_KINDS
from relay.i18n import Translator
from relay.journal import Entry, Journal
from relay.keys import SUGGEST_FOLLOWING_TTL, Keys
from relay.models import Command, Suggestion
from relay.redis_values import stream_entries
from relay.render import clip
from relay.specs import KINDS
from relay.store import Store, Subscription

log = logging.getLogger(__name__)

MAX_CHOICES = 25  # Discord: "a maximum of 25 choices" per autocomplete answer
LABEL_LIMIT = 100  # Discord: a choice's name is 1-100 characters
FOLLOWING_CAP = 100
RECENT_EVENTS = 200  # journal events read for recent signal ids (a delivered notification writes about 2)
UPSTREAM_BUDGET = 1.0  # seconds a cache miss may wait for AI-Trader (Discord allows 3 s in all)


Describe = Callable[[Subscription, Translator], str]


class Suggestions:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        store: Store,
        client: AITraderClient,
        *,
        journal: Journal | None = None,
        briefs: DailyBriefs | None = None,
        describe: Describe | None = None,
        budget: float = UPSTREAM_BUDGET,
    ) -> None:
        self._r = redis
        self._k = keys
        self._store = store
        self._client = client
        self._journal = journal
        self._briefs = briefs
        self._describe = describe
        self._budget = budget
        self._refreshing: dict[str, asyncio.Task[list[tuple[int, str]]]] = {}

    async def suggest(self, command: Command, param: str, typed: str, t: Translator) -> tuple[Suggestion, ...]:
        """Choices for `param` of `command.name`, the ones matching `typed` first; () when none apply."""
        if command.name == "subscribe" and param == "what":
            return _subscribe_words(typed)
        if command.name == "digest" and param == "what":
            return _digest_words(typed)
        if command.name == "unsubscribe" and param == "id":
            found = await self._subscriptions(command, t)
        elif command.name in ("replies", "reply", "accept") and param == "signal_id":
            found = await self._signals(command, t)
        elif command.name == "unfollow" and param == "agent_id":
            found = await self._following(command)
        elif command.name == "why" and param == "ref":
            found = await self._references(command, t)
        else:
            return ()
        return _matching(found, typed)

    async def _subscriptions(self, command: Command, t: Translator) -> list[Suggestion]:
        out = []
        for sub in await self._store.chat_subscriptions(command.chat):
            label = self._describe(sub, t) if self._describe else f"#{sub.sub_id}"
            out.append(Suggestion(label, str(sub.sub_id)))
        brief = await self._briefs.of_chat(command.chat) if self._briefs is not None else None
        if brief is not None:
            out.append(Suggestion(brief.describe(t), str(brief.sub_id)))
        return out

    async def _signals(self, command: Command, t: Translator) -> list[Suggestion]:
        """The signals this chat was shown most recently (notifications, watches), newest first."""
        if self._journal is None:
            return []
        seen: dict[int, str] = {}
        # Newest first, and only the latest events: a full journal is up to JOURNAL_CHAT_CAP entries.
        raw = await self._r.xrevrange(self._k.journal(command.chat.key), count=RECENT_EVENTS)
        entries = (Entry.from_fields(f) for _, f in stream_entries(raw))
        for entry in (e for e in entries if e is not None):
            if entry.signal and entry.signal not in seen:
                seen[entry.signal] = entry.kind
            if len(seen) >= MAX_CHOICES:
                break
        return [
            Suggestion(t.gettext("signal {signal_id}", signal_id=s) + (f" · {kind}" if kind else ""), str(s))
            for s, kind in seen.items()
        ]

    async def _references(self, command: Command, t: Translator) -> list[Suggestion]:
        """The deliveries this chat's journal tells of, newest first, each with its signal and kind."""
        if self._journal is None:
            return []
        newest: dict[str, list[str]] = {}
        for entry in reversed(await self._journal.chat_events(command.chat)):
            if entry.ref and entry.ref not in newest:
                if len(newest) >= MAX_CHOICES:
                    break
                newest[entry.ref] = []
            parts = newest.get(entry.ref)
            if parts is not None and not parts and (entry.signal or entry.kind):
                signal = t.gettext("signal {signal_id}", signal_id=entry.signal) if entry.signal else ""
                parts += [p for p in (signal, entry.kind) if p]
        return [Suggestion(" · ".join([ref, *parts]), ref) for ref, parts in newest.items()]

    async def _following(self, command: Command) -> list[Suggestion]:
        key = self._k.suggest_following(command.user.key)
        raw = await self._r.get(key)
        if raw is not None:
            pairs = _pairs(raw)
        else:
            pairs = await self._refresh_within_budget(command.user.key)
        return [Suggestion(f"{name} (#{leader})" if name else f"#{leader}", str(leader)) for leader, name in pairs]

    async def _refresh_within_budget(self, user: str) -> list[tuple[int, str]]:
        task = self._refreshing.get(user)
        if task is None:
            task = asyncio.create_task(self.refresh_following(user), name=f"suggest-following-{user}")
            self._refreshing[user] = task
            task.add_done_callback(lambda _: self._refreshing.pop(user, None))
        try:
            # Shielded: when the budget runs out the fetch goes on and fills the cache.
            return await asyncio.wait_for(asyncio.shield(task), self._budget)
        except TimeoutError:
            log.info("suggest: following list not ready within %.1fs user=%s", self._budget, user)
            return []
        except Exception:
            return []

    async def refresh_following(self, user: str) -> list[tuple[int, str]]:
        """Reads the followed traders from AI-Trader into the cache (also after /follow, /unfollow)."""
        agent = await self._store.agent_for_user(user)
        if agent is None or agent.token is None:
            return []
        try:
            followed = await self._client.following(agent.token)
        except UpstreamError as exc:
            log.info("suggest: following unavailable user=%s (%s)", user, type(exc).__name__)
            return []
        pairs = [(f.leader_id, clip(f.leader_name, 60)) for f in followed[:FOLLOWING_CAP]]
        await self.remember_following(user, pairs)
        return pairs

    async def remember_following(self, user: str, pairs: list[tuple[int, str]]) -> None:
        await self._r.set(self._k.suggest_following(user), json.dumps(pairs[:FOLLOWING_CAP]), ex=SUGGEST_FOLLOWING_TTL)

    async def forget_following(self, user: str) -> None:
        await self._r.delete(self._k.suggest_following(user))

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


_FIRST_WORDS = (*KINDS, "all", "feed", "trader", "intel")


def _subscribe_words(typed: str) -> tuple[Suggestion, ...]:
    """`/subscribe` completes its kinds word by word: "replies men" offers "replies mentions"."""
    done, last = _typed_words(typed)
    if done and done[0].lower() in ("feed", "trader", "intel"):
        return ()  # a keyword, an agent id or a time follows: nothing to offer
    return _completions(done, last, KINDS if done else _FIRST_WORDS)


_SCHEDULES = ("hourly", "daily 08:00", "off")


def _digest_words(typed: str) -> tuple[Suggestion, ...]:
    """`/digest` completes its kinds word by word, then offers the schedules: "replies h" offers
    "replies hourly"; a bare "off" stops every digest."""
    done, last = _typed_words(typed)
    if any(w.lower() in ("hourly", "daily", "off") for w in done):
        return ()  # the schedule is given (a daily time follows it, typed by the user)
    kinds = (*DIGEST_KINDS, "all")
    return _completions(done, last, (*kinds, *_SCHEDULES) if done else (*kinds, "off"))


def _typed_words(typed: str) -> tuple[list[str], str]:
    """The words finished so far, and the one being typed ("" after a space)."""
    words = typed.split()
    return (words, "") if not words or typed.endswith(" ") else (words[:-1], words[-1].lower())


def _completions(done: list[str], last: str, options: Sequence[str]) -> tuple[Suggestion, ...]:
    """The typed line finished with each option that starts with the word being typed and was
    not chosen already."""
    chosen = {w.lower() for w in done}
    out = []
    for word in options:
        if word.startswith(last) and word not in chosen:
            value = " ".join([*done, word])
            out.append(Suggestion(value, value))
    return tuple(out[:MAX_CHOICES])


def _pairs(raw: bytes | str) -> list[tuple[int, str]]:
    try:
        rows = json.loads(raw)
        return [(int(leader), str(name)) for leader, name in rows]
    except (ValueError, TypeError):
        return []


def _matching(found: list[Suggestion], typed: str) -> tuple[Suggestion, ...]:
    """Those whose value starts with what was typed, then those whose label contains it."""
    needle = typed.strip().lstrip("#").casefold()
    if needle:
        first = [s for s in found if s.value.startswith(needle)]
        rest = [s for s in found if s not in first and needle in s.label.casefold()]
        found = first + rest
    return tuple(Suggestion(clip(s.label, LABEL_LIMIT) or s.value, s.value) for s in found[:MAX_CHOICES])
