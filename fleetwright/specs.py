"""Validated descriptions of profiles and proxies, read from users (CLI, import files, blocks).

These pydantic models hold the rules every entry point shares: names, timezones, locales,
ports, schemes. The catalogue stores what they produce; the blocks mirror their fields.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zoneinfo
from functools import lru_cache
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from fleetwright.errors import ValidationError

__all__ = [
    "Fingerprint",
    "Geolocation",
    "ProfileSpec",
    "ProxySpec",
    "StateMode",
    "block_name_for",
    "check_name",
    "format_validation_error",
    "short_repr",
    "validate_profile",
    "validate_proxy",
]

StateMode = Literal["storage", "persistent"]
ProfileStatus = Literal["active", "archived"]
ProxyScheme = Literal["http", "https", "socks5"]
ProxyPolicy = Literal["sticky", "round_robin", "least_used", "random"]
IPCheck = Literal["off", "warn", "refuse"]
ColorScheme = Literal["light", "dark", "no-preference"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def short_repr(value: Any, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters: user input quoted in a one-line message."""
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit + 2 else text[: limit - 1] + "…"


def _invisible(char: str) -> bool:
    """Characters that print as nothing or as a plain space: format (zero-width space, joiners,
    bidi marks), control, private-use, unassigned, separators other than the ASCII space."""
    category = unicodedata.category(char)
    return category in ("Cf", "Cc", "Co", "Cs", "Cn", "Zl", "Zp") or (
        category == "Zs" and char != " "
    )


def check_name(value: str, *, what: str = "profile") -> str:
    """A name that is safe as a file name and a label: 1–64 chars, no separators or controls.

    Returned NFC-normalised, so that names that look the same are the same; names with
    invisible characters (a zero-width space makes `a\u200bb` look like `ab`) are refused,
    and so are names starting with '-', which the CLI would read as an option.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} name is empty; give a name of 1–64 characters")
    value = unicodedata.normalize("NFC", value)
    if value != value.strip():
        raise ValueError(f"{what} name {value!r} has leading or trailing spaces")
    if len(value) > 64:
        raise ValueError(f"{what} name is {len(value)} characters long; the limit is 64")
    if "/" in value or "\\" in value:
        raise ValueError(
            f"{what} name {value!r} contains a path separator; use letters, digits, - _ ."
        )
    if ".." in value:
        raise ValueError(f"{what} name {value!r} contains '..'; use letters, digits, - _ .")
    if _CONTROL.search(value):
        raise ValueError(f"{what} name {value!r} contains control characters")
    hidden = next((c for c in value if _invisible(c)), None)
    if hidden is not None:
        raise ValueError(
            f"{what} name {value!r} contains the invisible character U+{ord(hidden):04X}; "
            "use visible letters, digits, - _ ."
        )
    if value.startswith("-"):
        raise ValueError(f"{what} name {value!r} starts with '-'; it would read as an option")
    return value


def block_name_for(name: str, *, prefix: str = "") -> str:
    """The Prefect block-document name for a Fleetwright object (lowercase, digits, dashes)."""
    candidate = f"{prefix}{name}"
    if re.fullmatch(r"[a-z0-9-]{1,100}", candidate):
        return candidate
    slug = re.sub(r"[^a-z0-9]+", "-", candidate.lower()).strip("-")[:80] or "x"
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@lru_cache(maxsize=1024)
def _check_locale(value: str) -> str:
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(value, sep="-")
    except (UnknownLocaleError, ValueError):
        raise ValueError(
            f"unknown locale {value!r}; use a BCP 47 tag such as en-US or de-DE"
        ) from None
    return value


class Geolocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    accuracy: float = Field(default=50.0, ge=0)


class Fingerprint(BaseModel):
    """What a site can see of a profile's browser, applied at launch."""

    model_config = ConfigDict(extra="forbid")

    user_agent: str | None = None
    viewport_width: int = Field(default=1280, ge=200, le=7680)
    viewport_height: int = Field(default=800, ge=200, le=4320)
    locale: str = "en-US"
    timezone: str = "UTC"
    geolocation: Geolocation | None = None
    color_scheme: ColorScheme = "light"
    extra_headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if value not in _timezones():
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        return _check_locale(value)


class ProfileSpec(BaseModel):
    """A profile as users describe it (CLI, JSON import, the BrowserProfile block)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    tags: list[str] = Field(default_factory=list)
    fingerprint: Fingerprint = Field(default_factory=Fingerprint)
    state_mode: StateMode = "storage"
    status: ProfileStatus = "active"
    proxy: str | None = Field(default=None, description="Name of the proxy the profile uses.")
    proxy_pool: str | None = Field(default=None, description="Pool to draw a proxy from.")
    proxy_policy: ProxyPolicy = "sticky"
    proxy_failover: bool = False
    ip_check: IPCheck = "off"
    country: str | None = Field(default=None, description="ISO 3166 country the profile lives in.")
    notes: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not _TAG.match(tag):
                raise ValueError(
                    f"tag {short_repr(tag)} is not valid; use 1–64 letters, digits, - _ . : "
                    "starting with a letter or digit"
                )
        return sorted(set(value))

    @field_validator("proxy", "proxy_pool")
    @classmethod
    def _ref_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Proxy and pool names follow the rules of names (`--pool ../pool` is refused)."""
        what = "pool" if info.field_name == "proxy_pool" else "proxy"
        return None if value is None else check_name(value, what=what)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"country {value!r} is not a two-letter ISO code such as DE")
        return value.upper()

    @model_validator(mode="after")
    def _proxy_or_pool(self) -> ProfileSpec:
        if self.proxy and self.proxy_pool:
            raise ValueError("give either proxy or proxy_pool, not both")
        return self


class ProxySpec(BaseModel):
    """A proxy as users describe it. The password is only ever held in a Proxy block."""

    model_config = ConfigDict(extra="forbid")

    name: str
    scheme: ProxyScheme = "http"
    host: str
    port: int
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    pool: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    max_sessions: int | None = Field(default=None, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, what="proxy")

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, what="pool")

    @field_validator("scheme", mode="before")
    @classmethod
    def _scheme(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() not in ("http", "https", "socks5"):
            raise ValueError(f"unknown proxy scheme {value!r}; use http, https or socks5")
        return value.lower() if isinstance(value, str) else value

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        text = str(value).strip() if isinstance(value, str | int) else None
        if text is None or not text.isascii() or not text.isdigit() or len(text) > 5:
            raise ValueError(f"port {short_repr(value)} is not a number in 1–65535")
        port = int(text)
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1–65535")
        return port

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c in value for c in " /@\\") or _CONTROL.search(value):
            raise ValueError(f"host {value!r} is not a host name or IP address")
        return value

    @property
    def server(self) -> str:
        """The proxy's URL without credentials, as browsers take it."""
        return f"{self.scheme}://{self.host}:{self.port}"


def format_validation_error(exc: PydanticValidationError, *, where: str = "") -> str:
    """One line from a pydantic error: field path and what is wrong."""
    parts = []
    for err in exc.errors():
        loc = ".".join(_loc_part(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        parts.append(f"{loc}: {msg}" if loc else msg)
    prefix = f"{where}: " if where else ""
    return " ".join((prefix + "; ".join(parts)).split())


def _loc_part(part: Any) -> str:
    """A field path element as shown: plain keys as they are, any other key quoted and cut."""
    if isinstance(part, int) or re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(part)):
        return str(part)
    return short_repr(part)


def validate_profile(data: dict[str, Any], *, where: str = "") -> ProfileSpec:
    """A ProfileSpec from `data`, or a one-line ValidationError naming the field."""
    try:
        return ProfileSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(format_validation_error(exc, where=where)) from None


def validate_proxy(data: dict[str, Any], *, where: str = "") -> ProxySpec:
    """A ProxySpec from `data`, or a one-line ValidationError naming the field."""
    try:
        return ProxySpec.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(format_validation_error(exc, where=where)) from None
