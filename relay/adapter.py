"""The adapter contract, both ways: what the core needs from a chat platform (`ChatAdapter`), and
all the shared state an adapter may use (`AdapterServices`). Beyond these, adapters use only
the relay's pure code: models, errors, `words`, `specs`, `logs.Redactor`.

An adapter turns platform events into `Command`s (handed to `dispatch`) and `ChatChange`s
(handed to `on_chat_change`), and turns `Message`s into platform calls in `send`. Business
logic stays in `relay/`; the core never imports an adapter. An adapter keeps shared state only
through the `AdapterServices` it is built with (the composition root, `adapters/main.py`, makes
one per platform): never raw Redis, so every key it writes is declared, with its bound, in
`relay/keys.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from relay.keys import AdapterFamily
from relay.models import ChatRef, Command, CommandSpec, Message, Reply, Suggestion

Dispatch = Callable[[Command], Awaitable[Reply]]
# (the command being typed, with what is known of its chat and user; the argument's name; what
# was typed so far) -> choices to offer, from Redis only (see relay.suggest).
Suggest = Callable[[Command, str, str], Awaitable[tuple[Suggestion, ...]]]


@dataclass(frozen=True, slots=True)
class ChatChange:
    """A chat the platform told us about outside of a send: gone (bot removed) or moved."""

    chat: ChatRef
    change: Literal["gone", "moved"]
    new_chat: ChatRef | None = None
    reason: str = ""


OnChatChange = Callable[[ChatChange], Awaitable[None]]


@runtime_checkable
class ChatAdapter(Protocol):
    """Each adapter enforces its platform's limits itself (text length, send rates): it alone
    knows the rules, and `send` reports the outcome as a `DeliveryError` the core acts on."""

    platform: str

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


@runtime_checkable
class Autocompletes(Protocol):
    """An adapter whose platform asks for argument suggestions while the user types (Discord):
    the relay hands it `Suggest` before `start`."""

    platform: str

    def attach_suggestions(self, suggest: Suggest) -> None: ...


# --- what an adapter may use ------------------------------------------------------------------
# Every method may raise `relay.errors.StoreUnavailable` when Redis does not answer; all of this is
# for efficiency or memory across restarts, so an adapter falls back rather than stop.


class Lease(Protocol):
    """One named lease of this platform, shared by every process: who does a job now (polls
    getUpdates, holds the gateway). For efficiency only, never for correctness."""

    owner: str

    async def acquire(self) -> bool:
        """Take it if free, or extend it if ours."""

    async def renew(self) -> bool:
        """Extend it; False when someone else holds it now."""

    async def release(self) -> bool:
        """Give it up if ours."""


class RateBudget(Protocol):
    """A rate shared by every process (a bot token's global ceiling)."""

    async def acquire(self) -> None:
        """Wait for one slot."""

    async def hold(self, seconds: float) -> None:
        """No slot for any process for `seconds` (the platform asked the whole bot to wait)."""


class KeyStore(Protocol):
    """Keys of one declared family (`relay.keys.AdapterFamily`); `parts` name the key inside it.
    Writes set the family's expiry."""

    async def get(self, *parts: object) -> str | None: ...

    async def put(self, *parts: object, value: str | int, only_if_absent: bool = False) -> bool:
        """False when `only_if_absent` and the key exists."""

    async def take(self, *parts: object) -> str | None:
        """Read and delete (a value meant to be used once)."""

    async def exists(self, *parts: object) -> bool: ...

    async def delete(self, *keys: tuple[object, ...]) -> None:
        """Delete several keys, each given as its parts."""

    async def incr(self, *parts: object) -> int:
        """Count up; the family's expiry starts with the first count."""

    async def add(self, *parts: object, member: str | int) -> None:
        """Add to a set (and renew its expiry)."""

    async def members(self, *parts: object) -> set[str]: ...


class AdapterServices(Protocol):
    """Shared state for one platform's adapter, namespaced to that platform."""

    platform: str

    def lease(self, family: AdapterFamily, ttl_s: float | None = None) -> Lease:
        """A lease of a "lease" family; `ttl_s` (default: the family's) may only be shorter."""

    def rate_budget(self, family: AdapterFamily, per_second: float, burst: int = 1) -> RateBudget:
        """A shared budget of a "rate" family; `burst` slots may be taken back to back after a
        pause (so a waiter that woke late does not cost the budget its slot)."""

    def store(self, family: AdapterFamily) -> KeyStore:
        """The keys of a "string", "counter" or "set" family."""

    async def first_time(self, event_id: str) -> bool:
        """True the first time this platform event id is seen (for a day): a redelivered update
        or interaction is handled once."""
