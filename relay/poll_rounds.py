"""A poll's Redis work in two round trips: one script before the heartbeat, one after it.

`begin` takes the agent's poll lease, reads its record (token, mode, state), whether a lost
response is waiting to be reconciled, its inbox backlog, its failure count and AI-Trader's outage
streak, and sets the "reconcile me" mark when the poll is going to call the destructive heartbeat,
all atomically: the mark is in Redis before the call, as before.

`end` stores the heartbeat's answer (rows into the dedup set and the inbox stream, tasks into their
dedup hash, exactly as relay.inbox's scripts), clears the mark, records the settled point, sets
the next due time in the shared queue, records the poll's outcome on the agent and for /readyz,
counts or clears the failure streaks, and releases the lease: what was one atomic step stays one
(the rows and the mark's clearing are still in one script), and the rest joins it. It returns the
inbox entries it added, so fan-out can start from what the poll holds in memory.

Every key is a hub key (relay.keys), passed in KEYS: on a Redis Cluster both scripts run on the
hub's node. Lines marked "as relay.inbox" must change with the scripts there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from relay import parse, pipelined_scripts
from relay.keys import INBOX_CAP, SEEN_CAP, TASKS_CAP, Keys
from relay.models import Notification, Task
from relay.redis_values import text

# KEYS: lease, agent, reconcile set, inbox, backoff, upstream failures, the agent's subscriptions.
# ARGV: owner, lease ms, agent id, inbox cap.
# Returns {0} (someone else holds the lease), {2} (not linked: lease released), or
# {1, was marked, marked now, backlog, fails, outage streak, the agent's token, mode, state and name
# as a flat field/value list (those present), subscriptions}.
_BEGIN = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return {2}
end
-- Only the fields a poll reads (a reply's every element costs the client to parse).
local f = redis.call('HMGET', KEYS[2], 'token', 'mode', 'state', 'name')
local h = {}
for i, name in ipairs({'token', 'mode', 'state', 'name'}) do
  if f[i] then table.insert(h, name); table.insert(h, f[i]) end
end
local token, mode, state = f[1] or '', f[2] or 'consume', f[3] or 'active'
local was_marked = redis.call('SISMEMBER', KEYS[3], ARGV[3])
local backlog = redis.call('XLEN', KEYS[4])
local fails = tonumber(redis.call('GET', KEYS[5]) or '0')
local streak = tonumber(redis.call('GET', KEYS[6]) or '0')
local listeners = redis.call('SCARD', KEYS[7])
local marked = 0
-- This poll will call the destructive heartbeat: the mark goes in first. With no subscription
-- it does not call it (relay.poller: nothing would reach a chat).
if listeners > 0 and mode ~= 'observe' and state == 'active' and token ~= '' and backlog < tonumber(ARGV[4]) then
  redis.call('SADD', KEYS[3], ARGV[3])
  marked = 1
end
return {1, was_marked, marked, backlog, fails, streak, h, listeners}
"""

# KEYS: 1 seen, 2 inbox, 3 stats, 4 tasks seen, 5 reconcile set, 6 agent, 7 backoff, 8 lease,
# 9 due queue, 10 poll last_ok, 11 upstream failures.
# ARGV: 1 agent id, 2 owner, 3 seen cap, 4 rows n, 5 tasks ('' none, '1' the list is complete,
# '0' partial), 6 now, 7 tasks cap, 8 clear the mark, 9 settle, 10 next due ms ('' keep), 11 the
# claim's due ms ('' unclaimed), 12 outcome ('ok', 'error', '' none), 13 error text, 14 fails
# ('' keep, '0' clear, else the new count), 15 fails TTL, 16 '1' count an outage failure, 17 release
# the lease; then n id/row pairs (oldest first), then task id/row pairs.
# Returns the outage streak a success cleared, then kind ('m'|'t'), id, inbox entry id per new row.
_END = """
local agent_id, owner = ARGV[1], ARGV[2]
local n = tonumber(ARGV[4])
local out = {0}
local inserted = 0
for i = 18, 17 + 2 * n, 2 do  -- as relay.inbox _PERSIST
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i]) == 1 then
    local eid = redis.call('XADD', KEYS[2], '*', 'k', 'm', 'id', ARGV[i], 'n', ARGV[i + 1])
    inserted = inserted + 1
    table.insert(out, 'm')
    table.insert(out, ARGV[i])
    table.insert(out, eid)
  end
end
if n > 0 then
  local window = tonumber(ARGV[3])
  local size = redis.call('ZCARD', KEYS[1])
  if size > window then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - window - 1) end
  redis.call('HINCRBY', KEYS[3], 'persisted', inserted)
  redis.call('HINCRBY', KEYS[3], 'duplicates_skipped', n - inserted)
end
if ARGV[5] ~= '' then  -- as relay.inbox _PERSIST_TASKS
  local present = {}
  for i = 18 + 2 * n, #ARGV, 2 do
    present[ARGV[i]] = true
    if redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[6]) == 1 then
      local eid = redis.call('XADD', KEYS[2], '*', 'k', 't', 'id', ARGV[i], 'n', ARGV[i + 1])
      table.insert(out, 't')
      table.insert(out, ARGV[i])
      table.insert(out, eid)
    end
  end
  if ARGV[5] == '1' then
    for _, id in ipairs(redis.call('HKEYS', KEYS[4])) do
      if not present[id] then redis.call('HDEL', KEYS[4], id) end
    end
  end
  local extra = redis.call('HLEN', KEYS[4]) - tonumber(ARGV[7])
  if extra > 0 then
    local all = redis.call('HGETALL', KEYS[4])
    local ids = {}
    for i = 1, #all, 2 do
      if not present[all[i]] then table.insert(ids, {tonumber(all[i + 1]), all[i]}) end
    end
    table.sort(ids, function(a, b) return a[1] < b[1] end)
    for i = 1, math.min(extra, #ids) do redis.call('HDEL', KEYS[4], ids[i][2]) end
  end
end
if ARGV[8] == '1' then redis.call('SREM', KEYS[5], agent_id) end
local linked = redis.call('EXISTS', KEYS[6]) == 1
if ARGV[9] == '1' and linked then  -- as relay.inbox _SETTLE
  local top = redis.call('ZRANGE', KEYS[1], -1, -1)
  if top[1] then redis.call('HSET', KEYS[6], 'settled_id', top[1]) end
end
-- A due time someone lowered during the poll (poll_now, an outage's end) is kept if sooner; an
-- agent no longer queued was unlinked meanwhile and is not queued again.
if ARGV[10] ~= '' then
  local s = redis.call('ZSCORE', KEYS[9], agent_id)
  if s and not (ARGV[11] ~= '' and tonumber(s) ~= tonumber(ARGV[11]) and tonumber(s) < tonumber(ARGV[10])) then
    redis.call('ZADD', KEYS[9], ARGV[10], agent_id)
  end
end
if ARGV[12] == 'ok' then
  if linked then redis.call('HSET', KEYS[6], 'last_ok', ARGV[6], 'last_error', '') end
  redis.call('SET', KEYS[10], ARGV[6])
  out[1] = tonumber(redis.call('GETDEL', KEYS[11]) or '0')
elseif ARGV[12] == 'error' and linked then
  redis.call('HSET', KEYS[6], 'last_error', ARGV[13])
elseif ARGV[12] == 'idle' then  -- not polled on purpose: the poller itself is working
  redis.call('SET', KEYS[10], ARGV[6])
end
if ARGV[16] == '1' then redis.call('INCR', KEYS[11]) end
if ARGV[14] == '0' then
  redis.call('DEL', KEYS[7])
elseif ARGV[14] ~= '' then
  redis.call('SET', KEYS[7], ARGV[14], 'EX', ARGV[15])
end
if ARGV[17] == '1' and redis.call('GET', KEYS[8]) == owner then redis.call('DEL', KEYS[8]) end
return out
"""


@dataclass(frozen=True, slots=True)
class Begun:
    """What `begin` found. `held` False: another process polls the agent; `record` empty: not linked."""

    held: bool
    record: dict[str, str]
    was_marked: bool = False  # a lost response of an earlier poll waits to be reconciled
    marked: bool = False  # this script set the mark: the poll may call the heartbeat
    backlog: int = 0  # inbox entries not yet fanned out
    fails: int = 0  # the agent's consecutive upstream failures
    streak: int = 0  # consecutive polls, over all agents, that found AI-Trader unavailable
    listeners: int = 1  # the agent's subscriptions (0: no chat would receive what a poll reads)


@dataclass(frozen=True, slots=True)
class Added:
    """One inbox entry `end` added: what fan-out needs without reading the inbox back."""

    is_task: bool
    item_id: str
    entry_id: str
    row: str  # the stored JSON row, as the inbox holds it


@dataclass(frozen=True, slots=True)
class Ended:
    cleared_streak: int  # the outage streak a success cleared (0: there was none)
    added: tuple[Added, ...]


@dataclass(slots=True)
class Ending:
    """What `end` should do; the poll fills it in as it goes."""

    rows: Sequence[Notification] = ()
    tasks: Sequence[Task] | None = None  # None: the heartbeat did not run (leave tasks alone)
    tasks_complete: bool = False
    clear_mark: bool = False
    settle: bool = False
    next_due: float | None = None  # epoch seconds
    hold: int | None = None  # the claim's due time (ms), when the poll came from a claim
    outcome: str = ""  # "ok", "error", "idle" (not polled on purpose) or "" (nothing to record)
    error: str = ""
    fails: int | None = None  # None keep, 0 clear, else the new count
    fails_ttl: int = 0
    outage_failure: bool = False
    release: bool = True


class PollRounds:
    def __init__(self, redis: Redis, keys: Keys, owner: str) -> None:
        self._r = redis
        self._k = keys
        self._owner = owner
        self._begin = redis.register_script(_BEGIN)
        self._end = redis.register_script(_END)

    def _begin_keys(self, agent_id: int) -> list[str]:
        k = self._k
        return [
            k.poll_lease(agent_id),
            k.agent(agent_id),
            k.needs_reconcile(),
            k.inbox(agent_id),
            k.backoff(agent_id),
            k.upstream_failures(),
            k.agent_subs(agent_id),
        ]

    def _begin_args(self, agent_id: int, lease_ms: int) -> list[pipelined_scripts.Arg]:
        return [self._owner, lease_ms, agent_id, INBOX_CAP]

    async def begin(self, agent_id: int, lease_ms: int) -> Begun:
        raw = await self._begin(keys=self._begin_keys(agent_id), args=self._begin_args(agent_id, lease_ms))
        return _begun(raw)

    async def begin_many(self, agent_ids: Sequence[int], lease_ms: int) -> list[Begun | Exception]:
        """`begin` for a claim's agents in one round trip (a pipeline of the script, each run
        atomic on its own as before); an agent whose script Redis refused gets the error instead.
        On a cluster, one call each (redis-py's cluster pipelines refuse scripts)."""
        if len(agent_ids) <= 1 or self._k.cluster:
            return [await self.begin(a, lease_ms) for a in agent_ids]
        pipe = self._r.pipeline(transaction=False)
        calls = [(self._begin_keys(a), self._begin_args(a, lease_ms)) for a in agent_ids]
        for keys, args in calls:
            pipelined_scripts.queue(pipe, self._begin, keys, args)
        out: list[Begun | Exception] = []
        for (keys, args), raw in zip(calls, await pipe.execute(raise_on_error=False), strict=True):
            reply = await pipelined_scripts.outcome(raw, self._begin, keys, args)
            out.append(reply if isinstance(reply, Exception) else _begun(reply))
        return out

    async def end(self, agent_id: int, e: Ending, *, now: float) -> Ended:
        k = self._k
        rows = sorted(e.rows, key=lambda n: n.message_id)
        # Encode everything before the script runs: Redis does not roll back a half-run script.
        args: list[str | int | float] = [
            agent_id,
            self._owner,
            SEEN_CAP,
            len(rows),
            "" if e.tasks is None else ("1" if e.tasks_complete else "0"),
            now,
            TASKS_CAP,
            "1" if e.clear_mark else "0",
            "1" if e.settle else "0",
            "" if e.next_due is None else int(e.next_due * 1000),
            "" if e.hold is None else e.hold,
            e.outcome,
            e.error[:300],
            "" if e.fails is None else e.fails,
            e.fails_ttl,
            "1" if e.outage_failure else "0",
            "1" if e.release else "0",
        ]
        encoded: dict[tuple[bool, str], str] = {}
        for n in rows:
            row = encoded[(False, str(n.message_id))] = parse.notification_to_json(n)
            args += [n.message_id, row]
        for t in e.tasks or ():
            row = encoded[(True, str(t.task_id))] = parse.notification_to_json(parse.task_to_notification(t))
            args += [t.task_id, row]
        raw = await self._end(
            keys=[
                k.seen(agent_id),
                k.inbox(agent_id),
                k.stats(),
                k.tasks_seen(agent_id),
                k.needs_reconcile(),
                k.agent(agent_id),
                k.backoff(agent_id),
                k.poll_lease(agent_id),
                k.poll_due(),
                k.poll_last_ok(),
                k.upstream_failures(),
            ],
            args=args,
        )
        added = []
        for i in range(1, len(raw), 3):
            is_task, item_id = text(raw[i]) == "t", text(raw[i + 1])
            added.append(Added(is_task, item_id, text(raw[i + 2]), encoded[(is_task, item_id)]))
        return Ended(int(raw[0] or 0), tuple(added))


def _begun(raw: Any) -> Begun:
    """The begin script's reply (see _BEGIN)."""
    if int(raw[0]) == 0:
        return Begun(False, {})
    if int(raw[0]) == 2:
        return Begun(True, {})
    flat = raw[6]
    record = {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}
    return Begun(
        True,
        record,
        was_marked=bool(int(raw[1])),
        marked=bool(int(raw[2])),
        backlog=int(raw[3]),
        fails=int(raw[4]),
        streak=int(raw[5]),
        listeners=int(raw[7]),
    )
