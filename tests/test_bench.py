"""The benchmarks still run end to end (tiny workloads; their figures are not checked here)."""

from __future__ import annotations

import json
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
    # One sample row per 200 deliveries. A row shows the deliveries counted when it was taken,
    # which on a loaded machine can be past its mark (e.g. 500 for the 400 mark): count the rows.
    rows = [line.split() for line in done.stdout.splitlines()]
    delivered = [int(row[0].replace(",", "")) for row in rows if row and row[0].replace(",", "").isdigit()]
    assert len(delivered) == 3 and delivered == sorted(delivered) and delivered[-1] == 600, done.stdout
    assert "duplicates: 0; lost: 0" in done.stdout
    assert "Traceback" not in done.stderr


def test_chart_benchmark_measures_lateness_in_every_phase() -> None:
    args = ["--agents", "2", "--seconds", "2", "--burst", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.charts", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "lateness" not in line]
    assert [r.split("|")[1].strip()[:4] for r in rows] == ["idle", "pool", "refe", "pool"]
    assert "answered without a picture" not in done.stdout
    assert "Traceback" not in done.stderr


def test_pipeline_json_gives_per_process_cpu_and_round_trips() -> None:
    args = ["--agents", "2", "--messages", "3", "--steady", "1.5", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(done.stdout)
    for side in (body, body["reference"]):
        assert side["delivered"] == 6 and side["lost"] == 0 and side["duplicates"] == 0
        for key in ("notifications_per_relay_cpu_s", "relay_cpu_ms_per_poll", "p50_s", "p95_s", "p99_s"):
            assert side[key] > 0, key
        assert set(side["cpu_s"]) >= {"simulator", "redis"}
    assert set(body["cpu_s"]) == {"relay", "simulator", "redis"}
    # The relay stores every notification and polls through Redis; the reference touches neither.
    assert body["redis_round_trips_per_notification"] > 0 and body["redis_round_trips_per_poll"] > 0
    assert body["http_calls_per_poll"] >= 1 and body["reference"]["redis_round_trips_per_poll"] == 0


def test_call_overhead_benchmark_prints_each_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.call_overhead", "--calls", "20", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(done.stdout)
    keys = {
        "httpx_ms_without_sniffio",
        "httpx_ms_with_sniffio",
        "retrier_built_every_call_us",
        "retried_us",
        "send_deadline_wait_for_us",
        "send_deadline_timeout_us",
        "httpx_transport_ms",
        "asyncio_transport_ms",
        "asyncio_transport_no_cookies_ms",
    }
    assert set(body) == keys and all(len(v) == 1 and v[0] > 0 for v in body.values())


def test_steady_benchmark_runs_both_modes_and_loses_nothing() -> None:
    args = ["--agents", "2", "--rate", "2", "--seconds", "3", "--interval", "2", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.steady", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(done.stdout)
    runs = {r["mode"]: r for r in body["runs"]}
    assert set(runs) == {"doorbell", "polling"}
    assert runs["doorbell"]["sockets"] == 2 and runs["polling"]["sockets"] == 0
    for run in runs.values():
        assert run["created"] == 6 and run["lost"] == 0 and run["duplicates"] == 0, run
        assert set(run["cpu_s"]) == {"relay", "simulator", "redis", "load_generator"}
    assert runs["polling"]["doorbell_polls"] == 0
    assert "Traceback" not in done.stderr


def test_hold_summary_benchmark_renders_within_the_platform_limits() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.hold_summary", "--notifications", "300", "--runs", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = json.loads(done.stdout)
    assert run["within_limits"] and run["telegram_messages"] == run["discord_messages"] == 1


def test_journal_benchmark_runs_with_and_without_the_journal() -> None:
    args = ["--agents", "2", "--messages", "3", "--runs", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.journal", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["journal"] for r in rows] == ["on", "off (reference)"]
    assert all(r["delivered"] == 6 and r["lost"] == 0 and r["duplicates"] == 0 for r in rows), rows
    assert "Traceback" not in done.stderr


def test_cluster_benchmark_runs_on_one_valkey_and_on_a_cluster_and_loses_nothing() -> None:
    args = ["--agents", "3", "--messages", "4", "--steady", "1", "--runs", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    if done.returncode == 3:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-2000:]
    body = json.loads(done.stdout)
    for mode in ("one_valkey", "cluster_3_primaries"):
        (run,) = body[mode]
        assert run["delivered"] == 12 and run["lost"] == 0 and run["duplicates"] == 0, run
        assert run["cpu_redis_s"] > 0 and run["cpu_relay_s"] > 0, run
    assert "Traceback" not in done.stderr


def test_autocomplete_benchmark_answers_every_keystroke() -> None:
    args = ["--keystrokes", "8", "--burst", "4", "--renders", "100", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.autocomplete", *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["keystrokes"] == 16 and result["over_3s"] == 0
    assert result["render_notification_cpu_us_zh"] > 0 and result["cpu_redis_s"] >= 0
    assert "Traceback" not in done.stderr


def test_report_renders_every_json_result_and_rewrites_only_the_readme_block(tmp_path: Path) -> None:
    from bench.report import BEGIN, END, load, render, write_readme

    results = tmp_path / "results"
    results.mkdir()
    pipeline = {
        "agents": 100,
        "messages": 20,
        "per_second": 740.0,
        "notifications_per_relay_cpu_s": 1088.0,
        "redis_round_trips_per_notification": 3.33,
        "p50_s": 2.0,
        "p99_s": 2.9,
        "lost": 0,
        "duplicates": 0,
        "cpu_s": {"relay": 1.84, "simulator": 0.19, "redis": 0.30},
    }
    side = {
        "per_second": 45.6,
        "p50": 33.0,
        "p99": 64.6,
        "delivered": 3000,
        "duplicates": 0,
        "429s": 0,
        "requests": 3000,
    }
    discord = {
        "workload": {"channels": 100, "notifications": 3000},
        "adapter_rate": 47.6,
        "ceiling_per_second": 50.0,
        "pacing_pct": 91.2,
        "429s_per_10k_requests": 0.0,
        "relay": {**side, "cpu_s": {"relay_and_fake": 20.0, "redis": 2.0}},
        "reference": side,
    }
    (results / "pipeline-run1.json").write_text(json.dumps(pipeline))
    (results / "discord-run1.json").write_text(json.dumps(discord))
    (results / "other.json").write_text(json.dumps({"kind": "soak", "poll_lateness_p99_s": 1.25}))
    soak = {
        "agents": 10000,
        "interval_s": 30,
        "minutes": 10,
        "heartbeats": 200000,
        "polls_per_s": 333.3,
        "lateness_p50_s": 0.1,
        "lateness_p99_s": 1.5,
        "lateness_max_s": 2.5,
        "late_polls": 3,
        "duplicates": 0,
        "relay_cpu_share": 0.5,
        "cpu_s": {"relay": 300.0, "simulator": 50.0, "redis": 40.0},
    }
    steady = {
        "agents": 100,
        "rate": 20,
        "runs": [
            {
                "mode": "doorbell",
                "delivered": 600,
                "window_s": 30.0,
                "lost": 0,
                "duplicates": 0,
                "p50_s": 0.4,
                "p99_s": 1.1,
                "redis_round_trips": 1200,
                "cpu_s": {"relay": 2.0, "simulator": 0.5, "redis": 0.4, "load_generator": None},
            }
        ],
    }
    processes = {
        "kind": "3 relay process(es), console sink, 100 agents x 100",
        "per_second": 942.5,
        "notifications_per_relay_cpu_s": 878.7,
        "cpu_s": {"relay": 11.38, "simulator": 0.7, "redis": 1.65},
        "p50": 13.48,
        "p99": 22.04,
        "lost": 0,
        "duplicates": 0,
    }
    (results / "soak.json").write_text(json.dumps(soak))
    (results / "steady.json").write_text(json.dumps(steady))
    (results / "processes-3.json").write_text(json.dumps(processes))
    (results / "broken.json").write_text("{not json")
    table = render(load(results))
    assert "| pipeline 100 agents x 20 (pipeline-run1) | 740 | 1,088 | 1.84 / 0.30 / 0.19 | 3.33 |" in table
    assert "91% of 50/s (paced at 47.6)" in table and "150 incl. fake" in table
    assert "poll_lateness_p99_s 1.25" in table
    assert (
        "| poll soak, 10,000 agents every 30 s for 10 min (soak) | 333.3 polls | 667 polls | 300.00 / 40.00 / 50.00 |"
        in table
    )
    assert (
        "| steady state, 100 agents, 20/s created, doorbell (steady) | 20.0 | 300 | 2.00 / 0.40 / 0.50 | 2.00 |"
        in table
    )
    assert (
        "| 3 relay process(es), console sink, 100 agents x 100 (processes-3) | 942 | 879 | 11.38 / 1.65 / 0.70 | – "
        "| 13.48 / 22.04 | 0 / 0 |" in table
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold table\n{END}\nafter\n")
    write_readme(readme, table)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{END}\nafter\n")
    assert "old table" not in text and table in text
