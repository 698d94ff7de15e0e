"""Turns Discord interactions into core `Command`s and answers them with the core's `Reply`.

Slash commands come through the CommandTree (`on_command`); buttons and modals through
`on_interaction`, decoded from their custom_id alone, so they keep working after a restart.
Every answer is deferred first (3 s deadline) and sent with `AllowedMentions.none()`.
Must not decide anything the core decides: permissions are reported, not enforced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from typing import Any

import aiohttp
import discord

from adapters.discord.actions import LINK_MODAL_ID, PROMPT_PREFIX, ActionCodec, build_view, parse_button_id
from adapters.discord.commands import link_modal, prompt_modal
from adapters.discord.embeds import RenderedPart, render
from adapters.discord.guards import RequestGuard
from relay.adapter import AdapterServices, Dispatch, Suggest
from relay.errors import StoreUnavailable
from relay.i18n import Catalogues, Translator, language_of
from relay.keys import DISCORD_GUILD_CHANNELS
from relay.logs import Redactor
from relay.models import ChatRef, Command, Reply, UserRef

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
# Deferred ephemerally because their answers are personal. The first follow-up after a deferral
# inherits its visibility, so guessing right saves the placeholder dance in `_answer`.
PERSONAL = frozenset({"status", "unlink", "link"})
PLACEHOLDER = "…"
AUTOCOMPLETE_BUDGET = 2.0  # seconds for the core's suggestions: Discord's 3 s less the answer's own trip
_ANSWER_ERRORS = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class InteractionHandler:
    def __init__(
        self,
        services: AdapterServices,
        codec: ActionCodec,
        guard: RequestGuard,
        redactor: Redactor,
        catalogues: Catalogues | None = None,
    ) -> None:
        self._catalogues = catalogues or Catalogues.load()
        self._services = services
        self._guild_channels = services.store(DISCORD_GUILD_CHANNELS)
        self._codec = codec
        self._guard = guard
        self._redactor = redactor
        self._dispatch: Dispatch | None = None
        self._suggest: Suggest | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = False

    def attach(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch

    def _t(self, interaction: discord.Interaction) -> Translator:
        """The adapter's own words (modals, expired buttons) in the user's Discord language."""
        return self._catalogues.translator(language_of(getattr(interaction.locale, "value", "")))

    def attach_suggestions(self, suggest: Suggest) -> None:
        self._suggest = suggest

    async def complete(
        self, interaction: discord.Interaction, name: str, option: str, typed: str
    ) -> list[tuple[str, str]]:
        """An autocomplete (type 4) interaction: the core's suggestions within AUTOCOMPLETE_BUDGET
        seconds, or none (Discord discards an answer after 3 s and shows "loading options failed")."""
        if self._suggest is None or self.stopping:
            return []
        command = self._command(interaction, name, {option: typed})
        try:
            found = await asyncio.wait_for(self._suggest(command, option, typed), AUTOCOMPLETE_BUDGET)
        except Exception:
            log.info("autocomplete gave nothing command=%s option=%s", name, option, exc_info=True)
            return []
        return [(s.label, s.value) for s in found]

    async def drain(self, timeout: float) -> None:
        """Wait for answers in progress (stop intake first)."""
        self.stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("discord interactions still running at stop count=%d", self._inflight)

    # --- entry points -----------------------------------------------------------------------

    async def on_command(self, interaction: discord.Interaction, name: str, args: dict[str, str]) -> None:
        """A slash command from the CommandTree."""
        if not await self._accept(interaction):
            return
        if name == "link":
            # The token is asked for in a modal so it never appears in the channel.
            await self._respond(interaction.response.send_modal(link_modal(self._t(interaction))))
            return
        await self._run(interaction, self._command(interaction, name, args), update=False)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Every interaction; acts on our buttons and modals, ignores the rest."""
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if interaction.type is discord.InteractionType.component:
            token = parse_button_id(custom_id)
            if token is not None and await self._accept(interaction):
                await self._on_button(interaction, token)
        elif (
            interaction.type is discord.InteractionType.modal_submit
            and (custom_id == LINK_MODAL_ID or custom_id.startswith(PROMPT_PREFIX))
            and await self._accept(interaction)
        ):
            await self._on_modal(interaction, custom_id, modal_values(data.get("components") or []))

    # --- buttons and modals -----------------------------------------------------------------

    async def _on_button(self, interaction: discord.Interaction, token: str) -> None:
        action = await self._codec.decode(token, str(interaction.channel_id))
        t = self._t(interaction)
        if action is None:
            await self._respond(
                interaction.response.send_message(
                    t.gettext("This button has expired; use the command instead."),
                    ephemeral=True,
                    allowed_mentions=NO_MENTIONS,
                )
            )
            return
        if action.kind == "prompt":
            title = _button_label(interaction) or t.gettext("Reply")
            field = t.gettext("text") if action.text_param == "text" else action.text_param
            await self._respond(interaction.response.send_modal(prompt_modal(PROMPT_PREFIX + token, title, field)))
            return
        command = self._command(interaction, action.command, dict(action.args))
        await self._run(interaction, command, update=action.replace)

    async def _on_modal(self, interaction: discord.Interaction, custom_id: str, values: dict[str, str]) -> None:
        if custom_id == LINK_MODAL_ID:
            token = values.get("token", "").strip()
            self._redactor.add(token)
            args = {"token": token}
            if mode := values.get("mode", "").strip().lower():
                args["mode"] = mode
            # Only the bot saw the token, so the command counts as private wherever it was typed.
            command = dataclasses.replace(self._command(interaction, "link", args), is_private=True)
            await self._run(interaction, command, update=False, private=True)
            return
        action = await self._codec.decode(custom_id[len(PROMPT_PREFIX) :], str(interaction.channel_id))
        if action is None:
            await self._respond(
                interaction.response.send_message(
                    "This form has expired; use the command instead.", ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            )
            return
        args = {**action.args, (action.text_param or "text"): values.get("text", "")}
        command = self._command(interaction, action.command, args)
        await self._run(interaction, command, update=action.replace and interaction.message is not None)

    # --- the common path --------------------------------------------------------------------

    async def _accept(self, interaction: discord.Interaction) -> bool:
        """First sight of this interaction (a replayed event is answered once), and the channel is
        evidently reachable again if it was marked gone."""
        if self.stopping or self._dispatch is None:
            return False
        try:
            first = await self._services.first_time(str(interaction.id))
        except StoreUnavailable:
            log.warning("interaction dedup unavailable id=%s: handling it", interaction.id, exc_info=True)
            first = True
        if not first:
            log.info("interaction replayed id=%s: ignored", interaction.id)
            return False
        if interaction.guild_id is not None and interaction.channel_id is not None:
            # Remembered so that removing the bot from the server drops this channel's subscriptions.
            try:
                await self._guild_channels.add(interaction.guild_id, "channels", member=interaction.channel_id)
            except StoreUnavailable:
                log.warning("guild channel not remembered channel=%s", interaction.channel_id)
        if interaction.channel_id is not None:
            await self._guard.clear_gone(interaction.channel_id)
        return True

    def _command(self, interaction: discord.Interaction, name: str, args: dict[str, str]) -> Command:
        is_dm = interaction.guild_id is None and (
            interaction.channel is None or getattr(interaction.channel, "type", None) is discord.ChannelType.private
        )
        # interaction.permissions are the member's effective permissions in this channel, computed
        # by Discord after role and channel overwrites, so a guild admin relaxing the command's
        # default_member_permissions cannot hand subscription changes to everyone.
        permissions = interaction.permissions
        is_admin = is_dm or permissions.administrator or permissions.manage_channels
        user = UserRef("discord", str(interaction.user.id), interaction.user.display_name, is_chat_admin=is_admin)
        chat = ChatRef("discord", str(interaction.channel_id))
        # The user's client language (always sent on interactions), for the reply's language.
        locale = getattr(interaction.locale, "value", "") or ""
        return Command(name, args, chat, user, is_private=is_dm, locale=locale)

    async def _run(
        self, interaction: discord.Interaction, command: Command, *, update: bool, private: bool = False
    ) -> None:
        self._inflight += 1
        self._idle.clear()
        try:
            deferred_private = private or command.name in PERSONAL
            if update:
                deferred = self._respond(interaction.response.defer())  # the answer edits the pressed message
            else:
                deferred = self._respond(interaction.response.defer(ephemeral=deferred_private, thinking=True))
            if not await deferred:
                return
            reply = await self._call(command)
            if private:
                reply = dataclasses.replace(reply, private=True)
            await self._answer(interaction, reply, None if update else deferred_private)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def _call(self, command: Command) -> Reply:
        assert self._dispatch is not None
        try:
            return await self._dispatch(command)
        except Exception:
            log.exception("dispatch failed command=%s chat=%s", command.name, command.chat.key)
            t = self._catalogues.translator(language_of(command.locale))
            return Reply.text(t.gettext("Something went wrong on our side; please try again."), private=True)

    async def _answer(self, interaction: discord.Interaction, reply: Reply, deferred_private: bool | None) -> None:
        """Deliver `reply` on a deferred interaction. `deferred_private` None: a button asked to
        replace the message it sits on."""
        parts = [part for message in reply.messages for part in render(message)]
        private = reply.private
        if not parts:
            if deferred_private is not None:
                await self._respond(interaction.delete_original_response())
            return
        if deferred_private is None:
            on_ephemeral = interaction.message is not None and interaction.message.flags.ephemeral
            if private and not on_ephemeral:
                # Never overwrite a message others can see with an answer meant for one person.
                await self._followups(interaction, parts, private=True)
            elif await self._edit_original(interaction, parts[0], clear_buttons=True):
                await self._followups(interaction, parts[1:], private=private)
            return
        if private == deferred_private:
            if await self._edit_original(interaction, parts[0]):
                await self._followups(interaction, parts[1:], private=private)
            return
        # The first follow-up after a deferral inherits the deferral's visibility, so settle the
        # deferred message first; later follow-ups then get the visibility we ask for.
        if await self._respond(interaction.edit_original_response(content=PLACEHOLDER, allowed_mentions=NO_MENTIONS)):
            await self._followups(interaction, parts, private=private)
            await self._respond(interaction.delete_original_response())

    async def _edit_original(
        self, interaction: discord.Interaction, part: RenderedPart, *, clear_buttons: bool = False
    ) -> bool:
        view = await self._view(interaction, part)
        kwargs: dict[str, Any] = {"content": None, "embeds": list(part.embeds), "allowed_mentions": NO_MENTIONS}
        if part.image is not None:
            kwargs["attachments"] = part.files()
        if view is not None or clear_buttons:
            kwargs["view"] = view
        return await self._respond(interaction.edit_original_response(**kwargs))

    async def _followups(self, interaction: discord.Interaction, parts: list[RenderedPart], *, private: bool) -> None:
        for part in parts:
            view = await self._view(interaction, part)
            kwargs: dict[str, Any] = {
                "embeds": list(part.embeds),
                "ephemeral": private,
                "allowed_mentions": NO_MENTIONS,
            }
            if view is not None:
                kwargs["view"] = view
            if part.image is not None:
                kwargs["files"] = part.files()
            if not await self._respond(interaction.followup.send(**kwargs)):
                return

    async def _view(self, interaction: discord.Interaction, part: RenderedPart) -> discord.ui.View | None:
        try:
            return await build_view(self._codec, part.actions, str(interaction.channel_id))
        except StoreUnavailable:
            log.warning("buttons dropped: action store unavailable", exc_info=True)
            return None

    @staticmethod
    async def _respond(call: Awaitable[Any]) -> bool:
        """Await one answer call; a failure is logged (the interaction may have expired)."""
        try:
            await call
        except _ANSWER_ERRORS as exc:
            log.warning("interaction answer failed error=%s", _describe(exc))
            return False
        return True


def modal_values(components: list[Any]) -> dict[str, str]:
    """custom_id -> submitted value, from action rows (type 1) or labels (type 18), any depth."""
    values: dict[str, str] = {}
    stack = list(components)
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        custom_id = node.get("custom_id")
        if isinstance(custom_id, str) and ("value" in node or "values" in node):
            value = node.get("value")
            if value is None:
                chosen = node.get("values") or []
                value = chosen[0] if chosen else ""
            values[custom_id] = str(value)
        stack.extend(node.get("components") or [])
        if isinstance(node.get("component"), dict):
            stack.append(node["component"])
    return values


def _button_label(interaction: discord.Interaction) -> str:
    data: dict[str, Any] = dict(interaction.data or {})
    custom_id = data.get("custom_id")
    message = interaction.message
    if message is None:
        return ""
    for row in message.components:
        for child in getattr(row, "children", ()):
            if getattr(child, "custom_id", None) == custom_id:
                return getattr(child, "label", "") or ""
    return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"{exc.status} code={exc.code}"
    return type(exc).__name__
