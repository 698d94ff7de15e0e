"""Inline buttons: `Action` <-> callback_data, and the memory of ForceReply prompts.

callback_data holds at most 64 bytes (Bot API), so an action that does not fit inline is kept in
Redis for 7 days and its button carries a short id. Any client can send any callback_data, so every
button's data ends in an HMAC over the data and the chat it was sent to (`relay.signing`): a forged
or copied payload is refused. Nothing here sends or dispatches.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from relay.adapter import AdapterServices
from relay.keys import TELEGRAM_BUTTONS, TELEGRAM_PROMPTS
from relay.models import Action, CommandSpec
from relay.signing import SIG_CHARS, Signer

CALLBACK_MAX = 64  # bytes, Bot API InlineKeyboardButton.callback_data
ROW_WIDTH = 3
_SEP = "|"
PAYLOAD_MAX = CALLBACK_MAX - 1 - SIG_CHARS  # what is left of 64 bytes after "|<signature>"
_STORED = "r"
_FLAG_OF = {("command", False): "c", ("command", True): "e", ("prompt", False): "p", ("prompt", True): "p"}
_KIND_OF = {"c": ("command", False), "e": ("command", True), "p": ("prompt", False)}


def _action_json(action: Action) -> str:
    return json.dumps(
        {
            "label": action.label,
            "command": action.command,
            "args": dict(action.args),
            "kind": action.kind,
            "text_param": action.text_param,
            "replace": action.replace,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _action_from_json(raw: str | bytes) -> Action:
    d = json.loads(raw)
    return Action(d["label"], d["command"], dict(d["args"]), d["kind"], d["text_param"], bool(d["replace"]))


class ButtonStore:
    """Encodes actions into buttons and back; remembers which command a ForceReply prompt is for."""

    def __init__(
        self,
        services: AdapterServices,
        specs: Mapping[str, CommandSpec] | None = None,
        *,
        signer: Signer | None = None,
    ) -> None:
        self._stored = services.store(TELEGRAM_BUTTONS)  # kept 7 days: longer than any paging session
        self._prompts = services.store(TELEGRAM_PROMPTS)
        self.specs: Mapping[str, CommandSpec] = specs or {}
        self._signer = signer or Signer.random()

    def inline(self, action: Action) -> str | None:
        """ "flag|command|text_param|v1|v2…" with values in the spec's parameter order, or None
        when the action cannot be encoded exactly in 64 bytes."""
        spec = self.specs.get(action.command)
        if spec is None:
            return None
        names = [p.name for p in spec.params]
        if any(name not in names for name in action.args):
            return None
        values = [action.args.get(name, "") for name in names]
        if any(_SEP in v for v in (action.command, action.text_param, *values)):
            return None
        if any(name in action.args and not action.args[name] for name in names):
            return None  # an explicit empty value would read back as "absent"
        while values and not values[-1]:
            values.pop()
        data = _SEP.join([_FLAG_OF[(action.kind, action.replace)], action.command, action.text_param, *values])
        return data if len(data.encode()) <= PAYLOAD_MAX else None

    async def encode(self, action: Action, chat_id: str) -> str:
        """Signed callback_data for the action in this chat, storing the action when it does
        not fit inline (StoreUnavailable when that fails)."""
        data = self.inline(action)
        if data is None:
            ref = secrets.token_urlsafe(12)
            await self._stored.put(ref, value=_action_json(action))
            data = f"{_STORED}{_SEP}{ref}"
        return f"{data}{_SEP}{self._signer.sign(data, chat_id)}"

    async def decode(self, signed: str, chat_id: str, label: str = "") -> Action | None:
        """The action a pressed button stands for; None when unknown, expired, or not signed for this chat."""
        data, _, signature = signed.rpartition(_SEP)
        if not data or not self._signer.verify(data, chat_id, signature):
            return None
        flag, _, rest = data.partition(_SEP)
        if flag == _STORED:
            raw = await self._stored.get(rest)
            return _action_from_json(raw) if raw else None
        if flag not in _KIND_OF:
            return None
        command, _, rest = rest.partition(_SEP)
        text_param, _, rest = rest.partition(_SEP)
        spec = self.specs.get(command)
        if spec is None:
            return None
        values = rest.split(_SEP) if rest else []
        args = {p.name: v for p, v in zip(spec.params, values, strict=False) if v}  # trailing empties were dropped
        kind, replace = _KIND_OF[flag]
        return Action(label, command, args, kind, text_param, replace)  # type: ignore[arg-type]

    async def keyboard(self, actions: Sequence[Action], chat_id: str) -> InlineKeyboardMarkup | None:
        if not actions:
            return None
        buttons = [InlineKeyboardButton(a.label, callback_data=await self.encode(a, chat_id)) for a in actions]
        return InlineKeyboardMarkup([buttons[i : i + ROW_WIDTH] for i in range(0, len(buttons), ROW_WIDTH)])

    async def remember_prompt(self, chat_id: str, message_id: int, action: Action, user_id: str) -> None:
        """The prompt belongs to the user who pressed the button: only their answer uses it."""
        await self._prompts.put(chat_id, message_id, user_id, value=_action_json(action))

    async def take_prompt(self, chat_id: str, message_id: int, user_id: str) -> Action | None:
        """The action this user's ForceReply prompt was for, once: a second answer, or anyone
        else's answer, is ordinary text."""
        raw = await self._prompts.take(chat_id, message_id, user_id)
        return _action_from_json(raw) if raw else None
