"""Slash command declarations: one explicit app command per core `CommandSpec`.

Declared by hand, so Discord users get typed options with choices and ranges; descriptions come
from `relay.specs` so they never drift, and a test checks names and parameters against the specs.
Callbacks only forward the named options as strings; no decisions are made here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import discord
from discord import app_commands

from relay.i18n import DEFAULT_LANGUAGE, ENGLISH, Catalogues, Translator, language_of
from relay.specs import BY_NAME

Run = Callable[[discord.Interaction, str, dict[str, str]], Awaitable[None]]
# (interaction, command, option, what was typed) -> (label, value) pairs from the core's suggestions.
Complete = Callable[[discord.Interaction, str, str, str], Awaitable[list[tuple[str, str]]]]
# Options Discord autocompletes while the user types (answered from Redis within its 3 s).
AUTOCOMPLETED: tuple[tuple[str, str], ...] = (
    ("subscribe", "what"),
    ("digest", "what"),
    ("unsubscribe", "id"),
    ("replies", "signal_id"),
    ("reply", "signal_id"),
    ("accept", "signal_id"),
    ("unfollow", "agent_id"),
    ("why", "ref"),
)

FeedType = Literal["operation", "strategy", "discussion"]
Kind = Literal["replies", "mentions", "accepted", "followers", "strategies", "discussions", "messages", "tasks"]
KindMode = Literal["on", "silent", "off"]
Id = app_commands.Range[int, 1]
Page = app_commands.Range[int, 1, 10_000]
Days = app_commands.Range[int, 1, 365]
Market = Literal["us-stock", "crypto", "polymarket"]
Side = Literal["buy", "sell", "short", "cover"]
PostKind = Literal["strategy", "discussion"]
Decision = Literal["confirm", "cancel"]
Language = Literal["en", "zh", "auto"]
Amount = app_commands.Range[float, 0.000001, 1_000_000_000.0]

# /link takes its parameters in a modal (LINK_FIELDS), never as options: an option's value is
# shown in the channel as part of the command, and the token must stay between user and bot.
LINK_FIELDS: tuple[str, ...] = ("token", "mode")
DESCRIPTION_MAX = 100  # Discord's limit for command and option descriptions


def summary(name: str) -> str:
    return BY_NAME[name].summary[:DESCRIPTION_MAX]


def described(name: str) -> Callable[[Any], Any]:
    return app_commands.describe(**{p.name: p.description[:DESCRIPTION_MAX] for p in BY_NAME[name].params})


def _args(**values: object) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def build_commands(run: Run, complete: Complete | None = None) -> list[app_commands.Command[Any, ..., Any]]:
    """Every command the relay offers on Discord, each forwarding to `run(interaction, name, args)`;
    with `complete`, the options in AUTOCOMPLETED offer suggestions as the user types."""

    @app_commands.command(name="start", description=summary("start"))
    async def start(interaction: discord.Interaction) -> None:
        await run(interaction, "start", {})

    @app_commands.command(name="help", description=summary("help"))
    async def help_(interaction: discord.Interaction) -> None:
        await run(interaction, "help", {})

    @app_commands.command(name="link", description="Link your AI-Trader agent (asks for the token privately)")
    async def link(interaction: discord.Interaction) -> None:
        await run(interaction, "link", {})

    @app_commands.command(name="unlink", description=summary("unlink"))
    async def unlink(interaction: discord.Interaction) -> None:
        await run(interaction, "unlink", {})

    @app_commands.command(name="subscribe", description=summary("subscribe"))
    @described("subscribe")
    @app_commands.default_permissions(manage_channels=True)
    async def subscribe(interaction: discord.Interaction, what: str | None = None) -> None:
        await run(interaction, "subscribe", _args(what=what))

    @app_commands.command(name="unsubscribe", description=summary("unsubscribe"))
    @described("unsubscribe")
    @app_commands.default_permissions(manage_channels=True)
    async def unsubscribe(interaction: discord.Interaction, id: Id) -> None:
        await run(interaction, "unsubscribe", _args(id=id))

    @app_commands.command(name="subscriptions", description=summary("subscriptions"))
    async def subscriptions(interaction: discord.Interaction) -> None:
        await run(interaction, "subscriptions", {})

    @app_commands.command(name="notify", description=summary("notify"))
    @described("notify")
    @app_commands.default_permissions(manage_channels=True)
    async def notify(interaction: discord.Interaction, kind: Kind | None = None, mode: KindMode | None = None) -> None:
        await run(interaction, "notify", _args(kind=kind, mode=mode))

    @app_commands.command(name="feed", description=summary("feed"))
    @described("feed")
    async def feed(
        interaction: discord.Interaction, keyword: str, type: FeedType | None = None, page: Page | None = None
    ) -> None:
        await run(interaction, "feed", _args(keyword=keyword, type=type, page=page))

    @app_commands.command(name="replies", description=summary("replies"))
    @described("replies")
    async def replies(interaction: discord.Interaction, signal_id: Id) -> None:
        await run(interaction, "replies", _args(signal_id=signal_id))

    @app_commands.command(name="reply", description=summary("reply"))
    @described("reply")
    async def reply(interaction: discord.Interaction, signal_id: Id, text: str) -> None:
        await run(interaction, "reply", _args(signal_id=signal_id, text=text))

    @app_commands.command(name="send", description=summary("send"))
    @described("send")
    async def send(interaction: discord.Interaction, agent_id: Id, text: str) -> None:
        await run(interaction, "send", _args(agent_id=agent_id, text=text))

    @app_commands.command(name="task", description=summary("task"))
    @described("task")
    async def task(interaction: discord.Interaction, agent_id: Id, type: str, json: str | None = None) -> None:
        await run(interaction, "task", _args(agent_id=agent_id, type=type, json=json))

    @app_commands.command(name="discussions", description=summary("discussions"))
    @described("discussions")
    async def discussions(interaction: discord.Interaction, keyword: str | None = None) -> None:
        await run(interaction, "discussions", _args(keyword=keyword))

    @app_commands.command(name="follow", description=summary("follow"))
    @described("follow")
    async def follow(interaction: discord.Interaction, agent_id: Id) -> None:
        await run(interaction, "follow", _args(agent_id=agent_id))

    @app_commands.command(name="unfollow", description=summary("unfollow"))
    @described("unfollow")
    async def unfollow(interaction: discord.Interaction, agent_id: Id) -> None:
        await run(interaction, "unfollow", _args(agent_id=agent_id))

    @app_commands.command(name="following", description=summary("following"))
    async def following(interaction: discord.Interaction) -> None:
        await run(interaction, "following", {})

    @app_commands.command(name="status", description=summary("status"))
    async def status(interaction: discord.Interaction) -> None:
        await run(interaction, "status", {})

    @app_commands.command(name="why", description=summary("why"))
    @described("why")
    async def why(interaction: discord.Interaction, ref: str) -> None:
        await run(interaction, "why", _args(ref=ref))

    @app_commands.command(name="chart", description=summary("chart"))
    @described("chart")
    async def chart(
        interaction: discord.Interaction, what: str, option: str | None = None, days: Days | None = None
    ) -> None:
        await run(interaction, "chart", _args(what=what, option=option, days=days))

    @app_commands.command(name="timezone", description=summary("timezone"))
    @described("timezone")
    @app_commands.default_permissions(manage_channels=True)
    async def timezone(interaction: discord.Interaction, zone: str | None = None) -> None:
        await run(interaction, "timezone", _args(zone=zone))

    @app_commands.command(name="quiet", description=summary("quiet"))
    @described("quiet")
    @app_commands.default_permissions(manage_channels=True)
    async def quiet(interaction: discord.Interaction, hours: str | None = None) -> None:
        await run(interaction, "quiet", _args(hours=hours))

    @app_commands.command(name="snooze", description=summary("snooze"))
    @described("snooze")
    @app_commands.default_permissions(manage_channels=True)
    async def snooze(interaction: discord.Interaction, duration: str | None = None) -> None:
        await run(interaction, "snooze", _args(duration=duration))

    @app_commands.command(name="digest", description=summary("digest"))
    @described("digest")
    @app_commands.default_permissions(manage_channels=True)
    async def digest(interaction: discord.Interaction, what: str | None = None) -> None:
        await run(interaction, "digest", _args(what=what))

    @app_commands.command(name="held", description=summary("held"))
    @described("held")
    async def held(interaction: discord.Interaction, batch: str | None = None, page: Page | None = None) -> None:
        await run(interaction, "held", _args(batch=batch, page=page))

    @app_commands.command(name="language", description=summary("language"))
    @described("language")
    @app_commands.default_permissions(manage_channels=True)
    async def language(interaction: discord.Interaction, language: Language | None = None) -> None:
        await run(interaction, "language", _args(language=language))

    @app_commands.command(name="accept", description=summary("accept"))
    @described("accept")
    async def accept(interaction: discord.Interaction, signal_id: Id, reply_id: Id) -> None:
        await run(interaction, "accept", _args(signal_id=signal_id, reply_id=reply_id))

    @app_commands.command(name="positions", description=summary("positions"))
    async def positions(interaction: discord.Interaction) -> None:
        await run(interaction, "positions", {})

    @app_commands.command(name="trader", description=summary("trader"))
    @described("trader")
    async def trader(interaction: discord.Interaction, agent_id: Id) -> None:
        await run(interaction, "trader", _args(agent_id=agent_id))

    @app_commands.command(name="price", description=summary("price"))
    @described("price")
    async def price(interaction: discord.Interaction, symbol: str, market: Market | None = None) -> None:
        await run(interaction, "price", _args(symbol=symbol, market=market))

    @app_commands.command(name="points", description=summary("points"))
    async def points(interaction: discord.Interaction) -> None:
        await run(interaction, "points", {})

    @app_commands.command(name="leaderboard", description=summary("leaderboard"))
    @described("leaderboard")
    async def leaderboard(interaction: discord.Interaction, days: Days | None = None) -> None:
        await run(interaction, "leaderboard", _args(days=days))

    @app_commands.command(name="trending", description=summary("trending"))
    async def trending(interaction: discord.Interaction) -> None:
        await run(interaction, "trending", {})

    @app_commands.command(name="post", description=summary("post"))
    @described("post")
    async def post(interaction: discord.Interaction, kind: PostKind, text: str) -> None:
        await run(interaction, "post", _args(kind=kind, text=text))

    @app_commands.command(name="trade", description=summary("trade"))
    @described("trade")
    async def trade(
        interaction: discord.Interaction,
        side: Side,
        symbol: str,
        quantity: Amount,
        market: Market | None = None,
        price: Amount | None = None,
    ) -> None:
        await run(interaction, "trade", _args(side=side, symbol=symbol, quantity=quantity, market=market, price=price))

    @app_commands.command(name="confirm", description=summary("confirm"))
    @described("confirm")
    async def confirm(interaction: discord.Interaction, id: str, decision: Decision | None = None) -> None:
        await run(interaction, "confirm", _args(id=id, decision=decision))

    @app_commands.command(name="intel", description=summary("intel"))
    @described("intel")
    async def intel(interaction: discord.Interaction, what: str | None = None) -> None:
        await run(interaction, "intel", _args(what=what))

    commands: list[app_commands.Command[Any, ..., Any]] = [start, help_, link, unlink, subscribe, unsubscribe]
    commands += [subscriptions, notify, feed, replies, reply, send]
    commands += [task, discussions, follow, unfollow, following, status, why, chart, timezone, language, accept]
    commands += [positions, trader, price, points, leaderboard, trending, post, trade, confirm, intel]
    commands += [quiet, snooze, digest, held]
    if complete is not None:
        by_name = {c.name: c for c in commands}
        for name, option in AUTOCOMPLETED:
            _autocomplete(by_name[name], option, complete)
    for command in commands:
        # A guild-installed bot: usable in servers and in the bot's DMs, not in group DMs.
        command.allowed_contexts = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False)
        command.allowed_installs = app_commands.AppInstallationType(guild=True, user=False)
    return commands


def _autocomplete(command: app_commands.Command[Any, ..., Any], option: str, complete: Complete) -> None:
    numeric = next(p for p in command.parameters if p.name == option).type is discord.AppCommandOptionType.integer

    async def suggest(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[Any]]:
        pairs = await complete(interaction, command.name, option, str(current or ""))
        if numeric:
            return [app_commands.Choice(name=label, value=int(value)) for label, value in pairs if value.isdigit()]
        return [app_commands.Choice(name=label, value=value[:100]) for label, value in pairs]

    command.autocomplete(option)(suggest)


class DescriptionTranslator(app_commands.Translator):
    """Translates command, option and choice descriptions for Discord's `*_localizations` when the
    commands are synced: Discord then shows each user the descriptions in their client's language.
    Names stay English (the relay's commands are the same words everywhere)."""

    _TRANSLATED = (
        app_commands.TranslationContextLocation.command_description,
        app_commands.TranslationContextLocation.parameter_description,
    )

    def __init__(self, catalogues: Catalogues) -> None:
        self._catalogues = catalogues

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        language = language_of(locale.value)
        if language in (None, DEFAULT_LANGUAGE) or context.location not in self._TRANSLATED:
            return None
        text = self._catalogues.translator(language).gettext(string.message)
        return text[:DESCRIPTION_MAX] if text != string.message else None


def link_modal(t: Translator = ENGLISH) -> discord.ui.Modal:
    """The /link form. The token is typed here, seen only by the bot, and never echoed."""
    modal = discord.ui.Modal(title=t.gettext("Link your AI-Trader agent")[:45], custom_id="rl", timeout=None)
    token: discord.ui.TextInput[discord.ui.Modal] = discord.ui.TextInput(
        custom_id="token",
        style=discord.TextStyle.short,
        placeholder=t.gettext("paste the agent token"),
        min_length=8,
        max_length=200,
        required=True,
    )
    mode: discord.ui.Select[discord.ui.Modal] = discord.ui.Select(
        custom_id="mode",
        required=False,
        options=[
            discord.SelectOption(label=t.gettext("consume (default): the relay reads the inbox"), value="consume"),
            discord.SelectOption(label=t.gettext("observe: leave the inbox unread"), value="observe"),
        ],
    )
    token_help, mode_help = (t.gettext(p.description) for p in BY_NAME["link"].params)
    modal.add_item(discord.ui.Label(text=t.gettext("Agent token"), description=token_help, component=token))
    modal.add_item(discord.ui.Label(text=t.gettext("Mode"), description=mode_help, component=mode))
    return modal


def prompt_modal(custom_id: str, title: str, field: str) -> discord.ui.Modal:
    """Asks for the free text of a prompt action (e.g. the text of a reply)."""
    modal = discord.ui.Modal(title=title[:45] or "Reply", custom_id=custom_id, timeout=None)
    text: discord.ui.TextInput[discord.ui.Modal] = discord.ui.TextInput(
        custom_id="text", style=discord.TextStyle.paragraph, max_length=4000, required=True
    )
    modal.add_item(discord.ui.Label(text=(field or "text")[:45], component=text))
    return modal
