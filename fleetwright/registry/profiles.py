"""Profiles: the one write path that keeps BrowserProfile blocks and catalogue rows together.

Every write validates first, then writes the block, then the row in one transaction; if the row
cannot be written the block write is undone. A crash between the two leaves a block without a
row, which the sync-catalogue reconcile repairs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from fleetwright.blocks.profile import BrowserProfile
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, ProfileTag, Proxy, ProxyPool
from fleetwright.errors import AlreadyExistsError, FleetwrightError, NotFoundError, ValidationError
from fleetwright.registry.blockdb import PrefectBlockDatabase, prefect_database_url
from fleetwright.registry.blockstore import BlockStore, _data, block_then_row, open_block_store
from fleetwright.registry.events import emit
from fleetwright.settings import get_settings
from fleetwright.specs import ProfileSpec, block_name_for, validate_profile

__all__ = [
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
    "row_to_spec",
    "select_profiles",
]

logger = logging.getLogger(__name__)
IMPORT_CHUNK = 500
# Block writes in flight: the Prefect server (one process) is the bottleneck; more requests
# in flight only queue there (measured on 2 cores: 4-6 best, 16 slower). See docs/architecture.md.
BLOCK_CONCURRENCY = 4


def row_to_spec(row: Profile) -> ProfileSpec:
    """The ProfileSpec a catalogue row describes."""
    return ProfileSpec.model_validate(
        {
            "name": row.name,
            "tags": row.tags,
            "fingerprint": row.fingerprint,
            "state_mode": row.state_mode,
            "status": row.status,
            "proxy": row.proxy.name if row.proxy else None,
            "proxy_pool": row.proxy_pool.name if row.proxy_pool else None,
            "proxy_policy": row.proxy_policy,
            "proxy_failover": row.proxy_failover,
            "ip_check": row.ip_check,
            "country": row.country,
            "notes": row.notes,
        }
    )


def profile_record(row: Profile) -> dict[str, Any]:
    """A JSON-able view of a profile for listings and `--json`."""
    spec = row_to_spec(row).model_dump(mode="json")
    spec.update(
        id=row.id,
        block_name=row.block_name,
        block_document_id=row.block_document_id,
        state_version=row.state_version,
        lease_holder=row.lease_holder,
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
    )
    return spec


def _lookup_refs(
    session: Session, specs: Iterable[ProfileSpec]
) -> tuple[dict[str, int], dict[str, int]]:
    specs = list(specs)
    proxy_names = {s.proxy for s in specs if s.proxy}
    pool_names = {s.proxy_pool for s in specs if s.proxy_pool}
    proxies = (
        dict(
            session.execute(select(Proxy.name, Proxy.id).where(Proxy.name.in_(proxy_names)))
            .tuples()
            .all()
        )
        if proxy_names
        else {}
    )
    pools = (
        dict(
            session.execute(
                select(ProxyPool.name, ProxyPool.id).where(ProxyPool.name.in_(pool_names))
            )
            .tuples()
            .all()
        )
        if pool_names
        else {}
    )
    return proxies, pools


def _check_refs(spec: ProfileSpec, proxies: dict[str, int], pools: dict[str, int]) -> None:
    if spec.proxy and spec.proxy not in proxies:
        raise NotFoundError(
            f"profile {spec.name!r}: unknown proxy {spec.proxy!r}; see `fleetwright proxy list`"
        )
    if spec.proxy_pool and spec.proxy_pool not in pools:
        raise NotFoundError(
            f"profile {spec.name!r}: unknown proxy pool {spec.proxy_pool!r}; "
            "pools are created by `fleetwright proxy add --pool NAME`"
        )


def apply_spec(
    row: Profile, spec: ProfileSpec, proxies: dict[str, int], pools: dict[str, int]
) -> None:
    """Copy a validated spec onto a row (references already resolved to ids)."""
    row.name = spec.name
    row.fingerprint = spec.fingerprint.model_dump(mode="json")
    row.state_mode = spec.state_mode
    row.status = spec.status
    row.proxy_id = proxies[spec.proxy] if spec.proxy else None
    row.proxy_pool_id = pools[spec.proxy_pool] if spec.proxy_pool else None
    row.proxy_policy = spec.proxy_policy
    row.proxy_failover = spec.proxy_failover
    row.ip_check = spec.ip_check
    row.country = spec.country
    row.notes = spec.notes
    row.set_tags(spec.tags)


def _get_row(session: Session, name: str) -> Profile:
    row = session.scalar(
        select(Profile)
        .where(Profile.name == name)
        .options(selectinload(Profile.proxy), selectinload(Profile.proxy_pool))
    )
    if row is None:
        raise NotFoundError(f"unknown profile {name!r}; see `fleetwright profile list`")
    return row


async def add_profile(
    spec: ProfileSpec, *, url: str | None = None, store: BlockStore | None = None
) -> dict[str, Any]:
    """Create a profile: its BrowserProfile block and its catalogue row."""
    with session_scope(url) as s:
        if s.scalar(select(Profile.id).where(Profile.name == spec.name)) is not None:
            raise AlreadyExistsError(
                f"profile {spec.name!r} already exists; use `fleetwright profile edit`"
            )
        proxies, pools = _lookup_refs(s, [spec])
        _check_refs(spec, proxies, pools)
    block_name = block_name_for(spec.name)
    block = BrowserProfile.from_spec(spec)
    async with _store(store) as bs, block_then_row(bs, block, block_name) as doc_id:
        try:
            with session_scope(url) as s:
                row = Profile(block_name=block_name, block_document_id=str(doc_id))
                apply_spec(row, spec, proxies, pools)
                s.add(row)
                s.flush()
                s.refresh(row, ["proxy", "proxy_pool"])
                record = profile_record(row)
        except IntegrityError:
            raise AlreadyExistsError(f"profile {spec.name!r} already exists") from None
    await emit("fleetwright.profile.created", spec.name, {"tags": spec.tags})
    return record


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
    """Change some of a profile's fields (nested fingerprint fields merge); block and row."""
    if "name" in changes and changes["name"] != name:
        raise ValidationError(
            f"profile {name!r}: renaming is not supported; add a new profile and archive this one"
        )
    with session_scope(url) as s:
        row = _get_row(s, name)
        spec = validate_profile(
            _merge(row_to_spec(row).model_dump(mode="json"), changes), where=f"profile {name!r}"
        )
        proxies, pools = _lookup_refs(s, [spec])
        _check_refs(spec, proxies, pools)
        old_status = row.status
        async with _store(store) as bs:
            block = BrowserProfile.from_spec(spec)
            if row.block_document_id:
                await bs.update(row.block_document_id, block)
            else:
                row.block_name = row.block_name or block_name_for(name)
                row.block_document_id = str(await bs.create(block, row.block_name))
            apply_spec(row, spec, proxies, pools)
            s.flush()
            s.refresh(row, ["proxy", "proxy_pool"])
            record = profile_record(row)
    if spec.status == "archived" and old_status != "archived":
        await emit("fleetwright.profile.archived", name, {})
    return record


async def archive_profile(
    name: str, *, url: str | None = None, store: BlockStore | None = None
) -> dict[str, Any]:
    """Archive a profile: it keeps its state and history but is no longer selected for runs."""
    return await edit_profile(name, {"status": "archived"}, url=url, store=store)


def get_profile(name: str, *, url: str | None = None) -> dict[str, Any]:
    with session_scope(url) as s:
        return profile_record(_get_row(s, name))


def select_profiles(
    *,
    names: Sequence[str] = (),
    tags: Sequence[str] = (),
    status: str | None = "active",
) -> Select[Profile]:
    """Profiles named in `names` or carrying any of `tags` (all when both are empty)."""
    stmt = select(Profile)
    if names or tags:
        cond = []
        if names:
            cond.append(Profile.name.in_(list(names)))
        if tags:
            cond.append(
                Profile.id.in_(select(ProfileTag.profile_id).where(ProfileTag.tag.in_(list(tags))))
            )
        from sqlalchemy import or_

        stmt = stmt.where(or_(*cond))
    if status:
        stmt = stmt.where(Profile.status == status)
    return stmt


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
            .options(selectinload(Profile.proxy), selectinload(Profile.proxy_pool))
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
        stmt = (
            select_profiles(tags=tags, status=status)
            .options(selectinload(Profile.proxy), selectinload(Profile.proxy_pool))
            .order_by(Profile.name)
        )
        return [
            row_to_spec(r).model_dump(mode="json", exclude_defaults=True) | {"name": r.name}
            for r in s.scalars(stmt)
        ]


@dataclass
class ImportReport:
    """What a bulk import did: counts, and each bad item with where it was and why."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    bulk_blocks: int = 0  # blocks written straight into the Prefect server's database

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.errors)


async def import_profiles(
    items: Sequence[tuple[str, Any]],
    *,
    url: str | None = None,
    store: BlockStore | None = None,
    progress: Callable[[int], None] | None = None,
    concurrency: int | None = None,
) -> ImportReport:
    """Create or update many profiles; `items` are (where, data) pairs, where = e.g. "item 3".

    Bad items are reported and skipped; good ones are written; re-importing the same file
    changes nothing. At most `concurrency` block writes are in flight (BLOCK_CONCURRENCY by
    default). Chunks are pipelined: a chunk's rows are written (in a thread, one transaction)
    while the next chunk's blocks are written. If a chunk's rows cannot be written, the blocks
    this import created for it and for the chunk in flight are deleted again and the error is
    raised; earlier chunks stay imported.
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
    chunks = [specs[i : i + IMPORT_CHUNK] for i in range(0, len(specs), IMPORT_CHUNK)]
    if not chunks:
        return report
    async with _store(store, connections=limit) as bs:
        sem = asyncio.Semaphore(limit)
        direct = _Direct(bs)
        rows_task: asyncio.Task[_ChunkResult] | None = None
        rows_blocks: list[str] = []
        plan = await _db(url, _plan_chunk, chunks[0], url)
        try:
            for k in range(len(chunks)):
                written = await _write_blocks(plan, bs, sem, direct)
                created = [i.document_id for i in written.items if i.created and i.document_id]
                if rows_task is not None:
                    try:
                        _merge_result(report, await rows_task, progress)
                    except BaseException:
                        await _undo_blocks(bs, rows_blocks + created, direct)
                        raise
                rows_task = asyncio.create_task(_db(url, _write_rows, written, url))
                rows_blocks = created
                if k + 1 < len(chunks):
                    plan = await _db(url, _plan_chunk, chunks[k + 1], url)
            assert rows_task is not None
            try:
                _merge_result(report, await rows_task, progress)
            except BaseException:
                await _undo_blocks(bs, rows_blocks, direct)
                raise
        finally:
            if rows_task is not None and not rows_task.done():
                # cancelled or failed while a chunk's rows were being written: let them finish
                await asyncio.wait([rows_task])
            direct.close()
            report.bulk_blocks = direct.written
    return report


T = TypeVar("T")


async def _db(url: str | None, fn: Callable[..., T], *args: Any) -> T:
    """Run catalogue work in a worker thread, so block writes go on meanwhile; inline for an
    in-memory SQLite catalogue (each thread would see a database of its own)."""
    u = make_url(url or get_settings().catalogue_url)
    if u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:"):
        return fn(*args)
    return await asyncio.to_thread(partial(fn, *args))


@dataclass
class _Item:
    """One profile of an import chunk on its way: spec, existing row (by id), block outcome."""

    where: str
    spec: ProfileSpec
    row_id: int | None
    document_id: str | None
    created: bool = False
    error: str | None = None


@dataclass
class _ChunkPlan:
    items: list[_Item]
    proxies: dict[str, int]
    pools: dict[str, int]
    errors: list[tuple[str, str]]
    unchanged: int
    size: int


@dataclass
class _ChunkResult:
    created: int
    updated: int
    unchanged: int
    errors: list[tuple[str, str]]
    size: int


def _plan_chunk(chunk: list[tuple[str, ProfileSpec]], url: str | None) -> _ChunkPlan:
    """What a chunk needs written: unknown references and unchanged profiles are settled here."""
    with session_scope(url) as s:
        proxies, pools = _lookup_refs(s, [spec for _, spec in chunk])
        existing = {
            r.name: r
            for r in s.scalars(
                select(Profile)
                .where(Profile.name.in_([spec.name for _, spec in chunk]))
                .options(selectinload(Profile.proxy), selectinload(Profile.proxy_pool))
            )
        }
        plan = _ChunkPlan([], proxies, pools, [], 0, len(chunk))
        for where, spec in chunk:
            try:
                _check_refs(spec, proxies, pools)
            except NotFoundError as exc:
                plan.errors.append((where, exc.message))
                continue
            row = existing.get(spec.name)
            if row is not None and row.block_document_id and row_to_spec(row) == spec:
                plan.unchanged += 1
                continue
            plan.items.append(
                _Item(
                    where,
                    spec,
                    row.id if row is not None else None,
                    row.block_document_id if row is not None else None,
                )
            )
    return plan


class _Direct:
    """An import's bulk writer into the Prefect server's database (blockdb), opened once one
    document has gone through the API: that document proves the server's encryption key."""

    def __init__(self, bs: BlockStore) -> None:
        self.bs = bs
        self.url = prefect_database_url()
        self.writer: PrefectBlockDatabase | None = None
        self.tried = self.url is None
        self.written = 0

    async def open(self) -> None:
        self.tried = True
        assert self.url is not None
        type_id, schema_id = await self.bs._type_ids(BrowserProfile)
        settings = get_settings()
        keys = [
            settings.encryption_key.get_secret_value() if settings.encryption_key else "",
            os.environ.get("PREFECT_SERVER_ENCRYPTION_KEY", ""),
        ]
        self.writer = await asyncio.to_thread(
            partial(
                PrefectBlockDatabase.open,
                self.url,
                block_type_id=type_id,
                block_schema_id=schema_id,
                block_type_name=BrowserProfile.get_block_type_name(),
                keys=keys,
            )
        )

    async def upsert(self, items: list[_Item]) -> bool:
        """Write the items' blocks in one transaction; False (nothing written) on failure."""
        assert self.writer is not None
        documents = [
            (block_name_for(item.spec.name), _data(BrowserProfile.from_spec(item.spec)))
            for item in items
        ]
        try:
            results = await asyncio.to_thread(self.writer.upsert, documents)
        except Exception as exc:
            logger.warning(
                "bulk block write failed (%s); writing through the Prefect API",
                type(exc).__name__,
            )
            self.close()
            return False
        for item, (doc_id, created) in zip(items, results, strict=True):
            item.document_id = str(doc_id)
            item.created = created
        self.written += len(items)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _write_blocks(
    plan: _ChunkPlan, bs: BlockStore, sem: asyncio.Semaphore, direct: _Direct | None = None
) -> _ChunkPlan:
    """Write the chunk's blocks: in one transaction in the Prefect server's database when the
    import can (see blockdb), else through the API, at most `sem` at a time. Failures are noted
    on their item."""

    async def write(item: _Item) -> None:
        async with sem:
            block = BrowserProfile.from_spec(item.spec)
            try:
                if item.document_id:
                    await bs.update(item.document_id, block)
                else:
                    item.document_id = str(await bs.create(block, block_name_for(item.spec.name)))
                    item.created = True
            except Exception as exc:
                item.error = f"block write failed: {type(exc).__name__}"

    todo = plan.items
    if direct is not None and todo and not direct.tried:
        await write(todo[0])
        todo = todo[1:]
        await direct.open()
    if direct is not None and direct.writer is not None and todo and await direct.upsert(todo):
        return plan
    await asyncio.gather(*(write(item) for item in todo))
    return plan


def _write_rows(plan: _ChunkPlan, url: str | None) -> _ChunkResult:
    """The chunk's rows, in one transaction (runs in a worker thread)."""
    result = _ChunkResult(0, 0, plan.unchanged, list(plan.errors), plan.size)
    with session_scope(url) as s:
        ids = [item.row_id for item in plan.items if item.row_id is not None and not item.error]
        rows = (
            {r.id: r for r in s.scalars(select(Profile).where(Profile.id.in_(ids)))} if ids else {}
        )
        for item in plan.items:
            if item.error is not None:
                result.errors.append((item.where, item.error))
                continue
            row = rows.get(item.row_id) if item.row_id is not None else None
            if row is None:
                row = Profile(block_name=block_name_for(item.spec.name))
                s.add(row)
                result.created += 1
            else:
                result.updated += 1
            row.block_document_id = item.document_id
            apply_spec(row, item.spec, plan.proxies, plan.pools)
    return result


def _merge_result(
    report: ImportReport, result: _ChunkResult, progress: Callable[[int], None] | None
) -> None:
    report.created += result.created
    report.updated += result.updated
    report.unchanged += result.unchanged
    report.errors.extend(result.errors)
    if progress:
        progress(result.size)


async def _undo_blocks(
    bs: BlockStore, document_ids: list[str], direct: _Direct | None = None
) -> None:
    """Delete blocks whose rows could not be written (best effort; the reconcile is the net)."""

    async def undo() -> None:
        if direct is not None and direct.writer is not None:
            try:
                await asyncio.to_thread(direct.writer.delete, document_ids)
                return
            except Exception:
                logger.warning("could not delete %d blocks in bulk", len(document_ids))
        for doc_id in document_ids:
            try:
                await bs.delete(doc_id)
            except Exception:
                logger.warning("could not delete block %s after its row failed", doc_id)

    await asyncio.shield(undo())


class _store:
    """Use the given BlockStore, or open one for the duration (keeping `connections` open)."""

    def __init__(self, store: BlockStore | None, *, connections: int | None = None) -> None:
        self.store = store
        self.connections = connections
        self._cm: Any = None

    async def __aenter__(self) -> BlockStore:
        if self.store is not None:
            return self.store
        self._cm = open_block_store(connections=self.connections)
        store: BlockStore = await self._cm.__aenter__()
        return store

    async def __aexit__(self, *exc: Any) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)
