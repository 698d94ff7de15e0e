"""The simulator must reproduce upstream behaviour a relay can observe (docs/upstream.md §3–§11).

Every test talks real HTTP to a SimulatorServer on 127.0.0.1 and checks something a
plausible-but-wrong simulator (non-destructive heartbeat, newest-id ordering, reply text
in payloads, lenient auth...) would get wrong.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aitrader_sim import SimulatorServer, World

REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(seed=7, clock=clock)


@pytest.fixture
async def sim(world: World) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(world) as server:
        yield server


@pytest.fixture
async def http(sim: SimulatorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5.0) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def heartbeat(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    resp = await http.post("/api/claw/agents/heartbeat", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# ---- heartbeat ---------------------------------------------------------------------------


async def test_heartbeat_is_destructive_in_batches_of_50(http: httpx.AsyncClient, clock: FakeClock) -> None:
    created = (await http.post("/_sim/agents", json={"name": "relay-owner"})).json()
    ids = (
        await http.post(
            "/_sim/messages",
            json={
                "agent_id": created["agent_id"],
                "type": "price_alert",
                "content": "m{i}",
                "count": 55,
            },
        )
    ).json()["ids"]
    assert len(ids) == 55 and ids == sorted(ids)

    first = await heartbeat(http, created["token"])
    assert (first["message_count"], first["unread_count"], first["remaining_unread_count"]) == (50, 50, 5)
    assert first["has_more_messages"] is True
    assert all(m["read"] == 0 for m in first["messages"])  # selected before the UPDATE
    assert set(first["messages"][0]) == {"id", "agent_id", "type", "content", "data", "read", "created_at"}
    second = await heartbeat(http, created["token"])
    assert (second["message_count"], second["remaining_unread_count"], second["has_more_messages"]) == (5, 0, False)
    third = await heartbeat(http, created["token"])
    assert third["messages"] == [] and third["remaining_unread_count"] == 0

    got = [m["id"] for m in first["messages"]] + [m["id"] for m in second["messages"]]
    assert sorted(got) == ids and len(set(got)) == 55
    assert first["recommended_poll_interval_seconds"] == 30
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["server_time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first["messages"][0]["created_at"])


async def test_newest_second_first_with_ascending_ids_inside_a_second(
    http: httpx.AsyncClient, world: World, clock: FakeClock
) -> None:
    agent = world.create_agent("ties")
    older = world.push_messages(agent.id, 30, content_fmt="old {i}")
    clock.advance(1)
    newer = world.push_messages(agent.id, 40, content_fmt="new {i}")

    # recent is read-only, so it can show the ordering before the heartbeat consumes it.
    recent = (await http.get("/api/claw/messages/recent?limit=50", headers=bearer(agent.token))).json()
    expected_first_batch = newer + older[:10]  # newest second first; the cut keeps the LOWEST old ids
    assert [m["id"] for m in recent["messages"]] == expected_first_batch

    batch = await heartbeat(http, agent.token)
    assert [m["id"] for m in batch["messages"]] == expected_first_batch
    rest = await heartbeat(http, agent.token)
    assert [m["id"] for m in rest["messages"]] == older[10:]


async def test_same_second_cut_keeps_lowest_ids(http: httpx.AsyncClient, world: World) -> None:
    agent = world.create_agent("burst")
    ids = world.push_messages(agent.id, 60)  # all in one frozen second
    batch = await heartbeat(http, agent.token)
    assert [m["id"] for m in batch["messages"]] == ids[:50]
    assert [m["id"] for m in (await heartbeat(http, agent.token))["messages"]] == ids[50:]


async def test_tasks_come_back_every_poll_and_has_more_tasks_never_clears(
    http: httpx.AsyncClient, world: World, clock: FakeClock
) -> None:
    agent = world.create_agent("tasked")
    other = world.create_agent("other")
    world.create_task(other.id, "noise")
    task_ids = []
    for n in range(12):
        task_ids.append(world.create_task(agent.id, "analyze_symbol", {"symbol": f"S{n}"}))
        clock.advance(1)
    for _ in range(3):
        hb = await heartbeat(http, agent.token)
        assert [t["id"] for t in hb["tasks"]] == task_ids[:10]  # oldest first, never consumed
        assert (hb["task_count"], hb["remaining_task_count"], hb["has_more_tasks"]) == (10, 2, True)
    task = hb["tasks"][0]
    assert task["status"] == "pending" and task["result_data"] is None
    assert task["input_data"] == {"symbol": "S0"}
    assert set(task) == {"id", "agent_id", "type", "status", "input_data", "result_data", "created_at", "updated_at"}


async def test_recent_is_read_only_and_filters_by_category(http: httpx.AsyncClient, world: World) -> None:
    agent = world.create_agent("reader")
    follow = world.push_message(agent.id, "new_follower", "x started following you")
    disc = world.push_message(agent.id, "discussion_reply", "y replied")
    strat = world.push_message(agent.id, "strategy_mention", "z mentioned you")
    await heartbeat(http, agent.token)  # marks everything read

    for _ in range(2):
        resp = await http.get("/api/claw/messages/recent", headers=bearer(agent.token))
        rows = resp.json()["messages"]
        assert sorted(m["id"] for m in rows) == [follow, disc, strat]
        assert all(m["read"] == 1 for m in rows)
    only = await http.get("/api/claw/messages/recent?category=discussion", headers=bearer(agent.token))
    assert [m["id"] for m in only.json()["messages"]] == [disc]
    junk = await http.get("/api/claw/messages/recent?category=nonsense", headers=bearer(agent.token))
    assert len(junk.json()["messages"]) == 3  # unknown category means all types
    assert (await heartbeat(http, agent.token))["messages"] == []

    world.push_messages(agent.id, 70)
    capped = await http.get("/api/claw/messages/recent?limit=500", headers=bearer(agent.token))
    assert len(capped.json()["messages"]) == 50
    bad = await http.get("/api/claw/messages/recent?limit=abc", headers=bearer(agent.token))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "limit"]
    assert bad.json()["detail"][0]["type"] == "int_parsing"


# ---- auth ----------------------------------------------------------------------------------


async def test_only_the_authorization_header_counts(http: httpx.AsyncClient, world: World) -> None:
    agent = world.create_agent("auth")
    assert len(agent.token) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", agent.token)
    url = "/api/claw/agents/heartbeat"
    claw = await http.post(url, headers={"X-Claw-Token": agent.token})
    assert claw.status_code == 401 and claw.json() == {"detail": "Invalid token"}
    lower = await http.post(url, headers={"Authorization": f"bearer {agent.token}"})
    assert lower.status_code == 401
    assert (await http.post(url)).status_code == 401
    assert (await http.post(url, headers=bearer(agent.token))).status_code == 200
    bare = await http.post(url, headers={"Authorization": agent.token})
    assert bare.status_code == 200 and bare.json()["agent_id"] == agent.id


async def test_rotation_kills_the_old_token(http: httpx.AsyncClient, world: World) -> None:
    agent = world.create_agent("rotor", password="hunter22")
    old = agent.token
    me = (await http.get("/api/claw/agents/me", headers=bearer(old))).json()
    assert me["token"] == old and me["id"] == agent.id and "reputation_score" in me

    login = await http.post("/api/claw/agents/login", json={"name": "rotor", "password": "hunter22"})
    new = login.json()["token"]
    assert new != old and login.json()["agent_id"] == agent.id
    assert (await http.post("/api/claw/agents/heartbeat", headers=bearer(old))).status_code == 401
    assert (await http.post("/api/claw/agents/heartbeat", headers=bearer(new))).status_code == 200
    wrong = await http.post("/api/claw/agents/login", json={"name": "rotor", "password": "nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid credentials"})
    email_form = await http.post("/api/claw/agents/login", json={"email": "a@b.c", "password": "x"})
    assert email_form.status_code == 422

    newest = (await http.post("/_sim/rotate", json={"agent_id": agent.id})).json()["token"]
    assert (await http.get("/api/claw/agents/me", headers=bearer(new))).status_code == 401
    assert (await http.get("/api/claw/agents/me", headers=bearer(newest))).status_code == 200


# ---- routing quirks ------------------------------------------------------------------------


async def test_catch_all_answers_unknown_gets_and_405s_unknown_posts(http: httpx.AsyncClient, world: World) -> None:
    agent = world.create_agent("lost")
    world.push_message(agent.id, "price_alert", "keep me unread")
    for path in ("/api/signals/my/discussions", "/api/claw/agents/heartbeat", "/no/such/thing"):
        resp = await http.get(path, headers=bearer(agent.token))
        assert (resp.status_code, resp.json()) == (200, {"message": "AI-Trader API"}), path
    assert len(world.unread_ids(agent.id)) == 1  # the GET on the heartbeat URL consumed nothing

    post = await http.post("/api/positions/close", headers=bearer(agent.token), json={})
    assert (post.status_code, post.json()) == (405, {"detail": "Method Not Allowed"})
    my = await http.get("/api/signals/my")
    assert my.status_code == 422 and my.json()["detail"][0]["loc"] == ["path", "agent_id"]

    routes = [(r.method, r.route) for r in world.requests]
    assert ("GET", "catch-all") in routes and ("POST", "catch-all") in routes
    assert ("GET", "/api/signals/{agent_id}") in routes


async def test_messages_route_lets_anyone_write_any_type(http: httpx.AsyncClient, world: World) -> None:
    sender, victim = world.create_agent("mallory"), world.create_agent("victim")
    resp = await http.post(
        "/api/claw/messages",
        headers=bearer(sender.token),
        json={
            "agent_id": victim.id,
            "type": "strategy_reply",
            "content": "fake @everyone",
            "data": {},
        },
    )
    assert resp.json()["success"] is True
    row = (await heartbeat(http, victim.token))["messages"][0]
    assert (row["id"], row["type"], row["data"]) == (resp.json()["message_id"], "strategy_reply", None)
    ghost = await http.post(
        "/api/claw/messages", headers=bearer(sender.token), json={"agent_id": 9999, "type": "x", "content": "y"}
    )
    assert ghost.status_code == 200
    missing = await http.post("/api/claw/messages", headers=bearer(sender.token), json={"agent_id": 1})
    assert missing.status_code == 422
    assert {tuple(e["loc"]) for e in missing.json()["detail"]} == {("body", "type"), ("body", "content")}


# ---- replies, mentions, accepts, follows -----------------------------------------------------


async def test_reply_rate_limits_use_the_exact_upstream_texts(
    http: httpx.AsyncClient, world: World, clock: FakeClock
) -> None:
    author, replier = world.create_agent("author"), world.create_agent("chatty")
    sid = world.create_signal(author.id, "discussion", "us-stock", "Topic", "body", "AAPL")
    h = bearer(replier.token)
    assert (await http.post("/api/signals/reply", headers=h, json={"signal_id": sid, "content": "one"})).json() == {
        "success": True,
        "points_earned": 2,
    }
    clock.advance(5)
    cool = await http.post("/api/signals/reply", headers=h, json={"signal_id": sid, "content": "two"})
    assert (cool.status_code, cool.json()) == (429, {"detail": "Too many reply posts. Try again in 15s."})
    clock.advance(16)
    dup = await http.post("/api/signals/reply", headers=h, json={"signal_id": sid, "content": "  ONE "})
    assert dup.json() == {"detail": "Duplicate reply content detected. Please wait before reposting."}
    for n in range(9):
        clock.advance(21)
        ok = await http.post("/api/signals/reply", headers=h, json={"signal_id": sid, "content": f"r{n}"})
        assert ok.status_code == 200, ok.text
    clock.advance(21)
    full = await http.post("/api/signals/reply", headers=h, json={"signal_id": sid, "content": "eleven"})
    assert full.json() == {"detail": "Reply rate limit reached. Please slow down."}
    clock.advance(400)
    missing = await http.post("/api/signals/reply", headers=h, json={"signal_id": 424242, "content": "x"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Signal not found"})
    again = await http.post("/api/signals/reply", headers=h, json={"signal_id": sid, "content": "y"})
    assert again.status_code == 429  # even the 404'd reply started the cooldown


async def test_reply_notifications_carry_no_reply_text(http: httpx.AsyncClient, world: World) -> None:
    author, first, second = (world.create_agent(n) for n in ("writer", "early", "late"))
    sid = world.create_signal(author.id, "strategy", "crypto", "ETH swing", "plan")
    world.add_reply(sid, first.id, "first words")
    for a in (author, first):
        await heartbeat(http, a.token)
    secret = "SECRET-REPLY-TEXT"
    resp = await http.post(
        "/api/signals/reply", headers=bearer(second.token), json={"signal_id": sid, "content": secret}
    )
    assert "reply_id" not in resp.json()

    to_author = (await heartbeat(http, author.token))["messages"]
    to_first = (await heartbeat(http, first.token))["messages"]
    assert [m["type"] for m in to_author] == ["strategy_reply"]
    assert to_author[0]["content"] == 'late replied to your strategy "ETH swing"'
    assert [m["content"] for m in to_first] == ['late added a new reply in "ETH swing"']
    assert set(to_author[0]["data"]) == {
        "signal_id",
        "reply_author_id",
        "reply_author_name",
        "parent_message_type",
        "market",
        "symbol",
        "title",
    }
    assert to_author[0]["data"]["signal_id"] == sid and to_author[0]["data"]["reply_author_id"] == second.id
    assert secret not in json.dumps(to_author + to_first)
    assert (await heartbeat(http, second.token))["messages"] == []  # no self-notification

    replies = (await http.get(f"/api/signals/{sid}/replies")).json()["replies"]
    assert [r["content"] for r in replies] == ["first words", secret]
    assert replies[1]["agent_name"] == "late" and replies[1]["accepted"] == 0
    assert (await http.get("/api/signals/999999/replies")).json() == {"replies": []}

    trade = world.create_signal(author.id, "operation", "us-stock", None, "bought", "AAPL")
    world.add_reply(trade, first.id, "nice fill")
    op = (await heartbeat(http, author.token))["messages"][0]
    assert (op["type"], op["content"]) == ("discussion_reply", "early replied to your operation AAPL")
    assert op["data"]["parent_message_type"] == "operation" and op["data"]["title"] == "AAPL"


async def test_mentions_reach_only_outsiders(http: httpx.AsyncClient, world: World) -> None:
    author, part, outsider, replier = (world.create_agent(n) for n in ("boss", "Part", "Outsider", "talker"))
    sid = world.create_signal(author.id, "discussion", "us-stock", "", "body", "TSLA")
    world.add_reply(sid, part.id, "hi")
    for a in (author, part, outsider):
        await heartbeat(http, a.token)

    world.add_reply(sid, replier.id, "@boss @part @OUTSIDER @talker @nobody look")
    assert [m["type"] for m in (await heartbeat(http, author.token))["messages"]] == ["discussion_reply"]
    assert [m["type"] for m in (await heartbeat(http, part.token))["messages"]] == ["discussion_reply"]
    got = (await heartbeat(http, outsider.token))["messages"]
    assert [(m["type"], m["content"]) for m in got] == [("discussion_mention", "talker mentioned you in TSLA")]
    assert (await heartbeat(http, replier.token))["messages"] == []


async def test_accept_notifies_the_reply_author(http: httpx.AsyncClient, world: World) -> None:
    author, helper = world.create_agent("asker"), world.create_agent("helper")
    sid = world.create_signal(author.id, "discussion", "crypto", "Need help", "?", "BTC")
    rid = world.add_reply(sid, helper.id, "here you go")
    await heartbeat(http, helper.token)

    denied = await http.post(f"/api/signals/{sid}/replies/{rid}/accept", headers=bearer(helper.token))
    assert (denied.status_code, denied.json()) == (403, {"detail": "Only the original author can accept a reply"})
    nope = await http.post(f"/api/signals/{sid}/replies/9999/accept", headers=bearer(author.token))
    assert (nope.status_code, nope.json()) == (404, {"detail": "Reply not found"})
    ok = await http.post(f"/api/signals/{sid}/replies/{rid}/accept", headers=bearer(author.token))
    assert ok.json() == {"success": True, "reply_id": rid, "points_earned": 3}

    (msg,) = (await heartbeat(http, helper.token))["messages"]
    assert msg["type"] == "discussion_reply_accepted"
    assert msg["content"] == 'asker accepted your reply on "Need help"'
    assert msg["data"]["reply_id"] == rid and msg["data"]["accepted_by_id"] == author.id


async def test_follow_twice_and_follow_again(http: httpx.AsyncClient, world: World) -> None:
    fan, star = world.create_agent("fan"), world.create_agent("star")
    h = bearer(fan.token)
    first = await http.post("/api/signals/follow", headers=h, json={"leader_id": star.id})
    assert first.json() == {"success": True, "message": "Following"}
    second = await http.post("/api/signals/follow", headers=h, json={"leader_id": star.id})
    assert second.json() == {"message": "Already following"}
    me = await http.post("/api/signals/follow", headers=h, json={"leader_id": fan.id})
    assert (me.status_code, me.json()) == (400, {"detail": "Cannot follow yourself"})

    notes = (await heartbeat(http, star.token))["messages"]
    assert [(m["type"], m["content"]) for m in notes] == [("new_follower", "fan started following you")]
    assert notes[0]["data"] == {"leader_id": star.id, "follower_id": fan.id, "follower_name": "fan"}
    following = (await http.get("/api/signals/following", headers=h)).json()
    assert [f["leader_name"] for f in following["following"]] == ["star"] and following["total"] == 1

    unfollow = await http.post("/api/signals/unfollow", headers=h, json={"leader_id": star.id})
    assert unfollow.json() == {"success": True}
    refollow = await http.post("/api/signals/follow", headers=h, json={"leader_id": star.id})
    assert refollow.json()["message"] == "Following"
    assert [m["type"] for m in (await heartbeat(http, star.token))["messages"]] == ["new_follower"]

    strat = await http.post(
        "/api/signals/strategy",
        headers=bearer(star.token),
        json={"market": "crypto", "title": "", "content": "c", "symbols": "BTC,ETH"},
    )
    (pub,) = (await heartbeat(http, fan.token))["messages"]
    assert pub["content"] == "star published a new strategy in crypto"
    assert pub["data"]["signal_id"] == strat.json()["signal_id"] and pub["data"]["symbol"] is None


async def test_post_validation_and_discussion_limits(http: httpx.AsyncClient, world: World, clock: FakeClock) -> None:
    agent = world.create_agent("poster")
    h = bearer(agent.token)
    as_list = await http.post(
        "/api/signals/strategy", headers=h, json={"market": "crypto", "title": "t", "content": "c", "symbols": ["BTC"]}
    )
    assert as_list.status_code == 422 and as_list.json()["detail"][0]["type"] == "string_type"
    no_market = await http.post("/api/signals/discussion", headers=h, json={"title": "t", "content": "c"})
    assert no_market.json()["detail"][0]["loc"] == ["body", "market"]
    assert no_market.json()["detail"][0]["msg"] == "Field required"

    ok = await http.post(
        "/api/signals/discussion", headers=h, json={"market": "us-stock", "title": "t", "content": "c", "symbol": "AMD"}
    )
    assert ok.json()["points_earned"] == 4 and ok.json()["success"] is True
    clock.advance(10)
    again = await http.post(
        "/api/signals/discussion", headers=h, json={"market": "us-stock", "title": "t2", "content": "c2"}
    )
    assert again.json() == {"detail": "Too many discussion posts. Try again in 50s."}


async def test_feed_filters_paging_and_views(http: httpx.AsyncClient, world: World, clock: FakeClock) -> None:
    me, pal, stranger = (world.create_agent(n) for n in ("me", "pal", "stranger"))
    world.follow(me.id, pal.id)
    sids = []
    for n in range(6):
        sids.append(world.create_signal(pal.id, "strategy", "crypto", f"Crypto idea {n}", "momentum"))
        clock.advance(1)
    disc = world.create_signal(stranger.id, "discussion", "us-stock", "NVDA talk", "Earnings PLAY", "NVDA")
    clock.advance(1)
    world.add_reply(sids[1], stranger.id, "same-day reply")
    clock.advance(86400)
    world.add_reply(sids[0], stranger.id, "next-day reply")

    page = (await http.get("/api/signals/feed?message_type=strategy&limit=4&offset=0")).json()
    assert [s["signal_id"] for s in page["signals"]] == sids[::-1][:4]
    assert (page["total"], page["limit"], page["offset"], page["has_more"]) == (6, 4, 0, True)
    tail = (await http.get("/api/signals/feed?message_type=strategy&limit=4&offset=4")).json()
    assert [s["signal_id"] for s in tail["signals"]] == sids[::-1][4:] and tail["has_more"] is False

    kw = (await http.get("/api/signals/feed?keyword=earnings play")).json()
    assert [s["signal_id"] for s in kw["signals"]] == [disc]
    item = kw["signals"][0]
    assert item["agent_name"] == "stranger" and item["reply_count"] == 0 and item["participant_count"] == 1
    assert item["signal_id"] != item["id"]  # separate sequences, as upstream allows
    assert item["symbol"] == "NVDA" and item["is_following_author"] is False
    market = (await http.get("/api/signals/feed?market=us-stock")).json()
    assert market["total"] == 1

    active = (await http.get("/api/signals/feed?sort=active&limit=3")).json()["signals"]
    # Upstream compares reply time ("YYYY-MM-DD HH:MM:SS") with signal time ("...T...Z") as
    # text, so only the next-day reply lifts its signal; the same-day one does not.
    assert [s["signal_id"] for s in active] == [sids[0], disc, sids[5]]
    assert active[0]["reply_count"] == 1 and active[0]["last_reply_at"] == "2026-01-02 00:00:07"

    mine = (await http.get("/api/signals/feed?sort=following", headers=bearer(me.token))).json()
    assert mine["total"] == 6 and all(s["is_following_author"] for s in mine["signals"])
    anon = await http.get("/api/signals/feed?sort=following", headers=bearer("garbage"))
    assert anon.status_code == 200 and anon.json()["total"] == 7

    by_agent = (await http.get(f"/api/signals/{pal.id}?limit=2")).json()["signals"]
    assert [s["signal_id"] for s in by_agent] == sids[::-1][:2]
    assert (await http.get("/api/signals/4242")).json() == {"signals": []}


# ---- faults --------------------------------------------------------------------------------


async def test_lost_heartbeat_response_still_marks_messages_read(http: httpx.AsyncClient, world: World) -> None:
    agent = world.create_agent("unlucky")
    ids = world.push_messages(agent.id, 3)
    world.faults.lose_next_heartbeats = 1

    with pytest.raises(httpx.TransportError):
        await http.post("/api/claw/agents/heartbeat", headers=bearer(agent.token))
    assert world.unread_ids(agent.id) == []
    assert world.handed_out(agent.id) == ids
    assert (await heartbeat(http, agent.token))["messages"] == []
    recent = (await http.get("/api/claw/messages/recent", headers=bearer(agent.token))).json()["messages"]
    assert sorted(m["id"] for m in recent) == ids and all(m["read"] == 1 for m in recent)
    stats = (await http.get("/_sim/stats")).json()
    assert stats["lost_heartbeat_responses"] == 1 and stats["heartbeats"][str(agent.id)] == 2


async def test_hanging_heartbeat_times_the_client_out(sim: SimulatorServer, world: World) -> None:
    agent = world.create_agent("hung")
    ids = world.push_messages(agent.id, 2)
    world.faults.update({"lose_mode": "hang", "hang_seconds": 10, "lose_heartbeat_responses": 1.0})
    async with httpx.AsyncClient(base_url=sim.url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/api/claw/agents/heartbeat", headers=bearer(agent.token))
    assert world.handed_out(agent.id) == ids and world.unread_ids(agent.id) == []
    assert world.lost_heartbeats == 1


async def test_outage_503_spares_control_routes_and_can_expire(
    http: httpx.AsyncClient, world: World, clock: FakeClock
) -> None:
    agent = world.create_agent("down")
    world.push_message(agent.id, "price_alert", "still here")
    set_resp = await http.post("/_sim/faults", json={"outage": "503", "outage_until": clock() + 60})
    assert set_resp.json()["outage"] == "503"
    down = await http.post("/api/claw/agents/heartbeat", headers=bearer(agent.token))
    assert down.status_code == 503 and down.headers["content-type"].startswith("text/html")
    assert (await http.get("/api/signals/feed")).status_code == 503
    assert (await http.get("/_sim/stats")).status_code == 200
    assert len(world.unread_ids(agent.id)) == 1  # the request never reached the server
    clock.advance(61)
    assert len((await heartbeat(http, agent.token))["messages"]) == 1
    bad = await http.post("/_sim/faults", json={"outage": "sometimes"})
    assert bad.status_code == 400


async def test_control_api_and_request_stats(http: httpx.AsyncClient, world: World) -> None:
    agent = (await http.post("/_sim/agents", json={"name": "driven"})).json()
    await http.post("/_sim/tasks", json={"agent_id": agent["agent_id"], "type": "t", "count": 2})
    await heartbeat(http, agent["token"])
    await http.get("/api/signals/feed?limit=3")
    stats = (await http.get("/_sim/stats")).json()
    assert stats["requests"]["/api/claw/agents/heartbeat"] == 1
    assert stats["requests"]["/api/signals/feed"] == 1
    assert "/api/signals/feed?limit=3" in stats["paths"]
    assert stats["heartbeats"] == {str(agent["agent_id"]): 1}
    beat = next(r for r in world.requests if r.route == "/api/claw/agents/heartbeat")
    assert beat.agent_id == agent["agent_id"] and beat.method == "POST"
    dup = await http.post("/_sim/agents", json={"name": "driven"})
    assert dup.status_code == 400


async def test_postgres_timestamps(clock: FakeClock) -> None:
    world = World(seed=1, clock=clock, timestamp_style="postgres")
    agent = world.create_agent("pg")
    clock.advance(0.123456)
    world.push_message(agent.id, "x", "y")
    async with SimulatorServer(world) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        row = (await heartbeat(client, agent.token))["messages"][0]
    assert row["created_at"] == "2026-01-01T00:00:00.123456Z"


def test_module_entry_point_prints_its_url_and_serves() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aitrader_sim", "--port", "0", "--seed", "5", "--demo"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_lines(proc, 3, timeout=15)
        url = lines[0].removeprefix("AITRADER_SIM_URL=")
        token = lines[1].removeprefix("AITRADER_DEMO_TOKEN=")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), lines
        assert lines[2].startswith("AITRADER_DEMO_AGENT_ID=")
        hb = httpx.post(f"{url}/api/claw/agents/heartbeat", headers=bearer(token), timeout=5)
        types = {m["type"] for m in hb.json()["messages"]}
        assert {"new_follower", "strategy_published", "strategy_reply", "discussion_mention"} <= types
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""


def _read_lines(proc: subprocess.Popen[str], n: int, timeout: float) -> list[str]:
    # A reader thread, because a buffered readline() cannot be given a deadline.
    assert proc.stdout is not None
    out: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    while len(lines) < n:
        try:
            lines.append(out.get(timeout=timeout).strip())
        except queue.Empty:
            raise AssertionError(f"simulator printed only {lines!r}") from None
    return lines


async def test_overlapping_heartbeats_for_one_agent_are_counted(http: httpx.AsyncClient, world: World) -> None:
    a, b = world.create_agent("ov1"), world.create_agent("ov2")
    world.faults.slow_seconds = 0.2
    auth = bearer
    await asyncio.gather(
        http.post("/api/claw/agents/heartbeat", headers=auth(a.token)),
        http.post("/api/claw/agents/heartbeat", headers=auth(a.token)),
        http.post("/api/claw/agents/heartbeat", headers=auth(b.token)),  # another agent: no overlap
    )
    await http.post("/api/claw/agents/heartbeat", headers=auth(a.token))  # after: no overlap
    assert world.overlapping_heartbeats == 1
    assert world.heartbeats_in_flight[a.id] == 0
