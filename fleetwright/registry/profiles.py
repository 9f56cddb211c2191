"""Profiles: catalogue rows first, then their BrowserProfile blocks (a projection).

Every write validates first, then changes the rows in one transaction and bumps their
revision (the outbox entry), then projects the blocks through the Prefect API
(registry/projection.py). A profile is runnable as soon as its row is committed. A crash or
an unreachable Prefect API between the two leaves rows whose block is pending; the next
projection (any later write, `fleetwright sync`, the sync-catalogue flow) writes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileTag
from fleetwright.catalogue.shape import (
    apply_spec,
    check_refs,
    lookup_refs,
    row_to_spec,
    select_profiles,
    spec_columns,
    spec_json,
)
from fleetwright.errors import (
    AlreadyExistsError,
    FleetwrightError,
    NotFoundError,
    PrefectUnavailableError,
    ValidationError,
)
from fleetwright.proxies.locking import lock_profile
from fleetwright.registry.events import emit
from fleetwright.registry.outbox import BLOCK_CONCURRENCY, ProjectionReport
from fleetwright.specs import ProfileSpec, block_name_for, validate_profile

if TYPE_CHECKING:
    from fleetwright.registry.blockstore import BlockStore

# Prefect's client (blockstore, projection) is imported where a write reaches the
# Prefect API, not here: `fleetwright profile add` writes its one block without it
# (registry/direct.py), and importing it costs about a second.

__all__ = [
    "BLOCK_CONCURRENCY",
    "ImportReport",
    "add_profile",
    "apply_spec",
    "archive_profile",
    "edit_profile",
    "export_profiles",
    "get_profile",
    "import_profiles",
    "list_profiles",
    "profile_record",
    "project_pending",
    "row_to_spec",
    "save_spec",
    "select_profiles",
]

logger = logging.getLogger(__name__)
IMPORT_CHUNK = 500


def profile_record(row: Profile) -> dict[str, Any]:
    """A JSON-able view of a profile for listings and `--json`."""
    spec = spec_json(row_to_spec(row))
    spec.update(
        id=row.id,
        bound_proxy=row.bound_proxy.name if row.bound_proxy is not None else None,
        block_name=row.block_name,
        block_document_id=row.block_document_id,
        block_pending=row.revision > row.projected_revision,
        revision=row.revision,
        state_version=row.state_version,
        lease_holder=row.lease_holder,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
    )
    return spec


_LOAD = (
    selectinload(Profile.proxy),
    selectinload(Profile.proxy_pool),
    selectinload(Profile.bound_proxy),
)


def save_spec(
    row: Profile, spec: ProfileSpec, proxies: dict[str, int], pools: dict[str, int]
) -> bool:
    """Apply a spec to a row (new or existing); a change bumps the revision, so the row's
    block is written by the next projection. True when something changed."""
    if row.id is None:
        apply_spec(row, spec, proxies, pools)
        row.revision, row.projected_revision = 1, 0
        return True
    if not apply_spec(row, spec, proxies, pools):
        return False
    row.revision += 1
    return True


def _get_row(session: Session, name: str) -> Profile:
    row = session.scalar(select(Profile).where(Profile.name == name).options(*_LOAD))
    if row is None:
        raise NotFoundError(f"unknown profile {name!r}; see `fleetwright profile list`")
    return row


async def project_pending(
    ids: Sequence[int] | None = None,
    *,
    url: str | None = None,
    store: BlockStore | None = None,
    progress: Callable[[int], None] | None = None,
    required: bool = False,
) -> ProjectionReport | None:
    """Write the pending blocks of `ids` (all pending rows when None). Without a reachable
    Prefect API they stay pending (None is returned) unless `required`."""
    from fleetwright.registry.blockstore import open_block_store
    from fleetwright.registry.projection import project_profiles

    try:
        if store is not None:
            return await project_profiles(store, ids=ids, url=url, progress=progress)
        async with open_block_store(connections=BLOCK_CONCURRENCY) as bs:
            return await project_profiles(bs, ids=ids, url=url, progress=progress)
    except PrefectUnavailableError:
        if required:
            raise
        logger.warning(
            "the Prefect API is unreachable: %s block(s) stay pending until the next sync",
            "all" if ids is None else len(ids),
        )
        return None


async def add_profile(
    spec: ProfileSpec,
    *,
    url: str | None = None,
    store: BlockStore | None = None,
    direct: bool = False,
) -> dict[str, Any]:
    """Create a profile: its catalogue row, then its BrowserProfile block.

    `direct`: write the block and the `created` event over the local Prefect server's REST API
    without loading Prefect's client (the CLI's path: a process that writes one block); where
    that cannot be done (another server, a block name taken, an older block schema), the
    usual path does it.
    """
    with session_scope(url) as s:
        if s.scalar(select(Profile.id).where(Profile.name == spec.name)) is not None:
            raise AlreadyExistsError(
                f"profile {spec.name!r} already exists; use `fleetwright profile edit`"
            )
        proxies, pools = lookup_refs(s, [spec])
        check_refs(spec, proxies, pools)
        row = Profile(block_name=block_name_for(spec.name))
        save_spec(row, spec, proxies, pools)
        s.add(row)
        try:
            s.flush()
        except IntegrityError:
            raise AlreadyExistsError(f"profile {spec.name!r} already exists") from None
        row_id = row.id
    if direct and store is None:
        from fleetwright.registry.direct import add_profile_block

        if await add_profile_block(row_id, spec, url=url):
            return get_profile(spec.name, url=url)
    await project_pending([row_id], url=url, store=store)
    await emit("fleetwright.profile.created", spec.name, {"tags": spec.tags})
    return get_profile(spec.name, url=url)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


async def edit_profile(
    name: str,
    changes: dict[str, Any],
    *,
    url: str | None = None,
    store: BlockStore | None = None,
) -> dict[str, Any]:
    """Change some of a profile's fields (nested fingerprint fields merge); row, then block."""
    if "name" in changes and changes["name"] != name:
        raise ValidationError(
            f"profile {name!r}: renaming is not supported; add a new profile and archive this one"
        )
    with session_scope(url) as s:
        row_id = _get_row(s, name).id
        row = lock_profile(s, row_id)
        old_status = row.status
        merged = _merge(spec_json(row_to_spec(row)), changes)
        if changes.get("proxy"):
            merged["proxy_pool"] = None
        elif changes.get("proxy_pool"):
            merged["proxy"] = None
        spec = validate_profile(merged, where=f"profile {name!r}")
        proxies, pools = lookup_refs(s, [spec])
        check_refs(spec, proxies, pools)
        save_spec(row, spec, proxies, pools)
    await project_pending([row_id], url=url, store=store)
    if spec.status == "archived" and old_status != "archived":
        await emit("fleetwright.profile.archived", name, {})
    return get_profile(name, url=url)


async def archive_profile(
    name: str, *, url: str | None = None, store: BlockStore | None = None
) -> dict[str, Any]:
    """Archive a profile: it keeps its state and history but is no longer selected for runs."""
    return await edit_profile(name, {"status": "archived"}, url=url, store=store)


def get_profile(name: str, *, url: str | None = None) -> dict[str, Any]:
    with session_scope(url) as s:
        return profile_record(_get_row(s, name))


def list_profiles(
    *,
    names: Sequence[str] = (),
    tags: Sequence[str] = (),
    status: str | None = None,
    limit: int | None = None,
    url: str | None = None,
) -> list[dict[str, Any]]:
    """Profiles as records, ordered by name; unknown tags are an error, not an empty list."""
    with session_scope(url) as s:
        if tags:
            known = set(
                s.scalars(select(ProfileTag.tag).where(ProfileTag.tag.in_(list(tags))).distinct())
            )
            missing = [t for t in tags if t not in known]
            if missing:
                raise NotFoundError(f"no profile has tag {missing[0]!r}")
        stmt = (
            select_profiles(names=names, tags=tags, status=status)
            .options(*_LOAD)
            .order_by(Profile.name)
        )
        if limit:
            stmt = stmt.limit(limit)
        rows = list(s.scalars(stmt))
        if names:
            found = {r.name for r in rows}
            missing = [n for n in names if n not in found]
            if missing and not tags:
                raise NotFoundError(
                    f"unknown profile {missing[0]!r}; see `fleetwright profile list`"
                )
        return [profile_record(r) for r in rows]


def count_profiles(*, url: str | None = None) -> dict[str, int]:
    with session_scope(url) as s:
        return dict(
            s.execute(select(Profile.status, func.count()).group_by(Profile.status)).tuples().all()
        )


def export_profiles(
    *, tags: Sequence[str] = (), status: str | None = None, url: str | None = None
) -> list[dict[str, Any]]:
    """Profiles as import-ready ProfileSpec dicts."""
    with session_scope(url) as s:
        stmt = select_profiles(tags=tags, status=status).options(*_LOAD).order_by(Profile.name)
        return [
            row_to_spec(r).model_dump(mode="json", exclude_defaults=True) | {"name": r.name}
            for r in s.scalars(stmt)
        ]


@dataclass
class ImportReport:
    """What a bulk import did: counts, each bad item with where it was and why, and how many
    blocks were written (the rest stay pending for the next sync)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    blocks_written: int = 0
    blocks_pending: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.errors)


async def import_profiles(
    items: Sequence[tuple[str, Any]],
    *,
    url: str | None = None,
    store: BlockStore | None = None,
    progress: Callable[[int], None] | None = None,
    block_progress: Callable[[int], None] | None = None,
    concurrency: int | None = None,
    blocks: bool = True,
) -> ImportReport:
    """Create or update many profiles; `items` are (where, data) pairs, where = e.g. "item 3".

    Bad items are reported and skipped; good ones are written, IMPORT_CHUNK rows per
    transaction, and are runnable from then on; re-importing the same file changes nothing.
    Then, with `blocks`, their BrowserProfile blocks are written through the Prefect API, at
    most `concurrency` at a time; without, or if the API is unreachable, they stay pending
    for the next sync.
    """
    limit = BLOCK_CONCURRENCY if concurrency is None else concurrency
    if limit < 1:
        raise ValueError(f"concurrency must be at least 1, not {limit}")
    report = ImportReport()
    specs: list[tuple[str, ProfileSpec]] = []
    seen: set[str] = set()
    for where, data in items:
        if not isinstance(data, dict):
            report.errors.append((where, f"{where}: not a JSON object"))
            continue
        try:
            spec = validate_profile(data, where=where)
        except FleetwrightError as exc:
            report.errors.append((where, exc.message))
            continue
        if spec.name in seen:
            report.errors.append(
                (where, f"{where}: profile {spec.name!r} appears twice in the file")
            )
            continue
        seen.add(spec.name)
        specs.append((where, spec))
    if progress and report.errors:
        progress(len(report.errors))
    changed: list[int] = []
    for i in range(0, len(specs), IMPORT_CHUNK):
        chunk = specs[i : i + IMPORT_CHUNK]
        changed.extend(await asyncio.to_thread(_import_chunk, chunk, url, report))
        if progress:
            progress(len(chunk))
    if not changed:
        return report
    if not blocks:
        report.blocks_pending = len(changed)
        return report
    from fleetwright.registry.blockstore import open_block_store
    from fleetwright.registry.projection import project_profiles

    try:
        if store is not None:
            projected = await project_profiles(
                store, ids=changed, url=url, concurrency=limit, progress=block_progress
            )
        else:
            async with open_block_store(connections=limit) as bs:
                projected = await project_profiles(
                    bs, ids=changed, url=url, concurrency=limit, progress=block_progress
                )
    except PrefectUnavailableError:
        logger.warning("the Prefect API is unreachable: imported profiles' blocks stay pending")
        report.blocks_pending = len(changed)
        return report
    report.blocks_written = projected.written
    report.blocks_pending = len(changed) - projected.written
    return report


def _import_chunk(
    chunk: list[tuple[str, ProfileSpec]], url: str | None, report: ImportReport
) -> list[int]:
    """One chunk's rows in one transaction; the ids of rows whose block is to be written.

    Another writer may create one of these names between our read and our insert (a second
    import, a reconcile of a block made in the UI): the transaction is then rolled back and
    the chunk planned again, now updating that row.
    """
    for attempt in range(_CHUNK_ATTEMPTS):
        errors: list[tuple[str, str]] = []
        try:
            with session_scope(url) as s:
                proxies, pools = lookup_refs(s, [spec for _, spec in chunk])
                existing = {
                    r.name: r
                    for r in s.scalars(
                        select(Profile)
                        .where(Profile.name.in_([spec.name for _, spec in chunk]))
                        .options(*_LOAD)
                    )
                }
                created = updated = unchanged = 0
                new_rows: list[tuple[dict[str, Any], list[str]]] = []
                changed_rows: list[Profile] = []
                for where, spec in chunk:
                    try:
                        check_refs(spec, proxies, pools)
                    except NotFoundError as exc:
                        errors.append((where, exc.message))
                        continue
                    row = existing.get(spec.name)
                    if row is None:
                        columns = spec_columns(spec, proxies, pools)
                        columns.update(
                            block_name=block_name_for(spec.name), revision=1, projected_revision=0
                        )
                        new_rows.append((columns, list(spec.tags)))
                        created += 1
                    elif save_spec(row, spec, proxies, pools):
                        changed_rows.append(row)
                        updated += 1
                    else:
                        unchanged += 1
                        if row.revision > row.projected_revision:
                            changed_rows.append(row)  # its block is still pending
                s.flush()
                ids = [r.id for r in changed_rows]
                if new_rows:
                    # new rows in two bulk statements: the ORM's unit of work (per-object
                    # events, relationship bookkeeping) was most of a 10,000-profile import
                    new_ids = list(
                        s.scalars(
                            insert(Profile).returning(Profile.id, sort_by_parameter_order=True),
                            [columns for columns, _ in new_rows],
                        )
                    )
                    tags = [
                        {"profile_id": pid, "tag": tag}
                        for pid, (_, names) in zip(new_ids, new_rows, strict=True)
                        for tag in names
                    ]
                    if tags:
                        s.execute(insert(ProfileTag), tags)
                    ids.extend(new_ids)
        except IntegrityError:
            if attempt + 1 == _CHUNK_ATTEMPTS:
                raise
            continue
        report.created += created
        report.updated += updated
        report.unchanged += unchanged
        report.errors.extend(errors)
        return ids
    return []  # pragma: no cover - the loop returns or raises


_CHUNK_ATTEMPTS = 5
