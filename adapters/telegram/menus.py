"""The command menus Telegram shows when a user types "/": one per scope and per language.

Telegram picks the narrowest menu that applies (https://core.telegram.org/bots/api#determining-list-of-commands):
for a group administrator `all_chat_administrators` before `all_group_chats` before `default`; in a
private chat `all_private_chats` before `default`; and within a scope the list set for the user's
`language_code` before the one set without a language. So:

- private chats: every command (the user administers a chat with the bot);
- groups: what any member may run (no `/link`, which only works privately, and none of the
  commands only administrators may use there);
- group administrators: the group list plus the administrators' commands;
- default (channels, and anything else): every command but `/link`.

Each list is set once without a language (English) and once per other language with its
descriptions translated; command names stay English.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import (
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeDefault,
)

from relay.i18n import DEFAULT_LANGUAGE, Catalogues, Translator
from relay.models import CommandSpec

MAX_COMMANDS = 100  # Bot API setMyCommands: "At most 100 commands can be specified"
MAX_DESCRIPTION = 256  # BotCommand.description: 1-256 characters
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")  # BotCommand.command: 1-32 of a-z, 0-9 and _


@dataclass(frozen=True, slots=True)
class Menu:
    scope: BotCommandScope
    language_code: str | None  # None: for every language without its own list
    commands: tuple[BotCommand, ...]


def _shown(spec: CommandSpec) -> bool:
    return not spec.hidden and bool(_COMMAND_NAME.fullmatch(spec.name))


def _entries(specs: Sequence[CommandSpec], t: Translator) -> tuple[BotCommand, ...]:
    entries = []
    for spec in specs:
        summary = (t.gettext(spec.summary).strip().splitlines() or [spec.name])[0][:MAX_DESCRIPTION]
        entries.append(BotCommand(spec.name, summary or spec.name))
    return tuple(entries[:MAX_COMMANDS])


def menus(commands: Sequence[CommandSpec], catalogues: Catalogues) -> list[Menu]:
    shown = [s for s in commands if _shown(s)]
    everywhere = [s for s in shown if not s.private_only]
    members = [s for s in everywhere if not s.admin_in_groups]
    lists: list[tuple[BotCommandScope, list[CommandSpec]]] = [
        (BotCommandScopeDefault(), everywhere),
        (BotCommandScopeAllPrivateChats(), shown),
        (BotCommandScopeAllGroupChats(), members),
        (BotCommandScopeAllChatAdministrators(), everywhere),
    ]
    out = []
    for language in catalogues.languages:
        t = catalogues.translator(language)
        code = None if language == DEFAULT_LANGUAGE else language
        out += [Menu(scope, code, _entries(specs, t)) for scope, specs in lists]
    return out
