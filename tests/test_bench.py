"""The benchmarks still run end to end (tiny workloads; their figures are not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("module", "args", "figure"),
    [
        ("bench.pipeline", ["--agents", "3", "--messages", "4"], "notifications/s"),
        (
            "bench.telegram_send",
            ["--chats", "4", "--groups", "1", "--notifications", "8", "--budget", "60"],
            "messages/s",
        ),
        ("bench.discord_send", ["--channels", "4", "--notifications", "8", "--budget", "60"], "messages/s"),
    ],
)
def test_benchmark_runs_and_prints_its_table(module: str, args: list[str], figure: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert figure in done.stdout and "ratio" in done.stdout
    assert "Traceback" not in done.stderr


def test_soak_benchmark_samples_redis_memory_and_loses_nothing() -> None:
    args = ["--count", "600", "--every", "200", "--agents", "2", "--batch", "100"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "used_memory MB" in done.stdout
    assert len([line for line in done.stdout.splitlines() if line.strip().startswith(("200", "400", "600"))]) == 3
    assert "duplicates: 0; lost: 0" in done.stdout
    assert "Traceback" not in done.stderr
