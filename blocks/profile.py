"""The BrowserProfile block: a profile as the Prefect UI shows and edits it."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field

from fleetwright.specs import (
    ColorScheme,
    IPCheck,
    ProfileSpec,
    ProfileStatus,
    ProxyPolicy,
    StateMode,
)

__all__ = ["BrowserProfile"]


class BrowserProfile(Block):
    """A persistent browser identity: fingerprint, proxy and state mode.

    Edits saved here reach Fleetwright's catalogue through the sync-catalogue flow.
    """

    _block_type_name = "Fleetwright Browser Profile"
    _block_type_slug = "fleetwright-browser-profile"
    _logo_url = None
    _description = "A Fleetwright browser profile: fingerprint, proxy assignment, state mode."

    name: str = Field(description="The profile's unique name (1–64 characters).")
    tags: list[str] = Field(default_factory=list)
    state_mode: StateMode = "storage"
    status: ProfileStatus = "active"
    user_agent: str | None = None
    viewport_width: int = 1280
    viewport_height: int = 800
    locale: str = "en-US"
    timezone: str = "UTC"
    latitude: float | None = None
    longitude: float | None = None
    color_scheme: ColorScheme = "light"
    extra_headers: dict[str, str] = Field(default_factory=dict)
    proxy: str | None = Field(default=None, description="Name of an assigned proxy.")
    proxy_pool: str | None = Field(default=None, description="Name of a pool to draw from.")
    proxy_policy: ProxyPolicy = "sticky"
    proxy_failover: bool = False
    ip_check: IPCheck = "off"
    country: str | None = None
    notes: str = ""

    @classmethod
    def from_spec(cls, spec: ProfileSpec) -> BrowserProfile:
        fp = spec.fingerprint
        return cls(
            name=spec.name,
            tags=list(spec.tags),
            state_mode=spec.state_mode,
            status=spec.status,
            user_agent=fp.user_agent,
            viewport_width=fp.viewport_width,
            viewport_height=fp.viewport_height,
            locale=fp.locale,
            timezone=fp.timezone,
            latitude=fp.geolocation.latitude if fp.geolocation else None,
            longitude=fp.geolocation.longitude if fp.geolocation else None,
            color_scheme=fp.color_scheme,
            extra_headers=dict(fp.extra_headers),
            proxy=spec.proxy,
            proxy_pool=spec.proxy_pool,
            proxy_policy=spec.proxy_policy,
            proxy_failover=spec.proxy_failover,
            ip_check=spec.ip_check,
            country=spec.country,
            notes=spec.notes,
        )

    def spec_data(self) -> dict[str, Any]:
        """The block's content in ProfileSpec's shape (validated by the caller)."""
        geo = None
        if self.latitude is not None and self.longitude is not None:
            geo = {"latitude": self.latitude, "longitude": self.longitude}
        return {
            "name": self.name,
            "tags": list(self.tags),
            "state_mode": self.state_mode,
            "status": self.status,
            "fingerprint": {
                "user_agent": self.user_agent,
                "viewport_width": self.viewport_width,
                "viewport_height": self.viewport_height,
                "locale": self.locale,
                "timezone": self.timezone,
                "geolocation": geo,
                "color_scheme": self.color_scheme,
                "extra_headers": dict(self.extra_headers),
            },
            "proxy": self.proxy,
            "proxy_pool": self.proxy_pool,
            "proxy_policy": self.proxy_policy,
            "proxy_failover": self.proxy_failover,
            "ip_check": self.ip_check,
            "country": self.country,
            "notes": self.notes,
        }
