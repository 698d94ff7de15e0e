"""Set-up as a newcomer does it: `.env.example` copied, `check`, the CLI's options, and every
configuration mistake ending as one line naming the variable and the cause, exit status 2.

Each CLI call is a real subprocess in an empty directory, with every relay, platform and Redis
variable removed from its environment (only what a test sets is seen).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import RelaySettings
from relay.tokens import new_key_text
from tests.cli import REPO, SETTING_PREFIXES, cli


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, no traceback, exactly one line on stderr, nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def here() -> Iterator[Path]:
    # Short: the embedded Redis' Unix socket lives under RELAY_DATA_DIR (108-byte path limit).
    short = Path(f"/tmp/su-{os.getpid()}-{os.urandom(3).hex()}")
    short.mkdir()
    yield short
    shutil.rmtree(short, ignore_errors=True)


# --- .env.example as shipped ------------------------------------------------------------------


def test_untouched_env_example_loads_every_blank_as_unset(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(REPO / ".env.example", here / ".env")
    monkeypatch.chdir(here)
    for name in list(os.environ):
        if name.upper().startswith(SETTING_PREFIXES):
            monkeypatch.delenv(name)
    settings = RelaySettings()
    # The blank PORT=, OWNER_IDS=, RELAY_FAULT_PAUSE= and RELAY_SECRET_KEY= lines are "unset".
    assert settings.port is None
    assert settings.owner_ids == ""
    assert settings.relay_fault_pause is None
    assert settings.relay_secret_key is None
    assert settings.redis_url is None


def test_env_example_with_only_the_telegram_token_passes_check(here: Path) -> None:
    example = (REPO / ".env.example").read_text()
    assert "\nTELEGRAM_BOT_TOKEN=\n" in example
    (here / ".env").write_text(example.replace("\nTELEGRAM_BOT_TOKEN=\n", "\nTELEGRAM_BOT_TOKEN=1234567:fake\n"))
    done = cli(here, "check")
    assert done.returncode == 0, done.stderr
    assert "configuration ok; platforms: telegram" in done.stdout
    # It says what it checked, including the store it would use.
    checked = next(line for line in done.stdout.splitlines() if line.startswith("checked:"))
    assert "TELEGRAM_* settings" in checked
    assert "RELAY_DATA_DIR writable" in checked


def test_untouched_env_example_check_says_no_platform(here: Path) -> None:
    shutil.copy(REPO / ".env.example", here / ".env")
    line = one_error_line(cli(here, "check"))
    assert "no chat platform configured" in line and "TELEGRAM_BOT_TOKEN" in line


# --- check rejects what run rejects, naming the variable as written ---------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TELEGRAM_BOT_TOKEN": "1234567:fake", "TELEGRAM_GLOBAL_RATE": "abc"}, "TELEGRAM_GLOBAL_RATE:"),
        ({"DISCORD_BOT_TOKEN": "x" * 20, "DISCORD_GUILD_IDS": "abc"}, "DISCORD_GUILD_IDS:"),
        ({"TELEGRAM_BOT_TOKEN": "1234567:fake", "PORT": "http"}, "PORT:"),
        ({"TELEGRAM_BOT_TOKEN": "1234567:fake", "REDIS_URL": "garbage"}, "REDIS_URL:"),
    ],
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_check_and_run_reject_bad_platform_and_store_settings_alike(
    here: Path, command: str, env: dict[str, str], expected: str
) -> None:
    env = {"RELAY_SECRET_KEY": new_key_text(), **env}
    line = one_error_line(cli(here, command, **env))
    assert line.startswith(f"configuration error: {expected}"), line


def test_guild_ids_of_ten_thousand_digits_are_a_one_line_error(here: Path) -> None:
    line = one_error_line(cli(here, "check", DISCORD_BOT_TOKEN="x" * 20, DISCORD_GUILD_IDS="9" * 10_000))
    assert line.startswith("configuration error: DISCORD_GUILD_IDS:")
    assert "4300" not in line


def test_unwritable_data_dir_names_the_variable_and_the_cause(here: Path) -> None:
    # Root may write anywhere, so "below a regular file" is the unwritable place every user has.
    (here / "file").write_text("")
    for command in ("check", "run"):
        line = one_error_line(
            cli(here, command, TELEGRAM_BOT_TOKEN="1234567:fake", RELAY_DATA_DIR=str(here / "file" / "d"))
        )
        assert line == f"configuration error: RELAY_DATA_DIR: not a directory ({here / 'file' / 'd'})", line


def test_unreachable_redis_is_one_line(here: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: bind, then close
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_error_line(
        cli(
            here,
            "check",
            TELEGRAM_BOT_TOKEN="1234567:fake",
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            RELAY_SECRET_KEY=new_key_text(),
        )
    )
    assert line == "configuration error: REDIS_URL: cannot connect (connection refused)"


def test_database_number_that_does_not_exist_is_one_line(here: Path, redis_url: str) -> None:
    if not redis_url.startswith("unix://"):
        pytest.skip("the embedded test Redis is addressed by socket; a REDIS_URL server may have other databases")
    url = f"{redis_url}?db=99"  # Valkey has 16 databases by default
    line = one_error_line(
        cli(here, "check", TELEGRAM_BOT_TOKEN="1234567:fake", REDIS_URL=url, RELAY_SECRET_KEY=new_key_text())
    )
    assert line.startswith("configuration error: REDIS_URL: the database number in the URL does not exist"), line


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers, like a Redis stuck behind a broken proxy."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_redis_that_never_answers_is_one_line(here: Path, silent_server: int) -> None:
    for command in ("check", "run"):
        line = one_error_line(
            cli(
                here,
                command,
                TELEGRAM_BOT_TOKEN="1234567:fake",
                REDIS_URL=f"redis://127.0.0.1:{silent_server}/0",
                RELAY_SECRET_KEY=new_key_text(),
            )
        )
        assert line.startswith("configuration error: REDIS_URL: the server accepted the connection but did not answer")


def test_demo_with_a_bad_environment_value_is_one_line(here: Path) -> None:
    line = one_error_line(cli(here, "demo", "--seconds", "5", POLL_CONCURRENCY="abc"))
    assert line.startswith("configuration error: POLL_CONCURRENCY:")


# --- the command line itself ----------------------------------------------------------------------


def test_version(here: Path) -> None:
    from relay import __version__

    done = cli(here, "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"aitrader-relay {__version__}"


def test_demo_help_describes_the_demo_and_its_options(here: Path) -> None:
    done = cli(here, "demo", "--help")
    assert done.returncode == 0
    assert "simulator" in done.stdout and "Ctrl-D" in done.stdout
    assert "--seconds" in done.stdout and "--every" in done.stdout


@pytest.mark.parametrize("args", [("--seconds", "-1"), ("--every", "0"), ("--every", "nan"), ("--seconds", "abc")])
def test_nonsensical_demo_options_get_a_usage_line(here: Path, args: tuple[str, ...]) -> None:
    done = cli(here, "demo", *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: aitrader-relay demo")
    assert f"argument {args[0]}" in done.stderr
