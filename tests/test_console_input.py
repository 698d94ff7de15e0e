"""The console (`demo`, `run --console`) survives any standard input, quits at its end, and a
relay killed with SIGKILL leaves no embedded valkey-server behind.

Each test runs the real `demo` as a subprocess; its embedded Redis lives in a temporary
directory of the test's own (TMPDIR), so the test can find that server's process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_DROP = ("TELEGRAM_", "DISCORD_", "REDIS_", "RELAY_", "POLL_", "FEED_", "AITRADER_", "PORT", "METRICS_")


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ci-"))  # short: the Unix socket path limit
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo(scratch: Path, stdin: Any, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_DROP)}
    env["PYTHONPATH"] = str(REPO)
    env["TMPDIR"] = str(scratch)
    return subprocess.Popen(
        [sys.executable, "-m", "adapters.main", "demo", "--every", "1", *args],
        cwd=scratch,
        env=env,
        stdin=stdin,
        stdout=open(scratch / "out.txt", "wb"),  # closed with the process
        stderr=open(scratch / "err.txt", "wb"),
        **popen,
    )


def finished(proc: subprocess.Popen[bytes], scratch: Path, timeout: float = 60) -> tuple[int, str, str]:
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, (scratch / "out.txt").read_text(errors="replace"), (scratch / "err.txt").read_text(errors="replace")


def wait_until(predicate: Any, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


LONG_LINE = b"/feed " + b"a" * (100 * 1024) + b"\n"


def test_stdin_from_a_file_with_an_overlong_line_answers_every_other_line_then_quits(scratch: Path) -> None:
    typed = scratch / "typed.txt"
    typed.write_bytes(b"/help\n" + LONG_LINE + b"/status\n")
    with typed.open("rb") as stdin:
        code, out, err = finished(demo(scratch, stdin), scratch)
    assert code == 0, err
    assert "Traceback" not in err
    assert "== Commands ==" in out
    assert "That line is longer than 64 KiB; it was ignored." in out
    assert "== Status ==" in out  # the line after the long one was still read and answered


def test_overlong_line_through_a_pipe_then_end_of_input_quits(scratch: Path) -> None:
    proc = demo(scratch, subprocess.PIPE)
    assert proc.stdin is not None
    wait_until(lambda: "Ctrl-D to quit" in (scratch / "out.txt").read_text(), what="the demo to start")
    proc.stdin.write(LONG_LINE + b"/help\n")
    proc.stdin.flush()
    wait_until(lambda: "== Commands ==" in (scratch / "out.txt").read_text(), what="/help after the long line")
    proc.stdin.close()  # Ctrl-D
    code, out, err = finished(proc, scratch)
    assert code == 0 and "Traceback" not in err, err
    assert "longer than 64 KiB" in out


@pytest.mark.parametrize("kind", ["devnull", "closed"])
def test_empty_or_closed_stdin_quits_cleanly(scratch: Path, kind: str) -> None:
    if kind == "devnull":
        proc = demo(scratch, subprocess.DEVNULL)
    else:
        proc = demo(scratch, None, preexec_fn=lambda: os.close(0))
    code, out, err = finished(proc, scratch)
    assert code == 0, err
    assert "Traceback" not in err and err.strip() == "", err
    assert "Linking the demo agent" in out


@pytest.mark.parametrize("delay", [0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.3, 1.6])
def test_ctrl_c_in_the_first_second_exits_without_a_traceback(scratch: Path, delay: float) -> None:
    proc = demo(scratch, subprocess.PIPE)
    time.sleep(delay)  # when the signal lands, not how long anything may take
    proc.send_signal(signal.SIGINT)
    code, _out, err = finished(proc, scratch)
    assert proc.stdin is not None
    proc.stdin.close()
    assert code == 0, err
    assert "Traceback" not in err and "Error" not in err, err


def _valkey_pids(scratch: Path) -> list[int]:
    """valkey-server processes working in a directory under this test's temporary directory
    (Valkey rewrites its command line, so the executable and the working directory tell)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe, cwd = os.readlink(entry / "exe"), os.readlink(entry / "cwd")
        except OSError:
            continue
        if exe.endswith("valkey-server") and cwd.startswith(str(scratch)):
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state == "Z"  # a zombie has exited; only its parent's wait is missing


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the server through /proc (Linux)")
def test_sigkilled_relay_leaves_no_embedded_valkey_server(scratch: Path) -> None:
    proc = demo(scratch, subprocess.PIPE)
    stdin: IO[bytes] | None = proc.stdin
    try:
        wait_until(lambda: "Ctrl-D to quit" in (scratch / "out.txt").read_text(), what="the demo to start")
        servers = _valkey_pids(scratch)
        assert len(servers) == 1, servers
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_until(lambda: _gone(servers[0]), what=f"valkey-server {servers[0]} to exit after its relay was killed")
    finally:
        if stdin is not None:
            stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _valkey_pids(scratch):  # never leave one behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
