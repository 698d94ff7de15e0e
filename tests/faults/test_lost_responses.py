"""10 % of heartbeat responses cut after the server marked them read.

`messages/recent` is the only way back, and it shows at most 50 rows ordered by a one-second
`created_at`: when about 50 messages of one agent share the page's oldest second, the newest ids
of that second are on no view, and no client can recover them. So:
- at a rate that keeps every second under 50 messages per agent, nothing may be lost;
- at any rate, nothing may be lost silently: every missing id lies in a range the relay reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from tests.conftest import agents_with_own_chats
from tests.fakes.recording import RecordingAdapter

ROUNDS = [
    pytest.param(25, id="short"),
    pytest.param(300, id="long", marks=[pytest.mark.faults, pytest.mark.timeout(3600)]),
]


class SteppedClock:
    """The simulator's clock: real time, or one second further at every round."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.stepped = False

    def __call__(self) -> float:
        return 1_800_000_000.0 + self.offset if self.stepped else time.time()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def world(clock: SteppedClock) -> World:
    return World(seed=7, clock=clock)


async def _run(
    rounds: int, relay: Relay, world: World, adapter: RecordingAdapter, between: Callable[[], Awaitable[None]]
) -> tuple[list[int], dict[int, int], list[int]]:
    agents = await agents_with_own_chats(relay, world, adapter, 8, "l")
    world.faults.lose_heartbeat_responses = 0.1
    world.faults.lose_mode = "cut"
    pushed: list[int] = []
    owner: dict[int, int] = {}
    for r in range(rounds):
        for a in agents:
            ids = world.push_messages(a, 1 + (r + a) % 4, type="custom_note", content_fmt="lost-test {i}")
            pushed += ids
            owner.update(dict.fromkeys(ids, a))
        for a in agents:
            await relay.poller.make_due(a)
        await asyncio.gather(*(relay.poller.poll_if_due(a) for a in agents))
        # Delivered as it comes, as the running deliverer would: 300 rounds queue about 750 per
        # chat, and past MAX_QUEUE_PER_CHAT (500) the oldest are dead-lettered, which the long
        # run counted as lost since that cap came in.
        await relay.deliverer.drain_due(relay.deliverer._clock() + 120)
        await between()
    world.faults.lose_heartbeat_responses = 0.0
    # Clean polls for what the last rounds lost or left unread, until nothing waits upstream: the
    # outage gate (cut answers look like an outage) lets one probe through per interval, so one
    # poll each is not enough; rows still unread then are late, not lost.
    deadline = time.monotonic() + 60
    while any(world.unread_ids(a) for a in agents) and time.monotonic() < deadline:
        for a in agents:
            await relay.poller.make_due(a)
            await relay.poller.poll_if_due(a)
        await asyncio.sleep(0.1)
    for a in agents:  # and one more each, for a lost answer's mark
        await relay.poller.poll(a)
    await relay.deliverer.drain_due(relay.deliverer._clock() + 120)
    delivered = [int(s.key.split(":")[1][1:]) for s in adapter.sent if ":m" in s.key]
    return pushed, owner, delivered


@pytest.mark.parametrize("rounds", ROUNDS)
async def test_under_a_page_per_second_lost_responses_lose_nothing(
    rounds: int, relay: Relay, world: World, clock: SteppedClock, adapter: RecordingAdapter
) -> None:
    clock.stepped = True

    async def one_second_later() -> None:  # 1-4 messages per agent per second
        clock.offset += 1
        # When cut answers look like an outage, the gate lets one probe poll through per
        # interval of real time, while this clock steps a second per round (about 37 rounds a
        # real second): without this wait the gate held polls back for dozens of simulated
        # seconds, backlogs passed a page and losses were reported that no relay polling each
        # second would meet. The second passes for the gate too.
        probe_ms = await relay.redis.pttl(relay.keys.upstream_probe())
        if probe_ms > 0:
            await asyncio.sleep(probe_ms / 1000)

    pushed, _, delivered = await _run(rounds, relay, world, adapter, one_second_later)
    lost = set(pushed) - set(delivered)
    reports = await relay.store.possible_losses()
    print(
        f"\nlost-responses (under 50/s per agent): rounds={rounds} pushed={len(pushed)} "
        f"responses_lost={world.lost_heartbeats} recovered={relay.metrics.reconciled._value.get():.0f} "
        f"lost={len(lost)} reported={len(reports)} duplicates={len(delivered) - len(set(delivered))}"
    )
    assert world.lost_heartbeats > 0  # the fault really fired
    assert lost == set()
    assert reports == []  # every recovery was proven, none merely hoped for
    assert len(delivered) == len(set(delivered))


@pytest.mark.parametrize("rounds", ROUNDS)
async def test_at_any_rate_no_loss_is_silent(
    rounds: int, relay: Relay, world: World, adapter: RecordingAdapter
) -> None:
    async def at_once() -> None:
        pass

    pushed, owner, delivered = await _run(rounds, relay, world, adapter, at_once)
    lost = set(pushed) - set(delivered)
    reports = await relay.store.possible_losses()
    silent = {m for m in lost if not any(r.covers(owner[m], m) for r in reports)}
    ranges = ", ".join(f"agent {r.agent_id}: {r.low or '?'}-{r.high or '?'}" for r in reports)
    print(
        f"\nlost-responses (as fast as possible): rounds={rounds} pushed={len(pushed)} "
        f"responses_lost={world.lost_heartbeats} recovered={relay.metrics.reconciled._value.get():.0f} "
        f"lost={len(lost)} silent={len(silent)} duplicates={len(delivered) - len(set(delivered))} "
        f"reported={len(reports)} [{ranges}] lost_ids={sorted(lost)[:40]}"
    )
    assert world.lost_heartbeats > 0
    assert silent == set()
    assert len(delivered) == len(set(delivered))
