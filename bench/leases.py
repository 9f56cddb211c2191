"""The per-profile lease options the lease benchmark compares, swapped in for the session
engine's own lease (an atomic lease on the catalogue row) while a side of the benchmark runs:
no lease at all, or a Prefect global concurrency limit per profile."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any, Literal

from fleetwright.sessions import lease as engine_lease

__all__ = ["LEASE_TTL", "LeaseKind", "create_prefect_limits", "limit_name", "use_lease"]

LeaseKind = Literal["none", "prefect", "catalogue"]
LEASE_TTL = timedelta(seconds=60)


def limit_name(profile: str) -> str:
    return f"fw-bench-profile-{profile}"


async def create_prefect_limits(profiles: list[str]) -> None:
    """One global concurrency limit (limit 1) per profile, created up front."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        for name in profiles:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=limit_name(name), limit=1)
                )


@contextlib.asynccontextmanager
async def _no_lease(_id: int, _name: str, _holder: str, **_kw: Any) -> AsyncIterator[None]:
    yield


@contextlib.asynccontextmanager
async def _prefect_lease(_id: int, name: str, _holder: str, **_kw: Any) -> AsyncIterator[None]:
    from prefect.concurrency.asyncio import concurrency

    async with concurrency(
        limit_name(name), occupy=1, strict=True, lease_duration=LEASE_TTL.total_seconds()
    ):
        yield


@contextlib.contextmanager
def use_lease(kind: LeaseKind) -> Iterator[None]:
    """Make SessionEngine.run take `kind` of lease until the block ends ("catalogue" is the
    engine's own, taken in the transaction that starts the run)."""
    original = engine_lease.external
    engine_lease.external = {"none": _no_lease, "prefect": _prefect_lease, "catalogue": None}[kind]
    try:
        yield
    finally:
        engine_lease.external = original
