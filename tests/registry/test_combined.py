"""The write path with features combined: pool profiles used again and again, failover then a
reconcile, every pair of writers interleaved, and a randomized stress ending in rows == blocks."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect.client.schemas.actions import BlockDocumentUpdate
from sqlalchemy import select

from fleetwright.blocks import BrowserProfile
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile, Proxy, utcnow
from fleetwright.catalogue.shape import row_to_spec, spec_json
from fleetwright.proxies.pools import choose_proxy_for
from fleetwright.registry import (
    add_profile,
    add_proxy,
    edit_profile,
    export_profiles,
    import_profiles,
    list_profiles,
    open_block_store,
)
from fleetwright.registry.blockstore import BlockStore
from fleetwright.registry.projection import project_profiles, reconcile_profile_block
from fleetwright.registry.sync import _edited_blocks, reconcile_edits, sync_catalogue
from fleetwright.specs import validate_profile, validate_proxy

pytestmark = pytest.mark.prefect


def _proxies(url: str, pool: str, n: int) -> list[str]:
    names = [f"{pool}-{i}" for i in range(n)]
    for i, name in enumerate(names):
        spec = validate_proxy({"name": name, "host": "127.0.0.1", "port": 4000 + i, "pool": pool})
        asyncio.run(add_proxy(spec, url=url))
    return names


def _session(url: str, name: str) -> tuple[str | None, Any]:
    """What the engine's opening transaction does about proxies: lease, choice, binding."""
    with session_scope(url) as s:
        row = s.scalar(select(Profile).where(Profile.name == name))
        assert row is not None
        row.lease_holder, row.lease_expires_at = "test", utcnow() + timedelta(seconds=30)
        proxy, failover = choose_proxy_for(s, row)
        row.lease_holder, row.lease_expires_at, row.lease_proxy_id = None, None, None
        return (proxy.name if proxy else None), failover


async def _rows_equal_blocks(url: str) -> None:
    """Every row has a block, every block a row, and each block holds its row's spec."""
    with session_scope(url) as s:
        rows = {r.name: (r, spec_json(row_to_spec(r))) for r in s.scalars(select(Profile))}
        assert all(r.revision == r.projected_revision for r, _ in rows.values())
        by_doc = {r.block_document_id: spec for r, spec in rows.values() if r.status == "active"}
    async with open_block_store() as bs:
        docs = await bs.list(BrowserProfile)
    blocks = {str(d.id): spec_json(validate_profile(dict(d.data))) for d in docs}
    assert set(blocks) == set(by_doc)
    for doc_id, spec in blocks.items():
        assert by_doc[doc_id] == spec


async def _ui_edit(document_id: str, **changes: Any) -> None:
    """What the Prefect UI's block form does: PATCH the whole data, not merged."""
    async with open_block_store() as bs:
        doc = await bs.read_document(document_id)
        assert doc is not None
        data = dict(doc.data)
        for key, value in changes.items():
            if key in ("locale", "timezone"):
                data["fingerprint"] = {**data["fingerprint"], key: value}
            else:
                data[key] = value
        await bs.client.update_block_document(
            UUID(document_id),
            BlockDocumentUpdate(data=data, merge_existing_data=False),
        )


async def _wait_for_block_events(since: Any, count: int, timeout: float = 90) -> None:
    """Wait until Prefect has stored block events for `count` documents since `since` and no
    newer one arrived for longer than its event persister's flush interval (5 s)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    quiet_since = time.monotonic()
    async with open_block_store() as bs:
        while True:
            found, newest = await _edited_blocks(bs, since)
            if newest != last:
                last, quiet_since = newest, time.monotonic()
            elif len(found) >= count and time.monotonic() - quiet_since > 7:
                return
            assert time.monotonic() < deadline, f"{len(found)} of {count} block events stored"
            await asyncio.sleep(0.5)


def _doc_id(url: str, name: str) -> str:
    with session_scope(url) as s:
        doc = s.scalar(select(Profile.block_document_id).where(Profile.name == name))
    assert doc is not None
    return doc


@pytest.mark.parametrize("policy", ["sticky", "round_robin", "least_used", "random"])
def test_pool_profile_three_sessions_then_list_edit_export_reconcile(
    prefect_api: str, catalogue_url: str, policy: str
) -> None:
    pool = _proxies(catalogue_url, "pp", 3)
    asyncio.run(
        add_profile(
            validate_profile({"name": "pooled", "proxy_pool": "pp", "proxy_policy": policy}),
            url=catalogue_url,
        )
    )
    used = [_session(catalogue_url, "pooled")[0] for _ in range(3)]
    assert all(u in pool for u in used)
    if policy == "sticky":
        assert len(set(used)) == 1
    record = list_profiles(url=catalogue_url)[0]
    assert record["proxy_pool"] == "pp" and record["proxy"] is None
    assert record["bound_proxy"] == (used[0] if policy == "sticky" else None)
    edited = asyncio.run(edit_profile("pooled", {"notes": "third run"}, url=catalogue_url))
    assert edited["notes"] == "third run" and edited["bound_proxy"] == record["bound_proxy"]
    assert export_profiles(url=catalogue_url)[0]["proxy_pool"] == "pp"
    report = asyncio.run(sync_catalogue(url=catalogue_url))
    assert report.invalid_blocks == [] and report.rows_updated == []
    assert _session(catalogue_url, "pooled")[0] in pool
    asyncio.run(_rows_equal_blocks(catalogue_url))


def test_failover_sticks_through_both_reconciles(prefect_api: str, catalogue_url: str) -> None:
    _proxies(catalogue_url, "fo", 2)
    asyncio.run(
        add_profile(
            validate_profile({"name": "mover", "proxy": "fo-0", "proxy_failover": True}),
            url=catalogue_url,
        )
    )
    assert _session(catalogue_url, "mover") == ("fo-0", None)
    with session_scope(catalogue_url) as s:
        bad = s.scalar(select(Proxy).where(Proxy.name == "fo-0"))
        assert bad is not None
        bad.health, bad.quarantined_until = "quarantined", utcnow() + timedelta(minutes=5)
    chosen, failover = _session(catalogue_url, "mover")
    assert chosen == "fo-1"
    assert failover is not None and (failover.from_proxy, failover.to_proxy) == ("fo-0", "fo-1")
    asyncio.run(sync_catalogue(url=catalogue_url))
    asyncio.run(reconcile_edits(_doc_id(catalogue_url, "mover"), url=catalogue_url))
    record = list_profiles(url=catalogue_url)[0]
    assert (record["proxy"], record["bound_proxy"]) == ("fo-0", "fo-1")
    assert _session(catalogue_url, "mover") == ("fo-1", None)
    # a new assignment drops the binding
    asyncio.run(edit_profile("mover", {"proxy": "fo-1"}, url=catalogue_url))
    assert list_profiles(url=catalogue_url)[0]["bound_proxy"] is None


def test_ui_edit_and_cli_edit_of_other_fields_both_survive(
    prefect_api: str, catalogue_url: str
) -> None:
    asyncio.run(add_profile(validate_profile({"name": "both"}), url=catalogue_url))
    doc = _doc_id(catalogue_url, "both")
    asyncio.run(_ui_edit(doc, timezone="Europe/Berlin"))  # no reconcile has run yet
    asyncio.run(edit_profile("both", {"fingerprint": {"locale": "de-DE"}}, url=catalogue_url))
    record = list_profiles(url=catalogue_url)[0]
    assert (record["fingerprint"]["timezone"], record["fingerprint"]["locale"]) == (
        "Europe/Berlin",
        "de-DE",
    )
    asyncio.run(reconcile_edits(doc, url=catalogue_url))  # the UI edit's own trigger, late
    record = list_profiles(url=catalogue_url)[0]
    assert (record["fingerprint"]["timezone"], record["fingerprint"]["locale"]) == (
        "Europe/Berlin",
        "de-DE",
    )
    asyncio.run(_rows_equal_blocks(catalogue_url))


def test_reconcile_between_import_rows_and_its_blocks(prefect_api: str, catalogue_url: str) -> None:
    """The import's rows are in, its blocks not yet: a reconcile then (full, or triggered by
    another block's edit) archives nothing and creates nothing twice."""
    items = [(f"i{i}", {"name": f"race-{i}"}) for i in range(6)]
    report = asyncio.run(import_profiles(items, url=catalogue_url, blocks=False))
    assert (report.created, report.blocks_pending) == (6, 6)
    asyncio.run(reconcile_edits(url=catalogue_url))
    full = asyncio.run(sync_catalogue(url=catalogue_url))  # writes the pending blocks
    assert full.rows_archived == [] and full.rows_created == [] and full.blocks_written == 6
    again = asyncio.run(import_profiles(items, url=catalogue_url))
    assert (again.created, again.unchanged, again.blocks_written) == (0, 6, 0)
    asyncio.run(_rows_equal_blocks(catalogue_url))


@pytest.mark.parametrize("path", ["client", "direct"])
def test_block_event_reconciled_before_the_projection_records_it(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The projector wrote the block (through Prefect's client, or the CLI's direct path); its
    `created` event is reconciled before the projector records the block on the row: the row
    is linked, not duplicated, and ends projected."""
    import fleetwright.registry.direct as direct
    import fleetwright.registry.projection as projection

    if path == "direct":
        from fleetwright.embedded.stack import register_blocks

        asyncio.run(register_blocks())  # the direct path needs the block schema registered
    writer: Any = direct if path == "direct" else projection
    real_mark = writer.mark_projected
    seen: list[str] = []

    def reconcile_first(url: str | None, item: Any, document_id: str) -> bool:
        async def run() -> None:
            async with open_block_store() as bs:
                seen.append((await reconcile_profile_block(bs, document_id, url=url)).action)

        asyncio.run(run())
        return bool(real_mark(url, item, document_id))

    monkeypatch.setattr(writer, "mark_projected", reconcile_first)
    asyncio.run(
        add_profile(validate_profile({"name": "early"}), url=catalogue_url, direct=path == "direct")
    )
    assert seen == ["linked"]
    assert len(list_profiles(url=catalogue_url)) == 1
    asyncio.run(_rows_equal_blocks(catalogue_url))


def test_cli_edit_racing_the_projection_is_projected_again(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI edit lands between a projection's block write and its record: the stale
    projection is not recorded as current, and the next one writes the edit."""
    asyncio.run(add_profile(validate_profile({"name": "racy"}), url=catalogue_url))
    with session_scope(catalogue_url) as s:
        row = s.scalar(select(Profile).where(Profile.name == "racy"))
        assert row is not None
        row.notes, row.revision = "first", row.revision + 1
    real_update = BlockStore.update
    edited = False

    async def edit_meanwhile(self: BlockStore, document_id: Any, block: Any) -> None:
        nonlocal edited
        await real_update(self, document_id, block)
        if not edited:
            edited = True
            with session_scope(catalogue_url) as s:
                row = s.scalar(select(Profile).where(Profile.name == "racy"))
                assert row is not None
                row.notes, row.revision = "second", row.revision + 1

    monkeypatch.setattr(BlockStore, "update", edit_meanwhile)

    async def project() -> int:
        async with open_block_store() as bs:
            return (await project_profiles(bs, url=catalogue_url)).written

    assert asyncio.run(project()) == 1  # the second round writes "second"
    assert list_profiles(url=catalogue_url)[0]["notes"] == "second"
    asyncio.run(_rows_equal_blocks(catalogue_url))


def test_an_older_projection_landing_last_leaves_the_row_pending(
    prefect_api: str, catalogue_url: str
) -> None:
    """Two projections of one row race: the newer one writes and records revision 3, then the
    older one's write (revision 2) lands on top of it. Its record must not leave the row
    marked current over that stale block: the row is pending again, and the next projection
    writes revision 3 back (the two-importer stress test met this once)."""
    from fleetwright.registry.outbox import mark_projected, pending_rows
    from fleetwright.registry.profiles import project_pending

    asyncio.run(add_profile(validate_profile({"name": "late"}), url=catalogue_url))

    def bump(notes: str) -> int:
        with session_scope(catalogue_url) as s:
            row = s.scalar(select(Profile).where(Profile.name == "late"))
            assert row is not None
            row.notes, row.revision = notes, row.revision + 1
            return row.id

    row_id = bump("two")
    [older] = pending_rows(catalogue_url, [row_id], 1)  # a projector reads revision 2 ...
    bump("three")
    asyncio.run(project_pending([row_id], url=catalogue_url))  # ... another writes 3 and records
    assert list_profiles(url=catalogue_url)[0]["block_pending"] is False

    async def late_write() -> None:  # ... then the first one's write lands, and its record
        async with open_block_store() as bs:
            assert older.document_id is not None
            await bs.update(older.document_id, BrowserProfile.from_spec(older.spec))

    asyncio.run(late_write())
    assert older.document_id is not None
    assert mark_projected(catalogue_url, older, older.document_id) is False
    [record] = list_profiles(url=catalogue_url)
    assert record["notes"] == "three" and record["block_pending"] is True
    asyncio.run(project_pending([row_id], url=catalogue_url))
    asyncio.run(_rows_equal_blocks(catalogue_url))
    assert list_profiles(url=catalogue_url)[0]["block_pending"] is False


def test_edit_triggered_reconcile_reads_only_edited_blocks(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = utcnow() - timedelta(seconds=5)
    items = [(f"i{i}", {"name": f"many-{i}"}) for i in range(40)]
    asyncio.run(import_profiles(items, url=catalogue_url))
    # Prefect stores events a little later, in batches: wait until all of the import's events
    # are stored, then move the cursor past them
    asyncio.run(_wait_for_block_events(started, 40))
    asyncio.run(reconcile_edits(url=catalogue_url))
    doc = _doc_id(catalogue_url, "many-7")
    asyncio.run(_ui_edit(doc, notes="edited in the UI"))
    reads: list[str] = []
    real_read = BlockStore.read_document

    async def counting(self: BlockStore, document_id: Any) -> Any:
        reads.append(str(document_id))
        return await real_read(self, document_id)

    monkeypatch.setattr(BlockStore, "read_document", counting)
    monkeypatch.setattr(BlockStore, "list", None)  # a full listing would fail here
    report = asyncio.run(reconcile_edits(doc, url=catalogue_url))
    assert report.rows_updated == ["many-7"]
    # the edit, and at most the import's newest event again (the cursor is inclusive)
    assert doc in reads and len(set(reads)) <= 2
    assert {r["name"]: r["notes"] for r in list_profiles(url=catalogue_url)}["many-7"] == (
        "edited in the UI"
    )

    # another block type's edit (a Prefect Secret) is in the event stream but not read
    secret_id = asyncio.run(_save_secret_and_wait_for_its_event())
    reads.clear()
    asyncio.run(reconcile_edits(url=catalogue_url))
    assert secret_id not in reads


async def _save_secret_and_wait_for_its_event() -> str:
    from prefect.blocks.system import Secret

    doc_id = str(await Secret(value="not a profile").save("not-a-profile", overwrite=True))
    deadline = time.monotonic() + 60
    async with open_block_store() as bs:
        while True:
            response = await bs.client._client.post(
                "/events/filter",
                json={"filter": {"resource": {"id": [f"prefect.block-document.{doc_id}"]}}},
            )
            response.raise_for_status()
            if response.json()["events"]:
                return doc_id
            assert time.monotonic() < deadline, "the Secret block's event was not stored"
            await asyncio.sleep(0.5)


@pytest.mark.postgres
def test_stress_two_importers_ui_edits_and_reconciles(
    prefect_api: str, home: Any, pg_url: str
) -> None:
    """Two importers of 1,000 profiles each (half the names shared), UI edits through the
    Prefect API and edit-triggered reconciles, all at once; then edits after the imports.
    The end: rows == blocks, nothing archived, every later UI edit in its row."""
    url = pg_url
    rng = random.Random(14)
    first = [(f"a{i}", {"name": f"st-{i}", "tags": ["a"]}) for i in range(1000)]
    second = [(f"b{i}", {"name": f"st-{i + 500}", "tags": ["b"]}) for i in range(1000)]

    async def ui_editor(stop: asyncio.Event) -> int:
        edits = 0
        while not stop.is_set():
            with session_scope(url) as s:
                docs = list(
                    s.scalars(
                        select(Profile.block_document_id).where(
                            Profile.block_document_id.is_not(None)
                        )
                    )
                )
            if docs:
                await _ui_edit(rng.choice(docs), notes=f"during-{edits}")
                edits += 1
            await asyncio.sleep(0.05)
        return edits

    async def reconciler(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await reconcile_edits(url=url)
            await asyncio.sleep(0.5)

    async def concurrently() -> int:
        stop = asyncio.Event()
        editor = asyncio.create_task(ui_editor(stop))
        recon = asyncio.create_task(reconciler(stop))
        await asyncio.gather(import_profiles(first, url=url), import_profiles(second, url=url))
        stop.set()
        await recon
        return await editor

    started = time.perf_counter()
    assert asyncio.run(concurrently()) > 0
    print(f"imports, edits and reconciles together: {time.perf_counter() - started:.1f} s")
    with session_scope(url) as s:
        names = [r.name for r in s.scalars(select(Profile))]
    assert sorted(names) == sorted(f"st-{i}" for i in range(1500))
    later = {f"st-{i}": f"after-{i}" for i in rng.sample(range(1500), 25)}
    for name, note in later.items():
        asyncio.run(_ui_edit(_doc_id(url, name), notes=note))
    asyncio.run(reconcile_edits(url=url))
    asyncio.run(sync_catalogue(url=url))
    asyncio.run(_rows_equal_blocks(url))
    records = {r["name"]: r for r in list_profiles(url=url)}
    assert all(r["status"] == "active" for r in records.values())
    assert {n: records[n]["notes"] for n in later} == later


def test_edit_triggered_reconcile_of_a_proxy_block(prefect_api: str, catalogue_url: str) -> None:
    from fleetwright.registry import get_proxy

    spec = validate_proxy(
        {"name": "ui-px", "host": "127.0.0.1", "port": 3128, "username": "u", "password": "pw-x"}
    )
    doc = asyncio.run(add_proxy(spec, url=catalogue_url))
    with session_scope(catalogue_url) as s:
        doc_id = s.scalar(select(Proxy.block_document_id).where(Proxy.name == "ui-px"))
    assert doc_id is not None and doc["port"] == 3128
    asyncio.run(_ui_edit(doc_id, port=3129))
    report = asyncio.run(reconcile_edits(doc_id, url=catalogue_url))
    assert report.rows_updated == ["proxy ui-px"] and report.invalid_blocks == []
    assert get_proxy("ui-px", url=catalogue_url)["port"] == 3129


def test_cli_edit_between_import_rows_and_its_blocks(prefect_api: str, catalogue_url: str) -> None:
    """A `profile edit` lands after an import's rows, before its blocks: the edit's own
    projection writes the edited profile, the import's projection the rest, once each."""
    items = [(f"i{i}", {"name": f"ie-{i}", "notes": "imported"}) for i in range(4)]
    asyncio.run(import_profiles(items, url=catalogue_url, blocks=False))
    asyncio.run(edit_profile("ie-2", {"notes": "edited"}, url=catalogue_url))
    again = asyncio.run(import_profiles(items[:2] + items[3:], url=catalogue_url))
    assert (again.unchanged, again.blocks_written) == (3, 3)
    notes = {r["name"]: r["notes"] for r in list_profiles(url=catalogue_url)}
    assert notes == {"ie-0": "imported", "ie-1": "imported", "ie-2": "edited", "ie-3": "imported"}
    asyncio.run(_rows_equal_blocks(catalogue_url))
