"""What each command does: one handler per spec in `relay.specs`, listed in `HANDLERS`; each returns a `Reply`.

Arguments arrive as raw strings already checked for presence and choices by the router; the
handlers parse ids and free text and raise `UsageError` with a short reason when they are wrong.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from relay import cards, chart_commands, hold_commands, render
from relay.aitrader import AITraderClient, checked_id
from relay.charts.service import ChartService
from relay.chat_settings import ChatSettings
from relay.daily_brief import DailyBriefs
from relay.errors import NotFound, NotLinked, TokenRejected, UpstreamError, UsageError
from relay.filters import USAGE as FILTER_USAGE
from relay.filters import WatchFilter, split_filters
from relay.holding import Holding
from relay.keys import LOSS_TTL
from relay.models import Command, Message, MessageField, Reply
from relay.names import AgentDirectory
from relay.outbox import Outbox
from relay.poller import Poller
from relay.specs import COMMANDS, FEED_TYPES, KIND_MODES, KINDS
from relay.store import ActingAgent, LinkedAgent, Mode, Store, Subscription
from relay.trades import TradeDesk
from relay.trading import Cockpit
from relay.watcher import Watcher
from relay.why import Why
from relay.words import split_words, unquote

log = logging.getLogger(__name__)


_TOKEN = re.compile(r"^[A-Za-z0-9_\-.]{16,256}$")
_TASK_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TEXT_LIMIT = 2000
KEYWORD_LIMIT = 100
FEED_PAGE = 5

MODE_EXPLAINED = (
    "consume: the relay polls this agent's heartbeat, which marks notifications read on AI-Trader. "
    "If the agent itself also polls its heartbeat, each notification reaches only one of you. "
    "observe: the relay only reads the latest 50 messages without marking anything, so the agent "
    "loses nothing; very busy inboxes can outrun it, and tasks are not carried."
)


def _id(value: str, name: str) -> int:
    try:
        return checked_id(value, name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _free_text(value: str, name: str) -> str:
    text = _CONTROL.sub("", value).strip()
    if not text:
        raise UsageError(f"{name} is missing")
    if len(text) > TEXT_LIMIT:
        raise UsageError(f"{name} is longer than {TEXT_LIMIT} characters")
    return text


def _keyword(value: str, name: str = "keyword") -> str:
    """A search word: a usage error when too long, never silently cut (the user would search
    for something else than they typed)."""
    word = unquote(_CONTROL.sub("", value))
    if len(word) > KEYWORD_LIMIT:
        raise UsageError(f"{name} is longer than {KEYWORD_LIMIT} characters")
    return word


def _ago(epoch: float | None) -> str:
    if not epoch:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Commands:
    def __init__(
        self,
        store: Store,
        client: AITraderClient,
        poller: Poller,
        watcher: Watcher,
        outbox: Outbox,
        *,
        names: AgentDirectory,
        desk: TradeDesk,
        register_secret: Callable[[str], None],
        forget_secret: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
        charts: ChartService | None = None,
        chat_settings: ChatSettings | None = None,
        briefs: DailyBriefs | None = None,
        holding: Holding | None = None,
        why: Why | None = None,
    ) -> None:
        self._holding = holding
        self._why = why
        self._store = store
        self._client = client
        self._poller = poller
        self._watcher = watcher
        self._outbox = outbox
        self._names = names
        self._register_secret = register_secret
        self._forget_secret = forget_secret
        self._clock = clock
        self._charts = charts
        self._chat_settings = chat_settings
        self._briefs = briefs
        self._cockpit = Cockpit(store, client, names, desk, linked=self._linked, clock=clock)

    async def _linked(self, command: Command) -> ActingAgent:
        agent = await self._store.agent_for_user(command.user.key)
        if agent is None:
            raise NotLinked()
        if agent.token is None:
            raise NotLinked("Your stored link cannot be read any more; /link again in a private chat with me.")
        return ActingAgent(agent.agent_id, agent.name, agent.token)

    async def token_rejected(self, command: Command) -> None:
        agent_id = await self._store.linked_agent_id(command.user.key)
        if agent_id is not None:
            await self._store.pause_agent(agent_id, "AI-Trader rejected the token")

    # --- onboarding ----------------------------------------------------------------------
    async def cmd_start(self, command: Command) -> Reply:
        return Reply(
            (
                Message(
                    title="AI-Trader relay",
                    body=(
                        "I bring your AI-Trader notifications (replies, mentions, followers, strategies, "
                        "discussions, messages, tasks) into this chat, and let you answer from here.\n"
                        "1. In a private chat with me: /link <agent token>\n"
                        "2. Here or in a group: /subscribe (all kinds) or /subscribe replies mentions\n"
                        "3. Watch the public feed: /subscribe feed <keyword>\n"
                        "/help lists every command."
                    ),
                ),
            )
        )

    async def cmd_help(self, command: Command) -> Reply:
        lines = [f"{spec.usage} — {spec.summary}" for spec in COMMANDS]
        return Reply((Message(title="Commands", body="\n".join(lines), footer="Kinds: " + ", ".join(KINDS)),))

    async def cmd_link(self, command: Command) -> Reply:
        token = command.args["token"].strip()
        if not _TOKEN.match(token):
            raise UsageError("that does not look like an AI-Trader agent token")
        # Masked while it is checked (an upstream error may quote it); kept only once it is linked.
        self._register_secret(token)
        linked = False
        mode: Mode = "observe" if (command.args.get("mode") or "").lower() == "observe" else "consume"
        before = await self._store.agent_for_user(command.user.key)
        try:
            try:
                agent = await self._client.me(token)
            except TokenRejected:
                # The new token is wrong; an agent the user linked earlier keeps working.
                return Reply.text(TokenRejected.sentence, private=True, delete_command=True)
            previous = await self._store.link(command.user.key, agent.agent_id, agent.name, token, mode)
            linked = True
        finally:
            if not linked and not (before is not None and before.token == token):
                self._forget_secret(token)
        if previous is not None and before is not None and before.token and before.token != token:
            await self._forget_if_gone(before)
        await self._poller.baseline(agent.agent_id, token, mode)
        return Reply(
            (
                Message(
                    title=f"Linked {agent.name or 'agent'} (#{agent.agent_id}) in {mode} mode",
                    body=MODE_EXPLAINED + "\nNext: /subscribe here, or in a group where you are an administrator.",
                ),
            ),
            private=True,
            delete_command=True,
        )

    async def cmd_unlink(self, command: Command) -> Reply:
        before = await self._store.agent_for_user(command.user.key)
        agent_ids = await self._store.unlink(command.user.key)
        if before is not None:
            await self._forget_if_gone(before)
        if not agent_ids:
            return Reply.text("No agent is linked to you.", private=True)
        named = ", ".join(f"#{a}" for a in agent_ids)
        return Reply.text(
            f"Unlinked agent {named}. Its routes are removed unless someone else linked it too.", private=True
        )

    async def _forget_if_gone(self, agent: LinkedAgent) -> None:
        """Stop masking an agent's token once no user links that agent any more."""
        if agent.token and await self._store.agent(agent.agent_id) is None:
            self._forget_secret(agent.token)

    # --- subscriptions -------------------------------------------------------------------
    async def cmd_subscribe(self, command: Command) -> Reply:
        words = split_words(command.args.get("what", ""))
        if words and words[0].lower() == "feed":
            return await self._subscribe_feed(command, words[1:])
        if words and words[0].lower() == "trader":
            return await self._subscribe_trader(command, words[1:])
        if words and words[0].lower() == "intel":
            if self._briefs is None or self._chat_settings is None:
                raise UsageError("daily briefs are not enabled here")
            return await chart_commands.subscribe_brief(command, words[1:], self._briefs, self._chat_settings)
        kinds = {w.lower() for w in words}
        unknown = kinds - set(KINDS) - {"all"}
        if unknown:
            raise UsageError(f"unknown kind {sorted(unknown)[0][:30]}; kinds are {', '.join(KINDS)}, all")
        chosen = frozenset() if not kinds or "all" in kinds else frozenset(kinds)
        agent = await self._linked(command)
        who = f"{agent.name or 'agent'} (#{agent.agent_id})"
        previous = [
            s
            for s in await self._store.chat_subscriptions(command.chat)
            if s.kind == "agent" and s.agent_id == agent.agent_id
        ]
        if len(previous) == 1 and previous[0].kinds == chosen:
            return Reply.text(f"Already subscribed #{previous[0].sub_id}: {who} — {_kinds(chosen)}. Nothing changed.")
        # A new /subscribe states the whole set of kinds: it replaces the earlier one, and says so,
        # so "/subscribe replies" after "/subscribe all" is never a silent narrowing.
        for old in previous:
            await self._store.remove_subscription(command.chat, old.sub_id)
        sub_id = await self._store.add_subscription(
            Subscription(0, "agent", command.chat, agent_id=agent.agent_id, kinds=chosen, created_by=command.user.key)
        )
        if not previous:
            return Reply.text(f"Subscribed #{sub_id}: {who} — {_kinds(chosen)} — into this chat.")
        was = "; ".join(_kinds(old.kinds) for old in previous)
        return Reply.text(
            f"Changed the subscription to {who} in this chat (now #{sub_id}): was: {was}, now: {_kinds(chosen)}. "
            "A /subscribe replaces the kinds: list every kind you want."
        )

    async def _subscribe_feed(self, command: Command, words: list[str]) -> Reply:
        words, chosen = split_filters(words)
        if len(words) > 2 or not (words or chosen):
            raise UsageError(f"feed needs a keyword, optionally operation|strategy|discussion; {FILTER_USAGE}")
        keyword = _keyword(words[0]) if words else ""
        message_type = words[1].lower() if len(words) == 2 else ""
        if message_type and message_type not in FEED_TYPES:
            raise UsageError(f"type must be one of {', '.join(FEED_TYPES)}")
        if message_type and chosen.message_type and message_type != chosen.message_type:
            raise UsageError(f"two types given ({message_type}, type={chosen.message_type}); give one")
        sub = Subscription(
            0,
            "feed",
            command.chat,
            keyword=keyword,
            message_type=message_type or chosen.message_type,
            created_by=command.user.key,
            market=chosen.market,
            symbol=chosen.symbol,
            exclude=chosen.exclude,
        )
        sub_id = await self._store.add_subscription(sub)
        await self._baseline_watch(sub_id)
        return Reply.text(
            f"Watching {_watched(sub)} as #{sub_id}. New signals will appear here; nothing old is posted."
        )

    async def _subscribe_trader(self, command: Command, words: list[str]) -> Reply:
        words, chosen = split_filters(words)
        if len(words) != 1:
            raise UsageError(f"trader needs one agent id; {FILTER_USAGE}")
        trader = _id(words[0], "agent_id")
        # Caps first: a user at their cap costs no upstream lookup.
        await self._store.ensure_room(command.chat, command.user.key, watch=True)
        name = await self._names.require(trader)
        sub = Subscription(
            0,
            "trader",
            command.chat,
            trader_id=trader,
            created_by=command.user.key,
            message_type=chosen.message_type,
            market=chosen.market,
            symbol=chosen.symbol,
            exclude=chosen.exclude,
        )
        sub_id = await self._store.add_subscription(sub)
        await self._baseline_watch(sub_id)
        only = f", only {chosen.describe()}" if chosen else ""
        return Reply.text(f"Watching trader {name} (#{trader}){only} as #{sub_id}. Their new signals will appear here.")

    async def _baseline_watch(self, sub_id: int) -> None:
        sub = await self._store.subscription(sub_id)
        if sub is not None:
            try:
                await self._watcher.baseline(sub)
            except UpstreamError as exc:
                # The watch stays; its first check records the baseline instead.
                log.info("commands: watch baseline deferred sub=%s (%s)", sub_id, type(exc).__name__)

    async def cmd_unsubscribe(self, command: Command) -> Reply:
        sub_id = _id(command.args["id"].lstrip("#"), "id")
        if await self._store.remove_subscription(command.chat, sub_id):
            return Reply.text(f"Removed subscription #{sub_id}.")
        if self._briefs is not None and await self._briefs.remove(command.chat, sub_id):
            return Reply.text(f"Removed the daily brief #{sub_id}.")
        return Reply.text(f"This chat has no subscription #{sub_id}. /subscriptions lists them.")

    async def cmd_subscriptions(self, command: Command) -> Reply:
        subs = await self._store.chat_subscriptions(command.chat)
        modes = await self._store.kind_modes(command.chat)
        lines = [_describe(s, modes) for s in subs]
        brief = await self._briefs.of_chat(command.chat) if self._briefs is not None else None
        if brief is not None and self._chat_settings is not None:
            zone = await self._chat_settings.timezone(command.chat)
            lines.append(f"{brief.describe()} {zone.key}")
        changed = [f"{k}: {v}" for k, v in sorted(modes.items()) if v != "on"]
        return Reply(
            (
                Message(
                    title="Subscriptions in this chat",
                    body="\n".join(lines) if lines else "None yet. /subscribe adds one.",
                    footer=("Kinds not on: " + ", ".join(changed)) if changed else "",
                ),
            )
        )

    async def cmd_notify(self, command: Command) -> Reply:
        kind = command.args.get("kind", "").lower()
        mode = command.args.get("mode", "").lower()
        if not kind:
            modes = await self._store.kind_modes(command.chat)
            return Reply.text("\n".join(f"{k}: {modes.get(k, 'on')}" for k in KINDS))
        if kind not in KINDS:
            raise UsageError(f"unknown kind {kind[:30]}; kinds are {', '.join(KINDS)}")
        if not mode:
            current = (await self._store.kind_modes(command.chat)).get(kind, "on")
            return Reply.text(
                f"{kind.capitalize()} are {current} in this chat. Change with /notify {kind} on|silent|off."
            )
        if mode not in KIND_MODES:
            raise UsageError(f"mode must be one of {', '.join(KIND_MODES)}")
        await self._store.set_kind_mode(command.chat, kind, mode)
        return Reply.text(f"{kind.capitalize()} are now {mode} in this chat.")

    # --- platform commands ---------------------------------------------------------------
    async def cmd_feed(self, command: Command) -> Reply:
        keyword = _keyword(command.args["keyword"])
        message_type = command.args.get("type", "").lower()
        page_raw = command.args.get("page", "") or "1"
        if not page_raw.isascii() or not page_raw.isdigit() or not 1 <= int(page_raw) <= 1000:
            raise UsageError("page must be a number from 1 to 1000")
        page_no = int(page_raw)
        page = await self._client.feed(
            keyword=keyword, message_type=message_type or None, limit=FEED_PAGE, offset=(page_no - 1) * FEED_PAGE
        )
        names = await self._names.names(s.agent_id for s in page.signals if not s.agent_name)
        return Reply(
            (
                cards.feed(
                    page, keyword=keyword, message_type=message_type, page_no=page_no, per_page=FEED_PAGE, names=names
                ),
            )
        )

    async def cmd_replies(self, command: Command) -> Reply:
        signal_id = _id(command.args["signal_id"], "signal_id")
        return Reply((render.replies(signal_id, await self._client.replies(signal_id)),))

    async def cmd_reply(self, command: Command) -> Reply:
        signal_id = _id(command.args["signal_id"], "signal_id")
        text = _free_text(command.args.get("text", ""), "text")
        agent = await self._linked(command)
        try:
            await self._client.post_reply(agent.token, signal_id, text)
        except NotFound:
            # The same words /replies uses for a signal it cannot find.
            return Reply.text(render.no_signal(signal_id), private=True)
        return Reply.text(f"Reply posted to signal {signal_id} as {agent.name or 'your agent'}.")

    async def cmd_send(self, command: Command) -> Reply:
        target = _id(command.args["agent_id"], "agent_id")
        text = _free_text(command.args.get("text", ""), "text")
        agent = await self._linked(command)
        name = await self._names.require(target)
        # Upstream records no sender: the message says who sent it, and the receiving relay shows it.
        data = {render.SENDER_ID: agent.agent_id, render.SENDER_NAME: agent.name}
        message_id = await self._client.send_message(agent.token, target, "message", text, data)
        suffix = f" (message #{message_id})" if message_id else ""
        return Reply.text(f"Message sent to {name} (#{target}){suffix}.")

    async def cmd_task(self, command: Command) -> Reply:
        target = _id(command.args["agent_id"], "agent_id")
        task_type = command.args["type"].strip()
        if not _TASK_TYPE.match(task_type):
            raise UsageError("type is letters, digits and _ . : - (at most 64)")
        raw = command.args.get("json", "").strip()
        data = None
        if raw:
            if len(raw) > 4000:
                raise UsageError("json is longer than 4000 characters")
            try:
                data = json.loads(raw)
            except ValueError:
                raise UsageError("json is not valid JSON") from None
            if not isinstance(data, dict):
                raise UsageError('json must be an object like {"symbol": "BTC"}')
        agent = await self._linked(command)
        name = await self._names.require(target)
        task_id = await self._client.create_task(agent.token, target, task_type, data)
        suffix = f" (task #{task_id})" if task_id else ""
        return Reply.text(f"Task {task_type} created for {name} (#{target}){suffix}.")

    async def cmd_discussions(self, command: Command) -> Reply:
        keyword = _keyword(command.args.get("keyword", "")) or None
        agent = await self._linked(command)
        items = await self._client.my_discussions(agent.token, agent.agent_id, keyword)
        title = f"{agent.name or 'Your agent'}: discussions and strategies"
        return Reply((cards.signals(title, items, "Nothing found.", {agent.agent_id: agent.name}),))

    async def cmd_follow(self, command: Command) -> Reply:
        leader = _id(command.args["agent_id"], "agent_id")
        agent = await self._linked(command)
        name = await self._names.require(leader)
        newly = await self._client.follow(agent.token, leader)
        who = f"{name} (#{leader})"
        return Reply.text(f"Now following {who}." if newly else f"Already following {who}.")

    async def cmd_unfollow(self, command: Command) -> Reply:
        leader = _id(command.args["agent_id"], "agent_id")
        agent = await self._linked(command)
        await self._client.unfollow(agent.token, leader)
        return Reply.text(f"No longer following trader #{leader}.")

    async def cmd_following(self, command: Command) -> Reply:
        agent = await self._linked(command)
        items = await self._client.following(agent.token)
        body = "\n".join(f"{f.leader_id} {render.clip(f.leader_name, 80)}" for f in items) or "Not following anyone."
        return Reply((Message(title=f"{agent.name or 'Your agent'} follows", body=body),))

    async def cmd_status(self, command: Command) -> Reply:
        fields: list[MessageField] = []
        agent = await self._store.agent_for_user(command.user.key)
        if agent is None:
            fields.append(MessageField("Your agent", "not linked (/link in a private chat)"))
        else:
            state = agent.state if agent.state == "active" else f"paused: {agent.paused_reason}"
            fields += [
                MessageField("Your agent", f"{agent.name} (#{agent.agent_id}), {agent.mode} mode, {state}"),
                MessageField("Last successful poll", _ago(agent.last_ok)),
            ]
            if agent.last_error:
                fields.append(MessageField("Last poll error", agent.last_error))
            if agent.possible_loss_at and self._clock() - agent.possible_loss_at < LOSS_TTL:
                reports = f"{agent.loss_reports} times" if agent.loss_reports > 1 else "once"
                fields.append(
                    MessageField(
                        "Possibly lost",
                        f"{agent.possible_loss}: a heartbeat answer was lost and AI-Trader's recent view could "
                        f"not show every message it held ({reports}, last {_ago(agent.possible_loss_at)})",
                    )
                )
        subs = await self._store.chat_subscriptions(command.chat)
        fields += [
            MessageField("Subscriptions here", str(len(subs))),
            MessageField("Queued deliveries here", str(await self._outbox.pending(command.chat))),
            MessageField("Dead-lettered here", str(await self._outbox.dead_count(command.chat))),
        ]
        if self._holding is not None:
            fields += await hold_commands.status_fields(command, self._holding, self._clock())
        error = await self._store.chat_error(command.chat)
        if error:
            at, _, text = error.partition(" ")
            fields.append(MessageField("Last error here", f"{text} ({_ago(float(at))})"))
        return Reply((Message(title="Status", fields=tuple(fields)),), private=True)

    async def cmd_why(self, command: Command) -> Reply:
        if self._why is None:
            return Reply.text("The delivery journal is not enabled here.", private=True)
        return await self._why.answer(command)

    # --- charts and chat settings (relay.chart_commands) -------------------------------
    async def cmd_chart(self, command: Command) -> Reply:
        if self._charts is None:
            return Reply.text("Charts are not enabled here.", private=True)
        return await chart_commands.chart(command, self._charts, self._linked)

    async def cmd_timezone(self, command: Command) -> Reply:
        if self._chat_settings is None:
            return Reply.text("Chat settings are not enabled here.", private=True)
        return await chart_commands.timezone(command, self._chat_settings)

    # --- quiet hours, snooze, digests (relay.hold_commands) -------------------------------------
    def _hold(self) -> Holding:
        if self._holding is None:
            raise UsageError("quiet hours and digests are not enabled here")
        return self._holding

    async def cmd_quiet(self, command: Command) -> Reply:
        return await hold_commands.quiet(command, self._hold(), self._clock())

    async def cmd_snooze(self, command: Command) -> Reply:
        return await hold_commands.snooze(command, self._hold(), self._clock())

    async def cmd_digest(self, command: Command) -> Reply:
        return await hold_commands.digest(command, self._hold(), self._clock())

    async def cmd_held(self, command: Command) -> Reply:
        return await hold_commands.held(command, self._hold())

    # --- the trader's cockpit: handlers live in relay.trading ----------------------------------
    async def cmd_accept(self, command: Command) -> Reply:
        return await self._cockpit.accept(command)

    async def cmd_positions(self, command: Command) -> Reply:
        return await self._cockpit.positions(command)

    async def cmd_trader(self, command: Command) -> Reply:
        return await self._cockpit.trader(command)

    async def cmd_price(self, command: Command) -> Reply:
        return await self._cockpit.price(command)

    async def cmd_points(self, command: Command) -> Reply:
        return await self._cockpit.points(command)

    async def cmd_leaderboard(self, command: Command) -> Reply:
        return await self._cockpit.leaderboard(command)

    async def cmd_trending(self, command: Command) -> Reply:
        return await self._cockpit.trending(command)

    async def cmd_post(self, command: Command) -> Reply:
        return await self._cockpit.post(command)

    async def cmd_trade(self, command: Command) -> Reply:
        return await self._cockpit.trade(command)

    async def cmd_confirm(self, command: Command) -> Reply:
        return await self._cockpit.confirm(command)

    async def cmd_intel(self, command: Command) -> Reply:
        return await self._cockpit.intel(command)


def _kinds(kinds: frozenset[str]) -> str:
    return ", ".join(sorted(kinds)) if kinds else "all kinds"


def _feed(s: Subscription) -> str:
    """`feed “btc” (strategy) market=crypto -scam`: the type as it was always shown, then the filters."""
    what = f"feed “{s.keyword}”" if s.keyword else "feed"
    what += f" ({s.message_type})" if s.message_type else ""
    others = WatchFilter(s.market, s.symbol, "", s.exclude)
    return f"{what} {others.describe()}" if others else what


def _watched(s: Subscription) -> str:
    return "the " + _feed(s).replace("feed “", "feed for “", 1) if s.keyword else "the whole " + _feed(s)


def _describe(s: Subscription, modes: dict[str, str]) -> str:
    if s.kind == "feed":
        return f"#{s.sub_id} {_feed(s)}"
    if s.kind == "trader":
        return f"#{s.sub_id} trader {s.trader_id}" + (f" {s.filter.describe()}" if s.filter else "")
    # What actually arrives: the subscription's kinds less those /notify turned off in this chat.
    chosen = [k for k in KINDS if not s.kinds or k in s.kinds]
    arrive = [f"{k} (silent)" if modes.get(k) == "silent" else k for k in chosen if modes.get(k, "on") != "off"]
    effective = ", ".join(arrive) if arrive else "nothing (its kinds are off here: /notify)"
    return f"#{s.sub_id} agent #{s.agent_id}: {_kinds(s.kinds)} → delivered here: {effective}"


Handler = Callable[[Commands, Command], Awaitable[Reply]]

# Command name -> handler, one line each; tests/relay/test_handlers.py checks it against relay.specs.COMMANDS.
HANDLERS: dict[str, Handler] = {
    "start": Commands.cmd_start,
    "help": Commands.cmd_help,
    "link": Commands.cmd_link,
    "unlink": Commands.cmd_unlink,
    "subscribe": Commands.cmd_subscribe,
    "unsubscribe": Commands.cmd_unsubscribe,
    "subscriptions": Commands.cmd_subscriptions,
    "notify": Commands.cmd_notify,
    "feed": Commands.cmd_feed,
    "replies": Commands.cmd_replies,
    "reply": Commands.cmd_reply,
    "send": Commands.cmd_send,
    "task": Commands.cmd_task,
    "discussions": Commands.cmd_discussions,
    "follow": Commands.cmd_follow,
    "unfollow": Commands.cmd_unfollow,
    "following": Commands.cmd_following,
    "status": Commands.cmd_status,
    "why": Commands.cmd_why,
    "chart": Commands.cmd_chart,
    "timezone": Commands.cmd_timezone,
    "quiet": Commands.cmd_quiet,
    "snooze": Commands.cmd_snooze,
    "digest": Commands.cmd_digest,
    "held": Commands.cmd_held,
    "accept": Commands.cmd_accept,
    "positions": Commands.cmd_positions,
    "trader": Commands.cmd_trader,
    "price": Commands.cmd_price,
    "points": Commands.cmd_points,
    "leaderboard": Commands.cmd_leaderboard,
    "trending": Commands.cmd_trending,
    "post": Commands.cmd_post,
    "trade": Commands.cmd_trade,
    "confirm": Commands.cmd_confirm,
    "intel": Commands.cmd_intel,
}
