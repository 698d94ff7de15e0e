"""Who may change a channel's subscriptions on Discord: every privileged core command (specs with
`admin_in_groups`) in every context, through the real Relay router, the real DiscordAdapter and
the fake Discord.

The rule (relay.router): in a group, only chat administrators; a private chat is its user's own.
On Discord a chat administrator is a member whose effective permissions in the channel include
Manage Channels or Administrator; a DM with the bot is private. Discord's command permissions
only decide who is *offered* a command: a guild admin may override them so that a member without
Manage Channels can run /subscribe, but that changes nothing about the member's permissions in
the channel, so the relay still refuses them. The same goes for an interaction from a member
without the permission that reaches us anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis

from platform_fakes.discord_api import CommandNotAvailable, FakeDiscord, FakeInteraction
from relay.app import Relay
from relay.config import RelaySettings
from relay.models import ChatRef
from relay.specs import COMMANDS
from relay.store import Subscription
from relay.tokens import TokenBox
from tests.adapters.conftest import started_discord_relay

TOKEN = "MTAwAUTHZ0000000000000000.GaUtHz.authz-bot-token-never-real-00000000"
GUILD = 520000000000000001
DM_BASE, CHANNEL_BASE = 620000000000000000, 520000000000000100
USER = 333333333333333333
MANAGE_CHANNELS, ADMINISTRATOR, SEND_MESSAGES = 1 << 4, 1 << 3, 1 << 11
PRIVILEGED = tuple(spec.name for spec in COMMANDS if spec.admin_in_groups)


@dataclass(frozen=True)
class Context:
    name: str
    guild: bool
    permissions: int
    override: bool  # a guild admin opened the command to this member
    allowed: bool  # what the rule says


CONTEXTS = (
    Context("DM", guild=False, permissions=0, override=False, allowed=True),
    Context("member without Manage Channels", guild=True, permissions=SEND_MESSAGES, override=False, allowed=False),
    Context(
        "member with Manage Channels",
        guild=True,
        permissions=SEND_MESSAGES | MANAGE_CHANNELS,
        override=False,
        allowed=True,
    ),
    Context("Administrator", guild=True, permissions=ADMINISTRATOR, override=False, allowed=True),
    Context(
        "member with a command permission override", guild=True, permissions=SEND_MESSAGES, override=True, allowed=False
    ),
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(
        token=TOKEN, guilds={GUILD: [CHANNEL_BASE + i for i in range(20)]}, global_limit=None, channel_limit=None
    ) as server:
        yield server


@pytest.fixture
async def live(
    settings: RelaySettings, redis: Redis, http: httpx.AsyncClient, box: TokenBox, fake: FakeDiscord
) -> AsyncIterator[Relay]:
    async with started_discord_relay(settings, redis, http, box, fake, seed=5, bot_token=TOKEN) as relay:
        yield relay


Check = Callable[[Relay, ChatRef], Awaitable[bool]]


@dataclass(frozen=True)
class Case:
    """One privileged command: its options, what success says, and the state it changes."""

    options: dict[str, str]
    success: str
    changed: Check


async def _prepare(relay: Relay, command: str, chat: ChatRef) -> dict[str, str]:
    """State the command acts on: /unsubscribe needs a subscription to remove."""
    if command != "unsubscribe":
        return {}
    sub_id = await relay.store.add_subscription(
        Subscription(0, "feed", chat, keyword="eth", created_by="discord:setup")
    )
    return {"id": str(sub_id)}


def _case(command: str, prepared: dict[str, str]) -> Case:
    if command == "subscribe":

        async def subscribed(relay: Relay, chat: ChatRef) -> bool:
            return [(s.kind, s.keyword) for s in await relay.store.chat_subscriptions(chat)] == [("feed", "btc")]

        return Case({"what": "feed btc"}, "Watching the feed for “btc” as #", subscribed)
    if command == "unsubscribe":

        async def removed(relay: Relay, chat: ChatRef) -> bool:
            return await relay.store.chat_subscriptions(chat) == []

        return Case(prepared, f"Removed subscription #{prepared['id']}.", removed)
    if command == "notify":

        async def muted(relay: Relay, chat: ChatRef) -> bool:
            return (await relay.store.kind_modes(chat)).get("mentions") == "off"

        return Case({"kind": "mentions", "mode": "off"}, "Mentions are now off in this chat.", muted)
    if command == "timezone":

        async def zoned(relay: Relay, chat: ChatRef) -> bool:
            return (await relay.chat_settings.timezone(chat)).key == "Asia/Tokyo"

        return Case({"zone": "Asia/Tokyo"}, "This chat's time zone is now Asia/Tokyo", zoned)
    if command == "language":

        async def chosen(relay: Relay, chat: ChatRef) -> bool:
            return await relay.chat_settings.chosen_language(chat) == "en"

        return Case({"language": "en"}, "This chat's language is now English", chosen)
    if command == "quiet":

        async def quieted(relay: Relay, chat: ChatRef) -> bool:
            return str((await relay.holding.plan(chat)).quiet) == "22:00-07:00"

        return Case({"hours": "22:00-07:00"}, "Quiet hours 22:00-07:00 UTC", quieted)
    if command == "snooze":

        async def snoozed(relay: Relay, chat: ChatRef) -> bool:
            return (await relay.holding.plan(chat)).snooze_until is not None

        return Case({"duration": "2h"}, "Snoozed until ", snoozed)
    if command == "digest":

        async def digested(relay: Relay, chat: ChatRef) -> bool:
            return set((await relay.holding.plan(chat)).digests) == {"followers"}

        return Case({"what": "followers hourly"}, "followers now come as one hourly digest", digested)
    raise AssertionError(f"no case for privileged command /{command}: add one")


async def _run(
    fake: FakeDiscord, command: str, options: dict[str, str], context: Context, channel: int
) -> FakeInteraction:
    guild = GUILD if context.guild else None
    interaction = await fake.interaction(
        command, options, channel_id=channel, user_id=USER, guild_id=guild, permissions=context.permissions
    )
    await fake.wait_for(lambda: interaction.answered and all(m.text != "…" for m in interaction.messages()), timeout=10)
    return interaction


async def test_privileged_commands_in_every_context(
    live: Relay, fake: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every command that changes what a group receives is privileged there (each needs its case).
    assert {"subscribe", "unsubscribe", "notify", "timezone", "quiet", "snooze", "digest"} <= set(PRIVILEGED)
    outcomes: list[tuple[str, str, bool, str]] = []
    channel_ids = iter(range(40))
    for context in CONTEXTS:
        for command in PRIVILEGED:
            n = next(channel_ids)
            channel = CHANNEL_BASE + n if context.guild else DM_BASE + n
            chat = ChatRef("discord", str(channel))
            case = _case(command, await _prepare(live, command, chat))
            # Discord's side: the member is offered the command exactly when the fake says a real
            # guild would (permissions, Administrator, or the override a guild admin made).
            fake.enforce_command_permissions = True
            if context.override:
                fake.override_command_permissions(GUILD, command, USER)
            try:
                interaction = await _run(fake, command, case.options, context, channel)
            except CommandNotAvailable:
                assert context.name == "member without Manage Channels", context
                # Not offered to them; when such an interaction reaches us anyway, the relay decides.
                fake.enforce_command_permissions = False
                interaction = await _run(fake, command, case.options, context, channel)
            answer = "\n".join(m.text for m in interaction.messages())
            refused = answer == f"Only chat administrators can use /{command} here."
            succeeded = answer.startswith(case.success) and await case.changed(live, chat)
            as_specified = succeeded if context.allowed else (refused and not await case.changed(live, chat))
            outcomes.append((context.name, command, as_specified, answer))
    good = sum(1 for _, _, ok, _ in outcomes if ok)
    with capsys.disabled():
        print(f"\nauthz: {len(outcomes)} cases, {good} as specified")
    wrong = [o for o in outcomes if not o[2]]
    assert not wrong, "\n".join(f"{ctx} /{cmd}: {answer!r}" for ctx, cmd, _, answer in wrong)
    assert len(outcomes) == len(CONTEXTS) * len(PRIVILEGED)


async def test_an_override_is_what_lets_the_member_run_the_command(live: Relay, fake: FakeDiscord) -> None:
    """The fake models Discord's own gate, so the override case above is a real path, not a guess."""
    fake.enforce_command_permissions = True
    channel = CHANNEL_BASE + 19
    with pytest.raises(CommandNotAvailable):
        await fake.interaction(
            "subscribe", {"what": "all"}, channel_id=channel, user_id=USER, guild_id=GUILD, permissions=SEND_MESSAGES
        )
    fake.override_command_permissions(GUILD, "subscribe", USER)
    interaction = await _run(fake, "subscribe", {"what": "all"}, CONTEXTS[-1], channel)
    assert [m.text for m in interaction.messages()] == ["Only chat administrators can use /subscribe here."]
    # Commands without default_member_permissions are offered to everyone.
    status = await _run(fake, "subscriptions", {}, CONTEXTS[1], channel)
    assert "Subscriptions in this chat" in status.messages()[0].text
