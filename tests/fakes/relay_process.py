"""A real relay process (`aitrader-relay run --console`) that tests start, kill and restart.

The console chat is the sink: what the relay delivers appears on the process's stdout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class RelayProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.out = ""
        self.err = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.main",
            "run",
            "--console",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(ROOT),
        )
        self._readers = [
            asyncio.create_task(self._pump(self.proc.stdout, "out")),
            asyncio.create_task(self._pump(self.proc.stderr, "err")),
        ]

    async def _pump(self, stream: asyncio.StreamReader | None, name: str) -> None:
        assert stream is not None
        while chunk := await stream.read(4096):
            setattr(self, name, getattr(self, name) + chunk.decode(errors="replace"))

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; stdout tail={self.out[-800:]!r} stderr tail={self.err[-1500:]!r}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await asyncio.gather(*self._readers)

    async def terminate(self) -> float:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout=15)
        await asyncio.gather(*self._readers)
        assert code == 0, self.err[-1500:]
        return time.monotonic() - started


def relay_env(sim_url: str, redis_url: str, prefix: str, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_"))}
    env.update(
        AITRADER_BASE_URL=sim_url,
        REDIS_URL=redis_url,
        RELAY_KEY_PREFIX=prefix,
        RELAY_SECRET_KEY=secret,
        POLL_MIN_SECONDS="1",
        POLL_MAX_SECONDS="2",
        LOG_LEVEL="INFO",
        AITRADER_TIMEOUT_SECONDS="3",
    )
    env.update(extra)
    return env
