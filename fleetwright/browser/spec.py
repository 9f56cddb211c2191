"""What a browser session is launched with: profile, fingerprint, state mode, proxy, tracing."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from fleetwright.errors import ValidationError
from fleetwright.settings import get_settings
from fleetwright.specs import (
    Fingerprint,
    ProxySpec,
    StateMode,
    block_name_for,
    check_name,
    format_validation_error,
)

__all__ = ["LaunchSpec", "ProxyConfig", "context_options", "make_launch_spec"]

_SERVER = re.compile(
    r"^(?P<scheme>https?|socks5)://(?P<host>[^\s/:@]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$"
)


class ProxyConfig(BaseModel):
    """A proxy as the browser takes it; the password stays a SecretStr until Playwright needs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: str
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        match = _SERVER.match(value.strip())
        if not match:
            raise ValueError(
                f"proxy server {value!r} is not scheme://host:port "
                "(scheme http, https or socks5; no credentials in the URL)"
            )
        if not 1 <= int(match["port"]) <= 65535:
            raise ValueError(f"proxy port {match['port']} is outside 1–65535")
        return value.strip()

    @model_validator(mode="after")
    def _socks_auth(self) -> ProxyConfig:
        if self.server.startswith("socks5://") and (self.username or self.password):
            raise ValueError(
                "Chromium cannot authenticate to SOCKS5 proxies; "
                "point the profile at the loopback SOCKS5 relay instead"
            )
        return self

    @classmethod
    def from_proxy_spec(cls, spec: ProxySpec) -> ProxyConfig:
        """The browser-side config of a validated ProxySpec."""
        return cls.build(server=spec.server, username=spec.username, password=spec.password)

    @classmethod
    def build(cls, **data: Any) -> ProxyConfig:
        """Validate `data`, raising a one-line ValidationError (never echoing the password)."""
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            raise ValidationError(format_validation_error(exc, where="proxy")) from None

    def secret_values(self) -> list[str]:
        """What of this proxy a trace must not keep: the password, and the `user:password`
        pair as it travels in a Proxy-Authorization header (base64), which Playwright
        records with the request's headers."""
        if self.password is None:
            return []
        password = self.password.get_secret_value()
        pair = f"{self.username or ''}:{password}".encode()
        return [password, base64.b64encode(pair).decode()]

    def to_playwright(self) -> dict[str, str]:
        """The dict Playwright's `proxy=` takes; it goes over the driver pipe, not argv."""
        out = {"server": self.server}
        if self.username:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password.get_secret_value()
        return out


class LaunchSpec(BaseModel):
    """Everything needed to open one session for one profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_name: str
    fingerprint: Fingerprint = Field(default_factory=Fingerprint)
    state_mode: StateMode = "storage"
    proxy: ProxyConfig | None = None
    state_dir: Path = Field(
        default=Path(),
        description="The profile's state folder; default <home>/profiles/<block name>.",
    )
    restore_state: bool = Field(
        default=True, description="Load the saved state (needs the catalogue); off for scratch."
    )
    trace: bool = Field(default=False, description="Record and always keep a Playwright trace.")
    trace_on_failure: bool = Field(default=False, description="Record; keep only on failure.")
    screenshot_on_failure: bool = True
    run_key: str | None = Field(default=None, description="Artifact folder name for the session.")

    @field_validator("profile_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("run_key")
    @classmethod
    def _run_key(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="run key")

    @model_validator(mode="after")
    def _default_state_dir(self) -> LaunchSpec:
        if self.state_dir == Path():
            folder = get_settings().profiles_dir / block_name_for(self.profile_name)
            object.__setattr__(self, "state_dir", folder)
        return self

    @property
    def tracing(self) -> bool:
        return self.trace or self.trace_on_failure


def make_launch_spec(**data: Any) -> LaunchSpec:
    """A LaunchSpec from `data`, or a one-line ValidationError naming the field."""
    try:
        return LaunchSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(format_validation_error(exc, where="launch")) from None


def context_options(fingerprint: Fingerprint) -> dict[str, Any]:
    """Playwright context options that apply a fingerprint."""
    opts: dict[str, Any] = {
        "viewport": {"width": fingerprint.viewport_width, "height": fingerprint.viewport_height},
        "locale": fingerprint.locale,
        "timezone_id": fingerprint.timezone,
        "color_scheme": fingerprint.color_scheme,
    }
    if fingerprint.user_agent:
        opts["user_agent"] = fingerprint.user_agent
    if fingerprint.geolocation is not None:
        geo = fingerprint.geolocation
        opts["geolocation"] = {
            "latitude": geo.latitude,
            "longitude": geo.longitude,
            "accuracy": geo.accuracy,
        }
        opts["permissions"] = ["geolocation"]
    if fingerprint.extra_headers:
        opts["extra_http_headers"] = dict(fingerprint.extra_headers)
    return opts
