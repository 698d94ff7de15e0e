"""Telegram settings, read from the environment (TELEGRAM_*, PORT) and validated once.

Only this module reads the environment for the Telegram adapter; secrets stay `SecretStr`
so they never show in a repr or a log line.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# setWebhook's secret_token: 1-256 characters, only A-Z, a-z, 0-9, _ and - (Bot API).
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# setWebhook: an HTTPS URL; "Ports currently supported for webhooks: 443, 80, 88, 8443" (Bot API).
WEBHOOK_PORTS = (443, 80, 88, 8443)


class TelegramSettings(BaseSettings):
    """The Telegram adapter is enabled when TELEGRAM_BOT_TOKEN is set (see `from_env`)."""

    model_config = SettingsConfigDict(
        env_prefix="TELEGRAM_", env_file=".env", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    bot_token: SecretStr
    webhook_url: str | None = None  # set: webhook mode; unset: long polling
    webhook_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(32)))
    port: int = Field(8080, validation_alias=AliasChoices("PORT", "port"))  # Heroku's $PORT
    api_base: str = "https://api.telegram.org"
    global_rate: float = Field(30.0, gt=0)  # msgs/s across chats: Telegram's own ceiling, about 30
    request_timeout: float = Field(10.0, gt=0)

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_url")
    @classmethod
    def _url_telegram_accepts(cls, value: str | None) -> str | None:
        """Refuse here, in one line, what setWebhook would refuse at start with a raw error."""
        if value is None:
            return None
        try:
            parts = urlsplit(value.strip())
            port = parts.port or 443
        except ValueError:
            raise ValueError("TELEGRAM_WEBHOOK_URL is not a valid URL") from None
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("TELEGRAM_WEBHOOK_URL must be an https:// URL (Telegram refuses others)")
        if port not in WEBHOOK_PORTS:
            raise ValueError(f"TELEGRAM_WEBHOOK_URL port {port}: Telegram delivers only to ports 443, 80, 88 or 8443")
        return value.strip()

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _secret_or_random(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return SecretStr(secrets.token_urlsafe(32))
        if not isinstance(raw, str) or not _SECRET_SHAPE.fullmatch(raw):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -")
        return value

    @field_validator("api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def from_env(cls) -> TelegramSettings | None:
        """The settings, or None when TELEGRAM_BOT_TOKEN is not set (adapter disabled)."""
        probe = _TokenProbe()
        if probe.bot_token is None or not probe.bot_token.get_secret_value().strip():
            return None
        return cls()  # BaseSettings fills the fields from the environment


class _TokenProbe(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELEGRAM_", env_file=".env", extra="ignore", env_ignore_empty=True)
    bot_token: SecretStr | None = None
