"""Proxies: Proxy blocks (which hold the password) and catalogue rows, written together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fleetwright.blocks.proxy import Proxy as ProxyBlock
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy, ProxyPool
from fleetwright.errors import AlreadyExistsError, NotFoundError, ValidationError
from fleetwright.registry.blockstore import BlockStore, block_then_row
from fleetwright.registry.blockstore import using_store as _store
from fleetwright.registry.profiles import (
    BLOCK_CONCURRENCY,
    ImportReport,
    project_pending,
    select_profiles,
)
from fleetwright.specs import ProxySpec, block_name_for

__all__ = [
    "add_proxy",
    "assign_proxy",
    "get_proxy",
    "import_proxies",
    "list_proxies",
    "proxy_record",
    "proxy_spec",
    "remove_proxy",
]

logger = logging.getLogger(__name__)


def proxy_record(row: Proxy) -> dict[str, Any]:
    """A JSON-able view of a proxy (never the password)."""
    return {
        "id": row.id,
        "name": row.name,
        "scheme": row.scheme,
        "host": row.host,
        "port": row.port,
        "username": row.username,
        "has_password": bool(row.secret_ref),
        "pool": row.pool.name if row.pool else None,
        "labels": row.labels,
        "max_sessions": row.max_sessions,
        "health": row.health,
        "error_score": round(row.error_score, 2),
        "last_checked_at": row.last_checked_at.isoformat() if row.last_checked_at else None,
        "last_latency_ms": row.last_latency_ms,
        "last_exit_ip": row.last_exit_ip,
        "last_country": row.last_country,
        "last_error": row.last_error,
        "quarantined_until": row.quarantined_until.isoformat() if row.quarantined_until else None,
    }


def _pool_id(session: Session, name: str | None) -> int | None:
    if not name:
        return None
    pool = session.scalar(select(ProxyPool).where(ProxyPool.name == name))
    if pool is None:
        pool = ProxyPool(name=name)
        session.add(pool)
        session.flush()
    return pool.id


def _apply(session: Session, row: Proxy, spec: ProxySpec, block_name: str) -> None:
    row.name = spec.name
    row.scheme = spec.scheme
    row.host = spec.host
    row.port = spec.port
    row.username = spec.username
    row.secret_ref = block_name
    row.pool_id = _pool_id(session, spec.pool)
    row.labels = dict(spec.labels)
    row.max_sessions = spec.max_sessions


def _same(row: Proxy, spec: ProxySpec) -> bool:
    return (
        row.scheme == spec.scheme
        and row.host == spec.host
        and row.port == spec.port
        and row.username == spec.username
        and (row.pool.name if row.pool else None) == spec.pool
        and row.labels == spec.labels
        and row.max_sessions == spec.max_sessions
    )


def _get(session: Session, name: str) -> Proxy:
    row = session.scalar(select(Proxy).where(Proxy.name == name).options(selectinload(Proxy.pool)))
    if row is None:
        raise NotFoundError(f"unknown proxy {name!r}; see `fleetwright proxy list`")
    return row


async def add_proxy(
    spec: ProxySpec, *, url: str | None = None, store: BlockStore | None = None
) -> dict[str, Any]:
    """Create a proxy: its Proxy block (with the password) and its catalogue row."""
    with session_scope(url) as s:
        if s.scalar(select(Proxy.id).where(Proxy.name == spec.name)) is not None:
            raise AlreadyExistsError(f"proxy {spec.name!r} already exists")
    block_name = block_name_for(spec.name)
    block = ProxyBlock.from_spec(spec)
    async with _store(store) as bs, block_then_row(bs, block, block_name) as doc_id:
        try:
            with session_scope(url) as s:
                row = Proxy(block_document_id=str(doc_id))
                _apply(s, row, spec, block_name)
                s.add(row)
                s.flush()
                s.refresh(row, ["pool"])
                record = proxy_record(row)
        except IntegrityError:
            raise AlreadyExistsError(f"proxy {spec.name!r} already exists") from None
    return record


async def import_proxies(
    specs: Sequence[ProxySpec],
    *,
    url: str | None = None,
    store: BlockStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Create or update proxies; unchanged ones (same name and fields) are left alone."""
    report = ImportReport()
    async with _store(store) as bs:
        sem = asyncio.Semaphore(BLOCK_CONCURRENCY)
        with session_scope(url) as s:
            existing = {
                r.name: r
                for r in s.scalars(
                    select(Proxy)
                    .where(Proxy.name.in_([p.name for p in specs]))
                    .options(selectinload(Proxy.pool))
                )
            }
            todo = []
            for spec in specs:
                row = existing.get(spec.name)
                if row is not None and _same(row, spec):
                    report.unchanged += 1
                else:
                    todo.append((spec, row))

            async def write(spec: ProxySpec, row: Proxy | None) -> str:
                async with sem:
                    block = ProxyBlock.from_spec(spec)
                    if row is not None and row.block_document_id:
                        await bs.update(row.block_document_id, block)
                        return row.block_document_id
                    return str(await bs.create(block, block_name_for(spec.name)))

            results = await asyncio.gather(*(write(*t) for t in todo), return_exceptions=True)
            for (spec, row), result in zip(todo, results, strict=True):
                if isinstance(result, BaseException):
                    report.errors.append(
                        (spec.name, f"block write failed: {type(result).__name__}")
                    )
                    continue
                if row is None:
                    row = Proxy()
                    s.add(row)
                    report.created += 1
                else:
                    report.updated += 1
                row.block_document_id = result
                _apply(s, row, spec, block_name_for(spec.name))
            if progress:
                progress(len(specs))
    return report


async def remove_proxy(
    name: str, *, url: str | None = None, store: BlockStore | None = None
) -> list[str]:
    """Delete a proxy and its block; returns the profiles that were using it (now unassigned)."""
    async with _store(store) as bs:
        with session_scope(url) as s:
            row = _get(s, name)
            users = list(s.scalars(select(Profile).where(Profile.proxy_id == row.id)))
            names = [p.name for p in users]
            for p in users:
                p.proxy_id = None
                p.revision += 1
            s.execute(
                update(Profile)
                .where(Profile.bound_proxy_id == row.id)
                .values(bound_proxy_id=None)
                .execution_options(synchronize_session=False)
            )
            ids = [p.id for p in users]
            doc_id = row.block_document_id
            s.delete(row)
            s.flush()
        if ids:
            await project_pending(ids, url=url, store=bs)
        if doc_id:
            await bs.delete(doc_id)
    return names


async def assign_proxy(
    *,
    proxy: str | None = None,
    pool: str | None = None,
    names: Sequence[str] = (),
    tags: Sequence[str] = (),
    url: str | None = None,
    store: BlockStore | None = None,
) -> list[str]:
    """Give the selected profiles a proxy (sticky) or a pool; returns the profiles selected.

    The assignment changes on the rows (a changed one drops the proxy a pool draw or a
    failover had bound), then their blocks are projected.
    """
    if bool(proxy) == bool(pool):
        raise ValidationError("give exactly one of --proxy or --pool")
    if not names and not tags:
        raise ValidationError("select profiles with --profile NAME or --tag TAG")
    with session_scope(url) as s:
        proxy_id = _get(s, proxy).id if proxy else None
        pool_id = None
        if pool:
            pool_row = s.scalar(select(ProxyPool).where(ProxyPool.name == pool))
            if pool_row is None:
                raise NotFoundError(f"unknown proxy pool {pool!r}")
            pool_id = pool_row.id
        rows = list(s.scalars(select_profiles(names=names, tags=tags, status=None)))
        found = {r.name for r in rows}
        missing = [n for n in names if n not in found]
        if missing:
            raise NotFoundError(f"unknown profile {missing[0]!r}")
        if not rows:
            raise NotFoundError(f"no profile has tag {tags[0]!r}")
        changed = []
        for r in rows:
            if (r.proxy_id, r.proxy_pool_id) != (proxy_id, pool_id):
                r.proxy_id, r.proxy_pool_id, r.bound_proxy_id = proxy_id, pool_id, None
                r.revision += 1
                changed.append(r.id)
    if changed:
        await project_pending(changed, url=url, store=store)
    return sorted(found)


def list_proxies(*, pool: str | None = None, url: str | None = None) -> list[dict[str, Any]]:
    with session_scope(url) as s:
        stmt = select(Proxy).options(selectinload(Proxy.pool)).order_by(Proxy.name)
        if pool:
            stmt = stmt.where(Proxy.pool.has(ProxyPool.name == pool))
        return [proxy_record(r) for r in s.scalars(stmt)]


def get_proxy(name: str, *, url: str | None = None) -> dict[str, Any]:
    with session_scope(url) as s:
        return proxy_record(_get(s, name))


async def proxy_spec(
    name: str, *, url: str | None = None, store: BlockStore | None = None
) -> ProxySpec:
    """The proxy with its password, read from its block (for launching sessions and probes)."""
    with session_scope(url) as s:
        row = _get(s, name)
        secret_ref = row.secret_ref
    async with _store(store) as bs:
        block = await bs.read_by_name(ProxyBlock, secret_ref) if secret_ref else None
    if block is None:
        raise NotFoundError(
            f"proxy {name!r} has no Proxy block {secret_ref!r}; run `fleetwright sync` "
            "or add the proxy again"
        )
    return block.to_spec()
