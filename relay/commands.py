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
from relay.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, Catalogues, Translator, language_of
from relay.keys import LOSS_TTL
from relay.models import Command, Message, MessageField, Reply
from relay.names import AgentDirectory
from relay.outbox import Outbox
from relay.poller import Poller
from relay.specs import COMMANDS, FEED_TYPES, KIND_MODES, KINDS
from relay.store import ActingAgent, LinkedAgent, Mode, Store, Subscription
from relay.suggest import Suggestions
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

MODE_EXPLAINED = N_(
    "consume: the relay polls this agent's heartbeat, which marks notifications read on AI-Trader. "
    "If the agent itself also polls its heartbeat, each notification reaches only one of you. "
    "observe: the relay only reads the latest 50 messages without marking anything, so the agent "
    "loses nothing; very busy inboxes can outrun it, and tasks are not carried."
)


def _id(value: str, name: str) -> int:
    return checked_id(value, name)  # a BadId is a UsageError


def _free_text(value: str, name: str) -> str:
    text = _CONTROL.sub("", value).strip()
    if not text:
        raise UsageError(N_("{name} is missing"), name=name)
    if len(text) > TEXT_LIMIT:
        raise UsageError(N_("{name} is longer than {limit} characters"), name=name, limit=TEXT_LIMIT)
    return text


def _keyword(value: str, name: str = "keyword") -> str:
    """A search word: a usage error when too long, never silently cut (the user would search
    for something else than they typed)."""
    word = unquote(_CONTROL.sub("", value))
    if len(word) > KEYWORD_LIMIT:
        raise UsageError(N_("{name} is longer than {limit} characters"), name=name, limit=KEYWORD_LIMIT)
    return word


def _ago(epoch: float | None, t: Translator) -> str:
    if not epoch:
        return t.gettext("never")
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
        catalogues: Catalogues | None = None,
        suggestions: Suggestions | None = None,
    ) -> None:
        self._suggestions = suggestions
        self.catalogues = catalogues or Catalogues.load()
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
        self._cockpit = Cockpit(
            store, client, names, desk, linked=self._linked, clock=clock, catalogues=self.catalogues
        )

    def _t(self, command: Command) -> Translator:
        """The translator for this command's reply (its language was chosen by the router)."""
        return self.catalogues.translator(command.language)

    async def _linked(self, command: Command) -> ActingAgent:
        agent = await self._store.agent_for_user(command.user.key)
        if agent is None:
            raise NotLinked()
        if agent.token is None:
            raise NotLinked(N_("Your stored link cannot be read any more; /link again in a private chat with me."))
        return ActingAgent(agent.agent_id, agent.name, agent.token)

    async def token_rejected(self, command: Command) -> None:
        agent_id = await self._store.linked_agent_id(command.user.key)
        if agent_id is not None:
            await self._store.pause_agent(agent_id, "AI-Trader rejected the token")  # a log reason, stored

    # --- onboarding ----------------------------------------------------------------------
    async def cmd_start(self, command: Command) -> Reply:
        t = self._t(command)
        return Reply(
            (
                Message(
                    title=t.gettext("AI-Trader relay"),
                    body=t.gettext(
                        "I bring your AI-Trader notifications (replies, mentions, followers, strategies, "
                        "discussions, messages, tasks) into this chat, and let you answer from here.\n"
                        "1. In a private chat with me: /link <agent token>\n"
                        "2. Here or in a group: /subscribe (all kinds) or /subscribe replies mentions\n"
                        "3. Watch the public feed: /subscribe feed <keyword>\n"
                        "/help lists every command.\n"
                        "/language zh: 中文"
                    ),
                ),
            )
        )

    async def cmd_help(self, command: Command) -> Reply:
        t = self._t(command)
        lines = [f"{spec.usage} — {t.gettext(spec.summary)}" for spec in COMMANDS]
        footer = t.gettext("Kinds: {kinds}", kinds=", ".join(KINDS))
        return Reply((Message(title=t.gettext("Commands"), body="\n".join(lines), footer=footer),))

    async def cmd_link(self, command: Command) -> Reply:
        t = self._t(command)
        token = command.args["token"].strip()
        if not _TOKEN.match(token):
            raise UsageError(N_("that does not look like an AI-Trader agent token"))
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
                return Reply.text(t.gettext(TokenRejected.sentence), private=True, delete_command=True)
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
                    title=t.gettext(
                        "Linked {name} (#{agent_id}) in {mode} mode",
                        name=agent.name or t.gettext("agent"),
                        agent_id=agent.agent_id,
                        mode=mode,
                    ),
                    body=t.gettext(MODE_EXPLAINED)
                    + "\n"
                    + t.gettext("Next: /subscribe here, or in a group where you are an administrator."),
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
        t = self._t(command)
        if not agent_ids:
            return Reply.text(t.gettext("No agent is linked to you."), private=True)
        named = ", ".join(f"#{a}" for a in agent_ids)
        return Reply.text(
            t.gettext("Unlinked agent {ids}. Its routes are removed unless someone else linked it too.", ids=named),
            private=True,
        )

    async def _forget_if_gone(self, agent: LinkedAgent) -> None:
        """Stop masking an agent's token once no user links that agent any more."""
        if agent.token and await self._store.agent(agent.agent_id) is None:
            self._forget_secret(agent.token)

    # --- subscriptions -------------------------------------------------------------------
    async def cmd_subscribe(self, command: Command) -> Reply:
        t = self._t(command)
        words = split_words(command.args.get("what", ""))
        if words and words[0].lower() == "feed":
            return await self._subscribe_feed(command, words[1:])
        if words and words[0].lower() == "trader":
            return await self._subscribe_trader(command, words[1:])
        if words and words[0].lower() == "intel":
            if self._briefs is None or self._chat_settings is None:
                raise UsageError(N_("daily briefs are not enabled here"))
            return await chart_commands.subscribe_brief(command, words[1:], self._briefs, self._chat_settings, t)
        kinds = {w.lower() for w in words}
        unknown = kinds - set(KINDS) - {"all"}
        if unknown:
            raise UsageError(
                N_("unknown kind {kind}; kinds are {kinds}"),
                kind=sorted(unknown)[0][:30],
                kinds=", ".join((*KINDS, "all")),
            )
        chosen = frozenset() if not kinds or "all" in kinds else frozenset(kinds)
        agent = await self._linked(command)
        who = f"{agent.name or t.gettext('agent')} (#{agent.agent_id})"
        previous = [
            s
            for s in await self._store.chat_subscriptions(command.chat)
            if s.kind == "agent" and s.agent_id == agent.agent_id
        ]
        if len(previous) == 1 and previous[0].kinds == chosen:
            return Reply.text(
                t.gettext(
                    "Already subscribed #{sub_id}: {who} — {kinds}. Nothing changed.",
                    sub_id=previous[0].sub_id,
                    who=who,
                    kinds=_kinds(chosen, t),
                )
            )
        # A new /subscribe states the whole set of kinds: it replaces the earlier one, and says so,
        # so "/subscribe replies" after "/subscribe all" is never a silent narrowing.
        for old in previous:
            await self._store.remove_subscription(command.chat, old.sub_id)
        sub_id = await self._store.add_subscription(
            Subscription(0, "agent", command.chat, agent_id=agent.agent_id, kinds=chosen, created_by=command.user.key)
        )
        # Not polled while nobody subscribed (relay.poller): what waits upstream comes now.
        await self._poller.make_due(agent.agent_id)
        if not previous:
            return Reply.text(
                t.gettext(
                    "Subscribed #{sub_id}: {who} — {kinds} — into this chat.",
                    sub_id=sub_id,
                    who=who,
                    kinds=_kinds(chosen, t),
                )
            )
        was = "; ".join(_kinds(old.kinds, t) for old in previous)
        return Reply.text(
            t.gettext(
                "Changed the subscription to {who} in this chat (now #{sub_id}): was: {was}, now: {kinds}. "
                "A /subscribe replaces the kinds: list every kind you want.",
                who=who,
                sub_id=sub_id,
                was=was,
                kinds=_kinds(chosen, t),
            )
        )

    async def _subscribe_feed(self, command: Command, words: list[str]) -> Reply:
        words, chosen = split_filters(words)
        if len(words) > 2 or not (words or chosen):
            raise UsageError(
                N_("feed needs a keyword, optionally operation|strategy|discussion; {filters}"), filters=FILTER_USAGE
            )
        keyword = _keyword(words[0]) if words else ""
        message_type = words[1].lower() if len(words) == 2 else ""
        if message_type and message_type not in FEED_TYPES:
            raise UsageError(N_("{name} must be one of {choices}"), name="type", choices=", ".join(FEED_TYPES))
        if message_type and chosen.message_type and message_type != chosen.message_type:
            raise UsageError(
                N_("two types given ({first}, type={second}); give one"), first=message_type, second=chosen.message_type
            )
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
        t = self._t(command)
        return Reply.text(
            t.gettext(
                "Watching {what} as #{sub_id}. New signals will appear here; nothing old is posted.",
                what=_watched(sub, t),
                sub_id=sub_id,
            )
        )

    async def _subscribe_trader(self, command: Command, words: list[str]) -> Reply:
        if words and words[0].startswith("-") and words[0][1:].isdigit():
            _id(words[0], "agent_id")  # `trader -3` is a negative id, not an exclusion: "must be a positive number"
        words, chosen = split_filters(words)
        if len(words) != 1:
            raise UsageError(N_("trader needs one agent id; {filters}"), filters=FILTER_USAGE)
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
        t = self._t(command)
        only = t.gettext(", only {filters}", filters=chosen.describe()) if chosen else ""
        return Reply.text(
            t.gettext(
                "Watching trader {name} (#{trader}){only} as #{sub_id}. Their new signals will appear here.",
                name=name,
                trader=trader,
                only=only,
                sub_id=sub_id,
            )
        )

    async def _baseline_watch(self, sub_id: int) -> None:
        sub = await self._store.subscription(sub_id)
        if sub is not None:
            try:
                await self._watcher.baseline(sub)
            except UpstreamError as exc:
                # The watch stays; its first check records the baseline instead.
                log.info("commands: watch baseline deferred sub=%s (%s)", sub_id, type(exc).__name__)

    async def cmd_unsubscribe(self, command: Command) -> Reply:
        t = self._t(command)
        sub_id = _id(command.args["id"].lstrip("#"), "id")
        if await self._store.remove_subscription(command.chat, sub_id):
            return Reply.text(t.gettext("Removed subscription #{sub_id}.", sub_id=sub_id))
        if self._briefs is not None and await self._briefs.remove(command.chat, sub_id):
            return Reply.text(t.gettext("Removed the daily brief #{sub_id}.", sub_id=sub_id))
        return Reply.text(
            t.gettext("This chat has no subscription #{sub_id}. /subscriptions lists them.", sub_id=sub_id)
        )

    async def cmd_subscriptions(self, command: Command) -> Reply:
        t = self._t(command)
        subs = await self._store.chat_subscriptions(command.chat)
        modes = await self._store.kind_modes(command.chat)
        lines = [_describe(s, modes, t) for s in subs]
        brief = await self._briefs.of_chat(command.chat) if self._briefs is not None else None
        if brief is not None and self._chat_settings is not None:
            zone = await self._chat_settings.timezone(command.chat)
            lines.append(f"{brief.describe(t)} {zone.key}")
        changed = [f"{k}: {v}" for k, v in sorted(modes.items()) if v != "on"]
        return Reply(
            (
                Message(
                    title=t.gettext("Subscriptions in this chat"),
                    body="\n".join(lines) if lines else t.gettext("None yet. /subscribe adds one."),
                    footer=t.gettext("Kinds not on: {kinds}", kinds=", ".join(changed)) if changed else "",
                ),
            )
        )

    async def cmd_notify(self, command: Command) -> Reply:
        t = self._t(command)
        kind = command.args.get("kind", "").lower()
        mode = command.args.get("mode", "").lower()
        if not kind:
            modes = await self._store.kind_modes(command.chat)
            return Reply.text("\n".join(f"{k}: {modes.get(k, 'on')}" for k in KINDS))
        if kind not in KINDS:
            raise UsageError(N_("unknown kind {kind}; kinds are {kinds}"), kind=kind[:30], kinds=", ".join(KINDS))
        if not mode:
            current = (await self._store.kind_modes(command.chat)).get(kind, "on")
            return Reply.text(
                t.gettext(
                    "{Kind} are {mode} in this chat. Change with /notify {kind} on|silent|off.",
                    Kind=kind.capitalize(),
                    kind=kind,
                    mode=current,
                )
            )
        if mode not in KIND_MODES:
            raise UsageError(N_("{name} must be one of {choices}"), name="mode", choices=", ".join(KIND_MODES))
        await self._store.set_kind_mode(command.chat, kind, mode)
        return Reply.text(t.gettext("{Kind} are now {mode} in this chat.", Kind=kind.capitalize(), mode=mode))

    # --- platform commands ---------------------------------------------------------------
    async def cmd_feed(self, command: Command) -> Reply:
        keyword = _keyword(command.args["keyword"])
        message_type = command.args.get("type", "").lower()
        page_raw = command.args.get("page", "") or "1"
        if not page_raw.isascii() or not page_raw.isdigit() or not 1 <= int(page_raw) <= 1000:
            raise UsageError(N_("page must be a number from 1 to 1000"))
        page_no = int(page_raw)
        page = await self._client.feed(
            keyword=keyword, message_type=message_type or None, limit=FEED_PAGE, offset=(page_no - 1) * FEED_PAGE
        )
        names = await self._names.names(s.agent_id for s in page.signals if not s.agent_name)
        return Reply(
            (
                cards.feed(
                    page,
                    keyword=keyword,
                    message_type=message_type,
                    page_no=page_no,
                    per_page=FEED_PAGE,
                    names=names,
                    t=self._t(command),
                ),
            )
        )

    async def cmd_replies(self, command: Command) -> Reply:
        signal_id = _id(command.args["signal_id"], "signal_id")
        return Reply((render.replies(signal_id, await self._client.replies(signal_id), self._t(command)),))

    async def cmd_reply(self, command: Command) -> Reply:
        t = self._t(command)
        signal_id = _id(command.args["signal_id"], "signal_id")
        text = _free_text(command.args.get("text", ""), "text")
        agent = await self._linked(command)
        try:
            await self._client.post_reply(agent.token, signal_id, text)
        except NotFound:
            # The same words /replies uses for a signal it cannot find.
            return Reply.text(render.no_signal(signal_id, t), private=True)
        return Reply.text(
            t.gettext(
                "Reply posted to signal {signal_id} as {name}.",
                signal_id=signal_id,
                name=agent.name or t.gettext("your agent"),
            )
        )

    async def cmd_send(self, command: Command) -> Reply:
        target = _id(command.args["agent_id"], "agent_id")
        text = _free_text(command.args.get("text", ""), "text")
        agent = await self._linked(command)
        name = await self._names.require(target)
        # Upstream records no sender: the message says who sent it, and the receiving relay shows it.
        data = {render.SENDER_ID: agent.agent_id, render.SENDER_NAME: agent.name}
        message_id = await self._client.send_message(agent.token, target, "message", text, data)
        t = self._t(command)
        suffix = t.gettext(" (message #{message_id})", message_id=message_id) if message_id else ""
        return Reply.text(
            t.gettext("Message sent to {name} (#{target}){suffix}.", name=name, target=target, suffix=suffix)
        )

    async def cmd_task(self, command: Command) -> Reply:
        target = _id(command.args["agent_id"], "agent_id")
        task_type = command.args["type"].strip()
        if not _TASK_TYPE.match(task_type):
            raise UsageError(N_("type is letters, digits and _ . : - (at most 64)"))
        raw = command.args.get("json", "").strip()
        data = None
        if raw:
            if len(raw) > 4000:
                raise UsageError(N_("{name} is longer than {limit} characters"), name="json", limit=4000)
            try:
                data = json.loads(raw)
            except ValueError:
                raise UsageError(N_("json is not valid JSON")) from None
            if not isinstance(data, dict):
                raise UsageError(N_('json must be an object like {"symbol": "BTC"}'))
        agent = await self._linked(command)
        name = await self._names.require(target)
        task_id = await self._client.create_task(agent.token, target, task_type, data)
        t = self._t(command)
        suffix = t.gettext(" (task #{task_id})", task_id=task_id) if task_id else ""
        return Reply.text(
            t.gettext(
                "Task {task_type} created for {name} (#{target}){suffix}.",
                task_type=task_type,
                name=name,
                target=target,
                suffix=suffix,
            )
        )

    async def cmd_discussions(self, command: Command) -> Reply:
        keyword = _keyword(command.args.get("keyword", "")) or None
        agent = await self._linked(command)
        items = await self._client.my_discussions(agent.token, agent.agent_id, keyword)
        t = self._t(command)
        title = t.gettext("{name}: discussions and strategies", name=agent.name or t.gettext("Your agent"))
        return Reply((cards.signals(title, items, t.gettext("Nothing found."), {agent.agent_id: agent.name}, t),))

    async def cmd_follow(self, command: Command) -> Reply:
        leader = _id(command.args["agent_id"], "agent_id")
        agent = await self._linked(command)
        name = await self._names.require(leader)
        newly = await self._client.follow(agent.token, leader)
        if self._suggestions is not None:
            await self._suggestions.forget_following(command.user.key)  # autocomplete reads it afresh
        t = self._t(command)
        who = f"{name} (#{leader})"
        if newly:
            return Reply.text(t.gettext("Now following {who}.", who=who))
        return Reply.text(t.gettext("Already following {who}.", who=who))

    async def cmd_unfollow(self, command: Command) -> Reply:
        leader = _id(command.args["agent_id"], "agent_id")
        agent = await self._linked(command)
        await self._client.unfollow(agent.token, leader)
        if self._suggestions is not None:
            await self._suggestions.forget_following(command.user.key)
        return Reply.text(self._t(command).gettext("No longer following trader #{leader}.", leader=leader))

    async def cmd_following(self, command: Command) -> Reply:
        t = self._t(command)
        agent = await self._linked(command)
        items = await self._client.following(agent.token)
        if self._suggestions is not None:
            pairs = [(f.leader_id, render.clip(f.leader_name, 60)) for f in items]
            await self._suggestions.remember_following(command.user.key, pairs)
        body = "\n".join(f"{f.leader_id} {render.clip(f.leader_name, 80)}" for f in items) or t.gettext(
            "Not following anyone."
        )
        return Reply(
            (Message(title=t.gettext("{name} follows", name=agent.name or t.gettext("Your agent")), body=body),)
        )

    async def cmd_status(self, command: Command) -> Reply:
        t = self._t(command)
        fields: list[MessageField] = []
        agent = await self._store.agent_for_user(command.user.key)
        if agent is None:
            fields.append(MessageField(t.gettext("Your agent"), t.gettext("not linked (/link in a private chat)")))
        else:
            state = (
                t.gettext("active")
                if agent.state == "active"
                # Stored as a catalogue msgid (N_ where it is raised), said in this chat's language.
                else t.gettext("paused: {reason}", reason=t.gettext(agent.paused_reason))
            )
            fields += [
                MessageField(
                    t.gettext("Your agent"),
                    t.gettext(
                        "{name} (#{agent_id}), {mode} mode, {state}",
                        name=agent.name,
                        agent_id=agent.agent_id,
                        mode=agent.mode,
                        state=state,
                    ),
                ),
                MessageField(t.gettext("Last successful poll"), _ago(agent.last_ok, t)),
            ]
            if agent.state == "active" and not await self._store.agent_subscriptions(agent.agent_id):
                fields.append(
                    MessageField(
                        t.gettext("Polling"),
                        t.gettext(
                            "waiting: no chat subscribes to this agent, so its notifications stay unread "
                            "on AI-Trader (/subscribe here or in a group)"
                        ),
                    )
                )
            if agent.last_error:
                fields.append(MessageField(t.gettext("Last poll error"), t.gettext(agent.last_error)))
            if agent.possible_loss_at and self._clock() - agent.possible_loss_at < LOSS_TTL:
                reports = t.ngettext("once", "{n} times", agent.loss_reports)
                fields.append(
                    MessageField(
                        t.gettext("Possibly lost"),
                        t.gettext(
                            "{what}: a heartbeat answer was lost and AI-Trader's recent view could "
                            "not show every message it held ({reports}, last {when})",
                            what=agent.possible_loss,
                            reports=reports,
                            when=_ago(agent.possible_loss_at, t),
                        ),
                    )
                )
        subs = await self._store.chat_subscriptions(command.chat)
        fields += [
            MessageField(t.gettext("Subscriptions here"), str(len(subs))),
            MessageField(t.gettext("Queued deliveries here"), str(await self._outbox.pending(command.chat))),
            MessageField(t.gettext("Dead-lettered here"), str(await self._outbox.dead_count(command.chat))),
        ]
        if self._holding is not None:
            fields += await hold_commands.status_fields(command, self._holding, self._clock(), t)
        language = await self._chat_settings.chosen_language(command.chat) if self._chat_settings else None
        fields.append(
            MessageField(
                t.gettext("Language"),
                LANGUAGES[language][1]
                if language
                else t.gettext("{name} (follows the users; /language to set)", name=LANGUAGES[t.language][1]),
            )
        )
        error = await self._store.chat_error(command.chat)
        if error is not None:
            said = t.gettext(error.sentence, detail=error.detail)
            fields.append(MessageField(t.gettext("Last error here"), f"{said} ({_ago(error.at, t)})"))
        return Reply((Message(title=t.gettext("Status"), fields=tuple(fields)),), private=True)

    async def cmd_why(self, command: Command) -> Reply:
        if self._why is None:
            return Reply.text(self._t(command).gettext("The delivery journal is not enabled here."), private=True)
        return await self._why.answer(command, self._t(command))

    # --- charts and chat settings (relay.chart_commands) -------------------------------
    async def cmd_chart(self, command: Command) -> Reply:
        if self._charts is None:
            return Reply.text(self._t(command).gettext("Charts are not enabled here."), private=True)
        return await chart_commands.chart(command, self._charts, self._linked, self._t(command))

    async def cmd_timezone(self, command: Command) -> Reply:
        if self._chat_settings is None:
            return Reply.text(self._t(command).gettext("Chat settings are not enabled here."), private=True)
        return await chart_commands.timezone(command, self._chat_settings, self._t(command))

    async def cmd_language(self, command: Command) -> Reply:
        t = self._t(command)
        if self._chat_settings is None:
            return Reply.text(t.gettext("Chat settings are not enabled here."), private=True)
        choice = command.args.get("language", "").strip().lower()
        names = ", ".join(f"{code} ({name})" for code, (_, name) in LANGUAGES.items())
        if not choice:
            chosen = await self._chat_settings.chosen_language(command.chat)
            if chosen is None:
                return Reply.text(
                    t.gettext(
                        "This chat follows its users' language (now {name}). Set one with /language {codes}.",
                        name=LANGUAGES[t.language][1],
                        codes="|".join((*LANGUAGES, "auto")),
                    )
                )
            return Reply.text(
                t.gettext(
                    "This chat's language is {name}. Languages: {names}; /language auto follows each user's.",
                    name=LANGUAGES[chosen][1],
                    names=names,
                )
            )
        if choice == "auto":
            await self._chat_settings.set_language(command.chat, None)
            spoken = language_of(command.locale) or DEFAULT_LANGUAGE
            t = self.catalogues.translator(spoken)
            return Reply.text(t.gettext("This chat now follows each user's own language."))
        language = language_of(choice)
        if language is None:
            raise UsageError(
                N_("{name} must be one of {choices}"), name="language", choices=", ".join((*LANGUAGES, "auto"))
            )
        await self._chat_settings.set_language(command.chat, language)
        # Answered in the language just chosen: the user sees at once that it took.
        t = self.catalogues.translator(language)
        return Reply.text(t.gettext("This chat's language is now {name}.", name=LANGUAGES[language][1]))

    # --- quiet hours, snooze, digests (relay.hold_commands) -------------------------------------
    def _hold(self) -> Holding:
        if self._holding is None:
            raise UsageError(N_("quiet hours and digests are not enabled here"))
        return self._holding

    async def cmd_quiet(self, command: Command) -> Reply:
        return await hold_commands.quiet(command, self._hold(), self._clock(), self._t(command))

    async def cmd_snooze(self, command: Command) -> Reply:
        return await hold_commands.snooze(command, self._hold(), self._clock(), self._t(command))

    async def cmd_digest(self, command: Command) -> Reply:
        return await hold_commands.digest(command, self._hold(), self._clock(), self._t(command))

    async def cmd_held(self, command: Command) -> Reply:
        return await hold_commands.held(command, self._hold(), self._t(command))

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


def _kinds(kinds: frozenset[str], t: Translator) -> str:
    return ", ".join(sorted(kinds)) if kinds else t.gettext("all kinds")


def _feed_extras(s: Subscription) -> str:
    """` (strategy) market=crypto -scam`: the type as it was always shown, then the filters."""
    what = f" ({s.message_type})" if s.message_type else ""
    others = WatchFilter(s.market, s.symbol, "", s.exclude)
    return f"{what} {others.describe()}" if others else what


def _feed(s: Subscription, t: Translator) -> str:
    extras = _feed_extras(s)
    if s.keyword:
        return t.gettext("feed “{keyword}”{extras}", keyword=s.keyword, extras=extras)
    return t.gettext("feed{extras}", extras=extras)


def _watched(s: Subscription, t: Translator) -> str:
    extras = _feed_extras(s)
    if s.keyword:
        return t.gettext("the feed for “{keyword}”{extras}", keyword=s.keyword, extras=extras)
    return t.gettext("the whole feed{extras}", extras=extras)


def describe_subscription(s: Subscription, t: Translator) -> str:
    """One line naming a subscription (autocomplete of /unsubscribe), without this chat's modes."""
    return _describe(s, {}, t)


def _describe(s: Subscription, modes: dict[str, str], t: Translator) -> str:
    if s.kind == "feed":
        return f"#{s.sub_id} {_feed(s, t)}"
    if s.kind == "trader":
        trader = t.gettext("#{sub_id} trader {trader_id}", sub_id=s.sub_id, trader_id=s.trader_id)
        return trader + (f" {s.filter.describe()}" if s.filter else "")
    # What actually arrives: the subscription's kinds less those /notify turned off in this chat.
    chosen = [k for k in KINDS if not s.kinds or k in s.kinds]
    arrive = [
        t.gettext("{kind} (silent)", kind=k) if modes.get(k) == "silent" else k
        for k in chosen
        if modes.get(k, "on") != "off"
    ]
    effective = ", ".join(arrive) if arrive else t.gettext("nothing (its kinds are off here: /notify)")
    return t.gettext(
        "#{sub_id} agent #{agent_id}: {kinds} → delivered here: {effective}",
        sub_id=s.sub_id,
        agent_id=s.agent_id,
        kinds=_kinds(s.kinds, t),
        effective=effective,
    )


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
    "language": Commands.cmd_language,
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
