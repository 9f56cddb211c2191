"""Claiming a profile for a session: the first step both a run and `profile open` take.

One transaction reads the profile, takes its lease and picks its proxy (a pool's draw, a
sticky binding, a failover from a quarantined proxy); the caller adds what it records in the
same transaction (a run adds its run row). Runs and opens share it so that an opened profile
gets the same checks, proxy choice and failover as a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload, lazyload

from fleetwright.browser.state import StateStore, StoredRef
from fleetwright.catalogue.models import Profile
from fleetwright.errors import NotFoundError, ValidationError
from fleetwright.proxies.pools import Failover, choose_proxy_for
from fleetwright.sessions import lease as leases
from fleetwright.sessions.spec_cache import spec_cache
from fleetwright.specs import ProfileSpec

__all__ = ["Claim", "claim_profile"]

#: built once (see fleetwright/browser/state.py): the profile with its proxy and pool
_PROFILE = (
    select(Profile)
    .where(Profile.name == bindparam("name"))
    .options(
        joinedload(Profile.proxy),
        joinedload(Profile.proxy_pool),
        lazyload(Profile.tag_rows),  # read only when the cached spec is stale
    )
)


@dataclass
class Claim:
    """What `claim_profile` found and took. `taken` is False when another holder has the
    lease: then nothing was chosen and nothing written."""

    profile_id: int
    spec: ProfileSpec
    taken: bool
    proxy: tuple[int, str] | None = None
    failover: Failover | None = None
    stored: StoredRef | None = None  # the storage-mode state's pointer, read under the lease
    held_by: str | None = None  # who holds the lease when it was not taken

    @property
    def name(self) -> str:
        return self.spec.name


def claim_profile(
    s: Session,
    name: str,
    holder: str,
    ttl: timedelta,
    *,
    store: StateStore | None,
    take_lease: bool = True,
    purpose: str = "run",
) -> Claim:
    """In the caller's transaction `s`: the active profile `name`, its lease taken for
    `holder` (unless `take_lease` is False), its proxy chosen and, with a `store`, its saved
    storage state's pointer. `purpose` ("run", "open") words the error for an inactive one."""
    row = s.scalar(_PROFILE, {"name": name})
    if row is None:
        raise NotFoundError(f"unknown profile {name!r}; see `fleetwright profile list`")
    if row.status != "active":
        raise ValidationError(f"profile {name!r} is {row.status}; only active ones {purpose}")
    bind = s.get_bind()
    catalogue = str(bind.engine.url)
    claim = Claim(row.id, spec_cache.spec_for(row, catalogue=catalogue), taken=True)
    if take_lease and not leases.take(s, row.id, holder, ttl):
        claim.taken, claim.held_by = False, row.lease_holder
        return claim
    if store is not None and row.state_mode == "storage":
        claim.stored = store.current_in(s, name)
    if row.proxy_id is not None or row.proxy_pool_id is not None:
        proxy, claim.failover = choose_proxy_for(s, row)
        claim.proxy = (proxy.id, proxy.name) if proxy is not None else None
    return claim
