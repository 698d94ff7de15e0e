"""Discord settings, read from DISCORD_* environment variables.

Only configuration lives here: the adapter applies the two URL settings to discord.py once, when
it is constructed. Must not open connections or touch library state itself.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY = "wss://gateway.discord.gg/"


class DiscordSettings(BaseSettings):
    """DISCORD_BOT_TOKEN enables the adapter; the rest have production defaults."""

    model_config = SettingsConfigDict(env_prefix="DISCORD_", env_file=".env", extra="ignore", env_ignore_empty=True)

    bot_token: SecretStr | None = None
    # Comma-separated guild ids: commands sync to these guilds (instant) instead of globally.
    guild_ids: Annotated[tuple[int, ...], NoDecode] = ()
    # REST base, e.g. a proxy; discord.py reads it from the class attribute `Route.BASE`.
    api_base: str = DEFAULT_API_BASE
    # A non-sharded discord.py Client connects to `DiscordWebSocket.DEFAULT_GATEWAY` directly
    # (2.7 does not ask GET /gateway), so a proxy or test server must be named here.
    gateway_url: str | None = None
    # Bot-wide ceiling on REST requests per second, shared through Redis by every relay process
    # (interaction answers are exempt, as at Discord). Discord allows 50 requests/s per bot and
    # discord.py has no global limiter; half of it (as MonitoRSS runs) leaves room for anything
    # else using the token and matches `DiscordAdapter.limits.sends_per_second`.
    max_requests_per_second: float = Field(default=50.0, gt=0, le=50)
    # Upper bound for one send, including discord.py's own waits and retries.
    send_timeout: float = Field(default=30.0, gt=0)

    @field_validator("guild_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part for part in value.replace(" ", "").split(",") if part]
            # isdigit first: int() of a 10,000-digit string raises Python's own conversion message.
            if not all(part.isascii() and part.isdigit() and len(part) <= 20 for part in parts):
                raise ValueError("must be comma-separated guild ids (numbers)")
            return tuple(int(part) for part in parts)
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value().strip())
