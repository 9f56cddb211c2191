"""Gauges read from the catalogue at scrape time: profiles by status, saved state size,
proxies' health, quarantine and latency, and when each command last ran a session.

The catalogue is shared by every host, so one `metrics serve` per deployment is enough to
expose these (`--no-catalogue` on the others); rules aggregate with max() either way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileState, Proxy, ProxyPool, Run, utcnow

__all__ = ["CatalogueCollector"]

logger = logging.getLogger(__name__)


class CatalogueCollector(Collector):
    """Reads the catalogue on every scrape (a few grouped queries, no per-profile labels)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # a catalogue outage must not take the host's metrics down
            logger.warning("catalogue metrics unavailable: %s", type(exc).__name__)
            up = GaugeMetricFamily(
                "fleetwright_catalogue_up", "1 when the catalogue answered this scrape."
            )
            up.add_metric([], 0.0)
            yield up

    def _collect(self) -> Iterator[Metric]:
        from fleetwright.proxies.health import HealthPolicy, _decayed

        policy = HealthPolicy()
        now = utcnow()
        profiles = GaugeMetricFamily(
            "fleetwright_profiles", "Profiles in the catalogue, by status.", labels=["status"]
        )
        state = GaugeMetricFamily(
            "fleetwright_profile_state_bytes",
            "Bytes of the profiles' current saved states (storage mode).",
        )
        score = GaugeMetricFamily(
            "fleetwright_proxy_health_score",
            "Proxy health: 1 healthy, 0 at the quarantine threshold (decayed error score).",
            labels=["proxy", "pool"],
        )
        quarantined = GaugeMetricFamily(
            "fleetwright_proxy_quarantined",
            "1 when the proxy is quarantined (out of rotation).",
            labels=["proxy", "pool"],
        )
        latency = GaugeMetricFamily(
            "fleetwright_proxy_latency_seconds",
            "The proxy's latency at its last probe.",
            labels=["proxy", "pool"],
        )
        last = GaugeMetricFamily(
            "fleetwright_command_last_session_timestamp_seconds",
            "When a session of the command last started (Unix time).",
            labels=["command"],
        )
        with session_scope(self.url) as s:
            by_status = select(Profile.status, func.count()).group_by(Profile.status)
            for status, n in s.execute(by_status):
                profiles.add_metric([str(status)], float(n))
            total = s.scalar(
                select(func.coalesce(func.sum(ProfileState.size_bytes), 0)).join(
                    Profile,
                    and_(
                        Profile.id == ProfileState.profile_id,
                        Profile.state_version == ProfileState.version,
                    ),
                )
            )
            state.add_metric([], float(total or 0))
            rows = s.execute(select(Proxy, ProxyPool.name).outerjoin(ProxyPool)).all()
            for proxy, pool in rows:
                labels = [proxy.name, pool or ""]
                decayed = _decayed(proxy, now, policy)
                score.add_metric(labels, max(0.0, 1.0 - decayed / policy.threshold))
                quarantined.add_metric(labels, 1.0 if proxy.health == "quarantined" else 0.0)
                if proxy.last_latency_ms is not None:
                    latency.add_metric(labels, proxy.last_latency_ms / 1000.0)
            for command, at in s.execute(
                select(Run.command_name, func.max(Run.started_at)).group_by(Run.command_name)
            ):
                if at is not None:
                    last.add_metric([str(command)], at.timestamp())
        up = GaugeMetricFamily(
            "fleetwright_catalogue_up", "1 when the catalogue answered this scrape."
        )
        up.add_metric([], 1.0)
        yield from (profiles, state, score, quarantined, latency, last, up)
