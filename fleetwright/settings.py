"""Fleetwright's settings: one pydantic-settings class, read from FLEETWRIGHT_* and `.env`.

Settings flow settings → blocks → tasks; tasks never read the environment themselves.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "reset_settings"]


class Settings(BaseSettings):
    """Where Fleetwright keeps its state and how it reaches its services."""

    model_config = SettingsConfigDict(
        env_prefix="FLEETWRIGHT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(
        default_factory=lambda: Path.home() / ".fleetwright",
        description="Folder for local state: profile states, artifacts, embedded databases.",
    )
    database_url: str | None = Field(
        default=None,
        description="Catalogue URL; default a SQLite file in the home. "
        "Postgres: postgresql+psycopg://user:pass@host/db",
    )
    chromium_executable: Path | None = Field(
        default=None, description="A Chromium/Chrome binary; default Playwright's own browser."
    )
    prefect_api_url: str | None = Field(
        default=None, description="Prefect API URL; default the one `fleetwright up` starts."
    )
    prefect_port: int = Field(default=4200, description="Port of the local Prefect server.")
    redis_url: str | None = Field(
        default=None, description="Redis for state shared by workers (circuit breakers)."
    )
    proxy_echo_url: str | None = Field(
        default=None, description="IP-echo URL for proxy probes; default the demo site's /ip."
    )
    proxy_info_url: str | None = Field(
        default=None, description="IP-info URL (JSON ip/country/timezone) for exit-IP checks."
    )
    headless: bool = True
    browsers_per_worker: int = Field(default=2, ge=1, le=32)
    contexts_per_browser: int = Field(
        default=200, ge=1, description="Recycle a shared browser after this many contexts."
    )
    lease_ttl: timedelta = Field(default=timedelta(seconds=60))
    lease_wait: timedelta = Field(default=timedelta(seconds=30))
    state_versions_kept: int = Field(default=5, ge=1)
    demo_site_port: int = Field(default=8765)
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key for block encryption, given to the local Prefect server "
        "`fleetwright up` starts (its PREFECT_SERVER_ENCRYPTION_KEY).",
    )

    metrics: bool = Field(
        default=True,
        description="Record Prometheus metrics (sessions, phases, browsers, services) into "
        "the host's metrics folder, which `fleetwright metrics serve` exposes.",
    )
    metrics_port: int = Field(
        default=9464, ge=1, le=65535, description="Port of `fleetwright metrics serve`."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line with run/profile/session ids.",
    )

    @field_validator("lease_ttl", "lease_wait", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        """Durations from the environment may be plain seconds ("60", "2.5")."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    @property
    def catalogue_url(self) -> str:
        """The catalogue URL, defaulting to SQLite in the home."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'catalogue.db'}"

    @property
    def profiles_dir(self) -> Path:
        return self.home / "profiles"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def commands_dir(self) -> Path:
        return self.home / "commands"

    @property
    def metrics_dir(self) -> Path:
        """Where every Fleetwright process on this host writes its metrics (multiprocess)."""
        return self.home / "metrics"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call reset_settings() after changing the env)."""
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
