"""Linked accounts, subscriptions and per-chat settings in Redis.

Accounts belong to chat users, subscriptions belong to chats. Tokens are stored only sealed
(`relay.tokens`). Changes that touch several keys at once (unlink, dropping or moving a chat)
run as Lua scripts so a crash cannot leave half a route behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from redis.typing import EncodableT

from relay.errors import LimitReached
from relay.filters import WatchFilter
from relay.i18n import N_
from relay.keys import CHAT_ERROR_TTL, LOSSES_CAP, Keys
from relay.models import ChatRef
from relay.redis_values import text, text_dict, text_or_empty
from relay.tokens import TokenBox

Mode = Literal["consume", "observe"]


@dataclass(frozen=True, slots=True)
class LinkedAgent:
    agent_id: int
    name: str
    mode: Mode
    state: str  # active | paused
    token: str | None = field(repr=False)  # None when the sealed record cannot be opened
    last_ok: float | None
    last_error: str
    paused_reason: str
    possible_loss: str = ""  # the last range a lost response may have taken (relay.recovery)
    possible_loss_at: float | None = None
    loss_reports: int = 0


@dataclass(frozen=True, slots=True)
class LossReport:
    """One possible loss: ids `low`..`high` of an agent (None: unbounded that way)."""

    agent_id: int
    low: int | None
    high: int | None
    boundary: str
    at: float

    def covers(self, agent_id: int, message_id: int) -> bool:
        return (
            agent_id == self.agent_id
            and (self.low is None or message_id >= self.low)
            and (self.high is None or message_id <= self.high)
        )


def _words(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw) if raw else []
    except ValueError:
        return ()
    return tuple(w for w in value if isinstance(w, str)) if isinstance(value, list) else ()


def _s(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass(frozen=True, slots=True)
class ActingAgent:
    """The caller's linked agent whose stored token opened: what a command acts as."""

    agent_id: int
    name: str
    token: str = field(repr=False)


@dataclass(slots=True)
class RekeyCounts:
    rekeyed: int = 0  # sealed under an older key, now under the newest
    current: int = 0  # already under the newest key
    unreadable: int = 0  # no configured key opens it (the agent pauses with the relink notice)


@dataclass(frozen=True, slots=True)
class ChatError:
    """The last delivery problem of a chat, for /status."""

    at: float
    sentence: str  # catalogue msgid with {detail}
    detail: str

    def __str__(self) -> str:
        return self.sentence.format(detail=self.detail)


@dataclass(frozen=True, slots=True)
class Subscription:
    sub_id: int
    kind: Literal["agent", "feed", "trader"]
    chat: ChatRef
    agent_id: int | None = None
    kinds: frozenset[str] = frozenset()  # empty: all kinds
    keyword: str = ""
    message_type: str = ""
    trader_id: int | None = None
    created_by: str = ""
    # Watch filters (relay.filters); `message_type` above is the `type=` setting.
    market: str = ""
    symbol: str = ""
    exclude: tuple[str, ...] = ()

    @property
    def filter(self) -> WatchFilter:
        return WatchFilter(self.market, self.symbol, self.message_type, self.exclude)


DECLARE_ROUNDS = 8  # plan rounds of a store script; each finds keys through keys one step further

# Every store script names each key it touches in KEYS (a cluster runs a script on the node of its
# KEYS' slot; these are all hub keys, `Keys._h`), but which subscriptions and chats an unlink or a
# dropped chat reaches is only known by reading. So the keys come by name: ARGV[1] = n, ARGV[2..n+1]
# the names of KEYS[1..n] (`Keys.hub_name`), then the script's own arguments (`A`). Each script
# first plans, reading only declared keys; if it needs a key it was not given, it writes nothing
# and answers {'need', names...}, and `Store._declared` calls it again with them (a few rounds at
# most, for keys found through keys). The plan declares the worst case, so acting never lacks one.
_DECLARED = """
local nk = tonumber(ARGV[1])
local K, missing = {}, {}
for i = 1, nk do K[ARGV[1 + i]] = KEYS[i] end
local function key(name)
  local k = K[name]
  if not k then table.insert(missing, name) end
  return k
end
local A = {}
for i = nk + 2, #ARGV do table.insert(A, ARGV[i]) end
-- {'need', names...}, built without unpack(): Lua's stack takes about 8,000 values at most.
local function need()
  table.insert(missing, 1, 'need')
  return missing
end
"""

# Takes `user` off one agent; when nobody links that agent any more, removes its routes, its sealed
# token and its polling state. Shared by unlink and relink so both leave nothing behind.
_DROP_USER_FROM_AGENT = """
local AGENT_PARTS = {'', ':users', ':subs', ':fails', ':seen', ':tasks', ':inbox'}
local function plan_drop_user(agent_id)
  for _, part in ipairs(AGENT_PARTS) do key('agent:' .. agent_id .. part) end
  key('agents'); key('reconcile'); key('poll:due')
  local agent_subs = K['agent:' .. agent_id .. ':subs']
  if not agent_subs then return end
  for _, sid in ipairs(redis.call('SMEMBERS', agent_subs)) do
    local sub = key('sub:' .. sid)
    local chat = sub and redis.call('HGET', sub, 'chat')
    if chat then key('chat:' .. chat .. ':subs') end
  end
end
local function drop_user(user, agent_id)
  local users_key = key('agent:' .. agent_id .. ':users')
  redis.call('SREM', users_key, user)
  if redis.call('SCARD', users_key) > 0 then return 0 end
  local agent_subs = key('agent:' .. agent_id .. ':subs')
  local removed = 0
  for _, sid in ipairs(redis.call('SMEMBERS', agent_subs)) do
    local sub = key('sub:' .. sid)
    local chat = redis.call('HGET', sub, 'chat')
    if chat then redis.call('SREM', key('chat:' .. chat .. ':subs'), sid) end
    redis.call('DEL', sub)
    removed = removed + 1
  end
  for _, part in ipairs(AGENT_PARTS) do redis.call('DEL', key('agent:' .. agent_id .. part)) end
  redis.call('SREM', key('agents'), agent_id)
  redis.call('ZREM', key('poll:due'), agent_id)
  redis.call('SREM', key('reconcile'), agent_id)
  return removed
end
"""

# Unlink: the user's link and every agent that still lists the user (links left behind by older
# versions included). Returns the agent ids the user was taken off, the linked one first.
# Names: user:<user>, agents. A: user.
_UNLINK = (
    _DECLARED
    + _DROP_USER_FROM_AGENT
    + """
local user = A[1]
local user_key, agents_key = key('user:' .. user), key('agents')
local current = redis.call('HGET', user_key, 'agent_id')
local others = {}
if current then plan_drop_user(current) end
for _, agent_id in ipairs(redis.call('SMEMBERS', agents_key)) do
  local users = key('agent:' .. agent_id .. ':users')
  if agent_id ~= current and users and redis.call('SISMEMBER', users, user) == 1 then
    plan_drop_user(agent_id)
    table.insert(others, agent_id)
  end
end
if #missing > 0 then return need() end
redis.call('DEL', user_key)
local out = {}
if current then
  drop_user(user, current)
  table.insert(out, current)
end
for _, agent_id in ipairs(others) do
  drop_user(user, agent_id)
  table.insert(out, agent_id)
end
return out
"""
)

# Link (or relink): an agent the user linked before is dropped exactly as /unlink would, in the same
# script that records the new link, so a crash cannot leave the old agent polled with nobody behind it.
# Names: user:<user>, agents, the agent's keys. A: user, agent id, now, sealed token, name, mode.
_LINK = (
    _DECLARED
    + _DROP_USER_FROM_AGENT
    + """
local user, agent_id, now, sealed, name, mode = A[1], A[2], A[3], A[4], A[5], A[6]
local user_key, agents_key = key('user:' .. user), key('agents')
local previous = redis.call('HGET', user_key, 'agent_id')
local agent_key, users_key = key('agent:' .. agent_id), key('agent:' .. agent_id .. ':users')
local fails_key, due_key = key('agent:' .. agent_id .. ':fails'), key('poll:due')
if previous and previous ~= agent_id then plan_drop_user(previous) end
if #missing > 0 then return need() end
if previous and previous ~= agent_id then drop_user(user, previous) end
redis.call('HSET', user_key, 'agent_id', agent_id, 'linked_at', now)
redis.call('HSET', agent_key, 'token', sealed, 'name', name, 'mode', mode, 'state', 'active',
  'paused_reason', '', 'last_error', '', 'linked_at', now)
redis.call('SADD', users_key, user)
redis.call('SADD', agents_key, agent_id)
redis.call('DEL', fails_key)
-- Due at once (score 0 in the poller's queue, whatever its clock): polled at the next claim.
redis.call('ZADD', due_key, 0, agent_id)
if previous and previous ~= agent_id then return tonumber(previous) end
return 0
"""
)

# Adds a subscription unless the chat, or (for a watch) the user who makes it, is at its cap.
# The user's watch index heals itself: ids whose subscription is gone or no longer theirs
# (removed, chat dropped, imported) are pruned before counting. Returns the id, -1 (chat full)
# or -2 (user full). Names: sub:seq, chat:<chat>:subs, watches, user:<user>:watches (or the
# agent's subs). A: chat, user (''), chat cap, user cap, is watch, agent id, then the fields.
_ADD_SUB = (
    _DECLARED
    + """
local chat, user, chat_cap, user_cap, is_watch, agent_id = A[1], A[2], tonumber(A[3]), tonumber(A[4]), A[5], A[6]
local fields, created_by = {}, ''
for i = 7, #A do table.insert(fields, A[i]) end
for i = 1, #fields - 1, 2 do if fields[i] == 'created_by' then created_by = fields[i + 1] end end
local seq, chat_subs = key('sub:seq'), key('chat:' .. chat .. ':subs')
local watches, user_watches, agent_subs
if is_watch == '1' then
  watches, user_watches = key('watches'), key('user:' .. user .. ':watches')
else
  agent_subs = key('agent:' .. agent_id .. ':subs')
end
-- The id INCR gives below (nothing else runs in between).
local new_sub = key('sub:' .. (tonumber(redis.call('GET', seq) or '0') + 1))
if is_watch == '1' and user_cap > 0 and user_watches then
  for _, sid in ipairs(redis.call('SMEMBERS', user_watches)) do key('sub:' .. sid) end
end
if #missing > 0 then return need() end
if chat_cap > 0 and redis.call('SCARD', chat_subs) >= chat_cap then return -1 end
if is_watch == '1' and user_cap > 0 then
  for _, sid in ipairs(redis.call('SMEMBERS', user_watches)) do
    if redis.call('HGET', key('sub:' .. sid), 'created_by') ~= created_by then redis.call('SREM', user_watches, sid) end
  end
  if redis.call('SCARD', user_watches) >= user_cap then return -2 end
end
local id = redis.call('INCR', seq)
redis.call('HSET', new_sub, unpack(fields))
redis.call('SADD', chat_subs, id)
if is_watch == '1' then
  redis.call('SADD', watches, id)
  redis.call('SADD', user_watches, id)
else
  redis.call('SADD', agent_subs, id)
end
return id
"""
)

# Drops every subscription of a chat (bot blocked or removed).
# Names: chat:<chat>:subs, chat:<chat>:kinds, watches. A: chat.
_DROP_CHAT = (
    _DECLARED
    + """
local chat_subs, kinds, watches = key('chat:' .. A[1] .. ':subs'), key('chat:' .. A[1] .. ':kinds'), key('watches')
for _, sid in ipairs(redis.call('SMEMBERS', chat_subs)) do
  local sub = key('sub:' .. sid)
  local agent = sub and redis.call('HGET', sub, 'agent_id')
  if agent and agent ~= '' then key('agent:' .. agent .. ':subs') end
end
if #missing > 0 then return need() end
local n = 0
for _, sid in ipairs(redis.call('SMEMBERS', chat_subs)) do
  local sub = key('sub:' .. sid)
  local agent = redis.call('HGET', sub, 'agent_id')
  if agent and agent ~= '' then redis.call('SREM', key('agent:' .. agent .. ':subs'), sid) end
  redis.call('SREM', watches, sid)
  redis.call('DEL', sub)
  n = n + 1
end
redis.call('DEL', chat_subs, kinds)
return n
"""
)

# Re-points every subscription and the kind settings of a chat to its new id.
# Names: both chats' subs and kinds. A: old chat, new chat.
_MOVE_CHAT = (
    _DECLARED
    + """
local old, new = A[1], A[2]
local old_subs, new_subs = key('chat:' .. old .. ':subs'), key('chat:' .. new .. ':subs')
local old_kinds, new_kinds = key('chat:' .. old .. ':kinds'), key('chat:' .. new .. ':kinds')
for _, sid in ipairs(redis.call('SMEMBERS', old_subs)) do key('sub:' .. sid) end
if #missing > 0 then return need() end
local n = 0
for _, sid in ipairs(redis.call('SMEMBERS', old_subs)) do
  redis.call('HSET', key('sub:' .. sid), 'chat', new)
  redis.call('SADD', new_subs, sid)
  n = n + 1
end
redis.call('DEL', old_subs)
if redis.call('EXISTS', old_kinds) == 1 then
  redis.call('RENAME', old_kinds, new_kinds)
end
return n
"""
)


class Store:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        box: TokenBox,
        *,
        max_per_chat: int = 0,
        max_watches_per_user: int = 0,
    ) -> None:
        """`max_per_chat`, `max_watches_per_user`: caps on what a stranger can grow (0: none)."""
        self._r = redis
        self._k = keys
        self._box = box
        self._max_per_chat = max_per_chat
        self._max_watches_per_user = max_watches_per_user
        self._add_sub = redis.register_script(_ADD_SUB)
        self._unlink = redis.register_script(_UNLINK)
        self._link = redis.register_script(_LINK)
        self._drop_chat = redis.register_script(_DROP_CHAT)
        self._move_chat = redis.register_script(_MOVE_CHAT)

    async def _declared(self, script: AsyncScript, names: list[str], args: Sequence[EncodableT]) -> object:
        """Runs a store script with every key it touches in KEYS (see `_DECLARED`): it answers
        {'need', names...} until it has them all, and only then writes."""
        names = list(dict.fromkeys(names))
        for _ in range(DECLARE_ROUNDS):
            result = await script(keys=[self._k.hub_name(n) for n in names], args=[len(names), *names, *args])
            if not (isinstance(result, list) and result and text(result[0]) == "need"):
                return result
            names += [n for n in (text(x) for x in result[1:]) if n not in names]
        raise RedisError(f"a store script still named new keys after {DECLARE_ROUNDS} rounds")

    # --- accounts ------------------------------------------------------------------------
    async def link(self, user_key: str, agent_id: int, name: str, token: str, mode: Mode) -> int | None:
        """Links the user to the agent; returns the agent the user linked before, now unlinked."""
        agent = f"agent:{agent_id}"
        previous = await self._declared(
            self._link,
            [f"user:{user_key}", "agents", agent, f"{agent}:users", f"{agent}:fails", "poll:due"],
            [user_key, agent_id, time.time(), self._box.seal(token, agent_id), name, mode],
        )
        return int(cast(int, previous)) or None

    async def linked_agent_id(self, user_key: str) -> int | None:
        raw = await self._r.hget(self._k.user_link(user_key), "agent_id")
        return int(raw) if raw else None

    async def agent(self, agent_id: int) -> LinkedAgent | None:
        return self.linked_agent(agent_id, text_dict(await self._r.hgetall(self._k.agent(agent_id))))

    def linked_agent(self, agent_id: int, d: Mapping[str, str]) -> LinkedAgent | None:
        """The agent from its stored hash (as read here or by a script); None if empty."""
        if not d:
            return None
        sealed = d.get("token", "")
        return LinkedAgent(
            agent_id=agent_id,
            name=d.get("name", ""),
            mode="observe" if d.get("mode") == "observe" else "consume",
            state=d.get("state", "active"),
            token=self._box.open(sealed, agent_id) if sealed else None,
            last_ok=float(d["last_ok"]) if d.get("last_ok") else None,
            last_error=d.get("last_error", ""),
            paused_reason=d.get("paused_reason", ""),
            possible_loss=d.get("loss", ""),
            possible_loss_at=float(d["loss_at"]) if d.get("loss_at") else None,
            loss_reports=int(d.get("loss_reports") or 0),
        )

    async def agent_for_user(self, user_key: str) -> LinkedAgent | None:
        agent_id = await self.linked_agent_id(user_key)
        return await self.agent(agent_id) if agent_id else None

    async def agent_ids(self) -> list[int]:
        return sorted(int(x) for x in await self._r.smembers(self._k.agents()))

    async def unlink(self, user_key: str) -> list[int]:
        """Takes the user off every agent that lists them; an agent's routes go too when no other
        user links it. Returns those agent ids, the currently linked one first (empty: none)."""
        raw = await self._declared(self._unlink, [f"user:{user_key}", "agents"], [user_key])
        return [int(x) for x in cast(list[bytes], raw)]

    async def rekey(self) -> RekeyCounts:
        """Re-seals every stored token with the newest key. A token no configured key opens is
        left as it is: its agent is paused with the relink notice at its next poll."""
        counts = RekeyCounts()
        for agent_id in await self.agent_ids():
            key = self._k.agent(agent_id)
            sealed = await self._r.hget(key, "token")
            if not sealed:
                continue
            opened = self._box.open_with_index(text(sealed), agent_id)
            if opened is None:
                counts.unreadable += 1
                continue
            token, index = opened
            if index == 0:
                counts.current += 1
                continue
            # Only if the record still holds what was read: a /link meanwhile wins.
            async with self._r.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                if await pipe.hget(key, "token") != sealed:
                    counts.current += 1
                    continue
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(key, "token", self._box.seal(token, agent_id))
                await pipe.execute()
            counts.rekeyed += 1
        return counts

    async def pause_agent(self, agent_id: int, reason: str) -> None:
        await self._r.hset(self._k.agent(agent_id), mapping={"state": "paused", "paused_reason": reason})

    async def record_possible_loss(
        self, agent_id: int, *, low: int | None, high: int | None, boundary: str, text: str, now: float
    ) -> None:
        """A lost response whose rows `recent` could not be shown to hold: kept in the losses
        stream for operators, and on the agent's record for /status."""
        pipe = self._r.pipeline(transaction=True)
        fields: dict[str, str | int | float] = {
            "agent": agent_id,
            "low": "" if low is None else low,
            "high": "" if high is None else high,
            "boundary": boundary,
            "t": now,
        }
        pipe.xadd(self._k.losses(), fields, maxlen=LOSSES_CAP, approximate=True)  # type: ignore[arg-type]
        pipe.hincrby(self._k.stats(), "possible_losses", 1)
        await pipe.execute()
        key = self._k.agent(agent_id)
        if await self._r.exists(key):
            await self._r.hset(key, mapping={"loss": text, "loss_at": now})
            await self._r.hincrby(key, "loss_reports", 1)

    async def possible_losses(self, count: int = 1000) -> list[LossReport]:
        """The newest loss reports, oldest first."""
        raw = await self._r.xrevrange(self._k.losses(), count=count) or []
        out = []
        for _, fields in reversed(raw):
            d = {_s(k): _s(v) for k, v in (fields or {}).items()}
            out.append(
                LossReport(
                    int(d["agent"]),
                    int(d["low"]) if d.get("low") else None,
                    int(d["high"]) if d.get("high") else None,
                    d.get("boundary", ""),
                    float(d.get("t") or 0),
                )
            )
        return out

    async def record_poll(self, agent_id: int, *, ok: bool, error: str = "") -> None:
        key = self._k.agent(agent_id)
        if not await self._r.exists(key):
            return  # unlinked meanwhile: do not resurrect a partial record
        if ok:
            now = time.time()
            await self._r.hset(key, mapping={"last_ok": now, "last_error": ""})
            await self._r.set(self._k.poll_last_ok(), now)  # /readyz: is anyone polling at all?
        else:
            await self._r.hset(key, "last_error", error[:300])

    # --- subscriptions -------------------------------------------------------------------
    async def add_subscription(self, sub: Subscription) -> int:
        """The new subscription's id; raises LimitReached when the chat or the user is at a cap."""
        fields: list[EncodableT] = [
            "kind", sub.kind,
            "chat", sub.chat.key,
            "agent_id", sub.agent_id or "",
            "kinds", ",".join(sorted(sub.kinds)),
            "keyword", sub.keyword,
            "type", sub.message_type,
            "trader_id", sub.trader_id or "",
            "created_by", sub.created_by,
            "market", sub.market,
            "symbol", sub.symbol,
            "exclude", json.dumps(list(sub.exclude), ensure_ascii=False) if sub.exclude else "",
        ]  # fmt: skip
        is_watch = not (sub.kind == "agent" and sub.agent_id)
        result = int(
            cast(
                int,
                await self._declared(
                    self._add_sub,
                    ["sub:seq", f"chat:{sub.chat.key}:subs"]
                    + (["watches", f"user:{sub.created_by}:watches"] if is_watch else [f"agent:{sub.agent_id}:subs"]),
                    [
                        sub.chat.key,
                        sub.created_by,
                        self._max_per_chat,
                        self._max_watches_per_user if sub.created_by else 0,
                        "1" if is_watch else "0",
                        sub.agent_id or "",
                        *fields,
                    ],
                ),
            )
        )
        if result == -1:
            raise self._chat_full()
        if result == -2:
            raise self._user_full()
        return result

    async def ensure_room(self, chat: ChatRef, user: str, *, watch: bool) -> None:
        """Raises LimitReached when a new subscription would not fit; for checking before any
        upstream call (add_subscription enforces the caps again, atomically)."""
        if self._max_per_chat and await self._r.scard(self._k.chat_subs(chat.key)) >= self._max_per_chat:
            raise self._chat_full()
        if watch and user and self._max_watches_per_user:
            ids = await self._r.smembers(self._k.user_watches(user))
            owners = [await self._r.hget(self._k.sub(int(i)), "created_by") for i in ids]
            if sum(1 for o in owners if o is not None and text(o) == user) >= self._max_watches_per_user:
                raise self._user_full()

    def _chat_full(self) -> LimitReached:
        return LimitReached(
            N_("this chat already has {n} subscriptions, the most it may hold; /unsubscribe one first"),
            n=self._max_per_chat,
        )

    def _user_full(self) -> LimitReached:
        return LimitReached(
            N_("you already have {n} feed and trader watches, the most allowed; /unsubscribe one first"),
            n=self._max_watches_per_user,
        )

    async def subscription(self, sub_id: int) -> Subscription | None:
        h = await self._r.hgetall(self._k.sub(sub_id))
        if not h:
            return None
        d = text_dict(h)
        kind = d.get("kind", "agent")
        return Subscription(
            sub_id=sub_id,
            kind=kind if kind in ("agent", "feed", "trader") else "agent",  # type: ignore[arg-type]
            chat=ChatRef.from_key(d["chat"]),
            agent_id=int(d["agent_id"]) if d.get("agent_id") else None,
            kinds=frozenset(x for x in d.get("kinds", "").split(",") if x),
            keyword=d.get("keyword", ""),
            message_type=d.get("type", ""),
            trader_id=int(d["trader_id"]) if d.get("trader_id") else None,
            created_by=d.get("created_by", ""),
            market=d.get("market", ""),
            symbol=d.get("symbol", ""),
            exclude=_words(d.get("exclude", "")),
        )

    async def _subscriptions(self, ids: Iterable[bytes | str]) -> list[Subscription]:
        subs = [await self.subscription(int(i)) for i in sorted(ids, key=int)]
        return [s for s in subs if s is not None]

    async def chat_subscriptions(self, chat: ChatRef) -> list[Subscription]:
        return await self._subscriptions(await self._r.smembers(self._k.chat_subs(chat.key)))

    async def agent_subscriptions(self, agent_id: int) -> list[Subscription]:
        return await self._subscriptions(await self._r.smembers(self._k.agent_subs(agent_id)))

    async def watches(self) -> list[Subscription]:
        return await self._subscriptions(await self._r.smembers(self._k.watches()))

    async def remove_subscription(self, chat: ChatRef, sub_id: int) -> bool:
        sub = await self.subscription(sub_id)
        if sub is None or sub.chat != chat:
            return False
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._k.sub(sub_id), self._k.watch_seen(sub_id))
        pipe.srem(self._k.chat_subs(chat.key), sub_id)
        pipe.srem(self._k.watches(), sub_id)
        if sub.agent_id:
            pipe.srem(self._k.agent_subs(sub.agent_id), sub_id)
        await pipe.execute()
        return True

    # --- per-chat settings ---------------------------------------------------------------
    async def set_kind_mode(self, chat: ChatRef, kind: str, mode: str) -> None:
        await self._r.hset(self._k.chat_kinds(chat.key), kind, mode)

    async def kind_modes(self, chat: ChatRef) -> dict[str, str]:
        h = await self._r.hgetall(self._k.chat_kinds(chat.key))
        return text_dict(h)

    async def set_chat_error(self, chat: ChatRef, sentence: str, detail: str) -> None:
        """`sentence` is a catalogue msgid with a `{detail}` placeholder, kept untranslated so that
        /status says it in the language of whoever asks; `detail` is the platform's own words."""
        value = json.dumps({"s": sentence, "d": detail[:300]}, ensure_ascii=False)
        await self._r.set(self._k.chat_error(chat.key), f"{int(time.time())} {value}", ex=CHAT_ERROR_TTL)

    async def chat_error(self, chat: ChatRef) -> ChatError | None:
        raw = text_or_empty(await self._r.get(self._k.chat_error(chat.key)))
        at, _, value = raw.partition(" ")
        try:
            fields = json.loads(value)
            return ChatError(float(at), str(fields["s"]), str(fields["d"]))
        except (ValueError, TypeError, KeyError):
            # Written before errors were stored as a sentence and a detail: shown as it was.
            return ChatError(float(at), "{detail}", value) if at.isdigit() else None

    async def topics_of(self, chat: ChatRef) -> list[ChatRef]:
        """Forum topics of a chat that have subscriptions (chat keys with a thread id)."""
        pattern = self._k.chat_subs(f"{chat.platform}:{chat.chat_id}:*")
        topics = []
        async for key in self._r.scan_iter(match=pattern, count=1000):
            chat_key = text(key)[len(self._k.hub_stem()) + len(":chat:") : -len(":subs")]
            ref = ChatRef.from_key(chat_key)
            if ref.thread_id:
                topics.append(ref)
        return topics

    async def drop_chat(self, chat: ChatRef) -> int:
        return int(
            cast(
                int,
                await self._declared(
                    self._drop_chat, [f"chat:{chat.key}:subs", f"chat:{chat.key}:kinds", "watches"], [chat.key]
                ),
            )
        )

    async def move_chat(self, old: ChatRef, new: ChatRef) -> int:
        return int(
            cast(
                int,
                await self._declared(
                    self._move_chat,
                    [f"chat:{c}:{part}" for c in (old.key, new.key) for part in ("subs", "kinds")],
                    [old.key, new.key],
                ),
            )
        )
