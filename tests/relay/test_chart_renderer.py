"""Drawing off the event loop: real matplotlib in a real worker process, the cap on waiting
renders, and the short cache that lets identical requests share one drawing."""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from platform_fakes import uploads
from relay.charts.draw import money
from relay.charts.renderer import ChartRenderer, RenderBusy, ShortCache
from relay.charts.specs import BarChart, Level, LineChart

LINE = LineChart(
    title="Profit: Alpha",
    subtitle="last 30 days",
    times=tuple(1_760_000_000.0 + i * 86400 for i in range(30)),
    values=tuple(float((i * 37) % 11 - 5) * 100 for i in range(30)),
    fill_to=0.0,
    levels=(Level("support", -300.0),),
)
ROOT = Path(__file__).resolve().parents[2]
BARS = BarChart(
    "Open positions", "total +$1.2k", ("BTC long", "NVDA short", "ETH long\ncopied #3"), (1200.0, -340.0, 88.0)
)


@pytest.fixture
async def renderer() -> AsyncIterator[ChartRenderer]:
    r = ChartRenderer(workers=1, max_waiting=3)
    yield r
    await r.close()


async def test_charts_are_pngs_a_phone_and_both_platforms_accept(renderer: ChartRenderer) -> None:
    for spec in (LINE, BARS):
        png = await renderer.render(spec)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        assert (width, height) == (1200, 675), "wide enough for a phone in landscape, small enough to load"
        assert len(png) < 300_000 < uploads.DISCORD_FILE_MAX
        assert uploads.telegram_photo_problem(uploads.Upload("photo", "c.png", "image/png", png)) is None
    assert renderer.rendered == 2


async def test_the_loop_keeps_running_while_a_chart_is_drawn(renderer: ChartRenderer) -> None:
    await renderer.warm()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(renderer.render(LINE) for _ in range(3)))
    task.cancel()
    # Drawn inline, three charts would leave the ticker no turn at all until they were done.
    assert ticks > 100


async def test_beyond_the_waiting_cap_a_render_is_refused_not_queued(renderer: ChartRenderer) -> None:
    await renderer.warm()
    first = [asyncio.create_task(renderer.render(BARS)) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(RenderBusy):
        await renderer.render(BARS)
    assert all(p.startswith(b"\x89PNG") for p in await asyncio.gather(*first))
    assert (await renderer.render(BARS)).startswith(b"\x89PNG"), "room again once they are done"


async def test_identical_requests_share_one_computation_and_expire() -> None:
    now = [0.0]
    cache: ShortCache[str] = ShortCache(ttl=60, timer=lambda: now[0])
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return f"chart {calls}"

    together = await asyncio.gather(*(cache.get(("profit", 7, 30), compute) for _ in range(50)))
    assert set(together) == {"chart 1"} and calls == 1 and cache.hits == 49
    assert await cache.get(("profit", 7, 31), compute) == "chart 2", "different request, new drawing"
    now[0] = 61.0
    assert await cache.get(("profit", 7, 30), compute) == "chart 3", "redrawn after the cache time"


async def test_a_failed_computation_is_not_cached_and_its_waiters_hear_of_it() -> None:
    cache: ShortCache[str] = ShortCache(ttl=60)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise RuntimeError("upstream down")
        return "ok"

    results = await asyncio.gather(*(cache.get("k", flaky) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get("k", flaky) == "ok" and attempts == 2


def test_axis_amounts_are_short_and_signed() -> None:
    assert [money(v) for v in (0.0, 0.57, -3.2, 950.0, 1234.0, -2_500_000.0)] == [
        "$0",
        "$0.57",
        "-$3.20",
        "$950",
        "$1.2k",
        "-$2.5M",
    ]


_HOLDER = """
import asyncio, sys
from relay.charts.renderer import ChartRenderer

async def main() -> None:
    renderer = ChartRenderer(workers=2)
    await renderer.warm()
    print(*renderer._pool._processes, flush=True)
    await asyncio.sleep(3600)

if __name__ == "__main__":
    asyncio.run(main())
"""


async def test_workers_die_with_a_killed_relay_and_release_its_output(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    await asyncio.to_thread(script.write_text, _HOLDER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    workers = [int(pid) for pid in (await asyncio.wait_for(proc.stdout.readline(), 60)).split()]
    assert len(workers) == 2
    proc.kill()
    await proc.wait()
    # EOF on the relay's stdout means nothing alive holds it any more (workers, resource tracker).
    assert await asyncio.wait_for(proc.stdout.read(), 30) == b""
    assert not [pid for pid in workers if await asyncio.to_thread(_alive, pid)]


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


async def test_close_at_the_end_of_the_grace_stops_workers_still_starting() -> None:
    """A worker still importing matplotlib when the grace ends is stopped, not waited for: the
    interpreter would otherwise join it at exit and the relay would outlive its grace."""
    import multiprocessing

    before = {p.pid for p in multiprocessing.active_children()}
    r = ChartRenderer(workers=1)
    warming = asyncio.create_task(r.warm())
    while not ({p.pid for p in multiprocessing.active_children()} - before):
        await asyncio.sleep(0.01)  # the worker has been spawned and is importing its libraries
    await r.close(timeout=0.0)
    assert {p.pid for p in multiprocessing.active_children() if p.is_alive()} - before == set()
    # The warm-up was stopped, not awaited: waiting for it is what kept the process alive.
    with pytest.raises(BrokenProcessPool):
        await warming
