"""Row locks that work on Postgres and SQLite alike, for read-modify-write on proxies.

Postgres: the rows are locked `FOR NO KEY UPDATE`, in id order so two writers cannot deadlock.
Not `FOR UPDATE`: that mode also waits for every transaction holding the row `FOR KEY SHARE`,
the lock Postgres's foreign-key checks take on a referenced row, and a session's claim takes
one on its proxy before it locks it (its second update of the profile row in one transaction
re-checks the row's foreign keys). Two claims on profiles sharing a proxy then each held the
key-share lock the other's `FOR UPDATE` waited for: "deadlock detected", at concurrency 8 on
one proxy nearly every session (tests/proxies/test_proxy_locking.py). `FOR NO KEY UPDATE`
still excludes every other writer of the row; it only lets foreign-key checks through, and no
Fleetwright transaction changes a proxy's or a profile's id.
SQLite: a no-op UPDATE makes the transaction a writer first, so concurrent writers queue on
the database lock (busy_timeout) instead of reading stale rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fleetwright.catalogue.models import Profile, Proxy
from fleetwright.errors import NotFoundError

__all__ = ["lock_profile", "lock_proxies", "lock_proxy"]


def lock_profile(session: Session, profile_id: int) -> Profile:
    """Lock the profile row and return it freshly read."""
    session.execute(
        update(Profile)
        .where(Profile.id == profile_id)
        .values(proxy_policy=Profile.proxy_policy, updated_at=Profile.updated_at)
        .execution_options(synchronize_session=False)
    )
    profile = session.execute(
        select(Profile)
        .where(Profile.id == profile_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if profile is None:
        raise NotFoundError(f"profile id {profile_id} is not in the catalogue")
    return profile


def lock_proxies(session: Session, ids: Iterable[int]) -> Sequence[Proxy]:
    """Lock these proxy rows (in id order) and return them freshly read, in id order."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Proxy)
            .where(Proxy.id == wanted[0])
            .values(sessions_total=Proxy.sessions_total, updated_at=Proxy.updated_at)
            .execution_options(synchronize_session=False)
        )
    return (
        session.execute(
            select(Proxy)
            .where(Proxy.id.in_(wanted))
            .order_by(Proxy.id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )


def lock_proxy(session: Session, proxy_id: int) -> Proxy:
    """Lock one proxy row and return it freshly read."""
    rows = lock_proxies(session, [proxy_id])
    if not rows:
        raise NotFoundError(f"proxy id {proxy_id} is not in the catalogue")
    return rows[0]
