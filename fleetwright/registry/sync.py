"""Reconcile blocks and catalogue rows: edits made in the Prefect UI reach the catalogue.

Blocks are what users edit in the UI, so where a block and its row disagree the block wins.
A row whose block was deleted is archived (its state and run history stay); a row without a
block (a write interrupted half-way) gets its block back; a block without a row gets a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from prefect.client.schemas.objects import BlockDocument
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from fleetwright.blocks.profile import BrowserProfile
from fleetwright.blocks.proxy import Proxy as ProxyBlock
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy
from fleetwright.errors import FleetwrightError
from fleetwright.registry.blockstore import BlockStore, block_from_document
from fleetwright.registry.profiles import _check_refs, _lookup_refs, _store, apply_spec, row_to_spec
from fleetwright.registry.proxies import _apply as apply_proxy
from fleetwright.registry.proxies import _same as same_proxy
from fleetwright.specs import ProxySpec, block_name_for, validate_profile

__all__ = ["SyncReport", "sync_catalogue"]

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What a reconcile changed, per kind of change."""

    rows_created: list[str] = field(default_factory=list)
    rows_updated: list[str] = field(default_factory=list)
    rows_archived: list[str] = field(default_factory=list)
    blocks_created: list[str] = field(default_factory=list)
    invalid_blocks: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return (
            len(self.rows_created)
            + len(self.rows_updated)
            + len(self.rows_archived)
            + len(self.blocks_created)
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}


async def sync_catalogue(*, url: str | None = None, store: BlockStore | None = None) -> SyncReport:
    """Bring profile and proxy rows in line with their blocks (and restore missing blocks)."""
    report = SyncReport()
    async with _store(store) as bs:
        await _sync_proxies(bs, url, report)
        await _sync_profiles(bs, url, report)
    return report


async def _sync_profiles(bs: BlockStore, url: str | None, report: SyncReport) -> None:
    docs = await bs.list(BrowserProfile)
    by_id: dict[str, BlockDocument] = {str(d.id): d for d in docs}
    with session_scope(url) as s:
        rows = list(
            s.scalars(
                select(Profile).options(
                    selectinload(Profile.proxy), selectinload(Profile.proxy_pool)
                )
            )
        )
        by_doc = {r.block_document_id: r for r in rows if r.block_document_id}
        by_name = {r.name: r for r in rows}
        for doc_id, doc in by_id.items():
            block = block_from_document(BrowserProfile, doc)
            try:
                spec = validate_profile(block.spec_data(), where=f"block {doc.name!r}")
                proxies, pools = _lookup_refs(s, [spec])
                _check_refs(spec, proxies, pools)
            except FleetwrightError as exc:
                logger.error("skipping invalid BrowserProfile block: %s", exc.message)
                report.invalid_blocks.append(f"{doc.name}: {exc.message}")
                continue
            row = by_doc.get(doc_id)
            if row is None:
                row = by_name.get(spec.name)
                if row is not None and row.block_document_id and row.block_document_id in by_id:
                    report.invalid_blocks.append(
                        f"{doc.name}: profile {spec.name!r} already has block "
                        f"{row.block_name!r}; rename one of them"
                    )
                    continue
            if row is None:
                row = Profile(block_name=doc.name, block_document_id=doc_id)
                apply_spec(row, spec, proxies, pools)
                s.add(row)
                by_name[spec.name] = row
                report.rows_created.append(spec.name)
                continue
            row.block_document_id, row.block_name = doc_id, doc.name
            if row.name != spec.name:
                # renamed in the UI: another row may hold the new name
                clash = by_name.get(spec.name)
                if clash is not None and clash is not row:
                    report.invalid_blocks.append(
                        f"{doc.name}: name {spec.name!r} is taken by another profile"
                    )
                    continue
            if row_to_spec(row) != spec:
                apply_spec(row, spec, proxies, pools)
                report.rows_updated.append(spec.name)
        for row in rows:
            if row.block_document_id and row.block_document_id not in by_id:
                if row.status != "archived":
                    row.status = "archived"
                    report.rows_archived.append(row.name)
                row.block_document_id = None
                row.block_name = None
            elif not row.block_document_id and row.status != "archived":
                name = row.block_name or block_name_for(row.name)
                row.block_document_id = str(
                    await bs.create(BrowserProfile.from_spec(row_to_spec(row)), name)
                )
                row.block_name = name
                report.blocks_created.append(row.name)


async def _sync_proxies(bs: BlockStore, url: str | None, report: SyncReport) -> None:
    docs = await bs.list(ProxyBlock)
    by_id = {str(d.id): d for d in docs}
    with session_scope(url) as s:
        rows = list(s.scalars(select(Proxy).options(selectinload(Proxy.pool))))
        by_doc = {r.block_document_id: r for r in rows if r.block_document_id}
        by_name = {r.name: r for r in rows}
        for doc_id, doc in by_id.items():
            try:
                spec: ProxySpec = block_from_document(ProxyBlock, doc).to_spec()
            except Exception as exc:
                report.invalid_blocks.append(f"{doc.name}: {type(exc).__name__}")
                continue
            row = by_doc.get(doc_id) or by_name.get(spec.name)
            if row is None:
                row = Proxy(block_document_id=doc_id)
                apply_proxy(s, row, spec, doc.name or block_name_for(spec.name))
                s.add(row)
                report.rows_created.append(f"proxy {spec.name}")
            elif not same_proxy(row, spec) or row.name != spec.name:
                apply_proxy(s, row, spec, doc.name or block_name_for(spec.name))
                row.block_document_id = doc_id
                report.rows_updated.append(f"proxy {spec.name}")
            else:
                row.block_document_id = doc_id
        for row in rows:
            if row.block_document_id and row.block_document_id not in by_id:
                # the password lived in the block: without it the proxy cannot be used
                row.health = "quarantined"
                row.last_error = "its Proxy block was deleted; add the proxy again"
                row.block_document_id = None
                report.rows_archived.append(f"proxy {row.name}")
