"""A chat adapter that records what the core sends, and can be told to fail for a chat.

It stands in for a platform in core tests; the real adapters are tested against fake platform
servers in tests/adapters/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from relay.adapter import Dispatch, OnChatChange
from relay.errors import DeliveryError
from relay.models import ChatRef, CommandSpec, Message


@dataclass
class Sent:
    chat: ChatRef
    message: Message
    key: str
    silent: bool


@dataclass
class RecordingAdapter:
    platform: str = "rec"
    sent: list[Sent] = field(default_factory=list)
    # chat key -> errors to raise, one per send attempt, before sends start succeeding again
    failures: dict[str, list[DeliveryError]] = field(default_factory=dict)
    attempts: list[str] = field(default_factory=list)
    dispatch: Dispatch | None = None
    on_chat_change: OnChatChange | None = None
    started: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, commands: Sequence[CommandSpec], dispatch: Dispatch, on_chat_change: OnChatChange) -> None:
        self.dispatch = dispatch
        self.on_chat_change = on_chat_change
        self.started = True

    async def send(self, chat: ChatRef, message: Message, *, key: str, silent: bool = False) -> None:
        self.attempts.append(chat.key)
        queue = self.failures.get(chat.key)
        if queue:
            raise queue.pop(0)
        self.sent.append(Sent(chat, message, key, silent))
        self.arrived.set()

    async def stop(self) -> None:
        self.started = False

    def chat(self, chat_id: str) -> ChatRef:
        return ChatRef(self.platform, chat_id)

    def to(self, chat: ChatRef) -> list[Sent]:
        return [s for s in self.sent if s.chat == chat]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Sent]:
        async def _wait() -> None:
            while len(self.sent) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(_wait(), timeout)
        return self.sent
