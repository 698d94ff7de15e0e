"""Telegram unreachable at start: retried with capped backoff, one log line per attempt, and a
SIGTERM still stops it; a token Telegram rejects is one line and exit status 2.

The relay runs as a real process (`python -m adapters.main run`) against a loopback port that
refuses connections, a gate answering 502 in front of the fake Bot API, or the fake itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.embedded_server import EmbeddedServer
from aitrader_sim.server import SimulatorServer
from platform_fakes.telegram_api import FakeTelegram
from tests.fakes.relay_process import PlatformRelayProcess

ROOT = Path(__file__).resolve().parents[2]


def relay_env(sim: SimulatorServer, redis_url: str, prefix: str, secret: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "PORT"))}
    env.update(
        PYTHONPATH=str(ROOT),
        AITRADER_BASE_URL=sim.url,
        REDIS_URL=redis_url,
        RELAY_KEY_PREFIX=prefix,
        RELAY_SECRET_KEY=secret,
        **extra,
    )
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


UNREACHABLE = "telegram: Bot API unreachable"


async def test_refused_connections_are_retried_one_line_per_attempt_and_sigterm_stops_it(
    sim: SimulatorServer, redis_url: str, prefix: str, secret_key: str
) -> None:
    env = relay_env(
        sim,
        redis_url,
        prefix,
        secret_key,
        TELEGRAM_BOT_TOKEN="1234567:FAKEtokenFAKEtokenFAKEtokenFAKEtoken",
        TELEGRAM_API_BASE=f"http://127.0.0.1:{closed_port()}",
    )
    async with PlatformRelayProcess(env) as relay:
        await relay.wait_for(UNREACHABLE, count=3)
        assert relay.proc is not None
        relay.proc.send_signal(signal.SIGTERM)
        code = await relay.exit_code()
    assert code == 0, relay.err
    assert "Traceback" not in relay.err
    attempts = [line for line in relay.err.splitlines() if UNREACHABLE in line]
    assert [f"attempt {n}," in line for n, line in enumerate(attempts, 1)] == [True] * len(attempts)
    # Every line of the output is a log line of its own: nothing multi-line came with the attempts.
    assert all(line[:4].isdigit() for line in relay.err.splitlines() if line.strip()), relay.err
    waits = [float(line.rsplit("retrying in ", 1)[1].split(" s")[0]) for line in attempts]
    assert all(0 < w <= 60 for w in waits)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as telegram:
        yield telegram


class Gate:
    """In front of the fake Bot API: answers every call with 502 (as Telegram's front does during
    an outage) until opened, then passes calls through."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.open = False
        self.refused = 0
        self.port = 0
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=30)

    async def _any(self, request: Request) -> Response:
        if not self.open:
            self.refused += 1
            # Bot API error shape (https://core.telegram.org/bots/api#making-requests).
            return JSONResponse({"ok": False, "error_code": 502, "description": "Bad Gateway"}, status_code=502)
        answer = await self._client.request(
            request.method,
            self.upstream + request.url.path,
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        return Response(answer.content, answer.status_code, media_type="application/json")

    async def __aenter__(self) -> Gate:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._any, methods=["GET", "POST"])])
        self._server = EmbeddedServer(uvicorn.Config(app, lifespan="off", access_log=False, log_config=None))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
        await self._client.aclose()


async def test_5xx_at_start_is_retried_until_telegram_answers_then_the_relay_runs(
    fake: FakeTelegram, sim: SimulatorServer, redis_url: str, prefix: str, secret_key: str
) -> None:
    async with Gate(fake.api_base) as gate:
        env = relay_env(
            sim,
            redis_url,
            prefix,
            secret_key,
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=f"http://127.0.0.1:{gate.port}",
        )
        async with PlatformRelayProcess(env) as relay:
            await relay.wait_for(UNREACHABLE, count=2)
            assert gate.refused >= 2
            gate.open = True
            await relay.wait_for("Bot API reachable again")
            await relay.wait_for("relay started")
            assert relay.proc is not None
            relay.proc.send_signal(signal.SIGTERM)
            code = await relay.exit_code()
    assert code == 0 and "Traceback" not in relay.err, relay.err
    assert "NetworkError" in relay.err  # PTB's class for a 5xx answer, named in the attempt line
    assert [c.method for c in fake.calls if c.method == "getMe"]  # it got through in the end


async def test_a_rejected_token_is_one_line_and_exit_2(
    fake: FakeTelegram, sim: SimulatorServer, redis_url: str, prefix: str, secret_key: str
) -> None:
    env = relay_env(
        sim,
        redis_url,
        prefix,
        secret_key,
        TELEGRAM_BOT_TOKEN="7654321:WRONGtokenWRONGtokenWRONGtokenWRONG",
        TELEGRAM_API_BASE=fake.api_base,
    )
    async with PlatformRelayProcess(env) as relay:
        code = await relay.exit_code()
    assert code == 2, relay.err
    errors = [line for line in relay.err.splitlines() if "configuration error" in line]
    assert errors == ["configuration error: TELEGRAM_BOT_TOKEN: rejected by Telegram (401)"], relay.err
    # Nothing from the start path but that line. (A scheduled job that was mid-flight when the
    # failed start stopped everything may still log its own error: a shutdown race outside start-up.)
    before_stop = relay.err.split("relay stopped")[0]
    assert "Traceback" not in before_stop, before_stop
    assert UNREACHABLE not in relay.err  # not retried: waiting cannot fix a wrong token
