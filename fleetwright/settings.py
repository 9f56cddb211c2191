"""Fleetwright's settings: one pydantic-settings class, read from FLEETWRIGHT_* and `.env`.

Settings flow settings → blocks → tasks; tasks never read the environment themselves.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings", "reset_settings"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    browser_env_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environment variables Chromium and the Playwright driver may see on top "
        "of what a browser needs (PATH, HOME, locale, display, fonts, temporary folders); "
        "comma-separated names.",
    )
    upload_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders `upload` steps may send files from (comma-separated); default "
        "<home>/uploads. A caller's CommandContext.base_dir is allowed too.",
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
        description="Fernet key for block encryption: given to the local Prefect server "
        "`fleetwright up` starts (its PREFECT_SERVER_ENCRYPTION_KEY), and used by bulk block "
        "writes when the server was started with a key of its own.",
    )
    prefect_database_url: SecretStr | None = Field(
        default=None,
        description="The Prefect server's own database (its PREFECT_SERVER_DATABASE_CONNECTION_URL)"
        ". Bulk imports write block documents straight into it, a chunk per transaction, "
        "instead of one API request each. Default: the local server's, when that is the API "
        "in use; empty: always through the API.",
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

    @field_validator("browser_env_allow", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """A comma-separated list of variable names, each a valid name."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        bad = [n for n in value if not isinstance(n, str) or not _ENV_NAME.match(n)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))} are not environment variable names; give a "
                "comma-separated list of names such as SSL_CERT_FILE,NODE_EXTRA_CA_CERTS"
            )
        return value

    @field_validator("upload_dirs", mode="before")
    @classmethod
    def _folders(cls, value: Any) -> Any:
        """A comma-separated list of folders."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def upload_folders(self) -> list[Path]:
        """The folders uploads may come from (FLEETWRIGHT_UPLOAD_DIRS, else <home>/uploads)."""
        return list(self.upload_dirs) or [self.home / "uploads"]

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
    def prefect_home(self) -> Path:
        return self.home / "prefect"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call reset_settings() after changing the env)."""
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
