"""Core settings, read from the environment and `.env` (pydantic-settings).

Platform settings (bot tokens, API bases) live with their adapters. `describe_error` turns a
validation failure into the one line an operator sees instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay.keys import Keys

CLUSTER_POOL_MARGIN = 64  # commands, watches, holds, the doorbell and health beside polls and sends


class RelaySettings(BaseSettings):
    # A blank value (`RELAY_SECRET_KEY=` as .env.example ships it) means "unset", not "invalid".
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    aitrader_base_url: AnyHttpUrl = Field(AnyHttpUrl("https://ai4trade.ai"), description="AI-Trader server")
    aitrader_timeout_seconds: float = Field(10.0, gt=0, le=120, description="timeout of every AI-Trader call")
    redis_url: str | None = Field(None, description="Redis to use; unset starts an embedded one")
    redis_ssl_cert_reqs: Literal["required", "optional", "none"] | None = Field(
        None, description="rediss:// certificate check; none for services with self-signed certificates"
    )
    redis_max_connections: int = Field(
        40, ge=4, le=10_000, description="Redis connections per process (per cluster node with REDIS_CLUSTER)"
    )
    redis_cluster: bool = Field(False, description="REDIS_URL names a node of a Redis/Valkey Cluster")
    relay_data_dir: Path = Field(Path(".relay"), description="embedded Redis data and generated key")
    relay_secret_key: SecretStr | None = Field(None, description="AES-256 key (urlsafe base64, 32 bytes)")
    relay_key_prefix: str = Field("relay", pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="Redis key prefix")
    poll_min_seconds: float = Field(30.0, ge=1, description="shortest heartbeat interval")
    poll_max_seconds: float = Field(300.0, ge=1, description="longest heartbeat interval and backoff cap")
    feed_poll_seconds: float = Field(60.0, ge=5, description="interval of feed and trader watches")
    poll_concurrency: int = Field(32, ge=1, le=1000, description="agents polled at once per process")
    aitrader_connections: int = Field(
        34, ge=3, le=1000, description="connections to AI-Trader per process; polls use at most all but two at once"
    )
    drain_max_calls: int = Field(10, ge=1, le=100, description="heartbeat calls per drain at most")
    doorbell: bool = Field(
        True, description="hold AI-Trader's WebSocket per consume-mode agent and poll it when it pushes"
    )
    doorbell_max_sockets: int = Field(1000, ge=0, le=100_000, description="doorbell sockets per process")
    delivery_concurrency: int = Field(256, ge=1, le=1000, description="chats sent to at once")
    delivery_send_timeout_seconds: float = Field(
        120.0, gt=0, le=3600, description="one send, rate-limit waits included"
    )
    delivery_max_attempts: int = Field(5, ge=1, le=50, description="transient failures before a dead letter")
    chart_workers: int = Field(1, ge=1, le=16, description="processes drawing /chart images at once")
    chart_cache_seconds: float = Field(60.0, ge=0, le=3600, description="identical /chart answers reused this long")
    shutdown_grace_seconds: float = Field(8.0, gt=0, le=25, description="time for in-flight work on SIGTERM")
    log_level: str = Field("INFO", pattern=r"^(?i:debug|info|warning|error)$", description="log level")
    port: int | None = Field(
        None, ge=0, le=65535, description="HTTP port: /healthz, /readyz, /metrics and the Telegram webhook"
    )
    ready_max_queue_age_seconds: float = Field(
        900.0, gt=0, description="/readyz fails when the oldest queued delivery is older than this"
    )
    command_rate_per_minute: int = Field(
        20, ge=1, le=10_000, description="commands one user may run per minute (shared by every process)"
    )
    link_rate_per_10_minutes: int = Field(
        5, ge=1, le=10_000, description="/link attempts one user may make per 10 minutes (each asks AI-Trader)"
    )
    feed_rate_per_minute: int = Field(
        10, ge=1, le=10_000, description="/feed searches one user may run per minute (each asks AI-Trader)"
    )
    max_subscriptions_per_chat: int = Field(
        50, ge=1, le=10_000, description="subscriptions and watches one chat may hold"
    )
    max_watches_per_user: int = Field(
        20, ge=1, le=10_000, description="feed and trader watches one user may create, over all chats"
    )
    max_queue_per_chat: int = Field(
        500, ge=10, le=1_000_000, description="deliveries queued for one chat before older ones are dead-lettered"
    )
    owner_ids: str = Field("", max_length=2000, description="platform:user ids allowed /admin (comma-separated)")
    relay_fault_pause: Literal["after_heartbeat", "after_persist", "after_send", "after_hold_release"] | None = Field(
        None, description="testing only: freeze at this point so a test can kill the process there"
    )

    @model_validator(mode="after")
    def _interval_order(self) -> RelaySettings:
        if self.poll_min_seconds > self.poll_max_seconds:
            raise ValueError("POLL_MIN_SECONDS must not exceed POLL_MAX_SECONDS")
        if self.redis_cluster and not self.redis_url:
            raise ValueError("REDIS_CLUSTER needs REDIS_URL (a node of the cluster); the embedded Redis is one server")
        return self

    @property
    def redis_pool_size(self) -> int:
        """Connections per process (per node on a cluster). A cluster client's pool raises when
        it is full instead of waiting, and the hub's keys are all on one node, so unless
        REDIS_MAX_CONNECTIONS is set it is sized for every poll and send this process runs at once."""
        if self.redis_cluster and "redis_max_connections" not in self.model_fields_set:
            return max(self.redis_max_connections, self.cluster_pool_needed)
        return self.redis_max_connections

    @property
    def cluster_pool_needed(self) -> int:
        return self.poll_concurrency + self.delivery_concurrency + CLUSTER_POOL_MARGIN

    def cluster_pool_warning(self) -> str | None:
        """Said at start and by `check`: a cluster pool smaller than the work this process runs at once."""
        if not self.redis_cluster or self.redis_pool_size >= self.cluster_pool_needed:
            return None
        return (
            f"REDIS_MAX_CONNECTIONS={self.redis_max_connections} with REDIS_CLUSTER: the cluster client does not "
            "wait for a free connection, so polls and sends past it fail and are retried; leave it unset or set it "
            f"to at least POLL_CONCURRENCY + DELIVERY_CONCURRENCY + {CLUSTER_POOL_MARGIN} ({self.cluster_pool_needed})"
        )

    def keys(self) -> Keys:
        """The key schema these settings name: the prefix, and hash tags on a cluster."""
        return Keys(self.relay_key_prefix, cluster=self.redis_cluster)

    @property
    def base_url(self) -> str:
        return str(self.aitrader_base_url).rstrip("/")


def describe_error(error: ValidationError, env_prefix: str = "") -> str:
    """One line naming the variable as the user writes it (`TELEGRAM_GLOBAL_RATE`, not
    `global_rate`) and what it expects. A field read through an alias (`PORT`) is already named
    as written, so the prefix is not added to it."""
    first = error.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "__root__"]
    name = ""
    if loc:
        name = loc[0] if loc[0].isupper() else (env_prefix + loc[0]).upper()
    msg = first.get("msg", "invalid value")
    msg = msg.removeprefix("Value error, ")
    return f"configuration error: {name}: {msg}" if name else f"configuration error: {msg}"
