"""The whole Redis schema on one page: every key the relay writes, under one prefix.

Each method names one key (or family). Values, types and lifetimes are in the comments, because
this is where someone reading a Redis dump starts. `chat` arguments are `ChatRef.key` strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "relay"

    def _k(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    # --- linked accounts (belong to chat users) -------------------------------------------
    def user_link(self, user: str) -> str:
        """HASH agent_id, linked_at: which agent a chat user linked. No TTL."""
        return self._k("user", user)

    def agent(self, agent_id: int) -> str:
        """HASH token (AEAD ciphertext, base64), name, mode (consume|observe), state (active|paused),
        paused_reason, last_ok (epoch), last_error, interval, linked_at. No TTL."""
        return self._k("agent", agent_id)

    def agent_users(self, agent_id: int) -> str:
        """SET of user keys that linked this agent."""
        return self._k("agent", agent_id, "users")

    def agents(self) -> str:
        """SET of linked agent ids: the poller's work list."""
        return self._k("agents")

    def seen(self, agent_id: int) -> str:
        """ZSET message id -> id: dedup of inbox rows. Trimmed to the newest 2,000 ids, far more
        than `messages/recent` can return (3 views x 50), so a recovered row is never re-added."""
        return self._k("agent", agent_id, "seen")

    def tasks_seen(self, agent_id: int) -> str:
        """HASH task id -> first seen epoch: tasks come back on every heartbeat while pending."""
        return self._k("agent", agent_id, "tasks")

    def inbox(self, agent_id: int) -> str:
        """STREAM of persisted notifications awaiting fan-out (fields: id, raw JSON row)."""
        return self._k("agent", agent_id, "inbox")

    def needs_reconcile(self) -> str:
        """SET of agent ids whose last heartbeat response may be lost: read `recent` before polling."""
        return self._k("reconcile")

    def next_poll(self, agent_id: int) -> str:
        """STRING epoch of the agent's next due poll, shared so K processes poll it once per interval."""
        return self._k("agent", agent_id, "next")

    def backoff(self, agent_id: int) -> str:
        """STRING consecutive upstream failures for the agent (drives full-jitter backoff)."""
        return self._k("agent", agent_id, "fails")

    def poll_lease(self, agent_id: int) -> str:
        """Lease: the one process polling this agent right now."""
        return self._k("lease", "agent", agent_id)

    def upstream_failures(self) -> str:
        """STRING consecutive polls, over all agents, that found AI-Trader unavailable."""
        return self._k("upstream", "failures")

    def upstream_probe(self) -> str:
        """STRING PX: during an outage, the one poll allowed per interval to probe AI-Trader."""
        return self._k("upstream", "probe")

    def revoked_notice(self, agent_id: int, fingerprint: str) -> str:
        """STRING NX: the chats were told once that this token was rejected."""
        return self._k("agent", agent_id, "revoked", fingerprint)

    # --- subscriptions (belong to chats) ----------------------------------------------------
    def sub_seq(self) -> str:
        """STRING counter for subscription ids."""
        return self._k("sub", "seq")

    def sub(self, sub_id: int) -> str:
        """HASH kind (agent|feed|trader), chat, agent_id, kinds, keyword, type, trader_id, created_by."""
        return self._k("sub", sub_id)

    def chat_subs(self, chat: str) -> str:
        """SET of subscription ids of a chat."""
        return self._k("chat", chat, "subs")

    def agent_subs(self, agent_id: int) -> str:
        """SET of subscription ids routing this agent's notifications."""
        return self._k("agent", agent_id, "subs")

    def watches(self) -> str:
        """SET of feed and trader subscription ids (the feed watcher's work list)."""
        return self._k("watches")

    def watch_seen(self, sub_id: int) -> str:
        """ZSET signal_id -> signal_id already posted (or baselined) for a feed/trader watch."""
        return self._k("sub", sub_id, "seen")

    def watch_lease(self, sub_id: int) -> str:
        return self._k("lease", "watch", sub_id)

    def chat_kinds(self, chat: str) -> str:
        """HASH kind -> on|silent|off for a chat (absent = on)."""
        return self._k("chat", chat, "kinds")

    def chat_error(self, chat: str) -> str:
        """STRING the last delivery or command error for a chat (for /status)."""
        return self._k("chat", chat, "error")

    # --- delivery ---------------------------------------------------------------------------
    def outbox(self, chat: str) -> str:
        """STREAM of deliveries for one chat (consumer group `senders`); one stream per chat keeps
        each chat's order, and a 429 for one chat never holds up another."""
        return self._k("outbox", chat)

    def outbox_ready(self) -> str:
        """ZSET chat -> epoch when its outbox may be sent again (now, or after a retry_after)."""
        return self._k("outbox", "ready")

    def delivered(self) -> str:
        """ZSET delivery key -> epoch: keys already accepted by a platform (trimmed by age)."""
        return self._k("delivered")

    def chat_lease(self, chat: str) -> str:
        """Lease: the one sender draining this chat's outbox."""
        return self._k("lease", "chat", chat)

    def dead_letters(self) -> str:
        """STREAM of deliveries that failed for good: chat, key, cause, message."""
        return self._k("dead")

    def chat_dead(self) -> str:
        """HASH chat -> dead-lettered delivery count (for /status)."""
        return self._k("dead", "count")

    def stats(self) -> str:
        """HASH counters: persisted, duplicates_skipped, delivered, dead, retried, uncertain_resends."""
        return self._k("stats")

    # --- adapters ---------------------------------------------------------------------------
    def adapter(self, platform: str, *parts: object) -> str:
        """Keys an adapter owns (its leases, callback data, caches) live under this family."""
        return self._k("adapter", platform, *parts)

    def command_seen(self, platform: str, event_id: str) -> str:
        """STRING NX EX 1 day: an update/interaction already handled (replays after a crash)."""
        return self._k("cmd", platform, event_id)
