"""Configuration errors end as one line and exit status 2; agent tokens are sealed at rest.

The CLI runs as a real subprocess from an empty directory (so no `.env` is read) with every
relay, platform and Redis variable removed from its environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aitrader_sim.world import World
from relay.app import Relay
from relay.config import RelaySettings
from relay.errors import ConfigError
from relay.redis_values import stream_entries, text, text_dict, text_or_empty, texts
from relay.tokens import TokenBox, new_key_text
from tests.cli import cli
from tests.conftest import Chat


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# --- the CLI ------------------------------------------------------------------------------------------


def test_non_numeric_poll_interval_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", POLL_MIN_SECONDS="abc", TELEGRAM_BOT_TOKEN="123:abc")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "POLL_MIN_SECONDS" in line
    assert done.stdout == ""


def test_min_interval_above_the_default_max_names_the_rule(tmp_path: Path) -> None:
    done = cli(tmp_path, "run", POLL_MIN_SECONDS="400", TELEGRAM_BOT_TOKEN="123:abc")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "POLL_MIN_SECONDS" in line and "POLL_MAX_SECONDS" in line and "exceed" in line


def test_check_rejects_what_run_rejects(tmp_path: Path) -> None:
    done = cli(tmp_path, "check", RELAY_KEY_PREFIX="bad prefix!")
    assert done.returncode == 2
    assert "RELAY_KEY_PREFIX" in one_line(done.stderr)


def test_no_platform_names_both_tokens(tmp_path: Path) -> None:
    done = cli(tmp_path, "run")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "TELEGRAM_BOT_TOKEN" in line and "DISCORD_BOT_TOKEN" in line


def test_external_redis_without_a_secret_key_is_refused(tmp_path: Path, redis_url: str) -> None:
    done = cli(tmp_path, "run", TELEGRAM_BOT_TOKEN="123:abc", REDIS_URL=redis_url)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert any("RELAY_SECRET_KEY" in line for line in lines), done.stderr
    assert lines[-1].startswith("configuration error: RELAY_SECRET_KEY")
    assert not (tmp_path / ".relay" / "secret.key").exists()  # no key was made up for an external Redis


def test_unreachable_redis_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = cli(
        tmp_path,
        "run",
        TELEGRAM_BOT_TOKEN="123:abc",
        REDIS_URL="redis://127.0.0.1:1/0",
        RELAY_SECRET_KEY=new_key_text(),
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "REDIS_URL" in one_line(done.stderr)


def test_check_refuses_external_redis_without_a_secret_key(tmp_path: Path) -> None:
    done = cli(tmp_path, "check", TELEGRAM_BOT_TOKEN="123:abc", REDIS_URL="redis://127.0.0.1:1/0")
    assert done.returncode == 2
    assert "RELAY_SECRET_KEY" in one_line(done.stderr)


def test_check_refuses_a_malformed_secret_key(tmp_path: Path) -> None:
    done = cli(tmp_path, "check", TELEGRAM_BOT_TOKEN="123:abc", RELAY_SECRET_KEY="short")
    assert done.returncode == 2
    assert "RELAY_SECRET_KEY" in one_line(done.stderr)


def test_keygen_prints_a_usable_key(tmp_path: Path) -> None:
    first = cli(tmp_path, "keygen")
    assert first.returncode == 0
    key = first.stdout.strip()
    assert "\n" not in key and len(key) == 43
    box = TokenBox.from_text(key)
    assert box.open(box.seal("tok", 3), 3) == "tok"
    # And the settings accept it as RELAY_SECRET_KEY.
    settings = RelaySettings(_env_file=None, relay_secret_key=key)
    assert settings.relay_secret_key is not None


def test_check_exits_zero_and_reports_platforms(tmp_path: Path) -> None:
    done = cli(tmp_path, "check")
    assert done.returncode == 2  # `run` refuses to start without a platform, so `check` says so too
    assert "no chat platform configured" in one_line(done.stderr)
    with_tg = cli(tmp_path, "check", TELEGRAM_BOT_TOKEN="123:abc")
    assert with_tg.returncode == 0 and "platforms: telegram" in with_tg.stdout


def test_a_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    # The flip side of running from an empty directory: the CLI really reads `.env` from cwd.
    (tmp_path / ".env").write_text("POLL_MIN_SECONDS=abc\n")
    done = cli(tmp_path, "check")
    assert done.returncode == 2 and "POLL_MIN_SECONDS" in one_line(done.stderr)


# --- token encryption ---------------------------------------------------------------------------------


def test_seal_and_open_round_trip_bound_to_the_agent() -> None:
    box = TokenBox.from_text(new_key_text())
    token = "A1b2-C3d4_" * 4
    sealed = box.seal(token, 1)
    assert token not in sealed
    assert box.open(sealed, 1) == token
    assert box.open(sealed, 2) is None  # a record copied onto another agent does not open
    assert box.seal(token, 1) != sealed  # fresh nonce each time
    other = TokenBox.from_text(new_key_text())
    assert other.open(sealed, 1) is None  # another key does not open it
    tampered = sealed[:-4] + ("AAAA" if sealed[-4:] != "AAAA" else "BBBB")
    assert box.open(tampered, 1) is None
    assert box.open("not base64 at all!!", 1) is None


@pytest.mark.parametrize("bad", ["", "short", "!!!!", new_key_text()[:-4]])
def test_bad_secret_keys_are_config_errors_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="RELAY_SECRET_KEY"):
        TokenBox.from_text(bad)


async def test_linked_token_is_not_stored_in_clear_anywhere_in_redis(relay: Relay, dm: Chat, world: World) -> None:
    agent = world.create_agent("ann")
    assert f"#{agent.id}" in await dm.text("link", token=agent.token)
    await dm.text("subscribe", what="all")
    world.push_messages(agent.id, 3, type="note")
    await relay.poller.poll(agent.id)
    values: list[str] = []
    r = relay.redis
    async for key in r.scan_iter(match=f"{relay.keys.prefix}:*", count=1000):
        kind = text(await r.type(key))
        values.append(text(key))
        if kind == "string":
            values.append(text_or_empty(await r.get(key)))
        elif kind == "hash":
            values += [x for kv in text_dict(await r.hgetall(key)).items() for x in kv]
        elif kind == "stream":
            values += [x for _, f in stream_entries(await r.xrange(key)) for kv in f.items() for x in kv]
        elif kind == "set":
            values += texts(await r.smembers(key))
        elif kind == "zset":
            values += texts(await r.zrange(key, 0, -1))
    assert len(values) > 10  # the scan did find the relay's records
    sealed = await r.hget(relay.keys.agent(agent.id), "token")
    assert sealed is not None and text(sealed) in values
    leaked = [v for v in values if agent.token in v]
    assert leaked == []
    stored = await relay.store.agent(agent.id)
    assert stored is not None and stored.token == agent.token  # it is still recoverable with the key


def test_platform_tokens_in_dot_env_reach_the_adapters_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README tells users to put bot tokens in .env: every settings class must read it."""
    from adapters.discord import DiscordSettings
    from adapters.main import PlatformSwitches
    from adapters.telegram import TelegramSettings

    for name in ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:abc\nDISCORD_BOT_TOKEN=xyz.abc\n")
    monkeypatch.chdir(tmp_path)
    switches = PlatformSwitches()
    assert switches.telegram_bot_token is not None and switches.discord_bot_token is not None
    assert TelegramSettings().bot_token.get_secret_value() == "123:abc"
    discord_token = DiscordSettings().bot_token
    assert discord_token is not None and discord_token.get_secret_value() == "xyz.abc"
