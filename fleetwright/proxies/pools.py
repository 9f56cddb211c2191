"""Which proxy a profile's session goes through: pools, policies, caps, quarantine, failover.

Policies: `sticky` (the profile keeps its proxy; the first one is drawn from its pool),
`round_robin`, `least_used` and `random` (a fresh pick from the pool each session).
Live sessions per proxy are the profiles whose unexpired lease names it (`lease_proxy_id`).

The assignment (`proxy_id` or `proxy_pool_id`, what the user chose) is never changed here.
What a sticky pool draw or a failover chose is the profile's binding (`bound_proxy_id`): later
sessions keep it until the assignment changes (which clears it) or another failover moves it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fleetwright.catalogue.db import db_now
from fleetwright.catalogue.models import Profile, Proxy, ProxyPool
from fleetwright.errors import ProxyError, ProxyQuarantinedError
from fleetwright.listeners import installed, notify
from fleetwright.proxies.locking import lock_profile, lock_proxies

__all__ = [
    "POLICIES",
    "Failover",
    "choose_proxy",
    "choose_proxy_for",
    "is_quarantined",
    "live_sessions",
    "notify_failover",
    "release_proxy",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failover:
    """A session moved off a quarantined proxy: from which, to which, within which pool."""

    profile: str
    from_proxy: str
    to_proxy: str
    pool: str


#: Entry point group of callables told about every failover, after its transaction committed.
#: Fleetwright's own (fleetwright.registry.events:emit_failover) sends a Prefect event.
FAILOVER_LISTENERS = "fleetwright.proxy_failover"


def notify_failover(failover: Failover) -> None:
    """Hand a committed failover to every listener (a failing one is logged, not raised)."""
    notify(installed(FAILOVER_LISTENERS), failover, "failover")


POLICIES = ("sticky", "round_robin", "least_used", "random")


def is_quarantined(proxy: Proxy) -> bool:
    """A quarantined proxy stays out of rotation until a probe passes (not just until its
    back-off ends: `quarantined_until` only says when to probe it again)."""
    return proxy.health == "quarantined"


def live_sessions(
    session: Session,
    proxy_ids: Sequence[int],
    *,
    now: datetime | None = None,
    exclude_profile_id: int | None = None,
) -> dict[int, int]:
    """Sessions going through each proxy now: profiles with an unexpired lease on it."""
    if not proxy_ids:
        return {}
    now = now or db_now(session)
    query = (
        select(Profile.lease_proxy_id, func.count())
        .where(Profile.lease_proxy_id.in_(list(proxy_ids)), Profile.lease_expires_at > now)
        .group_by(Profile.lease_proxy_id)
    )
    if exclude_profile_id is not None:
        query = query.where(Profile.id != exclude_profile_id)
    counts = {int(pid): int(n) for pid, n in session.execute(query).all() if pid is not None}
    return {pid: counts.get(pid, 0) for pid in proxy_ids}


def _has_room(proxy: Proxy, live: Mapping[int, int]) -> bool:
    return proxy.max_sessions is None or live.get(proxy.id, 0) < proxy.max_sessions


def _matches(proxy: Proxy, label_filter: Mapping[str, str] | None) -> bool:
    if not label_filter:
        return True
    labels = proxy.labels or {}
    return all(str(labels.get(k)) == str(v) for k, v in label_filter.items())


def _pick(
    policy: str, candidates: Sequence[Proxy], live: Mapping[int, int], pool: ProxyPool
) -> Proxy | None:
    eligible = [p for p in candidates if not is_quarantined(p) and _has_room(p, live)]
    if not eligible:
        return None
    if policy == "random":
        return random.choice(eligible)
    if policy == "round_robin":
        after = [p for p in eligible if p.id > pool.rotation_cursor]
        chosen = after[0] if after else eligible[0]
        pool.rotation_cursor = chosen.id
        return chosen
    return min(eligible, key=lambda p: (live.get(p.id, 0), p.sessions_total, p.id))


def _nothing_eligible(
    pool: ProxyPool, candidates: Sequence[Proxy], label_filter: Mapping[str, str] | None
) -> ProxyError:
    if not candidates:
        labels = f" with labels {dict(label_filter)}" if label_filter else ""
        return ProxyError(
            f"pool {pool.name!r} has no proxies{labels}; add some with "
            f"`fleetwright proxy add --pool {pool.name}` or change the label filter",
            retryable=False,
        )
    if all(is_quarantined(p) for p in candidates):
        return ProxyQuarantinedError(
            f"every proxy of pool {pool.name!r} ({len(candidates)}) is quarantined; "
            "wait for `check-proxies` to recover them or add proxies to the pool"
        )
    return ProxyError(
        f"every usable proxy of pool {pool.name!r} is at its session cap (max_sessions); "
        "retry when a session ends or raise the caps"
    )


def _pool_candidates(
    session: Session,
    pool_id: int,
    label_filter: Mapping[str, str] | None,
    *,
    also_lock: int | None = None,
) -> tuple[ProxyPool, list[Proxy]]:
    """The pool and its proxies matching `label_filter`, all locked (plus `also_lock`)."""
    pool = session.get(ProxyPool, pool_id, populate_existing=True)
    if pool is None:  # pragma: no cover - the foreign key sets it NULL on delete
        raise ProxyError(f"proxy pool id {pool_id} no longer exists", retryable=False)
    ids = list(session.execute(select(Proxy.id).where(Proxy.pool_id == pool_id)).scalars())
    rows = lock_proxies(session, [*ids, *([also_lock] if also_lock else [])])
    return pool, [p for p in rows if p.pool_id == pool_id and _matches(p, label_filter)]


def _quarantined_error(proxy: Proxy, profile: Profile, extra: str) -> ProxyQuarantinedError:
    until = proxy.quarantined_until
    when = until.isoformat(timespec="seconds") if until else "?"
    return ProxyQuarantinedError(
        f"proxy {proxy.name!r} of profile {profile.name!r} is quarantined (error score "
        f"{proxy.error_score:.1f}, next probe {when}); {extra}"
    )


def _sticky(
    session: Session, profile: Profile, current: Proxy, now: datetime
) -> tuple[Proxy, Failover | None]:
    pool_id = current.pool_id or profile.proxy_pool_id
    candidates: list[Proxy] = []
    pool: ProxyPool | None = None
    if profile.proxy_failover and pool_id is not None:
        # Lock the whole pool at once, in id order, so failovers cannot deadlock.
        pool, candidates = _pool_candidates(session, pool_id, None, also_lock=current.id)
    else:
        lock_proxies(session, [current.id])
    if not is_quarantined(current):
        live = live_sessions(session, [current.id], now=now, exclude_profile_id=profile.id)
        if not _has_room(current, live):
            raise ProxyError(
                f"proxy {current.name!r} of profile {profile.name!r} already carries "
                f"{live[current.id]} sessions, its cap (max_sessions={current.max_sessions}); "
                "retry when a session ends or raise the cap"
            )
        return current, None
    if not profile.proxy_failover:
        raise _quarantined_error(
            current,
            profile,
            "the profile does not allow failover: wait for the proxy to recover, assign "
            "another proxy, or enable proxy_failover",
        )
    if pool is None:
        raise _quarantined_error(current, profile, "it is in no pool to fail over within")
    others = [p for p in candidates if p.id != current.id]
    live = live_sessions(session, [p.id for p in others], now=now, exclude_profile_id=profile.id)
    chosen = _pick("least_used", others, live, pool)
    if chosen is None:
        raise _quarantined_error(
            current, profile, f"and no healthy proxy of pool {pool.name!r} has room to fail over"
        )
    logger.warning(
        "Profile %s fails over from quarantined proxy %s to %s (pool %s)",
        profile.name,
        current.name,
        chosen.name,
        pool.name,
    )
    profile.bound_proxy_id = chosen.id
    return chosen, Failover(profile.name, current.name, chosen.name, pool.name)


def choose_proxy(
    session: Session,
    profile: Profile,
    *,
    label_filter: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Proxy | None:
    """The proxy for the profile's next session, or None when it has neither proxy nor pool.

    Call it while holding the profile's lease: the choice is recorded as `lease_proxy_id`
    in the same locked transaction, so per-proxy caps hold under concurrency.
    `label_filter` narrows picks from a pool; an already-bound sticky proxy is kept.
    """
    return choose_proxy_for(session, profile, label_filter=label_filter, now=now)[0]


def choose_proxy_for(
    session: Session,
    profile: Profile,
    *,
    label_filter: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> tuple[Proxy | None, Failover | None]:
    """choose_proxy, also saying whether the session failed over (for the run's log)."""
    now = now or db_now(session)
    profile = lock_profile(session, profile.id)
    policy = profile.proxy_policy if profile.proxy_policy in POLICIES else "sticky"
    assigned = session.get(Proxy, profile.proxy_id) if profile.proxy_id else None
    bound = session.get(Proxy, profile.bound_proxy_id) if profile.bound_proxy_id else None
    if (
        bound is not None
        and profile.proxy_pool_id is not None
        and (bound.pool_id != profile.proxy_pool_id)
    ):
        bound = None  # moved to another pool since: draw again
    pool_id = profile.proxy_pool_id or (assigned.pool_id if assigned else None)
    failover: Failover | None = None

    sticky_to = bound or assigned
    if sticky_to is not None and (policy == "sticky" or pool_id is None):
        chosen, failover = _sticky(session, profile, sticky_to, now)
    elif pool_id is None:
        return None, None
    else:
        pool, candidates = _pool_candidates(session, pool_id, label_filter)
        live = live_sessions(
            session, [p.id for p in candidates], now=now, exclude_profile_id=profile.id
        )
        picked = _pick("least_used" if policy == "sticky" else policy, candidates, live, pool)
        if picked is None:
            raise _nothing_eligible(pool, candidates, label_filter)
        chosen = picked
        if policy == "sticky":
            profile.bound_proxy_id = chosen.id
            logger.info("Profile %s is now bound to proxy %s", profile.name, chosen.name)

    if profile.lease_expires_at is not None and profile.lease_expires_at > now:
        profile.lease_proxy_id = chosen.id
    session.execute(  # counted without touching updated_at, the error score's decay clock
        update(Proxy)
        .where(Proxy.id == chosen.id)
        .values(sessions_total=Proxy.sessions_total + 1, updated_at=Proxy.updated_at)
        .execution_options(synchronize_session=False)
    )
    session.expire(chosen, ["sessions_total"])
    session.flush()
    return chosen, failover


def release_proxy(session: Session, profile: Profile) -> None:
    """Forget which proxy the profile's (ending) session used."""
    profile.lease_proxy_id = None
    session.flush()
