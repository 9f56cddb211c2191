"""`fleetwright metrics serve`: one Prometheus endpoint per host for every Fleetwright process
on it (workers, flow-run processes, warm workers), plus the catalogue's gauges."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

__all__ = ["HostCollector", "host_registry"]

logger = logging.getLogger(__name__)

_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HostCollector(Collector):
    """Every process's samples in `directory`, added up. Live gauges (sessions and browsers
    open now) of processes that are gone are dropped first; counters and histograms of
    finished processes are kept, so nothing a short flow-run process counted is lost."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._inner = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def forget_dead(self) -> list[int]:
        """Drop the live gauges of processes that no longer run; returns their pids."""
        dead = set()
        for name in os.listdir(self.directory):
            m = _LIVE_FILE.match(name)
            if m and not _alive(int(m.group(1))):
                dead.add(int(m.group(1)))
        for pid in dead:
            mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        return sorted(dead)

    def collect(self) -> Iterator[Metric]:
        self.forget_dead()
        yield from self._inner.collect()  # type: ignore[no-untyped-call]


def host_registry(
    directory: Path, *, catalogue: bool = True, url: str | None = None
) -> CollectorRegistry:
    """The registry `metrics serve` exposes: the host's processes and (optionally) the
    catalogue."""
    directory.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    registry.register(HostCollector(directory))
    if catalogue:
        from fleetwright.observability.catalogue import CatalogueCollector

        registry.register(CatalogueCollector(url))
    return registry
