"""Proxy assignment on SQLite and Postgres: policies, caps, quarantine, failover, concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy, utcnow
from fleetwright.errors import ProxyError, ProxyQuarantinedError
from fleetwright.proxies.pools import choose_proxy, live_sessions, release_proxy

pytestmark = pytest.mark.postgres


def _choose(url: str, profile_name: str, **kw: object) -> str | None:
    with session_scope(url) as s:
        profile = s.execute(select(Profile).where(Profile.name == profile_name)).scalar_one()
        proxy = choose_proxy(s, profile, **kw)  # type: ignore[arg-type]
        return proxy.name if proxy else None


def _quarantine(proxy: Proxy) -> None:
    proxy.health = "quarantined"
    proxy.error_score = 5.0
    proxy.quarantined_until = utcnow() + timedelta(minutes=5)


def test_sticky_assigns_from_pool_once_and_keeps_it(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        pool = rows.pool(s, "eu")
        for i in range(3):
            rows.proxy(s, f"eu-{i}", pool=pool, port=3000 + i)
        rows.profile(s, "alice", proxy_pool_id=pool.id)
        rows.profile(s, "nobody")
    first = _choose(db, "alice")
    assert first is not None
    assert [_choose(db, "alice") for _ in range(3)] == [first] * 3
    with session_scope(db) as s:
        alice = s.execute(select(Profile).where(Profile.name == "alice")).scalar_one()
        # the draw is the binding; the assignment stays the pool
        assert alice.bound_proxy is not None and alice.bound_proxy.name == first
        assert alice.proxy is None and alice.proxy_pool is not None
    assert _choose(db, "nobody") is None


def test_round_robin_least_used_random(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        pool = rows.pool(s, "rr")
        for i in range(3):
            rows.proxy(s, f"rr-{i}", pool=pool, port=3000 + i)
        rows.profile(s, "rob", proxy_pool_id=pool.id, proxy_policy="round_robin")
        rows.profile(s, "lee", proxy_pool_id=pool.id, proxy_policy="least_used")
        rows.profile(s, "ran", proxy_pool_id=pool.id, proxy_policy="random")
    assert [_choose(db, "rob") for _ in range(4)] == ["rr-0", "rr-1", "rr-2", "rr-0"]
    # after round robin: rr-0 used twice, the others once → least used picks rr-1 then rr-2
    assert [_choose(db, "lee") for _ in range(2)] == ["rr-1", "rr-2"]
    with session_scope(db) as s:
        rr0 = s.execute(select(Proxy).where(Proxy.name == "rr-0")).scalar_one()
        _quarantine(rr0)
    picks = Counter(_choose(db, "ran") for _ in range(12))
    assert set(picks) <= {"rr-1", "rr-2"} and sum(picks.values()) == 12
    assert [_choose(db, "rob") for _ in range(3)] == ["rr-1", "rr-2", "rr-1"]


def test_label_filter(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        pool = rows.pool(s, "mixed")
        rows.proxy(s, "de", pool=pool, port=1, labels={"country": "DE"})
        rows.proxy(s, "us", pool=pool, port=2, labels={"country": "US"})
        rows.profile(s, "p", proxy_pool_id=pool.id, proxy_policy="random")
    assert {_choose(db, "p", label_filter={"country": "US"}) for _ in range(5)} == {"us"}
    with pytest.raises(ProxyError, match="no proxies with labels") as info:
        _choose(db, "p", label_filter={"country": "FR"})
    assert not info.value.retryable


def test_quarantined_sticky_proxy_fails_fast_or_fails_over(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        pool = rows.pool(s, "eu")
        bad = rows.proxy(s, "eu-bad", pool=pool, port=1)
        rows.proxy(s, "eu-good", pool=pool, port=2)
        rows.profile(s, "strict", proxy_id=bad.id)
        rows.profile(s, "flexible", proxy_id=bad.id, proxy_failover=True)
        _quarantine(bad)
    with pytest.raises(ProxyQuarantinedError) as info:
        _choose(db, "strict")
    assert "'eu-bad'" in info.value.message and "'strict'" in info.value.message
    assert not info.value.retryable
    assert _choose(db, "flexible") == "eu-good"
    with session_scope(db) as s:
        flexible = s.execute(select(Profile).where(Profile.name == "flexible")).scalar_one()
        assert flexible.bound_proxy is not None and flexible.bound_proxy.name == "eu-good"
        assert flexible.proxy is not None and flexible.proxy.name == "eu-bad"  # assignment


def test_failover_without_healthy_proxy_and_pool_all_quarantined(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        pool = rows.pool(s, "dead")
        a = rows.proxy(s, "dead-a", pool=pool, port=1)
        b = rows.proxy(s, "dead-b", pool=pool, port=2)
        lone = rows.proxy(s, "lone", port=3)
        for proxy in (a, b, lone):
            _quarantine(proxy)
        rows.profile(s, "f", proxy_id=a.id, proxy_failover=True)
        rows.profile(s, "g", proxy_pool_id=pool.id, proxy_policy="random")
        rows.profile(s, "h", proxy_id=lone.id, proxy_failover=True)
    with pytest.raises(ProxyQuarantinedError, match="no healthy proxy of pool 'dead'"):
        _choose(db, "f")
    with pytest.raises(ProxyQuarantinedError, match="every proxy of pool 'dead'"):
        _choose(db, "g")
    with pytest.raises(ProxyQuarantinedError, match="no pool to fail over"):
        _choose(db, "h")


def test_per_proxy_cap_counts_live_leases(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        pool = rows.pool(s, "capped")
        rows.proxy(s, "c-0", pool=pool, port=1, max_sessions=1)
        rows.proxy(s, "c-1", pool=pool, port=2, max_sessions=1)
        for name in ("w1", "w2", "w3"):
            rows.profile(s, name, leased=True, proxy_pool_id=pool.id, proxy_policy="least_used")
    assert sorted([_choose(db, "w1"), _choose(db, "w2")]) == ["c-0", "c-1"]  # type: ignore[type-var]
    with pytest.raises(ProxyError, match="session cap") as info:
        _choose(db, "w3")
    assert info.value.retryable
    # choosing again for a profile that already holds a slot does not count itself
    assert _choose(db, "w1") in {"c-0", "c-1"}
    with session_scope(db) as s:
        w1 = s.execute(select(Profile).where(Profile.name == "w1")).scalar_one()
        freed = w1.lease_proxy_id
        release_proxy(s, w1)
    assert _choose(db, "w3") is not None
    with session_scope(db) as s:
        counts = live_sessions(s, [p.id for p in s.execute(select(Proxy)).scalars()])
        assert sorted(counts.values()) == [1, 1] and freed in counts


def test_sticky_proxy_at_cap_is_a_retryable_error(db: str, rows: Any) -> None:
    with session_scope(db) as s:
        proxy = rows.proxy(s, "one", port=1, max_sessions=1)
        rows.profile(s, "a", leased=True, proxy_id=proxy.id)
        rows.profile(s, "b", leased=True, proxy_id=proxy.id)
        rows.profile(
            s,
            "expired",
            proxy_id=proxy.id,
            lease_proxy_id=proxy.id,
            lease_expires_at=utcnow() - timedelta(seconds=1),
        )
    assert _choose(db, "a") == "one"
    with pytest.raises(ProxyError, match=r"cap \(max_sessions=1\)") as info:
        _choose(db, "b")
    assert info.value.retryable


def test_concurrent_choices_never_exceed_caps(db: str, rows: Any) -> None:
    workers = 6
    with session_scope(db) as s:
        pool = rows.pool(s, "race")
        for i in range(2):
            rows.proxy(s, f"race-{i}", pool=pool, port=10 + i, max_sessions=2)
        for i in range(workers):
            rows.profile(s, f"r{i}", leased=True, proxy_pool_id=pool.id, proxy_policy="random")
    results: dict[str, str] = {}
    barrier = threading.Barrier(workers)

    def run(name: str) -> None:
        barrier.wait()
        try:
            results[name] = _choose(db, name) or "none"
        except ProxyError as exc:
            results[name] = type(exc).__name__

    threads = [threading.Thread(target=run, args=(f"r{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    counts = Counter(results.values())
    assert counts == Counter({"race-0": 2, "race-1": 2, "ProxyError": 2}), results
    with session_scope(db) as s:
        live = live_sessions(s, [p.id for p in s.execute(select(Proxy)).scalars()])
        assert sorted(live.values()) == [2, 2]
