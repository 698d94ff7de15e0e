"""`dispatch(Command) -> Reply`: find the spec, validate, authorize, run, translate errors.

The router never sends anything; adapters do. Whatever goes wrong, the user gets one readable
line: a usage line for a wrong argument, the upstream error's sentence, or a generic apology for
a bug (logged with its traceback, never shown).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from redis.exceptions import OutOfMemoryError

from relay.admin import Admin
from relay.chat_settings import ChatSettings
from relay.commandlimit import CommandLimiter
from relay.commands import HANDLERS, Commands
from relay.errors import NotLinked, TokenRejected, UpstreamError, UsageError
from relay.i18n import ENGLISH, N_, Catalogues, Translator, language_of
from relay.models import Command, CommandSpec, Reply, Suggestion
from relay.specs import ADMIN, BY_NAME
from relay.suggest import Suggestions

log = logging.getLogger(__name__)

STORAGE_FULL = N_(
    "The relay's storage is full right now, so nothing was changed. The operator has been told; try again later."
)


def unknown_command(name: str, t: Translator = ENGLISH) -> Reply:
    """The one reply to a command nobody knows (adapters answer unknown names with it too)."""
    return Reply.text(t.gettext("Unknown command /{name}. Send /help for the list.", name=name[:40]))


def help_hint(t: Translator = ENGLISH) -> Reply:
    """The reply to a bare "/": the user is looking for the commands."""
    return Reply.text(t.gettext("Send /help for the list of commands, or /start to begin."))


class Router:
    def __init__(
        self,
        commands: Commands,
        admin: Admin | None = None,
        *,
        limiter: CommandLimiter | None = None,
        chat_settings: ChatSettings | None = None,
        catalogues: Catalogues | None = None,
        suggestions: Suggestions | None = None,
    ) -> None:
        self._suggestions = suggestions
        self._commands = commands
        self._admin = admin
        self._limiter = limiter
        self._chat_settings = chat_settings
        self._catalogues = catalogues or commands.catalogues

    async def language(self, command: Command) -> str:
        """The language of this command's reply (see `ChatSettings.language_for`)."""
        if self._chat_settings is None:
            return language_of(command.locale) or "en"
        return await self._chat_settings.language_for(command)

    async def suggest(self, command: Command, param: str, typed: str) -> tuple[Suggestion, ...]:
        """Choices for an argument being typed, in the chat's language; () when there are none or
        anything fails (an autocomplete answer is a convenience, never an error message)."""
        if self._suggestions is None or BY_NAME.get(command.name) is None:
            return ()
        try:
            t = self._catalogues.translator(await self.language(command))
            return await self._suggestions.suggest(command, param, typed, t)
        except Exception:
            log.warning("router: suggestions failed name=%s param=%s", command.name, param, exc_info=True)
            return ()

    async def dispatch(self, command: Command) -> Reply:
        if command.name == ADMIN.name:
            # Operator commands stay English: they speak of keys, streams and ids.
            if self._admin is None or not self._admin.allowed(command):
                return unknown_command(command.name)
            try:
                return await self._admin.handle(command)
            except Exception:
                log.exception("router: /admin failed")
                return Reply.text(
                    ENGLISH.gettext("Something went wrong on our side; it has been logged."), private=True
                )
        try:
            command = replace(command, language=await self.language(command))
        except Exception:
            # The chat's setting is unreadable (Redis down): answer in the sender's language.
            log.warning("router: chat language unavailable chat=%s", command.chat.key, exc_info=True)
            command = replace(command, language=language_of(command.locale) or "en")
        t = self._catalogues.translator(command.language)
        if not command.name.strip():
            return help_hint(t)
        spec = BY_NAME.get(command.name)
        if spec is None:
            return unknown_command(command.name, t)
        try:
            if self._limiter is not None:
                # Before anything else: a refused command costs no upstream call and no handler.
                slow = await self._limiter.refusal(command, t, deletes=spec.private_only)
                if slow is not None:
                    return slow
            # Refusals first: a /link with a bad argument in a group must still get deleted.
            refusal = _refusal(spec, command, t)
            if refusal is not None:
                return refusal
            _validate(spec, command)
            return await HANDLERS[spec.name](self._commands, command)
        except UsageError as exc:
            reason = exc.localised(t)
            # A private-only command carries a secret (the /link token): a mistyped one is deleted too.
            text = (
                t.gettext("Usage: {usage} ({reason})", usage=spec.usage, reason=reason)
                if reason
                else t.gettext("Usage: {usage}", usage=spec.usage)
            )
            return Reply.text(text, private=True, delete_command=spec.private_only)
        except NotLinked as exc:
            return Reply.text(exc.localised(t), private=True)
        except TokenRejected as exc:
            await self._commands.token_rejected(command)
            return Reply.text(exc.localised(t), private=True)
        except UpstreamError as exc:
            return Reply.text(exc.localised(t), private=True)
        except OutOfMemoryError:
            # Redis reached maxmemory (noeviction): it refuses writes rather than dropping data.
            log.error("router: Redis is full (maxmemory reached); command refused name=%s", command.name)
            return Reply.text(t.gettext(STORAGE_FULL), private=True)
        except Exception:
            log.exception("router: command failed name=%s chat=%s", command.name, command.chat.key)
            return Reply.text(
                t.gettext("Something went wrong on our side; it has been logged. Please try again later."),
                private=True,
            )


def _validate(spec: CommandSpec, command: Command) -> None:
    args = command.args
    if "_extra" in args:
        raise UsageError(N_("too many arguments"))
    for param in spec.params:
        value = args.get(param.name, "")
        if param.required and not value.strip():
            raise UsageError(N_("{name} is missing"), name=param.name)
        if value and param.choices and value.lower() not in param.choices:
            raise UsageError(N_("{name} must be one of {choices}"), name=param.name, choices=", ".join(param.choices))


def _refusal(spec: CommandSpec, command: Command, t: Translator) -> Reply | None:
    if spec.private_only and not command.is_private:
        # The token was just shown to everyone in the chat: deleting it helps, rotating it is safer.
        return Reply.text(
            t.gettext(
                "/{name} works only in a private chat with me, so your token stays secret. "
                "I will try to delete your message; if others saw the token, log in to AI-Trader again to rotate it.",
                name=spec.name,
            ),
            delete_command=True,
        )
    if spec.admin_in_groups and not command.is_private and not command.user.is_chat_admin:
        return Reply.text(t.gettext("Only chat administrators can use /{name} here.", name=spec.name), private=True)
    return None
