"""One run per profile at a time, across every worker: an atomic lease on the catalogue row.

The lease is a (holder, expires_at) pair set by one conditional UPDATE, so it needs nothing but
the catalogue. The holder renews it while the session runs; if the holder dies, the lease
expires after its TTL and the next run takes it. (Why not Prefect global concurrency limits:
see docs/sessions.md — measured in bench/ as lease_prefect_ratio vs lease_catalogue_ratio.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm import Session

from fleetwright.catalogue.db import db_now, session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.errors import ProfileBusyError

__all__ = [
    "ProfileLease",
    "acquire",
    "busy_error",
    "db_now",
    "external",
    "holder_of",
    "lease",
    "release",
    "release_in",
    "renew",
    "take",
]

logger = logging.getLogger(__name__)

# The lease's statements, built once (see fleetwright/browser/state.py). `updated_at` is set to
# itself: a lease is not an edit of the profile.
_NO_SYNC = {"synchronize_session": False}
_MINE = Profile.lease_holder == bindparam("holder")
_EXPIRES = bindparam("expires", type_=Profile.lease_expires_at.type)
_TAKE = (
    update(Profile)
    .where(
        Profile.id == bindparam("pid"),
        or_(
            Profile.lease_holder.is_(None),
            Profile.lease_expires_at < bindparam("now"),
            _MINE,
        ),
    )
    .values(
        lease_holder=bindparam("holder", type_=Profile.lease_holder.type),
        lease_expires_at=_EXPIRES,
        updated_at=Profile.updated_at,
    )
    .execution_options(**_NO_SYNC)
)
_OURS = (  # the profile, if its lease is still ours
    update(Profile).where(Profile.id == bindparam("pid"), _MINE).execution_options(**_NO_SYNC)
)
_RELEASE = _OURS.values(
    lease_holder=None, lease_expires_at=None, lease_proxy_id=None, updated_at=Profile.updated_at
)
_RENEW = _OURS.values(lease_expires_at=_EXPIRES, updated_at=Profile.updated_at)


#: A lease kept outside the catalogue, used by the session engine instead of its own when set:
#: an async context manager factory `(profile_id, name, holder, ttl=, wait=, url=)`. The lease
#: benchmark sets it to compare a Prefect global concurrency limit and no lease at all.
external: Callable[..., AbstractAsyncContextManager[Any]] | None = None


def take(session: Session, profile_id: int, holder: str, ttl: timedelta) -> bool:
    """In the caller's transaction: take the lease if it is free, expired or already ours
    (expiry judged by the database's clock)."""
    now = db_now(session)
    result = session.execute(
        _TAKE, {"pid": profile_id, "holder": holder, "now": now, "expires": now + ttl}
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def acquire(profile_id: int, holder: str, ttl: timedelta, *, url: str | None = None) -> bool:
    """Take the profile's lease if it is free, expired or already ours."""
    with session_scope(url) as s:
        return take(s, profile_id, holder, ttl)


def release_in(session: Session, profile_id: int, holder: str) -> None:
    """In the caller's transaction: give the lease back (only if it is still ours)."""
    session.execute(_RELEASE, {"pid": profile_id, "holder": holder})


def renew(profile_id: int, holder: str, ttl: timedelta, *, url: str | None = None) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and was taken)."""
    with session_scope(url) as s:
        result = s.execute(
            _RENEW, {"pid": profile_id, "holder": holder, "expires": db_now(s) + ttl}
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release(profile_id: int, holder: str, *, url: str | None = None) -> None:
    """Give the lease back (only if it is still ours)."""
    with session_scope(url) as s:
        release_in(s, profile_id, holder)


def holder_of(profile_id: int, url: str | None) -> str | None:
    with session_scope(url) as s:
        row = s.get(Profile, profile_id)
        return row.lease_holder if row else None


class ProfileLease:
    """The lease held for one session; renewed in the background until released."""

    def __init__(
        self, profile_id: int, name: str, holder: str, ttl: timedelta, *, url: str | None
    ) -> None:
        self.profile_id, self.name, self.holder, self.ttl, self.url = (
            profile_id, name, holder, ttl, url,
        )  # fmt: skip
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    async def _renew_loop(self) -> None:
        interval = max(self.ttl.total_seconds() / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            if not await asyncio.to_thread(renew, self.profile_id, self.holder, self.ttl,
                                           url=self.url):  # fmt: skip
                self.lost = True
                logger.error("lease on profile %s was lost (expired and taken)", self.name)
                return

    def start_renewing(self) -> None:
        self._task = asyncio.create_task(self._renew_loop())

    async def stop_renewing(self) -> None:
        """Stop renewing (the caller gives the lease back in its own transaction)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def release(self) -> None:
        await self.stop_renewing()
        await asyncio.shield(asyncio.to_thread(release, self.profile_id, self.holder, url=self.url))


def busy_error(name: str, holder: str | None, wait: timedelta) -> ProfileBusyError:
    """The error for a profile whose lease stayed taken for the whole wait."""
    return ProfileBusyError(
        f"profile {name!r} is in use by run {holder}; waited "
        f"{wait.total_seconds():g}s. Try again when that run ends, or raise lease_wait"
    )


@contextlib.asynccontextmanager
async def lease(
    profile_id: int,
    name: str,
    holder: str,
    *,
    ttl: timedelta,
    wait: timedelta,
    url: str | None = None,
) -> AsyncIterator[ProfileLease]:
    """Hold the profile's lease for the block; wait up to `wait` for a busy profile."""
    deadline = time.monotonic() + wait.total_seconds()
    delay = 0.05
    while not await asyncio.to_thread(acquire, profile_id, holder, ttl, url=url):
        if time.monotonic() >= deadline:
            other = await asyncio.to_thread(holder_of, profile_id, url)
            raise busy_error(name, other, wait)
        await asyncio.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)
    held = ProfileLease(profile_id, name, holder, ttl, url=url)
    held.start_renewing()
    try:
        yield held
    finally:
        await held.release()
