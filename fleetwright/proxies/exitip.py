"""Exit-IP consistency: before a session, does the proxy exit where the profile "lives"?

Looks up the exit IP, country and timezone through the proxy (a configurable IP-info
endpoint answering JSON {"ip", "country", "timezone"}), compares them with the profile's
country and fingerprint timezone, and records each sighting in the ExitIP table. Per
profile, `ip_check` is off, warn (log) or refuse (raise a non-retryable ProxyError).
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import ExitIP, Profile, Proxy, utcnow
from fleetwright.errors import NotFoundError, ProxyError
from fleetwright.proxies.http import IPInfo, fetch_ip_info, proxy_client
from fleetwright.specs import ProxySpec

__all__ = ["ExitCheck", "compare_exit", "lookup_exit", "record_exit_ip", "verify_exit_ip"]

logger = logging.getLogger(__name__)

_NEUTRAL_TIMEZONES = {"UTC", "Etc/UTC", "GMT", "Etc/GMT"}


@dataclass(frozen=True)
class ExitCheck:
    """Where a proxy exits, and how that differs from the profile's identity."""

    ip: str
    country: str | None
    timezone: str | None
    mismatches: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.mismatches


async def lookup_exit(
    spec: ProxySpec, *, info_url: str, timeout: timedelta = timedelta(seconds=10)
) -> IPInfo:
    """The proxy's exit IP, country and timezone from the IP-info endpoint."""
    async with proxy_client(spec, timeout=timeout) as client:
        return await fetch_ip_info(client, spec, info_url)


def _offset(tz: str, now: datetime) -> timedelta | None:
    try:
        return now.astimezone(zoneinfo.ZoneInfo(tz)).utcoffset()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def compare_exit(profile: Profile, info: IPInfo, *, now: datetime | None = None) -> list[str]:
    """What about the exit contradicts the profile (its country; its timezone's UTC offset).

    A profile timezone of UTC is the default, so it is not compared.
    """
    now = now or utcnow()
    problems: list[str] = []
    if profile.country:
        if not info.country:
            problems.append("the IP-info endpoint did not tell the exit country")
        elif info.country.upper() != profile.country.upper():
            problems.append(f"country {profile.country} expected, the exit is in {info.country}")
    tz = (profile.fingerprint or {}).get("timezone")
    if isinstance(tz, str) and tz not in _NEUTRAL_TIMEZONES and info.timezone:
        mine, theirs = _offset(tz, now), _offset(info.timezone, now)
        if mine is not None and theirs is not None and mine != theirs:
            problems.append(
                f"timezone {tz} (UTC{_fmt(mine)}) expected, the exit is in {info.timezone} "
                f"(UTC{_fmt(theirs)})"
            )
    return problems


def _fmt(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def record_exit_ip(
    session: Session, *, profile_id: int, proxy_id: int | None, info: IPInfo, now: datetime
) -> ExitIP:
    """Add one sighting to the profile's exit-IP history (and the proxy's last exit)."""
    row = ExitIP(
        profile_id=profile_id, proxy_id=proxy_id, ip=info.ip, country=info.country, seen_at=now
    )
    session.add(row)
    if proxy_id is not None:
        proxy = session.get(Proxy, proxy_id)
        if proxy is not None:
            proxy.last_exit_ip = info.ip
            proxy.last_country = info.country or proxy.last_country
    session.flush()
    return row


async def verify_exit_ip(
    profile_id: int,
    proxy_id: int | None,
    spec: ProxySpec,
    *,
    info_url: str,
    url: str | None = None,
    timeout: timedelta = timedelta(seconds=10),
    now: datetime | None = None,
) -> ExitCheck | None:
    """Run the profile's `ip_check` against the proxy `spec`; None when the check is off.

    `refuse` raises ProxyError (not retryable) on a mismatch, after recording the sighting;
    `warn` logs it. A failed lookup raises under `refuse` and is logged under `warn`.
    """
    with session_scope(url) as session:
        profile = session.get(Profile, profile_id)
        if profile is None:
            raise NotFoundError(f"profile id {profile_id} is not in the catalogue")
        mode, name = profile.ip_check, profile.name
    if mode not in ("warn", "refuse"):
        return None
    try:
        info = await lookup_exit(spec, info_url=info_url, timeout=timeout)
    except ProxyError as exc:
        if mode == "refuse":
            raise
        logger.warning("Exit-IP check for profile %s skipped: %s", name, exc.message)
        return None
    now = now or utcnow()
    with session_scope(url) as session:
        profile = session.get(Profile, profile_id)
        if profile is None:
            raise NotFoundError(f"profile id {profile_id} is not in the catalogue")
        record_exit_ip(session, profile_id=profile_id, proxy_id=proxy_id, info=info, now=now)
        problems = compare_exit(profile, info, now=now)
    check = ExitCheck(
        ip=info.ip, country=info.country, timezone=info.timezone, mismatches=tuple(problems)
    )
    if check.ok:
        return check
    summary = "; ".join(check.mismatches)
    if mode == "refuse":
        raise ProxyError(
            f"profile {name!r} refuses proxy {spec.name!r}: exit IP {info.ip}: {summary}. "
            "Assign a proxy in the profile's country, or set ip_check to warn",
            retryable=False,
        )
    logger.warning("Profile %s through proxy %s exits at %s: %s", name, spec.name, info.ip, summary)
    return check
