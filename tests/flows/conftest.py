"""Fixtures for flow tests: the demo site, and profiles on a real Prefect server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwright.testing.site import SiteServer, serve_site


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


@pytest.fixture
def make_profiles(prefect_api: str, home: Path):
    """Create profiles (blocks + rows) through the registry; returns their names."""
    from fleetwright.embedded.demo import store_demo_passwords
    from fleetwright.registry import import_profiles

    def make(n: int, *, prefix: str = "p", tags: list[str] | None = None) -> list[str]:
        items = [(f"item {i}", {"name": f"{prefix}{i:03d}", "tags": tags or ["fleet"]})
                 for i in range(n)]  # fmt: skip
        report = asyncio.run(import_profiles(items))
        assert not report.errors, report.errors
        names = [name for _, d in items for name in [d["name"]]]
        asyncio.run(store_demo_passwords(names))  # the demo command reads each one's password
        return names

    return make
