"""The simulator's market side over HTTP, as upstream answers it (routes_trading.py,
routes_signals.py realtime, market_intel.py): shapes, auth, 404s, rate limit, refusals, copying."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from aitrader_sim import SimulatorServer, World
from aitrader_sim.demo import seed_demo, step_activity


class Clock:
    def __init__(self) -> None:
        self.now = 1_767_261_600.0  # 2026-01-01 10:00 UTC, a Thursday: 05:00 in New York

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[tuple[httpx.AsyncClient, World]]:
    world = World(seed=3, clock=clock)
    async with SimulatorServer(world) as sim, httpx.AsyncClient(base_url=sim.url) as http:
        yield http, world


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_positions_summary_and_agent_positions(client: tuple[httpx.AsyncClient, World]) -> None:
    http, world = client
    seed = seed_demo(world)
    mine = (await http.get("/api/positions", headers=auth(seed.you.token))).json()
    assert set(mine) == {"positions", "cash"}
    sources = {p["symbol"]: p["source"] for p in mine["positions"]}
    assert sources["BTC"] == f"copied:{seed.traders['alice'].id}" and sources["AAPL"] == "self"
    poly = next(p for p in mine["positions"] if p["market"] == "polymarket")
    assert poly["display_title"].endswith("[Yes]") and poly["token_id"]
    assert (await http.get("/api/positions")).status_code == 401
    summary = (await http.get(f"/api/agents/{seed.you.id}/summary")).json()
    assert set(summary) == {"agent_id", "agent_name", "cash", "position_count", "recent_activity_at"}
    missing = await http.get("/api/agents/999/summary")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Agent not found"})
    unknown = (await http.get("/api/agents/999/positions")).json()  # no 404 upstream here
    assert (unknown["agent_name"], unknown["positions"], unknown["cash"]) == ("Unknown", [], 0)
    assert (await http.get("/api/agents/abc/summary")).status_code == 422


async def test_price_needs_a_token_allows_one_call_a_second_and_knows_only_held_prices(
    client: tuple[httpx.AsyncClient, World], clock: Clock
) -> None:
    http, world = client
    seed = seed_demo(world)
    assert (await http.get("/api/price", params={"symbol": "AAPL"})).status_code == 401
    ok = await http.get("/api/price", params={"symbol": "aapl"}, headers=auth(seed.you.token))
    assert ok.json() == {"symbol": "AAPL", "market": "us-stock", "token_id": None, "outcome": None, "price": 212.4}
    again = await http.get("/api/price", params={"symbol": "AAPL"}, headers=auth(seed.you.token))
    assert again.status_code == 429 and "1 second" in again.json()["detail"]
    clock.now += 1
    nope = await http.get("/api/price", params={"symbol": "NOPE"}, headers=auth(seed.you.token))
    assert (nope.status_code, nope.json()) == (404, {"detail": "Price not available"})


async def test_realtime_refusals_then_a_trade_copied_to_followers(
    client: tuple[httpx.AsyncClient, World], clock: Clock
) -> None:
    http, world = client
    seed = seed_demo(world)
    alice = seed.traders["alice"]
    body = {
        "market": "us-stock",
        "action": "buy",
        "symbol": "AAPL",
        "price": 212.0,
        "quantity": 1,
        "executed_at": "now",
    }
    closed = await http.post("/api/signals/realtime", json=body, headers=auth(alice.token))
    assert closed.status_code == 400 and closed.json()["detail"].startswith("US market is closed.")
    clock.now += 6 * 3600  # 11:00 in New York
    rich = await http.post("/api/signals/realtime", json={**body, "quantity": 10_000}, headers=auth(alice.token))
    assert rich.status_code == 400 and rich.json()["detail"].startswith("Insufficient cash. Required: $")
    missing = await http.post("/api/signals/realtime", json={"market": "crypto"}, headers=auth(alice.token))
    assert missing.status_code == 422
    you_before = {p.symbol for p in world.positions.values() if p.agent_id == seed.you.id}
    done = (await http.post("/api/signals/realtime", json=body, headers=auth(alice.token))).json()
    assert set(done) >= {"success", "signal_id", "price", "follower_count", "points_earned"}
    assert done["follower_count"] == 1  # "you" follows alice
    copied = [
        s for s in world.signals.values() if s.agent_id == seed.you.id and (s.content or "").startswith("[Copied")
    ]
    assert len(copied) == 1 and you_before <= {p.symbol for p in world.positions.values() if p.agent_id == seed.you.id}


async def test_leaderboard_trending_and_intel_shapes(client: tuple[httpx.AsyncClient, World]) -> None:
    http, world = client
    empty = (await http.get("/api/market-intel/overview")).json()
    assert empty["available"] is False  # no worker snapshot yet, as upstream
    seed_demo(world)
    board = (await http.get("/api/profit/history", params={"days": 7, "limit": 2})).json()
    assert set(board) == {"top_agents", "total", "limit", "offset", "has_more"} and board["has_more"] is True
    assert all(len(a["history"]) >= 2 for a in board["top_agents"])
    trending = (await http.get("/api/trending")).json()["trending"]
    assert trending[0]["symbol"] == "BTC" and trending[0]["holder_count"] == 2
    for view in ("overview", "macro-signals", "etf-flows", "news", "stocks/NVDA/latest", "stocks/featured"):
        assert (await http.get(f"/api/market-intel/{view}")).json()["available"] is True, view
    history = (await http.get("/api/market-intel/stocks/NVDA/history", params={"limit": 30})).json()["history"]
    assert len(history) == 30 and history[0]["created_at"] > history[-1]["created_at"]
    assert (await http.get("/api/market-intel/nothing")).json() == {"message": "AI-Trader API"}  # the catch-all


def test_demo_activity_includes_trades_copied_into_your_book() -> None:
    world = World(seed=1)
    seed = seed_demo(world)
    rng = random.Random(4)
    before = len([s for s in world.signals.values() if s.message_type == "operation"])
    names = [step_activity(world, seed.you.id, rng) for _ in range(60)]
    assert "trade" in names
    assert len([s for s in world.signals.values() if s.message_type == "operation"]) > before
