"""Named points where a test can freeze the relay, to kill it there (kill-point tests).

Set RELAY_FAULT_PAUSE to one of POINTS and the process stops making progress when it reaches
that point, after logging a marker line; a test then SIGKILLs it. Unset, this costs one compare.
"""

from __future__ import annotations

import asyncio
import logging
import sys

log = logging.getLogger(__name__)

POINTS = ("after_heartbeat", "after_persist", "after_send", "after_hold_release")
MARKER = "FAULT POINT REACHED"


class FaultPoints:
    def __init__(self, pause_at: str | None = None) -> None:
        self._pause_at = pause_at

    async def reached(self, name: str) -> None:
        if name != self._pause_at:
            return
        # Written straight to stderr as well: the test waits for this exact line.
        print(f"{MARKER}: {name}", file=sys.stderr, flush=True)
        log.warning("fault point reached: %s; pausing until killed", name)
        await asyncio.Event().wait()
