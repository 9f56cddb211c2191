"""Fixtures for the local stand-ins: one demo site for the module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetwright.testing.site import SiteServer, serve_site


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with serve_site() as server:
        yield server
