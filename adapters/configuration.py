"""Reading and checking every setting before anything starts, the same way for `run` and `check`.

Each failure becomes a `ConfigError` whose text names the variable as the user writes it
(`TELEGRAM_GLOBAL_RATE`, not `global_rate`) and the cause, so the CLI can print one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay.config import RelaySettings, describe_error
from relay.errors import ConfigError
from relay.tokens import TokenBox

NO_PLATFORM = (
    "no chat platform configured: set TELEGRAM_BOT_TOKEN to enable Telegram, "
    "DISCORD_BOT_TOKEN to enable Discord (or try `aitrader-relay demo`, which needs neither)"
)

S = TypeVar("S", bound=BaseSettings)


class PlatformSwitches(BaseSettings):
    """Only which platforms are on; each adapter reads its own full settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)
    telegram_bot_token: SecretStr | None = None
    discord_bot_token: SecretStr | None = None

    @property
    def enabled(self) -> list[str]:
        on = (("telegram", self.telegram_bot_token), ("discord", self.discord_bot_token))
        return [name for name, token in on if token is not None and token.get_secret_value().strip()]


def load(cls: type[S], env_prefix: str = "") -> S:
    """`cls()` from the environment and `.env`, with a validation failure as a one-line ConfigError."""
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigError(describe_error(exc, env_prefix).removeprefix("configuration error: ")) from None


def check_key(settings: RelaySettings) -> None:
    """The key rules `run` would enforce, checked before anything is started."""
    if settings.relay_secret_key is not None:
        TokenBox.from_text(settings.relay_secret_key.get_secret_value())
    elif settings.redis_url:
        raise ConfigError(
            "RELAY_SECRET_KEY: required when REDIS_URL is set (generate one with `aitrader-relay keygen`)"
        )


@dataclass
class Checked:
    """What was read and checked, to say so (`aitrader-relay check`)."""

    settings: RelaySettings
    switches: PlatformSwitches
    done: list[str] = field(default_factory=list)


def platform_settings(switches: PlatformSwitches) -> list[str]:
    """Validate the settings of every enabled platform; returns what was checked."""
    done = []
    if "telegram" in switches.enabled:
        from adapters.telegram.settings import TelegramSettings

        load(TelegramSettings, "TELEGRAM_")
        done.append("TELEGRAM_* settings")
    if "discord" in switches.enabled:
        from adapters.discord.settings import DiscordSettings

        load(DiscordSettings, "DISCORD_")
        done.append("DISCORD_* settings")
    return done


def read_all(*, need_platform: bool) -> Checked:
    """Core settings, the platform switches, each enabled platform's settings and the key rules."""
    checked = Checked(load(RelaySettings), load(PlatformSwitches))
    checked.done.append("core settings")
    if need_platform and not checked.switches.enabled:
        raise ConfigError(NO_PLATFORM)
    checked.done += platform_settings(checked.switches)
    check_key(checked.settings)
    checked.done.append("RELAY_SECRET_KEY" if checked.settings.relay_secret_key else "key rules (embedded: generated)")
    return checked
