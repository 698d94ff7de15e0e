"""The adapter contract: everything the core needs from a chat platform, and nothing more.

An adapter turns platform events into `Command`s (handed to `dispatch`) and `ChatChange`s
(handed to `on_chat_change`), and turns `Message`s into platform calls in `send`. Business
logic stays in `relay/`; the core never imports an adapter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from relay.models import ChatRef, Command, CommandSpec, Message, Reply

Dispatch = Callable[[Command], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class ChatChange:
    """A chat the platform told us about outside of a send: gone (bot removed) or moved."""

    chat: ChatRef
    change: Literal["gone", "moved"]
    new_chat: ChatRef | None = None
    reason: str = ""


OnChatChange = Callable[[ChatChange], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """What a platform allows one bot token. The adapter enforces these itself (it alone knows
    the platform's rules); the core reads them only to describe and plan, never to throttle."""

    max_text: int  # one message's text, counted as `measure` says
    measure: Literal["utf16", "codepoints"]
    sends_per_second: float  # the ceiling the adapter paces all of this token's sends to


@runtime_checkable
class ChatAdapter(Protocol):
    platform: str
    limits: Limits

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        """Register the commands and begin taking platform events. Must not own the event loop."""

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        """Deliver one message. `key` is unique per delivery (use it where the platform offers
        idempotency). Raises only `relay.errors.DeliveryError` subclasses."""

    async def stop(self) -> None:
        """Stop taking events first, then close. Idempotent."""


@runtime_checkable
class TakesUpdates(Protocol):
    """An adapter that fetches platform events itself (long polling, a gateway): at shutdown the
    relay asks it to stop that first, beside the in-flight sends, and then calls `stop`."""

    platform: str

    async def stop_updates(self) -> None:
        """Stop fetching events and give up any claim on fetching them (a lease). Idempotent; may
        be cancelled when the grace runs out, and must then still release that claim."""
