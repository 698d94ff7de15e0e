"""The two timestamp forms the real server emits, computed from an epoch float.

`db_time` is what DB defaults give message, task, reply and subscription rows;
`iso_z` is what the app itself writes for signals and `server_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

TimestampStyle = Literal["sqlite", "postgres"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_z(ts: float) -> str:
    """ISO 8601 UTC with microseconds and a Z, always with the fraction."""
    return (_EPOCH + timedelta(microseconds=int(ts * 1_000_000))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def db_time(ts: float, style: TimestampStyle = "sqlite") -> str:
    """SQLite's one-second "YYYY-MM-DD HH:MM:SS" (UTC), or the Postgres rewrite (docs/upstream.md §1)."""
    if style == "postgres":
        return iso_z(ts)
    return (_EPOCH + timedelta(seconds=int(ts))).strftime("%Y-%m-%d %H:%M:%S")
