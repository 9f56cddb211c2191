"""Reconcile blocks and catalogue rows: edits made in the Prefect UI reach the catalogue.

Two ways in. `reconcile_edits` is what an edit in the UI triggers: it reads the block events
Prefect recorded since its cursor (plus the block that triggered it) and reconciles exactly
those blocks, by id, so its cost follows the number of edits, not the size of the fleet.
`sync_catalogue` is the full pass on a slow schedule (and `fleetwright sync`): every block
against every row, then every pending projection.

Profiles: the row is the source of truth; a UI edit is merged into it (registry/projection.py).
A row whose block was deleted is archived (its state and run history stay); a block without a
row gets a row. Proxies: the block holds the password, so the block wins; a proxy row whose
block was deleted is quarantined.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prefect.client.schemas.objects import BlockDocument
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from fleetwright.blocks.profile import BrowserProfile
from fleetwright.blocks.proxy import Proxy as ProxyBlock
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy, SyncCursor, utcnow
from fleetwright.registry.blockstore import BlockStore, block_from_document
from fleetwright.registry.blockstore import using_store as _store
from fleetwright.registry.projection import (
    BlockOutcome,
    _archive_deleted,
    _block_deleted,
    project_profiles,
    reconcile_profile_document,
)
from fleetwright.registry.proxies import _apply as apply_proxy
from fleetwright.registry.proxies import _same as same_proxy
from fleetwright.specs import ProxySpec, block_name_for

__all__ = ["SyncReport", "reconcile_edits", "sync_catalogue"]

logger = logging.getLogger(__name__)
CURSOR = "block-edits"
# A first pass (no cursor yet) looks back this far. Later passes read from the newest event the
# last one saw (inclusive): an event stored late, after a pass read past it, is still covered,
# by the run its own trigger starts (with its block id) and by the scheduled full pass.
LOOKBACK = timedelta(seconds=60)
BLOCK_TYPES = (BrowserProfile, ProxyBlock)
_EVENTS = [
    "prefect.block-document.created",
    "prefect.block-document.updated",
    "prefect.block-document.deleted",
]


@dataclass
class SyncReport:
    """What a reconcile changed, per kind of change."""

    rows_created: list[str] = field(default_factory=list)
    rows_updated: list[str] = field(default_factory=list)
    rows_archived: list[str] = field(default_factory=list)
    blocks_written: int = 0
    blocks_checked: int = 0
    invalid_blocks: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return (
            len(self.rows_created)
            + len(self.rows_updated)
            + len(self.rows_archived)
            + self.blocks_written
        )

    def note(self, outcome: BlockOutcome, *, kind: str = "") -> None:
        label = f"{kind}{outcome.name}"
        if outcome.action == "created":
            self.rows_created.append(label)
        elif outcome.action == "updated":
            self.rows_updated.append(label)
        elif outcome.action == "archived":
            self.rows_archived.append(label)
        elif outcome.action == "invalid":
            logger.error("skipping invalid block: %s", outcome.detail)
            self.invalid_blocks.append(outcome.detail or label)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}


async def sync_catalogue(*, url: str | None = None, store: BlockStore | None = None) -> SyncReport:
    """Bring every profile and proxy row in line with its block, and write pending blocks."""
    report = SyncReport()
    async with _store(store) as bs:
        await _sync_proxies(bs, url, report)
        await _sync_profiles(bs, url, report)
        projected = await project_profiles(bs, url=url)
        report.blocks_written = projected.written
        report.invalid_blocks.extend(f"{n}: {why}" for n, why in projected.failed)
    return report


async def reconcile_edits(
    block_document_id: str | None = None,
    *,
    url: str | None = None,
    store: BlockStore | None = None,
) -> SyncReport:
    """Reconcile the blocks edited since the last pass (and `block_document_id`), by id."""
    report = SyncReport()
    async with _store(store) as bs:
        since = await asyncio.to_thread(_read_cursor, url)
        edited, newest = await _edited_blocks(bs, since or utcnow() - LOOKBACK)
        if block_document_id:
            doc_id = block_document_id.removeprefix("prefect.block-document.")
            edited.setdefault(doc_id, None)
        touched: list[int] = []
        profile_type = BrowserProfile.get_block_type_name()
        for doc_id, type_name in edited.items():
            report.blocks_checked += 1
            doc = await bs.read_document(doc_id)
            if doc is not None:
                type_name = doc.block_type_name or (doc.block_type.name if doc.block_type else None)
            if type_name == ProxyBlock.get_block_type_name():
                await _reconcile_proxy(bs, doc_id, url, report, doc)
                continue
            if doc is None:
                outcome = await asyncio.to_thread(_block_deleted, doc_id, url)
                if outcome.action == "ignored" and type_name is None:
                    await _reconcile_proxy(bs, doc_id, url, report, None)
                    continue
            elif type_name != profile_type:
                continue  # not one of Fleetwright's blocks
            else:
                outcome = await reconcile_profile_document(doc, url=url)
            report.note(outcome)
            touched.extend(await asyncio.to_thread(_profile_ids, url, doc_id))
        if touched:
            projected = await project_profiles(bs, ids=touched, url=url)
            report.blocks_written = projected.written
        if newest is not None:
            await asyncio.to_thread(_write_cursor, url, newest)
    return report


def _profile_ids(url: str | None, document_id: str) -> list[int]:
    with session_scope(url) as s:
        return list(s.scalars(select(Profile.id).where(Profile.block_document_id == document_id)))


def _read_cursor(url: str | None) -> datetime | None:
    with session_scope(url) as s:
        value = s.scalar(select(SyncCursor.value).where(SyncCursor.name == CURSOR))
    return datetime.fromisoformat(value) if value else None


def _write_cursor(url: str | None, when: datetime) -> None:
    with session_scope(url) as s:
        row = s.get(SyncCursor, CURSOR)
        if row is None:
            s.add(SyncCursor(name=CURSOR, value=when.isoformat()))
        elif datetime.fromisoformat(row.value) < when:
            row.value = when.isoformat()


async def _edited_blocks(
    bs: BlockStore, since: datetime
) -> tuple[dict[str, str | None], datetime | None]:
    """Block documents of Fleetwright's types with an event since `since` (id → type name),
    and when the newest of those events occurred."""
    names = [cls.get_block_type_name() for cls in BLOCK_TYPES]
    body: dict[str, Any] = {
        "filter": {
            "occurred": {
                "since": since.isoformat(),
                "until": (utcnow() + timedelta(minutes=5)).isoformat(),
            },
            "event": {"name": _EVENTS},
            # By resource id prefix, which Prefect matches on the events table itself; a filter
            # on the related block type goes through its event-resources table, and at 10,000
            # block events each page of that ran into the server's 10 s statement timeout.
            # Other block types' events (Secret blocks, …) are left out below.
            "resource": {"id_prefix": ["prefect.block-document."]},
            "order": "ASC",
        },
        "limit": 50,
    }
    found: dict[str, str | None] = {}
    newest: datetime | None = None
    response = await bs.client._client.post("/events/filter", json=body)
    while True:
        response.raise_for_status()
        page = response.json()
        for event in page.get("events", []):
            doc_id = str(event["resource"]["prefect.resource.id"]).removeprefix(
                "prefect.block-document."
            )
            type_name = next(
                (r.get("prefect.resource.name") for r in event.get("related", [])
                 if r.get("prefect.resource.role") == "block-type"),
                None,
            )  # fmt: skip
            if type_name not in names:
                continue
            found[doc_id] = type_name
            occurred = datetime.fromisoformat(str(event["occurred"]))
            newest = occurred if newest is None else max(newest, occurred)
        next_page = page.get("next_page")
        if not next_page:
            return found, newest
        response = await bs.client._client.get(str(next_page))


async def _sync_profiles(bs: BlockStore, url: str | None, report: SyncReport) -> None:
    docs = await bs.list(BrowserProfile)
    seen: set[str] = set()
    for doc in docs:
        seen.add(str(doc.id))
        report.blocks_checked += 1
        report.note(await reconcile_profile_document(doc, url=url))
    await asyncio.to_thread(_archive_orphans, url, seen, report)


def _archive_orphans(url: str | None, seen: set[str], report: SyncReport) -> None:
    """Rows whose block is gone (deleted in the UI) are archived; rows that never had one
    are pending projections, left to the projector."""
    with session_scope(url) as s:
        for row in s.scalars(
            select(Profile).where(Profile.block_document_id.is_not(None)).with_for_update()
        ):
            if row.block_document_id not in seen:
                action, _ = _archive_deleted(row)
                if action == "archived":
                    report.rows_archived.append(row.name)


async def _reconcile_proxy(
    bs: BlockStore,
    document_id: str,
    url: str | None,
    report: SyncReport,
    doc: BlockDocument | None,
) -> None:
    if doc is None:
        await asyncio.to_thread(_proxy_block_deleted, url, {document_id}, report, True)
        return
    if doc.block_type_name not in (None, ProxyBlock.get_block_type_name()):
        return
    await asyncio.to_thread(_apply_proxy_document, url, doc, report)


def _apply_proxy_document(url: str | None, doc: BlockDocument, report: SyncReport) -> None:
    doc_id = str(doc.id)
    try:
        spec: ProxySpec = block_from_document(ProxyBlock, doc).to_spec()
    except Exception as exc:
        report.invalid_blocks.append(f"{doc.name}: {type(exc).__name__}")
        return
    with session_scope(url) as s:
        row = s.scalar(
            select(Proxy).where(Proxy.block_document_id == doc_id).options(selectinload(Proxy.pool))
        ) or s.scalar(
            select(Proxy).where(Proxy.name == spec.name).options(selectinload(Proxy.pool))
        )
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


def _proxy_block_deleted(
    url: str | None, gone: set[str], report: SyncReport, only: bool = False
) -> None:
    with session_scope(url) as s:
        stmt = select(Proxy).where(Proxy.block_document_id.is_not(None))
        if only:
            stmt = stmt.where(Proxy.block_document_id.in_(list(gone)))
        for row in s.scalars(stmt):
            if row.block_document_id in gone:
                # the password lived in the block: without it the proxy cannot be used
                row.health = "quarantined"
                row.last_error = "its Proxy block was deleted; add the proxy again"
                row.block_document_id = None
                report.rows_archived.append(f"proxy {row.name}")


async def _sync_proxies(bs: BlockStore, url: str | None, report: SyncReport) -> None:
    docs = await bs.list(ProxyBlock)
    ids = {str(d.id) for d in docs}
    for doc in docs:
        report.blocks_checked += 1
        await asyncio.to_thread(_apply_proxy_document, url, doc, report)
    with session_scope(url) as s:
        known = set(
            s.scalars(select(Proxy.block_document_id).where(Proxy.block_document_id.is_not(None)))
        )
    gone = {d for d in known if d and d not in ids}
    if gone:
        await asyncio.to_thread(_proxy_block_deleted, url, gone, report, True)
