"""What the Telegram and Discord delivery benchmarks share: waiting for arrivals, CPU seconds,
and the relay-beside-reference table both print (and `--json` for bench.report)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis

# (label, key in the figures, format)
Row = tuple[str, str, str]
BETTER_WHEN_LOWER = ("p50", "p99")


async def until(predicate: Callable[[], object], budget: float) -> None:
    """Polls `predicate` until it holds or `budget` seconds have passed."""
    deadline = time.monotonic() + budget
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


async def redis_cpu_s(redis: Redis) -> float:
    """Valkey's own CPU seconds so far (INFO cpu), counted apart from the relay's."""
    cpu = await redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def comparison(
    header: Sequence[str],
    rows: Sequence[Row],
    relay: dict[str, Any],
    ref: dict[str, Any],
    *,
    labels: tuple[str, str],
    footer: Sequence[str] = (),
) -> str:
    """The relay's figures beside the reference's, with relay-better-by ratios for throughput
    (relay/ref) and latency (ref/relay)."""
    width = max(16, *(len(label) for label in labels))
    out = [*header, "", f"{'figure':32} {labels[0]:>{width}} {labels[1]:>{width}} {'ratio':>7}"]
    for label, key, fmt in rows:
        ratio = ""
        a, b = relay.get(key), ref.get(key)
        if key in ("per_second", *BETTER_WHEN_LOWER) and a and b:
            r = a / b if key == "per_second" else b / a
            ratio = f"{r:.2f}x"
        cells = [fmt.format(v) if isinstance(v, int | float) else "-" for v in (a, b)]
        out.append(f"{label:32} {cells[0]:>{width}} {cells[1]:>{width}} {ratio:>7}")
    out += ["", *footer, "ratios are relay-better-by (throughput relay/ref, latency ref/relay)"]
    return "\n".join(out)


def steady_rate(arrivals: Sequence[float]) -> float:
    """Arrivals per second between the 10th and the 90th percentile arrival: the paced middle of
    the run, without the start (adapter start, first requests) or the tail (the last few chats,
    held by their own per-chat limits)."""
    times = sorted(arrivals)
    if len(times) < 10:
        return float("nan")
    lo, hi = len(times) // 10, len(times) * 9 // 10
    span = times[hi] - times[lo]
    return (hi - lo) / span if span > 0 else float("nan")


def pacing(relay: dict[str, Any], ceiling: float, requests_key: str) -> dict[str, float]:
    """Share of the platform's ceiling reached, over the whole run and in its paced middle
    (`steady_per_second`), and 429s per 10,000 requests (the issue's goals)."""
    requests = float(relay.get(requests_key) or 0.0)
    return {
        "ceiling_per_second": ceiling,
        "pacing_pct": round(100.0 * float(relay["per_second"]) / ceiling, 1),
        "steady_pacing_pct": round(100.0 * float(relay.get("steady_per_second", float("nan"))) / ceiling, 1),
        "429s_per_10k_requests": round(10_000.0 * float(relay["429s"]) / requests, 2) if requests else float("nan"),
    }
