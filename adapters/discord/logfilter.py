"""Keeps what users type into Discord modals out of discord.py's DEBUG gateway log.

discord.py logs every gateway event at DEBUG before dispatching it, and a modal submission
carries the typed values: for /link, the agent token, which reaches no redactor in time. This
filter masks those values in that one log record. It must not drop or change any other record.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, TypeGuard

GATEWAY_LOGGER = "discord.gateway"
MASK = "***"
_MODAL_SUBMIT = 5


class ModalValuesFilter(logging.Filter):
    """Masks `value`/`values` of modal-submit INTERACTION_CREATE events in log arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_modal_submit(a) for a in args):
            record.args = tuple(_masked(a) if _is_modal_submit(a) else a for a in args)
        return True


def _is_modal_submit(event: object) -> TypeGuard[dict[str, Any]]:
    if not isinstance(event, dict) or event.get("t") != "INTERACTION_CREATE":
        return False
    data = event.get("d")
    return isinstance(data, dict) and data.get("type") == _MODAL_SUBMIT


def _masked(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    stack: list[Any] = [event["d"].get("data")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("value", "values"):
                if key in node:
                    node[key] = MASK
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return event
