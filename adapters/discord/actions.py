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

log = logging.getLogger(__name__)

CUSTOM_ID_MAX = 100
BUTTON_PREFIX = "rb"  # "rb<index>:<token>": a button under a relayed message
PROMPT_PREFIX = "rp:"  # "rp:<token>": the modal that asks for a prompt action's text
LINK_MODAL_ID = "rl"  # the /link modal
# Longest prefix is "rb24:"; the token must fit after it.
_TOKEN_MAX = CUSTOM_ID_MAX - len("rb24:")


class ActionCodec:
    """Encodes actions into tokens (inline JSON "j…" or a Redis reference "k…") and back."""

    def __init__(self, services: AdapterServices) -> None:
        self._stored = services.store(DISCORD_BUTTONS)

    async def encode(self, action: Action) -> str:
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

    async def decode(self, token: str) -> Action | None:
        """The action, or None when the token is malformed or its stored copy expired."""
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


async def build_view(codec: ActionCodec, actions: Sequence[Action]) -> discord.ui.View | None:
    """Buttons for `actions`, or None. Raises StoreUnavailable when a long action cannot be stored."""
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for index, action in enumerate(actions[:25]):
        style = discord.ButtonStyle.primary if action.kind == "prompt" else discord.ButtonStyle.secondary
        token = await codec.encode(action)
        view.add_item(discord.ui.Button(label=button_label(action), style=style, custom_id=button_id(index, token)))
    # Presses are handled statelessly by custom_id in on_interaction; a stopped view is not kept in
    # discord.py's view store, which would otherwise grow by one entry per message sent.
    view.stop()
    return view
