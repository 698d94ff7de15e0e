"""Whether one page of `messages/recent` proves that a lost heartbeat response was recovered.

The server orders both the heartbeat and `recent` by `created_at DESC LIMIT n`, and `created_at`
has one-second resolution on SQLite, so rows that share the page's oldest second (the boundary)
are cut in an order we cannot see: when about 50 rows of one agent share it, the newest ids of
that second can fall off every view. Rows in seconds newer than the boundary are all on the page.

What the relay knows about the lost rows: the last heartbeat it received whole that said
`has_more_messages: false` (the "settled" call) handed out every row unread at that moment, so
every row a later call handed out was created after it - in the same second as, or later than,
any row with an id up to the largest id stored by then (`settled_id`).

Proof of completeness, then: a page that is not full holds every row; or the page holds a row
with id <= settled_id in a second newer than the boundary, so every lost row, being at least
that new, lies in a fully shown second. Anything else is reported as a possible loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from relay.models import Notification

PAGE = 50  # the server's cap on `messages/recent`


@dataclass(frozen=True, slots=True)
class Gap:
    """Where rows may be missing: ids from `low` to `high` (None: unknown that way), created at
    or before `boundary`."""

    low: int | None
    high: int | None
    boundary: datetime | None

    def describe(self) -> str:
        low = str(self.low) if self.low is not None else "?"
        high = str(self.high) if self.high is not None else "?"
        at = f" created at or before {self.boundary.isoformat(sep=' ')}" if self.boundary else ""
        return f"ids {low}-{high}{at}"

    def covers(self, message_id: int) -> bool:
        return (self.low is None or message_id >= self.low) and (self.high is None or message_id <= self.high)


def gap_after_loss(rows: Sequence[Notification], settled_id: int | None, page: int = PAGE) -> Gap | None:
    """None when `rows` (one page of the unfiltered view, read after the loss) prove that every
    row of the lost response is on it or was stored before; else the range that may be missing."""
    if len(rows) < page:
        return None
    low = settled_id + 1 if settled_id is not None else None
    stamps = [n.created_at for n in rows]
    if any(s is None for s in stamps):
        return Gap(low, None, None)  # no timestamps to reason with
    dated = [(n.message_id, s) for n, s in zip(rows, stamps, strict=True) if s is not None]
    boundary = min(s for _, s in dated)
    if settled_id is not None and any(i <= settled_id and s > boundary for i, s in dated):
        return None
    # Ids grow with insertion time: rows of the boundary second and older have smaller ids than
    # any row of a newer second.
    newer = [i for i, s in dated if s > boundary]
    return Gap(low, min(newer) - 1 if newer else None, boundary)
