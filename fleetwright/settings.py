"""Fleetwright's settings: one pydantic-settings class, read from FLEETWRIGHT_* and `.env`.

Settings flow settings → blocks → tasks; tasks never read the environment themselves.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fleetwright.errors import ConfigurationError
from fleetwright.prefect_auth import read_auth
from fleetwright.private import private_dir
from fleetwright.tls import TLSFiles, local_tls_files

__all__ = [
    "Settings",
    "apply_prefect_settings",
    "get_settings",
    "prefect_client_env",
    "reset_settings",
]

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
    headless_shell: str | None = Field(
        default=None,
        description="Run headless storage-mode sessions in Chromium's headless shell: a path "
        "to it, or `auto` for the system's (/usr/bin/chromium-headless-shell). About 4x less "
        "CPU per session, but a plainer fingerprint (no plugins, one language); off by default. "
        "Persistent profiles and windows keep the full Chromium.",
    )
    prefect_api_url: str | None = Field(
        default=None, description="Prefect API URL; default the one `fleetwright up` starts."
    )
    prefect_port: int = Field(default=4200, description="Port of the local Prefect server.")
    prefect_start_timeout: timedelta = Field(
        default=timedelta(seconds=180),
        description="How long `fleetwright up` waits for its Prefect server to answer (its "
        "first start migrates the database: over 90 s on 2 busy cores).",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for state shared by workers (circuit breakers, GitHub tokens).",
    )
    token_cache_secret: SecretStr | None = Field(
        default=None,
        description="Secret the key encrypting shared OAuth tokens in Redis is derived from, "
        "for OAuth apps without a client secret; the same on every host.",
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
    state_backend: Literal["local", "database", "object"] = Field(
        default="local",
        description="Where profile states are kept: `local` (files in the home), `database` "
        "(storage-mode states in the catalogue) or `object` (an S3-compatible bucket, both "
        "modes). Credentials for `object` come from the standard AWS variables or files.",
    )
    state_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint URL for state_backend=object (e.g. a MinIO or Ceph server); "
        "default AWS S3.",
    )
    state_bucket: str | None = Field(
        default=None, description="Bucket of state_backend=object (it must exist)."
    )
    state_prefix: str = Field(
        default="fleetwright/", description="Key prefix inside the bucket for profile states."
    )
    state_region: str | None = Field(
        default=None, description="Region of the bucket; default the AWS configuration's."
    )
    demo_site_port: int = Field(default=8765)
    api_token: SecretStr | None = Field(
        default=None,
        description="Token of the local API (`fleetwright api serve`); default one generated "
        "into <home>/api-token.",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key for block encryption, given to the local Prefect server "
        "`fleetwright up` starts (its PREFECT_SERVER_ENCRYPTION_KEY).",
    )

    tls_cert_file: Path | None = Field(
        default=None,
        description="Certificate (PEM, with its chain) the local Prefect server and the webhook "
        "receiver serve HTTPS with; default the one `fleetwright tls init` made, if any.",
    )
    tls_key_file: Path | None = Field(
        default=None, description="Private key (PEM) of FLEETWRIGHT_TLS_CERT_FILE."
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="CA bundle clients verify the local server's certificate with; default "
        "the CA `fleetwright tls init` made, else the system's trust store.",
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

    @field_validator("lease_ttl", "lease_wait", "prefect_start_timeout", mode="before")
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
    def metrics_dir(self) -> Path:
        """Where every Fleetwright process on this host writes its metrics (multiprocess)."""
        return self.home / "metrics"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def tls_dir(self) -> Path:
        """Where `fleetwright tls init` writes its CA and the server's certificate."""
        return self.home / "tls"

    @property
    def tls_files(self) -> TLSFiles | None:
        """The certificate the local servers serve HTTPS with, or None (plain HTTP)."""
        if self.tls_cert_file or self.tls_key_file:
            if not (self.tls_cert_file and self.tls_key_file):
                raise ConfigurationError(
                    "set both FLEETWRIGHT_TLS_CERT_FILE and FLEETWRIGHT_TLS_KEY_FILE, or neither"
                )
            return TLSFiles(cert=self.tls_cert_file, key=self.tls_key_file, ca=self.tls_ca_file)
        found = local_tls_files(self.tls_dir)
        if found is not None and self.tls_ca_file is not None:
            return TLSFiles(cert=found.cert, key=found.key, ca=self.tls_ca_file)
        return found

    @property
    def local_prefect_api_url(self) -> str:
        """The API URL of the local Prefect server `fleetwright up` runs on `prefect_port`
        (https when it serves TLS)."""
        scheme = "https" if self.tls_files is not None else "http"
        return f"{scheme}://127.0.0.1:{self.prefect_port}/api"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call reset_settings() after changing the env).

    A value the environment gets wrong is one ConfigurationError naming the variable."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        secret = any(w in field for w in ("password", "token", "secret", "key", "auth", "url"))
        shown = "" if secret else f"={first.get('input')!r}"
        hint = (
            " (a duration: seconds as ISO 8601, e.g. PT90S)"
            if "time_delta" in first["type"]
            else ""
        )
        raise ConfigurationError(
            f"setting FLEETWRIGHT_{field.upper()}{shown} is not valid: {first['msg']}{hint}; "
            "fix it in the environment or .env"
        ) from None


def reset_settings() -> None:
    get_settings.cache_clear()


def prefect_client_env(settings: Settings | None = None) -> dict[str, str]:
    """The Prefect client settings that Fleetwright's settings imply, given the environment.

    The API URL: FLEETWRIGHT_PREFECT_API_URL wins, then FLEETWRIGHT_PREFECT_PORT when it is
    set (the local server `fleetwright up` runs on that port), then the user's own
    PREFECT_API_URL, then the local server on the default port 4200. Prefect's home
    defaults to `<FLEETWRIGHT_HOME>/prefect` (PREFECT_HOME or PREFECT_PROFILES_PATH set by the
    user win), so Prefect never creates or writes ~/.prefect on Fleetwright's behalf. An
    ephemeral, throwaway server is never started: a client with no server gets an error.

    Talking to the local server, clients authenticate with the credential `fleetwright up`
    generated into the home (PREFECT_API_AUTH_STRING, unless the environment sets one); a
    server of the user's own keeps the user's own Prefect settings.
    """
    settings = settings or get_settings()
    env = os.environ
    out: dict[str, str] = {}
    local = settings.local_prefect_api_url
    if settings.prefect_api_url:
        out["PREFECT_API_URL"] = settings.prefect_api_url
    elif "prefect_port" in settings.model_fields_set or not env.get("PREFECT_API_URL"):
        out["PREFECT_API_URL"] = local
    api_url = out.get("PREFECT_API_URL", env.get("PREFECT_API_URL"))
    if api_url and api_url.rstrip("/") == local and not env.get("PREFECT_API_AUTH_STRING"):
        auth = read_auth(settings.home)
        if auth:
            out["PREFECT_API_AUTH_STRING"] = auth
    tls = settings.tls_files
    local_ca = tls.ca if tls is not None else None
    if (
        api_url
        and api_url.rstrip("/") == local
        and local_ca
        and not env.get("PREFECT_API_SSL_CERT_FILE")
    ):
        # Prefect's client and its websockets verify the server with this CA bundle
        out["PREFECT_API_SSL_CERT_FILE"] = str(local_ca)
    if not env.get("PREFECT_HOME"):
        out["PREFECT_HOME"] = str(settings.prefect_home)
    defaults = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Prefect's client telemetry (a notice and a request on first import) stays off.
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
        # Warm workers read task parameters from result storage: share the worker's folder.
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(settings.prefect_home / "storage"),
        # Flow runs heartbeat as often as the heartbeat automation expects
        # (deployments/automations.py), or it would take a live run for dead.
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }
    out.update({k: v for k, v in defaults.items() if not env.get(k)})
    return {k: v for k, v in out.items() if env.get(k) != v}


def apply_prefect_settings(settings: Settings | None = None) -> str:
    """Point Prefect at Fleetwright's server; every entry point calls this. Returns the API URL.

    The CLI, the Python API (fleetwright.api), flows, tasks, blocks and workers call it before
    they import Prefect. Where Prefect was imported first (a script that imported prefect, then
    fleetwright), its global settings are re-read so that the change still takes effect.
    """
    changes = prefect_client_env(settings)
    if "PREFECT_HOME" in changes:
        # Prefect creates its home at import, but not the folders above it (the Fleetwright
        # home among them, which is private).
        with contextlib.suppress(OSError):  # Prefect warns about it itself
            private_dir(Path(changes["PREFECT_HOME"]))
    if changes:
        os.environ.update(changes)
        context = sys.modules.get("prefect.context")
        refresh = getattr(context, "refresh_global_settings_context", None)
        if refresh is not None:
            refresh()
    return os.environ["PREFECT_API_URL"]
