"""`dispatch(Command) -> Reply`: find the spec, validate, authorize, run, translate errors.

The router never sends anything; adapters do. Whatever goes wrong, the user gets one readable
line: a usage line for a wrong argument, the upstream error's sentence, or a generic apology for
a bug (logged with its traceback, never shown).
"""

from __future__ import annotations

import logging

from redis.exceptions import OutOfMemoryError

from relay.admin import Admin
from relay.commandlimit import CommandLimiter
from relay.commands import HANDLERS, Commands
from relay.errors import NotLinked, TokenRejected, UpstreamError, UsageError
from relay.models import Command, CommandSpec, Reply
from relay.specs import ADMIN, BY_NAME

log = logging.getLogger(__name__)

STORAGE_FULL = (
    "The relay's storage is full right now, so nothing was changed. The operator has been told; try again later."
)


def unknown_command(name: str) -> Reply:
    """The one reply to a command nobody knows (adapters answer unknown names with it too)."""
    return Reply.text(f"Unknown command /{name[:40]}. Send /help for the list.")


def help_hint() -> Reply:
    """The reply to a bare "/": the user is looking for the commands."""
    return Reply.text("Send /help for the list of commands, or /start to begin.")


class Router:
    def __init__(
        self, commands: Commands, admin: Admin | None = None, *, limiter: CommandLimiter | None = None
    ) -> None:
        self._commands = commands
        self._admin = admin
        self._limiter = limiter

    async def dispatch(self, command: Command) -> Reply:
        if command.name == ADMIN.name:
            if self._admin is None or not self._admin.allowed(command):
                return unknown_command(command.name)
            try:
                return await self._admin.handle(command)
            except Exception:
                log.exception("router: /admin failed")
                return Reply.text("Something went wrong on our side; it has been logged.", private=True)
        if not command.name.strip():
            return help_hint()
        spec = BY_NAME.get(command.name)
        if spec is None:
            return unknown_command(command.name)
        try:
            if self._limiter is not None:
                # Before anything else: a refused command costs no upstream call and no handler.
                slow = await self._limiter.refusal(command, deletes=spec.private_only)
                if slow is not None:
                    return slow
            # Refusals first: a /link with a bad argument in a group must still get deleted.
            refusal = _refusal(spec, command)
            if refusal is not None:
                return refusal
            _validate(spec, command)
            return await HANDLERS[spec.name](self._commands, command)
        except UsageError as exc:
            reason = f" ({exc})" if str(exc) else ""
            # A private-only command carries a secret (the /link token): a mistyped one is deleted too.
            return Reply.text(f"Usage: {spec.usage}{reason}", private=True, delete_command=spec.private_only)
        except NotLinked as exc:
            return Reply.text(exc.sentence, private=True)
        except TokenRejected as exc:
            await self._commands.token_rejected(command)
            return Reply.text(exc.sentence, private=True)
        except UpstreamError as exc:
            return Reply.text(exc.sentence, private=True)
        except OutOfMemoryError:
            # Redis reached maxmemory (noeviction): it refuses writes rather than dropping data.
            log.error("router: Redis is full (maxmemory reached); command refused name=%s", command.name)
            return Reply.text(STORAGE_FULL, private=True)
        except Exception:
            log.exception("router: command failed name=%s chat=%s", command.name, command.chat.key)
            return Reply.text(
                "Something went wrong on our side; it has been logged. Please try again later.", private=True
            )


def _validate(spec: CommandSpec, command: Command) -> None:
    args = command.args
    if "_extra" in args:
        raise UsageError("too many arguments")
    for param in spec.params:
        value = args.get(param.name, "")
        if param.required and not value.strip():
            raise UsageError(f"{param.name} is missing")
        if value and param.choices and value.lower() not in param.choices:
            raise UsageError(f"{param.name} must be one of {', '.join(param.choices)}")


def _refusal(spec: CommandSpec, command: Command) -> Reply | None:
    if spec.private_only and not command.is_private:
        # The token was just shown to everyone in the chat: deleting it helps, rotating it is safer.
        return Reply.text(
            f"/{spec.name} works only in a private chat with me, so your token stays secret. "
            "I will try to delete your message; if others saw the token, log in to AI-Trader again to rotate it.",
            delete_command=True,
        )
    if spec.admin_in_groups and not command.is_private and not command.user.is_chat_admin:
        return Reply.text(f"Only chat administrators can use /{spec.name} here.", private=True)
    return None
