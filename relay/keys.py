"""The whole Redis schema on one page: every key the relay writes, under one prefix.

Each method names one key (or family). Values, types and lifetimes are in the comments, because
this is where someone reading a Redis dump starts. `chat` arguments are `ChatRef.key` strings.

`FAMILIES` (at the end) declares every family with its Redis type and its bound: a TTL, a size
cap, or "one per <entity>, deleted with it". The code enforces each bound with the constants
below, and a test scans Redis after a pipeline workload and matches every key to a family.

On a Redis Cluster (`Keys(cluster=True)`, REDIS_CLUSTER) the keys that Lua scripts and
transactions change together carry one hash tag, `{<prefix>}` (`_h`: "the hub"), so each script
runs on one node; a trade's three keys share a tag of their own; keys used alone keep their own
slots. Per-agent or per-chat tags would split scripts that span agents and chats (a heartbeat's
rows with their dedup entries, a fan-out into every chat's queue with the inbox ack, an unlink
with the routes of every chat), which are what makes "nothing lost, nothing twice" hold.
Families are matched without the tags (`family_of`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

# Bounds the code enforces (imported where the keys are written).
SEEN_CAP = 5000  # ids per agent; `messages/recent` reaches back at most 3 x 50
TASKS_CAP = 1000  # task ids per agent; pending tasks upstream, pruned when a heartbeat lists them all
INBOX_CAP = 2000  # entries per agent inbox: past it the poller stops the destructive heartbeat
WATCH_SEEN_CAP = 1000  # signal ids per feed/trader watch
DELIVERED_CAP = 100_000  # newest delivery keys kept for dedup ...
DELIVERED_TTL = 7 * 86400  # ... and none older than this
DEAD_CAP = 100_000  # dead letters kept (approximate MAXLEN trim)
LOSS_TTL = 30 * 86400  # a possible-loss notice is shown in /status for this long
LOSSES_CAP = 10_000  # possible-loss reports kept (approximate MAXLEN trim)
REVOKED_TTL = 30 * 86400
CHAT_ERROR_TTL = 7 * 86400
COMMAND_SEEN_TTL = 86400
BRIEF_CLAIM_TTL = 3 * 86400  # longer than the two local dates a brief check looks at
NAME_TTL = 300  # an agent's cached name: a rename shows within five minutes
SUGGEST_FOLLOWING_TTL = 300  # Discord autocomplete: the traders a user's agent follows, cached
NAME_MISSING_TTL = 30  # an unknown agent id: it may be registered any moment
ORDER_TTL = 120  # a /trade waiting for Confirm; the 60 s window itself is checked against its clock
ORDER_RESULT_TTL = 86400  # how a /trade ended, for presses that come later
HOLD_CAP = 5000  # notifications one chat's held (or digest) stream keeps; past it they are sent now
HOLD_BATCH_TTL = 7 * 86400  # a released summary's notifications, for its "Show all" button (/held)
JOURNAL_CHAT_CAP = 1000  # /why: newest events kept per chat (a delivered notification takes 2) ...
JOURNAL_AGENT_CAP = 2000  # ... and reads per agent (one per call of a poll: the rows it read) ...
JOURNAL_TTL = 7 * 86400  # ... none older than this; a journal nobody writes expires whole


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "relay"
    cluster: bool = False  # REDIS_CLUSTER: hash tags on (see `_h`); off, every name is as it always was

    def _k(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    def _h(self, *parts: object) -> str:
        """A key of the hub: the keys that scripts and transactions change together (linked
        accounts, subscriptions, the inbox and dedup sets, the delivery queues and their shared
        sets). On a cluster they carry the hash tag `{<prefix>}`, so they share one slot and every
        multi-key script stays on one node; single keys elsewhere keep their own slots. On one
        Redis the name is unchanged, so existing deployments need no migration."""
        if self.cluster:
            return ":".join((self.prefix, self.hub_tag, *map(str, parts)))
        return self._k(*parts)

    @property
    def hub_tag(self) -> str:
        return "{" + self.prefix + "}"

    def hub_stem(self) -> str:
        """What every hub key starts with, before its `:`-separated parts."""
        return self._h()

    def hub_name(self, name: str) -> str:
        """The hub key a script names `name` (`agent:5:subs` is `agent_subs(5)`): relay.store."""
        return f"{self._h()}:{name}"

    def _tagged(self, family: str, entity: object, *rest: object) -> str:
        """One entity's keys that a transaction changes together: on a cluster the entity id is
        the hash tag (`trade:{<order>}:done`), so they share a slot without joining the hub."""
        return self._k(family, f"{{{entity}}}" if self.cluster else entity, *rest)

    # --- linked accounts (belong to chat users) -------------------------------------------
    def user_link(self, user: str) -> str:
        """HASH agent_id, linked_at: which agent a chat user linked. No TTL."""
        return self._h("user", user)

    def agent(self, agent_id: int) -> str:
        """HASH token (AEAD ciphertext, base64), name, mode (consume|observe), state (active|paused),
        paused_reason, last_ok (epoch), last_error, interval, linked_at. No TTL."""
        return self._h("agent", agent_id)

    def agent_users(self, agent_id: int) -> str:
        """SET of user keys that linked this agent."""
        return self._h("agent", agent_id, "users")

    def agents(self) -> str:
        """SET of linked agent ids: the poller's work list."""
        return self._h("agents")

    def seen(self, agent_id: int) -> str:
        """ZSET message id -> id: dedup of inbox rows. Trimmed to the newest SEEN_CAP ids, far more
        than `messages/recent` can return (3 views x 50), so a recovered row is never re-added."""
        return self._h("agent", agent_id, "seen")

    def tasks_seen(self, agent_id: int) -> str:
        """HASH task id -> first seen epoch: tasks come back on every heartbeat while pending."""
        return self._h("agent", agent_id, "tasks")

    def inbox(self, agent_id: int) -> str:
        """STREAM of persisted notifications awaiting fan-out (fields: id, raw JSON row)."""
        return self._h("agent", agent_id, "inbox")

    def needs_reconcile(self) -> str:
        """SET of agent ids whose last heartbeat response may be lost: read `recent` before polling."""
        return self._h("reconcile")

    def losses(self) -> str:
        """STREAM of possible losses the relay could not rule out after a lost heartbeat response
        (agent, low, high, boundary): what an operator reads to know which ids may be missing."""
        return self._h("losses")

    def poll_due(self) -> str:
        """ZSET agent id -> epoch milliseconds of its next due poll: the due-time queue every
        process claims from (relay.poller), so K processes poll each agent once per interval. A
        claimed agent's score moves a lease-time ahead, so a dead claimer's agents come due again."""
        return self._h("poll", "due")

    def backoff(self, agent_id: int) -> str:
        """STRING consecutive upstream failures for the agent (drives full-jitter backoff)."""
        return self._h("agent", agent_id, "fails")

    def poll_lease(self, agent_id: int) -> str:
        """Lease: the one process polling this agent right now."""
        return self._h("lease", "agent", agent_id)

    def doorbell_lease(self, agent_id: int) -> str:
        """Lease: the one process holding this agent's WebSocket doorbell (relay.doorbell)."""
        return self._k("lease", "doorbell", agent_id)

    def poll_last_ok(self) -> str:
        """STRING epoch of the last successful poll of any agent, by any process (for /readyz).
        In the hub: the poll's end script writes it (relay.poll_rounds)."""
        return self._h("poll", "last_ok")

    def upstream_failures(self) -> str:
        """STRING consecutive polls, over all agents, that found AI-Trader unavailable. In the hub:
        the poll's begin script reads it and its end script counts or clears it (relay.poll_rounds)."""
        return self._h("upstream", "failures")

    def upstream_probe(self) -> str:
        """STRING PX: during an outage, the one poll allowed per interval to probe AI-Trader."""
        return self._k("upstream", "probe")

    def revoked_notice(self, agent_id: int, fingerprint: str) -> str:
        """STRING NX: the chats were told once that this token was rejected."""
        return self._k("agent", agent_id, "revoked", fingerprint)

    # --- subscriptions (belong to chats) ----------------------------------------------------
    def sub_seq(self) -> str:
        """STRING counter for subscription ids."""
        return self._h("sub", "seq")

    def sub(self, sub_id: int) -> str:
        """HASH kind (agent|feed|trader), chat, agent_id, kinds, keyword, type, trader_id, created_by."""
        return self._h("sub", sub_id)

    def user_watches(self, user: str) -> str:
        """SET of feed/trader subscription ids a user created, for the per-user cap. Pruned of ids
        no longer theirs each time the user adds a watch, so it stays within that cap."""
        return self._h("user", user, "watches")

    def backlog_notice(self, chat: str) -> str:
        """STRING NX EX 3600: the chat was told this hour that deliveries past its cap were
        dead-lettered (written by the enqueue script, relay.outbox)."""
        return self._h("backlog", chat)

    def chat_subs(self, chat: str) -> str:
        """SET of subscription ids of a chat."""
        return self._h("chat", chat, "subs")

    def agent_subs(self, agent_id: int) -> str:
        """SET of subscription ids routing this agent's notifications."""
        return self._h("agent", agent_id, "subs")

    def watches(self) -> str:
        """SET of feed and trader subscription ids (the feed watcher's work list)."""
        return self._h("watches")

    def watch_seen(self, sub_id: int) -> str:
        """ZSET signal_id -> signal_id already posted (or baselined) for a feed/trader watch."""
        return self._h("sub", sub_id, "seen")

    def watch_lease(self, sub_id: int) -> str:
        return self._k("lease", "watch", sub_id)

    def chat_kinds(self, chat: str) -> str:
        """HASH kind -> on|silent|off for a chat (absent = on)."""
        return self._h("chat", chat, "kinds")

    def chat_settings(self, chat: str) -> str:
        """HASH tz -> IANA zone name (absent: UTC); lang -> the `/language` choice (en|zh, absent:
        follow the users); seen_lang -> the language of the last command's sender, for notifications.
        One per chat, three short fields; removed when the chat goes."""
        return self._k("chat", chat, "settings")

    def briefs(self) -> str:
        """HASH chat -> JSON {id, time "HH:MM", sections, created_at, created_by}: the daily intel
        brief of each chat (at most one per chat, so bounded by the chats). Work list of the
        brief scheduler; removed with /unsubscribe or when the chat goes."""
        return self._k("briefs")

    def brief_claim(self, chat: str, local_date: str) -> str:
        """STRING NX EX 3 days ("sending" EX 5 minutes until queued): "sent" or "skipped" - the one
        process that handles this chat's brief for that local date (so K processes send it once)."""
        return self._k("brief", chat, local_date)

    # --- quiet hours, snooze, digests (relay.holding) ---------------------------------------
    def hold(self, chat: str) -> str:
        """HASH quiet "HH:MM-HH:MM", snooze (epoch), d:<kind> -> digest schedule ("hourly" |
        "daily HH:MM"), done:<schedule> -> last period sent (epoch), released (epoch of the last
        end-of-hold summary), pending:<batch> -> "silent|reason" (claimed, not yet queued), last
        (newest batch). One per chat; deleted with the chat."""
        return self._h("hold", chat)

    def hold_chats(self) -> str:
        """SET of chats with a hold setting or held entries: the holding check's work list.
        Bounded by the chats; a chat is removed once it has neither."""
        return self._h("hold", "chats")

    def held(self, chat: str) -> str:
        """STREAM (key, m, kind, tag quiet|snooze, s, t): notifications held by quiet hours or a
        snooze, at most HOLD_CAP (past it they are sent now); renamed to a batch when released."""
        return self._h("held", chat)

    def digest(self, chat: str) -> str:
        """STREAM (key, m, kind, tag = schedule, s, t): notifications collected for a digest, at
        most HOLD_CAP; each period's entries move to a batch when it is sent."""
        return self._h("digest", chat)

    def held_keys(self, chat: str) -> str:
        """SET of the delivery keys now in the chat's held and digest streams (<= 2 x HOLD_CAP):
        a notification routed twice (a retried fan-out, a recovered response) is held once. Its
        keys leave as their entries are released; deleted with the chat."""
        return self._h("heldkeys", chat)

    def hold_batch(self, chat: str, batch: str) -> str:
        """STREAM: the notifications of one released summary or digest (<= HOLD_CAP). EX 7 days
        once its summary is queued, for the summary's "Show all" button."""
        return self._h("batch", chat, batch)

    def hold_lease(self, chat: str) -> str:
        """Lease: the one process checking this chat's quiet hours, snooze and digests."""
        return self._k("lease", "hold", chat)

    def chat_error(self, chat: str) -> str:
        """STRING the last delivery or command error for a chat (for /status)."""
        return self._k("chat", chat, "error")

    # --- the trader's cockpit ----------------------------------------------------------------
    def suggest_following(self, user: str) -> str:
        """STRING EX SUGGEST_FOLLOWING_TTL: JSON [[leader_id, name], ...] (at most 100) the user's agent
        follows, for `/unfollow` autocomplete; refreshed by /following, /follow, /unfollow and a miss."""
        return self._k("suggest", "following", user)

    def agent_name(self, agent_id: int) -> str:
        """STRING EX NAME_TTL: an agent's name from /api/agents/{id}/summary; the empty string,
        EX NAME_MISSING_TTL, for an agent AI-Trader does not know (404)."""
        return self._k("name", agent_id)

    def trade(self, order_id: str) -> str:
        """STRING EX ORDER_TTL: a /trade waiting for its Confirm (JSON: user, agent, order, created);
        the Confirm window itself (60 s) is checked against `created`."""
        return self._tagged("trade", order_id)

    def trade_claim(self, order_id: str) -> str:
        """STRING NX EX ORDER_RESULT_TTL: the one press (of any process) that publishes or cancels the order."""
        return self._tagged("trade", order_id, "claim")

    def trade_done(self, order_id: str) -> str:
        """STRING EX ORDER_RESULT_TTL: how the order ended (the Message shown), for later presses."""
        return self._tagged("trade", order_id, "done")

    # --- delivery ---------------------------------------------------------------------------
    def outbox(self, chat: str) -> str:
        """STREAM of deliveries for one chat (consumer group `senders`); one stream per chat keeps
        each chat's order, and a 429 for one chat never holds up another."""
        return self._h("outbox", chat)

    def outbox_ready(self) -> str:
        """ZSET chat -> epoch when its outbox may be sent again (now, or after a retry_after)."""
        return self._h("outbox", "ready")

    def delivered(self) -> str:
        """ZSET delivery key -> epoch: keys already accepted by a platform (trimmed by age)."""
        return self._h("delivered")

    def chat_lease(self, chat: str) -> str:
        """Lease: the one sender draining this chat's outbox."""
        return self._h("lease", "chat", chat)

    def in_flight(self) -> str:
        """HASH chat -> delivery key whose platform call has started and not returned. Set just
        before the call, cleared when its outcome is known; a field left by a killed process names
        the one send whose outcome is unknown (a resend of it may duplicate, no other may)."""
        return self._h("inflight")

    def dead_letters(self) -> str:
        """STREAM of deliveries that failed for good: chat, key, cause, message."""
        return self._h("dead")

    def chat_dead(self) -> str:
        """HASH chat -> dead-lettered delivery count (for /status)."""
        return self._h("dead", "count")

    def stats(self) -> str:
        """HASH counters: persisted, duplicates_skipped, delivered, dead, retried, uncertain_resends."""
        return self._h("stats")

    # --- the journal behind /why (relay.journal) ----------------------------------------------
    def journal(self, chat: str) -> str:
        """STREAM of a chat's delivery events, each one field `j`: the JSON list [step, time, detail,
        ref, agent, item, signal, kind, watch, params] (relay.journal.Entry): newest
        JOURNAL_CHAT_CAP, none older than JOURNAL_TTL, EX JOURNAL_TTL from the last write."""
        return self._k("journal", chat)

    def agent_journal(self, agent_id: int) -> str:
        """STREAM of what an agent's polls fetched, one entry per call (its rows packed as
        `item:signal:kind;…` in the entry's item, and which poll): newest JOURNAL_AGENT_CAP, none
        older than JOURNAL_TTL, EX JOURNAL_TTL from the last write."""
        return self._k("journal", "agent", agent_id)

    # --- adapters ---------------------------------------------------------------------------
    def adapter_key(self, family: AdapterFamily, *parts: object) -> str:
        """A key of a declared adapter family (`ADAPTER_FAMILIES`, below); adapters reach it only
        through `relay.services`, which applies the family's expiry on every write."""
        return self._k("adapter", family.platform, family.name, *parts)

    def command_rate(self, user: str, bucket: str) -> str:
        """STRING PX (expires when the budget is full again): GCRA state of one user's command rate,
        `bucket` "all" or a command with a stricter budget (relay.commandlimit)."""
        return self._k("rate", "cmd", bucket, user)

    def command_slow_notice(self, user: str) -> str:
        """STRING NX EX 60: the user was told to slow down this minute (once a minute at most)."""
        return self._k("rate", "cmd", "told", user)

    def command_seen(self, platform: str, event_id: str) -> str:
        """STRING NX EX 1 day: an update/interaction already handled (replays after a crash)."""
        return self._k("cmd", platform, event_id)


@dataclass(frozen=True, slots=True)
class Family:
    """One key family: its pattern under the prefix, Redis type and the bound the code enforces.

    Placeholders: {agent} {sub} agent and subscription ids, {chat} a `ChatRef.key`, {user} a
    `UserRef.key`, {fp} a token fingerprint, {platform}, {event} a platform event id, {date} an ISO date, {any} any
    rest of the key (adapter-owned names). `ttl`: every key of the family expires within it;
    `cap`: no key holds more entries than this (None where the bound is per entity).
    """

    pattern: str
    type: str
    bound: str
    ttl: int | None = None
    cap: int | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = re.split(r"(\{\w+\})", self.pattern)
        rx = "".join(_PLACEHOLDERS[p[1:-1]] if p.startswith("{") else re.escape(p) for p in parts)
        object.__setattr__(self, "regex", re.compile(rx + r"\Z"))


_PLACEHOLDERS = {
    "agent": r"-?\d+",
    "sub": r"\d+",
    "chat": r"[a-z]+:[^:]+:[^:]*",
    "user": r"[a-z]+:[^:]+",
    "fp": r"[0-9a-f]+",
    "platform": r"[a-z]+",
    "event": r"[^:]+",
    "any": r".+",
    "date": r"\d{4}-\d{2}-\d{2}",
    "order": r"[A-Za-z0-9_\-]+",
    "batch": r"[a-z][0-9a-z]+",
}

# --- adapter key families ---------------------------------------------------------------------
# Every key an adapter writes belongs to one family declared here, with its bound: `ttl_s` is the
# expiry `relay.services` sets on every write (for leases and rate budgets, the longest allowed),
# so an adapter cannot write one without it; a family without a TTL states its `cap`. The key is
# `<prefix>:adapter:<platform>:<name>[:<parts>]`; names are kept from before
# the declaration so stored button data and leases survive an upgrade. Each becomes a `Family` in
# `FAMILIES`. One block per family.

FamilyKind = Literal["lease", "rate", "string", "counter", "set"]


@dataclass(frozen=True, slots=True)
class AdapterFamily:
    platform: str
    name: str
    kind: FamilyKind
    ttl_s: int | None
    cap: str = ""
    parts: str = ""  # the pattern after the name, e.g. ":{event}" (see `Family` placeholders)

    def __post_init__(self) -> None:
        if self.ttl_s is None and not self.cap:
            raise ValueError(f"adapter family {self.platform}:{self.name} needs an expiry or a stated cap")

    @property
    def family(self) -> Family:
        """This family in the schema's terms (`FAMILIES`, `family_of`)."""
        pattern = f"adapter:{self.platform}:{self.name}{self.parts}"
        bound = f"EX {self.ttl_s} s on every write" if self.ttl_s is not None else self.cap
        if self.kind in ("lease", "rate"):
            bound = f"PX at most {self.ttl_s} s, renewed while in use"
        return Family(pattern, "set" if self.kind == "set" else "string", bound, ttl=self.ttl_s)


ADAPTER_FAMILIES: dict[tuple[str, str], AdapterFamily] = {}


def _declare(
    platform: str, name: str, kind: FamilyKind, ttl_s: int | None, *, cap: str = "", parts: str = ""
) -> AdapterFamily:
    family = AdapterFamily(platform, name, kind, ttl_s, cap, parts)
    if (platform, name) in ADAPTER_FAMILIES:
        raise ValueError(f"adapter family {platform}:{name} declared twice")
    ADAPTER_FAMILIES[family.platform, family.name] = family
    return family


# Lease: the one process calling getUpdates for the bot token. PX, 30 s by default, renewed.
TELEGRAM_POLLER = _declare("telegram", "poller", "lease", 60)

# STRING (GCRA) next free slot of the bot token's global send rate, shared by every process.
# PX: about one interval plus 1 s beyond the next free slot.
TELEGRAM_GLOBAL_RATE = _declare("telegram", "global", "rate", 60)

# STRING :<ref> -> action JSON of a button whose data does not fit 64 bytes of callback_data.
# 7 days: outlives any paging session someone comes back to.
TELEGRAM_BUTTONS = _declare("telegram", "cb", "string", 7 * 24 * 3600, parts=":{event}")

# STRING :<chat>:<message_id>:<user> -> action JSON a ForceReply prompt asks that user's text
# for; taken once, and only by that user's answer.
TELEGRAM_PROMPTS = _declare("telegram", "prompt", "string", 24 * 3600, parts=":{event}:{event}:{event}")

# STRING :<chat>:<user> -> "1"|"0": a group member's admin status (getChatMember costs a call).
# 60 s: how stale a role may be (a demoted admin keeps admin rights this long at most).
TELEGRAM_ADMINS = _declare("telegram", "admin", "string", 60, parts=":{event}:{event}")

# STRING :<delivery key> -> chunks of a long message already accepted, so a resend of the same
# delivery starts at the first chunk not yet sent. 1 day: longer than any retry of a delivery.
TELEGRAM_CHUNKS = _declare("telegram", "sent", "string", 24 * 3600, parts=":{any}")

# Lease: the one process holding the bot's gateway connection. PX, 30 s by default, renewed.
DISCORD_GATEWAY = _declare("discord", "gateway", "lease", 60)

# STRING (GCRA) next free slot of the bot's REST requests per second, shared by every process.
DISCORD_GLOBAL_RATE = _declare("discord", "global", "rate", 60)

# STRING JSON {last, streak}: IDENTIFY attempts, so a crash loop backs off across restarts.
# 1 day: Discord's IDENTIFY budget is per day.
DISCORD_IDENTIFY = _declare("discord", "backoff", "string", 24 * 3600)

# COUNTER :<10-minute window> -> 401/403/429 responses in that window (Discord bans an IP after
# 10,000). 20 minutes: the window and the next.
DISCORD_INVALID = _declare("discord", "invalid", "counter", 20 * 60, parts=":{event}")

# STRING :<channel> -> the status (403/404) with which a channel refused us; no sends there.
# 1 day, or until an interaction comes from the channel or the bot rejoins its server.
DISCORD_GONE = _declare("discord", "gone", "string", 24 * 3600, parts=":{event}")

# STRING :<ref> -> action JSON of a button or modal that does not fit Discord's 100-character
# custom_id (content-addressed). 7 days, like Telegram's.
DISCORD_BUTTONS = _declare("discord", "cb", "string", 7 * 24 * 3600, parts=":{event}")

# SET :<guild>:channels -> channel ids of that server that interactions came from, so removing the
# bot from the server drops their subscriptions too. 30 days, renewed by each interaction; deleted
# when the bot leaves the server. Bounded by the server's channels and threads.
DISCORD_GUILD_CHANNELS = _declare("discord", "guild", "set", 30 * 24 * 3600, parts=":{event}:channels")

# STRING :<delivery key> -> epoch of a send whose outcome was unknown: a resend after Discord has
# forgotten the nonce looks in the channel's history first. 1 day: longer than any retry.
DISCORD_UNCERTAIN = _declare("discord", "uncertain", "string", 24 * 3600, parts=":{any}")

# STRING :<channel> -> the channel was told about a missing permission; at most once a day.
DISCORD_PERMISSION_NOTICES = _declare("discord", "permission-notice", "string", 24 * 3600, parts=":{event}")

# STRING :<guild id>|global -> hash of the last uploaded command set (upload only on change).
# No TTL: one key per configured guild plus one global.
DISCORD_COMMANDS = _declare(
    "discord", "commands", "string", None, cap="one per DISCORD_GUILD_IDS entry, plus global", parts=":{event}"
)


_ENTITY = "one per {}; deleted with it"

# Literal names before patterns that could also match them (outbox:ready before outbox:{chat}).
FAMILIES: tuple[Family, ...] = (
    Family("agents", "set", "linked agent ids (one member per linked agent; removed at unlink)"),
    Family("reconcile", "set", "agent ids with a possibly lost response (<= linked agents; removed at unlink)"),
    Family("upstream:failures", "string", "one counter"),
    Family("poll:last_ok", "string", "one timestamp"),
    Family(
        "poll:due", "zset", "one member per linked agent (added at link, removed at unlink and by the poller's sync)"
    ),
    Family("upstream:probe", "string", "PX one poll interval", ttl=300),
    Family("sub:seq", "string", "one counter"),
    Family("watches", "set", "feed/trader subscription ids (removed with the subscription)"),
    Family("outbox:ready", "zset", "one member per chat with queued deliveries; removed when drained"),
    Family("delivered", "zset", f"newest {DELIVERED_CAP:,} keys, none older than 7 days", cap=DELIVERED_CAP),
    Family("inflight", "hash", "one field per chat with a send in flight; cleared with its outcome"),
    Family("dead", "stream", f"MAXLEN ~ {DEAD_CAP:,}", cap=DEAD_CAP + 1000),
    Family("losses", "stream", f"MAXLEN ~ {LOSSES_CAP:,}", cap=LOSSES_CAP + 1000),
    Family("dead:count", "hash", "one field per chat that has dead letters"),
    Family("stats", "hash", "fixed set of counters"),
    Family(
        "user:{user}:watches",
        "set",
        "feed/trader ids the user made; pruned of removed ones and checked against MAX_WATCHES_PER_USER at each add",
    ),
    Family("user:{user}", "hash", _ENTITY.format("linked chat user; deleted at unlink")),
    Family("rate:cmd:told:{user}", "string", "EX 60 (one 'slow down' a minute)", ttl=60),
    Family("rate:cmd:{event}:{user}", "string", "PX until the budget is full again (<= 10 min)", ttl=700),
    Family("backlog:{chat}", "string", "EX 1 hour (one backlog notice an hour per chat)", ttl=3600),
    Family("agent:{agent}", "hash", _ENTITY.format("linked agent; deleted at unlink")),
    Family("agent:{agent}:users", "set", _ENTITY.format("linked agent; users who linked it")),
    Family("agent:{agent}:subs", "set", _ENTITY.format("linked agent; its subscription ids")),
    Family("agent:{agent}:seen", "zset", f"newest {SEEN_CAP:,} ids; deleted at unlink", cap=SEEN_CAP),
    Family("agent:{agent}:tasks", "hash", f"pending task ids, at most {TASKS_CAP:,}; deleted at unlink", cap=TASKS_CAP),
    Family(
        "agent:{agent}:inbox",
        "stream",
        f"emptied by each fan-out; no heartbeat past {INBOX_CAP:,} entries; deleted at unlink",
        cap=INBOX_CAP + 500,  # one last drain may land on top of the threshold
    ),
    Family("agent:{agent}:fails", "string", "EX 4 x POLL_MAX_SECONDS; deleted at the next success", ttl=4 * 86400),
    Family("agent:{agent}:revoked:{fp}", "string", "EX 30 days", ttl=REVOKED_TTL),
    Family("sub:{sub}", "hash", _ENTITY.format("subscription")),
    Family(
        "sub:{sub}:seen", "zset", f"newest {WATCH_SEEN_CAP:,} signal ids; deleted with the watch", cap=WATCH_SEEN_CAP
    ),
    Family("chat:{chat}:subs", "set", _ENTITY.format("chat with subscriptions")),
    Family("chat:{chat}:kinds", "hash", "one field per notification kind; deleted with the chat"),
    Family("chat:{chat}:error", "string", "EX 7 days", ttl=CHAT_ERROR_TTL),
    Family("chat:{chat}:settings", "hash", "one per chat with a setting (time zone); deleted with the chat"),
    Family("briefs", "hash", "one field per chat with a daily brief; removed by /unsubscribe or with the chat"),
    Family("brief:{chat}:{date}", "string", "EX 3 days (one claim per chat and local date)", ttl=BRIEF_CLAIM_TTL),
    Family("hold:chats", "set", "one member per chat with a hold setting or held entries"),
    Family("hold:{chat}", "hash", _ENTITY.format("chat with quiet hours, a snooze or a digest")),
    Family("held:{chat}", "stream", f"at most {HOLD_CAP:,}; renamed to a batch when released", cap=HOLD_CAP),
    Family("digest:{chat}", "stream", f"at most {HOLD_CAP:,}; emptied each period", cap=HOLD_CAP),
    Family("heldkeys:{chat}", "set", f"at most {2 * HOLD_CAP:,}: the keys in held and digest", cap=2 * HOLD_CAP),
    Family(
        "batch:{chat}:{batch}",
        "stream",
        "a released hold or digest (<= the stream it came from), EX 7 days",
        cap=HOLD_CAP,
        ttl=HOLD_BATCH_TTL,
    ),
    Family("lease:hold:{chat}", "string", "PX 9 s, renewed while held", ttl=60),
    Family(
        "journal:agent:{agent}",
        "stream",
        f"newest {JOURNAL_AGENT_CAP:,} events, none older than 7 days; EX 7 days from the last write",
        ttl=JOURNAL_TTL,
        cap=JOURNAL_AGENT_CAP,
    ),
    Family(
        "journal:{chat}",
        "stream",
        f"newest {JOURNAL_CHAT_CAP:,} events, none older than 7 days; EX 7 days from the last write",
        ttl=JOURNAL_TTL,
        cap=JOURNAL_CHAT_CAP,
    ),
    Family("outbox:{chat}", "stream", "sent and dead-lettered entries deleted; the key deleted when empty"),
    Family("lease:agent:{agent}", "string", "PX 9 s, renewed while held", ttl=60),
    Family("lease:doorbell:{agent}", "string", "PX 60 s, renewed while the socket is held", ttl=120),
    Family("lease:chat:{chat}", "string", "PX 9 s, renewed while held", ttl=60),
    Family("lease:watch:{sub}", "string", "PX, renewed while held", ttl=600),
    Family("cmd:{platform}:{event}", "string", "EX 1 day", ttl=COMMAND_SEEN_TTL),
    Family("name:{agent}", "string", "EX 5 min (unknown ids: 30 s)", ttl=NAME_TTL),
    Family("suggest:following:{user}", "string", "EX 5 min, at most 100 traders", ttl=SUGGEST_FOLLOWING_TTL),
    Family("trade:{order}", "string", "EX 2 min", ttl=ORDER_TTL),
    Family("trade:{order}:claim", "string", "NX EX 1 day", ttl=ORDER_RESULT_TTL),
    Family("trade:{order}:done", "string", "EX 1 day", ttl=ORDER_RESULT_TTL),
    *(f.family for f in ADAPTER_FAMILIES.values()),
)


_ENTITY_TAG = re.compile(r"^(trade):\{([^{}]*)\}")


def family_of(prefix: str, key: str) -> Family | None:
    """The declared family a key belongs to, or None for a key nobody declared. A cluster's
    hash tags (`Keys(cluster=True)`) are not part of a family's pattern: they are taken off first."""
    if not key.startswith(prefix + ":"):
        return None
    rest = key[len(prefix) + 1 :].removeprefix("{" + prefix + "}:")
    rest = _ENTITY_TAG.sub(r"\1:\2", rest)
    return next((f for f in FAMILIES if f.regex.match(rest)), None)
