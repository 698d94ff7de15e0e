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
HANG_SECONDS = 60  # only a hung process takes this long, even on a loaded machine


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
        await self._output_closed()

    async def terminate(self) -> float:
        """SIGTERM; returns the seconds until the process exited, for reports. Whether the stop
        was graceful is what the caller asserts (exit status 0, "relay stopped" logged): the
        relay bounds its own stop by SHUTDOWN_GRACE_SECONDS, and a loaded machine stretches the
        wall-clock time around it. The deadline here only turns a hang into a clear failure."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout=HANG_SECONDS)
        except TimeoutError:
            raise AssertionError(f"no exit {HANG_SECONDS}s after SIGTERM; stderr tail={self.err[-1500:]!r}") from None
        seconds = time.monotonic() - started
        await self._output_closed()
        assert code == 0, self.err[-1500:]
        assert "relay stopped" in self.err, self.err[-1500:]
        return seconds

    async def _output_closed(self) -> None:
        """Read the output to its end. The pipes close once no process holds them: a child the
        relay started (it inherits them) that outlives the relay keeps them open."""
        _, open_ = await asyncio.wait(self._readers, timeout=HANG_SECONDS)
        for reader in open_:
            reader.cancel()
        if open_:
            raise AssertionError("the relay exited but its output stayed open: a child process outlived it")


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


class PlatformRelayProcess:
    """`python -m adapters.main run` serving a chat platform (no console), as an async context
    manager: its stderr is collected, and leaving the block kills whatever still runs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.err = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PlatformRelayProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.main",
            "run",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(ROOT),
        )
        self._reader = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(4096):
            self.err += chunk.decode(errors="replace")

    async def wait_for(self, text: str, count: int = 1, timeout: float = HANG_SECONDS) -> None:
        """Until `text` has been logged `count` times; fails at once if the process exits first."""
        deadline = time.monotonic() + timeout
        while self.err.count(text) < count:
            assert self.proc is not None
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"waiting for {count} x {text!r}; stderr:\n{self.err[-3000:]}")
            await asyncio.sleep(0.05)

    async def exit_code(self, timeout: float = HANG_SECONDS) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def terminate(self) -> int:
        """SIGTERM, then the exit status; the deadline only turns a hang into a failure."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.exit_code()

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader
