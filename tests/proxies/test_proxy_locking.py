"""Row locks on a shared proxy, on real Postgres: claims of profiles that share one proxy queue
on it, and never deadlock.

A claim updates its profile row twice in one transaction (the lease, then `lock_profile`); the
second update re-checks the row's foreign keys, which takes `FOR KEY SHARE` on the proxy. With
the proxy then locked `FOR UPDATE`, two such claims each waited for the other's key-share lock:
"deadlock detected" (the bench's proxied throughput at concurrency 8 on one proxy lost 44 of
48 sessions to it). Below, both claims reach that point before either locks the proxy.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fleetwright.catalogue.db import get_engine, session_scope
from fleetwright.catalogue.models import Profile, Proxy
from fleetwright.proxies.locking import lock_profile, lock_proxies
from fleetwright.proxies.pools import choose_proxy
from fleetwright.sessions import lease as leases
from tests.proxies.conftest import add_profile, add_proxy


def _rows(url: str) -> tuple[int, int, int]:
    with session_scope(url) as s:
        proxy = add_proxy(s, "shared")
        a = add_profile(s, "pa", proxy_id=proxy.id)
        b = add_profile(s, "pb", proxy_id=proxy.id)
        return proxy.id, a.id, b.id


def _half_claim(s: Session, profile_id: int) -> None:
    """What a claim does before it locks the proxy: the lease, then the profile row locked."""
    s.execute(text("SET LOCAL lock_timeout = '20s'"))
    assert leases.take(s, profile_id, f"holder-{profile_id}", timedelta(minutes=5))
    lock_profile(s, profile_id)


def test_two_claims_on_one_proxy_queue_instead_of_deadlocking(pg_url: str) -> None:
    proxy_id, a, b = _rows(pg_url)
    engine = get_engine(pg_url)
    first, second = Session(engine), Session(engine)
    try:
        _half_claim(first, a)
        _half_claim(second, b)
        with ThreadPoolExecutor(2) as pool:
            # the first claim takes the proxy at once: the second's key-share lock on it
            # does not stand in its way
            got = pool.submit(lock_proxies, first, [proxy_id])
            assert [p.id for p in got.result(timeout=10)] == [proxy_id]
            # the second waits for the first to commit, then gets it
            waiting = pool.submit(lock_proxies, second, [proxy_id])
            assert not _done_within(waiting, 1.0)
            first.commit()
            assert [p.id for p in waiting.result(timeout=10)] == [proxy_id]
            second.commit()
    finally:
        first.close()
        second.close()


def _done_within(future: object, seconds: float) -> bool:
    event = threading.Event()
    future.add_done_callback(lambda _: event.set())  # type: ignore[attr-defined]
    return event.wait(seconds)


@pytest.mark.parametrize("rounds", [5])
def test_eight_concurrent_claims_on_one_proxy_all_succeed(pg_url: str, rounds: int) -> None:
    """Eight claims at once on profiles sharing one proxy, as a fleet at concurrency 8 starts:
    every one gets the proxy, and its sessions counter counts each."""
    with session_scope(pg_url) as s:
        proxy = add_proxy(s, "shared")
        ids = [add_profile(s, f"p{i}", proxy_id=proxy.id).id for i in range(8)]
        proxy_id = proxy.id
    errors: list[BaseException] = []

    def claim(profile_id: int, barrier: threading.Barrier) -> None:
        try:
            with session_scope(pg_url) as s:
                s.execute(text("SET LOCAL lock_timeout = '20s'"))
                holder = f"h{profile_id}"
                assert leases.take(s, profile_id, holder, timedelta(minutes=5))
                barrier.wait(timeout=10)
                row = s.get(Profile, profile_id)
                assert row is not None
                chosen = choose_proxy(s, row)
                assert chosen is not None and chosen.id == proxy_id
                leases.release_in(s, profile_id, holder)
        except BaseException as exc:  # collected: a thread's exception is otherwise lost
            errors.append(exc)

    for _ in range(rounds):
        barrier = threading.Barrier(len(ids))
        threads = [threading.Thread(target=claim, args=(i, barrier)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    with session_scope(pg_url) as s:
        assert s.scalar(select(Proxy.sessions_total).where(Proxy.id == proxy_id)) == 8 * rounds
