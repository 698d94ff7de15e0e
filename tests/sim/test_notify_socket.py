"""The simulator's WebSocket `/ws/notify/{id}` behaves as upstream's (aitrader_sim/notify.py cites
the server code): token-checked handshake, `{type, content, data}` frames and nothing else, one
socket per agent id (a newer one replaces the older; either closing drops the entry), and the
drop/flood fault knobs. Real websockets clients against a SimulatorServer on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aitrader_sim import SimulatorServer, World
from aitrader_sim.notify import DROP_CODE, NotifySockets

DEADLINE = 30.0  # a deadline for conditions we wait for, never a wait in itself


@pytest.fixture
def world() -> World:
    return World(seed=3)


@pytest.fixture
async def sim(world: World) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(world) as server:
        yield server


def ws_url(sim: SimulatorServer, client_id: object, token: str | None) -> str:
    base = sim.url.replace("http://", "ws://")
    return f"{base}/ws/notify/{client_id}" + (f"?token={token}" if token is not None else "")


def registry(sim: SimulatorServer) -> NotifySockets:
    assert sim.notify is not None
    return sim.notify


async def until(condition: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def frame(ws: ClientConnection) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), DEADLINE)
    assert isinstance(raw, str)  # text frames, as send_json sends
    decoded = json.loads(raw)
    assert isinstance(decoded, dict)
    return decoded


async def nothing_pending(ws: ClientConnection, sim: SimulatorServer) -> None:
    """Nothing arrives on this socket now (the counters in NotifySockets.stats are the real check)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.05)


async def test_push_is_type_content_data_only_for_every_recorded_notification(
    sim: SimulatorServer, world: World
) -> None:
    alice, bob = world.create_agent("alice"), world.create_agent("bob")
    async with connect(ws_url(sim, alice.id, alice.token), proxy=None) as ws:
        await until(lambda: alice.id in registry(sim).connections, "registration")
        async with httpx.AsyncClient(base_url=sim.url) as http:
            posted = await http.post(
                "/api/claw/messages",
                headers={"Authorization": f"Bearer {bob.token}"},
                json={"agent_id": alice.id, "type": "custom_note", "content": "hi", "data": {}},
            )
            assert posted.status_code == 200
        # `data` as given: {} stays {} in the push though the stored row says null.
        assert await frame(ws) == {"type": "custom_note", "content": "hi", "data": {}}
        world.follow(bob.id, alice.id)  # push_agent_message: new_follower to the leader
        pushed = await frame(ws)
        assert set(pushed) == {"type", "content", "data"}  # no id, no created_at, no agent_id
        assert pushed["type"] == "new_follower"
        assert pushed["data"]["follower_id"] == bob.id
        world.create_task(alice.id, "review")  # tasks are never pushed
        world.push_message(bob.id, "marker", "for bob")  # and nothing of bob's reaches alice
        await nothing_pending(ws, sim)
    # Every row still waits for the heartbeat: a push marks nothing read.
    assert len(world.unread_ids(alice.id)) == 2


@pytest.mark.parametrize("case", ["no token", "other agent's token", "not an integer"])
async def test_handshake_is_refused_without_the_agent_s_own_token(
    case: str, sim: SimulatorServer, world: World
) -> None:
    alice, bob = world.create_agent("alice"), world.create_agent("bob")
    # A bad token: close(1008) before accept, which uvicorn answers with 403. A non-integer id:
    # the handler returns before accept, which uvicorn answers with 500.
    url, status = {
        "no token": (ws_url(sim, alice.id, None), 403),
        "other agent's token": (ws_url(sim, alice.id, bob.token), 403),
        "not an integer": (ws_url(sim, "agent_alice", alice.token), 500),
    }[case]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, proxy=None):
            pass
    assert refused.value.response.status_code == status
    assert registry(sim).connections == {}


async def test_one_socket_per_agent_newer_replaces_older_and_either_closing_drops_the_entry(
    sim: SimulatorServer, world: World
) -> None:
    alice = world.create_agent("alice")
    url = ws_url(sim, alice.id, alice.token)
    reg = registry(sim)
    async with connect(url, proxy=None) as old:
        await until(lambda: reg.stats.accepted == 1, "first socket")
        async with connect(url, proxy=None) as new:
            await until(lambda: reg.stats.accepted == 2, "second socket")
            world.push_message(alice.id, "custom_note", "one")
            assert (await frame(new))["content"] == "one"
            assert reg.stats.pushed == 1  # to the newer socket only
            await nothing_pending(old, sim)  # still open, but deaf
        # The newer socket closed: the entry is gone, so the old one hears nothing either.
        await until(lambda: alice.id not in reg.connections, "entry dropped")
        world.push_message(alice.id, "custom_note", "two")
        await nothing_pending(old, sim)
        assert reg.stats.unrouted == 1
    async with connect(url, proxy=None) as first, connect(url, proxy=None) as second:
        await until(lambda: reg.stats.accepted == 4, "two more sockets")
        await first.close()  # the OLDER one closes ...
        await until(lambda: alice.id not in reg.connections, "entry dropped by the older socket")
        world.push_message(alice.id, "custom_note", "three")
        assert reg.stats.unrouted == 2
        await nothing_pending(second, sim)  # ... and the newer one is silenced


async def test_fault_knobs_drop_and_flood(sim: SimulatorServer, world: World) -> None:
    alice = world.create_agent("alice")
    url = ws_url(sim, alice.id, alice.token)
    reg = registry(sim)
    world.faults.ws_flood = 3
    async with connect(url, proxy=None) as ws:
        await until(lambda: alice.id in reg.connections, "registration")
        world.push_message(alice.id, "custom_note", "flooded")
        assert [(await frame(ws))["content"] for _ in range(4)] == ["flooded"] * 4
    world.faults.update({"ws_flood": 0, "ws_drop_probability": 1.0})
    async with connect(url, proxy=None) as ws:
        await until(lambda: alice.id in reg.connections, "registration")
        world.push_message(alice.id, "custom_note", "lost push")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), DEADLINE)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == DROP_CODE
    assert "lost push" in {world.messages[i].content for i in world.unread_ids(alice.id)}
    world.faults.reset()
    async with connect(url, proxy=None) as ws, httpx.AsyncClient(base_url=sim.url) as http:
        await until(lambda: alice.id in reg.connections, "registration")
        assert (await http.post("/_sim/ws/drop", json={})).json() == {"dropped": 1}
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), DEADLINE)
        assert (await http.post("/_sim/faults", json={"ws_flood": "x"})).status_code == 400


def test_fault_knobs_are_checked() -> None:
    world = World()
    with pytest.raises(ValueError, match="ws_flood"):
        world.faults.update({"ws_flood": 1.5})
    with pytest.raises(ValueError, match="ws_drop_probability"):
        world.faults.update({"ws_drop_probability": "often"})
