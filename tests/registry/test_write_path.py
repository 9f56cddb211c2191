"""The write path keeps blocks and rows together, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from fleetwright.blocks import BrowserProfile
from fleetwright.catalogue.db import session_scope
from fleetwright.catalogue.models import Profile
from fleetwright.errors import AlreadyExistsError, NotFoundError, PrefectUnavailableError
from fleetwright.registry import (
    add_profile,
    add_proxy,
    edit_profile,
    import_profiles,
    list_profiles,
    open_block_store,
)
from fleetwright.registry.blockstore import BlockStore
from fleetwright.registry.sync import sync_catalogue
from fleetwright.specs import validate_profile, validate_proxy

pytestmark = pytest.mark.prefect


def _rows(url: str) -> list[str]:
    with session_scope(url) as s:
        return list(s.scalars(select(Profile.name).order_by(Profile.name)))


async def _block_names() -> set[str]:
    async with open_block_store() as bs:
        return {d.name for d in await bs.list(BrowserProfile) if d.name}


def test_add_edit_on_both_databases(prefect_api: str, catalogue_url: str) -> None:
    asyncio.run(
        add_proxy(
            validate_proxy({"name": "px", "host": "127.0.0.1", "port": 3128, "pool": "eu"}),
            url=catalogue_url,
        )
    )
    rec = asyncio.run(
        add_profile(validate_profile({"name": "Both DBs", "proxy": "px"}), url=catalogue_url)
    )
    assert rec["proxy"] == "px"
    rec = asyncio.run(
        edit_profile("Both DBs", {"proxy": None, "proxy_pool": "eu"}, url=catalogue_url)
    )
    assert rec["proxy"] is None and rec["proxy_pool"] == "eu"
    with pytest.raises(AlreadyExistsError):
        asyncio.run(add_profile(validate_profile({"name": "Both DBs"}), url=catalogue_url))
    with pytest.raises(NotFoundError, match="unknown proxy pool 'asia'"):
        asyncio.run(edit_profile("Both DBs", {"proxy_pool": "asia"}, url=catalogue_url))
    assert list_profiles(url=catalogue_url)[0]["proxy_pool"] == "eu"


def test_row_failure_writes_no_row_and_no_block(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleetwright.registry.profiles as profiles

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(profiles, "save_spec", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        asyncio.run(add_profile(validate_profile({"name": "half"}), url=catalogue_url))
    assert _rows(catalogue_url) == []
    assert "half" not in asyncio.run(_block_names())


def test_unreachable_api_leaves_a_runnable_row_whose_block_the_sync_writes(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = BlockStore.create

    async def refuse(self: BlockStore, *args: Any, **kwargs: Any) -> None:
        raise PrefectUnavailableError("the Prefect API went away")

    monkeypatch.setattr(BlockStore, "create", refuse)
    rec = asyncio.run(add_profile(validate_profile({"name": "no-block"}), url=catalogue_url))
    assert rec["block_pending"] is True and rec["block_document_id"] is None
    assert _rows(catalogue_url) == ["no-block"]
    assert "no-block" not in asyncio.run(_block_names())
    monkeypatch.setattr(BlockStore, "create", real_create)
    report = asyncio.run(sync_catalogue(url=catalogue_url))
    assert report.blocks_written == 1
    assert "no-block" in asyncio.run(_block_names())
    assert list_profiles(url=catalogue_url)[0]["block_pending"] is False


def test_reconcile_repairs_both_directions(prefect_api: str, catalogue_url: str) -> None:
    asyncio.run(
        import_profiles(
            [("a", {"name": "keep"}), ("b", {"name": "lost-row"}), ("c", {"name": "gone"})],
            url=catalogue_url,
        )
    )
    with session_scope(catalogue_url) as s:
        s.delete(s.scalar(select(Profile).where(Profile.name == "lost-row")))
        row = s.scalar(select(Profile).where(Profile.name == "gone"))
        assert row is not None and row.block_document_id is not None
        doc_id = row.block_document_id

    async def drop_block() -> None:
        async with open_block_store() as bs:
            await bs.delete(doc_id)  # deleted in the UI: the profile is archived

    asyncio.run(drop_block())
    report = asyncio.run(sync_catalogue(url=catalogue_url))
    assert report.rows_created == ["lost-row"]
    assert report.rows_archived == ["gone"]
    assert _rows(catalogue_url) == ["gone", "keep", "lost-row"]
    assert {r["name"]: r["status"] for r in list_profiles(url=catalogue_url)} == {
        "gone": "archived",
        "keep": "active",
        "lost-row": "active",
    }
    again = asyncio.run(sync_catalogue(url=catalogue_url))
    assert again.changed == 0


def test_reconcile_reads_blocks_without_an_event_each(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconcile reads every block; Prefect's Block._from_block_document would emit a
    `prefect.block.*.loaded` event for each (10,000 per run on a 10,000-profile fleet)."""
    import prefect.blocks.core

    items = [(f"i{i}", {"name": f"quiet-{i}"}) for i in range(5)]
    asyncio.run(import_profiles(items, url=catalogue_url))
    proxy_spec = validate_proxy(
        {"name": "quiet-px", "host": "127.0.0.1", "port": 3128, "username": "u", "password": "pw-q"}
    )
    asyncio.run(add_proxy(proxy_spec, url=catalogue_url))
    emitted: list[str] = []
    real_emit = prefect.blocks.core.emit_event

    def spy(event: str, *args: Any, **kwargs: Any) -> Any:
        emitted.append(event)
        return real_emit(event, *args, **kwargs)

    monkeypatch.setattr(prefect.blocks.core, "emit_event", spy)
    report = asyncio.run(sync_catalogue(url=catalogue_url))
    assert report.changed == 0
    assert [e for e in emitted if e.endswith(".loaded")] == []
    # what the reconcile read is what was written, secrets included

    async def read_back() -> tuple[Any, Any]:
        from fleetwright.blocks import Proxy

        async with open_block_store() as bs:
            return await bs.read_by_name(BrowserProfile, "quiet-3"), await bs.read_by_name(
                Proxy, "quiet-px"
            )

    profile, proxy = asyncio.run(read_back())
    assert profile is not None and profile.name == "quiet-3"
    assert proxy is not None and proxy.password.get_secret_value() == "pw-q"
    assert emitted == []


def test_import_rejects_items_with_unknown_refs(prefect_api: str, catalogue_url: str) -> None:
    report = asyncio.run(
        import_profiles(
            [
                ("item 1", {"name": "ok-1"}),
                ("item 2", {"name": "bad", "proxy": "nope"}),
                ("item 3", {"name": "ok-1"}),
            ],
            url=catalogue_url,
        )
    )
    assert report.created == 1
    assert [w for w, _ in report.errors] == ["item 3", "item 2"]
    assert "appears twice" in report.errors[0][1]
    assert "unknown proxy 'nope'" in report.errors[1][1]
    assert _rows(catalogue_url) == ["ok-1"]


def _unique(prefix: str) -> str:
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_import_keeps_its_concurrency_limit(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fleetwright.registry.profiles as profiles

    monkeypatch.setattr(profiles, "IMPORT_CHUNK", 4)  # several chunks, pipelined
    real_create = BlockStore.create
    in_flight = 0
    most = 0

    async def counting_create(self: BlockStore, *args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.02)
            return await real_create(self, *args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(BlockStore, "create", counting_create)
    prefix = _unique("lim")
    items = [(f"item {i + 1}", {"name": f"{prefix}-{i}"}) for i in range(11)]
    done: list[int] = []
    report = asyncio.run(
        import_profiles(items, url=catalogue_url, concurrency=3, progress=done.append)
    )
    assert report.created == 11 and not report.errors
    assert most == 3
    assert sum(done) == 11
    assert sorted(_rows(catalogue_url)) == sorted(name for _, d in items for name in [d["name"]])
    again = asyncio.run(import_profiles(items, url=catalogue_url, concurrency=3))
    assert (again.created, again.unchanged) == (0, 11)
    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(import_profiles(items, url=catalogue_url, concurrency=0))


def test_failed_block_writes_leave_runnable_rows_pending(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block writes that fail (after their retries) do not lose the profiles: their rows are
    in and runnable, their blocks pending until a sync writes them."""
    real_create = BlockStore.create
    prefix = _unique("pos")
    bad = {f"{prefix}-1", f"{prefix}-5"}

    async def flaky_create(self: BlockStore, block: Any, name: str, **kwargs: Any) -> Any:
        if block.name in bad:
            raise RuntimeError("the Prefect API answered 503")
        return await real_create(self, block, name, **kwargs)

    monkeypatch.setattr(BlockStore, "create", flaky_create)
    items = [(f"item {i + 1}", {"name": f"{prefix}-{i}"}) for i in range(7)]
    items.append(("item 8", {"name": f"{prefix}-1"}))
    report = asyncio.run(import_profiles(items, url=catalogue_url, concurrency=4))
    assert report.created == 7
    assert report.errors == [("item 8", report.errors[0][1])]
    assert "appears twice" in report.errors[0][1]
    assert (report.blocks_written, report.blocks_pending) == (5, 2)
    pending = {r["name"] for r in list_profiles(url=catalogue_url) if r["block_pending"]}
    assert pending == bad
    monkeypatch.setattr(BlockStore, "create", real_create)
    asyncio.run(sync_catalogue(url=catalogue_url))
    assert {n for n in asyncio.run(_block_names()) if n.startswith(prefix)} == {
        f"{prefix}-{i}" for i in range(7)
    }


def test_import_row_failure_keeps_earlier_chunks(
    prefect_api: str, catalogue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose transaction fails writes nothing; earlier chunks stay imported and
    runnable, and a second import writes the rest and every block."""
    import fleetwright.registry.profiles as profiles

    monkeypatch.setattr(profiles, "IMPORT_CHUNK", 2)
    real = profiles._import_chunk
    calls = 0

    def failing_second_chunk(chunk: Any, url: str | None, report: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk full")
        return real(chunk, url, report)

    monkeypatch.setattr(profiles, "_import_chunk", failing_second_chunk)
    prefix = _unique("half")
    names = [f"{prefix}-{i}" for i in range(6)]
    items = [(f"item {i + 1}", {"name": n}) for i, n in enumerate(names)]
    with pytest.raises(RuntimeError, match="disk full"):
        asyncio.run(import_profiles(items, url=catalogue_url, concurrency=2))
    assert sorted(_rows(catalogue_url)) == names[:2]
    assert not {n for n in asyncio.run(_block_names()) if n.startswith(prefix)}
    monkeypatch.setattr(profiles, "_import_chunk", real)
    report = asyncio.run(import_profiles(items, url=catalogue_url))
    assert (report.created, report.unchanged) == (4, 2)
    assert report.blocks_written == 6  # the first chunk's pending blocks too
    assert sorted(_rows(catalogue_url)) == names
    assert {n for n in asyncio.run(_block_names()) if n.startswith(prefix)} == set(names)
