"""Lease expiry is judged by the database's clock: a worker whose clock runs an hour ahead
cannot take a live lease, and the expiry it writes is the database's time plus the TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleetwright.catalogue import db as catalogue_db
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.sessions import lease


def test_a_skewed_worker_clock_does_not_expire_a_live_lease(
    pg_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(pg_url) as s:
        profile = Profile(name="clocked")
        s.add(profile)
        s.flush()
        profile_id = profile.id
    assert lease.acquire(profile_id, "worker-a", timedelta(minutes=5), url=pg_url)
    with session_scope(pg_url) as s:
        db_time = lease.db_now(s)
        expires = s.get(Profile, profile_id).lease_expires_at
    assert expires is not None
    assert abs((expires - db_time) - timedelta(minutes=5)) < timedelta(seconds=30)

    ahead = datetime.now(UTC) + timedelta(hours=1)
    # worker B's clock runs an hour ahead
    monkeypatch.setattr(lease, "utcnow", lambda: ahead, raising=False)
    monkeypatch.setattr(catalogue_db, "utcnow", lambda: ahead)
    assert not lease.acquire(profile_id, "worker-b", timedelta(minutes=5), url=pg_url)
    assert lease.renew(profile_id, "worker-a", timedelta(minutes=5), url=pg_url)
    with session_scope(pg_url) as s:
        renewed = s.get(Profile, profile_id).lease_expires_at
    assert renewed is not None and renewed < ahead  # the database's time, not the skewed one
