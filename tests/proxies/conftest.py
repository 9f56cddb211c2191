"""Fixtures for proxy tests: real tinyproxy/microsocks servers, an IP-echo fake, catalogue rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy, ProxyPool, utcnow
from fleetwright.testing.proxies import IPEchoServer


@pytest.fixture(scope="session")
def echo() -> Iterator[IPEchoServer]:
    """The IP-echo / IP-info fake on 127.0.0.1 (keyed by which loopback address calls)."""
    with IPEchoServer() as server:
        yield server


def add_pool(session: Session, name: str, **labels: str) -> ProxyPool:
    pool = ProxyPool(name=name, labels=dict(labels))
    session.add(pool)
    session.flush()
    return pool


def add_proxy(
    session: Session,
    name: str,
    *,
    pool: ProxyPool | None = None,
    port: int = 3128,
    **fields: Any,
) -> Proxy:
    proxy = Proxy(
        name=name,
        scheme=fields.pop("scheme", "http"),
        host=fields.pop("host", "127.0.0.1"),
        port=port,
        pool_id=pool.id if pool else None,
        **fields,
    )
    session.add(proxy)
    session.flush()
    return proxy


def add_profile(session: Session, name: str, *, leased: bool = False, **fields: Any) -> Profile:
    profile = Profile(name=name, **fields)
    if leased:
        profile.lease_holder = f"worker-{name}"
        profile.lease_expires_at = utcnow() + timedelta(minutes=5)
    session.add(profile)
    session.flush()
    return profile


class Rows:
    """Catalogue row builders for tests (the registry's write path is not needed here)."""

    pool = staticmethod(add_pool)
    proxy = staticmethod(add_proxy)
    profile = staticmethod(add_profile)


@pytest.fixture
def rows() -> type[Rows]:
    return Rows


@pytest.fixture
def db(catalogue_url: str) -> Iterator[str]:
    """The catalogue URL (SQLite and Postgres), migrated."""
    with session_scope(catalogue_url):
        pass
    yield catalogue_url
