"""Profile blocks as a projection of catalogue rows, and UI edits merged back into rows.

The catalogue row is the source of truth for a profile. A write (add, edit, import, assign)
changes the row and bumps its `revision` in one transaction; that pending revision is the
outbox entry. `project_profiles` then writes the BrowserProfile blocks through the Prefect API,
a bounded number at a time, and marks each row projected with a compare-and-set on its
revision: a row changed meanwhile is projected again, never marked with stale data.

A block edited in the Prefect UI comes back through `reconcile_profile_block`, by document id:
the fields the edit changed against `projected` (what the block held when last written) are
merged into the row, so an edit made in the UI and one made from the CLI meanwhile both
survive; where both changed the same field, the one applied last wins. Before overwriting a
block, the projector reads it and merges an edit that has not been reconciled yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import BlockDocument
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleetwright.blocks.profile import BrowserProfile
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.catalogue.shape import (
    apply_spec,
    check_refs,
    lookup_refs,
    merge_edit,
    row_to_spec,
    spec_json,
)
from fleetwright.errors import FleetwrightError, PrefectUnavailableError
from fleetwright.proxies.locking import lock_profile
from fleetwright.registry.blockstore import BlockStore
from fleetwright.registry.outbox import (
    BLOCK_CONCURRENCY,
    Pending,
    ProjectionReport,
    mark_projected,
    pending_rows,
)
from fleetwright.specs import ProfileSpec, validate_profile

__all__ = [
    "BLOCK_CONCURRENCY",
    "ProjectionReport",
    "project_profiles",
    "reconcile_profile_block",
    "reconcile_profile_document",
]

logger = logging.getLogger(__name__)
_ATTEMPTS = 3


async def project_profiles(
    store: BlockStore,
    *,
    ids: Sequence[int] | None = None,
    url: str | None = None,
    concurrency: int = BLOCK_CONCURRENCY,
    progress: Callable[[int], None] | None = None,
    batch: int = 500,
) -> ProjectionReport:
    """Write the blocks of rows whose revision is ahead of their block (all, or `ids`)."""
    report = ProjectionReport()
    sem = asyncio.Semaphore(concurrency)
    retries: dict[int, int] = {}
    skip: set[int] = set()

    async def one(item: Pending) -> None:
        async with sem:
            try:
                if item.document_id is not None:
                    doc = await store.read_document(item.document_id)
                    if doc is not None and _unmerged_edit(doc, item.projected):
                        # an edit made in the UI that no reconcile has seen yet: merge it first
                        await reconcile_profile_document(doc, url=url)
                        report.merged.append(item.name)
                        return  # the row's revision moved on: projected in the next round
                    if doc is None:
                        item.document_id = None
                block = BrowserProfile.from_spec(item.spec)
                if item.document_id is not None:
                    await store.update(item.document_id, block)
                    document_id = item.document_id
                else:
                    document_id = str(await store.create(block, item.block_name))
            except PrefectUnavailableError:
                raise
            except Exception as exc:
                retries[item.id] = retries.get(item.id, 0) + 1
                if retries[item.id] >= _ATTEMPTS:
                    skip.add(item.id)
                    report.failed.append((item.name, f"block write failed: {type(exc).__name__}"))
                    logger.warning("profile %s: block write failed (%s)", item.name, exc)
                return
            if await asyncio.to_thread(mark_projected, url, item, document_id):
                report.written += 1
                if progress:
                    progress(1)

    while True:
        todo = [p for p in await asyncio.to_thread(pending_rows, url, ids, batch + len(skip))
                if p.id not in skip]  # fmt: skip
        if not todo:
            return report
        await asyncio.gather(*(one(item) for item in todo[:batch]))


def _unmerged_edit(doc: BlockDocument, projected: dict[str, Any] | None) -> bool:
    if projected is None:
        return False
    try:
        edited = spec_json(validate_profile(BrowserProfile.upgrade_data(dict(doc.data))))
    except FleetwrightError:
        return False  # an invalid edit is reported by the reconcile; the row stays as it is
    return edited != projected


@dataclass
class BlockOutcome:
    """What reconciling one block did to the catalogue."""

    name: str
    action: str  # created | updated | linked | unchanged | archived | invalid | ignored
    detail: str = ""


async def reconcile_profile_block(
    store: BlockStore, document_id: str, *, url: str | None = None
) -> BlockOutcome:
    """Bring the row of one BrowserProfile block in line with an edit of it (by id)."""
    doc = await store.read_document(document_id)
    if doc is None:
        return await asyncio.to_thread(_block_deleted, document_id, url)
    return await reconcile_profile_document(doc, url=url)


async def reconcile_profile_document(doc: BlockDocument, *, url: str | None = None) -> BlockOutcome:
    return await asyncio.to_thread(_apply_document, doc, url)


def _block_deleted(document_id: str, url: str | None) -> BlockOutcome:
    with session_scope(url) as s:
        row_id = s.scalar(select(Profile.id).where(Profile.block_document_id == document_id))
        if row_id is None:
            return BlockOutcome(document_id, "ignored", "no profile has this block")
        row = lock_profile(s, row_id)
        return BlockOutcome(row.name, *_archive_deleted(row))


def _archive_deleted(row: Profile) -> tuple[str, str]:
    """A row whose block was deleted in the UI: archived, keeping its state and history."""
    was = row.status
    row.block_document_id = None
    row.block_name = None
    row.projected = None
    if was != "archived":
        row.status = "archived"
        row.revision += 1
    row.projected_revision = row.revision  # an archived profile gets no block back
    return ("archived" if was != "archived" else "unchanged"), "its block was deleted"


def _apply_document(doc: BlockDocument, url: str | None) -> BlockOutcome:
    document_id = str(doc.id)
    where = f"block {doc.name!r}"
    try:
        edited = validate_profile(BrowserProfile.upgrade_data(dict(doc.data)), where=where)
    except FleetwrightError as exc:
        return BlockOutcome(doc.name or document_id, "invalid", exc.message)
    with session_scope(url) as s:
        row_id = s.scalar(select(Profile.id).where(Profile.block_document_id == document_id))
        if row_id is None:
            row_id = s.scalar(select(Profile.id).where(Profile.name == edited.name))
            if row_id is not None:
                other = s.scalar(select(Profile.block_document_id).where(Profile.id == row_id))
                if other is not None and other != document_id:
                    return BlockOutcome(
                        edited.name,
                        "invalid",
                        f"{where}: profile {edited.name!r} already has another block; "
                        "delete one of them",
                    )
        if row_id is None:
            return _create_from_block(s, doc, edited)
        row = lock_profile(s, row_id)
        return _merge_into_row(s, row, doc, edited)


def _create_from_block(s: Session, doc: BlockDocument, spec: ProfileSpec) -> BlockOutcome:
    try:
        proxies, pools = lookup_refs(s, [spec])
        check_refs(spec, proxies, pools)
    except FleetwrightError as exc:
        return BlockOutcome(spec.name, "invalid", exc.message)
    row = Profile(block_name=doc.name, block_document_id=str(doc.id))
    apply_spec(row, spec, proxies, pools)
    row.revision = 1
    row.projected_revision = 1
    row.projected = spec_json(spec)
    s.add(row)
    s.flush()
    return BlockOutcome(spec.name, "created")


def _merge_into_row(
    s: Session, row: Profile, doc: BlockDocument, edited: ProfileSpec
) -> BlockOutcome:
    edited_json = spec_json(edited)
    base = row.projected
    first_link = row.block_document_id != str(doc.id)
    row.block_document_id, row.block_name = str(doc.id), doc.name
    if base is not None and edited_json == base:
        return BlockOutcome(row.name, "linked" if first_link else "unchanged")
    current = row_to_spec(row)
    if base is None:
        # The block was written before its row recorded it (a projection in flight) or
        # created by hand for an existing profile: the row wins, the projector rewrites it.
        row.projected = edited_json
        if edited == current:
            row.projected_revision = max(row.projected_revision, row.revision)
        return BlockOutcome(row.name, "linked")
    merged_data = merge_edit(base, edited_json, spec_json(current))
    where = f"block {doc.name!r}"
    try:
        merged = validate_profile(merged_data, where=where)
        proxies, pools = lookup_refs(s, [merged])
        check_refs(merged, proxies, pools)
        if merged.name != row.name and s.scalar(
            select(Profile.id).where(Profile.name == merged.name, Profile.id != row.id)
        ):
            raise FleetwrightError(f"{where}: name {merged.name!r} is taken by another profile")
    except FleetwrightError as exc:
        return BlockOutcome(row.name, "invalid", exc.message)
    changed = apply_spec(row, merged, proxies, pools)
    if changed:
        row.revision += 1
    row.projected = edited_json
    if merged == edited:
        row.projected_revision = row.revision
    s.flush()
    return BlockOutcome(row.name, "updated" if changed else "unchanged")
