"""The one exception tree. Translate at the boundary: the AI-Trader client raises only
`UpstreamError`s, adapters raise only `DeliveryError`s from `send`, the router raises `UsageError`.

    RelayError
    ├── UpstreamError            (every one carries a sentence fit for a chat)
    │   ├── TokenRejected        401: token rotated or wrong
    │   ├── RateLimited          429: the upstream's own cooldowns
    │   ├── NotFound             404
    │   ├── UpstreamUnavailable  5xx, timeouts, connection errors
    │   │   └── OutcomeUnknown   a non-idempotent write was sent but no answer came back
    │   └── UnexpectedResponse   200 with the wrong shape (e.g. the catch-all `{"message": ...}`)
    ├── DeliveryError            raised by ChatAdapter.send
    │   ├── RetryLater           transient: wait `seconds`, then resend to this chat only
    │   │   └── PermissionMissing  the bot may not post there now (fixable by the chat's admins): keep all, retry
    │   ├── SendUncertain        the request left but no answer came: resending may duplicate
    │   ├── ChatGone             blocked, kicked, deleted: drop the chat's subscriptions
    │   ├── ChatMoved            the chat has a new id (Telegram supergroup migration)
    │   └── Undeliverable        permanent for this message: dead-letter it
    ├── StoreUnavailable         an `AdapterServices` call could not reach Redis (adapters fall back)
    ├── UsageError               a command argument is wrong (rendered as a one-line usage reply)
    ├── NotLinked                the command needs a linked agent (its sentence, no usage line)
    └── ConfigError              a setting is missing or invalid
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.i18n import N_, Translator

if TYPE_CHECKING:
    from relay.models import ChatRef


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""


class UpstreamError(RelayError):
    # `sentence` is English with named placeholders filled from `params`; `localised` translates it.
    sentence = N_("AI-Trader returned an error.")

    def __init__(self, detail: str = "", *, sentence: str | None = None, **params: object) -> None:
        self.template = sentence or self.sentence
        self.params = params
        # `sentence` stays the English text with its values in (for logs and /status);
        # `localised` is what a chat sees.
        self.sentence = self.template.format(**params) if params else self.template
        super().__init__(detail or self.sentence)
        self.detail = detail

    def localised(self, t: Translator) -> str:
        return t.gettext(self.template, **self.params)


class TokenRejected(UpstreamError):
    sentence = N_(
        "AI-Trader rejected the token (it changes whenever the agent logs in again). Link again with /link in a private chat."
    )


class RateLimited(UpstreamError):
    sentence = N_("AI-Trader is rate limiting this agent.")

    def __init__(self, detail: str = "", *, retry_after: float = 20.0) -> None:
        super().__init__(
            detail,
            sentence=N_("AI-Trader says to slow down: try again in {seconds}s."),
            seconds=int(retry_after + 0.999),
        )
        self.retry_after = retry_after


class NotFound(UpstreamError):
    sentence = N_("AI-Trader has no such item.")


class UpstreamUnavailable(UpstreamError):
    sentence = N_("AI-Trader is not answering right now; try again shortly.")


class OutcomeUnknown(UpstreamUnavailable):
    sentence = N_(
        "AI-Trader did not answer in time, so it is unknown whether this went through. Check before sending it again."
    )


class UnexpectedResponse(UpstreamError):
    sentence = N_("AI-Trader answered in an unexpected way; the relay may need an update.")


class DeliveryError(RelayError):
    """Raised by `ChatAdapter.send`; `relay.delivery` turns each into ack, retry or dead letter."""


class RetryLater(DeliveryError):
    def __init__(self, seconds: float, detail: str = "") -> None:
        super().__init__(detail or f"retry after {seconds}s")
        self.seconds = seconds


class PermissionMissing(RetryLater):
    """The chat exists but refuses the bot a right it needs (Discord 50013, Telegram "not enough
    rights"). An admin can fix it, so nothing is dropped: the chat keeps its subscriptions and
    queue, the cause shows in /status, and the chat is retried after `seconds`."""


class SendUncertain(DeliveryError):
    """The send may or may not have reached the chat (timeout after the request left)."""


class ChatGone(DeliveryError):
    pass


class ChatMoved(DeliveryError):
    def __init__(self, new_chat: ChatRef, detail: str = "") -> None:
        super().__init__(detail or f"chat moved to {new_chat.key}")
        self.new_chat = new_chat


class Undeliverable(DeliveryError):
    pass


class StoreUnavailable(RelayError):
    """Raised by `relay.services` when Redis does not answer: leases, rate budgets and caches are
    for efficiency, so an adapter falls back (paces alone, skips a cache) rather than stop."""


class UsageError(RelayError):
    """A wrong command argument; the message is one line for the user: English marked with N_(),
    named placeholders filled from `params` (the router translates it into the chat's language)."""

    def __init__(self, message: str = "", /, **params: object) -> None:
        super().__init__(message.format(**params) if params else message)
        self.template = message
        self.params = params

    def localised(self, t: Translator) -> str:
        return t.gettext(self.template, **self.params) if self.template else ""


class BadValue(UsageError, ValueError):
    """An argument a parser refused (a ValueError to code that parses it, a UsageError to the router)."""


class BadId(BadValue):
    """An id argument that is not a plain positive number."""


class NotLinked(RelayError):
    """The command acts as the user's agent and none is usable. Not a usage error: the command
    was typed right, so the reply is the one step to take, without a "Usage:" line."""

    sentence = N_("To do that, link your agent first with /link in a private chat with me.")

    def __init__(self, sentence: str | None = None) -> None:
        super().__init__(sentence or self.sentence)
        self.sentence = sentence or self.sentence

    def localised(self, t: Translator) -> str:
        return t.gettext(self.sentence)


class LimitReached(UsageError):
    """A cap on what one chat or user may hold (subscriptions, watches) is reached."""


class ConfigError(RelayError):
    """A missing or invalid setting; the message is one line naming the variable."""
