"""Runs `aitrader-relay` (as `python -m adapters.main`) the way a user does: in a folder of its own,
with none of the caller's relay settings leaking in from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Every prefix of a setting the relay reads: a developer's own TELEGRAM_BOT_TOKEN or REDIS_URL
# must not change what a test sees.
SETTING_PREFIXES = (
    "TELEGRAM_",
    "DISCORD_",
    "REDIS_",
    "RELAY_",
    "POLL_",
    "FEED_",
    "AITRADER_",
    "LOG_LEVEL",
    "METRICS_",
    "DRAIN_",
    "DELIVERY_",
    "SHUTDOWN_",
    "PORT",
    "OWNER_IDS",
    "READY_",
    "DYNO",
)


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(SETTING_PREFIXES)}
    base["PYTHONPATH"] = str(REPO)
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "adapters.main", *args],
        check=False,
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,  # a deadline: the commands answer in about a second
        stdin=subprocess.DEVNULL,
    )
