"""A lost heartbeat response: recovered and proven, or reported as a possible loss - never a mark
cleared in silence. The simulator orders `recent` as the server does (created_at DESC, one-second
resolution, the lowest ids of the boundary second kept: see aitrader_sim.world.newest_first)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from relay.models import Notification
from relay.poller import OUTAGE_STREAK
from relay.recovery import Gap, gap_after_loss
from tests.conftest import Chat
from tests.fakes.recording import RecordingAdapter
from tests.relay.test_pipeline import linked, message_ids


def rows(*spec: tuple[int, int]) -> list[Notification]:
    """(id, second) pairs, newest first as `recent` returns them."""
    return [
        Notification(1, i, "custom_note", "", {}, datetime.fromtimestamp(1_000_000 + s, UTC), read=True)
        for i, s in spec
    ]


def test_a_page_that_is_not_full_proves_everything() -> None:
    assert gap_after_loss(rows((5, 2), (4, 1)), settled_id=None) is None


def test_a_full_page_reaching_a_settled_row_in_a_newer_second_than_its_last_proves_it() -> None:
    page = rows(*[(100 - i, 3 if i < 30 else 2) for i in range(50)])  # 100..71 in second 3, 70..51 in 2
    assert gap_after_loss(page, settled_id=85) is None  # row 85 is in second 3, newer than 2


def test_a_full_page_whose_settled_rows_share_its_last_second_is_a_possible_loss() -> None:
    page = rows(*[(100 - i, 3 if i < 30 else 2) for i in range(50)])
    gap = gap_after_loss(page, settled_id=60)  # 60 is in second 2: rows above it may be cut there
    assert gap == Gap(61, 70, datetime.fromtimestamp(1_000_002, UTC))
    assert gap is not None and gap.covers(61) and gap.covers(70) and not gap.covers(71) and not gap.covers(60)
    one_second = rows(*[(100 - i, 2) for i in range(50)])
    assert gap_after_loss(one_second, settled_id=None) == Gap(None, None, datetime.fromtimestamp(1_000_002, UTC))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(clock: Clock) -> World:
    return World(seed=7, clock=clock)


async def test_more_than_a_page_in_one_second_is_reported_with_a_range_holding_every_missing_id(
    relay: Relay, world: World, clock: Clock, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    first = world.push_messages(agent_id, 30, type="custom_note", content_fmt="a {i}")
    await relay.poller.poll(agent_id)  # delivered whole: the settled point
    lost = world.push_messages(agent_id, 40, type="custom_note", content_fmt="b {i}")  # the same second
    world.faults.lose_next_heartbeats = 1
    await relay.poller.make_due(agent_id)
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    delivered = set(message_ids(adapter))
    missing = set(first + lost) - delivered
    # `recent` shows the 50 lowest ids of that second: 30 known and 20 of the 40 lost.
    assert len(missing) == 20
    agent = await relay.store.agent(agent_id)
    assert agent is not None and agent.loss_reports == 1
    assert agent.possible_loss.startswith(f"ids {lost[0]}-?")
    reports = await relay.store.possible_losses()
    assert len(reports) == 1 and reports[0].high is None
    assert all(reports[0].covers(agent_id, m) for m in missing)
    assert not reports[0].covers(agent_id, first[-1])
    assert relay.metrics.possible_losses._value.get() == 1
    assert not await relay.inbox.needs_reconcile(agent_id)  # reported, not retried for ever
    status = await dm.text("status")
    assert f"Possibly lost: ids {lost[0]}-?" in status


async def test_a_loss_at_a_rate_under_a_page_per_second_is_recovered_and_proven(
    relay: Relay, world: World, clock: Clock, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    pushed: list[int] = []
    for _ in range(6):  # 10 a second: a page of 50 spans five seconds
        pushed += world.push_messages(agent_id, 10, type="custom_note", content_fmt="c {i}")
        clock.now += 1
    await relay.poller.poll(agent_id)
    for _ in range(3):
        pushed += world.push_messages(agent_id, 10, type="custom_note", content_fmt="d {i}")
        clock.now += 1
    world.faults.lose_next_heartbeats = 1
    await relay.poller.make_due(agent_id)
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert sorted(message_ids(adapter)) == pushed
    agent = await relay.store.agent(agent_id)
    assert agent is not None and agent.loss_reports == 0
    assert "Possibly lost" not in await dm.text("status")


async def test_a_poll_the_outage_gate_holds_back_keeps_an_earlier_lost_answers_mark(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    await relay.poller.poll(agent_id)  # the first poll's start-up check is behind us
    pushed = world.push_messages(agent_id, 3, type="custom_note", content_fmt="gated {i}")
    world.heartbeat(agent_id)  # the answer the relay lost: rows marked read upstream
    await relay.inbox.mark_for_reconcile(agent_id)  # as its lost heartbeat left it
    # AI-Trader looks down and another process holds this interval's probe.
    await relay.redis.set(relay.keys.upstream_failures(), OUTAGE_STREAK)
    await relay.redis.set(relay.keys.upstream_probe(), "another process", px=60_000)
    await relay.poller.make_due(agent_id)
    assert not await relay.poller.poll_if_due(agent_id)  # held back by the gate
    assert await relay.inbox.needs_reconcile(agent_id)  # cleared here, `recent` was never read
    await relay.redis.delete(relay.keys.upstream_failures(), relay.keys.upstream_probe())
    await relay.poller.make_due(agent_id)
    await relay.poller.poll(agent_id)
    await relay.deliverer.drain_due(math.inf)
    assert set(pushed) <= set(message_ids(adapter))
    assert not await relay.inbox.needs_reconcile(agent_id)


async def test_a_cut_answer_that_recent_recovers_at_once_does_not_count_toward_the_outage_gate(
    relay: Relay, world: World, dm: Chat, adapter: RecordingAdapter
) -> None:
    agent_id = await linked(relay, world, dm)
    await relay.poller.poll(agent_id)
    for round_ in range(OUTAGE_STREAK):
        pushed = world.push_messages(agent_id, 2, type="custom_note", content_fmt=f"cut {round_} {{i}}")
        world.faults.lose_next_heartbeats = 1  # marked read upstream, the connection cut
        await relay.poller.make_due(agent_id)
        await relay.poller.poll(agent_id)
        await relay.deliverer.drain_due(math.inf)
        assert set(pushed) <= set(message_ids(adapter))  # recovered through `recent` at once
    # AI-Trader answered every `recent` read: three cut connections are not an outage, so the
    # gate stays open (it let one probe per interval through, and backlogs passed a page).
    assert int(await relay.redis.get(relay.keys.upstream_failures()) or 0) == 0
