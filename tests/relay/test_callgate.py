"""The heartbeat gate: the floor while calls get a slot at once, one more slot per call that
waited too long (up to the ceiling), one fewer per quiet window; cancelled waiters lose no slot.
A fake clock decides every wait, so no figure here depends on the machine's speed."""

from __future__ import annotations

import asyncio

from relay.callgate import CallGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _hold(gate: CallGate, release: asyncio.Event, entered: list[int], n: int) -> None:
    async with gate:
        entered.append(n)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_calls_that_get_a_slot_at_once_stay_at_the_floor() -> None:
    clock = Clock()
    gate = CallGate(32, floor=2, clock=clock)
    for _ in range(100):
        async with gate:
            clock.now += 0.001
    assert gate.limit == 2 and gate.in_flight == 0


async def test_calls_that_waited_too_long_open_one_slot_each_up_to_the_ceiling() -> None:
    clock = Clock()
    gate = CallGate(5, floor=2, slow_wait=0.5, clock=clock)
    releases = [asyncio.Event() for _ in range(10)]
    entered: list[int] = []
    tasks = [asyncio.create_task(_hold(gate, releases[i], entered, i)) for i in range(4)]
    await _settle()
    assert entered == [0, 1] and gate.in_flight == 2  # the floor: the rest wait, in order

    clock.now += 0.1  # a short wait opens nothing
    releases[0].set()
    await _settle()
    assert entered == [0, 1, 2] and gate.limit == 2

    clock.now += 1.0
    tasks += [asyncio.create_task(_hold(gate, releases[i], entered, i)) for i in (4, 5)]
    await _settle()
    releases[1].set()
    await _settle()
    # 3 waited 1.1 s: a slot; 4 takes it at once (no wait: nothing more), 5 waits on.
    assert gate.limit == 3 and entered == [0, 1, 2, 3, 4] and gate.in_flight == 3

    clock.now += 1.0
    tasks += [asyncio.create_task(_hold(gate, releases[i], entered, i)) for i in range(6, 10)]
    await _settle()
    clock.now += 1.0
    releases[2].set()
    await _settle()
    assert gate.limit == 5 and gate.in_flight == 5  # the ceiling, however many waited long
    clock.now += 5.0
    for r in releases:
        r.set()
    await asyncio.gather(*tasks)
    assert gate.limit == 5 and gate.in_flight == 0 and sorted(entered) == list(range(10))


async def test_a_window_without_waiting_halves_the_slots_above_the_floor() -> None:
    clock = Clock()
    gate = CallGate(32, floor=2, slow_wait=0.5, window=10, clock=clock)
    gate.limit = 32  # as a burst left it
    seen = []
    for _ in range(5):
        clock.now += 11
        async with gate:
            pass
        seen.append(gate.limit)
    assert seen == [16, 8, 4, 2, 2]


async def test_a_window_with_a_wait_keeps_its_slots() -> None:
    clock = Clock()
    gate = CallGate(8, floor=2, slow_wait=0.5, window=10, clock=clock)
    gate.limit = 3
    releases = [asyncio.Event() for _ in range(4)]
    entered: list[int] = []
    tasks = [asyncio.create_task(_hold(gate, releases[i], entered, i)) for i in range(4)]
    await _settle()
    clock.now += 0.2  # call 3 waits 0.2 s: not slow enough to open, too slow to close
    releases[0].set()
    releases[1].set()
    await _settle()
    clock.now += 11
    async with gate:  # a free slot at once; ends the window
        pass
    assert gate.limit == 3
    for r in releases:
        r.set()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_loses_no_slot_and_keeps_the_order() -> None:
    clock = Clock()
    gate = CallGate(1, floor=1, clock=clock)
    releases = [asyncio.Event() for _ in range(3)]
    entered: list[int] = []
    tasks = [asyncio.create_task(_hold(gate, releases[i], entered, i)) for i in range(3)]
    await _settle()
    tasks[1].cancel()  # waiting: it leaves the queue
    await _settle()
    releases[0].set()
    await _settle()
    assert entered == [0, 2] and gate.in_flight == 1
    releases[2].set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert gate.in_flight == 0


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_passes_it_on() -> None:
    gate = CallGate(1, floor=1, clock=Clock())
    entered: list[int] = []
    release, after = asyncio.Event(), asyncio.Event()
    handed: list[asyncio.Task[None]] = []

    async def first() -> None:
        async with gate:
            entered.append(0)
            await release.wait()
        handed[0].cancel()  # the same loop turn as the hand-over, before that waiter runs

    tasks = [asyncio.create_task(first())]
    await _settle()
    handed.append(asyncio.create_task(_hold(gate, asyncio.Event(), entered, 1)))
    tasks.append(asyncio.create_task(_hold(gate, after, entered, 2)))
    await _settle()
    release.set()
    await _settle()
    assert entered == [0, 2] and gate.in_flight == 1
    after.set()
    await asyncio.gather(*tasks, *handed, return_exceptions=True)
    assert gate.in_flight == 0
