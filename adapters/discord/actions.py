"""Button and modal custom_ids: an `Action` packed into Discord's 100-character custom_id.

Small actions travel inside the custom_id itself (so buttons keep working across restarts with
no state); larger ones are stored for seven days (`relay.keys.DISCORD_BUTTONS`). Decoding treats the custom_id as untrusted input. Must not decide what an action does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence

import discord

from adapters.discord.embeds import button_label
from relay.adapter import AdapterServices
from relay.errors import StoreUnavailable
from relay.keys import DISCORD_BUTTONS
from relay.models import Action
from relay.signing import SIG_CHARS, Signer

log = logging.getLogger(__name__)

CUSTOM_ID_MAX = 100
BUTTON_PREFIX = "rb"  # "rb<index>:<token>": a button under a relayed message
PROMPT_PREFIX = "rp:"  # "rp:<token>": the modal that asks for a prompt action's text
LINK_MODAL_ID = "rl"  # the /link modal
# Longest prefix is "rb24:"; the token and its ".<signature>" must fit after it.
_TOKEN_MAX = CUSTOM_ID_MAX - len("rb24:") - 1 - SIG_CHARS


class ActionCodec:
    """Encodes actions into tokens (inline JSON "j…" or a Redis reference "k…") and back."""

    def __init__(self, services: AdapterServices, signer: Signer | None = None) -> None:
        self._stored = services.store(DISCORD_BUTTONS)
        # Any client can send any custom_id: each carries an HMAC over itself and its channel.
        self._signer = signer or Signer.random()

    async def encode(self, action: Action, scope: str) -> str:
        """The signed token for the action in channel `scope` (the id its message is posted in)."""
        token = await self._encode(action)
        return f"{token}.{self._signer.sign(token, scope)}"

    async def decode(self, signed: str, scope: str) -> Action | None:
        """The action, or None when the token is malformed, expired or not signed for `scope`."""
        token, _, signature = signed.rpartition(".")
        if not token or not self._signer.verify(token, scope, signature):
            return None
        return await self._decode(token)

    async def _encode(self, action: Action) -> str:
        raw = json.dumps(
            [action.command, dict(action.args), action.kind, action.text_param, int(action.replace)],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        if len(raw) + 1 <= _TOKEN_MAX:
            return "j" + raw
        # Content-addressed, so the same action under many messages is stored once.
        ref = base64.b32encode(hashlib.sha256(raw.encode()).digest()[:15]).decode().lower()
        await self._stored.put(ref, value=raw)
        return "k" + ref

    async def _decode(self, token: str) -> Action | None:
        if token.startswith("j"):
            raw: str | None = token[1:]
        elif token.startswith("k") and token[1:].isalnum():
            try:
                raw = await self._stored.get(token[1:])
            except StoreUnavailable:
                log.warning("action lookup failed ref=%s", token[1:], exc_info=True)
                return None
        else:
            return None
        if raw is None:
            return None
        try:
            command, args, kind, text_param, replace = json.loads(raw)
        except (ValueError, TypeError):
            return None
        if not (isinstance(command, str) and isinstance(args, dict) and kind in ("command", "prompt")):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in args.items()):
            return None
        return Action("", command, args, kind, str(text_param or ""), bool(replace))


def button_id(index: int, token: str) -> str:
    return f"{BUTTON_PREFIX}{index}:{token}"


def parse_button_id(custom_id: str) -> str | None:
    """The token of one of our buttons, or None for anything else."""
    if not custom_id.startswith(BUTTON_PREFIX):
        return None
    index, sep, token = custom_id[len(BUTTON_PREFIX) :].partition(":")
    return token if sep and index.isdigit() and token else None


async def build_view(codec: ActionCodec, actions: Sequence[Action], scope: str) -> discord.ui.View | None:
    """Buttons for `actions`, or None. Raises StoreUnavailable when a long action cannot be stored."""
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for index, action in enumerate(actions[:25]):
        style = discord.ButtonStyle.primary if action.kind == "prompt" else discord.ButtonStyle.secondary
        token = await codec.encode(action, scope)
        view.add_item(discord.ui.Button(label=button_label(action), style=style, custom_id=button_id(index, token)))
    # Presses are handled statelessly by custom_id in on_interaction; a stopped view is not kept in
    # discord.py's view store, which would otherwise grow by one entry per message sent.
    view.stop()
    return view
