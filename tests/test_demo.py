"""The offline demo end to end: simulator, embedded Redis, relay and the console, as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_DROP = ("TELEGRAM_", "DISCORD_", "REDIS_", "RELAY_", "POLL_", "FEED_", "AITRADER_")


def test_demo_links_subscribes_and_shows_every_kind_of_notification(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_DROP)}
    env["PYTHONPATH"] = str(REPO)
    # The console speaks the terminal's language (adapters.main.terminal_locale): English here.
    env.pop("LC_ALL", None)
    env.pop("LC_MESSAGES", None)
    env["LANG"] = "C.UTF-8"
    # The demo keeps its embedded Redis in a mkdtemp() directory: keep that short (unix socket
    # path limit) and ours, so it is removed afterwards.
    scratch = tempfile.mkdtemp(prefix="demo-t-")
    env["TMPDIR"] = scratch
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        # stdin stays open: closing it is Ctrl-D, which would end the demo at once.
        proc = subprocess.Popen(
            [sys.executable, "-m", "adapters.main", "demo", "--seconds", "8", "--every", "1"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
        )
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdin is not None
            proc.stdin.close()
            shutil.rmtree(scratch, ignore_errors=True)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "Something went wrong" not in stdout
    assert "== Linked you (#1) in consume mode ==" in stdout
    assert "Subscribed #1: you (#1) — all kinds — into this chat." in stdout
    titles = {line[3:-3] for line in stdout.splitlines() if line.startswith("== ") and line.endswith(" ==")}
    # The seeded community leaves one of each; the activity loop adds more while it runs.
    for expected in (
        "New follower",
        "New strategy",
        "New discussion",
        "New reply on a strategy",
        "You were mentioned in a discussion",
        "Your reply was accepted",
        "Message (price_alert)",
        "New task",
    ):
        assert expected in titles, (expected, sorted(titles))
    # Reply and mention notices carry the fetched reply text; buttons show as commands.
    assert "Reply by carol: Nice. Which timeframe for the bands?" in stdout
    assert "→ Show replies: /replies 1001" in stdout
    # The cockpit: positions with the copied one named, and a trade waiting for its Confirm.
    assert "== Positions: you (#1) ==" in stdout and "copied from alice (#2)" in stdout
    assert "== Confirm: BUY 0.01 BTC · crypto ==" in stdout and "Confirm: /confirm " in stdout
    # A chart: its caption as text and the path of the saved picture.
    assert "== Profit: you (#1) ==" in stdout and "Profit now: " in stdout
    saved = [line.split("[image: ", 1)[1].rstrip("]") for line in stdout.splitlines() if "[image: " in line]
    assert saved and saved[0].endswith("-profit-1-30d.png")  # (the demo's temp dir is gone by now)
    # Each upstream message id is shown once: nothing is delivered twice.
    footers = [line.strip() for line in stdout.splitlines() if line.strip().startswith("(#")]
    ids = [f.split()[0] for f in footers]
    assert len(ids) == len(set(ids)), footers
    assert len(ids) > 8  # the activity loop produced more than the seed
