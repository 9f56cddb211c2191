"""Browser-area fixtures: the local site, a pool in a fresh home, catalogue profiles, and a
watcher of the Chromium processes a pool starts (for the no-orphans checks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from fleetwright.browser import BrowserPool, StateStore
from fleetwright.browser.procs import ProcessWatch
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.testing.site import SiteServer, serve_site


@pytest.fixture(scope="session")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server


@pytest.fixture
def make_profile(home: Path) -> Callable[..., str]:
    """Create a catalogue profile row; returns its name."""

    def make(name: str, *, state_mode: str = "storage", url: str | None = None) -> str:
        with session_scope(url) as session:
            session.add(Profile(name=name, state_mode=state_mode))
        return name

    return make


@pytest.fixture
async def pool(home: Path) -> AsyncIterator[BrowserPool]:
    pool = BrowserPool(store=StateStore())
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def watch(pool: BrowserPool) -> ProcessWatch:
    return ProcessWatch(pool.browser_pids)
