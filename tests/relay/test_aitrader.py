"""`AITraderClient` against the simulator over real HTTP: headers, error tree, shapes, parsing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aitrader_sim.server import SimulatorServer
from aitrader_sim.world import World
from relay import parse
from relay.aitrader import MAX_ID, AITraderClient, checked_id
from relay.errors import (
    NotFound,
    OutcomeUnknown,
    RateLimited,
    TokenRejected,
    UnexpectedResponse,
    UpstreamError,
    UpstreamUnavailable,
)
from relay.http_client import AsyncioTransport, CookielessClient

HOSTILE_IDS = ("../1", "1/../../claw/agents/me", "١٢", "99999999999999999999999", "-1", "0", "", " 1", "1e3", "0x10")


class Clock:
    def __init__(self, t: float = 1_767_225_600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def client(http: httpx.AsyncClient) -> AITraderClient:
    return AITraderClient(http)


async def build(
    url: str, *, timeout: float = 3.0, hooks: list[Callable[[httpx.Request], Awaitable[None]]] | None = None
) -> httpx.AsyncClient:
    return CookielessClient(
        base_url=url,
        timeout=httpx.Timeout(timeout),
        event_hooks={"request": hooks or []},
        transport=AsyncioTransport(httpx.Limits()),
    )


# --- headers -----------------------------------------------------------------------------------


async def test_both_auth_headers_are_sent(sim: SimulatorServer, world: World) -> None:
    agent = world.create_agent("ann")
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        seen.append(request)

    async with await build(sim.url, hooks=[capture]) as http:
        client = AITraderClient(http)
        me = await client.me(agent.token)
        await client.heartbeat(agent.token)
    assert me.agent_id == agent.id
    assert [r.url.path for r in seen] == ["/api/claw/agents/me", "/api/claw/agents/heartbeat"]
    for request in seen:
        assert request.headers["Authorization"] == f"Bearer {agent.token}"
        assert request.headers["X-Claw-Token"] == agent.token


async def test_anonymous_calls_send_no_auth_headers(sim: SimulatorServer, world: World) -> None:
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        seen.append(request)

    async with await build(sim.url, hooks=[capture]) as http:
        await AITraderClient(http).feed(keyword="btc")
    assert "authorization" not in seen[0].headers and "x-claw-token" not in seen[0].headers


async def test_the_polls_fixed_paths_keep_the_base_urls_path() -> None:
    """The heartbeat and `recent` URLs are joined to the base URL once, as httpx joins a path (appended
    to the base's path, query parameters added), so a server under a path prefix still gets them."""
    seen: list[httpx.URL] = []

    class Stop(Exception):
        pass

    async def capture(request: httpx.Request) -> None:
        seen.append(request.url)
        raise Stop  # nothing listens at this address: the request is only looked at

    async with await build("http://127.0.0.1:9/prefix", hooks=[capture]) as http:
        client = AITraderClient(http)
        with pytest.raises(Stop):
            await client.heartbeat("t")
        with pytest.raises(Stop):
            await client.recent("t", category="strategy", limit=7)
    assert [str(u) for u in seen] == [
        "http://127.0.0.1:9/prefix/api/claw/agents/heartbeat",
        "http://127.0.0.1:9/prefix/api/claw/messages/recent?limit=7&category=strategy",
    ]


async def test_max_calls_bounds_the_calls_in_flight(sim: SimulatorServer, world: World) -> None:
    agent = world.create_agent("ann")
    in_flight, most = 0, 0
    go = asyncio.Event()

    async def hold(request: httpx.Request) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await go.wait()
        in_flight -= 1

    async with await build(sim.url, hooks=[hold]) as http:
        client = AITraderClient(http, max_calls=2)
        calls = [asyncio.create_task(client.heartbeat(agent.token)) for _ in range(5)]
        while in_flight < 2:  # the first two reach the HTTP client; the others wait at the gate
            await asyncio.sleep(0.01)
        for _ in range(5):
            await asyncio.sleep(0)  # time for a third to get past a gate that would let it
        assert in_flight == 2
        go.set()
        beats = await asyncio.gather(*calls)
    assert most == 2 and len(beats) == 5


# --- the catch-all and other shapes ------------------------------------------------------------------


async def test_catch_all_answer_is_an_unexpected_response(sim: SimulatorServer, world: World) -> None:
    agent = world.create_agent("ann")
    # One path segment too many: every GET lands on the server's catch-all, which answers 200.
    async with await build(sim.url + "/v2") as http:
        client = AITraderClient(http)
        with pytest.raises(UnexpectedResponse):
            await client.me(agent.token)
        with pytest.raises(UnexpectedResponse):
            await client.recent(agent.token)
        with pytest.raises(UnexpectedResponse):
            await client.following(agent.token)
        with pytest.raises(UnexpectedResponse):
            await client.feed(keyword="x")
        # POSTs to an unknown path are refused (405), never taken for success.
        with pytest.raises(UpstreamError) as caught:
            await client.heartbeat(agent.token)
        assert not isinstance(caught.value, UpstreamUnavailable)
    assert world.route_counts["catch-all"] >= 5
    assert world.heartbeat_counts[agent.id] == 0
    # Unexpected responses are not retried like outages: each GET went out once.
    assert world.route_counts["catch-all"] == 5


async def test_my_discussions_falls_back_when_the_server_answers_with_its_catch_all(
    client: AITraderClient, world: World
) -> None:
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    strategy = world.create_signal(ann.id, "strategy", "crypto", "Grid on SOL", "plan")
    disc = world.create_signal(ann.id, "discussion", "crypto", "SOL talk", "talk", "SOL")
    world.create_signal(ann.id, "operation", "crypto", None, "buy", "SOL")
    world.create_signal(bob.id, "discussion", "crypto", "Bob on SOL", "bob")
    found = await client.my_discussions(ann.token, ann.id)
    assert sorted(s.signal_id for s in found) == sorted([strategy, disc])
    assert world.route_counts["catch-all"] == 1
    assert [s.signal_id for s in await client.my_discussions(ann.token, ann.id, "grid")] == [strategy]


async def test_following_reads_the_servers_key(client: AITraderClient, world: World) -> None:
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    assert await client.follow(ann.token, bob.id) is True
    assert await client.follow(ann.token, bob.id) is False  # {"message": "Already following"}
    [followed] = await client.following(ann.token)
    assert (followed.leader_id, followed.leader_name) == (bob.id, "bob")


# --- status codes ------------------------------------------------------------------------------


async def test_401_is_token_rejected(client: AITraderClient, world: World) -> None:
    with pytest.raises(TokenRejected) as caught:
        await client.me("not-a-real-token-0123456789")
    assert "Link again" in caught.value.sentence
    agent = world.create_agent("ann")
    old = agent.token
    world.rotate_token(agent.id)
    with pytest.raises(TokenRejected):
        await client.heartbeat(old)
    assert world.route_counts["/api/claw/agents/me"] == 1  # a 401 is not retried


async def test_429_is_rate_limited_with_the_servers_cooldown() -> None:
    clock = Clock()
    world = World(seed=1, clock=clock)
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    sid = world.create_signal(bob.id, "discussion", "crypto", "Topic", "?")
    async with SimulatorServer(world) as sim, await build(sim.url) as http:
        client = AITraderClient(http)
        await client.post_reply(ann.token, sid, "first")
        clock.t += 7
        with pytest.raises(RateLimited) as caught:
            await client.post_reply(ann.token, sid, "second")
    assert caught.value.retry_after == 13.0  # "Try again in 13s."
    assert "try again in 13s" in caught.value.sentence
    assert len(world.replies_by_signal[sid]) == 1


async def test_429_without_a_number_waits_the_default(client: AITraderClient, world: World) -> None:
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    sid = world.create_signal(bob.id, "discussion", "crypto", "Topic", "?")
    world.rate_limiter.enforce(ann.id, "reply", "same words", target_key=f"signal:{sid}")
    world.rate_limiter._state[(ann.id, "reply")].last_ts = None  # past the cooldown, not the duplicate window
    with pytest.raises(RateLimited) as caught:
        await client.post_reply(ann.token, sid, "Same   words")
    assert caught.value.retry_after == 20.0
    assert "Duplicate" in caught.value.detail


async def test_404_is_not_found_with_the_servers_detail(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    with pytest.raises(NotFound) as caught:
        await client.post_reply(ann.token, 987654, "hello")
    assert caught.value.sentence == "AI-Trader: Signal not found"


async def test_other_4xx_is_an_upstream_error_with_the_detail(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    with pytest.raises(UpstreamError) as caught:
        await client.follow(ann.token, ann.id)
    assert type(caught.value) is UpstreamError
    assert caught.value.sentence == "AI-Trader refused: Cannot follow yourself"


async def test_503_is_unavailable_reads_are_retried_writes_are_not(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    world.faults.outage = "503"
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.me(ann.token)
    assert not isinstance(caught.value, OutcomeUnknown)  # a 503 is an answer: nothing happened
    assert world.route_counts["/api/claw/agents/me"] == 3  # the read was tried 1 + 2 times
    with pytest.raises(UpstreamUnavailable):
        await client.heartbeat(ann.token)
    assert world.route_counts["/api/claw/agents/heartbeat"] == 1  # the destructive read only once
    world.faults.outage = None
    assert (await client.me(ann.token)).agent_id == ann.id


async def test_timeout_on_a_write_is_outcome_unknown(sim: SimulatorServer, world: World) -> None:
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    world.faults.outage = "timeout"
    world.faults.hang_seconds = 2
    async with await build(sim.url, timeout=0.3) as http:
        client = AITraderClient(http, read_retries=0)
        with pytest.raises(OutcomeUnknown):
            await client.send_message(ann.token, bob.id, "message", "hi")
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.recent(ann.token)
        assert not isinstance(caught.value, OutcomeUnknown)


async def test_lost_heartbeat_response_is_outcome_unknown(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    ids = world.push_messages(ann.id, 3, type="note")
    world.faults.lose_next_heartbeats = 1
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.heartbeat(ann.token)
    assert isinstance(caught.value, OutcomeUnknown)
    assert "unknown whether" in caught.value.sentence
    assert sorted(world.handed_out(ann.id)) == sorted(ids)  # the server did mark them read
    assert world.heartbeat_counts[ann.id] == 1  # and the client did not silently retry
    # `recent` still shows them, read-only.
    assert sorted(n.message_id for n in await client.recent(ann.token)) == sorted(ids)


async def test_connection_refused_is_unavailable_even_for_writes() -> None:
    async with await build("http://127.0.0.1:1", timeout=1) as http:
        client = AITraderClient(http, read_retries=0)
        with pytest.raises(UpstreamUnavailable) as caught:
            await client.heartbeat("x" * 43)
    # Nothing left the machine, so nothing can have happened upstream.
    assert not isinstance(caught.value, OutcomeUnknown)


# --- ids -------------------------------------------------------------------------------------------


def test_checked_id_rejects_hostile_ids_and_accepts_plain_numbers() -> None:
    for bad in (*HOSTILE_IDS, -1, 0, MAX_ID + 1, True, 1.0, None, b"1"):
        with pytest.raises(ValueError):
            checked_id(bad)
    assert checked_id("42") == 42
    assert checked_id(42) == 42
    assert checked_id(str(MAX_ID)) == MAX_ID


async def test_ids_are_checked_before_any_request(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    for bad in HOSTILE_IDS:
        with pytest.raises(ValueError):
            await client.replies(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await client.agent_signals(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await client.follow(ann.token, bad)  # type: ignore[arg-type]
    assert len(world.requests) == 0


# --- the token never comes back ----------------------------------------------------------------------


async def test_me_drops_the_token_the_server_returns(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    me = await client.me(ann.token)
    assert (me.agent_id, me.name, me.cash) == (ann.id, "ann", 100000.0)
    assert ann.token not in repr(me)
    assert all(ann.token not in str(getattr(me, f.name)) for f in fields(me))
    assert not hasattr(me, "token")


# --- timestamps and parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["sqlite", "postgres"])
async def test_both_timestamp_styles_parse_to_aware_datetimes(style: str) -> None:
    clock = Clock(1_767_225_600.25)  # 2026-01-01 00:00:00.25 UTC
    world = World(seed=1, clock=clock, timestamp_style=style)  # type: ignore[arg-type]
    ann, bob = world.create_agent("ann"), world.create_agent("bob")
    world.push_message(ann.id, "note", "hi")
    world.create_task(ann.id, "analyze", {"s": "BTC"})
    sid = world.create_signal(bob.id, "discussion", "crypto", "Topic", "?")
    world.add_reply(sid, bob.id, "self reply")
    expected = datetime(2026, 1, 1, tzinfo=UTC)
    async with SimulatorServer(world) as sim, await build(sim.url) as http:
        client = AITraderClient(http)
        beat = await client.heartbeat(ann.token)
        [reply] = await client.replies(sid)
        page = await client.feed()
    stamps = [beat.notifications[0].created_at, beat.tasks[0].created_at, reply.created_at, page.signals[0].created_at]
    for stamp in stamps:
        assert stamp is not None and stamp.tzinfo is not None
        assert abs(stamp - expected) <= timedelta(seconds=1)
    assert beat.notifications[0].created_at == expected + (
        timedelta(milliseconds=250) if style == "postgres" else timedelta()
    )


def test_timestamp_parser_accepts_both_forms_and_rejects_garbage() -> None:
    a = parse.timestamp("2026-11-24 14:41:01")
    b = parse.timestamp("2026-11-24T14:41:01.000000Z")
    assert a == b == datetime(2026, 11, 24, 14, 41, 1, tzinfo=UTC)
    assert a is not None and a.utcoffset() == timedelta(0)
    for bad in ("", "yesterday", None, 1764000000, "2026-13-01 00:00:00"):
        assert parse.timestamp(bad) is None


def test_heartbeat_parse_accepts_the_skill_files_documented_shape() -> None:
    body = {
        "status": "ok",
        "agent_status": "online",
        "heartbeat_interval_ms": 300000,
        "messages": [
            {
                "id": 9,
                "type": "new_reply",
                "content": "Someone replied",
                "data": '{"signal_id": 5}',
                "created_at": "2026-01-01T00:00:00Z",
            },
            {"type": "no id, not a row"},
        ],
        "tasks": [],
    }
    beat = parse.heartbeat(body)
    assert beat.poll_interval_seconds == 300.0
    assert (beat.remaining_unread, beat.remaining_tasks, beat.has_more_messages) == (0, 0, False)
    [note] = beat.notifications
    assert (note.message_id, note.kind, note.data) == (9, "new_reply", {"signal_id": 5})
    assert beat.unparsable == 1  # counted, not silently dropped
    assert parse.heartbeat({"recommended_poll_interval_seconds": 30, "messages": []}).poll_interval_seconds == 30.0


async def test_heartbeat_against_the_simulator_parses_counts(client: AITraderClient, world: World) -> None:
    ann = world.create_agent("ann")
    world.push_messages(ann.id, 55, type="note")
    first = await client.heartbeat(ann.token)
    assert len(first.notifications) == 50 and first.has_more_messages and first.remaining_unread == 5
    assert first.poll_interval_seconds == 30.0
    second = await client.heartbeat(ann.token)
    assert len(second.notifications) == 5 and not second.has_more_messages
